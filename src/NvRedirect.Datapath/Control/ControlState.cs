using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath.Engine;

namespace NvRedirect.Datapath.Control;

/// <summary>A ctrl_cfg_policy list between its START and END chunks.</summary>
internal sealed class PendingPolicy
{
    public required PolicyCommand Command;
    public required DpPolicyAction DefaultAction;
    public required DpDirection Direction;
    public required ulong[] Macs;
    public List<PolicyRule> Rules { get; init; } = [];
    /// <summary>The client that sent the START (null: unbound); only it may continue the policy.</summary>
    public string? Sender { get; init; }
    /// <summary>nvr_expect_version: the policy version (0 = none) the change was made from; checked at END.</summary>
    public uint? ExpectedVersion { get; init; }
    public PendingPolicy Clone() => new()
    {
        Command = Command, DefaultAction = DefaultAction, Direction = Direction, Macs = Macs, Rules = [.. Rules], Sender = Sender,
        ExpectedVersion = ExpectedVersion,
    };
}

/// <summary>
/// Everything the control protocol configures, as plain data. A request is applied to a copy; only when every
/// command of the datagram validated does the copy replace this and get published to the packet thread.
/// </summary>
internal sealed class ControlState
{
    /// <summary>Workloads by real MAC.</summary>
    public Dictionary<ulong, Workload> Workloads { get; private init; } = [];
    /// <summary>Tap switch per workload (real MAC); written to <see cref="WorkloadState.Tap"/> on commit.</summary>
    public Dictionary<ulong, bool> Tap { get; private init; } = [];
    /// <summary>The internal subnets in force.</summary>
    public InternalSubnet[] InternalNets { get; set; } = [];
    /// <summary>Chunks received since a START and not yet closed by an END.</summary>
    public List<InternalSubnet>? PendingInternalNets { get; set; }
    /// <summary>The global toggles. DisableNetPolicy, EnableIcmpPolicy and StrictGroupMode steer policy; the others are
    /// kept and reported. ICMP is policed only once switched on (NeuVector's default; the agent sends the toggle, and
    /// nvr-dp --strict starts with it on).</summary>
    public bool XffEnabled { get; set; }
    public bool DisableNetPolicy { get; set; }
    public bool DetectUnmanagedWorkloads { get; set; }
    public bool EnableIcmpPolicy { get; set; }
    public bool StrictGroupMode { get; set; }
    /// <summary>nvr_cfg_strict (--strict at start): no grace period for unknown peers, inbound UDP decided as sent. Off:
    /// NeuVector dp's semantics (docs/datapath.md, "Semantics: NeuVector's dp or strict").</summary>
    public bool Strict { get; set; }
    /// <summary>The last policy version handed out (every ADD/MODIFY/DELETE takes the next).</summary>
    public uint PolicyVersion { get; set; }
    /// <summary>A chunked ctrl_cfg_policy in progress (START seen, END not yet).</summary>
    public PendingPolicy? PendingPolicy { get; set; }
    /// <summary>ctrl_cfg_policy_addr: the addresses whose policy the agent pushed (an address outside them gets dp's grace period unless strict).</summary>
    public uint[] PolicyAddresses { get; set; } = [];
    public List<uint>? PendingPolicyAddresses { get; set; }
    /// <summary>Generation of the settings policy decisions depend on (toggles, internal nets); bumped when they change.</summary>
    public uint SettingsGeneration { get; set; }
    /// <summary>Whether those settings changed in this request (a new table must be published).</summary>
    public bool SettingsChanged { get; set; }
    /// <summary>ctrl_set_debug categories.</summary>
    public string[] DebugCategories { get; set; } = [];
    /// <summary>The service port's interface, when one is open.</summary>
    public string? ServicePort { get; set; }
    /// <summary>Whether the service port was opened for jumbo frames.</summary>
    public bool ServicePortJumbo { get; set; }
    /// <summary>Whether a workload was added, changed or removed (a new table must be published).</summary>
    public bool WorkloadsChanged { get; set; }
    /// <summary>ctrl_cfg_specip_net: the special IP networks in force (kept and reported; no policy decision uses them yet).</summary>
    public InternalSubnet[] SpecialNets { get; set; } = [];
    public List<InternalSubnet>? PendingSpecialNets { get; set; }
    /// <summary>ctrl_cfg_set_fqdn: names and the addresses they stand for (kept and reported), by name without case.</summary>
    public Dictionary<string, FqdnEntry> Fqdns { get; private init; } = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>ctrl_cfg_nbe: the workloads (real MACs) whose namespace-boundary enforcement is on (kept and reported).</summary>
    public HashSet<ulong> NbeMacs { get; private init; } = [];
    /// <summary>ctrl_add_tap_port: the tap ports the agent asked for (kept and reported; nvr-dp opens none).</summary>
    public Dictionary<(string NetNs, string Interface), ulong> TapPorts { get; private init; } = [];
    /// <summary>How many times each command was accepted without effect.</summary>
    public Dictionary<string, long> NoEffect { get; private init; } = [];

    /// <summary>A copy to apply a request to (workload objects are immutable and shared).</summary>
    public ControlState Clone() => new()
    {
        Workloads = new(Workloads), Tap = new(Tap), InternalNets = InternalNets,
        PendingInternalNets = PendingInternalNets is null ? null : [.. PendingInternalNets],
        XffEnabled = XffEnabled, DisableNetPolicy = DisableNetPolicy, DetectUnmanagedWorkloads = DetectUnmanagedWorkloads,
        EnableIcmpPolicy = EnableIcmpPolicy, StrictGroupMode = StrictGroupMode, Strict = Strict, DebugCategories = DebugCategories,
        ServicePort = ServicePort, ServicePortJumbo = ServicePortJumbo, PolicyVersion = PolicyVersion, PendingPolicy = PendingPolicy?.Clone(),
        PolicyAddresses = PolicyAddresses, PendingPolicyAddresses = PendingPolicyAddresses is null ? null : [.. PendingPolicyAddresses],
        SettingsGeneration = SettingsGeneration,
        SpecialNets = SpecialNets, PendingSpecialNets = PendingSpecialNets is null ? null : [.. PendingSpecialNets],
        Fqdns = new(Fqdns, StringComparer.OrdinalIgnoreCase), NbeMacs = [.. NbeMacs], TapPorts = new(TapPorts), NoEffect = new(NoEffect),
    };

    /// <summary>The settings the packet path decides policy with.</summary>
    public PolicySettings Settings() => new(SettingsGeneration, DisableNetPolicy, EnableIcmpPolicy, InternalNets.Select(n => (n.Ip, n.Mask)).ToArray(),
        Strict, PolicyAddresses, StrictGroupMode);

    /// <summary>The workload registered under <paramref name="mac"/> as real MAC or alias.</summary>
    public Workload? FindByAnyMac(ulong mac)
        => Workloads.TryGetValue(mac, out var w) ? w : Workloads.Values.FirstOrDefault(x => x.Keys.Contains(mac));

    /// <summary>A canonical text of the whole state (tests compare it; the daemon logs it on request).</summary>
    public string Describe()
    {
        var b = new StringBuilder();
        b.Append("service_port=").Append(ServicePort ?? "-").AppendLine();
        foreach (var w in Workloads.Values.OrderBy(w => w.Mac))
        {
            b.Append("workload ").Append(Fields.FormatMac(w.Mac)).Append(" iface=").Append(w.Interface)
             .Append(" ucmac=").Append(w.UnicastAlias == 0 ? "-" : Fields.FormatMac(w.UnicastAlias))
             .Append(" bcmac=").Append(w.BroadcastAlias == 0 ? "-" : Fields.FormatMac(w.BroadcastAlias))
             .Append(" pmac=").Append(w.ProxyMeshMac == 0 ? "-" : Fields.FormatMac(w.ProxyMeshMac))
             .Append(" pips=").Append(string.Join(',', w.ProxyMeshIPs.Select(Fields.FormatIPv4)))
             .Append(" apps=").Append(string.Join(',', w.Apps.Select(a => $"{a.Port}/{a.IpProtocol}:{a.Application}:{a.Server}")))
             .Append(" tap=").Append(Tap.TryGetValue(w.Mac, out var t) && t)
             .Append(" policy=").Append(w.Policy is { } p ? $"v{p.Version}:{(byte)p.DefaultAction}:{(byte)p.Direction}:{p.Rules.Length}" : "-").AppendLine();
        }
        b.Append("internal_net=").AppendJoin(',', InternalNets.Select(Format)).AppendLine();
        b.Append("internal_net_pending=").Append(PendingInternalNets is null ? "-" : string.Join(',', PendingInternalNets.Select(Format))).AppendLine();
        b.Append($"xff={XffEnabled} disable_net_policy={DisableNetPolicy} detect_unmanaged_wl={DetectUnmanagedWorkloads} ")
         .Append($"enable_icmp_policy={EnableIcmpPolicy} strict_group_mode={StrictGroupMode} strict={Strict}").AppendLine();
        b.Append("debug=").AppendJoin(',', DebugCategories).AppendLine();
        b.Append("policy_addr=").AppendJoin(',', PolicyAddresses.Select(Fields.FormatIPv4)).AppendLine();
        b.Append("policy_pending=").Append(PendingPolicy is null ? "-" : $"{PendingPolicy.Rules.Count}").AppendLine();
        b.Append("special_nets=").AppendJoin(',', SpecialNets.Select(Format)).AppendLine();
        b.Append("fqdns=").AppendJoin(',', Fqdns.Values.OrderBy(f => f.Name, StringComparer.OrdinalIgnoreCase)
            .Select(f => $"{f.Name}:{string.Join('|', f.Addresses.Select(a => a.ToString()))}{(f.VirtualHost ? ":vh" : "")}")).AppendLine();
        b.Append("nbe=").AppendJoin(',', NbeMacs.Order().Select(Fields.FormatMac)).AppendLine();
        b.Append("tap_ports=").AppendJoin(',', TapPorts.OrderBy(t => t.Key.NetNs).ThenBy(t => t.Key.Interface)
            .Select(t => $"{t.Key.NetNs}:{t.Key.Interface}:{Fields.FormatMac(t.Value)}")).AppendLine();
        return b.ToString();
    }

    private static string Format(InternalSubnet s) => $"{Fields.FormatIPv4(s.Ip)}/{Fields.FormatIPv4(s.Mask)}{(s.IpType is null ? "" : ":" + s.IpType)}";
}
