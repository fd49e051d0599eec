using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using NvRedirect.Datapath.Engine;

using NvRedirect.Core.Datapath;

namespace NvRedirect.Datapath.Control;

/// <summary>
/// Encoders of the binary replies: DPMsgHdr {u8 Kind; u8 More; u16 Length (header included)} followed by a body.
/// All sizes and orders as NeuVector's agent parses them (cgo structs read with binary.BigEndian).
/// </summary>
internal static class Replies
{
    private const int MaxMessageSize = DpWire.MaxMessageSize, HeaderSize = DpWire.HeaderSize, SessionHeaderSize = DpWire.SessionHeaderSize,
        SessionsPerMessage = DpWire.SessionsPerMessage;
    private const ushort FlagIngress = DpWire.SessionFlagIngress, FlagTap = DpWire.SessionFlagTap, FlagMid = DpWire.SessionFlagMidStream;

    private static void WriteHeader(Span<byte> b, byte kind, bool more, int length)
    {
        b[0] = kind;
        b[1] = more ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], (ushort)length);
    }

    /// <summary>KEEP_ALIVE: header + the request's seq_num.</summary>
    public static byte[] KeepAlive(uint sequence)
    {
        var b = new byte[8];
        WriteHeader(b, MessageKind.KeepAlive, false, 8);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), sequence);
        return b;
    }

    /// <summary>SESSION_COUNT: DPMsgSessionCount {u32 CurSess, CurTCPSess, CurUDPSess, CurICMPSess, CurIPSess}.</summary>
    public static byte[] SessionCount(uint total, uint tcp, uint udp, uint icmp, uint ip)
    {
        var b = new byte[24];
        WriteHeader(b, MessageKind.SessionCount, false, 24);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), total);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), tcp);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), udp);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), icmp);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(20), ip);
        return b;
    }

    /// <summary>DEVICE_COUNTER: the counters indexed by <see cref="DeviceCounter"/>; parser, policy and rate-limit fields are 0 (none exist here).</summary>
    public static byte[] DeviceCounters(ReadOnlySpan<ulong> counters)
    {
        var b = new byte[HeaderSize + DeviceCounterLayout.Size];
        WriteHeader(b, MessageKind.DeviceCounter, false, b.Length);
        for (int i = 0; i < counters.Length && i <= (int)DeviceCounter.CurLogCaches; i++)
            BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(HeaderSize + 8 * i), counters[i]);
        return b;
    }

    /// <summary>
    /// SESSION_LIST: datagrams of up to 58 sessions with More=1, then the terminator (More=0, Sessions=0) — also
    /// when there are no sessions at all.
    /// </summary>
    public static List<byte[]> SessionList(IReadOnlyList<SessionRecord> sessions)
    {
        var messages = new List<byte[]>();
        for (int start = 0; start < sessions.Count; start += SessionsPerMessage)
        {
            int count = Math.Min(SessionsPerMessage, sessions.Count - start);
            int length = HeaderSize + SessionHeaderSize + count * SessionLayout.Size;
            var b = new byte[length];
            WriteHeader(b, MessageKind.SessionList, true, length);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(HeaderSize), (ushort)count);
            for (int i = 0; i < count; i++)
                WriteSession(b.AsSpan(HeaderSize + SessionHeaderSize + i * SessionLayout.Size, SessionLayout.Size), sessions[start + i]);
            messages.Add(b);
        }
        var end = new byte[HeaderSize + SessionHeaderSize];
        WriteHeader(end, MessageKind.SessionList, false, end.Length);
        messages.Add(end);
        return messages;
    }

    /// <summary>
    /// nvr-dp's extension reply to nvr_get_state (kind <see cref="MessageKind.State"/>): the UTF-8 JSON text cut into
    /// datagrams of at most 8192 bytes, More=1 on every one but the last. The reader joins the bodies, then parses.
    /// </summary>
    public static List<byte[]> State(ReadOnlySpan<byte> json) => Json(MessageKind.State, json);

    /// <summary>One of nvr-dp's JSON replies (kinds 200-202): the text cut into datagrams, More=1 on all but the last.</summary>
    public static List<byte[]> Json(byte kind, ReadOnlySpan<byte> json)
    {
        const int chunk = MaxMessageSize - HeaderSize;
        var messages = new List<byte[]>();
        int offset = 0;
        do
        {
            int count = Math.Min(chunk, json.Length - offset);
            var b = new byte[HeaderSize + count];
            WriteHeader(b, kind, offset + count < json.Length, b.Length);
            json.Slice(offset, count).CopyTo(b.AsSpan(HeaderSize));
            messages.Add(b);
            offset += count;
        } while (offset < json.Length);
        return messages;
    }

    /// <summary>One DPMsgSession (the span must be 140 zeroed bytes).</summary>
    public static void WriteSession(Span<byte> b, SessionRecord s)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.Id..], s.Id);
        WriteMac(b[SessionLayout.EndpointMac..], s.EndpointMac);
        BinaryPrimitives.WriteUInt16BigEndian(b[SessionLayout.EtherType..], s.IPv6 ? (ushort)0x86dd : (ushort)0x0800);
        WriteMac(b[SessionLayout.ClientMac..], s.ClientMac);
        WriteMac(b[SessionLayout.ServerMac..], s.ServerMac);
        s.ClientIP.CopyTo(b[SessionLayout.ClientIP..]); // IPv4 in the first 4 bytes, as ip4_cpy does
        s.ServerIP.CopyTo(b[SessionLayout.ServerIP..]);
        BinaryPrimitives.WriteUInt16BigEndian(b[SessionLayout.ClientPort..], s.ClientPort);
        BinaryPrimitives.WriteUInt16BigEndian(b[SessionLayout.ServerPort..], s.ServerPort);
        if (s.Protocol is 1 or 58)
        {
            b[SessionLayout.IcmpCode] = (byte)s.IcmpTypeCode;
            b[SessionLayout.IcmpType] = (byte)(s.IcmpTypeCode >> 8);
        }
        b[SessionLayout.IPProto] = s.Protocol;
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.ClientPkts..], s.ClientPackets);
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.ServerPkts..], s.ServerPackets);
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.ClientBytes..], (uint)s.ClientBytes);
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.ServerBytes..], (uint)s.ServerBytes);
        b[SessionLayout.ClientState] = s.ClientState;
        b[SessionLayout.ServerState] = s.ServerState;
        BinaryPrimitives.WriteUInt16BigEndian(b[SessionLayout.Idle..], (ushort)Math.Min(s.Idle, ushort.MaxValue));
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.Age..], (uint)Math.Min(s.Age, uint.MaxValue));
        BinaryPrimitives.WriteUInt16BigEndian(b[SessionLayout.Life..], (ushort)Math.Min(s.Life, ushort.MaxValue));
        ushort flags = 0;
        if ((s.Flags & SessionFlags.Ingress) != 0) flags |= FlagIngress;
        if ((s.Flags & SessionFlags.Tap) != 0) flags |= FlagTap;
        if ((s.Flags & SessionFlags.MidStream) != 0) flags |= FlagMid;
        BinaryPrimitives.WriteUInt16BigEndian(b[SessionLayout.Flags..], flags);
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.PolicyId..], s.PolicyId);
        b[SessionLayout.PolicyAction] = s.PolicyAction;
        // reassembly, application, threat and XFF fields stay 0: this datapath has none of those
    }

    private static void WriteMac(Span<byte> b, ulong mac)
    {
        BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)(mac >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(b[2..], (uint)mac);
    }
}
