using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using NvRedirect.Core.Bpf;
using NvRedirect.Core.Model;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Tc;
using Xunit;

namespace NvRedirect.Tests.Tc;

/// <summary>
/// What Add-RedirectFilter sends, without PowerShell and without root: the -Match/-Action text of the seed's six
/// filters gives the captured iproute2 bytes; the typed form gives the text form's bytes; objects read back encode to
/// the request that made them; the ownership cookie's layout; the readable matches and actions.
/// </summary>
public class RedirectFilterTests
{
    private static readonly Dictionary<string, int> CaptureIfindex = new() { ["vex"] = 5, ["vin"] = 7, ["vbr"] = 9 };

    /// <summary>The seed's six filters as a user types them into Add-RedirectFilter (from the seed, word for word).</summary>
    public static IEnumerable<object[]> SeedFilters() =>
    [
        ["08-filter-vex-10001-pedit.hex", "vex", 10001, "ip",
            new[] { "u8 0 1 at -14", "u16 0x1a27 0xffff at -14", "u32 0xf3873a27 0xffffffff at -12" },
            new[] { "pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe", "mirred egress mirror dev vbr" }],
        ["09-filter-vex-10002-mirred.hex", "vex", 10002, "all", new[] { "u8 0 0" }, new[] { "mirred egress mirror dev vin" }],
        ["10-filter-vbr-5-pedit.hex", "vbr", 5, "all",
            new[] { "u16 0x4e65 0xffff at -14", "u32 0x755600b4 0xffffffff at -12" },
            new[] { "pedit munge offset -14 u16 set 0x1a27 munge offset -12 u32 set 0xf3873a27 pipe", "mirred egress mirror dev vin" }],
        ["11-filter-vin-10002-mirred.hex", "vin", 10002, "all", new[] { "u8 0 0" }, new[] { "mirred egress mirror dev vex" }],
        ["12-filter-vin-10001-pedit.hex", "vin", 10001, "ip",
            new[] { "u8 0 1 at -14", "u32 0x1a27f387 0xffffffff at -8", "u16 0x3a27 0xffff at -4" },
            new[] { "pedit munge offset -8 u32 set 0x4e657556 munge offset -4 u16 set 0x00b4 pipe", "mirred egress mirror dev vbr" }],
        ["13-filter-vbr-172-pedit.hex", "vbr", 172, "all",
            new[] { "u32 0x4e657556 0xffffffff at -8", "u16 0x00b4 0xffff at -4" },
            new[] { "pedit munge offset -8 u32 set 0x1a27f387 munge offset -4 u16 set 0x3a27 pipe", "mirred egress mirror dev vex" }],
    ];

    private static readonly byte[] M = Convert.FromHexString("1a27f3873a27"), U = Convert.FromHexString("4e65755600b4");

    /// <summary>The same six filters in Add-RedirectFilter's typed form.</summary>
    private static U32Filter Typed(string file) => file[..2] switch
    {
        "08" => RedirectFilterBuilder.FromTyped(10001, TcProtocol.IPv4, MacField.Destination, M, true, MacField.Destination, U, Mirror("vbr")),
        "09" => RedirectFilterBuilder.FromTyped(10002, TcProtocol.All, null, null, false, null, null, Mirror("vin")),
        "10" => RedirectFilterBuilder.FromTyped(5, TcProtocol.All, MacField.Destination, U, false, MacField.Destination, M, Mirror("vin")),
        "11" => RedirectFilterBuilder.FromTyped(10002, TcProtocol.All, null, null, false, null, null, Mirror("vex")),
        "12" => RedirectFilterBuilder.FromTyped(10001, TcProtocol.IPv4, MacField.Source, M, true, MacField.Source, U, Mirror("vbr")),
        "13" => RedirectFilterBuilder.FromTyped(172, TcProtocol.All, MacField.Source, U, false, MacField.Source, M, Mirror("vex")),
        _ => throw new ArgumentException(file),
    };

    private static MirredAction Mirror(string target) => new() { TargetName = target };

    /// <summary>What the operations layer does before sending: the device's and the mirred targets' ifindexes.</summary>
    private static U32Filter Resolved(U32Filter filter, string device) => filter with
    {
        LinkIndex = CaptureIfindex[device],
        Actions = filter.Actions.Select(a => a is MirredAction m ? m with { TargetIndex = CaptureIfindex[m.TargetName!] } : a).ToArray(),
    };

    private static byte[] Request(U32Filter filter, uint seq) => TcMessages.AddFilter(filter).ToArray(seq);

    [Theory]
    [MemberData(nameof(SeedFilters))]
    public void Seed_match_and_action_text_encodes_like_tc(string file, string device, int pref, string protocol, string[] matches, string[] actions)
    {
        // the parameters are the capture's command line, word for word
        Assert.Equal(GoldenFile.Command(file),
            $"tc filter add dev {device} pref {pref} parent ffff: protocol {protocol} u32 " +
            string.Join(' ', matches.Select(m => "match " + m)) + " " + string.Join(' ', actions.Select(a => "action " + a)));
        var golden = GoldenFile.Primary(file);
        var filter = RedirectFilterBuilder.FromText((ushort)pref, TcProtocol.Parse(protocol), matches, actions);
        TcBytes.Equal(golden, Request(Resolved(filter, device), GoldenFile.Seq(golden)), file);
    }

    [Theory]
    [MemberData(nameof(SeedFilters))]
    public void Typed_form_sends_the_text_form_bytes(string file, string device, int pref, string protocol, string[] matches, string[] actions)
    {
        var text = Resolved(RedirectFilterBuilder.FromText((ushort)pref, TcProtocol.Parse(protocol), matches, actions), device);
        var typed = Resolved(Typed(file), device);
        TcBytes.Equal(Request(text, 1), Request(typed, 1), file);
        var cookie = RedirectCookie.ForTag("web-1");
        TcBytes.Equal(Request(RedirectFilterBuilder.WithCookie(text, cookie), 1), Request(RedirectFilterBuilder.WithCookie(typed, cookie), 1), file + " with a cookie");
    }

    [Fact]
    public void No_match_means_tc_match_u8_0_0()
    {
        var golden = GoldenFile.Primary("09-filter-vex-10002-mirred.hex");
        var filter = RedirectFilterBuilder.FromText(10002, TcProtocol.All, null, ["mirred egress mirror dev vin"]);
        TcBytes.Equal(golden, Request(Resolved(filter, "vex"), GoldenFile.Seq(golden)), "no -Match");
    }

    [Theory]
    [InlineData(false, false, "mirred egress mirror dev vbr")]
    [InlineData(true, false, "mirred egress redirect dev vbr")]
    [InlineData(false, true, "mirred ingress mirror dev vbr")]
    [InlineData(true, true, "mirred ingress redirect dev vbr")]
    public void Typed_mirror_redirect_and_ingress_equal_their_text(bool redirect, bool toIngress, string action)
    {
        var target = new MirredAction
        {
            TargetName = "vbr", Mode = redirect ? MirredMode.Redirect : MirredMode.Mirror,
            Direction = toIngress ? MirredDirection.Ingress : MirredDirection.Egress,
        };
        var typed = RedirectFilterBuilder.FromTyped(7, TcProtocol.IPv4, MacField.Destination, M, false, null, null, target);
        var text = RedirectFilterBuilder.FromText(7, TcProtocol.IPv4, ["u16 0x1a27 0xffff at -14", "u32 0xf3873a27 0xffffffff at -12"], [action]);
        TcBytes.Equal(Request(Resolved(text, "vex"), 1), Request(Resolved(typed, "vex"), 1), action);

        var unicastOnly = RedirectFilterBuilder.FromTyped(8, TcProtocol.All, null, null, true, null, null, target);
        var unicastText = RedirectFilterBuilder.FromText(8, TcProtocol.All, ["u8 0 1 at -14"], [action]);
        TcBytes.Equal(Request(Resolved(unicastText, "vex"), 1), Request(Resolved(unicastOnly, "vex"), 1), "unicast only, " + action);
    }

    [Fact]
    public void Typed_rewrite_without_a_mac_to_compare_is_refused()
        => Assert.Throws<ArgumentException>(() => RedirectFilterBuilder.FromTyped(1, TcProtocol.All, null, null, true, MacField.Destination, U, Mirror("vbr")));

    [Fact]
    public void Several_matches_and_actions_may_share_one_element_as_on_tc_command_lines()
    {
        var one = RedirectFilterBuilder.FromText(10001, TcProtocol.IPv4, ["match u8 0 1 at -14 match u16 0x1a27 0xffff at -14 match u32 0xf3873a27 0xffffffff at -12"],
            ["action pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe action mirred egress mirror dev vbr"]);
        var golden = GoldenFile.Primary("08-filter-vex-10001-pedit.hex");
        TcBytes.Equal(golden, Request(Resolved(one, "vex"), GoldenFile.Seq(golden)), "one element each");
    }

    [Theory]
    [MemberData(nameof(SeedFilters))]
    public void A_filter_read_back_is_added_again_with_the_same_request(string file, string device, int pref, string protocol, string[] matches, string[] actions)
    {
        _ = (device, pref, protocol, matches, actions);
        foreach (var cookie in new[] { null, RedirectCookie.ForTag("seed") })
        {
            var golden = GoldenFile.Primary(file);
            if (cookie != null)
            {
                var decodedPlain = (U32Filter)TcDecoder.ParseFilter(new NetlinkMessage(golden))!;
                golden = Request(RedirectFilterBuilder.WithCookie(decodedPlain, cookie), GoldenFile.Seq(golden));
            }
            // the kernel's answer has the same layout as the request; names as the operations layer fills them in
            var read = (U32Filter)TcDecoder.ParseFilter(new NetlinkMessage(golden))!;
            var names = CaptureIfindex.ToDictionary(kv => kv.Value, kv => kv.Key);
            read = read with { Actions = read.Actions.Select(a => a is MirredAction m ? m with { TargetName = names[m.TargetIndex] } : a).ToArray() };
            var shown = RedirectFilter.From("agent-ns", read);
            Assert.Equal(cookie != null, shown.IsOwned);
            var again = RedirectFilterBuilder.ForReAdd((U32Filter)shown.Filter);
            Assert.All(again.Actions.OfType<MirredAction>(), m => Assert.Equal(0, m.TargetIndex)); // looked up anew, by name
            TcBytes.Equal(golden, Request(Resolved(again, device), GoldenFile.Seq(golden)), file + (cookie != null ? " with a cookie" : ""));
        }
    }

    // ------------------------------------------------------------------ cookie

    [Fact]
    public void Cookie_is_nvredir1_then_eight_tag_bytes()
    {
        Assert.Equal("nvredir1"u8.ToArray().Concat(new byte[8]), RedirectCookie.Create());
        Assert.Equal(RedirectCookie.Create(), RedirectCookie.ForTag(""));
        Assert.Equal("nvredir1web-1\0\0\0"u8.ToArray(), RedirectCookie.ForTag("web-1"));
        Assert.Equal("nvredir1abcdefgh"u8.ToArray(), RedirectCookie.ForTag("abcdefgh"));
        var longTag = "workload-4e:65:75:56:00:b4";
        Assert.Equal("nvredir1"u8.ToArray().Concat(SHA256.HashData(Encoding.UTF8.GetBytes(longTag))[..8]), RedirectCookie.ForTag(longTag));
        Assert.Equal(Tca.MaxCookieBytes, RedirectCookie.ForTag(longTag).Length);
    }

    [Fact]
    public void Cookie_tag_reads_back_as_text_or_as_its_hash()
    {
        Assert.Equal("", RedirectCookie.TagText(RedirectCookie.Create()));
        Assert.Equal("web-1", RedirectCookie.TagText(RedirectCookie.ForTag("web-1")));
        Assert.Equal("abcdefgh", RedirectCookie.TagText(RedirectCookie.ForTag("abcdefgh")));
        var hash = Convert.ToHexString(SHA256.HashData("a-much-longer-tag"u8)[..8]).ToLowerInvariant();
        Assert.Equal("0x" + hash, RedirectCookie.TagText(RedirectCookie.ForTag("a-much-longer-tag")));
        Assert.True(RedirectCookie.HasTag(RedirectCookie.ForTag("a-much-longer-tag"), "a-much-longer-tag"));
        Assert.False(RedirectCookie.HasTag(RedirectCookie.ForTag("web-1"), "web-2"));
    }

    [Fact]
    public void Only_our_16_byte_cookies_are_ours()
    {
        Assert.True(RedirectCookie.IsOurs(RedirectCookie.ForTag("x")));
        Assert.False(RedirectCookie.IsOurs((byte[]?)null));
        Assert.False(RedirectCookie.IsOurs("nvredir1"u8.ToArray()));
        Assert.False(RedirectCookie.IsOurs("nvredir2\0\0\0\0\0\0\0\0"u8.ToArray()));
        Assert.False(RedirectCookie.IsOurs(Convert.FromHexString("00112233445566778899aabbccddeeff")));
        Assert.Null(RedirectCookie.TagText(Convert.FromHexString("4e5652")));
        // an interception's binary tag ("ic" + the workload MAC) reads in hex, from a cookie or from a cls_bpf name
        Assert.Equal("0x69631a27f3873a27", RedirectCookie.TagText(RedirectCookie.Create(Convert.FromHexString("69631a27f3873a27"))));
        var bpf = new BpfFilter { Name = "nvredir1:69631a27f3873a27:4e6575560002:entry:4b13b40f" };
        Assert.True(RedirectCookie.IsOurs(bpf));
        Assert.Equal("0x69631a27f3873a27", RedirectCookie.TagText(bpf));
        Assert.False(RedirectCookie.IsOurs(new BpfFilter { Name = "rsprog:[*fsobj]" }));
        Assert.Null(RedirectCookie.TagText(new BpfFilter { Name = "rsprog:[*fsobj]" }));
    }

    [Fact]
    public void Every_action_carries_the_cookie_after_its_options_and_the_filter_reads_back_as_ours()
    {
        var cookie = RedirectCookie.ForTag("web-1");
        var plain = Resolved(RedirectFilterBuilder.FromText(10001, TcProtocol.IPv4, ["u8 0 1 at -14", "u16 0x1a27 0xffff at -14", "u32 0xf3873a27 0xffffffff at -12"],
            ["pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe", "mirred egress mirror dev vbr"]), "vex");
        var bytes = Request(RedirectFilterBuilder.WithCookie(plain, cookie), 1);
        Assert.Equal(Request(plain, 1).Length + 2 * (4 + RedirectCookie.Length), bytes.Length);
        // each action nest ends with TCA_ACT_COOKIE (type 6, length 20) and the 16 bytes
        var header = new byte[] { 20, 0, (byte)Tca.TCA_ACT_COOKIE, 0 }.Concat(cookie).ToArray();
        Assert.Equal(2, Occurrences(bytes, header));
        var read = (U32Filter)TcDecoder.ParseFilter(new NetlinkMessage(bytes))!;
        Assert.All(read.Actions, a => Assert.Equal(cookie, a.Cookie));
        var shown = RedirectFilter.From("", read);
        Assert.True(shown.IsOwned);
        Assert.Equal("web-1", shown.Tag);
        Assert.False(RedirectFilter.From("", (U32Filter)TcDecoder.ParseFilter(new NetlinkMessage(Request(plain, 1)))!).IsOwned);
        // a filter where only some actions carry our cookie is not ours
        var mixed = plain with { Actions = [plain.Actions[0] with { Cookie = cookie }, plain.Actions[1]] };
        Assert.False(RedirectCookie.IsOurs(mixed));
    }

    private static int Occurrences(byte[] haystack, byte[] needle)
    {
        int count = 0;
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) count++;
        return count;
    }

    // ------------------------------------------------------------------ readable forms

    [Theory]
    [InlineData("08-filter-vex-10001-pedit.hex", "dst-mac 1a:27:f3:87:3a:27", "pedit dst-mac := 4e:65:75:56:00:b4 pipe|mirred egress mirror dev ifindex 9")]
    [InlineData("09-filter-vex-10002-mirred.hex", "all", "mirred egress mirror dev ifindex 7")]
    [InlineData("10-filter-vbr-5-pedit.hex", "dst-mac 4e:65:75:56:00:b4", "pedit dst-mac := 1a:27:f3:87:3a:27 pipe|mirred egress mirror dev ifindex 7")]
    [InlineData("12-filter-vin-10001-pedit.hex", "dst-mac-unicast|src-mac 1a:27:f3:87:3a:27", "pedit src-mac := 4e:65:75:56:00:b4 pipe|mirred egress mirror dev ifindex 9")]
    [InlineData("13-filter-vbr-172-pedit.hex", "src-mac 4e:65:75:56:00:b4", "pedit src-mac := 1a:27:f3:87:3a:27 pipe|mirred egress mirror dev ifindex 5")]
    public void Seed_filters_read_as_macs_and_rewrites(string file, string matches, string actions)
    {
        var shown = RedirectFilter.From("", TcDecoder.ParseFilter(new NetlinkMessage(GoldenFile.Primary(file)))!);
        Assert.Equal(matches.Split('|'), shown.Matches);
        Assert.Equal(actions.Split('|'), shown.Actions);
    }

    [Theory]
    [InlineData("u16 0x0800 0xffff at -2", "00000800/0000ffff at -4")]
    [InlineData("u16 0x1a27 0xffff at -14|u32 0xf3873a27 0xffffffff at -12|u16 0x0800 0xffff at -2", "00001a27/0000ffff at -16|f3873a27/ffffffff at -12|00000800/0000ffff at -4")]
    [InlineData("u16 0x1a27 0xffff at -14", "00001a27/0000ffff at -16")] // half a MAC is not a MAC
    [InlineData("u8 1 1 at -14", "00000100/00000100 at -16")] // multicast, not unicast
    [InlineData("u8 0x11 0xff at 9", "00110000/00ff0000 at 8")]
    [InlineData("u8 0 1 at -14", "dst-mac-unicast")]
    public void Other_matches_read_as_tc_prints_them(string matches, string expected)
        => Assert.Equal(expected.Split('|'), TcText.DescribeMatches(U32Selector.FromMatches(TcText.ParseMatches(matches.Split('|')))));

    [Theory]
    [InlineData("pedit munge offset -15 u16 set 0x1234 munge offset -13 u8 set 0xab continue")]
    [InlineData("pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pass")]
    [InlineData("mirred egress mirror dev vbr")]
    [InlineData("mirred egress mirror dev vbr drop")]
    [InlineData("mirred ingress redirect dev vbr")]
    public void Actions_print_as_the_tc_text_they_are_read_from(string text)
    {
        var action = Assert.Single(TcText.ParseActions([text]));
        Assert.Equal(text, TcText.Format(action));
    }

    [Fact]
    public void Pedit_ex_keys_print_as_tc_prints_them()
    {
        var ex = new PeditAction { Keys = [new PeditPackedKey(0xff00ffff, 0x00050000, 8, HeaderType: PeditHeaderType.IPv4, Command: PeditCommand.Add)], Control = TcActionControl.Pipe };
        Assert.Equal("pedit key at ipv4+8: val 00050000 mask ff00ffff add pipe", TcText.Describe(ex));
    }

    // ------------------------------------------------------------------ syntax errors

    [Theory]
    [InlineData("u17 1 1", "u17")]
    [InlineData("u16 0x1a27 zz at -14", "zz")]
    [InlineData("u16 1 1 at", "")]
    [InlineData("u16 1", "")]
    [InlineData("u16 1 1 at -14 extra", "extra")]
    [InlineData("u32 1 1 at nexthdr+4", "nexthdr+4")]
    [InlineData("ip src 10.10.10.1/32", "ip")]
    public void Bad_matches_name_the_word(string text, string token)
    {
        var e = Assert.Throws<TcSyntaxException>(() => TcText.ParseMatches([text]));
        Assert.Equal(token, e.Token);
        Assert.Contains($"Cannot read '{text}'", e.Message);
        Assert.Contains("Example: 'u16 0x1a27 0xffff at -14'", e.Message);
        if (token.Length > 0) Assert.Contains($"'{token}'", e.Message);
    }

    [Theory]
    [InlineData("mirred egress mirror vbr", "vbr")]
    [InlineData("mirred sideways mirror dev vbr", "sideways")]
    [InlineData("mirred egress copy dev vbr", "copy")]
    [InlineData("mirred egress mirror dev", "")]
    [InlineData("mirred egress redirect dev vbr pipe", "pipe")]
    [InlineData("mirred egress mirror dev vbr cookie 01", "cookie")]
    [InlineData("gact drop", "gact")]
    [InlineData("pedit", "")]
    [InlineData("pedit ex munge eth dst set 11:22:33:44:55:66", "ex")]
    [InlineData("pedit munge offset -14 u16 clear", "clear")]
    [InlineData("pedit munge offset x u16 set 1", "x")]
    [InlineData("pedit munge offset -13 u16 set 0x1234", "munge")] // crosses a word: tc refuses it too
    public void Bad_actions_name_the_word(string text, string token)
    {
        var e = Assert.Throws<TcSyntaxException>(() => TcText.ParseActions([text]));
        Assert.Equal(token, e.Token);
        Assert.Contains($"Cannot read '{text}'", e.Message);
        Assert.Contains("Example: '", e.Message);
    }

    [Fact]
    public void Out_of_range_values_are_refused_when_packed_with_the_match_named()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => RedirectFilterBuilder.FromText(1, TcProtocol.All, ["u8 0x100 0xff at 0"], ["mirred egress mirror dev vbr"]));
        Assert.Contains("u8 0x100 0xff at 0", e.Message);
        Assert.Throws<ArgumentException>(() => RedirectFilterBuilder.FromText(1, TcProtocol.All, null, []));
    }
}

/// <summary>
/// The same against the kernel (each test in its own namespace): a filter listed and added again sends the bytes
/// of the request that created it, and a filter NvRedirect did not install is only replaced when the guard allows.
/// </summary>
public class RedirectFilterKernelTests
{
    private const ushort RTM_NEWTFILTER = 44;

    private static List<byte[]> CaptureAdds(TestNamespace s, Action work)
    {
        var sent = new List<byte[]>();
        s.Handle.Socket.RequestSent = b => { if (BitConverter.ToUInt16(b, 4) == RTM_NEWTFILTER) sent.Add(b.ToArray()); };
        try { work(); }
        finally { s.Handle.Socket.RequestSent = null; }
        return sent;
    }

    private static byte[] WithoutSeq(byte[] request)
    {
        var copy = request.ToArray();
        copy.AsSpan(8, 4).Clear();
        return copy;
    }

    [RootFact]
    public void Listed_filters_are_added_again_with_the_requests_that_created_them()
    {
        using var s = TestNamespace.WithVeth("readd");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        var cookie = RedirectCookie.ForTag("readd");
        var wanted = new[]
        {
            RedirectFilterBuilder.FromText(10001, TcProtocol.IPv4, ["u8 0 1 at -14", "u16 0x1a27 0xffff at -14", "u32 0xf3873a27 0xffffffff at -12"], ["mirred egress mirror dev vb"]),
            RedirectFilterBuilder.FromText(10002, TcProtocol.All, null, ["mirred egress redirect dev vb"]),
            RedirectFilterBuilder.FromTyped(5, TcProtocol.All, MacField.Source, Convert.FromHexString("4e65755600b4"), false, null, null,
                new MirredAction { TargetName = "vb", Direction = MirredDirection.Ingress }),
        }.Select(f => RedirectFilterBuilder.WithCookie(f, cookie) with { LinkIndex = s.IndexA }).ToArray();
        var first = CaptureAdds(s, () => { foreach (var f in wanted) Assert.Equal(TcChange.Added, tc.AddFilter(f).Change); });

        var listed = tc.ListFilters(s.IndexA).Select(f => RedirectFilter.From(s.Name, f)).ToList();
        Assert.Equal([5, 10001, 10002], listed.Select(f => f.Priority));
        Assert.All(listed, f => Assert.True(f.IsOwned));
        Assert.All(listed, f => Assert.Equal("readd", f.Tag));
        foreach (var f in listed) Assert.Equal(TcChange.Removed, tc.RemoveFilter(s.IndexA, (ushort)f.Priority));
        Assert.Empty(s.NodeJson("va"));

        var again = CaptureAdds(s, () =>
        {
            foreach (var f in listed) Assert.Equal(TcChange.Added, tc.AddFilter(RedirectFilterBuilder.ForReAdd((U32Filter)f.Filter)).Change);
        });
        var byPref = first.ToDictionary(b => BitConverter.ToUInt16(b, 16 + 18)); // tcm_info's upper half: the pref
        Assert.Equal(3, again.Count);
        foreach (var b in again) TcBytes.Equal(WithoutSeq(byPref[BitConverter.ToUInt16(b, 16 + 18)]), WithoutSeq(b), "re-added filter");
    }

    [RootFact]
    public void A_filter_that_is_not_ours_is_replaced_only_when_the_guard_allows()
    {
        using var s = TestNamespace.WithVeth("guard");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        s.TcOk("filter", "add", "dev", "va", "pref", "20", "parent", "ffff:", "protocol", "all", "u32", "match", "u8", "0", "0", "action", "mirred", "egress", "mirror", "dev", "vb");
        var theirs = Assert.IsType<U32Filter>(Assert.Single(tc.ListFilters(s.IndexA)));
        Assert.False(RedirectCookie.IsOurs(theirs));

        var ours = RedirectFilterBuilder.WithCookie(RedirectFilterBuilder.FromText(20, TcProtocol.All, null, ["mirred egress redirect dev vb"]), RedirectCookie.Create()) with { LinkIndex = s.IndexA };
        var refused = CaptureAdds(s, () => Assert.Throws<FilterNotOwnedException>(() => tc.AddFilter(ours, RedirectCookie.IsOurs)));
        Assert.Empty(refused);
        var node = Assert.Single(s.NodeJson("va"));
        Assert.False(node.GetProperty("options").GetProperty("actions")[0].TryGetProperty("cookie", out _));

        // the very same filter is Unchanged whoever installed it; a different one replaces it when allowed
        var same = RedirectFilterBuilder.FromText(20, TcProtocol.All, null, ["mirred egress mirror dev vb"]) with { LinkIndex = s.IndexA };
        Assert.Equal(TcChange.Unchanged, tc.AddFilter(same, RedirectCookie.IsOurs).Change);
        Assert.Equal(TcChange.Replaced, tc.AddFilter(ours).Change);
        Assert.True(RedirectCookie.IsOurs(Assert.Single(tc.ListFilters(s.IndexA))));
        // ours is replaced by ours under the guard
        var ours2 = ours with { Actions = [MirredAction.EgressMirror(s.IndexB) with { Cookie = RedirectCookie.Create() }] };
        Assert.Equal(TcChange.Replaced, tc.AddFilter(ours2, RedirectCookie.IsOurs).Change);
    }

    [RootFact]
    public void A_filter_on_a_device_without_ingress_qdisc_says_so()
    {
        using var s = TestNamespace.WithVeth("noqd");
        var tc = new TrafficControl(s.Handle);
        var e = Assert.Throws<NetlinkException>(() => tc.AddFilter(RedirectFilterBuilder.FromText(1, TcProtocol.All, null, ["mirred egress mirror dev vb"]) with { LinkIndex = s.IndexA }));
        Assert.Contains("no ingress qdisc", e.Message);
        Assert.Equal(22, e.Errno);
    }
}
