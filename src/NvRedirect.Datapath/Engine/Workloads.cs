using System.Collections.Frozen;
using System.Collections.Generic;
using System.Linq;
using System.Threading;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// The part of a workload that outlives table versions: the tap switch (written by the control thread) and the
/// traffic counters (written by the packet thread only, read by anyone). Re-adding a workload keeps this object,
/// as NeuVector carries an endpoint's state over on re-add.
/// </summary>
internal sealed class WorkloadState
{
    /// <summary>true: inspect only, never transmit (NeuVector's default for a new MAC); false: inline, write allowed frames back.</summary>
    public volatile bool Tap = true;

    /// <summary>Frames towards the workload (destination MAC matched) and from it (source MAC matched).</summary>
    public long PacketsIn, PacketsOut, BytesIn, BytesOut;
    /// <summary>Sessions created with the workload as server (in) or client (out).</summary>
    public long SessionsIn, SessionsOut;
    /// <summary>Sessions currently in the table, by the same orientation.</summary>
    public int CurrentSessionsIn, CurrentSessionsOut;
    /// <summary>The same per 5-second slot (ctrl_stats_macs).</summary>
    public readonly TrafficMeter Meter = new();
}

/// <summary>
/// A workload endpoint as ctrl_add_mac described it: its real MAC plus the aliases tc rewrites frames to. Immutable;
/// a change builds a new object around the same <see cref="WorkloadState"/>.
/// </summary>
internal sealed class Workload(string iface, ulong mac, ulong unicastAlias, ulong broadcastAlias, ulong proxyMeshMac,
    uint[] proxyMeshIPs, AppPort[] apps, WorkloadState state, Policy? policy = null)
{
    /// <summary>The iface the agent named (stored, not used for lookup, as in NeuVector).</summary>
    public string Interface { get; } = iface;
    /// <summary>The container's MAC (48-bit number).</summary>
    public ulong Mac { get; } = mac;
    /// <summary>"ucmac": the NeuV-prefixed alias tc writes into frames it steers to dp; 0 when none.</summary>
    public ulong UnicastAlias { get; } = unicastAlias;
    /// <summary>"bcmac": registered like NeuVector does, though without the NeuV prefix it never matches a frame; 0 when none.</summary>
    public ulong BroadcastAlias { get; } = broadcastAlias;
    /// <summary>"pmac": proxymesh parent MAC; 0 when none.</summary>
    public ulong ProxyMeshMac { get; } = proxyMeshMac;
    /// <summary>"pips": proxymesh parent IPv4 addresses (host order).</summary>
    public uint[] ProxyMeshIPs { get; } = proxyMeshIPs;
    /// <summary>ctrl_cfg_mac "apps".</summary>
    public AppPort[] Apps { get; } = apps;
    /// <summary>Tap switch and counters.</summary>
    public WorkloadState State { get; } = state;
    /// <summary>Its policy (ctrl_cfg_policy); null = none, everything OPEN.</summary>
    public Policy? Policy { get; } = policy;

    /// <summary>The MACs this workload is found by: mac, then the aliases that are set.</summary>
    public IEnumerable<ulong> Keys
    {
        get
        {
            yield return Mac;
            if (UnicastAlias != 0) yield return UnicastAlias;
            if (BroadcastAlias != 0) yield return BroadcastAlias;
        }
    }

    /// <summary>A copy with other aliases or apps, sharing the state.</summary>
    public Workload With(string? iface = null, ulong? mac = null, ulong? unicastAlias = null, ulong? broadcastAlias = null,
        ulong? proxyMeshMac = null, uint[]? proxyMeshIPs = null, AppPort[]? apps = null)
        => new(iface ?? Interface, mac ?? Mac, unicastAlias ?? UnicastAlias, broadcastAlias ?? BroadcastAlias,
            proxyMeshMac ?? ProxyMeshMac, proxyMeshIPs ?? ProxyMeshIPs, apps ?? Apps, State, Policy);

    /// <summary>A copy with another policy (null removes it), sharing the state.</summary>
    public Workload WithPolicy(Policy? policy)
        => new(Interface, Mac, UnicastAlias, BroadcastAlias, ProxyMeshMac, ProxyMeshIPs, Apps, State, policy);
}

/// <summary>
/// An immutable MAC -> workload map. The control thread builds a new one per change and publishes it with a volatile
/// write; the packet thread reads the current one once per batch. Lookups allocate nothing.
/// </summary>
internal sealed class WorkloadTable
{
    private readonly FrozenDictionary<ulong, Workload> _byMac;

    /// <summary>No workloads.</summary>
    public static readonly WorkloadTable Empty = new([]);

    /// <summary>The workloads, each once, by real MAC.</summary>
    public IReadOnlyList<Workload> Workloads { get; }

    /// <summary>The settings policy decisions depend on.</summary>
    public PolicySettings Settings { get; }

    /// <summary>Builds the table (every key of every workload; keys must not collide, which the control layer checks).</summary>
    public WorkloadTable(IEnumerable<Workload> workloads, PolicySettings? settings = null)
    {
        Settings = settings ?? PolicySettings.Default;
        Workloads = workloads.OrderBy(w => w.Mac).ToArray();
        _byMac = Workloads.SelectMany(w => w.Keys.Select(k => KeyValuePair.Create(k, w))).ToFrozenDictionary();
    }

    /// <summary>Finds the workload registered under <paramref name="mac"/> (real MAC or alias).</summary>
    public bool TryGet(ulong mac, out Workload workload) => _byMac.TryGetValue(mac, out workload!);
}

/// <summary>The slot the current <see cref="WorkloadTable"/> is published through.</summary>
internal sealed class WorkloadDirectory
{
    private WorkloadTable _current = WorkloadTable.Empty;

    /// <summary>The table now in force.</summary>
    public WorkloadTable Current => Volatile.Read(ref _current);

    /// <summary>Publishes a new table; the packet thread picks it up at its next batch.</summary>
    public void Publish(WorkloadTable table) => Volatile.Write(ref _current, table);
}
