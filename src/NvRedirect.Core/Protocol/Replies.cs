using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace NvRedirect.Core.Protocol;

/// <summary>
/// One DPMsgSession as nvr-dp fills it (the fields it has; reassembly, application, threat and XFF stay 0). Addresses
/// are 4 bytes (IPv4) or 16 (IPv6); ICMP type and code travel as <see cref="IcmpTypeCode"/> (type &lt;&lt; 8 | code).
/// </summary>
public sealed record SessionEntry(
    uint Id, ulong EndpointMac, bool IPv6, byte[] ClientIP, byte[] ServerIP, ushort ClientPort, ushort ServerPort,
    byte Protocol, ushort IcmpTypeCode, ulong ClientMac, ulong ServerMac, uint ClientPackets, uint ServerPackets,
    uint ClientBytes, uint ServerBytes, TcpState ClientState, TcpState ServerState, uint Age, ushort Idle, ushort Life,
    ushort Flags, uint PolicyId, DpPolicyAction PolicyAction)
{
    /// <summary>ICMP or ICMPv6 (the only protocols whose type and code are carried).</summary>
    public bool IsIcmp => Protocol is 1 or 58;
}

/// <summary>A binary reply that breaks its layout; the message says how. (The module reports it as DatapathProtocolException.)</summary>
public sealed class ReplyFormatException(string message) : FormatException(message);

/// <summary>DPMsgSessionCount: current sessions by protocol.</summary>
public readonly record struct SessionCounts(uint Total, uint Tcp, uint Udp, uint Icmp, uint Other);

/// <summary>
/// The binary replies, each with its one writer (the daemon) and its one reader (the module): DPMsgHdr {u8 Kind; u8 More;
/// u16 Length (header included)} followed by a body, all sizes and orders as NeuVector's agent parses them (cgo structs
/// read with binary.BigEndian; layouts in <see cref="DpWire"/>, <see cref="SessionLayout"/>, <see cref="DeviceCounterLayout"/>).
/// Readers throw <see cref="ReplyFormatException"/> saying what is wrong.
/// </summary>
public static class Replies
{
    private const int HeaderSize = DpWire.HeaderSize, SessionHeaderSize = DpWire.SessionHeaderSize;

    private static void WriteHeader(Span<byte> b, byte kind, bool more, int length)
    {
        b[0] = kind;
        b[1] = more ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], (ushort)length);
    }

    /// <summary>Reads DPMsgHdr and checks that its Length is the datagram's length, as NeuVector's agent does.</summary>
    public static (byte Kind, bool More) Header(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length < HeaderSize)
            throw new ReplyFormatException($"a reply of {datagram.Length} bytes is shorter than its {HeaderSize}-byte header");
        int length = BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);
        if (length != datagram.Length)
            throw new ReplyFormatException($"a reply of kind {datagram[0]} says it is {length} bytes long but is {datagram.Length}");
        return (datagram[0], datagram[1] != 0);
    }

    private static void Expect(ReadOnlySpan<byte> datagram, byte kind, int length, string what)
    {
        var (k, _) = Header(datagram);
        if (k != kind) throw new ReplyFormatException($"expected a {what} reply (kind {kind}), got kind {k}");
        if (datagram.Length != length) throw new ReplyFormatException($"a {what} reply must be {length} bytes, got {datagram.Length}");
    }

    /// <summary>KEEP_ALIVE: header + the request's seq_num.</summary>
    public static byte[] KeepAlive(uint sequence)
    {
        var b = new byte[8];
        WriteHeader(b, MessageKind.KeepAlive, false, 8);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), sequence);
        return b;
    }

    /// <summary>Whether <paramref name="datagram"/> is the KEEP_ALIVE answering <paramref name="sequence"/> (no exception for anything else).</summary>
    public static bool IsKeepAlive(ReadOnlySpan<byte> datagram, uint sequence)
        => datagram.Length == 8 && datagram[0] == MessageKind.KeepAlive && BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]) == 8
           && BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]) == sequence;

    /// <summary>KEEP_ALIVE's reader: the sequence number it answers.</summary>
    public static uint ReadKeepAlive(ReadOnlySpan<byte> datagram)
    {
        Expect(datagram, MessageKind.KeepAlive, 8, "keep-alive");
        return BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]);
    }

    /// <summary>SESSION_COUNT: DPMsgSessionCount {u32 CurSess, CurTCPSess, CurUDPSess, CurICMPSess, CurIPSess}.</summary>
    public static byte[] SessionCount(uint total, uint tcp, uint udp, uint icmp, uint ip) => SessionCount(new SessionCounts(total, tcp, udp, icmp, ip));

    /// <summary>SESSION_COUNT's writer.</summary>
    public static byte[] SessionCount(SessionCounts c)
    {
        var b = new byte[24];
        WriteHeader(b, MessageKind.SessionCount, false, 24);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), c.Total);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), c.Tcp);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), c.Udp);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), c.Icmp);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(20), c.Other);
        return b;
    }

    /// <summary>SESSION_COUNT's reader.</summary>
    public static SessionCounts ReadSessionCount(ReadOnlySpan<byte> datagram)
    {
        Expect(datagram, MessageKind.SessionCount, 24, "session count");
        uint At(ReadOnlySpan<byte> d, int i) => BinaryPrimitives.ReadUInt32BigEndian(d[(4 + 4 * i)..]);
        return new SessionCounts(At(datagram, 0), At(datagram, 1), At(datagram, 2), At(datagram, 3), At(datagram, 4));
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

    /// <summary>DEVICE_COUNTER's reader: the leading 27 u64 counters, in <see cref="DeviceCounter"/> order.</summary>
    public static ulong[] ReadDeviceCounters(ReadOnlySpan<byte> datagram)
    {
        Expect(datagram, MessageKind.DeviceCounter, HeaderSize + DeviceCounterLayout.Size, "device counter");
        var values = new ulong[(int)DeviceCounter.CurLogCaches + 1];
        for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadUInt64BigEndian(datagram[(HeaderSize + 8 * i)..]);
        return values;
    }

    /// <summary>
    /// SESSION_LIST: datagrams of up to 58 sessions with More=1, then the terminator (More=0, Sessions=0) — also
    /// when there are no sessions at all.
    /// </summary>
    public static List<byte[]> SessionList(IReadOnlyList<SessionEntry> sessions)
    {
        var messages = new List<byte[]>();
        for (int start = 0; start < sessions.Count; start += DpWire.SessionsPerMessage)
        {
            int count = Math.Min(DpWire.SessionsPerMessage, sessions.Count - start);
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

    /// <summary>SESSION_LIST's reader, one datagram: its sessions, and whether more datagrams follow (false for the terminator).</summary>
    public static List<SessionEntry> ReadSessionList(ReadOnlySpan<byte> datagram, out bool more)
    {
        var (kind, m) = Header(datagram);
        if (kind != MessageKind.SessionList) throw new ReplyFormatException($"expected a session list reply (kind {MessageKind.SessionList}), got kind {kind}");
        if (datagram.Length < HeaderSize + SessionHeaderSize) throw new ReplyFormatException("a session list reply is shorter than its headers");
        int count = BinaryPrimitives.ReadUInt16BigEndian(datagram[HeaderSize..]);
        int expected = HeaderSize + SessionHeaderSize + count * SessionLayout.Size;
        if (datagram.Length != expected) throw new ReplyFormatException($"a session list reply with {count} sessions must be {expected} bytes, got {datagram.Length}");
        more = m;
        var list = new List<SessionEntry>(count);
        for (int i = 0; i < count; i++)
            list.Add(ReadSession(datagram.Slice(HeaderSize + SessionHeaderSize + i * SessionLayout.Size, SessionLayout.Size)));
        return list;
    }

    /// <summary>One DPMsgSession (the span must be 140 zeroed bytes).</summary>
    public static void WriteSession(Span<byte> b, SessionEntry s)
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
        if (s.IsIcmp)
        {
            b[SessionLayout.IcmpCode] = (byte)s.IcmpTypeCode;
            b[SessionLayout.IcmpType] = (byte)(s.IcmpTypeCode >> 8);
        }
        b[SessionLayout.IPProto] = s.Protocol;
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.ClientPkts..], s.ClientPackets);
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.ServerPkts..], s.ServerPackets);
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.ClientBytes..], s.ClientBytes);
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.ServerBytes..], s.ServerBytes);
        b[SessionLayout.ClientState] = (byte)s.ClientState;
        b[SessionLayout.ServerState] = (byte)s.ServerState;
        BinaryPrimitives.WriteUInt16BigEndian(b[SessionLayout.Idle..], s.Idle);
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.Age..], s.Age);
        BinaryPrimitives.WriteUInt16BigEndian(b[SessionLayout.Life..], s.Life);
        BinaryPrimitives.WriteUInt16BigEndian(b[SessionLayout.Flags..], s.Flags);
        BinaryPrimitives.WriteUInt32BigEndian(b[SessionLayout.PolicyId..], s.PolicyId);
        b[SessionLayout.PolicyAction] = (byte)s.PolicyAction;
        // reassembly, application, threat and XFF fields stay 0: this datapath has none of those
    }

    /// <summary>One DPMsgSession's reader (140 bytes); an action beyond Deny reads as Open.</summary>
    public static SessionEntry ReadSession(ReadOnlySpan<byte> b)
    {
        if (b.Length != SessionLayout.Size) throw new ReplyFormatException($"a session record must be {SessionLayout.Size} bytes, got {b.Length}");
        ushort U16(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt16BigEndian(s[o..]);
        uint U32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt32BigEndian(s[o..]);
        bool v6 = U16(b, SessionLayout.EtherType) == 0x86dd;
        int ipLength = v6 ? 16 : 4; // IPv4 in the first 4 bytes, as ip4_cpy puts it
        byte proto = b[SessionLayout.IPProto];
        bool icmp = proto is 1 or 58;
        byte action = b[SessionLayout.PolicyAction];
        return new SessionEntry(
            U32(b, SessionLayout.Id), ReadMac(b[SessionLayout.EndpointMac..]), v6,
            b.Slice(SessionLayout.ClientIP, ipLength).ToArray(), b.Slice(SessionLayout.ServerIP, ipLength).ToArray(),
            U16(b, SessionLayout.ClientPort), U16(b, SessionLayout.ServerPort), proto,
            icmp ? (ushort)(b[SessionLayout.IcmpType] << 8 | b[SessionLayout.IcmpCode]) : (ushort)0,
            ReadMac(b[SessionLayout.ClientMac..]), ReadMac(b[SessionLayout.ServerMac..]),
            U32(b, SessionLayout.ClientPkts), U32(b, SessionLayout.ServerPkts), U32(b, SessionLayout.ClientBytes), U32(b, SessionLayout.ServerBytes),
            (TcpState)b[SessionLayout.ClientState], (TcpState)b[SessionLayout.ServerState],
            U32(b, SessionLayout.Age), U16(b, SessionLayout.Idle), U16(b, SessionLayout.Life), U16(b, SessionLayout.Flags),
            U32(b, SessionLayout.PolicyId), action <= PolicyActions.Max ? (DpPolicyAction)action : DpPolicyAction.Open);
    }

    private static void WriteMac(Span<byte> b, ulong mac)
    {
        BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)(mac >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(b[2..], (uint)mac);
    }

    private static ulong ReadMac(ReadOnlySpan<byte> b) => (ulong)BinaryPrimitives.ReadUInt16BigEndian(b) << 32 | BinaryPrimitives.ReadUInt32BigEndian(b[2..]);

    /// <summary>
    /// nvr-dp's extension reply to nvr_get_state (kind <see cref="MessageKind.State"/>): the UTF-8 JSON text cut into
    /// datagrams of at most 8192 bytes, More=1 on every one but the last. The reader joins the bodies, then parses.
    /// </summary>
    public static List<byte[]> State(ReadOnlySpan<byte> json) => Json(MessageKind.State, json);

    /// <summary>One of nvr-dp's JSON replies (kinds 200-202): the text cut into datagrams, More=1 on all but the last.</summary>
    public static List<byte[]> Json(byte kind, ReadOnlySpan<byte> json)
    {
        const int chunk = DpWire.MaxMessageSize - HeaderSize;
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

    /// <summary>
    /// The reader of <see cref="Json"/>: joins the bodies of every datagram of <paramref name="kind"/>, More=1 on all but the last.
    /// </summary>
    public static byte[] Join(IEnumerable<byte[]> datagrams, byte kind, string what)
    {
        var body = new List<byte>();
        bool ended = false;
        foreach (var d in datagrams)
        {
            var (k, more) = Header(d);
            if (k != kind) throw new ReplyFormatException($"expected a {what} reply (kind {kind}), got kind {k}");
            if (ended) throw new ReplyFormatException($"a {what} reply goes on after its last datagram (More=0)");
            body.AddRange(d.AsSpan(HeaderSize).ToArray());
            ended = !more;
        }
        if (!ended) throw new ReplyFormatException($"a {what} reply ends with a datagram that says more follow");
        return body.ToArray();
    }
}
