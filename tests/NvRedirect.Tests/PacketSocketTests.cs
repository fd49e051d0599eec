using System;
using System.Linq;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Packets;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>The one AF_PACKET opener against the kernel: the socket lives in the interface's namespace and sees only that interface.</summary>
public class PacketSocketTests
{
    [RootFact]
    public void A_socket_opened_for_one_end_of_a_pair_in_a_namespace_receives_what_the_other_end_sends()
    {
        using var ns = TestNamespace.WithVeth("pktsock", quiet: true);
        using var a = RawPacketSocket.Open(ns.Name, ns.A);
        using var b = RawPacketSocket.Open(ns.Name, ns.B);
        var frame = TestFrames.Udp(TestFrames.HostMac, TestFrames.UnicastAlias, TestFrames.ContainerIp, TestFrames.HostIp, 4242, 53);
        a.Send(frame);
        var got = b.ReceiveUntil(f => f.Any(x => x.AsSpan().SequenceEqual(frame)), TimeSpan.FromSeconds(5));
        Assert.Contains(got, x => x.AsSpan().SequenceEqual(frame));
    }

    [RootFact]
    public void An_interface_that_is_not_there_fails_the_bind_naming_it()
    {
        using var ns = TestNamespace.Create("pktsock");
        var e = Assert.Throws<SyscallException>(() => PacketSocket.Open(ns.Name, "ghost0", 999_999));
        Assert.Equal(19, e.Errno); // ENODEV
        Assert.Contains("bind a packet socket to ghost0", e.Message);
    }
}
