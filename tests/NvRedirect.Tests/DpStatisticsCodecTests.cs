using System;
using System.Linq;
using System.Net;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Protocol;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The module's decoders of the agent's statistics and meter replies (Get-DpDeviceStatistic, Get-DpMacStatistic,
/// Get-DpMeter), against golden bytes written by hand from NeuVector's defs.h layouts (DPMsgHdr, DPMsgStats 176 bytes,
/// DPMsgMeterHdr and DPMsgMeter 44 bytes; every field big-endian), and against what the daemon's writers produce.
/// </summary>
public class DpStatisticsCodecTests
{
    // DEVICE_STATS (9), More 0, Length 180; DPMsgStats: Interval 5, 4 bytes padding, SessionIn 3, SessionOut 2,
    // SessionCurIn 1, SessionCurOut 0, PacketIn 100, PacketOut 90, ByteIn 10000, ByteOut 9000; then the windows of the
    // last slot, 12 slots and 60 slots: u32 sessions in/out, u64 packets in/out, u64 bytes in/out.
    private const string DeviceStatsGolden =
        "09 00 00 b4" +
        " 00 00 00 05 00 00 00 00" +
        " 00 00 00 03 00 00 00 02 00 00 00 01 00 00 00 00" +
        " 00 00 00 00 00 00 00 64 00 00 00 00 00 00 00 5a 00 00 00 00 00 00 27 10 00 00 00 00 00 00 23 28" +
        " 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00 03 00 00 00 00 00 00 01 f4 00 00 00 00 00 00 01 90" +
        " 00 00 00 02 00 00 00 01 00 00 00 00 00 00 00 28 00 00 00 00 00 00 00 24 00 00 00 00 00 00 0f a0 00 00 00 00 00 00 0e 10" +
        " 00 00 00 03 00 00 00 02 00 00 00 00 00 00 00 64 00 00 00 00 00 00 00 5a 00 00 00 00 00 00 27 10 00 00 00 00 00 00 23 28";

    // METER_LIST (5), More 1, Length 52: DPMsgMeterHdr Meters 1; DPMsgMeter: EpMAC, Idle 7, Count 16, LastCount 8,
    // PeerIP 192.0.2.7 (IPv4 in the first 4 of 16 bytes), MeterID 2, Flags 1, Span 5, padding, UpperLimit 100,
    // LowerLimit 50. Then the terminator: More 0, Meters 0.
    private const string MeterGolden =
        "05 01 00 34 00 01 00 00" +
        " 1a 27 f3 87 3a 27 00 07 00 00 00 10 00 00 00 08" +
        " c0 00 02 07 00 00 00 00 00 00 00 00 00 00 00 00" +
        " 02 01 05 00 00 00 00 64 00 00 00 32";
    private const string MeterEndGolden = "05 00 00 08 00 00 00 00";

    private static byte[] Hex(string text) => Convert.FromHexString(text.Replace(" ", ""));

    [Fact]
    public void Device_statistics_decode_field_by_field_from_dps_layout()
    {
        var s = DpReplyReader.Statistic(Hex(DeviceStatsGolden), MessageKind.DeviceStats, "/s", null);
        Assert.Equal(("/s", (string?)null, 5u), (s.ControlSocket, s.Mac, s.Interval));
        Assert.Equal((3u, 2u, 1u, 0u), (s.SessionsIn, s.SessionsOut, s.CurrentSessionsIn, s.CurrentSessionsOut));
        Assert.Equal((100UL, 90UL, 10000UL, 9000UL), (s.PacketsIn, s.PacketsOut, s.BytesIn, s.BytesOut));
        Assert.Equal((5u, 1u, 0u, 4UL, 3UL, 500UL, 400UL), (s.Last.Seconds, s.Last.SessionsIn, s.Last.SessionsOut, s.Last.PacketsIn, s.Last.PacketsOut, s.Last.BytesIn, s.Last.BytesOut));
        Assert.Equal((60u, 2u, 1u, 40UL, 4000UL, 3600UL), (s.LastMinute.Seconds, s.LastMinute.SessionsIn, s.LastMinute.SessionsOut, s.LastMinute.PacketsIn, s.LastMinute.BytesIn, s.LastMinute.BytesOut));
        Assert.Equal((300u, 3u, 10000UL), (s.LastFiveMinutes.Seconds, s.LastFiveMinutes.SessionsIn, s.LastFiveMinutes.BytesIn));
        Assert.Equal(100.0, s.Last.BytesInPerSecond);
        Assert.Equal(60.0, s.LastMinute.BytesOutPerSecond);
    }

    [Fact]
    public void The_daemons_writer_produces_the_golden_bytes_and_mac_statistics_carry_their_kind()
    {
        var w = new StatsWindow(1, 0, 4, 3, 500, 400);
        var stats = new TrafficStats(5, 3, 2, 1, 0, 100, 90, 10000, 9000, w, new StatsWindow(2, 1, 40, 36, 4000, 3600), new StatsWindow(3, 2, 100, 90, 10000, 9000));
        Assert.Equal(Hex(DeviceStatsGolden), StatsReplies.Stats(MessageKind.DeviceStats, stats));
        var mac = StatsReplies.Stats(MessageKind.MacStats, stats);
        Assert.Equal(MessageKind.MacStats, mac[0]);
        Assert.Equal(Hex(DeviceStatsGolden)[1..], mac[1..]);
        var m = DpReplyReader.Statistic(mac, MessageKind.MacStats, "/s", "1a:27:f3:87:3a:27");
        Assert.Equal(("1a:27:f3:87:3a:27", 9000UL), (m.Mac, m.BytesOut));
    }

    [Fact]
    public void Meters_decode_from_dps_layout_until_the_terminator()
    {
        var meters = DpReplyReader.Meters(Hex(MeterGolden), "/s", out bool more);
        Assert.True(more);
        var m = Assert.Single(meters);
        Assert.Equal(("/s", "1a:27:f3:87:3a:27", IPAddress.Parse("192.0.2.7")), (m.ControlSocket, m.Mac, m.PeerAddress));
        Assert.Equal(((byte)2, (byte)1, (byte)5, (ushort)7, 16u, 8u, 100u, 50u), (m.MeterId, m.Flags, m.Span, m.Idle, m.Count, m.LastCount, m.UpperLimit, m.LowerLimit));
        Assert.Empty(DpReplyReader.Meters(Hex(MeterEndGolden), "/s", out more));
        Assert.False(more);
        // the daemon's writer: the same meter, then the terminator alone (all nvr-dp ever sends)
        var written = StatsReplies.MeterList([new MeterEntry(0x1a27f3873a27, 7, 16, 8, [192, 0, 2, 7, .. new byte[12]], 2, 1, 5, 100, 50)]);
        Assert.Equal(new[] { Hex(MeterGolden), Hex(MeterEndGolden) }, written);
        Assert.Equal(Hex(MeterEndGolden), Assert.Single(StatsReplies.MeterList([])));
    }

    [Fact]
    public void Device_counters_carry_the_policy_counts_dp_fills_after_the_parser_arrays()
    {
        var values = Enumerable.Range(1, 27).Select(i => (ulong)i).ToArray();
        var c = DpReplyReader.DeviceCounters(StatsReplies.DeviceCounters(values, new DevicePolicyCounts(12, 3, 2, 5, 7, 9)), "/s");
        Assert.Equal((1UL, 27UL), (c.RXPackets, c.CurLogCaches));
        Assert.Equal((12u, 3u, 2u, 5u, 7UL, 9UL), (c.PolicyType1Rules, c.PolicyType2Rules, c.PolicyDomains, c.PolicyDomainIPs, c.LimitDropConns, c.LimitPassConns));
    }

    [Theory]
    [InlineData("09 00 00 08 00 00 00 05", "must be 180 bytes")]            // a whole datagram, but no DPMsgStats
    [InlineData("08 00 00 08 00 00 00 05", "expected a statistics reply of kind 9")] // the wrong kind
    public void A_statistics_reply_that_breaks_the_layout_is_refused_with_what_is_wrong(string hex, string problem)
    {
        var bytes = Hex(hex);
        var e = Assert.Throws<DatapathProtocolException>(() => DpReplyReader.Statistic(bytes, MessageKind.DeviceStats, "/s", null));
        Assert.Contains(problem, e.Message);
        var meter = Assert.Throws<DatapathProtocolException>(() => DpReplyReader.Meters(Hex("05 00 00 08 00 02 00 00"), "/s", out _));
        Assert.Contains("with 2 meters must be 96 bytes", meter.Message);
    }
}
