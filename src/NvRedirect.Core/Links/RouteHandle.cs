using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Model;

namespace NvRedirect.Core.Links;

/// <summary>
/// One NETLINK_ROUTE socket bound to one network namespace, with the link and address operations on it.
/// "" (or null) is the root namespace, i.e. the namespace this process runs in; any other name is a /run/netns entry.
/// </summary>
public sealed class RouteHandle : IDisposable
{
    /// <summary>The namespace name ("" = root).</summary>
    public string Namespace { get; }
    /// <summary>The socket; usable from any thread.</summary>
    public NetlinkSocket Socket { get; }

    /// <summary>The nsfs inode of the namespace the socket lives in (its identity: a namespace removed and created again under the same name has another).</summary>
    public ulong NamespaceInode { get; }

    private RouteHandle(string ns, NetlinkSocket socket, ulong inode) { Namespace = ns; Socket = socket; NamespaceInode = inode; }

    /// <summary>Opens a handle in a namespace; a missing namespace gives a clear error.</summary>
    public static RouteHandle Open(string? ns)
    {
        ns ??= "";
        if (ns.Length == 0) return new RouteHandle("", NetlinkSocket.OpenInCurrentNamespace(), NetworkNamespace.CurrentInode());
        if (NetworkNamespace.IsPath(ns))
        {
            if (NetworkNamespace.NsfsInode(ns) == null) throw new NamespacePathException(ns);
            var (s, i) = NamespaceThread.RunIn(ns, () => (NetlinkSocket.OpenInCurrentNamespace(), NetworkNamespace.CurrentInode()));
            return new RouteHandle(ns, s, i);
        }
        NetworkNamespace.ThrowIfInvalid(ns);
        if (!NetworkNamespace.Exists(ns))
            throw new NamespaceNotFoundException(ns);
        var (socket, inode) = NamespaceThread.RunIn(NetworkNamespace.PathOf(ns), () => (NetlinkSocket.OpenInCurrentNamespace(), NetworkNamespace.CurrentInode()));
        return new RouteHandle(ns, socket, inode);
    }

    /// <summary>Whether the name still denotes the namespace this handle's socket lives in (not removed, not replaced).</summary>
    public bool IsCurrent()
        => Namespace.Length == 0
           || (NetworkNamespace.IsPath(Namespace) ? NetworkNamespace.NsfsInode(Namespace) == NamespaceInode
               : NetworkNamespace.Describe(Namespace) is { IsMounted: true } info && info.Inode == NamespaceInode);

    /// <summary>"link X" or "link X in namespace N", for messages.</summary>
    public string Describe(string linkName) => Namespace.Length == 0 ? $"link '{linkName}' in the root namespace" : $"link '{linkName}' in namespace '{Namespace}'";

    /// <summary>Every link of the namespace.</summary>
    public List<LinkRecord> DumpLinks()
        => Socket.Dump(LinkMessages.DumpLinks(), $"list links in {NamespaceText}")
                 .Where(m => m.Type == Rtnl.RTM_NEWLINK).Select(LinkRecord.Parse).ToList();

    /// <summary>A link by name, or null when there is none.</summary>
    public LinkRecord? FindLink(string name)
    {
        try
        {
            return Socket.Query(LinkMessages.GetByName(name), $"look up {Describe(name)}")
                         .Where(m => m.Type == Rtnl.RTM_NEWLINK).Select(LinkRecord.Parse).FirstOrDefault();
        }
        catch (NetlinkException e) when (e.Errno == 19) { return null; }
    }

    /// <summary>A link by one of its alternative names, or null when none has it (or the kernel has no alternative names).</summary>
    public LinkRecord? FindLinkByAltName(string altName)
    {
        try
        {
            return Socket.Query(LinkMessages.GetByAltName(altName), $"look up the link with alternative name '{altName}' in {NamespaceText}")
                         .Where(m => m.Type == Rtnl.RTM_NEWLINK).Select(LinkRecord.Parse).FirstOrDefault();
        }
        catch (NetlinkException e) when (e.Errno is 19 or 22 or 95) { return null; }
    }

    /// <summary>A link by ifindex, or null.</summary>
    public LinkRecord? FindLink(int index)
    {
        try
        {
            return Socket.Query(LinkMessages.GetByIndex(index), $"look up ifindex {index} in {NamespaceText}")
                         .Where(m => m.Type == Rtnl.RTM_NEWLINK).Select(LinkRecord.Parse).FirstOrDefault();
        }
        catch (NetlinkException e) when (e.Errno == 19) { return null; }
    }

    /// <summary>A link by name; throws <see cref="LinkNotFoundException"/> when missing.</summary>
    public LinkRecord GetLink(string name) => FindLink(name) ?? throw new LinkNotFoundException(name, Namespace);

    /// <summary>Every address of the namespace (both families).</summary>
    public List<AddressRecord> DumpAddresses()
        => Socket.Dump(LinkMessages.DumpAddresses(), $"list addresses in {NamespaceText}")
                 .Where(m => m.Type == Rtnl.RTM_NEWADDR).Select(AddressRecord.Parse).ToList();

    /// <summary>Every route of every table of one family (AF_INET or AF_INET6), as dumped.</summary>
    public List<RtnlObject> DumpRoutes(byte family)
        => Socket.Dump(RouteMessages.DumpRoutes(family), $"list the {(family == Rtnl.AF_INET ? "IPv4" : "IPv6")} routes of every table in {NamespaceText}")
                 .Where(m => m.Type == Rtnl.RTM_NEWROUTE).Select(m => RtnlObject.Parse(m, 12)).ToList();

    /// <summary>Every neighbour entry of one family, as dumped.</summary>
    public List<RtnlObject> DumpNeighbours(byte family)
        => Socket.Dump(RouteMessages.DumpNeighbours(family), $"list the {(family == Rtnl.AF_INET ? "IPv4" : "IPv6")} neighbours in {NamespaceText}")
                 .Where(m => m.Type == Rtnl.RTM_NEWNEIGH).Select(m => RtnlObject.Parse(m, 12)).ToList();

    /// <summary>Every address of one link with all its attributes, as dumped (both families, in the kernel's order).</summary>
    public List<RtnlObject> DumpAddressObjects(int index)
        => Socket.Dump(LinkMessages.DumpAddresses(index), $"list the addresses of ifindex {index} in {NamespaceText}")
                 .Where(m => m.Type == Rtnl.RTM_NEWADDR).Select(m => RtnlObject.Parse(m, 8)).Where(a => a.AddressIndex == index).ToList();

    /// <summary>"namespace X" or "the root namespace".</summary>
    public string NamespaceText => Namespace.Length == 0 ? "the root namespace" : $"namespace '{Namespace}'";

    /// <summary>
    /// Creates a veth pair here; the peer goes straight into <paramref name="peerNamespace"/> when given
    /// ("" = the root namespace). null keeps the peer in this handle's namespace.
    /// </summary>
    public void CreateVeth(string name, string peerName, string? peerNamespace)
    {
        Parse.ThrowIfInvalidLinkName(name);
        Parse.ThrowIfInvalidLinkName(peerName, "PeerName");
        bool peerHere = peerNamespace == null || peerNamespace == Namespace;
        if (peerHere && name == peerName)
            throw new ArgumentException($"A veth pair needs two different names; both ends are called '{name}'.", "PeerName");
        if (FindLink(name) != null) throw new LinkExistsException(name, Namespace);
        if (peerHere)
        {
            if (FindLink(peerName) != null) throw new LinkExistsException(peerName, Namespace);
            Socket.Execute(LinkMessages.CreateVeth(name, peerName), $"create veth pair {name}/{peerName} in {NamespaceText}");
            return;
        }
        using var peerNs = OpenNamespaceFd(peerNamespace ?? "");
        using (var peerHandle = Open(peerNamespace))
            if (peerHandle.FindLink(peerName) != null) throw new LinkExistsException(peerName, peerHandle.Namespace);
        Socket.Execute(LinkMessages.CreateVeth(name, peerName, peerNs.Fd), $"create veth pair {name}/{peerName} in {NamespaceText} (peer in {NsText(peerNamespace)})");
    }

    /// <summary>Sets the administrative state.</summary>
    public void SetUp(LinkRecord link, bool up)
        => Socket.Execute(LinkMessages.SetUp(link.Index, up), $"set {Describe(link.Name)} {(up ? "up" : "down")}");

    /// <summary>Renames a link (refuses a name already taken, before asking the kernel).</summary>
    public void Rename(LinkRecord link, string newName)
    {
        Parse.ThrowIfInvalidLinkName(newName, "NewName");
        if (newName == link.Name) return;
        if (FindLink(newName) != null) throw new LinkExistsException(newName, Namespace);
        Socket.Execute(LinkMessages.Rename(link.Index, newName), $"rename {Describe(link.Name)} to '{newName}'");
    }

    /// <summary>Sets the MTU.</summary>
    public void SetMtu(LinkRecord link, int mtu)
        => Socket.Execute(LinkMessages.SetMtu(link.Index, mtu), $"set the MTU of {Describe(link.Name)} to {mtu}");

    /// <summary>Sets the MAC address (unicast only).</summary>
    public void SetMacAddress(LinkRecord link, byte[] mac)
    {
        if ((mac[0] & 1) != 0 || mac.All(b => b == 0))
            throw new ArgumentException($"{Model.Parse.Mac(mac)} cannot be an interface's address: it is a multicast or all-zero MAC. Use a unicast MAC (lowest bit of the first byte clear), e.g. 02:00:00:00:00:01.", "MacAddress");
        Socket.Execute(LinkMessages.SetMacAddress(link.Index, mac), $"set the MAC address of {Describe(link.Name)} to {Model.Parse.Mac(mac)}");
    }

    /// <summary>Moves a link into another namespace, optionally renaming it on arrival (one atomic message).</summary>
    public void Move(LinkRecord link, string destination, string? newName)
    {
        if (newName != null) Parse.ThrowIfInvalidLinkName(newName, "NewName");
        string finalName = newName ?? link.Name;
        if (destination == Namespace) throw new ArgumentException($"{Describe(link.Name)} is already in {NamespaceText}; use Rename-AgentLink to rename it.", "DestinationNamespace");
        using var nsFd = OpenNamespaceFd(destination);
        using (var target = Open(destination))
            if (target.FindLink(finalName) != null) throw new LinkExistsException(finalName, target.Namespace);
        Socket.Execute(LinkMessages.Move(link.Index, nsFd.Fd, newName),
            $"move {Describe(link.Name)} to {NsText(destination)}{(newName != null ? $" as '{newName}'" : "")}");
    }

    /// <summary>Deletes a link (a veth's peer goes with it).</summary>
    public void Delete(LinkRecord link)
        => Socket.Execute(LinkMessages.Delete(link.Index), $"remove {Describe(link.Name)}");

    /// <summary>Adds an address.</summary>
    public void AddAddress(LinkRecord link, IPAddress address, int prefixLength)
        => Socket.Execute(LinkMessages.AddAddress(link.Index, address, prefixLength), $"add {address}/{prefixLength} to {Describe(link.Name)}");

    /// <summary>Removes an address.</summary>
    public void DeleteAddress(LinkRecord link, IPAddress address, int prefixLength)
        => Socket.Execute(LinkMessages.DeleteAddress(link.Index, address, prefixLength), $"remove {address}/{prefixLength} from {Describe(link.Name)}");

    /// <summary>The id this namespace's kernel view gives another namespace (-1 when none assigned).</summary>
    public int GetNamespaceId(string otherNamespace)
    {
        using var fd = OpenNamespaceFd(otherNamespace);
        var reply = Socket.Query(LinkMessages.GetNamespaceId(fd.Fd), $"get the id of {NsText(otherNamespace)} in {NamespaceText}");
        return reply.Count > 0 ? LinkMessages.ParseNamespaceId(reply[0]) : -1;
    }

    private static string NsText(string? ns) => string.IsNullOrEmpty(ns) ? "the root namespace" : $"namespace '{ns}'";

    /// <summary>An fd of a namespace ("" = this process's own), for IFLA_NET_NS_FD.</summary>
    public static SafeFd OpenNamespaceFd(string ns)
    {
        if (ns.Length > 0 && !NetworkNamespace.IsPath(ns))
        {
            NetworkNamespace.ThrowIfInvalid(ns);
            if (!NetworkNamespace.Exists(ns)) throw new NamespaceNotFoundException(ns);
        }
        if (NetworkNamespace.IsPath(ns) && NetworkNamespace.NsfsInode(ns) == null) throw new NamespacePathException(ns);
        string path = ns.Length == 0 ? "/proc/self/ns/net" : NetworkNamespace.PathFor(ns);
        int fd = Native.open(path, Native.O_RDONLY | Native.O_CLOEXEC, 0);
        if (fd < 0) throw SyscallException.FromLastError($"open {path}");
        return new SafeFd(fd);
    }

    /// <inheritdoc/>
    public void Dispose() => Socket.Dispose();
}

/// <summary>A named namespace that does not exist.</summary>
public sealed class NamespaceNotFoundException(string name)
        : NetlinkException(2, "find network namespace", null, NetworkNamespace.MissingMessage(name))
{
    /// <summary>The missing name.</summary>
    public string Name { get; } = name;
}

/// <summary>A link that does not exist.</summary>
public sealed class LinkNotFoundException(string name, string ns)
        : NetlinkException(19, "find link", null, $"There is no link '{name}' in {(ns.Length == 0 ? "the root namespace" : $"namespace '{ns}'")}; list them with Get-AgentLink{(ns.Length == 0 ? "" : $" -Namespace {ns}")}")
{
    /// <summary>The missing name.</summary>
    public string Name { get; } = name;
}

/// <summary>A link name already in use.</summary>
public sealed class LinkExistsException(string name, string ns)
        : NetlinkException(17, "create link", null, $"A link named '{name}' already exists in {(ns.Length == 0 ? "the root namespace" : $"namespace '{ns}'")}; pick another name or remove it first")
{
    /// <summary>The taken name.</summary>
    public string Name { get; } = name;
}

/// <summary>An address that a link does not have.</summary>
public sealed class AddressNotFoundException(System.Net.IPAddress address, int prefixLength, string where)
    : NetlinkException(99, "find address", null, $"{address}/{prefixLength} is not an address of {where}; list them with Get-AgentAddress")
{
}
