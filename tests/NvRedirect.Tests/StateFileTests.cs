using System;
using System.IO;
using System.Linq;
using System.Text;
using NvRedirect.Datapath.Control;
using NvRedirect.Datapath.Engine;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The configuration outlives the process: every committed datagram is saved (atomically, before its replies), a new
/// controller restores it whole, and a corrupt or foreign file is refused, set aside and never half-applied.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class StateFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nvr-state-").FullName;
    private string PathOf => Path.Combine(_dir, "dp.state");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private const string Policy = """{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 2, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 7, "sip": "10.10.10.1", "sipr": "10.10.10.9", "dip": "10.10.10.2", "port": 80, "portr": 90, "proto": 6, "action": 1, "ingress": true}]}}""";
    private const string SecondMac = """{"ctrl_add_mac": {"iface": "vth", "mac": "02:00:00:00:00:42", "ucmac": "4e:65:75:56:00:42"}}""";
    private const string Toggles = """{"ctrl_enable_icmp_policy": {"enable_icmp_policy": false}, "ctrl_sys_conf": {"xff_enabled": true}, "ctrl_cfg_policy_addr": {"flag": 3, "subnet_addr": [{"ip": "10.10.10.7", "mask": "255.255.255.255"}]}}""";

    private DatapathControlTests.Rig Configured(string ns = "ns-a")
    {
        var rig = new DatapathControlTests.Rig();
        rig.Controller.Persist = new StateFile(PathOf, ns);
        rig.SendSeed();
        foreach (var m in new[] { SecondMac, Policy, Toggles }) Assert.Empty(rig.Send(m));
        Assert.True(rig.Controller.Rejected == 0, rig.Controller.LastRejection);
        return rig;
    }

    private static DatapathControlTests.Rig Restarted(string path, string ns = "ns-a")
    {
        var rig = new DatapathControlTests.Rig();
        rig.Controller.Persist = new StateFile(path, ns);
        return rig;
    }

    [Fact]
    public void Every_committed_datagram_is_on_disk_before_it_returns_and_a_restart_restores_all_of_it()
    {
        var before = Configured();
        var described = before.Controller.State.Describe();
        Assert.Contains("tap=False policy=v1:2:3:1", described); // the seed's workload, inline, with its policy

        var after = Restarted(PathOf);
        Assert.Null(after.Controller.Restore());
        Assert.Equal(described, after.Controller.State.Describe());
        Assert.Equal(["vth"], after.Ports.Select(p => p.Interface));
        Assert.True(after.Ports[0].Started);
        Assert.Contains(after.Log.Lines, l => l.Contains("restored the configuration saved in"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(PathOf));
        Assert.False(File.Exists(PathOf + ".tmp"));

        // the next change is saved before Handle returns (the reply would go out after): a third start sees it
        Assert.Empty(after.Send("""{"ctrl_del_mac": {"mac": "02:00:00:00:00:42"}}"""));
        var third = Restarted(PathOf);
        Assert.Null(third.Controller.Restore());
        Assert.Equal(after.Controller.State.Describe(), third.Controller.State.Describe());
        Assert.DoesNotContain("02:00:00:00:00:42", third.Controller.State.Describe());
    }

    [Fact]
    public void Queries_and_rejected_datagrams_do_not_rewrite_the_file()
    {
        var rig = Configured();
        long writes = rig.Controller.Persist!.Writes;
        rig.Send("""{"ctrl_keep_alive": {"seq_num": 3}}""");
        rig.Send("""{"ctrl_add_mac": {"iface": "vth", "mac": "01:00:00:00:00:01"}}"""); // multicast: refused
        Assert.Equal(1, rig.Controller.Rejected);
        Assert.Equal(writes, rig.Controller.Persist.Writes);
    }

    [Theory]
    [InlineData("not json at all", "it is not JSON")]
    [InlineData("""{"something": 1}""", "not an nvr-dp state file")]
    [InlineData("""{"nvr_state": 2, "namespace": "ns-a", "datagrams": []}""", "format 2")]
    [InlineData("""{"nvr_state": 1, "namespace": "other", "datagrams": []}""", "written for namespace 'other'")]
    public void A_corrupt_or_foreign_file_is_refused_set_aside_and_the_daemon_starts_empty(string content, string reason)
    {
        File.WriteAllText(PathOf, content);
        var rig = Restarted(PathOf);
        Assert.Contains(reason, rig.Controller.Restore());
        Assert.Empty(rig.Controller.State.Workloads);
        Assert.False(File.Exists(PathOf));
        var aside = Directory.GetFiles(_dir, "dp.state.refused-*");
        Assert.Single(aside);
        Assert.Equal(content, File.ReadAllText(aside[0]));
        Assert.Contains(rig.Log.Lines, l => l.Contains("ERROR") && l.Contains(reason) && l.Contains("set aside as") && l.Contains("nothing of it is"));
    }

    [Fact]
    public void A_file_with_one_refused_datagram_is_not_half_applied()
    {
        Configured();
        // truncate the file's last workload-independent part: the policy's MAC no longer registered
        var text = File.ReadAllText(PathOf).Replace("\"ctrl_add_mac\":{\"iface\":\"vth\",\"mac\":\"1a:27:f3:87:3a:27\"", "\"ctrl_add_mac\":{\"iface\":\"vth\",\"mac\":\"01:27:f3:87:3a:27\"", StringComparison.Ordinal);
        Assert.NotEqual(File.ReadAllText(PathOf), text);
        File.WriteAllText(PathOf, text);
        var rig = Restarted(PathOf);
        Assert.Contains("not a unicast address", rig.Controller.Restore());
        Assert.Empty(rig.Controller.State.Workloads); // not even the valid second workload
        Assert.Null(rig.Controller.State.ServicePort);
        Assert.All(rig.Ports, p => Assert.True(p.Disposed)); // the port opened while validating is closed again
    }

    [Fact]
    public void The_file_is_the_protocols_own_datagrams()
    {
        var rig = Configured();
        var datagrams = StateFile.Datagrams(rig.Controller.State).Select(d => Encoding.UTF8.GetString(d)).ToList();
        Assert.StartsWith("{\"ctrl_add_mac\":", datagrams[0]);
        Assert.StartsWith("{\"ctrl_add_srvc_port\":{\"iface\":\"vth\"", datagrams[^1]); // the ring opens last
        Assert.Contains(datagrams, d => d.StartsWith("{\"ctrl_cfg_policy\":", StringComparison.Ordinal));
        // replayed as ordinary requests on a fresh controller they give the same state
        var replay = new DatapathControlTests.Rig();
        foreach (var d in datagrams) replay.Send(d);
        Assert.True(replay.Controller.Rejected == 0, replay.Controller.LastRejection);
        Assert.Equal(rig.Controller.State.Describe(), replay.Controller.State.Describe());
    }

    private const ulong SeedMac = 0x1a27f3873a27, SecondMacValue = 0x020000000042;

    private static ConnectionKey Learnt(ulong mac, ushort port, bool v6 = false) => new()
    {
        EndpointMac = mac, Ingress = true, ClientLow = 0x0a0a0a01u + port, ServerLow = 0x0a0a0a02u, ServerPort = port, Protocol = 6, RuleId = 7,
        Action = NvRedirect.Core.Protocol.DpPolicyAction.Allow, IPv6 = v6, ClientHigh = v6 ? 0xfd00000000000000UL : 0, ServerHigh = v6 ? 0xfd00000000000000UL : 0,
    };

    private static string Describe(ConnectionRecord c)
        => $"{c.Key.EndpointMac:x}/{c.Key.Ingress}/{c.Key.ClientHigh:x}:{c.Key.ClientLow:x}>{c.Key.ServerHigh:x}:{c.Key.ServerLow:x}:{c.Key.ServerPort}/{c.Key.Protocol}"
           + $"/{c.Key.RuleId}/{c.Key.Action}/{c.Key.IPv6} s{c.Sessions} p{c.Packets} b{c.Bytes} d{c.Dropped} answered={c.Answered}";

    [Fact]
    public void Learned_connections_survive_a_restart_unlearned_ones_do_not_and_the_saved_share_is_bounded()
    {
        var before = new DatapathControlTests.Rig(connections: 16); // at most 14 answered entries
        before.Controller.Persist = new StateFile(PathOf, "ns-a");
        before.SendSeed();
        Assert.Empty(before.Send(SecondMac));
        var table = before.Engine.Connections;
        for (ushort p = 1; p <= 20; p++) // 20 answers: the 6 oldest are evicted by the table's own bound
        {
            int i = table.Find(Learnt(p % 2 == 0 ? SeedMac : SecondMacValue, p, v6: p == 20), 1000 + p);
            table.Account(i, 100 + p, false, 1000 + p);
            table[i].Sessions = p;
            table.MarkAnswered(i);
        }
        table.Find(Learnt(SeedMac, 999), 1100); // never answered: not learned, not saved
        var learned = table.SnapshotLearned();
        Assert.Equal(14, learned.Count);

        // the tick saves what changed; a second tick with nothing learned writes nothing
        long writes = before.Controller.Persist!.Writes;
        before.Controller.SaveLearned();
        Assert.Equal(writes + 1, before.Controller.Persist.Writes);
        before.Controller.SaveLearned();
        Assert.Equal(writes + 1, before.Controller.Persist.Writes);
        Assert.Contains("\"connections\":", File.ReadAllText(PathOf));

        var after = new DatapathControlTests.Rig(connections: 16);
        after.Controller.Persist = new StateFile(PathOf, "ns-a");
        Assert.Null(after.Controller.Restore());
        Assert.Equal(learned.Select(Describe), after.Engine.Connections.SnapshotLearned().Select(Describe));
        Assert.Equal(14, after.Engine.Connections.Count); // the unanswered entry stayed behind
        Assert.Contains(after.Log.Lines, l => l.Contains("14 learned connections"));

        // a smaller table keeps the newest of them (its own answered share), and a commit saves that bound
        var small = new DatapathControlTests.Rig(connections: 8);
        small.Controller.Persist = new StateFile(PathOf, "ns-a");
        Assert.Null(small.Controller.Restore());
        Assert.Equal(small.Engine.Connections.MaxAnswered, small.Engine.Connections.AnsweredCount);
        Assert.Equal(learned.TakeLast(small.Engine.Connections.MaxAnswered).Select(Describe), small.Engine.Connections.SnapshotLearned().Select(Describe));

        // forgetting a workload's connections (a commit) is saved with it: a restart does not bring them back
        Assert.Empty(small.Send("""{"nvr_clear_connection": {"macs": []}}"""));
        var third = new DatapathControlTests.Rig(connections: 8);
        third.Controller.Persist = new StateFile(PathOf, "ns-a");
        Assert.Null(third.Controller.Restore());
        Assert.Equal(0, third.Engine.Connections.Count);
    }

    [Fact]
    public void Unreadable_learned_connections_refuse_the_file_whole()
    {
        var rig = Configured();
        string text = File.ReadAllText(PathOf).TrimEnd();
        File.WriteAllText(PathOf, text[..^1] + ""","connections": {"connections": [{"mac": "nope"}]}}""" + "\n");
        var after = Restarted(PathOf);
        Assert.NotNull(after.Controller.Restore());
        Assert.Empty(after.Controller.State.Workloads);
        Assert.False(File.Exists(PathOf));
    }

    [Fact]
    public void The_agents_state_survives_a_restart_through_its_own_requests()
    {
        var rig = Configured();
        foreach (var m in new NvRedirect.Core.Protocol.IRequestMessage[]
        {
            new NvRedirect.Core.Protocol.SpecialIpNetRequest(NvRedirect.Core.Protocol.ChunkFlags.Whole,
                [new(0xac100000, 0xfff00000, "svcip"), new(0x0a0a0a00, 0xffffff00, "hostip")]),
            new NvRedirect.Core.Protocol.NbeRequest([SecondMacValue], true),
            new NvRedirect.Core.Protocol.SetFqdnRequest("Web.Example.Test", [System.Net.IPAddress.Parse("192.0.2.7"), System.Net.IPAddress.Parse("2001:db8::7")]),
            new NvRedirect.Core.Protocol.SetFqdnRequest("vh.example.test", [], true),
            new NvRedirect.Core.Protocol.TapPortRequest(NvRedirect.Core.Protocol.Command.AddTapPort, "/proc/1/ns/net", "eth9", SeedMac),
        })
            Assert.Empty(rig.Controller.Handle(NvRedirect.Core.Protocol.Datagram.Of(m)));
        Assert.True(rig.Controller.Rejected == 0, rig.Controller.LastRejection);
        var described = rig.Controller.State.Describe();
        Assert.Contains("nbe=02:00:00:00:00:42", described);
        Assert.Contains("fqdns=vh.example.test::vh,web.example.test:192.0.2.7|2001:db8::7", described);
        Assert.Contains("tap_ports=/proc/1/ns/net:eth9:1a:27:f3:87:3a:27", described);
        Assert.Matches("special_nets=172.16.0.0/255.240.0.0:svcip,10.10.10.0/255.255.255.0:hostip", described);

        var after = Restarted(PathOf);
        Assert.Null(after.Controller.Restore());
        Assert.Equal(described, after.Controller.State.Describe());
    }
}
