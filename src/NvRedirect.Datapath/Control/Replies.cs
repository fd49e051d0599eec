using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using NvRedirect.Datapath.Engine;

namespace NvRedirect.Datapath.Control;

/// <summary>DP_KIND_* values of the binary reply header (NeuVector defs.h).</summary>
internal static class MessageKind
{
    public const byte SessionList = 2, SessionCount = 3, DeviceCounter = 4, KeepAlive = 10;
}

/// <summary>
/// The byte layout of NeuVector's DPMsgSession (defs.h) as the C compiler lays it out on x86-64: natural alignment,
/// 140 bytes, every multi-byte field big-endian on the wire. One constant per field; <see cref="Replies"/> is the only writer.
/// </summary>
internal static class SessionLayout
{
    public const int Id = 0, EndpointMac = 4, EtherType = 10, ClientMac = 12, ServerMac = 18, ClientIP = 24, ServerIP = 40,
        ClientPort = 56, ServerPort = 58, IcmpCode = 60, IcmpType = 61, IPProto = 62, Padding = 63,
        ClientPkts = 64, ServerPkts = 68, ClientBytes = 72, ServerBytes = 76,
        ClientAsmPkts = 80, ServerAsmPkts = 84, ClientAsmBytes = 88, ServerAsmBytes = 92,
        ClientState = 96, ServerState = 97, Idle = 98, Age = 100, Life = 104, Application = 106,
        ThreatId = 108, PolicyId = 112, PolicyAction = 116, Severity = 117, Flags = 118,
        XffIP = 120, XffApp = 136, XffPort = 138;
    /// <summary>sizeof(DPMsgSession).</summary>
    public const int Size = 140;
}

/// <summary>
/// The 64-bit counters that open NeuVector's DPMsgDeviceCounter (defs.h), in declaration order: 27 x u64 from offset 0,
/// then ParserSessions[20] and ParserPackets[20] (u64), four u32 policy counts and two u64 rate-limit counters.
/// </summary>
internal enum DeviceCounter
{
    RXPackets, RXDropPackets, TXPackets, TXDropPackets, ErrorPackets, NoWorkloadPackets, IPv4Packets, IPv6Packets,
    TCPPackets, TCPNoSessionPackets, UDPPackets, ICMPPackets, OtherPackets, Assemblys, FreedAssemblys, Fragments,
    FreedFragments, TimeoutFragments, TotalSessions, TCPSessions, UDPSessions, ICMPSessions, IPSessions, DropMeters,
    ProxyMeters, CurMeters, CurLogCaches,
}

/// <summary>Offsets in DPMsgDeviceCounter after the leading <see cref="DeviceCounter"/> block.</summary>
internal static class DeviceCounterLayout
{
    public const int ParserSessions = 27 * 8, ParserPackets = ParserSessions + 20 * 8, PolicyType1Rules = ParserPackets + 20 * 8,
        PolicyType2Rules = PolicyType1Rules + 4, PolicyDomains = PolicyType2Rules + 4, PolicyDomainIPs = PolicyDomains + 4,
        LimitDropConns = PolicyDomainIPs + 4, LimitPassConns = LimitDropConns + 8;
    /// <summary>sizeof(DPMsgDeviceCounter) on x86-64.</summary>
    public const int Size = LimitPassConns + 8;
}

/// <summary>
/// Encoders of the binary replies: DPMsgHdr {u8 Kind; u8 More; u16 Length (header included)} followed by a body.
/// All sizes and orders as NeuVector's agent parses them (cgo structs read with binary.BigEndian).
/// </summary>
internal static class Replies
{
    /// <summary>DP_MSG_SIZE: no datagram is larger.</summary>
    public const int MaxMessageSize = 8192;
    /// <summary>sizeof(DPMsgHdr) and sizeof(DPMsgSessionHdr) {u16 Sessions; u16 Reserved}.</summary>
    public const int HeaderSize = 4, SessionHeaderSize = 4;
    /// <summary>DPMsgSession records per SESSION_LIST datagram: (8192 - 4 - 4) / 140 = 58.</summary>
    public const int SessionsPerMessage = (MaxMessageSize - HeaderSize - SessionHeaderSize) / SessionLayout.Size;

    // DPSESS_FLAG_*
    private const ushort FlagIngress = 0x0001, FlagTap = 0x0002, FlagMid = 0x0004;

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
        // reassembly, application, threat, policy and XFF fields stay 0: this datapath has none of those yet
    }

    private static void WriteMac(Span<byte> b, ulong mac)
    {
        BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)(mac >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(b[2..], (uint)mac);
    }
}
