namespace NvRedirect.Core.Protocol;

/// <summary>Sizes shared by every binary reply.</summary>
public static class DpWire
{
    /// <summary>DP_MSG_SIZE: no reply datagram is larger.</summary>
    public const int MaxMessageSize = 8192;
    /// <summary>sizeof(DPMsgHdr) {u8 Kind; u8 More; u16 Length (header included)} and sizeof(DPMsgSessionHdr) {u16 Sessions; u16 Reserved}.</summary>
    public const int HeaderSize = 4, SessionHeaderSize = 4;
    /// <summary>DPMsgSession records per SESSION_LIST datagram: (8192 - 4 - 4) / 140 = 58.</summary>
    public const int SessionsPerMessage = (MaxMessageSize - HeaderSize - SessionHeaderSize) / SessionLayout.Size;
    /// <summary>DPSESS_FLAG_* bits of DPMsgSession.Flags.</summary>
    public const ushort SessionFlagIngress = 0x0001, SessionFlagTap = 0x0002, SessionFlagMidStream = 0x0004;
    /// <summary>DPSESS_FLAG_TMP_OPEN: let through by the grace period for an address the agent has not named.</summary>
    public const ushort SessionFlagTmpOpen = 0x0100;
    /// <summary>Largest request datagram the daemon reads (NeuVector's receive buffer; the agent keeps requests under <see cref="Datagram.AgentMaxSize"/>).</summary>
    public const int MaxRequestSize = 8192;
    /// <summary>NeuVector's fixed command socket path.</summary>
    public const string DefaultControlSocket = "/tmp/dp_listen.sock";
}

/// <summary>
/// The byte layout of NeuVector's DPMsgSession (defs.h) as the C compiler lays it out on x86-64: natural alignment,
/// 140 bytes, every multi-byte field big-endian on the wire. One constant per field.
/// </summary>
public static class SessionLayout
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
public enum DeviceCounter
{
    RXPackets, RXDropPackets, TXPackets, TXDropPackets, ErrorPackets, NoWorkloadPackets, IPv4Packets, IPv6Packets,
    TCPPackets, TCPNoSessionPackets, UDPPackets, ICMPPackets, OtherPackets, Assemblys, FreedAssemblys, Fragments,
    FreedFragments, TimeoutFragments, TotalSessions, TCPSessions, UDPSessions, ICMPSessions, IPSessions, DropMeters,
    ProxyMeters, CurMeters, CurLogCaches,
}

/// <summary>Offsets in DPMsgDeviceCounter after the leading <see cref="DeviceCounter"/> block.</summary>
public static class DeviceCounterLayout
{
    public const int ParserSessions = 27 * 8, ParserPackets = ParserSessions + 20 * 8, PolicyType1Rules = ParserPackets + 20 * 8,
        PolicyType2Rules = PolicyType1Rules + 4, PolicyDomains = PolicyType2Rules + 4, PolicyDomainIPs = PolicyDomains + 4,
        LimitDropConns = PolicyDomainIPs + 4, LimitPassConns = LimitDropConns + 8;
    /// <summary>sizeof(DPMsgDeviceCounter) on x86-64.</summary>
    public const int Size = LimitPassConns + 8;
}

/// <summary>
/// NeuVector's DPMsgStats (defs.h), 176 bytes: Interval, padding, then totals (u32 sessions in/out, u32 current sessions
/// in/out, u64 packets and bytes in/out) and the same in/out sums for the last 5 s slot (1), 12 slots and 60 slots
/// (u32 sessions, u64 packets, u64 bytes). Big-endian except where <see cref="StatsReplies.Stats"/> says.
/// </summary>
public static class StatsLayout
{
    public const int Interval = 0, SessionIn = 8, SessionOut = 12, SessionCurIn = 16, SessionCurOut = 20,
        PacketIn = 24, PacketOut = 32, ByteIn = 40, ByteOut = 48;
    /// <summary>Where the window blocks start (last slot, 12 slots, 60 slots); each is u32 SessionIn, u32 SessionOut, u64 PacketIn, PacketOut, ByteIn, ByteOut.</summary>
    public const int Window1 = 56, Window12 = 96, Window60 = 136, WindowSize = 40;
    /// <summary>Offsets inside a window block.</summary>
    public const int WSessionIn = 0, WSessionOut = 4, WPacketIn = 8, WPacketOut = 16, WByteIn = 24, WByteOut = 32;
    /// <summary>sizeof(DPMsgStats).</summary>
    public const int Size = 176;
    /// <summary>STATS_INTERVAL: seconds per slot; STATS_SLOTS: slots kept.</summary>
    public const int SlotSeconds = 5, Slots = 60;
}

/// <summary>NeuVector's DPMsgMeter (defs.h), 44 bytes; METER_LIST datagrams carry DPMsgMeterHdr {u16 Meters; u16 Reserved} first.</summary>
public static class MeterLayout
{
    public const int EndpointMac = 0, Idle = 6, Count = 8, LastCount = 12, PeerIP = 16, MeterId = 32, Flags = 33, Span = 34,
        UpperLimit = 36, LowerLimit = 40;
    /// <summary>sizeof(DPMsgMeter).</summary>
    public const int Size = 44;
}

/// <summary>
/// NeuVector's DPMsgConnect (defs.h at the reference commit), 96 bytes, as dp sends it to the agent's socket in CONNECTION
/// datagrams: DPMsgConnectHdr {u16 Connects; u16 Reserved}, then up to 85 records, header More=1 always.
/// </summary>
public static class ConnectionLayout
{
    public const int EndpointMac = 0, IPProto = 6, Padding = 7, ServerPort = 8, ClientPort = 10, ClientIP = 12, ServerIP = 28,
        EtherType = 44, Flags = 46, Bytes = 48, Sessions = 52, FirstSeenAt = 56, LastSeenAt = 60, Application = 64,
        PolicyAction = 66, Severity = 67, PolicyId = 68, Violates = 72, ThreatId = 76, EpSessCurIn = 80, EpSessIn12 = 84, EpByteIn12 = 88;
    /// <summary>sizeof(DPMsgConnect).</summary>
    public const int Size = 96;
    /// <summary>Records per datagram: (8192 - 4 - 4) / 96 = 85.</summary>
    public const int PerMessage = (DpWire.MaxMessageSize - DpWire.HeaderSize - 4) / Size;
    /// <summary>DPCONN_FLAG_* bits.</summary>
    public const ushort FlagIngress = 0x0001, FlagExternal = 0x0002, FlagTmpOpen = 0x0040;
}
