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

/// <summary>The in/out sums of one window of DPMsgStats (the last 5 s slot, 12 slots or 60 slots).</summary>
public sealed record StatsWindow(uint SessionIn, uint SessionOut, ulong PacketIn, ulong PacketOut, ulong ByteIn, ulong ByteOut)
{
    /// <summary>Nothing counted.</summary>
    public static readonly StatsWindow Zero = new(0, 0, 0, 0, 0, 0);
}

/// <summary>
/// DPMsgStats, what MAC_STATS and DEVICE_STATS carry: totals since start (sessions, current sessions, packets, bytes, in
/// and out) and three windows of 5-second slots (<see cref="StatsLayout"/>).
/// </summary>
public sealed record TrafficStats(uint Interval, uint SessionIn, uint SessionOut, uint SessionCurIn, uint SessionCurOut,
    ulong PacketIn, ulong PacketOut, ulong ByteIn, ulong ByteOut, StatsWindow Last, StatsWindow Last12, StatsWindow Last60);

/// <summary>One DPMsgMeter (a rate limit per source NeuVector keeps; nvr-dp keeps none, so it only ever lists none).</summary>
public sealed record MeterEntry(ulong EndpointMac, ushort Idle, uint Count, uint LastCount, byte[] PeerIP, byte MeterId, byte Flags, byte Span,
    uint UpperLimit, uint LowerLimit);

/// <summary>The DEVICE_COUNTER fields after the 27 leading counters that nvr-dp fills: policy rule counts, domains, rate-limited connections.</summary>
public readonly record struct DevicePolicyCounts(uint Type1Rules, uint Type2Rules, uint Domains, uint DomainIPs, ulong LimitDropConns, ulong LimitPassConns);

/// <summary>
/// One DPMsgConnect as nvr-dp sends it to the agent's socket: a workload's connections of one key (rule, client,
/// server, server port, protocol, direction) since the previous report, with the latest action. Addresses are 4 bytes
/// (IPv4) or 16; times are Unix seconds.
/// </summary>
public sealed record ConnectionReport(ulong EndpointMac, byte Protocol, ushort ServerPort, ushort ClientPort, bool IPv6, byte[] ClientIP, byte[] ServerIP,
    ushort Flags, uint Bytes, uint Sessions, uint FirstSeenAt, uint LastSeenAt, ushort Application, DpPolicyAction PolicyAction, byte Severity,
    uint PolicyId, uint Violates, uint ThreatId, uint EpSessCurIn, uint EpSessIn12, ulong EpByteIn12);

/// <summary>The binary replies and reports of NeuVector's agent that nvr-dp answers besides sessions: statistics, meters, connections.</summary>
public static class StatsReplies
{
    private const int HeaderSize = DpWire.HeaderSize;

    private static void Header(Span<byte> b, byte kind, bool more, int length)
    {
        b[0] = kind;
        b[1] = more ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], (ushort)length);
    }

    /// <summary>
    /// MAC_STATS or DEVICE_STATS: header + DPMsgStats, every field big-endian (NeuVector's dp leaves MAC_STATS' Interval
    /// in host order, a bug the agent reads as 83886080; nvr-dp sends 5 both times, docs/datapath.md).
    /// </summary>
    public static byte[] Stats(byte kind, TrafficStats s)
    {
        if (kind is not (MessageKind.MacStats or MessageKind.DeviceStats)) throw new ArgumentException($"kind {kind} is not a statistics reply");
        var b = new byte[HeaderSize + StatsLayout.Size];
        Header(b, kind, false, b.Length);
        var m = b.AsSpan(HeaderSize);
        BinaryPrimitives.WriteUInt32BigEndian(m[StatsLayout.Interval..], s.Interval);
        BinaryPrimitives.WriteUInt32BigEndian(m[StatsLayout.SessionIn..], s.SessionIn);
        BinaryPrimitives.WriteUInt32BigEndian(m[StatsLayout.SessionOut..], s.SessionOut);
        BinaryPrimitives.WriteUInt32BigEndian(m[StatsLayout.SessionCurIn..], s.SessionCurIn);
        BinaryPrimitives.WriteUInt32BigEndian(m[StatsLayout.SessionCurOut..], s.SessionCurOut);
        BinaryPrimitives.WriteUInt64BigEndian(m[StatsLayout.PacketIn..], s.PacketIn);
        BinaryPrimitives.WriteUInt64BigEndian(m[StatsLayout.PacketOut..], s.PacketOut);
        BinaryPrimitives.WriteUInt64BigEndian(m[StatsLayout.ByteIn..], s.ByteIn);
        BinaryPrimitives.WriteUInt64BigEndian(m[StatsLayout.ByteOut..], s.ByteOut);
        WriteWindow(m[StatsLayout.Window1..], s.Last);
        WriteWindow(m[StatsLayout.Window12..], s.Last12);
        WriteWindow(m[StatsLayout.Window60..], s.Last60);
        return b;
    }

    private static void WriteWindow(Span<byte> w, StatsWindow s)
    {
        BinaryPrimitives.WriteUInt32BigEndian(w[StatsLayout.WSessionIn..], s.SessionIn);
        BinaryPrimitives.WriteUInt32BigEndian(w[StatsLayout.WSessionOut..], s.SessionOut);
        BinaryPrimitives.WriteUInt64BigEndian(w[StatsLayout.WPacketIn..], s.PacketIn);
        BinaryPrimitives.WriteUInt64BigEndian(w[StatsLayout.WPacketOut..], s.PacketOut);
        BinaryPrimitives.WriteUInt64BigEndian(w[StatsLayout.WByteIn..], s.ByteIn);
        BinaryPrimitives.WriteUInt64BigEndian(w[StatsLayout.WByteOut..], s.ByteOut);
    }

    /// <summary>MAC_STATS' or DEVICE_STATS' reader (<paramref name="kind"/> says which is expected).</summary>
    public static TrafficStats ReadStats(ReadOnlySpan<byte> datagram, byte kind)
    {
        var (k, _) = Replies.Header(datagram);
        if (k != kind) throw new ReplyFormatException($"expected a statistics reply of kind {kind}, got kind {k}");
        if (datagram.Length != HeaderSize + StatsLayout.Size) throw new ReplyFormatException($"a statistics reply must be {HeaderSize + StatsLayout.Size} bytes, got {datagram.Length}");
        var m = datagram[HeaderSize..].ToArray();
        uint U32(int o) => BinaryPrimitives.ReadUInt32BigEndian(m.AsSpan(o));
        ulong U64(int o) => BinaryPrimitives.ReadUInt64BigEndian(m.AsSpan(o));
        StatsWindow Window(int o) => new(U32(o + StatsLayout.WSessionIn), U32(o + StatsLayout.WSessionOut), U64(o + StatsLayout.WPacketIn),
            U64(o + StatsLayout.WPacketOut), U64(o + StatsLayout.WByteIn), U64(o + StatsLayout.WByteOut));
        return new TrafficStats(U32(StatsLayout.Interval), U32(StatsLayout.SessionIn), U32(StatsLayout.SessionOut), U32(StatsLayout.SessionCurIn),
            U32(StatsLayout.SessionCurOut), U64(StatsLayout.PacketIn), U64(StatsLayout.PacketOut), U64(StatsLayout.ByteIn), U64(StatsLayout.ByteOut),
            Window(StatsLayout.Window1), Window(StatsLayout.Window12), Window(StatsLayout.Window60));
    }

    /// <summary>METER_LIST: datagrams of meters with More=1, then the terminator (More=0, Meters=0) — only the terminator when there are none.</summary>
    public static List<byte[]> MeterList(IReadOnlyList<MeterEntry> meters)
    {
        const int perMessage = (DpWire.MaxMessageSize - HeaderSize - 4) / MeterLayout.Size;
        var messages = new List<byte[]>();
        for (int start = 0; start < meters.Count; start += perMessage)
        {
            int count = Math.Min(perMessage, meters.Count - start);
            var b = new byte[HeaderSize + 4 + count * MeterLayout.Size];
            Header(b, MessageKind.MeterList, true, b.Length);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(HeaderSize), (ushort)count);
            for (int i = 0; i < count; i++)
            {
                var m = b.AsSpan(HeaderSize + 4 + i * MeterLayout.Size, MeterLayout.Size);
                var e = meters[start + i];
                WriteMac(m[MeterLayout.EndpointMac..], e.EndpointMac);
                BinaryPrimitives.WriteUInt16BigEndian(m[MeterLayout.Idle..], e.Idle);
                BinaryPrimitives.WriteUInt32BigEndian(m[MeterLayout.Count..], e.Count);
                BinaryPrimitives.WriteUInt32BigEndian(m[MeterLayout.LastCount..], e.LastCount);
                e.PeerIP.CopyTo(m[MeterLayout.PeerIP..]);
                m[MeterLayout.MeterId] = e.MeterId;
                m[MeterLayout.Flags] = e.Flags;
                m[MeterLayout.Span] = e.Span;
                BinaryPrimitives.WriteUInt32BigEndian(m[MeterLayout.UpperLimit..], e.UpperLimit);
                BinaryPrimitives.WriteUInt32BigEndian(m[MeterLayout.LowerLimit..], e.LowerLimit);
            }
            messages.Add(b);
        }
        var end = new byte[HeaderSize + 4];
        Header(end, MessageKind.MeterList, false, end.Length);
        messages.Add(end);
        return messages;
    }

    /// <summary>METER_LIST's reader, one datagram: its meters (peer addresses 16 bytes as sent), and whether more follow.</summary>
    public static List<MeterEntry> ReadMeterList(ReadOnlySpan<byte> datagram, out bool more)
    {
        var (kind, m) = Replies.Header(datagram);
        if (kind != MessageKind.MeterList) throw new ReplyFormatException($"expected a meter list reply (kind {MessageKind.MeterList}), got kind {kind}");
        if (datagram.Length < HeaderSize + 4) throw new ReplyFormatException("a meter list reply is shorter than its headers");
        int count = BinaryPrimitives.ReadUInt16BigEndian(datagram[HeaderSize..]);
        if (datagram.Length != HeaderSize + 4 + count * MeterLayout.Size)
            throw new ReplyFormatException($"a meter list reply with {count} meters must be {HeaderSize + 4 + count * MeterLayout.Size} bytes, got {datagram.Length}");
        more = m;
        var list = new List<MeterEntry>(count);
        for (int i = 0; i < count; i++)
        {
            var e = datagram.Slice(HeaderSize + 4 + i * MeterLayout.Size, MeterLayout.Size);
            list.Add(new MeterEntry(ReadMac(e[MeterLayout.EndpointMac..]), BinaryPrimitives.ReadUInt16BigEndian(e[MeterLayout.Idle..]),
                BinaryPrimitives.ReadUInt32BigEndian(e[MeterLayout.Count..]), BinaryPrimitives.ReadUInt32BigEndian(e[MeterLayout.LastCount..]),
                e.Slice(MeterLayout.PeerIP, 16).ToArray(), e[MeterLayout.MeterId], e[MeterLayout.Flags], e[MeterLayout.Span],
                BinaryPrimitives.ReadUInt32BigEndian(e[MeterLayout.UpperLimit..]), BinaryPrimitives.ReadUInt32BigEndian(e[MeterLayout.LowerLimit..])));
        }
        return list;
    }

    /// <summary>DEVICE_COUNTER: the 27 leading counters (<see cref="DeviceCounter"/> order) and the policy counts after the parser arrays (which stay 0).</summary>
    public static byte[] DeviceCounters(ReadOnlySpan<ulong> counters, DevicePolicyCounts policy)
    {
        var b = Replies.DeviceCounters(counters);
        var m = b.AsSpan(HeaderSize);
        BinaryPrimitives.WriteUInt32BigEndian(m[DeviceCounterLayout.PolicyType1Rules..], policy.Type1Rules);
        BinaryPrimitives.WriteUInt32BigEndian(m[DeviceCounterLayout.PolicyType2Rules..], policy.Type2Rules);
        BinaryPrimitives.WriteUInt32BigEndian(m[DeviceCounterLayout.PolicyDomains..], policy.Domains);
        BinaryPrimitives.WriteUInt32BigEndian(m[DeviceCounterLayout.PolicyDomainIPs..], policy.DomainIPs);
        BinaryPrimitives.WriteUInt64BigEndian(m[DeviceCounterLayout.LimitDropConns..], policy.LimitDropConns);
        BinaryPrimitives.WriteUInt64BigEndian(m[DeviceCounterLayout.LimitPassConns..], policy.LimitPassConns);
        return b;
    }

    /// <summary>DEVICE_COUNTER's reader for the policy counts (the leading counters: <see cref="Replies.ReadDeviceCounters"/>).</summary>
    public static DevicePolicyCounts ReadDevicePolicyCounts(ReadOnlySpan<byte> datagram)
    {
        Replies.ReadDeviceCounters(datagram); // checks kind and length
        var m = datagram[HeaderSize..];
        return new DevicePolicyCounts(BinaryPrimitives.ReadUInt32BigEndian(m[DeviceCounterLayout.PolicyType1Rules..]),
            BinaryPrimitives.ReadUInt32BigEndian(m[DeviceCounterLayout.PolicyType2Rules..]), BinaryPrimitives.ReadUInt32BigEndian(m[DeviceCounterLayout.PolicyDomains..]),
            BinaryPrimitives.ReadUInt32BigEndian(m[DeviceCounterLayout.PolicyDomainIPs..]), BinaryPrimitives.ReadUInt64BigEndian(m[DeviceCounterLayout.LimitDropConns..]),
            BinaryPrimitives.ReadUInt64BigEndian(m[DeviceCounterLayout.LimitPassConns..]));
    }

    /// <summary>CONNECTION: datagrams of up to 85 records, header More=1 on every one (as dp sends them; there is no terminator).</summary>
    public static List<byte[]> Connections(IReadOnlyList<ConnectionReport> reports)
    {
        var messages = new List<byte[]>();
        for (int start = 0; start < reports.Count; start += ConnectionLayout.PerMessage)
        {
            int count = Math.Min(ConnectionLayout.PerMessage, reports.Count - start);
            var b = new byte[HeaderSize + 4 + count * ConnectionLayout.Size];
            Header(b, MessageKind.Connection, true, b.Length);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(HeaderSize), (ushort)count);
            for (int i = 0; i < count; i++) WriteConnection(b.AsSpan(HeaderSize + 4 + i * ConnectionLayout.Size, ConnectionLayout.Size), reports[start + i]);
            messages.Add(b);
        }
        return messages;
    }

    private static void WriteConnection(Span<byte> c, ConnectionReport r)
    {
        WriteMac(c[ConnectionLayout.EndpointMac..], r.EndpointMac);
        c[ConnectionLayout.IPProto] = r.Protocol;
        BinaryPrimitives.WriteUInt16BigEndian(c[ConnectionLayout.ServerPort..], r.ServerPort);
        BinaryPrimitives.WriteUInt16BigEndian(c[ConnectionLayout.ClientPort..], r.ClientPort);
        r.ClientIP.CopyTo(c[ConnectionLayout.ClientIP..]); // IPv4 in the first 4 bytes, as dp copies it
        r.ServerIP.CopyTo(c[ConnectionLayout.ServerIP..]);
        BinaryPrimitives.WriteUInt16BigEndian(c[ConnectionLayout.EtherType..], r.IPv6 ? (ushort)0x86dd : (ushort)0x0800);
        BinaryPrimitives.WriteUInt16BigEndian(c[ConnectionLayout.Flags..], r.Flags);
        BinaryPrimitives.WriteUInt32BigEndian(c[ConnectionLayout.Bytes..], r.Bytes);
        BinaryPrimitives.WriteUInt32BigEndian(c[ConnectionLayout.Sessions..], r.Sessions);
        BinaryPrimitives.WriteUInt32BigEndian(c[ConnectionLayout.FirstSeenAt..], r.FirstSeenAt);
        BinaryPrimitives.WriteUInt32BigEndian(c[ConnectionLayout.LastSeenAt..], r.LastSeenAt);
        BinaryPrimitives.WriteUInt16BigEndian(c[ConnectionLayout.Application..], r.Application);
        c[ConnectionLayout.PolicyAction] = (byte)r.PolicyAction;
        c[ConnectionLayout.Severity] = r.Severity;
        BinaryPrimitives.WriteUInt32BigEndian(c[ConnectionLayout.PolicyId..], r.PolicyId);
        BinaryPrimitives.WriteUInt32BigEndian(c[ConnectionLayout.Violates..], r.Violates);
        BinaryPrimitives.WriteUInt32BigEndian(c[ConnectionLayout.ThreatId..], r.ThreatId);
        BinaryPrimitives.WriteUInt32BigEndian(c[ConnectionLayout.EpSessCurIn..], r.EpSessCurIn);
        BinaryPrimitives.WriteUInt32BigEndian(c[ConnectionLayout.EpSessIn12..], r.EpSessIn12);
        BinaryPrimitives.WriteUInt64BigEndian(c[ConnectionLayout.EpByteIn12..], r.EpByteIn12);
    }

    /// <summary>CONNECTION's reader, one datagram: its records (an action beyond Deny reads as Open).</summary>
    public static List<ConnectionReport> ReadConnections(ReadOnlySpan<byte> datagram)
    {
        var (kind, _) = Replies.Header(datagram);
        if (kind != MessageKind.Connection) throw new ReplyFormatException($"expected a connection report (kind {MessageKind.Connection}), got kind {kind}");
        if (datagram.Length < HeaderSize + 4) throw new ReplyFormatException("a connection report is shorter than its headers");
        int count = BinaryPrimitives.ReadUInt16BigEndian(datagram[HeaderSize..]);
        if (datagram.Length != HeaderSize + 4 + count * ConnectionLayout.Size)
            throw new ReplyFormatException($"a connection report with {count} records must be {HeaderSize + 4 + count * ConnectionLayout.Size} bytes, got {datagram.Length}");
        var list = new List<ConnectionReport>(count);
        for (int i = 0; i < count; i++)
        {
            var c = datagram.Slice(HeaderSize + 4 + i * ConnectionLayout.Size, ConnectionLayout.Size);
            ushort U16(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt16BigEndian(s[o..]);
            uint U32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt32BigEndian(s[o..]);
            bool v6 = U16(c, ConnectionLayout.EtherType) == 0x86dd;
            int ipLength = v6 ? 16 : 4;
            byte action = c[ConnectionLayout.PolicyAction];
            list.Add(new ConnectionReport(ReadMac(c[ConnectionLayout.EndpointMac..]), c[ConnectionLayout.IPProto], U16(c, ConnectionLayout.ServerPort),
                U16(c, ConnectionLayout.ClientPort), v6, c.Slice(ConnectionLayout.ClientIP, ipLength).ToArray(), c.Slice(ConnectionLayout.ServerIP, ipLength).ToArray(),
                U16(c, ConnectionLayout.Flags), U32(c, ConnectionLayout.Bytes), U32(c, ConnectionLayout.Sessions), U32(c, ConnectionLayout.FirstSeenAt),
                U32(c, ConnectionLayout.LastSeenAt), U16(c, ConnectionLayout.Application),
                action <= PolicyActions.Max ? (DpPolicyAction)action : DpPolicyAction.Open, c[ConnectionLayout.Severity],
                U32(c, ConnectionLayout.PolicyId), U32(c, ConnectionLayout.Violates), U32(c, ConnectionLayout.ThreatId),
                U32(c, ConnectionLayout.EpSessCurIn), U32(c, ConnectionLayout.EpSessIn12), BinaryPrimitives.ReadUInt64BigEndian(c[ConnectionLayout.EpByteIn12..])));
        }
        return list;
    }

    private static void WriteMac(Span<byte> b, ulong mac)
    {
        BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)(mac >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(b[2..], (uint)mac);
    }

    private static ulong ReadMac(ReadOnlySpan<byte> b) => (ulong)BinaryPrimitives.ReadUInt16BigEndian(b) << 32 | BinaryPrimitives.ReadUInt32BigEndian(b[2..]);
}
