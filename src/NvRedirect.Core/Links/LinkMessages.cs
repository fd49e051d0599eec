using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Links;

/// <summary>
/// Request encoders for links and addresses (docs/kernel-interfaces.md, "Links and addresses"). Each produces exactly the bytes iproute2 6.1
/// sends for the same command (tests compare with the captures 02-07, 15, 21-23 in tests/NvRedirect.Tests/Golden), sequence number aside.
/// </summary>
public static class LinkMessages
{
    /// <summary>ifinfomsg (16 bytes): family, pad, type, index, flags, change.</summary>
    private static NetlinkWriter Ifinfo(NetlinkWriter w, int index, uint flags = 0, uint change = 0, byte family = Rtnl.AF_UNSPEC)
        => w.U8(family).U8(0).U16(0).S32(index).U32(flags).U32(change);

    /// <summary>`ip link add NAME type veth peer name PEER [netns NS]`.</summary>
    public static NetlinkWriter CreateVeth(string name, string peerName, int? peerNamespaceFd = null)
    {
        var w = Ifinfo(new NetlinkWriter(Rtnl.RTM_NEWLINK, Rtnl.CreateFlags), 0);
        w.AttrString(Rtnl.IFLA_IFNAME, name);
        int linkInfo = w.BeginNest(Rtnl.IFLA_LINKINFO);
        w.AttrString(Rtnl.IFLA_INFO_KIND, "veth", nulTerminated: false);
        int data = w.BeginNest(Rtnl.IFLA_INFO_DATA);
        int peer = w.BeginNest(Rtnl.VETH_INFO_PEER);
        Ifinfo(w, 0);
        if (peerNamespaceFd is int fd) w.AttrU32(Rtnl.IFLA_NET_NS_FD, (uint)fd);
        w.AttrString(Rtnl.IFLA_IFNAME, peerName);
        w.EndNest(peer).EndNest(data).EndNest(linkInfo);
        return w;
    }

    /// <summary>
    /// `ip link add NAME index INDEX address MAC mtu MTU txqueuelen N type veth peer name PEER netns NS mtu MTU`: a veth
    /// whose local end takes a given ifindex, MAC, MTU and queue length (a replacement for an interface that left), the
    /// peer created straight in another namespace.
    /// </summary>
    public static NetlinkWriter CreateVethAt(int index, string name, ReadOnlySpan<byte> mac, int mtu, uint txQueueLength, string peerName, int peerNamespaceFd)
    {
        // attributes in iproute2's order (netlink-golden 30)
        var w = Ifinfo(new NetlinkWriter(Rtnl.RTM_NEWLINK, Rtnl.CreateFlags), index);
        w.Attr(Rtnl.IFLA_ADDRESS, mac);
        w.AttrU32(Rtnl.IFLA_MTU, (uint)mtu);
        w.AttrU32(Rtnl.IFLA_TXQLEN, txQueueLength);
        w.AttrString(Rtnl.IFLA_IFNAME, name);
        int linkInfo = w.BeginNest(Rtnl.IFLA_LINKINFO);
        w.AttrString(Rtnl.IFLA_INFO_KIND, "veth", nulTerminated: false);
        int data = w.BeginNest(Rtnl.IFLA_INFO_DATA);
        int peer = w.BeginNest(Rtnl.VETH_INFO_PEER);
        Ifinfo(w, 0);
        w.AttrU32(Rtnl.IFLA_NET_NS_FD, (uint)peerNamespaceFd);
        w.AttrU32(Rtnl.IFLA_MTU, (uint)mtu);
        w.AttrString(Rtnl.IFLA_IFNAME, peerName);
        w.EndNest(peer).EndNest(data).EndNest(linkInfo);
        return w;
    }

    /// <summary>`ip link set DEV alias TEXT` (an empty text removes the alias).</summary>
    public static NetlinkWriter SetAlias(int index, string alias)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_NEWLINK, Rtnl.ChangeFlags), index).AttrString(Rtnl.IFLA_IFALIAS, alias, nulTerminated: false);

    /// <summary>`ip link set DEV up|down`.</summary>
    public static NetlinkWriter SetUp(int index, bool up)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_NEWLINK, Rtnl.ChangeFlags), index, up ? Rtnl.IFF_UP : 0, Rtnl.IFF_UP);

    /// <summary>`ip link set DEV name NEW`.</summary>
    public static NetlinkWriter Rename(int index, string newName)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_NEWLINK, Rtnl.ChangeFlags), index).AttrString(Rtnl.IFLA_IFNAME, newName);

    /// <summary>
    /// `ip link set DEV netns NS [name NEW]` (one message: move, then rename on arrival); <paramref name="newIndex"/> asks
    /// for an ifindex in the destination (IFLA_NEW_IFINDEX; without it the kernel keeps the link's index when it is free there).
    /// </summary>
    public static NetlinkWriter Move(int index, int namespaceFd, string? newName = null, int? newIndex = null)
    {
        var w = Ifinfo(new NetlinkWriter(Rtnl.RTM_NEWLINK, Rtnl.ChangeFlags), index).AttrU32(Rtnl.IFLA_NET_NS_FD, (uint)namespaceFd);
        if (newName != null) w.AttrString(Rtnl.IFLA_IFNAME, newName);
        if (newIndex is int ni) w.AttrS32(Rtnl.IFLA_NEW_IFINDEX, ni);
        return w;
    }

    /// <summary>`ip link set DEV mtu N`.</summary>
    public static NetlinkWriter SetMtu(int index, int mtu)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_NEWLINK, Rtnl.ChangeFlags), index).AttrU32(Rtnl.IFLA_MTU, (uint)mtu);

    /// <summary>`ip link set DEV txqueuelen N`.</summary>
    public static NetlinkWriter SetTxQueueLength(int index, uint length)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_NEWLINK, Rtnl.ChangeFlags), index).AttrU32(Rtnl.IFLA_TXQLEN, length);

    /// <summary>`ip link set DEV address MAC`.</summary>
    public static NetlinkWriter SetMacAddress(int index, ReadOnlySpan<byte> mac)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_NEWLINK, Rtnl.ChangeFlags), index).Attr(Rtnl.IFLA_ADDRESS, mac);

    /// <summary>`ip link del DEV`.</summary>
    public static NetlinkWriter Delete(int index)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_DELLINK, Rtnl.ChangeFlags), index);

    /// <summary>RTM_GETLINK by name (what ip sends to resolve `dev NAME`).</summary>
    public static NetlinkWriter GetByName(string name)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_GETLINK, Rtnl.NLM_F_REQUEST), 0)
            .AttrU32(Rtnl.IFLA_EXT_MASK, Rtnl.RTEXT_FILTER_VF | Rtnl.RTEXT_FILTER_SKIP_STATS)
            .AttrString(Rtnl.IFLA_IFNAME, name);

    /// <summary>RTM_GETLINK by alternative name (IFLA_ALT_IFNAME: the kernel finds it in its name hash, as by name).</summary>
    public static NetlinkWriter GetByAltName(string altName)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_GETLINK, Rtnl.NLM_F_REQUEST), 0)
            .AttrU32(Rtnl.IFLA_EXT_MASK, Rtnl.RTEXT_FILTER_VF | Rtnl.RTEXT_FILTER_SKIP_STATS)
            .AttrString(IFLA_ALT_IFNAME, altName);

    /// <summary>`ip link property add dev DEV altname NAME` (RTM_NEWLINKPROP).</summary>
    public static NetlinkWriter AddAltName(int index, string altName) => AltName(RTM_NEWLINKPROP, Rtnl.CreateFlags | NLM_F_APPEND, index, altName);

    // ip adds to the property list with NLM_F_APPEND as well as EXCL|CREATE (Golden/36-link-property-add-altname.hex)
    private const ushort NLM_F_APPEND = 0x800;

    /// <summary>`ip link property del dev DEV altname NAME` (RTM_DELLINKPROP).</summary>
    public static NetlinkWriter DeleteAltName(int index, string altName) => AltName(RTM_DELLINKPROP, Rtnl.ChangeFlags, index, altName);

    private static NetlinkWriter AltName(ushort type, ushort flags, int index, string altName)
    {
        var w = Ifinfo(new NetlinkWriter(type, flags), index);
        int nest = w.BeginNest(IFLA_PROP_LIST | Rtnl.NLA_F_NESTED); // the kernel requires the flag on this nest
        w.AttrString(IFLA_ALT_IFNAME, altName);
        return w.EndNest(nest);
    }

    internal const ushort RTM_NEWLINKPROP = 108, RTM_DELLINKPROP = 109, IFLA_PROP_LIST = 52, IFLA_ALT_IFNAME = 53;

    /// <summary>RTM_GETLINK by index.</summary>
    public static NetlinkWriter GetByIndex(int index)
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_GETLINK, Rtnl.NLM_F_REQUEST), index)
            .AttrU32(Rtnl.IFLA_EXT_MASK, Rtnl.RTEXT_FILTER_VF | Rtnl.RTEXT_FILTER_SKIP_STATS);

    /// <summary>`ip link show` (dump, family AF_PACKET as ip sends it).</summary>
    public static NetlinkWriter DumpLinks()
        => Ifinfo(new NetlinkWriter(Rtnl.RTM_GETLINK, Rtnl.DumpFlags), 0, family: Rtnl.AF_PACKET)
            .AttrU32(Rtnl.IFLA_EXT_MASK, Rtnl.RTEXT_FILTER_VF);

    /// <summary>`ip addr add ADDR/PREFIX dev DEV` (IFA_LOCAL and IFA_ADDRESS, no broadcast, as ip sends).</summary>
    public static NetlinkWriter AddAddress(int index, IPAddress address, int prefixLength)
        => Address(Rtnl.RTM_NEWADDR, Rtnl.CreateFlags, index, address, prefixLength);

    /// <summary>`ip addr del ADDR/PREFIX dev DEV`.</summary>
    public static NetlinkWriter DeleteAddress(int index, IPAddress address, int prefixLength)
        => Address(Rtnl.RTM_DELADDR, Rtnl.ChangeFlags, index, address, prefixLength);

    private static NetlinkWriter Address(ushort type, ushort flags, int index, IPAddress address, int prefixLength)
    {
        var bytes = address.GetAddressBytes();
        byte family = address.AddressFamily == AddressFamily.InterNetwork ? Rtnl.AF_INET : Rtnl.AF_INET6;
        var w = new NetlinkWriter(type, flags).U8(family).U8((byte)prefixLength).U8(0).U8(0).S32(index);
        w.Attr(Rtnl.IFA_LOCAL, bytes);
        w.Attr(Rtnl.IFA_ADDRESS, bytes);
        return w;
    }

    /// <summary>`ip addr show` (dump of every family; optionally one link).</summary>
    public static NetlinkWriter DumpAddresses(int index = 0)
        => new NetlinkWriter(Rtnl.RTM_GETADDR, Rtnl.DumpFlags).U8(Rtnl.AF_UNSPEC).U8(0).U8(0).U8(0).S32(index);

    /// <summary>RTM_GETNSID for a namespace fd: the id this socket's namespace knows it by.</summary>
    public static NetlinkWriter GetNamespaceId(int namespaceFd)
        => new NetlinkWriter(RTM_GETNSID, Rtnl.NLM_F_REQUEST).U8(Rtnl.AF_UNSPEC).Zeros(3).AttrU32(NETNSA_FD, (uint)namespaceFd);

    internal const ushort RTM_NEWNSID = 88, RTM_GETNSID = 90, NETNSA_NSID = 1, NETNSA_FD = 3;

    /// <summary>Decodes an RTM_NEWNSID reply; -1 when the kernel has assigned none.</summary>
    public static int ParseNamespaceId(NetlinkMessage msg)
    {
        foreach (var a in new NetlinkAttributes(msg.Payload[4..]))
            if (a.Type == NETNSA_NSID) return a.S32;
        return -1;
    }
}

/// <summary>A link as the kernel reports it in RTM_NEWLINK (decoded from bytes, no namespace context).</summary>
public sealed class LinkRecord
{
    /// <summary>ifindex.</summary>
    public int Index { get; init; }
    /// <summary>IFLA_IFNAME.</summary>
    public string Name { get; init; } = "";
    /// <summary>IFLA_INFO_KIND, e.g. veth; "" for devices without one (lo).</summary>
    public string Kind { get; init; } = "";
    /// <summary>ARPHRD type (1 = ether, 772 = loopback).</summary>
    public ushort HardwareType { get; init; }
    /// <summary>ifi_flags (IFF_*).</summary>
    public uint Flags { get; init; }
    /// <summary>IFLA_MTU.</summary>
    public int Mtu { get; init; }
    /// <summary>IFLA_ADDRESS.</summary>
    public byte[] Address { get; init; } = [];
    /// <summary>IFLA_TXQLEN.</summary>
    public uint TxQueueLength { get; init; }
    /// <summary>IFLA_IFALIAS, or null when the link has none.</summary>
    public string? Alias { get; init; }
    /// <summary>The alternative names (IFLA_PROP_LIST's IFLA_ALT_IFNAME), in the kernel's order.</summary>
    public string[] AltNames { get; init; } = [];
    /// <summary>IFLA_OPERSTATE (RFC 2863 value).</summary>
    public byte OperState { get; init; }
    /// <summary>IFLA_LINK: the peer's ifindex (in the peer's namespace), 0 when none.</summary>
    public int PeerIndex { get; init; }
    /// <summary>IFLA_LINK_NETNSID: the peer's namespace id as seen from this namespace, or null when the peer is local.</summary>
    public int? PeerNamespaceId { get; init; }

    /// <summary>Decodes one RTM_NEWLINK message.</summary>
    public static LinkRecord Parse(NetlinkMessage msg)
    {
        var p = msg.Payload;
        if (p.Length < 16) throw new InvalidOperationException("RTM_NEWLINK shorter than ifinfomsg.");
        string name = "", kind = "";
        int mtu = 0, link = 0;
        int? nsid = null;
        byte oper = 0;
        byte[] addr = [];
        uint txqlen = 0;
        string? alias = null;
        List<string>? altNames = null;
        foreach (var a in new NetlinkAttributes(p[16..]))
        {
            switch (a.Type)
            {
                case Rtnl.IFLA_IFNAME: name = a.String; break;
                case Rtnl.IFLA_MTU: mtu = a.S32; break;
                case Rtnl.IFLA_LINK: link = a.S32; break;
                case Rtnl.IFLA_ADDRESS: addr = a.Value.ToArray(); break;
                case Rtnl.IFLA_OPERSTATE: oper = a.U8; break;
                case Rtnl.IFLA_LINK_NETNSID: nsid = a.S32; break;
                case Rtnl.IFLA_TXQLEN: txqlen = a.U32; break;
                case Rtnl.IFLA_IFALIAS: alias = a.String; break;
                case LinkMessages.IFLA_PROP_LIST:
                    foreach (var i in a.Nested)
                        if (i.Type == LinkMessages.IFLA_ALT_IFNAME) (altNames ??= []).Add(i.String);
                    break;
                case Rtnl.IFLA_LINKINFO:
                    foreach (var i in a.Nested)
                        if (i.Type == Rtnl.IFLA_INFO_KIND) kind = i.String;
                    break;
            }
        }
        int index = BinaryPrimitives.ReadInt32LittleEndian(p[4..]);
        return new LinkRecord
        {
            Index = index,
            HardwareType = BinaryPrimitives.ReadUInt16LittleEndian(p[2..]),
            Flags = BinaryPrimitives.ReadUInt32LittleEndian(p[8..]),
            Name = name, Kind = kind, Mtu = mtu, Address = addr, OperState = oper, TxQueueLength = txqlen, Alias = alias,
            AltNames = altNames?.ToArray() ?? [],
            // the kernel always sends IFLA_LINK with IFLA_LINK_NETNSID, and a peer in another namespace may have our
            // own ifindex there (both are often 2); only a local IFLA_LINK equal to our index means "no peer"
            PeerIndex = link == index && nsid == null ? 0 : link,
            PeerNamespaceId = nsid,
        };
    }
}

/// <summary>An address as the kernel reports it in RTM_NEWADDR.</summary>
public sealed class AddressRecord
{
    /// <summary>ifindex of the link holding it.</summary>
    public int Index { get; init; }
    /// <summary>The address (IFA_LOCAL, else IFA_ADDRESS).</summary>
    public IPAddress Address { get; init; } = IPAddress.None;
    /// <summary>Prefix length.</summary>
    public int PrefixLength { get; init; }
    /// <summary>Scope (0 universe, 253 link, 254 host).</summary>
    public byte Scope { get; init; }
    /// <summary>IFA_LABEL when present.</summary>
    public string? Label { get; init; }

    /// <summary>Decodes one RTM_NEWADDR message.</summary>
    public static AddressRecord Parse(NetlinkMessage msg)
    {
        var p = msg.Payload;
        if (p.Length < 8) throw new InvalidOperationException("RTM_NEWADDR shorter than ifaddrmsg.");
        IPAddress? local = null, address = null;
        string? label = null;
        foreach (var a in new NetlinkAttributes(p[8..]))
        {
            switch (a.Type)
            {
                case Rtnl.IFA_LOCAL: local = new IPAddress(a.Value); break;
                case Rtnl.IFA_ADDRESS: address = new IPAddress(a.Value); break;
                case Rtnl.IFA_LABEL: label = a.String; break;
            }
        }
        return new AddressRecord
        {
            PrefixLength = p[1], Scope = p[3],
            Index = BinaryPrimitives.ReadInt32LittleEndian(p[4..]),
            Address = local ?? address ?? IPAddress.None,
            Label = label,
        };
    }
}
