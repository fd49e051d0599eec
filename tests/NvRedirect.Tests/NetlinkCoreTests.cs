using System;
using System.IO;
using System.Linq;
using System.Net;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>The netlink socket, namespace thread and message parsing against the real kernel and crafted bytes.</summary>
public class NetlinkCoreTests
{
    /// <summary>The calling thread's namespace as the kernel names it ("net:[4026531840]"), read without project code.</summary>
    private static string ThreadNamespace() => new FileInfo("/proc/thread-self/ns/net").LinkTarget!;

    [RootFact]
    public void Kernel_extack_text_reaches_the_exception()
    {
        using var ns = TestNamespace.Create("extack");
        using var h = RouteHandle.Open(ns.Name);
        h.CreateVeth("xe0", "xe1", null);
        var link = h.GetLink("xe0");
        h.AddAddress(link, IPAddress.Parse("10.10.10.7"), 24);

        var e = Assert.Throws<NetlinkException>(() => h.AddAddress(link, IPAddress.Parse("10.10.10.7"), 24));
        Assert.Equal(17, e.Errno);
        // the kernel's own text (net/ipv4/devinet.c); `ip` prints it with a '.' appended
        Assert.Equal("ipv4: Address already assigned", e.KernelMessage);
        Assert.Contains("kernel says: ipv4: Address already assigned", e.Message);
        Assert.Contains("EEXIST", e.Message);
    }

    [RootFact]
    public void Unknown_link_name_gives_LinkNotFoundException()
    {
        using var ns = TestNamespace.Create("nolink");
        using var h = RouteHandle.Open(ns.Name);
        Assert.Null(h.FindLink("xnosuch0"));
        var e = Assert.Throws<LinkNotFoundException>(() => h.GetLink("xnosuch0"));
        Assert.Equal("xnosuch0", e.Name);
        Assert.Equal(19, e.Errno);
        Assert.Contains(ns.Name, e.Message);
    }

    [RootFact]
    public void Socket_opened_through_RunIn_sees_the_namespace_while_the_caller_stays_put()
    {
        using var ns = TestNamespace.Create("runin");
        using (var h = RouteHandle.Open(ns.Name)) h.CreateVeth("xr0", "xr1", null);
        // the root namespace here is the process's own (its main thread's), see RouteHandle
        string rootNs = new FileInfo("/proc/self/ns/net").LinkTarget!;
        string before = ThreadNamespace();
        Assert.Equal(rootNs, before);

        string? inside = null;
        using var socket = NamespaceThread.RunIn(NetworkNamespace.PathOf(ns.Name), () =>
        {
            inside = ThreadNamespace();
            return NetlinkSocket.OpenInCurrentNamespace();
        });

        Assert.Equal(before, ThreadNamespace());
        Assert.Equal($"net:[{NetworkNamespace.Describe(ns.Name)!.Inode}]", inside);
        var names = socket.Dump(LinkMessages.DumpLinks(), "list links").Where(m => m.Type == Rtnl.RTM_NEWLINK)
                          .Select(m => LinkRecord.Parse(m).Name).Order().ToArray();
        Assert.Equal(["lo", "xr0", "xr1"], names);
        Assert.Equal(Ip.Json("-n", ns.Name, "link", "show").Select(l => l.Str("ifname")).Order(), names);
        Assert.Equal(before, ThreadNamespace());
    }

    [RootFact]
    public void Dump_returns_every_link_when_there_are_many()
    {
        const int Pairs = 50;
        using var ns = TestNamespace.Create("many");
        using var h = RouteHandle.Open(ns.Name);
        for (int i = 0; i < Pairs; i++) h.CreateVeth($"xm{i}a", $"xm{i}b", null);

        int requests = 0;
        h.Socket.RequestSent = _ => requests++;
        var links = h.DumpLinks();
        h.Socket.RequestSent = null;

        Assert.Equal(1, requests); // one dump, however many receive buffers the reply needs
        Assert.Equal(2 * Pairs + 1, links.Count);
        Assert.Equal(links.Count, links.Select(l => l.Index).Distinct().Count());
        var expected = Enumerable.Range(0, Pairs).SelectMany(i => new[] { $"xm{i}a", $"xm{i}b" }).Append("lo").Order();
        Assert.Equal(expected, links.Select(l => l.Name).Order());
        Assert.Equal(Ip.Json("-n", ns.Name, "link", "show").Select(l => l.Str("ifname")).Order(), links.Select(l => l.Name).Order());
    }

    /// <summary>Attribute bytes: type 3 "ab\0" (len 7, 1 pad byte) then type 4 u32 7.</summary>
    private static byte[] TwoAttributes() => [7, 0, 3, 0, (byte)'a', (byte)'b', 0, 0, 8, 0, 4, 0, 7, 0, 0, 0];

    private static ushort[] Types(ReadOnlySpan<byte> bytes)
    {
        var types = new System.Collections.Generic.List<ushort>();
        foreach (var a in new NetlinkAttributes(bytes)) types.Add(a.Type);
        return types.ToArray();
    }

    [Fact]
    public void Attributes_parse_a_well_formed_span()
    {
        var bytes = TwoAttributes();
        Assert.Equal([3, 4], Types(bytes));
        var e = new NetlinkAttributes(bytes).GetEnumerator();
        Assert.True(e.MoveNext());
        Assert.Equal("ab", e.Current.String);
        Assert.True(e.MoveNext());
        Assert.Equal(7u, e.Current.U32);
        Assert.False(e.MoveNext());
    }

    [Theory]
    [InlineData(15, new ushort[] { 3 })] // second attribute cut in its value
    [InlineData(11, new ushort[] { 3 })] // second attribute cut in its header
    [InlineData(8, new ushort[] { 3 })]  // exactly the first attribute, padding included
    [InlineData(7, new ushort[] { 3 })]  // the first attribute without its padding
    [InlineData(6, new ushort[0])]       // first attribute shorter than its nla_len
    [InlineData(3, new ushort[0])]       // not even a header
    public void Attributes_stop_cleanly_on_truncated_input(int length, ushort[] expected)
        => Assert.Equal(expected, Types(TwoAttributes().AsSpan(0, length)));

    [Fact]
    public void Attributes_stop_at_an_impossible_length()
    {
        var bytes = TwoAttributes();
        bytes[8] = 2; // second nla_len below the 4-byte header
        Assert.Equal([3], Types(bytes));
        bytes[8] = 200; // second nla_len beyond the span
        Assert.Equal([3], Types(bytes));
        var nested = new byte[] { 12, 0, 0x01, 0x80, 8, 0, 1, 0, 5, 0, 0, 0 };
        nested[4] = 40; // child claims more than its parent holds
        var e = new NetlinkAttributes(nested).GetEnumerator();
        Assert.True(e.MoveNext());
        Assert.True(e.Current.IsNested);
        Assert.False(e.Current.Nested.GetEnumerator().MoveNext());
    }

    private static byte[] Message(int length, ushort type, int declaredLength)
    {
        var bytes = new byte[length];
        BitConverter.TryWriteBytes(bytes.AsSpan(0), (uint)declaredLength);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), type);
        return bytes;
    }

    [Fact]
    public void Split_separates_padded_messages()
    {
        // 20-byte message, then a 24-byte one: no padding needed between them; a 22-byte one is padded to 24
        byte[] stream = [.. Message(20, Rtnl.NLMSG_ERROR, 20), .. Message(24, Rtnl.NLMSG_DONE, 22), .. Message(16, Rtnl.NLMSG_NOOP, 16)];
        var messages = NetlinkMessage.Split(stream);
        Assert.Equal([Rtnl.NLMSG_ERROR, Rtnl.NLMSG_DONE, Rtnl.NLMSG_NOOP], messages.Select(m => m.Type));
        Assert.Equal([20, 22, 16], messages.Select(m => m.Bytes.Length));
    }

    [Theory]
    [InlineData(0)]   // would loop forever if accepted
    [InlineData(15)]  // shorter than nlmsghdr
    [InlineData(33)]  // longer than the buffer
    public void Split_rejects_a_bad_nlmsg_len(int declared)
    {
        byte[] stream = [.. Message(16, Rtnl.NLMSG_NOOP, 16), .. Message(16, Rtnl.NLMSG_DONE, declared)];
        var e = Assert.Throws<InvalidOperationException>(() => NetlinkMessage.Split(stream));
        Assert.Contains($"nlmsg_len {declared}", e.Message);
    }
}
