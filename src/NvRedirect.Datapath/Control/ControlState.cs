using System.Collections.Generic;
using System.Linq;
using System.Text;
using NvRedirect.Datapath.Engine;

namespace NvRedirect.Datapath.Control;

/// <summary>One ctrl_cfg_internal_net entry: NeuVector tests (ip &amp; mask) == Ip, so Ip should be the network address.</summary>
internal readonly record struct InternalSubnet(uint Ip, uint Mask, string? IpType);

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
    /// <summary>The global toggles (accepted and kept; no policy engine uses them yet).</summary>
    public bool XffEnabled { get; set; }
    public bool DisableNetPolicy { get; set; }
    public bool DetectUnmanagedWorkloads { get; set; }
    public bool EnableIcmpPolicy { get; set; }
    public bool StrictGroupMode { get; set; }
    /// <summary>ctrl_set_debug categories.</summary>
    public string[] DebugCategories { get; set; } = [];
    /// <summary>The service port's interface, when one is open.</summary>
    public string? ServicePort { get; set; }
    /// <summary>Whether a workload was added, changed or removed (a new table must be published).</summary>
    public bool WorkloadsChanged { get; set; }

    /// <summary>A copy to apply a request to (workload objects are immutable and shared).</summary>
    public ControlState Clone() => new()
    {
        Workloads = new(Workloads), Tap = new(Tap), InternalNets = InternalNets,
        PendingInternalNets = PendingInternalNets is null ? null : [.. PendingInternalNets],
        XffEnabled = XffEnabled, DisableNetPolicy = DisableNetPolicy, DetectUnmanagedWorkloads = DetectUnmanagedWorkloads,
        EnableIcmpPolicy = EnableIcmpPolicy, StrictGroupMode = StrictGroupMode, DebugCategories = DebugCategories,
        ServicePort = ServicePort,
    };

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
             .Append(" tap=").Append(Tap.TryGetValue(w.Mac, out var t) && t).AppendLine();
        }
        b.Append("internal_net=").AppendJoin(',', InternalNets.Select(Format)).AppendLine();
        b.Append("internal_net_pending=").Append(PendingInternalNets is null ? "-" : string.Join(',', PendingInternalNets.Select(Format))).AppendLine();
        b.Append($"xff={XffEnabled} disable_net_policy={DisableNetPolicy} detect_unmanaged_wl={DetectUnmanagedWorkloads} ")
         .Append($"enable_icmp_policy={EnableIcmpPolicy} strict_group_mode={StrictGroupMode}").AppendLine();
        b.Append("debug=").AppendJoin(',', DebugCategories).AppendLine();
        return b.ToString();
    }

    private static string Format(InternalSubnet s) => $"{Fields.FormatIPv4(s.Ip)}/{Fields.FormatIPv4(s.Mask)}{(s.IpType is null ? "" : ":" + s.IpType)}";
}
