using System;
using System.Linq;
using NvRedirect.Core.Bpf;
using Xunit;

namespace NvRedirect.Tests;

public class BpfProgramTests
{
    private static readonly byte[] Container = Convert.FromHexString("1a27f3873a27");
    private static readonly byte[] UcMac = Convert.FromHexString("4e65755600b4");

    // docs/kernel-interfaces.md, "The program": the verified listing for vex pref 10001 (dst match, unicast + IPv4 checks, mirror to T=9)
    private const string VexListing =
        "bf16000000000000 b702000000000000 bfa3000000000000 07030000f0ffffff b70400000c000000 850000001a000000" +
        "5500190000000000 71a1f0ff00000000 5701000001000000 5501160000000000 61a1f0ff00000000 560114001a27f387" +
        "69a1f4ff00000000 560112003a270000 6161100000000000 5601100008000000 620ae8ff4e657556 6a0aecff00b40000" +
        "bf61000000000000 b702000000000000 bfa3000000000000 07030000e8ffffff b704000006000000 b705000000000000" +
        "8500000009000000 5500040000000000 bf61000000000000 b702000009000000 b703000000000000 850000000d000000" +
        "b700000000000000 9500000000000000 b7000000ffffffff 9500000000000000";

    private static byte[] Hex(string s) => Convert.FromHexString(string.Concat(s.Where(c => !char.IsWhiteSpace(c))));

    [Fact]
    public void Vex_destination_program_matches_the_verified_listing()
    {
        var program = new MacRewriteProgram(MacField.Destination, Container, MacField.Destination, UcMac, 9,
            RequireUnicastDestination: true, RequireIPv4: true).Assemble();
        Assert.Equal(Hex(VexListing), program);
    }

    [Fact]
    public void Vin_source_program_differs_from_the_listing_only_where_the_reference_says()
    {
        // the source variant ("The program"): insns 10-13 compare the source (u16@fp-10, u32@fp-8), 16-17 stage the new source at fp-22, 19 r2=6, 21 r3+=-22
        var program = new MacRewriteProgram(MacField.Source, Container, MacField.Source, UcMac, 9,
            RequireUnicastDestination: true, RequireIPv4: true).Assemble();
        var expected = Hex(VexListing);
        void Put(int insn, string hex) => Hex(hex).CopyTo(expected, insn * 8);
        Put(10, "69a1f6ff00000000"); Put(11, "560114001a270000"); Put(12, "61a1f8ff00000000"); Put(13, "56011200f3873a27");
        Put(16, "6a0aeaff4e650000"); Put(17, "620aecff755600b4"); Put(19, "b702000006000000"); Put(21, "07030000eaffffff");
        Assert.Equal(expected, program);
    }

    [Fact]
    public void Program_without_checks_has_29_instructions_and_redirect_replaces_the_mirror_call()
    {
        var mirror = new MacRewriteProgram(MacField.Destination, UcMac, MacField.Destination, Container, 7).Assemble();
        Assert.Equal(29 * 8, mirror.Length);
        var redirect = new MacRewriteProgram(MacField.Destination, UcMac, MacField.Destination, Container, 7, Redirect: true).Assemble();
        Assert.Equal(29 * 8, redirect.Length);
        Assert.Equal(Hex("b701000007000000 b702000000000000 8500000017000000 9500000000000000"), redirect.AsSpan(21 * 8, 32).ToArray());
    }

    [Fact]
    public void The_IPv6_check_compares_skb_protocol_with_htons_0x86dd_where_the_IPv4_one_compares_htons_0x0800()
    {
        var v4 = new MacRewriteProgram(MacField.Destination, Container, MacField.Destination, UcMac, 9, RequireUnicastDestination: true, RequireIPv4: true).Assemble();
        var v6 = new MacRewriteProgram(MacField.Destination, Container, MacField.Destination, UcMac, 9, RequireUnicastDestination: true, RequireIPv6: true).Assemble();
        Assert.Equal(v4.Length, v6.Length);
        // the one differing instruction: jne r1, imm (opcode 0x56, jmp32) with imm 0x0008 (IPv4) or 0xdd86 (IPv6), little-endian
        var differ = Enumerable.Range(0, v4.Length / 8).Where(i => !v4.AsSpan(i * 8, 8).SequenceEqual(v6.AsSpan(i * 8, 8))).ToList();
        int at = Assert.Single(differ) * 8;
        Assert.Equal((byte)0x56, v6[at]);
        Assert.Equal(Hex("08000000"), v4.AsSpan(at + 4, 4).ToArray());
        Assert.Equal(Hex("86dd0000"), v6.AsSpan(at + 4, 4).ToArray());
        Assert.Throws<ArgumentException>(() => new MacRewriteProgram(MacField.Destination, Container, MacField.Destination, UcMac, 9, RequireIPv4: true, RequireIPv6: true).Assemble());
    }

    [RootTheory]
    [InlineData(MacField.Destination, true, true, false, true)]
    [InlineData(MacField.Source, true, true, false, true)]
    [InlineData(MacField.Destination, true, true, false)]
    [InlineData(MacField.Source, true, true, false)]
    [InlineData(MacField.Destination, false, false, true)]
    [InlineData(MacField.Source, false, false, false)]
    public void Kernel_verifier_accepts_every_seed_variant(MacField field, bool unicast, bool ip, bool redirect, bool ipv6 = false)
    {
        var program = new MacRewriteProgram(field, Container, field, UcMac, 1, Redirect: redirect,
            RequireUnicastDestination: unicast, RequireIPv4: ip && !ipv6, RequireIPv6: ip && ipv6).Assemble();
        using var fd = BpfProgram.LoadSchedCls(program);
        Assert.False(fd.IsInvalid);
    }

    [RootFact]
    public void Verifier_rejection_carries_the_verifier_log()
    {
        // r0 is read before it is written: the verifier refuses and explains why
        var bad = new BpfAssembler().Exit().ToBytes();
        var e = Assert.Throws<BpfVerifierException>(() => BpfProgram.LoadSchedCls(bad));
        Assert.Contains("R0", e.VerifierLog);
        Assert.Contains("verifier", e.Message);
    }
}
