using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Tc;
using Xunit;

namespace NvRedirect.Tests.Tc;

/// <summary>
/// Our tc requests against iproute2 6.1's captures (Golden/, format in Golden/README.md), byte for byte. The ifindexes of the capture
/// namespace (vex 5, vin 7, vbr 9) are used as they were, and the capture's sequence number is reused, so the
/// whole message must be identical.
/// </summary>
public class TcGoldenTests
{
    private static readonly Dictionary<string, int> CaptureIfindex = new() { ["vex"] = 5, ["vin"] = 7, ["vbr"] = 9 };

    private static void AssertSame(string file, NetlinkWriter ours)
    {
        var golden = GoldenFile.Primary(file);
        TcBytes.Equal(golden, ours.ToArray(GoldenFile.Seq(golden)), file);
    }

    [Theory]
    [InlineData("08-filter-vex-10001-pedit.hex")]
    [InlineData("09-filter-vex-10002-mirred.hex")]
    [InlineData("10-filter-vbr-5-pedit.hex")]
    [InlineData("11-filter-vin-10002-mirred.hex")]
    [InlineData("12-filter-vin-10001-pedit.hex")]
    [InlineData("13-filter-vbr-172-pedit.hex")]
    public void Seed_filter_command_encodes_like_tc(string file)
    {
        var filter = TcCommand.ParseU32(TcCommand.Words(GoldenFile.Command(file)), name => CaptureIfindex[name]);
        AssertSame(file, TcMessages.AddFilter(filter));
    }

    [Fact]
    public void Typed_vex_10001_filter_equals_capture_08()
    {
        // tc filter add dev vex pref 10001 parent ffff: protocol ip u32 match u8 0 1 at -14
        //   match u16 0x1a27 0xffff at -14 match u32 0xf3873a27 0xffffffff at -12
        //   action pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe
        //   action mirred egress mirror dev vbr
        var filter = new U32Filter
        {
            LinkIndex = 5,
            Priority = 10001,
            Protocol = TcProtocol.IPv4,
            Selector = U32Selector.FromMatches(U32Match.U8(0, 1, -14), U32Match.U16(0x1a27, 0xffff, -14), U32Match.U32(0xf3873a27, 0xffffffff, -12)),
            Actions =
            [
                PeditAction.Munge([PeditKey.U16(-14, 0x4e65), PeditKey.U32(-12, 0x755600b4)], TcActionControl.Pipe),
                MirredAction.EgressMirror(9),
            ],
        };
        Assert.Equal([new U32Key(0x0000ffff, 0x00001a27, -16), new U32Key(0xffffffff, 0xf3873a27, -12)], filter.Keys);
        AssertSame("08-filter-vex-10001-pedit.hex", TcMessages.AddFilter(filter));
    }

    [Fact]
    public void Typed_match_all_mirror_equals_capture_09()
        => AssertSame("09-filter-vex-10002-mirred.hex", TcMessages.AddFilter(new U32Filter
        {
            LinkIndex = 5, Priority = 10002, Selector = U32Selector.FromMatches(U32Match.U8(0, 0)), Actions = [MirredAction.EgressMirror(7)],
        }));

    [Fact]
    public void Ingress_qdisc_add_equals_capture_07()
        => AssertSame("07-qdisc-add-ingress.hex", TcMessages.NewQdisc(Qdisc.Ingress(7), replace: false));

    [Fact]
    public void Ingress_qdisc_replace_differs_from_add_only_in_flags()
    {
        var add = TcMessages.NewQdisc(Qdisc.Ingress(7), replace: false).ToArray(1);
        var replace = TcMessages.NewQdisc(Qdisc.Ingress(7), replace: true).ToArray(1);
        Assert.Equal(0x0505, BitConverter.ToUInt16(replace, 6));
        replace[6] = add[6]; replace[7] = add[7];
        Assert.Equal(add, replace);
    }

    [Fact]
    public void Ingress_qdisc_delete_equals_capture_20()
        => AssertSame("20-qdisc-del-ingress.hex", TcMessages.DeleteQdisc(Qdisc.Ingress(7)));

    [Fact]
    public void Filter_dump_request_equals_capture_14()
        => AssertSame("14-filter-show-dump.hex", TcMessages.DumpFilters(5));

    [Fact]
    public void Delete_by_pref_equals_capture_16()
        => AssertSame("16-filter-del-pref.hex", TcMessages.DeleteFilter(5, 10001));

    [Fact]
    public void Delete_by_pref_protocol_and_kind_equals_capture_17()
        => AssertSame("17-filter-del-pref-proto.hex", TcMessages.DeleteFilter(7, 10002, TcProtocol.All, "u32"));

    [Fact]
    public void Bpf_filter_add_equals_capture_18()
        // tc sent its own fd 4 for the pinned program and named it "<file>:[*fsobj]"
        => AssertSame("18-filter-add-bpf-da-pinned.hex", TcMessages.AddFilter(new BpfFilter
        {
            LinkIndex = 9, Priority = 172, Protocol = TcProtocol.All, Name = "rsprog:[*fsobj]", DirectAction = true,
        }, programFd: 4));

    [Fact]
    public void Action_cookie_is_absent_by_default_and_sent_after_the_options_when_set()
    {
        var plain = new U32Filter { LinkIndex = 5, Priority = 10002, Actions = [MirredAction.EgressMirror(7)] };
        var plainBytes = TcMessages.AddFilter(plain).ToArray(0);
        Assert.Equal(140, plainBytes.Length); // capture 09's length: no cookie attribute
        var cookie = new byte[] { 0x4e, 0x56, 0x52, 0x44 };
        var tagged = plain with { Actions = [MirredAction.EgressMirror(7) with { Cookie = cookie }] };
        var bytes = TcMessages.AddFilter(tagged).ToArray(0);
        Assert.Equal(148, bytes.Length);
        // order nest 1: KIND (12) + OPTIONS (36) + COOKIE (8) = 4 + 56
        var filter = TcDecoder.ParseFilter(new NetlinkMessage(bytes)) as U32Filter;
        Assert.NotNull(filter);
        Assert.Equal(cookie, filter!.Actions[0].Cookie);
        Assert.Throws<ArgumentException>(() => TcMessages.AddFilter(plain with { Actions = [MirredAction.EgressMirror(7) with { Cookie = new byte[17] }] }));
    }
}
