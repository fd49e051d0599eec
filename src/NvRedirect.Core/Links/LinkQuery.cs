using System;
using System.Collections.Generic;
using System.Linq;
using System.Net.Sockets;
using NvRedirect.Core.Model;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Links;

/// <summary>
/// Turns kernel records into the pipeline objects: resolves veth peers across namespaces (IFLA_LINK_NETNSID is
/// mapped back to a /run/netns name the way `ip` does, by asking the kernel for each named namespace's id) and
/// attaches addresses. One instance caches handles for the duration of one command.
/// </summary>
public sealed class LinkQuery : IDisposable
{
    private readonly Dictionary<string, RouteHandle> _handles = new();
    // per namespace a handle lives in: the id it gives each named namespace, and the identity (inode) that id was read for
    private readonly Dictionary<string, NamespaceIds> _nsidNames = new();

    private sealed class NamespaceIds
    {
        public readonly Dictionary<int, string> Names = new();
        public readonly Dictionary<string, (int Id, ulong Inode)> Ids = new(StringComparer.Ordinal);
    }

    /// <summary>Namespace-id requests this thread sent (tests check a pipeline does not ask again per item).</summary>
    [ThreadStatic] internal static long NamespaceIdQueries;

    /// <summary>A cached handle for a namespace ("" = root).</summary>
    public RouteHandle Handle(string? ns)
    {
        ns ??= "";
        if (_handles.TryGetValue(ns, out var h) && !h.IsCurrent())
        {
            // removed or replaced since it was opened: never talk to a namespace that is no longer under this name
            h.Dispose();
            _handles.Remove(ns);
            _nsidNames.Remove(ns);
        }
        if (!_handles.TryGetValue(ns, out h)) _handles[ns] = h = RouteHandle.Open(ns);
        return h;
    }

    /// <summary>
    /// Called between pipeline items (namespaces may come and go meanwhile). The namespace-id maps stay: an id is
    /// trusted only while its namespace still has the inode it had when its id was read, and an id not in a map makes
    /// the map ask the kernel about the named namespaces it has not seen (or whose inode changed) only.
    /// </summary>
    public void ForgetNamespaceIds() { }

    /// <summary>Links of a namespace as objects, optionally only those whose names pass <paramref name="filter"/>.</summary>
    public List<AgentLink> Links(string? ns, Func<string, bool>? filter = null)
    {
        var handle = Handle(ns);
        var records = handle.DumpLinks();
        var byIndex = records.ToDictionary(r => r.Index, r => r.Name);
        var selected = records.Where(r => filter == null || filter(r.Name)).ToList();
        var addresses = selected.Count == 0 ? [] : handle.DumpAddresses();
        return selected.Select(r => ToObject(handle, r, byIndex, addresses)).ToList();
    }

    /// <summary>One link as an object (after a change, to return it).</summary>
    public AgentLink Link(string? ns, string name)
    {
        var handle = Handle(ns);
        var record = handle.GetLink(name);
        var byIndex = new Dictionary<int, string> { [record.Index] = record.Name };
        return ToObject(handle, record, byIndex, handle.DumpAddresses(), resolveLocalPeer: true);
    }

    /// <summary>Addresses of a namespace as objects.</summary>
    public List<AgentAddress> Addresses(string? ns)
    {
        var handle = Handle(ns);
        var names = handle.DumpLinks().ToDictionary(r => r.Index, r => r.Name);
        return handle.DumpAddresses().Select(a => ToAddress(handle.Namespace, a, names.GetValueOrDefault(a.Index, "?"))).ToList();
    }

    /// <summary>Builds an address object.</summary>
    public static AgentAddress ToAddress(string ns, AddressRecord a, string linkName) => new()
    {
        Namespace = ns,
        LinkName = linkName,
        LinkIndex = a.Index,
        Family = a.Address.AddressFamily == AddressFamily.InterNetwork ? "IPv4" : "IPv6",
        Address = $"{a.Address}/{a.PrefixLength}",
        IPAddress = a.Address,
        PrefixLength = a.PrefixLength,
        Scope = a.Scope switch { 0 => "global", 200 => "site", 253 => "link", 254 => "host", 255 => "nowhere", _ => a.Scope.ToString() },
    };

    private AgentLink ToObject(RouteHandle handle, LinkRecord r, Dictionary<int, string> byIndex, List<AddressRecord> addresses, bool resolveLocalPeer = false)
    {
        string? peerNs = null, peerName = null;
        if (r.PeerIndex != 0)
        {
            if (r.PeerNamespaceId is int nsid)
            {
                peerNs = NamespaceById(handle, nsid);
                if (peerNs != null)
                {
                    try { peerName = Handle(peerNs).FindLink(r.PeerIndex)?.Name; }
                    catch (NetlinkException) { peerName = null; }
                }
            }
            else
            {
                peerNs = handle.Namespace;
                peerName = byIndex.TryGetValue(r.PeerIndex, out var n) ? n
                    : resolveLocalPeer ? handle.FindLink(r.PeerIndex)?.Name : null;
            }
        }
        return new AgentLink
        {
            Namespace = handle.Namespace,
            Name = r.Name,
            Index = r.Index,
            Kind = r.Kind,
            MacAddress = Parse.Mac(r.Address),
            Mtu = r.Mtu,
            State = (r.Flags & Rtnl.IFF_UP) != 0 ? "Up" : "Down",
            OperState = r.OperState switch { 1 => "notpresent", 2 => "down", 3 => "lowerlayerdown", 4 => "testing", 5 => "dormant", 6 => "up", _ => "unknown" },
            Flags = FlagNames(r.Flags),
            PeerIndex = r.PeerIndex,
            PeerName = peerName,
            PeerNamespace = peerNs,
            Addresses = addresses.Where(a => a.Index == r.Index).Select(a => $"{a.Address}/{a.PrefixLength}").ToArray(),
        };
    }

    private static string[] FlagNames(uint flags)
    {
        var names = new List<string>();
        void Add(uint bit, string name) { if ((flags & bit) != 0) names.Add(name); }
        Add(Rtnl.IFF_UP, "UP"); Add(Rtnl.IFF_BROADCAST, "BROADCAST"); Add(Rtnl.IFF_LOOPBACK, "LOOPBACK");
        Add(Rtnl.IFF_RUNNING, "RUNNING"); Add(Rtnl.IFF_NOARP, "NOARP"); Add(Rtnl.IFF_PROMISC, "PROMISC");
        Add(Rtnl.IFF_MULTICAST, "MULTICAST"); Add(Rtnl.IFF_LOWER_UP, "LOWER_UP");
        return names.ToArray();
    }

    /// <summary>Maps a namespace id seen from <paramref name="handle"/>'s namespace to a name ("" = root), or null.</summary>
    private string? NamespaceById(RouteHandle handle, int nsid)
    {
        if (!_nsidNames.TryGetValue(handle.Namespace, out var map)) _nsidNames[handle.Namespace] = map = new NamespaceIds();
        // a known id whose namespace is still the one it was read for (the root namespace never changes)
        if (map.Names.TryGetValue(nsid, out var known)
            && (known.Length == 0 || NetworkNamespace.Describe(known) is { IsMounted: true } now && now.Inode == map.Ids[known].Inode))
            return known;
        // else ask about the named namespaces that are new or were replaced since (the first time: all of them)
        var current = NetworkNamespace.List().Where(n => n.IsMounted).Select(n => (n.Name, n.Inode)).Prepend((Name: "", Inode: 0UL)).ToList();
        foreach (var gone in map.Ids.Keys.Except(current.Select(c => c.Name)).ToList()) Forget(map, gone);
        foreach (var (name, inode) in current)
        {
            if (name == handle.Namespace) continue;
            if (map.Ids.TryGetValue(name, out var had) && had.Inode == inode && had.Id >= 0) continue; // an id not yet assigned may be by now
            Forget(map, name);
            try
            {
                NamespaceIdQueries++;
                int id = handle.GetNamespaceId(name);
                map.Ids[name] = (id, inode);
                if (id >= 0 && !map.Names.ContainsKey(id)) map.Names[id] = name;
            }
            catch (NetlinkException) { /* a namespace that vanished meanwhile */ }
        }
        return map.Names.GetValueOrDefault(nsid);
    }

    private static void Forget(NamespaceIds map, string name)
    {
        if (!map.Ids.Remove(name, out var had)) return;
        if (map.Names.TryGetValue(had.Id, out var n) && n == name) map.Names.Remove(had.Id);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var h in _handles.Values) h.Dispose();
        _handles.Clear();
    }
}
