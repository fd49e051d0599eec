using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Protocol;

namespace NvRedirect.Core.Datapath;

/// <summary>A running datapath daemon (nvr-dp) as it describes itself: identity, configuration and counters.</summary>
public sealed class DatapathInfo
{
    /// <summary>The daemon's process id.</summary>
    public int Pid { get; init; }
    /// <summary>The network namespace its service ports live in ("" = the namespace it runs in).</summary>
    public string Namespace { get; init; } = "";
    /// <summary>The control socket it serves (binds to the -ControlSocket parameter of every datapath cmdlet).</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>Its log file, when it logs to one.</summary>
    public string? LogPath { get; init; }
    /// <summary>nvr-dp's version.</summary>
    public string Version { get; init; } = "";
    /// <summary>When it started serving (UTC).</summary>
    public DateTime StartTime { get; init; }
    /// <summary>Size of its preallocated session table.</summary>
    public int SessionCapacity { get; init; }
    /// <summary>Whether a supervisor (Start-Datapath's default) restarts it when it dies.</summary>
    public bool Supervised { get; init; }
    /// <summary>How often the supervisor restarted it after it died.</summary>
    public int Restarts { get; init; }
    /// <summary>Why the last one died (exit code or signal, when, and its last error), null when none did.</summary>
    public string? LastExit { get; init; }
    /// <summary>Where it keeps its configuration across restarts.</summary>
    public string? StateFile { get; init; }
    /// <summary>Why the configuration saved before it started was refused (and set aside), null when it was restored or there was none.</summary>
    public string? StateProblem { get; init; }
    /// <summary>The interfaces it reads frames from (NeuVector's agent adds one: vth).</summary>
    public string[] ServicePorts { get; init; } = [];
    /// <summary>The registered workloads.</summary>
    public DpWorkload[] Workloads { get; init; } = [];
    /// <summary>The internal subnets in force, as ADDRESS/PREFIX (or ADDRESS/MASK for a mask that is no prefix), " devip" marking device addresses.</summary>
    public string[] InternalNetworks { get; init; } = [];
    /// <summary>Entries of an internal-network list that was started (flag 1) but not finished yet; null when none.</summary>
    public int? InternalNetworksPending { get; init; }
    /// <summary>The policy address map (ctrl_cfg_policy_addr): addresses of workloads whose policy was pushed.</summary>
    public string[] PolicyAddresses { get; init; } = [];
    /// <summary>A chunked policy that was started (flag 1) but not finished yet, as "N rules for MAC, ..."; null when none.</summary>
    public string? PolicyPending { get; init; }
    /// <summary>Packets withheld by policy since the daemon started.</summary>
    public long DeniedPackets { get; init; }
    /// <summary>New sessions refused by policy (each retransmission counts again).</summary>
    public long DeniedSessions { get; init; }
    /// <summary>Sessions blocked after a policy change denied them.</summary>
    public long BlockedSessions { get; init; }
    /// <summary>TCP sessions reset (a RST written to each end).</summary>
    public long ResetsSent { get; init; }
    /// <summary>Sessions decided again because their workload's policy or the policy settings changed since they were decided.</summary>
    public long Reevaluations { get; init; }
    /// <summary>The global switches: ctrl_sys_conf, ctrl_disable_net_policy, ctrl_detect_unmanaged_wl, ctrl_enable_icmp_policy, ctrl_strict_group_mode.</summary>
    public bool XffEnabled { get; init; }
    /// <summary>See <see cref="XffEnabled"/>.</summary>
    public bool DisableNetPolicy { get; init; }
    /// <summary>See <see cref="XffEnabled"/>.</summary>
    public bool DetectUnmanagedWorkloads { get; init; }
    /// <summary>See <see cref="XffEnabled"/>.</summary>
    public bool EnableIcmpPolicy { get; init; }
    /// <summary>See <see cref="XffEnabled"/>.</summary>
    public bool StrictGroupMode { get; init; }
    /// <summary>nvr-dp's semantics: strict (Start-Datapath's default: no grace period, inbound UDP decided as sent) or
    /// NeuVector dp's (-AgentCompatible, or a daemon started by hand).</summary>
    public bool Strict { get; init; }
    /// <summary>Decisions the unknown-address grace period let through (NeuVector dp's semantics only).</summary>
    public long GraceOpened { get; init; }
    /// <summary>ctrl_set_debug categories.</summary>
    public string[] DebugCategories { get; init; } = [];
    /// <summary>Control requests applied and rejected since it started.</summary>
    public long RequestsAccepted { get; init; }
    /// <summary>See <see cref="RequestsAccepted"/>.</summary>
    public long RequestsRejected { get; init; }
    /// <summary>Why the last rejected request was rejected.</summary>
    public string? LastRejection { get; init; }
    /// <summary>How full the session and connection tables are, what they evicted and what they summarised.</summary>
    public DpTable[] Tables { get; init; } = [];
    /// <summary>Current sessions (ctrl_count_session); null when not asked.</summary>
    public DpSessionCount? Sessions { get; init; }
    /// <summary>Device counters (ctrl_counter_device); null when not asked.</summary>
    public DpDeviceCounters? Counters { get; init; }

    /// <summary>The same object with sessions and counters filled in.</summary>
    public DatapathInfo With(DpSessionCount? sessions, DpDeviceCounters? counters) => new()
    {
        Pid = Pid, Namespace = Namespace, ControlSocket = ControlSocket, LogPath = LogPath, Version = Version, StartTime = StartTime,
        SessionCapacity = SessionCapacity, Supervised = Supervised, Restarts = Restarts, LastExit = LastExit, StateFile = StateFile, StateProblem = StateProblem,
        ServicePorts = ServicePorts, Workloads = Workloads, InternalNetworks = InternalNetworks,
        InternalNetworksPending = InternalNetworksPending, PolicyAddresses = PolicyAddresses, PolicyPending = PolicyPending,
        DeniedPackets = DeniedPackets, DeniedSessions = DeniedSessions, BlockedSessions = BlockedSessions, ResetsSent = ResetsSent, Reevaluations = Reevaluations, XffEnabled = XffEnabled, DisableNetPolicy = DisableNetPolicy,
        DetectUnmanagedWorkloads = DetectUnmanagedWorkloads, EnableIcmpPolicy = EnableIcmpPolicy, StrictGroupMode = StrictGroupMode,
        Strict = Strict, GraceOpened = GraceOpened, DebugCategories = DebugCategories, RequestsAccepted = RequestsAccepted, RequestsRejected = RequestsRejected,
        LastRejection = LastRejection, Tables = Tables, Sessions = sessions ?? Sessions, Counters = counters ?? Counters,
    };

    /// <summary>The workload registered under <paramref name="mac"/> as its MAC or one of its aliases.</summary>
    public DpWorkload? FindWorkload(string mac) => Workloads.FirstOrDefault(w => w.Mac == mac)
        ?? Workloads.FirstOrDefault(w => w.UcMac == mac || w.BcMac == mac);

    /// <inheritdoc/>
    public override string ToString() => ControlSocket;
}

/// <summary>
/// One of the daemon's preallocated tables (sessions, connections): how full it is, what it evicted to make room, and
/// what it kept only as a summary. A full table never drops a packet: it evicts (never-answered entries first) or
/// summarises (a client's scan folds into one connection entry).
/// </summary>
public sealed class DpTable
{
    /// <summary>"Sessions" or "Connections".</summary>
    public string Name { get; init; } = "";
    /// <summary>Most entries it holds.</summary>
    public long Capacity { get; init; }
    /// <summary>Entries held now.</summary>
    public long Count { get; init; }
    /// <summary>How full it is, in percent.</summary>
    public double FillPercent => Capacity == 0 ? 0 : Math.Round(100.0 * Count / Capacity, 1);
    /// <summary>Connections: entries whose server answered (learned; evicted only by other learned entries). Sessions: 0.</summary>
    public long Learned { get; init; }
    /// <summary>Connections: scan summaries held now (one per scanning client, protocol and verdict). Sessions: 0.</summary>
    public long Scans { get; init; }
    /// <summary>Entries evicted to make room since the daemon started.</summary>
    public long Evicted { get; init; }
    /// <summary>Of <see cref="Evicted"/>: connections that were learned, or sessions that were live (past the TCP
    /// handshake, UDP, ICMP); non-zero means the table is too small for what is genuinely going on.</summary>
    public long LearnedEvicted { get; init; }
    /// <summary>Connections: attempts folded into scan summaries instead of getting entries of their own (the table's
    /// drops: they are counted, not kept one by one). Sessions: 0.</summary>
    public long Summarised { get; init; }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {Count}/{Capacity}";
}

/// <summary>A workload registered with the datapath (ctrl_add_mac), with its tap switch and traffic counters.</summary>
public sealed class DpWorkload
{
    /// <summary>The datapath's control socket (binds to -ControlSocket down the pipeline).</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>The workload's real MAC.</summary>
    public string Mac { get; init; } = "";
    /// <summary>The unicast alias frames carry towards the datapath ("NeuV" prefix), or null.</summary>
    public string? UcMac { get; init; }
    /// <summary>The broadcast alias, or null.</summary>
    public string? BcMac { get; init; }
    /// <summary>The proxy-mesh MAC (pmac), or null.</summary>
    public string? ProxyMac { get; init; }
    /// <summary>Proxy-mesh addresses (pips).</summary>
    public string[] ProxyAddresses { get; init; } = [];
    /// <summary>The service port named when it was added (iface).</summary>
    public string Interface { get; init; } = "";
    /// <summary>Tap mode: frames are inspected and counted but never sent on (a new workload starts tapped). False = inline.</summary>
    public bool Tap { get; init; }
    /// <summary>Application ports (ctrl_cfg_mac apps) as PORT/PROTOCOL app=A server=S.</summary>
    public string[] Apps { get; init; } = [];
    /// <summary>Frames and bytes towards (In) and from (Out) the workload that the datapath saw.</summary>
    public long PacketsIn { get; init; }
    /// <summary>See <see cref="PacketsIn"/>.</summary>
    public long PacketsOut { get; init; }
    /// <summary>See <see cref="PacketsIn"/>.</summary>
    public long BytesIn { get; init; }
    /// <summary>See <see cref="PacketsIn"/>.</summary>
    public long BytesOut { get; init; }
    /// <summary>Sessions created towards (In) and from (Out) the workload.</summary>
    public long SessionsIn { get; init; }
    /// <summary>See <see cref="SessionsIn"/>.</summary>
    public long SessionsOut { get; init; }
    /// <summary>Same as <see cref="Mac"/>: lets a workload bind where a workload MAC is expected.</summary>
    public string WorkloadMac => Mac;
    /// <summary>The mode its policy's default action stands for (None without a policy).</summary>
    public DpWorkloadMode Mode => DpPolicy.ModeOf(DefaultAction);
    /// <summary>Its policy's default action; null without a policy.</summary>
    public DpPolicyAction? DefaultAction { get; init; }
    /// <summary>Which sessions its policy polices; null without a policy.</summary>
    public DpDirection? PolicyDirection { get; init; }
    /// <summary>Its policy's version (0 without a policy).</summary>
    public uint PolicyVersion { get; init; }
    /// <summary>How many rules its policy has.</summary>
    public int RuleCount { get; init; }

    /// <inheritdoc/>
    public override string ToString() => Mac;
}

/// <summary>Current sessions by protocol (ctrl_count_session, DPMsgSessionCount).</summary>
public sealed class DpSessionCount
{
    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>All sessions.</summary>
    public uint Total { get; init; }
    /// <summary>TCP sessions.</summary>
    public uint Tcp { get; init; }
    /// <summary>UDP sessions.</summary>
    public uint Udp { get; init; }
    /// <summary>ICMP and ICMPv6 sessions.</summary>
    public uint Icmp { get; init; }
    /// <summary>Sessions of any other IP protocol.</summary>
    public uint Other { get; init; }
    /// <inheritdoc/>
    public override string ToString() => Total.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>The datapath's device counters (ctrl_counter_device, DPMsgDeviceCounter), named as NeuVector names them.</summary>
public sealed class DpDeviceCounters
{
    private readonly ulong[] _values;

    /// <summary>Wraps the counters in <see cref="DeviceCounter"/> order, and the policy counts that follow them.</summary>
    public DpDeviceCounters(string controlSocket, ulong[] values, DevicePolicyCounts policy = default)
    {
        ControlSocket = controlSocket;
        _values = values;
        _policy = policy;
    }

    private readonly DevicePolicyCounts _policy;

    private ulong At(DeviceCounter c) => (int)c < _values.Length ? _values[(int)c] : 0;

    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; }
    /// <summary>Frames read from the service port's ring.</summary>
    public ulong RXPackets => At(DeviceCounter.RXPackets);
    /// <summary>Frames the kernel dropped before the ring, plus big frames that could not be read whole.</summary>
    public ulong RXDropPackets => At(DeviceCounter.RXDropPackets);
    /// <summary>Frames written back.</summary>
    public ulong TXPackets => At(DeviceCounter.TXPackets);
    /// <summary>Frames that could not be written back.</summary>
    public ulong TXDropPackets => At(DeviceCounter.TXDropPackets);
    /// <summary>Malformed frames.</summary>
    public ulong ErrorPackets => At(DeviceCounter.ErrorPackets);
    /// <summary>Frames of no registered workload.</summary>
    public ulong NoWorkloadPackets => At(DeviceCounter.NoWorkloadPackets);
    /// <summary>IPv4 frames.</summary>
    public ulong IPv4Packets => At(DeviceCounter.IPv4Packets);
    /// <summary>IPv6 frames.</summary>
    public ulong IPv6Packets => At(DeviceCounter.IPv6Packets);
    /// <summary>TCP frames.</summary>
    public ulong TCPPackets => At(DeviceCounter.TCPPackets);
    /// <summary>TCP frames that belonged to no session and opened none.</summary>
    public ulong TCPNoSessionPackets => At(DeviceCounter.TCPNoSessionPackets);
    /// <summary>UDP frames.</summary>
    public ulong UDPPackets => At(DeviceCounter.UDPPackets);
    /// <summary>ICMP frames.</summary>
    public ulong ICMPPackets => At(DeviceCounter.ICMPPackets);
    /// <summary>Frames of other IP protocols.</summary>
    public ulong OtherPackets => At(DeviceCounter.OtherPackets);
    /// <summary>TCP reassemblies (none in nvr-dp).</summary>
    public ulong Assemblys => At(DeviceCounter.Assemblys);
    /// <summary>Freed reassemblies.</summary>
    public ulong FreedAssemblys => At(DeviceCounter.FreedAssemblys);
    /// <summary>IP fragments.</summary>
    public ulong Fragments => At(DeviceCounter.Fragments);
    /// <summary>Freed fragments.</summary>
    public ulong FreedFragments => At(DeviceCounter.FreedFragments);
    /// <summary>Fragments that timed out.</summary>
    public ulong TimeoutFragments => At(DeviceCounter.TimeoutFragments);
    /// <summary>Sessions created.</summary>
    public ulong TotalSessions => At(DeviceCounter.TotalSessions);
    /// <summary>TCP sessions created.</summary>
    public ulong TCPSessions => At(DeviceCounter.TCPSessions);
    /// <summary>UDP sessions created.</summary>
    public ulong UDPSessions => At(DeviceCounter.UDPSessions);
    /// <summary>ICMP sessions created.</summary>
    public ulong ICMPSessions => At(DeviceCounter.ICMPSessions);
    /// <summary>Sessions of other IP protocols created.</summary>
    public ulong IPSessions => At(DeviceCounter.IPSessions);
    /// <summary>Meter drops (none in nvr-dp).</summary>
    public ulong DropMeters => At(DeviceCounter.DropMeters);
    /// <summary>Proxy meters.</summary>
    public ulong ProxyMeters => At(DeviceCounter.ProxyMeters);
    /// <summary>Current meters.</summary>
    public ulong CurMeters => At(DeviceCounter.CurMeters);
    /// <summary>Current log caches.</summary>
    public ulong CurLogCaches => At(DeviceCounter.CurLogCaches);
    /// <summary>Policy rules in force: single-address ones (dp's type 1) and ranges (type 2).</summary>
    public uint PolicyType1Rules => _policy.Type1Rules;
    /// <summary>See <see cref="PolicyType1Rules"/>.</summary>
    public uint PolicyType2Rules => _policy.Type2Rules;
    /// <summary>FQDN names the agent set, and their addresses.</summary>
    public uint PolicyDomains => _policy.Domains;
    /// <summary>See <see cref="PolicyDomains"/>.</summary>
    public uint PolicyDomainIPs => _policy.DomainIPs;
    /// <summary>Connections dropped and passed by rate limits (none in nvr-dp).</summary>
    public ulong LimitDropConns => _policy.LimitDropConns;
    /// <summary>See <see cref="LimitDropConns"/>.</summary>
    public ulong LimitPassConns => _policy.LimitPassConns;
}

/// <summary>One session of the datapath's table (ctrl_list_session, DPMsgSession).</summary>
public sealed class DpSession
{
    /// <summary>The datapath's control socket (binds to Clear-DpSession's -ControlSocket).</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>Session id (Clear-DpSession -Id).</summary>
    public uint Id { get; init; }
    /// <summary>The workload the session belongs to.</summary>
    public string EndpointMac { get; init; } = "";
    /// <summary>IPv4 or IPv6.</summary>
    public string Family { get; init; } = "";
    /// <summary>TCP, UDP, ICMP, ICMPv6, or the protocol number.</summary>
    public string Protocol { get; init; } = "";
    /// <summary>The IP protocol number.</summary>
    public byte ProtocolNumber { get; init; }
    /// <summary>The side that opened the session.</summary>
    public string ClientAddress { get; init; } = "";
    /// <summary>Client port (the echo identifier for ICMP echo).</summary>
    public ushort ClientPort { get; init; }
    /// <summary>The side the session was opened towards.</summary>
    public string ServerAddress { get; init; } = "";
    /// <summary>Server port.</summary>
    public ushort ServerPort { get; init; }
    /// <summary>Client as ADDRESS:PORT ([ADDRESS]:PORT for IPv6).</summary>
    public string Client => Endpoint(ClientAddress, ClientPort);
    /// <summary>Server as ADDRESS:PORT.</summary>
    public string Server => Endpoint(ServerAddress, ServerPort);
    /// <summary>Client and server MACs.</summary>
    public string ClientMac { get; init; } = "";
    /// <summary>See <see cref="ClientMac"/>.</summary>
    public string ServerMac { get; init; } = "";
    /// <summary>ICMP type and code of the session's first packet (ICMP only).</summary>
    public byte? IcmpType { get; init; }
    /// <summary>See <see cref="IcmpType"/>.</summary>
    public byte? IcmpCode { get; init; }
    /// <summary>Packets and bytes sent by the client and by the server.</summary>
    public uint ClientPackets { get; init; }
    /// <summary>See <see cref="ClientPackets"/>.</summary>
    public uint ServerPackets { get; init; }
    /// <summary>See <see cref="ClientPackets"/>.</summary>
    public uint ClientBytes { get; init; }
    /// <summary>See <see cref="ClientPackets"/>.</summary>
    public uint ServerBytes { get; init; }
    /// <summary>TCP state of each side, named as Linux names them (ESTABLISHED, SYN_SENT...); empty for other protocols.</summary>
    public string ClientState { get; init; } = "";
    /// <summary>See <see cref="ClientState"/>.</summary>
    public string ServerState { get; init; } = "";
    /// <summary>Seconds since the last packet, since the session started, and until it expires.</summary>
    public ushort IdleSeconds { get; init; }
    /// <summary>See <see cref="IdleSeconds"/>.</summary>
    public uint AgeSeconds { get; init; }
    /// <summary>See <see cref="IdleSeconds"/>.</summary>
    public ushort LifeSeconds { get; init; }
    /// <summary>The session was opened towards the workload.</summary>
    public bool Ingress { get; init; }
    /// <summary>The workload was in tap mode when the session started.</summary>
    public bool Tap { get; init; }
    /// <summary>Picked up mid-stream (no handshake seen).</summary>
    public bool MidStream { get; init; }
    /// <summary>Let through by the grace period for an address the agent has not named yet (NeuVector dp's TMP_OPEN; dp's semantics only).</summary>
    public bool Grace { get; init; }
    /// <summary>The policy rule that decided the session (0 = the default action, or no policy).</summary>
    public uint PolicyId { get; init; }
    /// <summary>The policy verdict of the session (Open when the workload has no policy).</summary>
    public DpPolicyAction PolicyAction { get; init; }

    private static string Endpoint(string address, ushort port) => address.Contains(':') ? $"[{address}]:{port}" : $"{address}:{port}";

    /// <summary>TCP state names by Linux's TCP_* numbers, as DPMsgSession carries them (the protocol's one table).</summary>
    public static string TcpStateName(byte state) => TcpStates.Name((TcpState)state);

    /// <inheritdoc/>
    public override string ToString() => $"{Id} {Protocol} {Client} -> {Server}";
}

/// <summary>A keep-alive answer (KEEP_ALIVE): the sequence number of the request it answers.</summary>
public sealed class DpKeepAlive
{
    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>The request's seq_num.</summary>
    public uint Sequence { get; init; }
}

/// <summary>A reply datagram of a kind this module does not decode, as bytes.</summary>
public sealed class DpReply
{
    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>DPMsgHdr.Kind.</summary>
    public byte Kind { get; init; }
    /// <summary>DPMsgHdr.More: another datagram of the same reply follows.</summary>
    public bool More { get; init; }
    /// <summary>The datagram's length.</summary>
    public int Length => Bytes.Length;
    /// <summary>The whole datagram, header included.</summary>
    public byte[] Bytes { get; init; } = [];
    /// <summary>The datagram as hex.</summary>
    public string Hex => Convert.ToHexString(Bytes).ToLowerInvariant();
}

/// <summary>The outcome of one request: the replies it produced, whether nvr-dp applied it, and the state afterwards.</summary>
public sealed class DpExchange
{
    /// <summary>Reply datagrams the request produced, in order.</summary>
    public IReadOnlyList<byte[]> Replies { get; init; } = [];
    /// <summary>Whether the datapath applied the request; null when it does not say (not nvr-dp).</summary>
    public bool? Accepted { get; init; }
    /// <summary>Why it was not applied (or what failed while applying it).</summary>
    public string? Error { get; init; }
    /// <summary>The datapath's state right after the request; null when it does not report one.</summary>
    public DatapathInfo? State { get; init; }
}
