using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Text.Json;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Netlink;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// LinkRecord/AddressRecord decode real kernel replies, and LinkQuery turns them into the right objects:
/// every field is compared with what `ip -j` reports for the same namespace.
/// </summary>
public class LinkDecoderTests
{
    private const string Mac = "02:aa:bb:cc:dd:01";

    /// <summary>The flag names both ip and we print; ip hides RUNNING and adds NO-CARRIER/M-DOWN of its own.</summary>
    private static readonly string[] ComparedFlags = ["UP", "BROADCAST", "LOOPBACK", "NOARP", "PROMISC", "MULTICAST", "LOWER_UP"];

    private static readonly (uint Bit, string Name)[] FlagBits =
    [
        (Rtnl.IFF_UP, "UP"), (Rtnl.IFF_BROADCAST, "BROADCAST"), (Rtnl.IFF_LOOPBACK, "LOOPBACK"), (Rtnl.IFF_NOARP, "NOARP"),
        (Rtnl.IFF_PROMISC, "PROMISC"), (Rtnl.IFF_MULTICAST, "MULTICAST"), (Rtnl.IFF_LOWER_UP, "LOWER_UP"),
    ];

    private static string[] Compared(IEnumerable<string> names) => names.Where(ComparedFlags.Contains).Order().ToArray();
    private static string[] FlagNames(uint flags) => FlagBits.Where(f => (flags & f.Bit) != 0).Select(f => f.Name).Order().ToArray();

    /// <summary>A namespace with veth xa0/xb0 both up, xa0 with a set MAC and MTU, an IPv4 and an IPv6 address.</summary>
    private static void BuildVethScene(TestNamespace ns)
    {
        using var h = RouteHandle.Open(ns.Name);
        h.CreateVeth("xa0", "xb0", null);
        var a = h.GetLink("xa0");
        h.SetMacAddress(a, Parse.Mac(Mac));
        h.SetMtu(a, 1400);
        h.SetUp(a, true);
        h.SetUp(h.GetLink("xb0"), true);
        h.AddAddress(a, IPAddress.Parse("10.10.10.1"), 24);
        h.AddAddress(a, IPAddress.Parse("2001:db8::1"), 64);

        // carrier, operstate and IPv6 link-local addresses arrive asynchronously (linkwatch): wait until they settle
        bool Settled()
        {
            var links = Ip.Json("-n", ns.Name, "addr", "show").Where(l => l.Str("ifname") is "xa0" or "xb0").ToArray();
            return links.Length == 2 && links.All(l =>
                l.Flags().Contains("LOWER_UP") && l.Str("operstate") == "UP" &&
                l.GetProperty("addr_info").EnumerateArray().Any(i => i.Str("local")!.StartsWith("fe80:", StringComparison.Ordinal)));
        }
        Assert.True(Eventually.True(Settled), "the veth pair never reached carrier with link-local addresses");
    }

    [RootFact]
    public void Link_records_match_ip_link_show()
    {
        using var ns = TestNamespace.Create("dec");
        BuildVethScene(ns);
        using var h = RouteHandle.Open(ns.Name);

        var records = h.DumpLinks();
        var ip = Ip.Json("-d", "-n", ns.Name, "link", "show");
        Assert.Equal(ip.Select(l => l.GetProperty("ifindex").GetInt32()).Order(), records.Select(r => r.Index).Order());
        Assert.Equal(["lo", "xa0", "xb0"], records.Select(r => r.Name).Order());
        var indexByName = ip.ToDictionary(l => l.Str("ifname")!, l => l.GetProperty("ifindex").GetInt32());

        foreach (var r in records)
        {
            var l = ip.Single(x => x.GetProperty("ifindex").GetInt32() == r.Index);
            Assert.Equal(l.Str("ifname"), r.Name);
            Assert.Equal(l.Str("address"), Parse.Mac(r.Address));
            Assert.Equal(l.GetProperty("mtu").GetInt32(), r.Mtu);
            Assert.Equal(Compared(l.Flags()), FlagNames(r.Flags));
            Assert.Equal(l.Flags().Contains("UP"), (r.Flags & Rtnl.IFF_UP) != 0);
            string kind = l.TryGetProperty("linkinfo", out var info) ? info.Str("info_kind") ?? "" : "";
            Assert.Equal(kind, r.Kind);
            // same-namespace peer: ip prints its name as "link"
            int peer = l.Str("link") is string peerName ? indexByName[peerName] : 0;
            Assert.Equal(peer, r.PeerIndex);
            Assert.Null(r.PeerNamespaceId);
        }

        var xa0 = records.Single(r => r.Name == "xa0");
        var xb0 = records.Single(r => r.Name == "xb0");
        Assert.Equal(Mac, Parse.Mac(xa0.Address));
        Assert.Equal(1400, xa0.Mtu);
        Assert.Equal("veth", xa0.Kind);
        Assert.Equal(xb0.Index, xa0.PeerIndex);
        Assert.Equal(xa0.Index, xb0.PeerIndex);
        Assert.Equal(0, records.Single(r => r.Name == "lo").PeerIndex);
    }

    [RootFact]
    public void Address_records_match_ip_addr_show()
    {
        using var ns = TestNamespace.Create("dec");
        BuildVethScene(ns);
        using var h = RouteHandle.Open(ns.Name);

        var ours = h.DumpAddresses()
            .Select(a => (a.Index, a.Address, a.PrefixLength, Scope: (int)a.Scope)).OrderBy(a => a.ToString()).ToArray();
        var theirs = Ip.Json("-n", ns.Name, "addr", "show")
            .SelectMany(l => l.GetProperty("addr_info").EnumerateArray().Select(i => (
                Index: l.GetProperty("ifindex").GetInt32(),
                Address: IPAddress.Parse(i.Str("local")!),
                PrefixLength: i.GetProperty("prefixlen").GetInt32(),
                Scope: i.Str("scope") switch { "global" => 0, "link" => 253, "host" => 254, var s => throw new InvalidOperationException(s) })))
            .OrderBy(a => a.ToString()).ToArray();
        Assert.Equal(theirs, ours);

        int xa0 = h.GetLink("xa0").Index;
        Assert.Contains((xa0, IPAddress.Parse("10.10.10.1"), 24, 0), ours);
        Assert.Contains((xa0, IPAddress.Parse("2001:db8::1"), 64, 0), ours);
    }

    [RootFact]
    public void Link_query_objects_match_ip()
    {
        using var ns = TestNamespace.Create("dec");
        BuildVethScene(ns);
        using var q = new LinkQuery();

        var links = q.Links(ns.Name);
        var ip = Ip.Json("-d", "-n", ns.Name, "addr", "show");
        Assert.Equal(ip.Select(l => l.Str("ifname")).Order(), links.Select(l => l.Name).Order());
        var indexByName = ip.ToDictionary(l => l.Str("ifname")!, l => l.GetProperty("ifindex").GetInt32());
        foreach (var link in links)
        {
            var l = ip.Single(x => x.Str("ifname") == link.Name);
            Assert.Equal(ns.Name, link.Namespace);
            Assert.Equal(l.GetProperty("ifindex").GetInt32(), link.Index);
            Assert.Equal(l.Str("address"), link.MacAddress);
            Assert.Equal(l.GetProperty("mtu").GetInt32(), link.Mtu);
            Assert.Equal(l.Flags().Contains("UP") ? "Up" : "Down", link.State);
            Assert.Equal(l.Str("operstate")!.ToLowerInvariant(), link.OperState);
            Assert.Equal(Compared(l.Flags()), Compared(link.Flags));
            Assert.Equal(l.TryGetProperty("linkinfo", out var info) ? info.Str("info_kind") : "", link.Kind);
            string? peerName = l.Str("link");
            Assert.Equal(peerName, link.PeerName);
            Assert.Equal(peerName is null ? 0 : indexByName[peerName], link.PeerIndex);
            Assert.Equal(peerName is null ? null : ns.Name, link.PeerNamespace);
            var addresses = l.GetProperty("addr_info").EnumerateArray()
                .Select(i => $"{IPAddress.Parse(i.Str("local")!)}/{i.GetProperty("prefixlen").GetInt32()}").Order();
            Assert.Equal(addresses, link.Addresses.Order());
        }
        var xa0 = links.Single(l => l.Name == "xa0");
        Assert.Equal(("xb0", "veth", Mac, 1400, "Up"), (xa0.PeerName, xa0.Kind, xa0.MacAddress, xa0.Mtu, xa0.State));
        Assert.Contains("10.10.10.1/24", xa0.Addresses);
        Assert.Contains("2001:db8::1/64", xa0.Addresses);

        var objects = q.Addresses(ns.Name);
        var expected = ip.SelectMany(l => l.GetProperty("addr_info").EnumerateArray().Select(i =>
                $"{l.Str("ifname")} {l.GetProperty("ifindex").GetInt32()} {(i.Str("family") == "inet" ? "IPv4" : "IPv6")} " +
                $"{IPAddress.Parse(i.Str("local")!)}/{i.GetProperty("prefixlen").GetInt32()} {i.Str("scope")}"))
            .Order();
        Assert.Equal(expected, objects.Select(a => $"{a.LinkName} {a.LinkIndex} {a.Family} {a.Address} {a.Scope}").Order());
        Assert.All(objects, a => Assert.Equal(ns.Name, a.Namespace));
    }

    [RootFact]
    public void Veth_without_a_peer_namespace_keeps_both_ends_in_the_handle_namespace()
    {
        using var ns = TestNamespace.Create("pair");
        using var h = RouteHandle.Open(ns.Name);
        h.CreateVeth("xq0", "xq1", null);
        var q0 = h.GetLink("xq0");
        var q1 = h.GetLink("xq1");
        Assert.Equal((q1.Index, (int?)null), (q0.PeerIndex, q0.PeerNamespaceId));
        Assert.Equal(q0.Index, q1.PeerIndex);
        using var root = RouteHandle.Open("");
        Assert.Null(root.FindLink("xq1")); // read-only look at the root namespace
    }

    [RootFact]
    public void Veth_peer_in_another_namespace_resolves_both_ways()
    {
        using var left = TestNamespace.Create("peer-l");
        using var right = TestNamespace.Create("peer-r");
        using (var h = RouteHandle.Open(left.Name))
            h.CreateVeth("xc0", "xd0", right.Name);

        using var q = new LinkQuery();
        var xc0 = q.Links(left.Name).Single(l => l.Name == "xc0");
        var xd0 = q.Links(right.Name).Single(l => l.Name == "xd0");
        Assert.Equal((right.Name, "xd0", xd0.Index), (xc0.PeerNamespace, xc0.PeerName, xc0.PeerIndex));
        Assert.Equal((left.Name, "xc0", xc0.Index), (xd0.PeerNamespace, xd0.PeerName, xd0.PeerIndex));
        Assert.DoesNotContain(q.Links(left.Name), l => l.Name == "xd0");

        // the single-link path resolves the same way
        var single = q.Link(left.Name, "xc0");
        Assert.Equal((right.Name, "xd0"), (single.PeerNamespace, single.PeerName));

        // the raw records carry what ip shows: the peer's ifindex there and the peer namespace's id seen from here
        foreach (var (ns, name) in new[] { (left, "xc0"), (right, "xd0") })
        {
            var record = q.Handle(ns.Name).GetLink(name);
            var l = Ip.Json("-n", ns.Name, "link", "show", "dev", name).Single();
            Assert.Equal(l.GetProperty("link_index").GetInt32(), record.PeerIndex);
            Assert.Equal(l.GetProperty("link_netnsid").GetInt32(), record.PeerNamespaceId);
        }
    }
}
