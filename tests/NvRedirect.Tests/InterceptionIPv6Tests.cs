using System;
using System.Linq;
using NvRedirect.Core.Bpf;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Tc;
using Xunit;

namespace NvRedirect.Tests.Tc;

/// <summary>
/// The two IPv6 steering rules of an interception: as u32 + pedit they are the seed's pref 10001 rules with protocol ipv6
/// at pref 10000 (the IPv4 bytes are golden, captured from tc), and listing knows them by role, owner and ucmac.
/// </summary>
public class InterceptionIPv6Tests
{
    private static readonly byte[] M = Convert.FromHexString("1a27f3873a27");
    private static readonly byte[] U = Convert.FromHexString("4e65755600b4");
    private const int Vex = 5, Vin = 7, Vbr = 9;

    private static MacRule Steer(ushort pref, ushort protocol, MacField field, int link)
        => new(link, pref, protocol, field, M, true, field, U, MirredAction.EgressMirror(Vbr));

    [Theory]
    [InlineData(MacField.Destination, Vex, "08-filter-vex-10001-pedit.hex")]
    [InlineData(MacField.Source, Vin, "12-filter-vin-10001-pedit.hex")]
    public void The_IPv6_rule_is_the_golden_IPv4_rule_with_pref_10000_and_protocol_ipv6_in_tcm_info(MacField field, int link, string golden)
    {
        var bytes = GoldenFile.Primary(golden);
        var v4 = TcMessages.AddFilter(Steer(Interception.SteerPriority, TcProtocol.IPv4, field, link).ToU32Filter()).ToArray(GoldenFile.Seq(bytes));
        var v6 = TcMessages.AddFilter(Steer(Interception.SteerIPv6Priority, TcProtocol.IPv6, field, link).ToU32Filter()).ToArray(GoldenFile.Seq(bytes));
        TcBytes.Equal(bytes, v4, golden);
        Assert.Equal(v4.Length, v6.Length);
        // tcmsg's tcm_info (netlink header 16 + family/pad 4 + ifindex 4 + handle 4 + parent 4): pref << 16 | htons(protocol), host order
        const int info = 16 + 4 + 4 + 4 + 4;
        var differ = Enumerable.Range(0, v4.Length).Where(i => v4[i] != v6[i]).ToArray();
        Assert.All(differ, i => Assert.InRange(i, info, info + 3));
        Assert.Equal((uint)10000 << 16 | 0xdd86, BitConverter.ToUInt32(v6, info));
        Assert.Equal((uint)10001 << 16 | 0x0008, BitConverter.ToUInt32(v4, info));
    }

    [Fact]
    public void Listing_knows_the_IPv6_u32_rules_by_role_owner_and_ucmac()
    {
        var cookie = RedirectCookie.Create(Interception.TagFor(M));
        var entry = Steer(Interception.SteerIPv6Priority, TcProtocol.IPv6, MacField.Destination, Vex).ToU32Filter(cookie);
        var inner = Steer(Interception.SteerIPv6Priority, TcProtocol.IPv6, MacField.Source, Vin).ToU32Filter(cookie);
        Assert.Equal(("entry: IPv6 to datapath", "inner: IPv6 to datapath"), (Interception.RoleOf(entry), Interception.RoleOf(inner)));
        Assert.Equal(Convert.ToHexString(Interception.TagFor(M)).ToLowerInvariant(), Interception.TagText(entry));
        Assert.Equal(U, Interception.UcMacOf(entry));
        Assert.Equal(U, Interception.UcMacOf(inner));
        // the IPv4 rules keep their roles
        Assert.Equal("entry: to datapath", Interception.RoleOf(Steer(Interception.SteerPriority, TcProtocol.IPv4, MacField.Destination, Vex).ToU32Filter(cookie)));
    }
}
