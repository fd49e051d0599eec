using System;
using System.Linq;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Protocol;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>The Prometheus text formatter (DpMetrics) against golden text, and its endpoint check.</summary>
public class DpMetricsTests
{
    private static DatapathInfo Sample()
    {
        var counters = new ulong[(int)DeviceCounter.CurLogCaches + 1];
        counters[(int)DeviceCounter.RXPackets] = 1200;
        counters[(int)DeviceCounter.RXDropPackets] = 3;
        counters[(int)DeviceCounter.TXPackets] = 1150;
        counters[(int)DeviceCounter.TXDropPackets] = 1;
        counters[(int)DeviceCounter.ErrorPackets] = 2;
        counters[(int)DeviceCounter.NoWorkloadPackets] = 7;
        counters[(int)DeviceCounter.IPv4Packets] = 1190;
        counters[(int)DeviceCounter.IPv6Packets] = 10;
        counters[(int)DeviceCounter.TCPPackets] = 900;
        counters[(int)DeviceCounter.UDPPackets] = 200;
        counters[(int)DeviceCounter.ICMPPackets] = 90;
        counters[(int)DeviceCounter.TCPSessions] = 40;
        counters[(int)DeviceCounter.UDPSessions] = 12;
        counters[(int)DeviceCounter.ICMPSessions] = 5;
        const string socket = "/run/nvredirect/dp-agent-ns.sock";
        return new DatapathInfo
        {
            Pid = 4242, Version = "1.0.0.0", Namespace = "agent-ns", ControlSocket = socket,
            StartTime = new DateTime(2026, 12, 3, 10, 0, 0, 500, DateTimeKind.Utc), Restarts = 1,
            Workloads =
            [
                new DpWorkload { ControlSocket = socket, Mac = "1a:27:f3:87:3a:27", Interface = "vth", Tap = false, DefaultAction = DpPolicyAction.Deny,
                    RuleCount = 2, PacketsIn = 600, PacketsOut = 550, BytesIn = 61000, BytesOut = 52000, SessionsIn = 30, SessionsOut = 4 },
                new DpWorkload { ControlSocket = socket, Mac = "02:00:00:00:00:02", Interface = "vth", Tap = true },
            ],
            DeniedPackets = 17, DeniedSessions = 6, BlockedSessions = 2, ResetsSent = 1, Reevaluations = 3,
            RequestsAccepted = 25, RequestsRejected = 1,
            Tables =
            [
                new DpTable { Name = "Sessions", Capacity = 65536, Count = 9, Evicted = 0 },
                new DpTable { Name = "Connections", Capacity = 16384, Count = 14, Learned = 5, Scans = 1, Evicted = 2, LearnedEvicted = 0, Summarised = 40 },
            ],
            Sessions = new DpSessionCount { ControlSocket = socket, Total = 9, Tcp = 6, Udp = 2, Icmp = 1 },
            Counters = new DpDeviceCounters(socket, counters),
        };
    }

    [Fact]
    public void A_datapath_with_two_workloads_formats_as_the_golden_text()
        => GoldenText.AssertMatches("metrics.prom", DpMetrics.Format([Sample()]));

    [Fact]
    public void Every_family_is_written_once_even_for_two_datapaths()
    {
        var text = DpMetrics.Format([Sample(), new DatapathInfo { ControlSocket = "/tmp/b.sock", Namespace = "b" }]);
        foreach (var family in DpMetrics.Families)
            Assert.True(text.Split('\n').Count(l => l == $"# TYPE {family.Name} {family.Type}") == 1, family.Name);
        Assert.Contains("nvr_dp_workloads{socket=\"/tmp/b.sock\",namespace=\"b\"} 0\n", text);
    }

    [Fact]
    public void Names_are_valid_Prometheus_names_and_counters_end_in_total()
    {
        var name = new System.Text.RegularExpressions.Regex("^[a-zA-Z_:][a-zA-Z0-9_:]*$");
        foreach (var f in DpMetrics.Families)
        {
            Assert.Matches(name, f.Name);
            Assert.Equal(f.Type == "counter", f.Name.EndsWith("_total", StringComparison.Ordinal));
            Assert.Equal(["socket", "namespace"], f.Labels.Take(2));
        }
        Assert.Equal(DpMetrics.Families.Count, DpMetrics.Families.Select(f => f.Name).Distinct().Count());
    }

    [Fact]
    public void Docs_metrics_md_lists_every_family_with_its_type_labels_and_help()
    {
        var doc = System.IO.File.ReadAllText(System.IO.Path.Combine(TestRun.Root, "docs", "metrics.md"));
        foreach (var f in DpMetrics.Families)
        {
            var labels = f.Labels.Skip(2).ToArray();
            Assert.Contains($"| `{f.Name}` | {f.Type} | {(labels.Length == 0 ? "—" : string.Join(", ", labels))} | {f.Help} |", doc);
        }
    }

    [Fact]
    public void Label_values_are_escaped()
        => Assert.Equal("a\\\\b\\\"c\\nd", DpMetrics.EscapeLabel("a\\b\"c\nd"));

    [Theory]
    [InlineData("127.0.0.1:9464", "127.0.0.1:9464")]
    [InlineData("127.1.2.3:80", "127.1.2.3:80")]
    [InlineData("[::1]:9464", "[::1]:9464")]
    public void Loopback_endpoints_are_accepted(string text, string expected)
        => Assert.Equal(expected, DpMetrics.ParseEndpoint(text).ToString());

    [Theory]
    [InlineData("0.0.0.0:9464", "not a loopback address")]
    [InlineData("10.0.0.1:9464", "not a loopback address")]
    [InlineData("[::]:9464", "not a loopback address")]
    [InlineData("127.0.0.1", "not an address and port")]
    [InlineData("127.0.0.1:0", "not an address and port")]
    [InlineData("localhost:9464", "not an address and port")]
    [InlineData("127.0.0.1:70000", "not an address and port")]
    [InlineData("", "not an address and port")]
    public void Other_endpoints_are_refused_with_the_reason(string text, string reason)
        => Assert.Contains(reason, Assert.Throws<ArgumentException>(() => DpMetrics.ParseEndpoint(text)).Message);
}
