using System;
using NvRedirect.Core.Bpf;
using NvRedirect.Core.Tc;
using Xunit;

namespace NvRedirect.Tests.Tc;

/// <summary>The typed seed rule produces the seed's exact tc bytes and the matching cls_bpf program.</summary>
public class MacRuleTests
{
    private static readonly byte[] M = Convert.FromHexString("1a27f3873a27");
    private static readonly byte[] U = Convert.FromHexString("4e65755600b4");
    private const int Vex = 5, Vin = 7, Vbr = 9;

    private static void AssertSame(string file, U32Filter filter)
    {
        var golden = GoldenFile.Primary(file);
        TcBytes.Equal(golden, TcMessages.AddFilter(filter).ToArray(GoldenFile.Seq(golden)), file);
    }

    [Fact]
    public void Vex_10001_rule_encodes_like_capture_08()
        => AssertSame("08-filter-vex-10001-pedit.hex", new MacRule(Vex, 10001, TcProtocol.IPv4, MacField.Destination, M, true,
            MacField.Destination, U, MirredAction.EgressMirror(Vbr)).ToU32Filter());

    [Fact]
    public void Vbr_5_rule_encodes_like_capture_10()
        => AssertSame("10-filter-vbr-5-pedit.hex", new MacRule(Vbr, 5, TcProtocol.All, MacField.Destination, U, false,
            MacField.Destination, M, MirredAction.EgressMirror(Vin)).ToU32Filter());

    [Fact]
    public void Vin_10001_rule_encodes_like_capture_12()
        => AssertSame("12-filter-vin-10001-pedit.hex", new MacRule(Vin, 10001, TcProtocol.IPv4, MacField.Source, M, true,
            MacField.Source, U, MirredAction.EgressMirror(Vbr)).ToU32Filter());

    [Fact]
    public void Vbr_172_rule_encodes_like_capture_13()
        => AssertSame("13-filter-vbr-172-pedit.hex", new MacRule(Vbr, 172, TcProtocol.All, MacField.Source, U, false,
            MacField.Source, M, MirredAction.EgressMirror(Vex)).ToU32Filter());

    [Fact]
    public void Cookie_goes_on_every_action_and_nowhere_else()
    {
        var cookie = new byte[16];
        var rule = new MacRule(Vex, 10001, TcProtocol.IPv4, MacField.Destination, M, true, MacField.Destination, U, MirredAction.EgressMirror(Vbr));
        var plain = TcMessages.AddFilter(rule.ToU32Filter()).ToArray(1);
        var tagged = TcMessages.AddFilter(rule.ToU32Filter(cookie)).ToArray(1);
        Assert.Equal(plain.Length + 2 * (4 + 16), tagged.Length);
        Assert.All(rule.ToU32Filter(cookie).Actions, a => Assert.Same(cookie, a.Cookie));
    }

    [Fact]
    public void Bpf_program_of_the_vex_rule_is_the_verified_template()
    {
        var rule = new MacRule(Vex, 10001, TcProtocol.IPv4, MacField.Destination, M, true, MacField.Destination, U, MirredAction.EgressMirror(Vbr));
        var expected = new MacRewriteProgram(MacField.Destination, M, MacField.Destination, U, Vbr,
            RequireUnicastDestination: true, RequireIPv4: true).Assemble();
        Assert.Equal(expected, rule.ToBpfProgram());
        Assert.Equal(34 * 8, expected.Length);
    }
}
