using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Intercept;

/// <summary>What <see cref="SeedTopology.Create"/> builds; defaults are the seed's own values.</summary>
public sealed record SeedTopologyRequest
{
    /// <summary>The agent namespace (vex, vin, vbr, vth).</summary>
    public string AgentNamespace { get; init; } = "agent-ns";
    /// <summary>The container namespace (eth0).</summary>
    public string ContainerNamespace { get; init; } = "container-ns";
    /// <summary>The host side's namespace (vex-peer); "" puts vex-peer in the root namespace as the seed does.</summary>
    public string HostNamespace { get; init; } = "host-ns";
    /// <summary>The container's MAC (the seed's 1a:27:f3:87:3a:27).</summary>
    public byte[] WorkloadMac { get; init; } = [0x1a, 0x27, 0xf3, 0x87, 0x3a, 0x27];
    /// <summary>The NeuV alias (the seed's 4e:65:75:56:00:b4); null = derived from vex's ifindex.</summary>
    public byte[]? UcMac { get; init; } = [0x4e, 0x65, 0x75, 0x56, 0x00, 0xb4];
    /// <summary>Host side address (10.10.10.66/24).</summary>
    public string HostAddress { get; init; } = "10.10.10.66/24";
    /// <summary>Container address (10.10.10.88/24).</summary>
    public string WorkloadAddress { get; init; } = "10.10.10.88/24";
    /// <summary>Interception backend.</summary>
    public InterceptionBackend Backend { get; init; } = InterceptionBackend.Auto;
    /// <summary>Monitor-port prefs (the seed's 5 and 172).</summary>
    public ushort ToWorkloadPriority { get; init; } = 5;
    /// <summary>See <see cref="ToWorkloadPriority"/>.</summary>
    public ushort FromWorkloadPriority { get; init; } = 172;
    /// <summary>Build the links and addresses only, without the tc rules.</summary>
    public bool NoInterception { get; init; }
    /// <summary>The interception's kernel fast path: null = on where supported, true = required, false = off.</summary>
    public bool? FastPath { get; init; }
}

/// <summary>The seed's topology, as built.</summary>
public sealed class SeedTopologyInfo
{
    /// <summary>Agent namespace.</summary>
    public string AgentNamespace { get; init; } = "";
    /// <summary>Container namespace.</summary>
    public string ContainerNamespace { get; init; } = "";
    /// <summary>Host side namespace ("" = root).</summary>
    public string HostNamespace { get; init; } = "";
    /// <summary>Host side address.</summary>
    public string HostAddress { get; init; } = "";
    /// <summary>Container address.</summary>
    public string WorkloadAddress { get; init; } = "";
    /// <summary>Container MAC.</summary>
    public string WorkloadMac { get; init; } = "";
    /// <summary>The interception, or null with NoInterception.</summary>
    public InterceptionInfo? Interception { get; init; }
    /// <summary>Every link of the topology.</summary>
    public IReadOnlyList<AgentLink> Links { get; init; } = [];
}

/// <summary>
/// The seed scenario in one call, built from the same operations as the cmdlets (no `ip`, no `tc`): namespaces, the
/// vex/vex-peer, vin/vin-peer (renamed eth0 in the container) and vbr/vth pairs, all up, the two addresses, and the
/// interception. Either everything is built or nothing is left behind.
/// </summary>
public static class SeedTopology
{
    /// <summary>Builds the topology.</summary>
    public static SeedTopologyInfo Create(SeedTopologyRequest r)
    {
        var (hostIp, hostPrefix) = Parse.Cidr(r.HostAddress);
        var (wlIp, wlPrefix) = Parse.Cidr(r.WorkloadAddress);
        if (hostIp.Equals(wlIp))
            throw new ArgumentException($"The host side and the workload need different addresses (both are {hostIp}): the host would answer its own pings.");
        var names = new[] { r.AgentNamespace, r.ContainerNamespace, r.HostNamespace }.Where(n => n.Length > 0).ToList();
        if (names.Distinct().Count() != names.Count) throw new ArgumentException("The agent, container and host namespaces need different names.");
        foreach (var n in names)
        {
            NetworkNamespace.ThrowIfInvalid(n);
            if (NetworkNamespace.Describe(n) != null)
                throw new ArgumentException($"Namespace '{n}' already exists; remove it (Remove-SeedTopology or Remove-AgentNamespace) or choose another name.");
        }
        if (r.HostNamespace.Length == 0)
        {
            using var root = RouteHandle.Open("");
            if (root.FindLink("vex-peer") != null) throw new LinkExistsException("vex-peer", "");
        }

        var created = new List<string>();
        bool rootPeer = false;
        try
        {
            foreach (var n in names) { NetworkNamespace.Create(n); created.Add(n); }
            using (var agent = RouteHandle.Open(r.AgentNamespace))
            {
                agent.CreateVeth("vex", "vex-peer", r.HostNamespace);
                rootPeer = r.HostNamespace.Length == 0;
                agent.CreateVeth("vin", "vin-peer", r.ContainerNamespace);
                agent.CreateVeth("vbr", "vth", r.AgentNamespace);
                foreach (var l in new[] { "lo", "vex", "vin", "vbr", "vth" }) agent.SetUp(agent.GetLink(l), true);
            }
            using (var container = RouteHandle.Open(r.ContainerNamespace))
            {
                container.Rename(container.GetLink("vin-peer"), "eth0");
                var eth0 = container.GetLink("eth0");
                container.SetMacAddress(eth0, r.WorkloadMac);
                container.SetUp(eth0, true);
                container.SetUp(container.GetLink("lo"), true);
                container.AddAddress(eth0, wlIp, wlPrefix);
            }
            using (var host = RouteHandle.Open(r.HostNamespace))
            {
                var peer = host.GetLink("vex-peer");
                host.SetUp(peer, true);
                if (r.HostNamespace.Length > 0) host.SetUp(host.GetLink("lo"), true);
                host.AddAddress(peer, hostIp, hostPrefix);
            }
            InterceptionInfo? interception = null;
            if (!r.NoInterception)
                interception = Interception.Add(new InterceptionRequest
                {
                    Namespace = r.AgentNamespace, WorkloadMac = r.WorkloadMac, UcMac = r.UcMac, Backend = r.Backend,
                    ToWorkloadPriority = r.ToWorkloadPriority, FromWorkloadPriority = r.FromWorkloadPriority, FastPath = r.FastPath,
                });
            using var query = new LinkQuery();
            var links = query.Links(r.AgentNamespace).Concat(query.Links(r.ContainerNamespace))
                .Concat(r.HostNamespace.Length > 0 ? query.Links(r.HostNamespace) : query.Links("", n => n == "vex-peer")).ToList();
            return new SeedTopologyInfo
            {
                AgentNamespace = r.AgentNamespace, ContainerNamespace = r.ContainerNamespace, HostNamespace = r.HostNamespace,
                HostAddress = $"{hostIp}/{hostPrefix}", WorkloadAddress = $"{wlIp}/{wlPrefix}", WorkloadMac = Parse.Mac(r.WorkloadMac),
                Interception = interception, Links = links,
            };
        }
        catch
        {
            if (rootPeer) TryRemoveRootPeer(r.AgentNamespace);
            foreach (var n in created) { try { NetworkNamespace.Delete(n); } catch (NetlinkException) { } }
            throw;
        }
    }

    /// <summary>Tears the topology down: its namespaces (which takes every veth and rule with them) and a root-side vex-peer.</summary>
    public static List<string> Remove(string agentNamespace, string containerNamespace, string hostNamespace)
    {
        var removed = new List<string>();
        if (hostNamespace.Length == 0 && TryRemoveRootPeer(agentNamespace)) removed.Add("vex-peer");
        foreach (var n in new[] { agentNamespace, containerNamespace, hostNamespace }.Where(n => n.Length > 0))
        {
            if (NetworkNamespace.Describe(n) == null) continue;
            NetworkNamespace.Delete(n);
            removed.Add(n);
        }
        // the fast path's pinned maps of the agent namespace went with nothing else: unpin them (as Remove-AgentNamespace does)
        if (removed.Count > 0) NvRedirect.Core.Bpf.FastPathMap.SweepGoneNamespaces();
        return removed;
    }

    /// <summary>Removes the root namespace's vex-peer, but only when its other end (vex) lives in the agent namespace.</summary>
    private static bool TryRemoveRootPeer(string agentNamespace)
    {
        try
        {
            using var root = RouteHandle.Open("");
            var peer = root.FindLink("vex-peer");
            if (peer == null || peer.Kind != "veth" || peer.PeerNamespaceId is not int id) return false;
            if (NetworkNamespace.Describe(agentNamespace) is not { IsMounted: true } || root.GetNamespaceId(agentNamespace) != id) return false;
            root.Delete(peer);
            return true;
        }
        catch (NetlinkException) { return false; }
    }
}
