using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using NvRedirect.Core.Tc;
using Xunit;
using Xunit.Abstractions;

namespace NvRedirect.Tests.Tc;

/// <summary>One namespace (veth va/vb, ingress qdisc on va) shared by the live comparisons.</summary>
public sealed class TcLiveFixture : IDisposable
{
    /// <summary>The namespace.</summary>
    public TestNamespace Scratch { get; } = TestNamespace.WithVeth("live");

    /// <summary>Adds the ingress qdisc the filter commands need.</summary>
    public TcLiveFixture() => Scratch.TcOk("qdisc", "add", "dev", "va", "ingress");

    /// <summary>ifindex by device name.</summary>
    public int IfIndex(string name) => name switch { "va" => Scratch.IndexA, "vb" => Scratch.IndexB, _ => throw new ArgumentException(name) };

    /// <inheritdoc/>
    public void Dispose() => Scratch.Dispose();
}

/// <summary>
/// Our encoder against the tc of this machine, for command lines beyond the seed: each command runs under strace
/// in a scratch namespace, the RTM_NEWTFILTER it sends is cut out of strace's hex dump, and our request for the same
/// command must be identical (tc's own sequence number reused; the ifindexes are the scratch devices'). pedit
/// filters are refused by this kernel but tc sends them all the same. When tc refuses a command line itself (a
/// contradiction between matches, a u16 munge across a word...), our packing must refuse it too.
/// </summary>
public class TcLiveEncoderTests(TcLiveFixture fixture, ITestOutputHelper output) : IClassFixture<TcLiveFixture>
{
    private const ushort RTM_NEWTFILTER = 44;

    /// <summary>Generated `filter add` command lines (without "tc -n NS"); the seed is fixed so failures reproduce.</summary>
    public static IEnumerable<object[]> GeneratedFilterCommands()
    {
        var r = new Random(20251125);
        var fixedCases = new[]
        {
            // deterministic corners first
            "filter add dev va pref 1 parent ffff: protocol ip u32 match u8 0 1 at -14 match u16 0x0242 0xffff at -14 match u32 0xac110002 0xffffffff at -12 action pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe action mirred egress mirror dev vb",
            "filter add dev va pref 2 parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev vb",
            "filter add dev va pref 3 parent ffff: protocol all u32 match u8 0 0 action mirred ingress mirror dev vb",
            "filter add dev va pref 4 parent ffff: protocol all u32 match u8 0 0 action mirred ingress redirect dev vb",
            "filter add dev va pref 5 ingress protocol ip u32 match u16 0x0800 0xffff at -2 action mirred egress mirror dev vb",
            "filter add dev va pref 6 parent ffff: protocol ip chain 3 u32 match u32 0x0a0a0a00 0xffffff00 at 16 action mirred egress mirror dev vb",
            "filter add dev va pref 7 parent ffff: protocol ip u32 match u8 0x11 0xff at 9 flowid 1:7",
            "filter add dev va pref 8 parent ffff: protocol ip u32 match u16 0x1234 0xffff at -13",
            "filter add dev va pref 9 parent ffff: protocol all u32 match u8 0 0 action mirred egress mirror dev vb pipe cookie 4e5652440001",
            "filter add dev va pref 10 parent ffff: protocol all u32 match u8 0 0 action pedit munge offset -15 u16 set 0x1234 munge offset -13 u8 set 0xab continue action mirred egress redirect dev vb cookie 00112233445566778899aabbccddeeff",
            "filter add dev va pref 13 parent ffff: protocol ip u32 match u8 0 0 action mirred egress mirror dev vb drop",
            "filter add dev va pref 11 parent ffff: protocol all u32 match u8 1 1 at -14 match u16 0x1a27 0xffff at -14 action mirred egress mirror dev vb",
            "filter add dev va pref 12 parent ffff: protocol all u32 match u8 0 0 action pedit munge offset -13 u16 set 0x1234 action mirred egress mirror dev vb",
        };
        foreach (var c in fixedCases) yield return [c];
        for (int n = 0; n < 48; n++) yield return [Generate(r, 100 + n)];
    }

    private static string Generate(Random r, int pref)
    {
        var sb = new StringBuilder($"filter add dev va pref {pref} ");
        sb.Append(r.Next(4) == 0 ? "ingress " : "parent ffff: ");
        sb.Append("protocol ").Append(Pick(r, "ip", "all", "ipv6", "0x88cc")).Append(' ');
        if (r.Next(6) == 0) sb.Append("chain ").Append(r.Next(1, 6)).Append(' ');
        sb.Append("u32");
        int matches = r.Next(1, 5);
        int lastWord = 0;
        for (int i = 0; i < matches; i++)
        {
            int size = Pick(r, 8, 16, 32);
            // often on the previous match's word, so that merging (and contradictions) come up
            int word = i > 0 && r.Next(3) == 0 ? lastWord : 4 * r.Next(-4, 7);
            int offset = size == 32 ? word : word + r.Next(size == 16 ? 3 : 4);
            lastWord = word;
            uint limit = size == 32 ? uint.MaxValue : (1u << size) - 1;
            uint value = (uint)r.NextInt64(0, (long)limit + 1);
            uint mask = r.Next(3) switch { 0 => limit, 1 => (uint)r.NextInt64(0, (long)limit + 1), _ => limit & 0x0f0f0f0f };
            sb.Append($" match u{size} 0x{value:x} 0x{mask:x} at {offset}");
        }
        if (r.Next(10) == 0) sb.Append($" flowid 1:{r.Next(1, 100)}");
        bool pedit = r.Next(5) < 2;
        if (pedit)
        {
            sb.Append(" action pedit");
            int munges = r.Next(1, 4);
            for (int i = 0; i < munges; i++)
            {
                int size = Pick(r, 8, 16, 32);
                int word = 4 * r.Next(-4, 5);
                int offset = size == 32 ? word : word + r.Next(size == 16 ? 3 : 4);
                uint value = size == 32 ? (uint)r.NextInt64(0, 1L << 32) : (uint)r.Next(1 << size);
                sb.Append($" munge offset {offset} u{size} set 0x{value:x}");
            }
            sb.Append(Pick(r, "", " pipe", " pass", " continue"));
        }
        if (!pedit || r.Next(5) != 0)
        {
            sb.Append(" action mirred ").Append(Pick(r, "egress", "ingress")).Append(' ').Append(Pick(r, "mirror", "redirect"))
              .Append(" dev ").Append(Pick(r, "vb", "va"));
            // tc takes a control word after mirror only; after redirect it would start a separate gact action
            if (sb.ToString().EndsWith("mirror dev vb") || sb.ToString().EndsWith("mirror dev va"))
                sb.Append(Pick(r, "", "", " pipe", " pass", " drop", " continue", " reclassify"));
            if (r.Next(4) == 0)
            {
                var cookie = new byte[r.Next(1, 17)];
                r.NextBytes(cookie);
                sb.Append(" cookie ").Append(Convert.ToHexString(cookie).ToLowerInvariant());
            }
        }
        return sb.ToString();
    }

    private static T Pick<T>(Random r, params T[] items) => items[r.Next(items.Length)];

    [RootTheory]
    [MemberData(nameof(GeneratedFilterCommands))]
    public void Filter_add_encodes_like_live_tc(string command)
    {
        var words = TcCommand.Words(command);
        var (code, err, sent) = Strace.Tc(["-n", fixture.Scratch.Name, .. words]);
        var tcRequest = sent.Where(b => b.Length >= 16 && BitConverter.ToUInt16(b, 4) == RTM_NEWTFILTER).ToList();
        output.WriteLine($"tc {command}\n  exit {code}: {err.Trim()}");
        if (tcRequest.Count == 0)
        {
            // tc refused the command line before sending: so must we
            var refusal = Assert.ThrowsAny<ArgumentException>(() => TcMessages.AddFilter(TcCommand.ParseU32(words, fixture.IfIndex)));
            output.WriteLine($"  both refuse; ours: {refusal.Message}");
            return;
        }
        var expected = Assert.Single(tcRequest);
        var ours = TcMessages.AddFilter(TcCommand.ParseU32(words, fixture.IfIndex)).ToArray(GoldenFile.Seq(expected));
        TcBytes.Equal(expected, ours, "tc " + command);
    }

    [RootFact]
    public void Generated_cases_cover_both_accepted_and_refused_command_lines()
    {
        // guards the generator: both branches of the comparison above must be exercised
        int refused = 0, packed = 0;
        foreach (var c in GeneratedFilterCommands())
        {
            try { TcMessages.AddFilter(TcCommand.ParseU32(TcCommand.Words((string)c[0]), _ => 1)); packed++; }
            catch (ArgumentException) { refused++; }
        }
        Assert.True(refused >= 3 && packed >= 30, $"packed {packed}, refused {refused}");
    }

    public static IEnumerable<object[]> OtherCommands() =>
    [
        ["qdisc replace dev vb ingress"],
        ["qdisc add dev vb ingress"],
        ["qdisc show dev va"],
        ["filter show dev va parent ffff:"],
        ["filter del dev va pref 3 parent ffff:"],
        ["filter del dev va pref 4 parent ffff: protocol ip u32"],
        ["qdisc del dev vb ingress"],
    ];

    [RootTheory]
    [MemberData(nameof(OtherCommands))]
    public void Qdisc_dump_and_delete_commands_encode_like_live_tc(string command)
    {
        var w = TcCommand.Words(command);
        int dev = fixture.IfIndex(w[3]);
        var (type, ours) = (w[0], w[1]) switch
        {
            ("qdisc", "replace") => (36, TcMessages.NewQdisc(Qdisc.Ingress(dev), replace: true)),
            ("qdisc", "add") => (36, TcMessages.NewQdisc(Qdisc.Ingress(dev), replace: false)),
            ("qdisc", "del") => (37, TcMessages.DeleteQdisc(Qdisc.Ingress(dev))),
            ("qdisc", "show") => (38, TcMessages.DumpQdiscs(dev)),
            ("filter", "show") => (46, TcMessages.DumpFilters(dev)),
            ("filter", "del") when w.Length > 8 => (45, TcMessages.DeleteFilter(dev, ushort.Parse(w[5]), TcProtocol.Parse(w[9]), w[10])),
            ("filter", "del") => (45, TcMessages.DeleteFilter(dev, ushort.Parse(w[5]))),
            _ => throw new ArgumentException(command),
        };
        var (code, err, sent) = Strace.Tc(["-n", fixture.Scratch.Name, .. w]);
        output.WriteLine($"tc {command}: exit {code} {err.Trim()}");
        var expected = Assert.Single(sent, b => b.Length >= 16 && BitConverter.ToUInt16(b, 4) == type);
        TcBytes.Equal(expected, ours.ToArray(GoldenFile.Seq(expected)), "tc " + command);
    }
}
