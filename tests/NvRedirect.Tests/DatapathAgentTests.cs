using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using System.Text.Json;
using NvRedirect.Datapath.Control;
using NvRedirect.Datapath.Engine;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>
/// nvr-dp as NeuVector's agent drives it: a transcript of every message shape the agent sends
/// (Fixtures/agent-transcript.jsonl, our own corpus after agent/dp/dp_apis.go) run through the controller with replies
/// decoded against dp's layouts field by field; and the CONNECTION reports caught on a listening unix datagram socket.
/// </summary>
public class DatapathAgentTests
{
    private static readonly ulong Wl = TestFrames.ContainerMac, Uc = TestFrames.UnicastAlias, Host = TestFrames.HostMac;
    private const uint HostIp = TestFrames.HostIp, WlIp = TestFrames.ContainerIp;

    private static byte[] Ingress(ushort sport, ushort dport, byte flags, int payload = 0) => TestFrames.Tcp(Uc, Host, HostIp, WlIp, sport, dport, flags, payload);

    private sealed record Line(string Note, string Request, string Reply, IReadOnlyList<string> Commands);

    private static List<Line> Transcript() => File.ReadLines(TestRun.Fixture("agent-transcript.jsonl")).Where(l => l.Trim().Length > 0).Select(l =>
    {
        using var doc = JsonDocument.Parse(l);
        var r = doc.RootElement;
        var request = r.GetProperty("request");
        return new Line(r.GetProperty("note").GetString()!, request.GetRawText(), r.GetProperty("reply").GetString()!,
            request.EnumerateObject().Select(p => p.Name).ToList());
    }).ToList();

    [Fact]
    public void The_transcript_holds_every_message_of_NeuVectors_protocol()
    {
        var ctrl = typeof(Command).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral)
            .Select(f => (string)f.GetRawConstantValue()!).Where(c => c.StartsWith("ctrl_", StringComparison.Ordinal));
        Assert.Empty(ctrl.Except(Transcript().SelectMany(l => l.Commands)));
    }

    [Fact]
    public void Every_message_of_the_agent_is_accepted_and_every_query_answered_in_dps_layout()
    {
        var rig = new DatapathControlTests.Rig(strict: false); // the agent drives nvr-dp with dp's semantics
        int frames = 0, ingressFrames = 0;
        long ingressBytes = 0, egressBytes = 0;
        foreach (var line in Transcript())
        {
            if (line.Note == "the queries")
            {
                // traffic under the Protect policy: 8080 allowed (rule 10001), 9090 refused, then a data segment a slot later
                var syn = Ingress(40000, 8080, 0x02);
                var synAck = TestFrames.Tcp(Host, Uc, WlIp, HostIp, 8080, 40000, 0x12);
                var denied = Ingress(40001, 9090, 0x02);
                Assert.Equal(FrameVerdict.Forward, rig.Frame(syn));
                Assert.Equal(FrameVerdict.Forward, rig.Frame(synAck));
                Assert.Equal(FrameVerdict.Deny, rig.Frame(denied));
                rig.Clock.Advance(StatsLayout.SlotSeconds);
                var data = Ingress(40000, 8080, 0x18, 100);
                Assert.Equal(FrameVerdict.Forward, rig.Frame(data));
                frames = 4;
                ingressFrames = 3;
                ingressBytes = syn.Length + denied.Length + data.Length;
                egressBytes = synAck.Length;
                CheckState(rig);
            }
            long rejected = rig.Controller.Rejected;
            var replies = rig.Send(line.Request);
            Assert.True(rig.Controller.Rejected == rejected, $"{line.Request}: rejected: {rig.Controller.LastRejection}");
            switch (line.Reply)
            {
                case "none": Assert.Empty(replies); break;
                case "keep_alive":
                    Assert.Equal(JsonDocument.Parse(line.Request).RootElement.GetProperty(Command.KeepAlive).GetProperty(Key.SequenceNumber).GetUInt32(),
                        Replies.ReadKeepAlive(Assert.Single(replies)));
                    break;
                case "session_count":
                    Assert.Equal(new SessionCounts(1, 1, 0, 0, 0), Replies.ReadSessionCount(Assert.Single(replies)));
                    break;
                case "session_list":
                    Assert.Equal(2, replies.Count);
                    var session = Assert.Single(Replies.ReadSessionList(replies[0], out bool more));
                    Assert.True(more);
                    Assert.Empty(Replies.ReadSessionList(replies[1], out more));
                    Assert.False(more);
                    Assert.Equal((Wl, (ushort)8080, (uint)10001, DpPolicyAction.Allow, (byte)6), (session.EndpointMac, session.ServerPort, session.PolicyId, session.PolicyAction, session.Protocol));
                    Assert.Equal(new byte[] { 10, 10, 10, 66 }, session.ClientIP);
                    Assert.Equal(DpWire.SessionFlagIngress, session.Flags);
                    break;
                case "device_counter":
                    var d = Assert.Single(replies);
                    Assert.Equal(4 + 568, d.Length); // sizeof(DPMsgDeviceCounter) on x86-64
                    var counters = Replies.ReadDeviceCounters(d);
                    Assert.Equal((ulong)frames, counters[(int)DeviceCounter.RXPackets]);
                    Assert.Equal((ulong)frames, counters[(int)DeviceCounter.TCPPackets]);
                    Assert.Equal(1UL, counters[(int)DeviceCounter.TCPSessions]);
                    // one exact rule (10001) in force, no ranges; one name with two addresses
                    Assert.Equal(new DevicePolicyCounts(1, 0, 1, 2, 0, 0), StatsReplies.ReadDevicePolicyCounts(d));
                    break;
                case "device_stats":
                    var ds = Assert.Single(replies);
                    Assert.Equal(new byte[] { MessageKind.DeviceStats, 0, 0, 180, 0, 0, 0, 5 }, ds[..8]); // header, Interval 5 big-endian
                    var device = StatsReplies.ReadStats(ds, MessageKind.DeviceStats);
                    // the first slot's traffic (everything but the data segment) is the last whole slot, in 12 and in 60
                    var firstSlot = new StatsWindow(1, 0, 2, 1, (ulong)(ingressBytes - 100 - 54), (ulong)egressBytes);
                    Assert.Equal(new TrafficStats(5, 1, 0, 1, 0, (ulong)ingressFrames, 1, (ulong)ingressBytes, (ulong)egressBytes, firstSlot, firstSlot, firstSlot), device);
                    break;
                case "mac_stats":
                    var ms = StatsReplies.ReadStats(Assert.Single(replies), MessageKind.MacStats);
                    // as dp's collect_stats: the last slot before now, and the slots up to (not including) the workload's latest
                    var slot = new StatsWindow(1, 0, 2, 1, (ulong)(ingressBytes - 100 - 54), (ulong)egressBytes);
                    Assert.Equal(new TrafficStats(5, 1, 0, 1, 0, (ulong)ingressFrames, 1, (ulong)ingressBytes, (ulong)egressBytes, slot, slot, slot), ms);
                    break;
                case "meter_list":
                    var ml = Assert.Single(replies);
                    Assert.Equal(new byte[] { MessageKind.MeterList, 0, 0, 8, 0, 0, 0, 0 }, ml);
                    Assert.Empty(StatsReplies.ReadMeterList(ml, out bool meterMore));
                    Assert.False(meterMore);
                    break;
                default: throw new InvalidOperationException($"unknown reply kind {line.Reply} in the transcript");
            }
        }
        Assert.Equal(0, rig.Controller.Rejected);
        Assert.Empty(rig.Controller.State.Workloads);
        Assert.Null(rig.Controller.State.ServicePort);
    }

    // nvr_get_state shows what was kept, and what was accepted without effect, counted
    private static void CheckState(DatapathControlTests.Rig rig)
    {
        var state = JsonReplies.ReadState(Replies.Join(rig.Send("""{"nvr_get_state": {}}"""), MessageKind.State, "state"));
        var agent = Assert.IsType<AgentState>(state.Agent);
        Assert.Equal(new[] { new InternalSubnet(0x0a0a0a01, 0xffffffff, "hostip"), new InternalSubnet(0x0a600000, 0xfff00000, "svcip"),
            new InternalSubnet(0xc0000200, 0xffffff00, "extip") }, agent.SpecialNets);
        var fqdn = Assert.Single(agent.Fqdns);
        Assert.Equal(("www.example.com", false), (fqdn.Name, fqdn.VirtualHost));
        Assert.Equal(new[] { IPAddress.Parse("192.0.2.10"), IPAddress.Parse("192.0.2.11") }, fqdn.Addresses);
        Assert.Equal(new[] { Wl }, agent.NbeMacs);
        Assert.Empty(agent.TapPorts); // added in Discover, deleted for Protect
        Assert.Equal(new Dictionary<string, long>
        {
            [Command.AddNfqPort] = 1, [Command.AddPortPair] = 1, [Command.AddTapPort] = 1, [Command.BuildDlp] = 1, [Command.BuildDlpMac] = 1,
            [Command.ConfigureDlp] = 1, [Command.ConfigureDlpMac] = 1, [Command.DeleteNfqPort] = 1, [Command.DeletePortPair] = 1,
            [Command.DeleteTapPort] = 1, [Command.RefreshApp] = 1,
        }, agent.NoEffect.ToDictionary(n => n.Command, n => n.Count));
        Assert.Contains(rig.Log.Lines, l => l.Contains("ctrl_add_tap_port: accepted without effect: nvr-dp opens no tap ports (eth0 in /proc/4242/ns/net"));
        Assert.Equal(new ReportCounters(null, false, 0, 0, 0, null), agent.Reports); // this controller sends no reports
    }

    // --- CONNECTION reports ---

    private sealed class Listener : IDisposable
    {
        public readonly string Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{TestRun.Prefix}ctrl-{Guid.NewGuid().ToString("N")[..12]}.sock");
        public readonly Socket Socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        public Listener() => Socket.Bind(new UnixDomainSocketEndPoint(Path));

        public List<byte[]> Receive()
        {
            var got = new List<byte[]>();
            var buffer = new byte[DpWire.MaxMessageSize + 1];
            while (Socket.Poll(TimeSpan.FromMilliseconds(200), SelectMode.SelectRead))
            {
                int n = Socket.Receive(buffer);
                got.Add(buffer[..n]);
            }
            return got;
        }

        public void Dispose()
        {
            Socket.Dispose();
            File.Delete(Path);
        }
    }

    private const long UnixNow = 1_800_000_000;

    private static (DatapathControlTests.Rig Rig, ConnectionReporter Reporter) ReportRig(string path, uint? group = null)
    {
        var rig = new DatapathControlTests.Rig(strict: false); // the agent drives nvr-dp with dp's semantics
        rig.SendSeed();
        rig.Send("""{"ctrl_cfg_policy_addr": {"flag": 3, "subnet_addr": [{"ip": "10.10.10.66", "mask": "255.255.255.255"}, {"ip": "10.10.10.88", "mask": "255.255.255.255"}]}}""");
        rig.Send("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 5, "sip": "10.10.10.66", "dip": "10.10.10.88", "port": 8080, "portr": 8080, "proto": 6, "action": 2, "ingress": true}]}}""");
        Assert.Equal(0, rig.Controller.Rejected);
        // dp's clock is Unix time; the datapath's is monotonic: now in one is now in the other
        return (rig, new ConnectionReporter(rig.Engine, path, group, rig.Log, () => UnixNow + (rig.Clock.NowSeconds - 1000)));
    }

    [Fact]
    public void Connection_reports_reach_the_agents_socket_one_record_per_key_with_the_latest_action()
    {
        using var listener = new Listener();
        var (rig, reporter) = ReportRig(listener.Path);
        using var _ = reporter;
        var allowed = Ingress(40000, 8080, 0x02);
        rig.Frame(allowed);
        var refused = Ingress(40001, 9090, 0x02);
        for (int i = 0; i < 3; i++) Assert.Equal(FrameVerdict.Deny, rig.Frame(refused)); // each retransmission refused and counted
        rig.Clock.Advance(2);
        // Monitor: the same connection key (default rule 0, same client, server, port) is now a violation
        rig.Send("""{"ctrl_cfg_policy": {"cmd": 2, "flag": 3, "defact": 6, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 5, "sip": "10.10.10.66", "dip": "10.10.10.88", "port": 8080, "portr": 8080, "proto": 6, "action": 2, "ingress": true}]}}""");
        var violating = Ingress(40002, 9090, 0x02);
        Assert.Equal(FrameVerdict.Forward, rig.Frame(violating));

        Assert.Equal(2, reporter.Report());
        var datagram = Assert.Single(listener.Receive());
        Assert.Equal(new byte[] { MessageKind.Connection, 1, 0, 4 + 4 + 2 * 96 }, datagram[..4]); // More=1 always, as dp
        var records = StatsReplies.ReadConnections(datagram);
        Assert.Equal(2, records.Count);
        byte[] client = [10, 10, 10, 66], server = [10, 10, 10, 88];
        Same(new ConnectionReport(Wl, 6, 8080, 0, false, client, server, ConnectionLayout.FlagIngress, (uint)allowed.Length, 1, (uint)UnixNow, (uint)UnixNow, 0,
            DpPolicyAction.Allow, 0, 5, 0, 0, 2, 0, 0), records[0]);
        Same(new ConnectionReport(Wl, 6, 9090, 0, false, client, server, ConnectionLayout.FlagIngress, (uint)(3 * refused.Length + violating.Length), 1,
            (uint)UnixNow, (uint)UnixNow + 2, 0, DpPolicyAction.Violate, 0, 0, 4, 0, 2, 0, 0), records[1]);

        // nothing new: nothing sent; a new packet: only what it added
        Assert.Equal(0, reporter.Report());
        Assert.Empty(listener.Receive());
        var ack = Ingress(40000, 8080, 0x10);
        rig.Frame(ack);
        Assert.Equal(1, reporter.Report());
        var again = Assert.Single(StatsReplies.ReadConnections(Assert.Single(listener.Receive())));
        Assert.Equal((8080, 0u, (uint)ack.Length, DpPolicyAction.Allow), (again.ServerPort, again.Sessions, again.Bytes, again.PolicyAction));
        Assert.Equal(new ReportCounters(listener.Path, true, 2, 3, 0, null), reporter.Counters());
    }

    [Fact]
    public void Reports_go_only_to_a_socket_root_or_the_configured_group_owns()
    {
        using var listener = new Listener();
        var (rig, reporter) = ReportRig(listener.Path);
        using var _ = reporter;
        rig.Frame(Ingress(40000, 8080, 0x02));
        Tool.RunOk("chown", ["65534:65534", listener.Path]); // what an unprivileged user's socket in /tmp looks like
        Assert.Equal(0, reporter.Report());
        Assert.Empty(listener.Receive());
        var counters = reporter.Counters();
        Assert.Equal((false, 1L), (counters.Listening, counters.Failures));
        Assert.Contains("owned by uid 65534", counters.LastFailure);
        Assert.Contains(rig.Log.Lines, l => l.Contains("connection reports:") && l.Contains("owned by uid 65534"));

        using var grouped = new ConnectionReporter(rig.Engine, listener.Path, 65534, rig.Log, () => UnixNow);
        Assert.Equal(1, grouped.Report()); // the group it was told to trust; and nothing was lost meanwhile
        Assert.Single(listener.Receive());

        File.Delete(listener.Path); // nobody listens: not a failure
        rig.Frame(Ingress(40000, 8080, 0x10));
        Assert.Equal(0, grouped.Report());
        Assert.Equal((false, 0L), (grouped.Counters().Listening, grouped.Counters().Failures));
        File.CreateSymbolicLink(listener.Path, "/dev/null");
        Assert.Equal(0, grouped.Report());
        Assert.Contains("symbolic link", grouped.Counters().LastFailure);
    }

    [Fact]
    public void Stats_and_meter_replies_read_back_as_they_were_written()
    {
        var w = (Func<uint, StatsWindow>)(i => new StatsWindow(i, i + 1, 0x0102030405060708UL + i, i + 3, ulong.MaxValue - i, i + 5));
        var stats = new TrafficStats(5, 1, 2, 3, 4, 5, 6, 7, ulong.MaxValue, w(10), w(20), w(30));
        foreach (var kind in new[] { MessageKind.MacStats, MessageKind.DeviceStats })
        {
            var b = StatsReplies.Stats(kind, stats);
            Assert.Equal(4 + 176, b.Length);
            Assert.Equal(stats, StatsReplies.ReadStats(b, kind));
            // golden offsets: SessionCurOut at 16+4, PacketIn (u64) at 24+4, the 12-slot window's PacketIn at 96+8+4
            Assert.Equal(new byte[] { 0, 0, 0, 4 }, b[(4 + 20)..(4 + 24)]);
            Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 0, 0, 5 }, b[(4 + 24)..(4 + 32)]);
            Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 28 }, b[(4 + 104)..(4 + 112)]);
        }
        Assert.Throws<ReplyFormatException>(() => StatsReplies.ReadStats(StatsReplies.Stats(MessageKind.MacStats, stats), MessageKind.DeviceStats));

        var meters = Enumerable.Range(0, 200).Select(i => new MeterEntry(Wl, (ushort)i, 7, 8, new byte[] { 10, 0, 0, (byte)i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
            1, 3, 9, 100, 50)).ToList();
        var datagrams = StatsReplies.MeterList(meters);
        Assert.Equal(new[] { 186, 14, 0 }, datagrams.Select(d => d.Length < 8 ? -1 : (d.Length - 8) / 44)); // 186 per datagram, then the terminator
        var read = new List<MeterEntry>();
        foreach (var d in datagrams) read.AddRange(StatsReplies.ReadMeterList(d, out _));
        Assert.Equal(meters.Count, read.Count);
        for (int i = 0; i < meters.Count; i++) Same(meters[i], read[i]);

        var reports = Enumerable.Range(0, 100).Select(i => new ConnectionReport(Wl, 17, (ushort)i, 53, false, [10, 0, 0, (byte)i], [192, 0, 2, 1],
            ConnectionLayout.FlagExternal, (uint)i * 1000, 2, 1_800_000_000, 1_800_000_006, 0, DpPolicyAction.Deny, 0, 7, 3, 0, 1, 2, 3)).ToList();
        var connections = StatsReplies.Connections(reports);
        Assert.Equal(new[] { 4 + 4 + 85 * 96, 4 + 4 + 15 * 96 }, connections.Select(d => d.Length));
        Assert.All(connections, d => Assert.Equal(1, d[1]));
        var back = connections.SelectMany(d => StatsReplies.ReadConnections(d)).ToList();
        for (int i = 0; i < reports.Count; i++) Same(reports[i], back[i]);
        // golden offsets of the first record: ServerPort at 8, ClientIP at 12, EtherType at 44, PolicyId at 68, EpByteIn12 at 88
        var first = connections[0].AsSpan(8, 96).ToArray();
        Assert.Equal(new byte[] { 0, 0 }, first[8..10]);
        Assert.Equal(new byte[] { 10, 0, 0, 0 }, first[12..16]);
        Assert.Equal(new byte[] { 0x08, 0x00 }, first[44..46]);
        Assert.Equal(new byte[] { 0, 0, 0, 7 }, first[68..72]);
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 0, 0, 3 }, first[88..96]);

        var values = Enumerable.Range(1, 27).Select(i => (ulong)i).ToArray();
        var policy = new DevicePolicyCounts(1, 2, 3, 4, 5, 6);
        var counter = StatsReplies.DeviceCounters(values, policy);
        Assert.Equal(values, Replies.ReadDeviceCounters(counter));
        Assert.Equal(policy, StatsReplies.ReadDevicePolicyCounts(counter));
        Assert.Equal(new byte[] { 0, 0, 0, 1 }, counter[(4 + 536)..(4 + 540)]); // PolicyType1Rules after 27 + 40 u64
    }

    private static void Same(object expected, object actual)
    {
        foreach (var p in expected.GetType().GetProperties())
        {
            object? x = p.GetValue(expected), y = p.GetValue(actual);
            if (x is byte[] a) Assert.True(a.SequenceEqual((byte[])y!), $"{p.Name}: expected {Convert.ToHexString(a)}, got {Convert.ToHexString((byte[])y!)}");
            else Assert.True(Equals(x, y), $"{p.Name}: expected {x}, got {y}");
        }
    }
}
