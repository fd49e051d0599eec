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
