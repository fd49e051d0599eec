using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Model;
using NvRedirect.Core.Tc;

namespace NvRedirect.Core.Topology;

/// <summary>A network namespace of a topology, with what it holds.</summary>
public sealed class TopologyNamespace
{
    /// <summary>Its name ("" = the root namespace), or the path it was opened by (/proc/PID/ns/net).</summary>
    public string Name { get; init; } = "";
    /// <summary>Same as <see cref="Name"/>: binds to -Namespace down the pipeline.</summary>
    public string Namespace => Name;
    /// <summary>What it is for, as far as the topology shows: Enforcer (steering rules or a datapath), Workload (a registered workload's interface), or Other.</summary>
    public string Role { get; init; } = "Other";
    /// <summary>How many links it has (loopback left out).</summary>
    public int LinkCount { get; init; }
    /// <summary>For a container's namespace reached through an interception: the container's name, when known.</summary>
    public string? ContainerName { get; init; }
    /// <inheritdoc/>
    public override string ToString() => Name.Length == 0 ? "(root)" : Name;
}

/// <summary>A link of a topology: where it is, and its peer across namespaces.</summary>
public sealed class TopologyLink
{
    /// <summary>Its namespace.</summary>
    public string Namespace { get; init; } = "";
    /// <summary>Its name.</summary>
    public string Name { get; init; } = "";
    /// <summary>Its ifindex.</summary>
    public int Index { get; init; }
    /// <summary>veth, bridge, ...</summary>
    public string Kind { get; init; } = "";
    /// <summary>Its MAC.</summary>
    public string MacAddress { get; init; } = "";
    /// <summary>Up or Down.</summary>
    public string State { get; init; } = "";
    /// <summary>Its addresses as ADDRESS/PREFIX.</summary>
    public string[] Addresses { get; init; } = [];
    /// <summary>The veth peer's name, when the peer is in a namespace the topology holds (or its name is known).</summary>
    public string? PeerName { get; init; }
    /// <summary>The veth peer's namespace.</summary>
    public string? PeerNamespace { get; init; }
    /// <summary>The link as NAMESPACE/NAME.</summary>
    public string Id => TopologyIds.Link(Namespace, Name);
    /// <inheritdoc/>
    public override string ToString() => Id;
}

/// <summary>An ingress tc filter on a link of the topology and where it steers frames.</summary>
public sealed class TopologySteeringRule
{
    /// <summary>The namespace of the link it is on.</summary>
    public string Namespace { get; init; } = "";
    /// <summary>The link it is on (its ingress).</summary>
    public string LinkName { get; init; } = "";
    /// <summary>Its pref.</summary>
    public int Priority { get; init; }
    /// <summary>Its protocol (ip, all, ...).</summary>
    public string Protocol { get; init; } = "";
    /// <summary>u32 or bpf.</summary>
    public string Kind { get; init; } = "";
    /// <summary>Its part in an interception ("entry: to datapath", "monitor: to workload", ...), null when it is no interception's.</summary>
    public string? Role { get; init; }
    /// <summary>The workload whose interception it belongs to, when any.</summary>
    public string? WorkloadMac { get; init; }
    /// <summary>The links (same namespace) it mirrors or redirects frames to.</summary>
    public string[] Targets { get; init; } = [];
    /// <summary>Its matches, as Get-RedirectFilter shows them.</summary>
    public string[] Matches { get; init; } = [];
    /// <summary>Its actions, as Get-RedirectFilter shows them.</summary>
    public string[] Actions { get; init; } = [];
    /// <summary>Packets it acted on.</summary>
    public ulong Packets { get; init; }
    /// <summary>Whether NvRedirect installed it.</summary>
    public bool IsOwned { get; init; }
    /// <inheritdoc/>
    public override string ToString() => $"{LinkName} pref {Priority} -> {string.Join(",", Targets)}";
}

/// <summary>A workload registered with a datapath (ctrl_add_mac), and where its interface is when the topology shows it.</summary>
public sealed class TopologyWorkload
{
    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>The workload's MAC.</summary>
    public string Mac { get; init; } = "";
    /// <summary>Its NeuV alias, when any.</summary>
    public string? UcMac { get; init; }
    /// <summary>None, Discover, Monitor or Protect.</summary>
    public string Mode { get; init; } = "";
    /// <summary>Tapped (inspected only) rather than inline.</summary>
    public bool Tap { get; init; }
    /// <summary>The link carrying its MAC (NAMESPACE/NAME) in a namespace of the topology; null when none does.</summary>
    public string? Link { get; init; }
    /// <summary>The container's name, when an interception knows it.</summary>
    public string? ContainerName { get; init; }
    /// <inheritdoc/>
    public override string ToString() => Mac;
}

/// <summary>A datapath daemon of the topology: its namespace, service ports and registrations.</summary>
public sealed class TopologyDatapath
{
    /// <summary>Its control socket.</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>Its pid.</summary>
    public int Pid { get; init; }
    /// <summary>The namespace of its service ports.</summary>
    public string Namespace { get; init; } = "";
    /// <summary>The links it reads frames from (vth).</summary>
    public string[] ServicePorts { get; init; } = [];
    /// <summary>Its registered workloads.</summary>
    public TopologyWorkload[] Workloads { get; init; } = [];
    /// <inheritdoc/>
    public override string ToString() => ControlSocket;
}

/// <summary>
/// Namespaces, links with their peers, steering rules and datapath registrations, as Get-AgentTopology reads them and
/// ConvertTo-TopologyDiagram draws them. Built from what the existing queries return (<see cref="Build"/>, pure);
/// the reading is <see cref="TopologyReader"/>'s.
/// </summary>
public sealed class AgentTopology
{
    /// <summary>The namespaces, in the order they were asked for.</summary>
    public TopologyNamespace[] Namespaces { get; init; } = [];
    /// <summary>Their links (loopback left out), by namespace then ifindex.</summary>
    public TopologyLink[] Links { get; init; } = [];
    /// <summary>Ingress filters on those links, by namespace, link and pref.</summary>
    public TopologySteeringRule[] SteeringRules { get; init; } = [];
    /// <summary>Datapaths whose service ports are in those namespaces.</summary>
    public TopologyDatapath[] Datapaths { get; init; } = [];

    /// <summary>Several topologies as one (a namespace that appears twice is kept once, from the first).</summary>
    public static AgentTopology Merge(IEnumerable<AgentTopology> topologies)
    {
        var list = topologies.ToList();
        if (list.Count == 1) return list[0];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var keep = list.Select(t => t.Namespaces.Where(n => seen.Add(n.Name)).Select(n => n.Name).ToHashSet(StringComparer.Ordinal)).ToList();
        return new AgentTopology
        {
            Namespaces = list.SelectMany((t, i) => t.Namespaces.Where(n => keep[i].Contains(n.Name))).ToArray(),
            Links = list.SelectMany((t, i) => t.Links.Where(l => keep[i].Contains(l.Namespace))).ToArray(),
            SteeringRules = list.SelectMany((t, i) => t.SteeringRules.Where(r => keep[i].Contains(r.Namespace))).ToArray(),
            Datapaths = list.SelectMany((t, i) => t.Datapaths.Where(d => keep[i].Contains(d.Namespace))).ToArray(),
        };
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Namespaces.Length} namespaces, {Links.Length} links, {SteeringRules.Length} steering rules, {Datapaths.Length} datapaths";

    /// <summary>
    /// Builds a topology from the queries' objects: <paramref name="links"/> of each namespace (Get-AgentLink),
    /// <paramref name="filters"/> (Get-RedirectFilter), <paramref name="interceptions"/> (Get-WorkloadInterception) to name
    /// each rule's part and target, and <paramref name="datapaths"/> (Get-Datapath). Veth peers in namespaces that have
    /// no name (a container's, opened by path) are matched by their ifindex pair. Pure: objects in, objects out.
    /// </summary>
    public static AgentTopology Build(IReadOnlyList<string> namespaces, IEnumerable<AgentLink> links, IEnumerable<RedirectFilter> filters,
        IEnumerable<InterceptionInfo> interceptions, IEnumerable<DatapathInfo> datapaths)
    {
        var linkList = links.Where(l => l.Kind != "loopback" && l.Name != "lo" && namespaces.Contains(l.Namespace)).ToList();
        var byIndex = linkList.ToLookup(l => l.Index);
        var resolved = linkList.Select(l =>
        {
            string? peerName = l.PeerName, peerNs = l.PeerNamespace;
            if (l.PeerIndex != 0 && (peerName == null || peerNs == null))
            {
                // the peer's namespace has no name here: find the link in another namespace that names this one as its peer
                var peer = byIndex[l.PeerIndex].FirstOrDefault(p => p.Namespace != l.Namespace && p.PeerIndex == l.Index
                    && (p.PeerNamespace == null || p.PeerNamespace == l.Namespace));
                if (peer != null) { peerName = peer.Name; peerNs = peer.Namespace; }
            }
            return (Link: l, PeerName: peerName, PeerNamespace: peerNs);
        }).ToList();

        var interceptionList = interceptions.Where(i => namespaces.Contains(i.Namespace)).ToList();
        var rules = filters.Where(f => namespaces.Contains(f.Namespace)).Select(f => Steering(f, interceptionList))
            .OrderBy(r => namespaces.ToList().IndexOf(r.Namespace)).ThenBy(r => r.LinkName, StringComparer.Ordinal).ThenBy(r => r.Priority).ToArray();

        var macs = linkList.GroupBy(l => l.MacAddress, StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.OrdinalIgnoreCase);
        var dps = datapaths.Where(d => namespaces.Contains(d.Namespace)).OrderBy(d => d.ControlSocket, StringComparer.Ordinal).Select(d => new TopologyDatapath
        {
            ControlSocket = d.ControlSocket, Pid = d.Pid, Namespace = d.Namespace, ServicePorts = d.ServicePorts,
            Workloads = d.Workloads.OrderBy(w => w.Mac, StringComparer.Ordinal).Select(w => new TopologyWorkload
            {
                ControlSocket = d.ControlSocket, Mac = w.Mac, UcMac = w.UcMac, Mode = w.Mode.ToString(), Tap = w.Tap,
                // the workload's own interface: a link with its MAC outside the datapath's namespace (the enforcer's ports copy it)
                Link = macs.GetValueOrDefault(w.Mac)?.OrderBy(l => l.Namespace == d.Namespace ? 1 : 0).Select(l => l.Namespace == d.Namespace ? null : TopologyIds.Link(l.Namespace, l.Name)).FirstOrDefault(),
                ContainerName = interceptionList.FirstOrDefault(i => i.WorkloadMac == w.Mac)?.ContainerName,
            }).ToArray(),
        }).ToArray();

        var workloadLinks = dps.SelectMany(d => d.Workloads).Where(w => w.Link != null).ToList();
        var topologyNamespaces = namespaces.Select(ns => new TopologyNamespace
        {
            Name = ns,
            LinkCount = linkList.Count(l => l.Namespace == ns),
            Role = rules.Any(r => r.Namespace == ns) || dps.Any(d => d.Namespace == ns) ? "Enforcer"
                : workloadLinks.Any(w => w.Link!.StartsWith(TopologyIds.Link(ns, ""), StringComparison.Ordinal)) || interceptionList.Any(i => i.NetnsPath == ns) ? "Workload"
                : "Other",
            ContainerName = interceptionList.FirstOrDefault(i => i.NetnsPath == ns)?.ContainerName,
        }).ToArray();

        return new AgentTopology
        {
            Namespaces = topologyNamespaces,
            Links = resolved.OrderBy(r => namespaces.ToList().IndexOf(r.Link.Namespace)).ThenBy(r => r.Link.Index).Select(r => new TopologyLink
            {
                Namespace = r.Link.Namespace, Name = r.Link.Name, Index = r.Link.Index, Kind = r.Link.Kind, MacAddress = r.Link.MacAddress,
                State = r.Link.State, Addresses = r.Link.Addresses, PeerName = r.PeerName, PeerNamespace = r.PeerNamespace,
            }).ToArray(),
            SteeringRules = rules,
            Datapaths = dps,
        };
    }

    // a filter as a steering rule: its targets from its mirred actions, else (a bpf program redirects by itself) from its
    // part in an interception
    private static TopologySteeringRule Steering(RedirectFilter f, List<InterceptionInfo> interceptions)
    {
        var actions = f.Filter switch { U32Filter u => u.Actions, BpfFilter b => b.Actions, _ => [] };
        var targets = actions.OfType<MirredAction>().Select(a => a.TargetName ?? $"ifindex {a.TargetIndex}").ToList();
        string? role = null, mac = null;
        foreach (var i in interceptions.Where(i => i.Namespace == f.Namespace))
        {
            var rule = i.Rules.Concat(i.FastPathRules).FirstOrDefault(r => r.LinkName == f.LinkName && r.Priority == f.Priority);
            if (rule == null) continue;
            role = rule.Role;
            mac = i.WorkloadMac;
            if (targets.Count == 0 && RoleTarget(i, rule.Role) is { } t) targets.Add(t);
            break;
        }
        return new TopologySteeringRule
        {
            Namespace = f.Namespace, LinkName = f.LinkName, Priority = f.Priority, Protocol = f.Protocol, Kind = f.Kind, Role = role, WorkloadMac = mac,
            Targets = targets.Distinct().ToArray(), Matches = f.Matches, Actions = f.Actions, Packets = f.Packets, IsOwned = f.IsOwned,
        };
    }

    // where each of an interception's eight rules (and the fast path's two programs, a published flow) sends frames (Interception.cs, its head comment)
    private static string? RoleTarget(InterceptionInfo i, string role) => role switch
    {
        InterceptionRoles.EntryToDatapath or InterceptionRoles.InnerToDatapath
            or InterceptionRoles.EntryIPv6ToDatapath or InterceptionRoles.InnerIPv6ToDatapath => i.MonitorLink,
        InterceptionRoles.ToWorkload or InterceptionRoles.EntryStraightIn or FastPathFilters.EntryRole => i.InnerLink,
        InterceptionRoles.ToHostSide or InterceptionRoles.InnerStraightOut or FastPathFilters.InnerRole => i.EntryLink,
        _ => null,
    };
}

/// <summary>How topology objects are named for one another.</summary>
public static class TopologyIds
{
    /// <summary>A link as NAMESPACE/NAME ("(root)/NAME" in the root namespace).</summary>
    public static string Link(string ns, string name) => $"{(ns.Length == 0 ? "(root)" : ns)}/{name}";
}
