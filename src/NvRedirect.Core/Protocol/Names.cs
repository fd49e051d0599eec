namespace NvRedirect.Core.Protocol;

// Every name of the control protocol as it travels: the commands (the keys of a request object) and the keys of their
// arguments and of nvr-dp's JSON replies. This is the only file that spells them; writers and readers on both sides
// (the module's client and the daemon nvr-dp) use these constants (docs/datapath.md lists the messages).

/// <summary>The commands: the keys of a request object, run in order. ctrl_* are NeuVector's; nvr_* are nvr-dp's extensions.</summary>
public static class Command
{
    public const string KeepAlive = "ctrl_keep_alive";
    public const string AddServicePort = "ctrl_add_srvc_port", DeleteServicePort = "ctrl_del_srvc_port";
    public const string AddMac = "ctrl_add_mac", DeleteMac = "ctrl_del_mac", ConfigureMac = "ctrl_cfg_mac";
    public const string ConfigureInternalNet = "ctrl_cfg_internal_net";
    public const string CountSessions = "ctrl_count_session", ListSessions = "ctrl_list_session", ClearSession = "ctrl_clear_session";
    public const string DeviceCounters = "ctrl_counter_device";
    public const string SystemConfig = "ctrl_sys_conf", DisableNetPolicy = "ctrl_disable_net_policy",
        DetectUnmanagedWorkloads = "ctrl_detect_unmanaged_wl", EnableIcmpPolicy = "ctrl_enable_icmp_policy",
        StrictGroupMode = "ctrl_strict_group_mode";
    public const string SetDebug = "ctrl_set_debug";
    public const string ConfigurePolicy = "ctrl_cfg_policy", ConfigurePolicyAddresses = "ctrl_cfg_policy_addr";
    public const string GetState = "nvr_get_state", GetPolicy = "nvr_get_policy";
    public const string ListConnections = "nvr_list_connection", ClearConnections = "nvr_clear_connection";
    /// <summary>nvr-dp's switch between NeuVector dp's semantics (off) and the strict ones (docs/datapath.md, "Semantics").</summary>
    public const string ConfigureStrict = "nvr_cfg_strict";
    // the agent's other messages (docs/datapath.md, "Accepted without effect" and "Kept and reported")
    public const string AddTapPort = "ctrl_add_tap_port", DeleteTapPort = "ctrl_del_tap_port";
    public const string AddNfqPort = "ctrl_add_nfq_port", DeleteNfqPort = "ctrl_del_nfq_port";
    public const string AddPortPair = "ctrl_add_port_pair", DeletePortPair = "ctrl_del_port_pair";
    public const string ConfigureSpecialIpNet = "ctrl_cfg_specip_net", ConfigureNbe = "ctrl_cfg_nbe";
    public const string SetFqdn = "ctrl_cfg_set_fqdn", DeleteFqdn = "ctrl_cfg_del_fqdn";
    public const string RefreshApp = "ctrl_refresh_app";
    public const string ConfigureDlp = "ctrl_cfg_dlp", BuildDlp = "ctrl_bld_dlp", ConfigureDlpMac = "ctrl_cfg_dlpmac", BuildDlpMac = "ctrl_bld_dlpmac";
    // the agent's other queries
    public const string DeviceStats = "ctrl_stats_device", MacStats = "ctrl_stats_macs", ListMeters = "ctrl_list_meter";
}

/// <summary>The keys of command arguments and of nvr-dp's JSON replies (one constant per name; a name means the same wherever it appears).</summary>
public static class Key
{
    // arguments of NeuVector's commands
    public const string SequenceNumber = "seq_num", Interface = "iface", JumboFrame = "jumboframe";
    public const string Mac = "mac", UnicastMac = "ucmac", BroadcastMac = "bcmac", OldMac = "oldmac", ProxyMac = "pmac",
        ProxyAddresses = "pips", Macs = "macs", Tap = "tap";
    public const string Apps = "apps", Port = "port", IpProtocol = "ip_proto", App = "app", Server = "server";
    public const string Flag = "flag", Subnets = "subnet_addr", Ip = "ip", Mask = "mask", IpType = "iptype";
    public const string FilterId = "filter_id", Categories = "categories";
    public const string XffEnabled = "xff_enabled", DisableNetPolicy = "disable_net_policy", DetectUnmanagedWorkloads = "detect_unmanaged_wl",
        EnableIcmpPolicy = "enable_icmp_policy", StrictGroupMode = "strict_group_mode";
    /// <summary>nvr_cfg_strict's value, and nvr_get_state's.</summary>
    public const string Strict = "strict";
    public const string PolicyCommand = "cmd", DefaultAction = "defact", Direction = "dir", Rules = "rules";
    public const string Id = "id", SourceIp = "sip", SourceIpTo = "sipr", DestinationIp = "dip", DestinationIpTo = "dipr",
        PortTo = "portr", Protocol = "proto", Action = "action", Ingress = "ingress", Fqdn = "fqdn", VirtualHost = "vhost", RuleId = "rid";
    public const string NetNs = "netns", EndpointMac = "epmac", QueueNumber = "qnum", VexInterface = "vex_iface", VinInterface = "vin_iface",
        Quarantine = "quar", Nbe = "nbe", FqdnName = "fqdn_name", FqdnIps = "fqdn_ips", Names = "names";
    public const string DeleteMacs = "delmac", AddMacs = "addmac";
    // nvr-dp's extension of ctrl_cfg_policy
    public const string ExpectVersion = "nvr_expect_version";

    // nvr_get_policy's reply
    public const string Policies = "policies", Version = "version";
    // nvr_list_connection's reply
    public const string Connections = "connections", Client = "client", ServerPort = "server_port", ConnectionRuleId = "rule_id",
        Sessions = "sessions", Packets = "packets", Bytes = "bytes", Dropped = "dropped", FirstSeen = "first_seen", LastSeen = "last_seen",
        Capacity = "capacity", Evicted = "evicted", Answered = "answered", Scan = "scan", Attempts = "attempts";
    // nvr_get_state's reply
    public const string Daemon = "daemon", Pid = "pid", Namespace = "netns", Socket = "socket", Log = "log",
        SessionCapacity = "sessions_capacity", Started = "started", Supervised = "supervised", Restarts = "restarts", LastExit = "last_exit",
        StateFile = "state_file", StateProblem = "state_problem";
    public const string ServicePort = "service_port", Workloads = "workloads", PacketsIn = "packets_in", PacketsOut = "packets_out",
        BytesIn = "bytes_in", BytesOut = "bytes_out", SessionsIn = "sessions_in", SessionsOut = "sessions_out", Policy = "policy";
    public const string InternalNets = "internal_nets", InternalNetsPending = "internal_nets_pending", Debug = "debug",
        PolicyAddresses = "policy_addr", PolicyPending = "policy_pending";
    public const string PolicyCounters = "policy_counters", DeniedPackets = "denied_packets", DeniedSessions = "denied_sessions",
        BlockedSessions = "blocked_sessions", ResetsSent = "resets_sent", Reevaluations = "reevaluations", GraceOpened = "grace_opened";
    public const string Tables = "tables", Count = "count", Learned = "learned", Scans = "scans", LearnedEvicted = "learned_evicted",
        Summarised = "summarised";
    public const string Requests = "requests", Accepted = "accepted", Rejected = "rejected", LastRejection = "last_rejection",
        YourLastRequest = "your_last_request", Error = "error";
    public const string SpecialNets = "special_nets", Fqdns = "fqdns", NbeMacs = "nbe_macs", TapPorts = "tap_ports", NoEffect = "no_effect",
        Reports = "reports", Listening = "listening", Datagrams = "datagrams", Records = "records", Failures = "failures",
        LastFailure = "last_failure";
}

/// <summary>ctrl_set_debug's category names (NeuVector's).</summary>
public static class DebugCategory
{
    /// <summary>Every category NeuVector knows.</summary>
    public static readonly string[] Names =
        ["none", "all", "int", "error", "ctrl", "packet", "session", "timer", "tcp", "parser", "log", "ddos", "policy", "dlp"];
}
