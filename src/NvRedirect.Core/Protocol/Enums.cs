using System;
using System.Globalization;

namespace NvRedirect.Core.Protocol;

/// <summary>NeuVector's DP_POLICY_ACTION_* (defs.h): what a rule, or a policy's default, does to a session.</summary>
public enum DpPolicyAction : byte
{
    /// <summary>Allowed, not a rule hit (no policy, or not policed).</summary>
    Open = 0,
    /// <summary>Allowed and reported so a rule can be learned (Discover).</summary>
    Learn = 1,
    /// <summary>Allowed by a rule.</summary>
    Allow = 2,
    /// <summary>Allowed pending a virtual-host check (behaves as Allow in nvr-dp).</summary>
    CheckVh = 3,
    /// <summary>Allowed pending a namespace-boundary check (behaves as Allow in nvr-dp).</summary>
    CheckNbe = 4,
    /// <summary>Allowed pending application identification (behaves as Allow in nvr-dp).</summary>
    CheckApp = 5,
    /// <summary>Allowed and reported as a violation (Monitor).</summary>
    Violate = 6,
    /// <summary>Blocked (Protect).</summary>
    Deny = 7,
}

/// <summary>Which sessions a policy polices (its dir), or which way a rule or connection goes (DP_POLICY_APPLY_*).</summary>
[Flags]
public enum DpDirection : byte
{
    /// <summary>Sessions the workload opens (it is the client).</summary>
    Egress = 1,
    /// <summary>Sessions opened towards the workload (it is the server).</summary>
    Ingress = 2,
    /// <summary>Both ways (a policy's dir only).</summary>
    Both = 3,
}

/// <summary>Facts about policy actions both sides rely on.</summary>
public static class PolicyActions
{
    /// <summary>The largest action on the wire (Deny).</summary>
    public const byte Max = (byte)DpPolicyAction.Deny;

    /// <summary>A violation is reported (VIOLATE or DENY), as NeuVector's "action > CHECK_APP".</summary>
    public static bool IsViolation(DpPolicyAction action) => action > DpPolicyAction.CheckApp;

    /// <summary>The action's name in logs (open, learn, allow, check_vh, check_nbe, check_app, violate, deny).</summary>
    public static string Name(DpPolicyAction action) => action switch
    {
        DpPolicyAction.Open => "open", DpPolicyAction.Learn => "learn", DpPolicyAction.Allow => "allow",
        DpPolicyAction.CheckVh => "check_vh", DpPolicyAction.CheckNbe => "check_nbe", DpPolicyAction.CheckApp => "check_app",
        DpPolicyAction.Violate => "violate", DpPolicyAction.Deny => "deny",
        _ => ((byte)action).ToString(CultureInfo.InvariantCulture),
    };
}

/// <summary>TCP wing states, numbered as Linux's TCP_* (the values DPMsgSession carries).</summary>
public enum TcpState : byte
{
    None = 0, Established = 1, SynSent = 2, SynRecv = 3, FinWait1 = 4, FinWait2 = 5, TimeWait = 6,
    Close = 7, CloseWait = 8, LastAck = 9, Listen = 10, Closing = 11,
}

/// <summary>The one table of TCP state names.</summary>
public static class TcpStates
{
    /// <summary>A state's name as Linux names it (ESTABLISHED, SYN_SENT...), "" for none, the number when unknown.</summary>
    public static string Name(TcpState state) => state switch
    {
        TcpState.None => "",
        TcpState.Established => "ESTABLISHED", TcpState.SynSent => "SYN_SENT", TcpState.SynRecv => "SYN_RECV",
        TcpState.FinWait1 => "FIN_WAIT1", TcpState.FinWait2 => "FIN_WAIT2", TcpState.TimeWait => "TIME_WAIT",
        TcpState.Close => "CLOSE", TcpState.CloseWait => "CLOSE_WAIT", TcpState.LastAck => "LAST_ACK",
        TcpState.Listen => "LISTEN", TcpState.Closing => "CLOSING",
        _ => ((byte)state).ToString(CultureInfo.InvariantCulture),
    };
}

/// <summary>
/// The flag of a list sent in chunks (ctrl_cfg_internal_net, ctrl_cfg_policy, ctrl_cfg_policy_addr): START begins the
/// list, END finishes it (and makes it take effect), both on a list that fits in one datagram, neither in the middle.
/// </summary>
[Flags]
public enum ChunkFlags : uint
{
    /// <summary>A chunk between START and END.</summary>
    Middle = 0,
    /// <summary>The first chunk.</summary>
    Start = 1,
    /// <summary>The last chunk.</summary>
    End = 2,
    /// <summary>The whole list in one datagram.</summary>
    Whole = Start | End,
}

/// <summary>ctrl_cfg_policy's cmd: CFG_ADD, CFG_MODIFY, CFG_DELETE (NeuVector defs.h).</summary>
public enum PolicyCommand : uint
{
    /// <summary>A new policy.</summary>
    Add = 1,
    /// <summary>A policy replacing the one in force.</summary>
    Modify = 2,
    /// <summary>No policy any more (everything open).</summary>
    Delete = 3,
}

/// <summary>
/// DP_KIND_* values of the binary reply header (NeuVector defs.h), plus nvr-dp's extension kinds. The daemon writes
/// these messages and the module reads them, both with <see cref="Replies"/>.
/// </summary>
public static class MessageKind
{
    /// <summary>NeuVector kinds nvr-dp sends.</summary>
    public const byte SessionList = 2, SessionCount = 3, DeviceCounter = 4, MeterList = 5, Connection = 7, MacStats = 8, DeviceStats = 9,
        KeepAlive = 10;
    /// <summary>nvr-dp's extension: the reply to nvr_get_state, a UTF-8 JSON text split over datagrams (More=1 until the last).
    /// Far above NeuVector's kinds (1-13), so a NeuVector agent never mistakes it.</summary>
    public const byte State = 200;
    /// <summary>nvr-dp's extension: the reply to nvr_get_policy (the workloads' policies as JSON), chunked like <see cref="State"/>.</summary>
    public const byte Policy = 201;
    /// <summary>nvr-dp's extension: the reply to nvr_list_connection (the connections seen per workload as JSON), chunked like <see cref="State"/>.</summary>
    public const byte Connections = 202;
}

/// <summary>What a keep-alive on a control socket path found (see <see cref="KeepAliveProbe"/>).</summary>
public enum DpProbe
{
    /// <summary>A datapath answered.</summary>
    Answered,
    /// <summary>The path does not exist.</summary>
    Missing,
    /// <summary>The path exists but nothing is bound to it (what a killed daemon leaves).</summary>
    Stale,
    /// <summary>Something is bound to it but did not answer in time (or its queue is full).</summary>
    Silent,
}
