using System;
using System.Buffers.Binary;
using System.Net;
using NvRedirect.Core.Links;
using NvRedirect.Core.Netlink;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// Our link/address request encoders against iproute2 6.1's bytes (Golden/*.hex). Only the fields the capture
/// README lists as varying are neutralised, each at its exact offset: nlmsg_seq (8), ifi_index/ifa_index (20) and the
/// u32 value of IFLA_NET_NS_FD. Our side is built with values that differ from the capture's, and each field is
/// checked to hold the expected value on both sides before it is overwritten, so a wrong offset fails the test.
/// </summary>
public class LinkEncoderGoldenTests
{
    private const uint OurSeq = 0xA1B2C3D4;
    private const int OurIndex = 4242;
    private const int OurFd = 77;

    /// <summary>A field that legitimately differs: where it is, and what each side must hold there.</summary>
    private sealed record Varying(string Name, int Offset, uint Ours, uint Captured);

    private static Varying Seq(byte[] captured) => new("nlmsg_seq", 8, OurSeq, BinaryPrimitives.ReadUInt32LittleEndian(captured.AsSpan(8)));

    private static void AssertSameBytes(byte[] captured, NetlinkWriter request, params Varying[] varying)
    {
        var ours = request.ToArray(OurSeq);
        var theirs = (byte[])captured.Clone();
        Assert.Equal(theirs.Length, ours.Length);
        foreach (var field in varying)
        {
            Assert.True(field.Ours == BinaryPrimitives.ReadUInt32LittleEndian(ours.AsSpan(field.Offset)),
                $"{field.Name}: our message does not hold {field.Ours} at offset {field.Offset}");
            Assert.True(field.Captured == BinaryPrimitives.ReadUInt32LittleEndian(theirs.AsSpan(field.Offset)),
                $"{field.Name}: the capture does not hold {field.Captured} at offset {field.Offset}");
            BinaryPrimitives.WriteUInt32LittleEndian(ours.AsSpan(field.Offset), 0);
            BinaryPrimitives.WriteUInt32LittleEndian(theirs.AsSpan(field.Offset), 0);
        }
        Assert.Equal(Convert.ToHexString(theirs), Convert.ToHexString(ours));
    }

    [Fact]
    public void Veth_request_matches_iproute2_capture()
    {
        // ip link add vex type veth peer name vex-peer: a new link has ifindex 0 on both ends, only seq varies
        var captured = GoldenFile.Primary("02-link-add-veth.hex");
        AssertSameBytes(captured, LinkMessages.CreateVeth("vex", "vex-peer"), Seq(captured));
    }

    [Fact]
    public void Altname_add_and_delete_match_iproute2_captures()
    {
        // ip link property add|del dev g0 altname nvr-ic-1a27f3873a27: RTM_NEWLINKPROP/RTM_DELLINKPROP with a nested
        // IFLA_PROP_LIST (NLA_F_NESTED) holding IFLA_ALT_IFNAME; g0 had ifindex 3 in the capture
        var add = GoldenFile.Primary("36-link-property-add-altname.hex");
        AssertSameBytes(add, LinkMessages.AddAltName(OurIndex, "nvr-ic-1a27f3873a27"), Seq(add), new Varying("ifi_index", 20, OurIndex, 3));
        var del = GoldenFile.Primary("37-link-property-del-altname.hex");
        AssertSameBytes(del, LinkMessages.DeleteAltName(OurIndex, "nvr-ic-1a27f3873a27"), Seq(del), new Varying("ifi_index", 20, OurIndex, 3));
    }

    [Fact]
    public void Veth_with_peer_in_another_namespace_matches_iproute2_capture()
    {
        // ip link add rsq0 type veth peer name rsqpeer netns NS: IFLA_NET_NS_FD sits inside VETH_INFO_PEER, value at 0x54
        var captured = GoldenFile.Primary("22-bonus-veth-peer-in-netns.hex");
        AssertSameBytes(captured, LinkMessages.CreateVeth("rsq0", "rsqpeer", OurFd),
            Seq(captured), new Varying("IFLA_NET_NS_FD (peer)", 0x54, OurFd, 4));
    }

    [Fact]
    public void Move_to_namespace_request_matches_iproute2_capture()
    {
        var captured = GoldenFile.Primary("03-link-set-netns.hex");
        AssertSameBytes(captured, LinkMessages.Move(OurIndex, OurFd),
            Seq(captured), new Varying("ifi_index", 20, OurIndex, 5), new Varying("IFLA_NET_NS_FD", 36, OurFd, 4));
    }

    [Fact]
    public void Move_and_rename_in_one_request_matches_iproute2_capture()
    {
        var captured = GoldenFile.Primary("23-bonus-move-and-rename.hex");
        AssertSameBytes(captured, LinkMessages.Move(OurIndex, OurFd, "rsq9"),
            Seq(captured), new Varying("ifi_index", 20, OurIndex, 10), new Varying("IFLA_NET_NS_FD", 36, OurFd, 4));
    }

    [Fact]
    public void Set_up_request_matches_iproute2_capture()
    {
        var captured = GoldenFile.Primary("04-link-set-up.hex");
        AssertSameBytes(captured, LinkMessages.SetUp(OurIndex, up: true), Seq(captured), new Varying("ifi_index", 20, OurIndex, 5));
    }

    [Fact]
    public void Rename_request_matches_iproute2_capture()
    {
        var captured = GoldenFile.Primary("05-link-rename.hex");
        AssertSameBytes(captured, LinkMessages.Rename(OurIndex, "eth0"), Seq(captured), new Varying("ifi_index", 20, OurIndex, 6));
    }

    [Fact]
    public void Address_add_request_matches_iproute2_capture()
    {
        var captured = GoldenFile.Primary("06-addr-add.hex");
        AssertSameBytes(captured, LinkMessages.AddAddress(OurIndex, IPAddress.Parse("10.10.10.88"), 24),
            Seq(captured), new Varying("ifa_index", 20, OurIndex, 6));
    }

    [Fact]
    public void Link_dump_request_matches_iproute2_capture()
    {
        // 15 marks no PRIMARY: `ip link show` sends its full RTM_GETLINK dump as msg 2 (role AUX, "full RTM_GETLINK dump")
        var captured = GoldenFile.Single("15-link-show-dump.hex", m => m.Type == Rtnl.RTM_GETLINK && m.Flags == Rtnl.DumpFlags);
        AssertSameBytes(captured, LinkMessages.DumpLinks(), Seq(captured));
    }

    [Fact]
    public void Delete_request_matches_iproute2_capture()
    {
        var captured = GoldenFile.Primary("21-link-del.hex");
        AssertSameBytes(captured, LinkMessages.Delete(OurIndex), Seq(captured), new Varying("ifi_index", 20, OurIndex, 5));
    }

    [Fact]
    public void Lookup_by_name_request_matches_iproute2_name_resolution()
    {
        // the AUX message ip sends to turn `dev vex` into an ifindex (03 msg 2): index 0, so only seq varies
        var captured = GoldenFile.Single("03-link-set-netns.hex", m => m.Type == Rtnl.RTM_GETLINK);
        AssertSameBytes(captured, LinkMessages.GetByName("vex"), Seq(captured));
    }

    [Fact]
    public void Golden_reader_returns_the_primary_message_only()
    {
        var messages = GoldenFile.Messages("03-link-set-netns.hex");
        Assert.Equal([1, 2, 3], messages.ConvertAll(m => m.Number));
        Assert.Equal([false, false, true], messages.ConvertAll(m => m.IsPrimary));
        var primary = GoldenFile.Primary("03-link-set-netns.hex");
        Assert.Equal(40, primary.Length);
        Assert.Equal(Rtnl.RTM_NEWLINK, BinaryPrimitives.ReadUInt16LittleEndian(primary.AsSpan(4)));
        Assert.Throws<System.IO.InvalidDataException>(() => GoldenFile.Primary("15-link-show-dump.hex"));
    }
}
