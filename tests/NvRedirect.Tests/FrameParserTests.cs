using System;
using NvRedirect.Core.Packets;
using Xunit;

namespace NvRedirect.Tests;

public class FrameParserTests
{
    // An ICMP echo request 10.10.10.66 -> 10.10.10.88 to the seed's container MAC.
    private static byte[] Icmp() => Convert.FromHexString(
        "1a27f3873a27" + "020000000001" + "0800" +
        "45000054000040004001" + "0000" + "0a0a0a42" + "0a0a0a58" +
        "0800f7ff00010001" + new string('0', 2 * 56));

    private static byte[] Tcp(byte flags = 0x02) => Convert.FromHexString(
        "1a27f3873a27" + "020000000001" + "0800" +
        "45000028000040004006" + "0000" + "0a0a0a42" + "0a0a0a58" +
        "d431" + "1f90" + "00000001" + "00000000" + "50" + flags.ToString("x2") + "ffff" + "0000" + "0000");

    [Fact]
    public void Icmp_echo_parses_macs_addresses_and_type()
    {
        Assert.Equal(FrameError.None, FrameParser.Parse(Icmp(), out var i));
        Assert.Equal("1a:27:f3:87:3a:27", FrameParser.FormatMac(i.DestinationMac));
        Assert.Equal("02:00:00:00:00:01", FrameParser.FormatMac(i.SourceMac));
        Assert.Equal(4, i.IpVersion);
        Assert.Equal(1, i.Protocol);
        Assert.Equal(0x0a0a0a42u, i.SourceIPv4);
        Assert.Equal(0x0a0a0a58u, i.DestinationIPv4);
        Assert.Equal(8, i.IcmpType);
        Assert.Equal(34, i.L4Offset);
    }

    [Fact]
    public void Tcp_syn_parses_ports_and_flags()
    {
        Assert.Equal(FrameError.None, FrameParser.Parse(Tcp(), out var i));
        Assert.Equal(6, i.Protocol);
        Assert.Equal(0xd431, i.SourcePort);
        Assert.Equal(8080, i.DestinationPort);
        Assert.Equal(0x02, i.TcpFlags);
    }

    [Fact]
    public void Vlan_tag_is_skipped_and_remembered()
    {
        var plain = Icmp();
        var tagged = new byte[plain.Length + 4];
        plain.AsSpan(0, 12).CopyTo(tagged);
        tagged[12] = 0x81; tagged[13] = 0x00; tagged[14] = 0x00; tagged[15] = 0x2a;
        plain.AsSpan(12).CopyTo(tagged.AsSpan(16));
        Assert.Equal(FrameError.None, FrameParser.Parse(tagged, out var i));
        Assert.Equal(42, i.VlanId);
        Assert.Equal(0x0800, i.EtherType);
        Assert.Equal(18, i.L3Offset);
        Assert.Equal(8, i.IcmpType);
    }

    [Fact]
    public void Ipv6_udp_parses()
    {
        var f = Convert.FromHexString("333300000001" + "020000000001" + "86dd" +
            "60000000" + "0008" + "11" + "40" + "20010db8000000000000000000000001" + "20010db8000000000000000000000002" +
            "0035" + "1234" + "0008" + "0000");
        Assert.Equal(FrameError.None, FrameParser.Parse(f, out var i));
        Assert.Equal(6, i.IpVersion);
        Assert.Equal(17, i.Protocol);
        Assert.Equal(53, i.SourcePort);
        Assert.Equal(0x1234, i.DestinationPort);
    }

    [Theory]
    [InlineData(10, FrameError.TruncatedEthernet)]
    [InlineData(20, FrameError.BadIPv4)]
    [InlineData(36, FrameError.BadIPv4)]   // total length 84 beyond the frame
    public void Truncated_frames_are_reported_not_thrown(int length, FrameError expected)
    {
        Assert.Equal(expected, FrameParser.Parse(Icmp().AsSpan(0, length), out _));
    }

    [Fact]
    public void Bad_ihl_and_bad_tcp_offset_are_rejected()
    {
        var f = Icmp(); f[14] = 0x44;                        // IHL 4 (16 bytes)
        Assert.Equal(FrameError.BadIPv4, FrameParser.Parse(f, out _));
        var t = Tcp(); t[14 + 20 + 12] = 0x40;               // data offset 4
        Assert.Equal(FrameError.BadTransport, FrameParser.Parse(t, out _));
    }

    [Fact]
    public void Arp_and_unknown_ethertypes_parse_without_l3()
    {
        var f = Icmp(); f[12] = 0x88; f[13] = 0xb5;
        Assert.Equal(FrameError.None, FrameParser.Parse(f, out var i));
        Assert.Equal(0x88b5, i.EtherType);
        Assert.Equal(0, i.IpVersion);
    }

    [Fact]
    public void Parsing_a_million_frames_allocates_nothing()
    {
        var icmp = Icmp();
        var tcp = Tcp();
        FrameParser.Parse(icmp, out _); // warm up (JIT)
        ulong sum = 0;
        long allocated = Allocations.Fewest(() =>
        {
            for (int n = 0; n < 1_000_000; n++)
            {
                FrameParser.Parse((n & 1) == 0 ? icmp : tcp, out var i);
                sum += i.DestinationMac + i.SourcePort;
            }
        });
        Assert.NotEqual(0ul, sum);
        Assert.Equal(0, allocated);
    }
}
