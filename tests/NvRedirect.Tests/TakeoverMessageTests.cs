using System;
using System.Buffers.Binary;
using System.Linq;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Links;
using NvRedirect.Core.Netlink;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The take-over's netlink messages: the new request encoders against iproute2 6.1's bytes (Golden/30-35, captured
/// with strace -e write), the replays of dumped addresses, routes and neighbours against the kernel itself (dump,
/// delete, replay, and iproute2 reads the same), and the take-over mark.
/// </summary>
public class TakeoverMessageTests
{
    private const uint OurSeq = 0xA1B2C3D4;

    /// <summary>Our bytes equal the capture's once nlmsg_seq and the listed u32 fields (offset, ours, theirs) are zeroed on both sides.</summary>
    private static void AssertSameBytes(string golden, NetlinkWriter request, params (int Offset, uint Ours, uint Captured)[] varying)
    {
        var theirs = GoldenFile.Primary(golden);
        var ours = request.ToArray(OurSeq);
        Assert.Equal(theirs.Length, ours.Length);
        foreach (var (offset, ourValue, captured) in varying.Append((8, OurSeq, BinaryPrimitives.ReadUInt32LittleEndian(theirs.AsSpan(8)))))
        {
            Assert.Equal(ourValue, BinaryPrimitives.ReadUInt32LittleEndian(ours.AsSpan(offset)));
            Assert.Equal(captured, BinaryPrimitives.ReadUInt32LittleEndian(theirs.AsSpan(offset)));
            BinaryPrimitives.WriteUInt32LittleEndian(ours.AsSpan(offset), 0);
            BinaryPrimitives.WriteUInt32LittleEndian(theirs.AsSpan(offset), 0);
        }
        Assert.Equal(Convert.ToHexString(theirs), Convert.ToHexString(ours));
    }

    [Fact]
    public void Veth_at_an_index_matches_iproute2()
    {
        // ip link add eth7 index 42 address 02:00:00:00:00:42 mtu 1400 txqueuelen 500 type veth peer name nvigold netns B mtu 1400
        AssertSameBytes("30-link-add-veth-at-index.hex",
            LinkMessages.CreateVethAt(42, "eth7", [2, 0, 0, 0, 0, 0x42], 1400, 500, "nvigold", 77), (0x70, 77, 4));
    }

    [Fact]
    public void Alias_matches_iproute2()
        => AssertSameBytes("31-link-set-alias.hex", LinkMessages.SetAlias(9, "nvredirect v1 if=eth0 ix=2"), (20, 9, 3));

    [Fact]
    public void Txqueuelen_matches_iproute2()
        => AssertSameBytes("32-link-set-txqueuelen.hex", LinkMessages.SetTxQueueLength(9, 0), (20, 9, 3));

    [Theory]
    [InlineData("33-route-show-table-all-ipv4.hex", Rtnl.AF_INET)]
    [InlineData("34-route-show-table-all-ipv6.hex", Rtnl.AF_INET6)]
    public void Route_dump_of_every_table_matches_iproute2(string golden, byte family)
        => AssertSameBytes(golden, RouteMessages.DumpRoutes(family));

    [Fact]
    public void Neighbour_dump_matches_iproute2()
        => AssertSameBytes("35-neigh-show-ipv4.hex", RouteMessages.DumpNeighbours(Rtnl.AF_INET));

    [Fact]
    public void Move_asks_for_the_ifindex_with_IFLA_NEW_IFINDEX_after_the_name()
    {
        var bytes = LinkMessages.Move(5, 77, "eth0", 2).ToArray();
        // header 16, ifinfomsg 16, IFLA_NET_NS_FD (8), IFLA_IFNAME "eth0\0" (12), then IFLA_NEW_IFINDEX = 49 with s32 2
        Assert.Equal(32 + 8 + 12 + 8, bytes.Length);
        Assert.Equal(8, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(52)));
        Assert.Equal(49, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(54)));
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(56)));
        Assert.Equal(LinkMessages.Move(5, 77, "eth0").ToArray(), bytes[..52].Select((b, i) => i < 4 ? (byte)(i == 0 ? 52 : 0) : b).ToArray());
    }

    [Fact]
    public void Route_replay_drops_cache_info_and_keeps_only_onlink_of_the_flags()
    {
        // a dumped RTM_NEWROUTE: rtmsg (AF_INET, /24, table main, proto boot, scope universe, unicast, flags LINKDOWN|ONLINK)
        var dumped = new NetlinkWriter(Rtnl.RTM_NEWROUTE, Rtnl.NLM_F_MULTI).U8(2).U8(24).U8(0).U8(0).U8(254).U8(3).U8(0).U8(1).U32(0x10 | 0x4)
            .AttrU32(Rtnl.RTA_TABLE, 254).Attr(Rtnl.RTA_DST, [198, 51, 100, 0]).Attr(Rtnl.RTA_GATEWAY, [10, 0, 0, 1]).AttrU32(Rtnl.RTA_OIF, 2)
            .Attr(Rtnl.RTA_CACHEINFO, new byte[32]).ToArray();
        var route = RtnlObject.Parse(new NetlinkMessage(dumped), 12);
        Assert.True(route.RouteUses(2));
        Assert.False(route.RouteUses(3));
        Assert.Equal(254u, route.RouteTable);
        var replay = RouteMessages.AddRoute(route).ToArray();
        var expected = new NetlinkWriter(Rtnl.RTM_NEWROUTE, Rtnl.CreateFlags).U8(2).U8(24).U8(0).U8(0).U8(254).U8(3).U8(0).U8(1).U32(0x4)
            .AttrU32(Rtnl.RTA_TABLE, 254).Attr(Rtnl.RTA_DST, [198, 51, 100, 0]).Attr(Rtnl.RTA_GATEWAY, [10, 0, 0, 1]).AttrU32(Rtnl.RTA_OIF, 2).ToArray();
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(replay));
    }

    [Fact]
    public void Address_replay_leaves_the_kernels_own_flags_to_it()
    {
        // ifaddrmsg: AF_INET6 /64, flags PERMANENT|NODAD (0x80|0x02), scope global, index 2; IFA_FLAGS TENTATIVE|NODAD|NOPREFIXROUTE
        var dumped = new NetlinkWriter(Rtnl.RTM_NEWADDR, Rtnl.NLM_F_MULTI).U8(10).U8(64).U8(0x82).U8(0).S32(2)
            .Attr(Rtnl.IFA_ADDRESS, new byte[16]).AttrU32(Rtnl.IFA_FLAGS, 0x40 | 0x02 | 0x200).ToArray();
        var replay = RouteMessages.AddAddress(RtnlObject.Parse(new NetlinkMessage(dumped), 8)).ToArray();
        Assert.Equal(Rtnl.RTM_NEWADDR, BinaryPrimitives.ReadUInt16LittleEndian(replay.AsSpan(4)));
        Assert.Equal(Rtnl.CreateFlags, BinaryPrimitives.ReadUInt16LittleEndian(replay.AsSpan(6)));
        Assert.Equal(0x02, replay[18]);
        Assert.Equal(0x202u, BinaryPrimitives.ReadUInt32LittleEndian(replay.AsSpan(replay.Length - 4)));
    }

    [Fact]
    public void Dumped_addresses_routes_and_neighbours_replayed_read_the_same_to_iproute2()
    {
        using var ns = TestNamespace.Create("replay");
        // no DAD in this namespace: an address replayed would otherwise read "tentative" for a while
        Ip.Run("netns", "exec", ns.Name, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0");
        Ip.Run("-n", ns.Name, "link", "add", "r0", "type", "veth", "peer", "name", "r1");
        Ip.Run("-n", ns.Name, "link", "set", "r0", "up");
        Ip.Run("-n", ns.Name, "link", "set", "r1", "up");
        Ip.Run("-n", ns.Name, "addr", "add", "172.31.62.10/24", "brd", "172.31.62.255", "dev", "r0");
        Ip.Run("-n", ns.Name, "addr", "add", "172.31.62.20/24", "dev", "r0", "label", "r0:x");
        Ip.Run("-n", ns.Name, "-6", "addr", "add", "fd00:62::10/64", "dev", "r0", "nodad", "valid_lft", "3600", "preferred_lft", "1800");
        Ip.Run("-n", ns.Name, "route", "add", "198.51.100.0/24", "via", "172.31.62.1", "metric", "50", "src", "172.31.62.10");
        Ip.Run("-n", ns.Name, "route", "add", "203.0.113.0/24", "via", "172.31.62.1", "table", "100");
        Ip.Run("-n", ns.Name, "-6", "route", "add", "2001:db8:62::/64", "via", "fd00:62::1", "metric", "300");
        Ip.Run("-n", ns.Name, "neigh", "add", "172.31.62.99", "lladdr", "02:00:00:00:62:99", "dev", "r0", "nud", "permanent");

        string Witness() => string.Join("\n",
            Ip.Run("-n", ns.Name, "-j", "addr", "show", "dev", "r0").Replace("\"valid_life_time\":", "\"v\":"),
            Ip.Run("-n", ns.Name, "-4", "-j", "route", "show", "table", "all", "dev", "r0"), Ip.Run("-n", ns.Name, "-6", "-j", "route", "show", "table", "all", "dev", "r0"),
            Ip.Run("-n", ns.Name, "-j", "neigh", "show", "nud", "permanent"));
        // lifetimes count down, and the peer r1 is new (its ifindex may differ)
        static string WithoutLifetimes(string s) => System.Text.RegularExpressions.Regex.Replace(s, "\"(v|preferred_life_time|link_index)\":\\d+", "\"$1\":_");
        var before = WithoutLifetimes(Witness());

        using var h = RouteHandle.Open(ns.Name);
        var link = h.GetLink("r0");
        var state = InterfaceState.Capture(h, NvRedirect.Core.Namespaces.NetworkNamespace.PathOf(ns.Name), link);
        Assert.Equal(2, state.Addresses.Count(a => a.Family == Rtnl.AF_INET));
        Assert.Contains(state.Addresses, a => a.Family == Rtnl.AF_INET6 && a.Attribute(Rtnl.IFA_ADDRESS)![0] == 0xfd);
        Assert.Equal(3, state.Routes.Count);
        Assert.Single(state.Neighbours);

        // as in a take-over: the link goes (its addresses, routes and neighbours with it) and a new one takes its index and MAC
        Ip.Run("-n", ns.Name, "link", "del", "r0");
        using (var self = RouteHandle.OpenNamespaceFd(ns.Name))
            h.Socket.Execute(LinkMessages.CreateVethAt(link.Index, "r0", link.Address, link.Mtu, link.TxQueueLength, "r1", self.Fd), "create r0 again");
        Ip.Run("-n", ns.Name, "link", "set", "r1", "up");
        Assert.NotEqual(before, WithoutLifetimes(Witness()));

        state.Apply(h, link.Index);
        Assert.Equal(before, WithoutLifetimes(Witness()));
    }

    [Fact]
    public void Take_over_mark_round_trips_and_fits_the_alias()
    {
        var mark = new TakeoverMark("eth0", 2, 4026532373, "/run/netns/with space", 4242, "podman", "web 1", new string('a', 64), "/tmp/dp_listen.sock");
        var alias = mark.ToAlias();
        Assert.StartsWith(ContainerTakeover.AliasPrefix, alias);
        Assert.True(alias.Length <= 255);
        Assert.Equal(mark with { ContainerId = new string('a', 12) }, TakeoverMark.Parse(alias));
        Assert.Null(TakeoverMark.Parse("some admin's alias"));
        Assert.Null(TakeoverMark.Parse(ContainerTakeover.AliasPrefix + "if=eth0"));
        Assert.Throws<ArgumentException>(() => (mark with { NetnsPath = "/" + new string('x', 250) }).ToAlias());
        Assert.Matches("^nvx[0-9a-f]{10}$", ContainerTakeover.EntryName(4026532373, "eth0"));
        Assert.Equal(ContainerTakeover.EntryName(1, "eth0")[3..], ContainerTakeover.InnerName(1, "eth0")[3..]);
        Assert.NotEqual(ContainerTakeover.EntryName(1, "eth0"), ContainerTakeover.EntryName(2, "eth0"));
    }
}
