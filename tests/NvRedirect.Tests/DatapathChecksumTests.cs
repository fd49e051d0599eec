using System;
using System.Buffers.Binary;
using NvRedirect.Core.Packets;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// Checksum completion against frames the kernel built with transmit checksum offload off, captured with
/// tcpdump -xx -vv on the receiving veth, which reported each checksum "ok"/"correct".
/// </summary>
public class DatapathChecksumTests
{
    // 192.0.2.1:40000 -> 192.0.2.2:9999 UDP "hello nvr-dp checksum!", udp sum 0x628d
    internal const string Udp4 =
        "e292bc2d26a8f6c0210ed1770800" + "4500" + "0032be4640004011f870c0000201c0000202" +
        "9c40270f001e628d" + "68656c6c6f206e76722d647020636865636b73756d21";

    // 192.0.2.1:40001 -> 192.0.2.2:8080 TCP SYN with options, cksum 0x5f55
    internal const string TcpSyn4 =
        "e292bc2d26a8f6c0210ed1770800" + "4500003cdcdf40004006d9d8c0000201c0000202" +
        "9c411f90b25d34e800000000a002faf05f550000" + "020405b40402080af8d4cdc6000000000103030a";

    // 192.0.2.2:8080 -> 192.0.2.1:40001 TCP RST/ACK, cksum 0x88b4
    internal const string TcpRst4 =
        "f6c0210ed177e292bc2d26a80800" + "4500002800004000" + "4006b6ccc0000202c0000201" +
        "1f909c4100000000b25d34e95014000088b40000";

    // [2001:db8::1]:40002 -> [2001:db8::2]:53 UDP, 15-byte (odd) payload, udp sum 0x9659
    internal const string Udp6 =
        "7656e2a60d7a6e57cb26b54186dd" + "600598f700171140" + "20010db8000000000000000000000001" +
        "20010db8000000000000000000000002" + "9c42003500179659" + "7636206f6464206c656e6774682121";

    [Theory]
    [InlineData(Udp4, 40, 0x628d)]
    [InlineData(TcpSyn4, 50, 0x5f55)]
    [InlineData(TcpRst4, 50, 0x88b4)]
    [InlineData(Udp6, 60, 0x9659)]
    public void Kernel_checksums_verify_and_are_reproduced_from_a_zeroed_or_partial_field(string hex, int field, int expected)
    {
        var frame = Convert.FromHexString(hex);
        Assert.True(Checksum.VerifyTransportChecksum(frame, 14));

        frame[field] ^= 0x01;
        Assert.False(Checksum.VerifyTransportChecksum(frame, 14));
        frame[field] = 0; frame[field + 1] = 0;
        Assert.True(Checksum.CompleteTransportChecksum(frame, 14));
        Assert.Equal(expected, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(field)));

        // what veth hands AF_PACKET with TX offload on: the folded pseudo-header sum, not complemented
        Assert.Equal(FrameError.None, FrameParser.Parse(frame, out _));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(field), 0x1234);
        Assert.True(Checksum.CompleteTransportChecksum(frame, 14));
        Assert.Equal(expected, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(field)));
        Assert.Equal(Convert.FromHexString(hex), frame);
    }

    [Fact]
    public void Ipv4_header_checksum_matches_the_kernel()
    {
        var frame = Convert.FromHexString(TcpSyn4);
        Assert.Equal(0xd9d8, Checksum.IPv4HeaderChecksum(frame.AsSpan(14, 20)));
    }

    [Fact]
    public void Non_tcp_udp_and_fragments_and_truncated_packets_are_left_alone()
    {
        var icmp = Convert.FromHexString(Udp4);
        icmp[14 + 9] = 1;
        var copy = (byte[])icmp.Clone();
        Assert.False(Checksum.CompleteTransportChecksum(icmp, 14));
        Assert.Equal(copy, icmp);

        var fragment = Convert.FromHexString(Udp4);
        fragment[14 + 6] = 0x20; // MF
        Assert.False(Checksum.CompleteTransportChecksum(fragment, 14));

        var truncated = Convert.FromHexString(Udp4).AsSpan(0, 40).ToArray();
        Assert.False(Checksum.CompleteTransportChecksum(truncated, 14));
    }

    [Fact]
    public void Udp_that_sums_to_zero_is_sent_as_all_ones()
    {
        // Search the 16-bit payload value that makes the computed checksum 0, then check it is written as 0xffff.
        var frame = Convert.FromHexString(Udp4);
        for (int v = 0; v < 0x10000; v++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(42), (ushort)v);
            Checksum.CompleteTransportChecksum(frame, 14);
            if (BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(40)) == 0xffff)
            {
                Assert.True(Checksum.VerifyTransportChecksum(frame, 14));
                return;
            }
        }
        Assert.Fail("no payload value produced a zero checksum");
    }
}
