using System;
using System.Linq;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Tc;
using Xunit;

namespace NvRedirect.Tests.Tc;

/// <summary>Kernel replies and requests decoded into tc objects, and decoded objects encoded back.</summary>
public class TcDecoderTests
{
    [Fact]
    public void Filter_dump_of_capture_14_folds_into_one_u32_node()
    {
        var filters = TcDecoder.ParseFilters(GoldenFile.Replies("14-filter-show-dump.reply.hex"));
        // the dump held three RTM_NEWTFILTER for pref 10002: the priority, table 800: and node 800::800
        var f = Assert.IsType<U32Filter>(Assert.Single(filters));
        Assert.Equal(5, f.LinkIndex);
        Assert.Equal(10002, f.Priority);
        Assert.Equal(TcProtocol.All, f.Protocol);
        Assert.Equal("all", f.ProtocolName);
        Assert.Equal(Tca.IngressHandle, f.Parent);
        Assert.Equal(0x80000800u, f.Handle);
        Assert.Equal("800::800", f.HandleText);
        Assert.Equal(0x80000000u, f.HashTable);
        Assert.Equal(Tca.TCA_CLS_FLAGS_NOT_IN_HW, f.Flags);
        Assert.Equal(0u, f.Chain);
        Assert.True(f.Selector.IsTerminal);
        Assert.Equal(U32Key.MatchAll, Assert.Single(f.Keys));
        Assert.Null(f.Hits); // no TCA_U32_PCNT on this kernel
        var m = Assert.IsType<MirredAction>(Assert.Single(f.Actions));
        Assert.Equal(MirredDirection.Egress, m.Direction);
        Assert.Equal(MirredMode.Mirror, m.Mode);
        Assert.Equal(7, m.TargetIndex);
        Assert.Equal(TcActionControl.Pipe, m.Control);
        Assert.Equal(1u, m.Index);
        Assert.Equal(1, m.RefCount);
        Assert.Equal(1, m.BindCount);
        Assert.Equal(new TcStatistics(0, 0, 0, 0), m.Statistics);
        Assert.Equal(TimeSpan.FromSeconds(24.70), m.Installed); // tcf_t install 0x9a6 USER_HZ ticks ago
        Assert.Null(m.Cookie);
    }

    [Fact]
    public void Dumped_filter_reencodes_to_the_request_that_created_it()
    {
        // capture 14 dumps vex's pref 10002, which capture 09 created (vex 5, mirror to vin 7)
        var dumped = (U32Filter)TcDecoder.ParseFilters(GoldenFile.Replies("14-filter-show-dump.reply.hex")).Single();
        var request = GoldenFile.Primary("09-filter-vex-10002-mirred.hex");
        TcBytes.Equal(request, TcMessages.AddFilter(dumped).ToArray(GoldenFile.Seq(request)), "decoded dump of 09, re-encoded");
    }

    [Theory]
    [InlineData("08-filter-vex-10001-pedit.hex")]
    [InlineData("10-filter-vbr-5-pedit.hex")]
    [InlineData("12-filter-vin-10001-pedit.hex")]
    [InlineData("13-filter-vbr-172-pedit.hex")]
    public void Pedit_request_decodes_and_reencodes_byte_for_byte(string file)
    {
        var request = GoldenFile.Primary(file);
        var f = Assert.IsType<U32Filter>(TcDecoder.ParseFilter(new NetlinkMessage(request)));
        Assert.Equal(2, f.Actions.Count);
        var pedit = Assert.IsType<PeditAction>(f.Actions[0]);
        Assert.Equal(TcActionControl.Pipe, pedit.Control);
        Assert.IsType<MirredAction>(f.Actions[1]);
        TcBytes.Equal(request, TcMessages.AddFilter(f).ToArray(GoldenFile.Seq(request)), file);
    }

    [Fact]
    public void Pedit_keys_decode_back_to_offset_size_value()
    {
        var f = (U32Filter)TcDecoder.ParseFilter(new NetlinkMessage(GoldenFile.Primary("12-filter-vin-10001-pedit.hex")))!;
        var pedit = (PeditAction)f.Actions[0];
        // the pedit keys of vin 10001 (docs/kernel-interfaces.md, "pedit keys"): -8: 00000000/4e657556 ; -4: 0000ffff/00b40000
        Assert.Equal([new PeditPackedKey(0x00000000, 0x4e657556, -8), new PeditPackedKey(0x0000ffff, 0x00b40000, -4)], pedit.Keys.ToArray());
        Assert.Equal([PeditKey.U32(-8, 0x4e657556), PeditKey.U16(-4, 0x00b4)], pedit.Munges!.ToArray());
        // the three matches pack to three keys: the u8 group-bit test has no u16 on its word to merge with
        Assert.Equal([new U32Key(0x00000100, 0, -16), new U32Key(0xffffffff, 0x1a27f387, -8), new U32Key(0xffff0000, 0x3a270000, -4)], f.Keys.ToArray());
        Assert.Equal(TcProtocol.IPv4, f.Protocol);
        Assert.Equal(10001, f.Priority);
        Assert.Equal(9, ((MirredAction)f.Actions[1]).TargetIndex);
    }

    [Fact]
    public void Bpf_dump_of_capture_19_decodes_name_id_tag_and_flags()
    {
        var filters = TcDecoder.ParseFilters(GoldenFile.Replies("19-filter-show-bpf-dump.reply.hex"));
        Assert.Equal(2, filters.Count);
        var first = Assert.IsType<BpfFilter>(filters[0]);
        Assert.Equal((9, (ushort)5, TcProtocol.All, 1u), (first.LinkIndex, first.Priority, first.Protocol, first.Handle));
        Assert.Equal("rs_macrw", first.Name);
        Assert.Equal(99u, first.ProgramId);
        Assert.Equal("0766674dcfd205c5", first.TagText);
        Assert.True(first.DirectAction);
        Assert.Equal(Tca.TCA_CLS_FLAGS_NOT_IN_HW, first.GenericFlags);
        Assert.Empty(first.Actions);
        var second = Assert.IsType<BpfFilter>(filters[1]);
        Assert.Equal(172, second.Priority);
        Assert.Equal("rsprog:[*fsobj]", second.Name);
        Assert.Equal(100u, second.ProgramId);
        Assert.Equal("83ce05bfb9b78b41", second.TagText);
    }

    [Fact]
    public void Pedit_ex_keys_carry_header_type_and_command_both_ways()
    {
        var pedit = new PeditAction
        {
            Keys = [new PeditPackedKey(0, 0x11223344, 0, HeaderType: PeditHeaderType.Eth), new PeditPackedKey(0x00ffffff, 0x05000000, 8, HeaderType: PeditHeaderType.IPv4, Command: PeditCommand.Add)],
            Control = TcActionControl.Pipe,
        };
        var filter = new U32Filter { LinkIndex = 3, Priority = 7, Protocol = TcProtocol.IPv4, Actions = [pedit] };
        var bytes = TcMessages.AddFilter(filter).ToArray(0);
        var back = (PeditAction)((U32Filter)TcDecoder.ParseFilter(new NetlinkMessage(bytes))!).Actions[0];
        Assert.Equal(pedit.Keys.ToArray(), back.Keys.ToArray());
        Assert.Null(back.Munges);
        Assert.Equal(bytes, TcMessages.AddFilter(filter with { Actions = [back] }).ToArray(0));
    }

    [Fact]
    public void Qdisc_message_decodes_kind_handle_and_parent()
    {
        var q = TcDecoder.ParseQdisc(new NetlinkMessage(GoldenFile.Primary("07-qdisc-add-ingress.hex")));
        Assert.Equal(Qdisc.Ingress(7), q);
        Assert.True(q.IsIngress);
        Assert.Equal("ffff:", q.HandleText);
        Assert.Equal("ffff:fff1", q.ParentText);
    }
}

/// <summary>iproute2's packing and merging rules for u32 matches and pedit munges.</summary>
public class TcKeyPackingTests
{
    [Theory]
    [InlineData("u16 0x1a27 0xffff at -14", 0x0000ffffu, 0x00001a27u, -16)] // -14 & 3 = 2: lower half
    [InlineData("u16 0x00b4 0xffff at -4", 0xffff0000u, 0x00b40000u, -4)]   // aligned: upper half
    [InlineData("u16 0x1234 0xffff at -13", 0x0000ffffu, 0x00001234u, -16)] // odd: tc silently uses the lower half
    [InlineData("u8 0 1 at -14", 0x00000100u, 0u, -16)]
    [InlineData("u8 0xab 0xff at -13", 0x000000ffu, 0x000000abu, -16)]
    [InlineData("u8 0xab 0xff at 0", 0xff000000u, 0xab000000u, 0)]
    [InlineData("u32 0xf3873a27 0xffffffff at -12", 0xffffffffu, 0xf3873a27u, -12)]
    [InlineData("u32 0xffffffff 0x0000ff00 at 8", 0x0000ff00u, 0x0000ff00u, 8)] // value bits outside the mask are dropped
    [InlineData("u8 0 0", 0u, 0u, 0)]
    public void Match_packs_to_one_aligned_key(string match, uint mask, uint value, int offset)
        => Assert.Equal(new U32Key(mask, value, offset), Assert.Single(TcKeyPacking.PackU32([U32Match.Parse(match)])));

    [Fact]
    public void Matches_on_one_word_merge_and_the_group_bit_test_is_subsumed()
    {
        var keys = TcKeyPacking.PackU32([U32Match.Parse("u8 0 1 at -14"), U32Match.Parse("u16 0x1a27 0xffff at -14"), U32Match.Parse("u32 0xf3873a27 0xffffffff at -12")]);
        Assert.Equal([new U32Key(0x0000ffff, 0x00001a27, -16), new U32Key(0xffffffff, 0xf3873a27, -12)], keys.ToArray());
    }

    [Fact]
    public void Contradicting_matches_on_one_word_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => TcKeyPacking.PackU32([U32Match.Parse("u8 1 1 at -14"), U32Match.Parse("u16 0x1a27 0xffff at -14")]));
        Assert.Contains("contradicts", e.Message);
    }

    [Theory]
    [InlineData("u32 1 0xffffffff at -14")]
    [InlineData("u16 0x10000 0xffff at 0")]
    [InlineData("u8 0x100 0xff at 0")]
    public void Impossible_matches_are_refused(string match)
        => Assert.Throws<ArgumentException>(() => TcKeyPacking.PackU32([U32Match.Parse(match)]));

    [Theory]
    [InlineData("offset -14 u16 set 0x4e65", 0xffff0000u, 0x00004e65u, -16)]
    [InlineData("offset -12 u32 set 0x755600b4", 0u, 0x755600b4u, -12)]
    [InlineData("offset -4 u16 set 0x00b4", 0x0000ffffu, 0x00b40000u, -4)]
    [InlineData("offset -15 u16 set 0x1234", 0xff0000ffu, 0x00123400u, -16)]
    [InlineData("offset -14 u8 set 0xab", 0xffff00ffu, 0x0000ab00u, -16)]
    [InlineData("offset -13 u8 set 0xab", 0xffffff00u, 0x000000abu, -16)]
    public void Munge_packs_to_a_keep_mask_key_and_unpacks_again(string munge, uint keep, uint value, int offset)
    {
        var source = PeditKey.Parse(munge);
        var packed = TcKeyPacking.PackPedit(source);
        Assert.Equal(new PeditPackedKey(keep, value, offset), packed);
        Assert.Equal(source, packed.Unpack());
    }

    [Theory]
    [InlineData("offset -13 u16 set 0x1234")] // would cross a word: tc "pack_key16 bad index value 3"
    [InlineData("offset -10 u32 set 1")]
    [InlineData("offset 0 u8 set 0x100")]
    public void Impossible_munges_are_refused(string munge)
        => Assert.Throws<ArgumentException>(() => TcKeyPacking.PackPedit(PeditKey.Parse(munge)));

    [Fact]
    public void Handles_print_as_tc_prints_them()
    {
        Assert.Equal("ffff:", TcNumber.Handle(0xffff0000));
        Assert.Equal("ffff:fff1", TcNumber.Handle(Tca.TC_H_INGRESS));
        Assert.Equal("800:", TcNumber.U32Handle(0x80000000));
        Assert.Equal("800::800", TcNumber.U32Handle(0x80000800));
        Assert.Equal("801::801", TcNumber.U32Handle(0x80100801));
        Assert.Equal(0xffff0000u, TcNumber.ParseHandle("ffff:"));
        Assert.Equal(0x00010001u, TcNumber.ParseHandle("1:1"));
    }
}
