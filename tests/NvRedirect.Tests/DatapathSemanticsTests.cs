using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath;
using NvRedirect.Datapath.Engine;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The two semantics (docs/datapath.md, "Semantics: NeuVector's dp or strict"), driven by raw control datagrams as an
/// agent sends them and by frames through the processor on a manual clock: NeuVector dp's (a daemon started by hand or
/// -AgentCompatible) with the unknown-address grace period, ICMP unpoliced until the agent's toggle and inbound UDP
/// oriented by the listening ports; and the strict one (nvr-dp --strict, the module's default).
/// </summary>
public class DatapathSemanticsTests
{
    private const ulong U = TestFrames.UnicastAlias, H = TestFrames.HostMac;
    private const uint Hip = TestFrames.HostIp, C = TestFrames.ContainerIp;
    private const uint Far = 0xc0000207; // 192.0.2.7: outside the seed's internal networks (external)
    private const byte Syn = 0x02, Ack = 0x10;
    private const string Protect = """{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 1001, "sip": "10.10.10.66", "dip": "10.10.10.88", "port": 8080, "proto": 6, "action": 2, "ingress": true}]}}""";
    private const string BothNamed = """{"ctrl_cfg_policy_addr": {"flag": 3, "subnet_addr": [{"ip": "10.10.10.66", "mask": "255.255.255.255"}, {"ip": "10.10.10.88", "mask": "255.255.255.255"}]}}""";

    private static DatapathControlTests.Rig Seeded(bool strict, string policy = Protect)
    {
        var rig = new DatapathControlTests.Rig(strict: strict);
        rig.SendSeed();
        Assert.Empty(rig.Send(policy));
        Assert.Equal(0, rig.Controller.Rejected);
        return rig;
    }

    private static byte[] InSyn(ushort sport, ushort dport = 9090, uint from = Hip) => TestFrames.Tcp(U, H, from, C, sport, dport, Syn, seq: 100);
    private static byte[] OutSynAck(ushort dport, ushort sport = 9090) => TestFrames.Tcp(H, U, C, Hip, sport, dport, Syn | Ack, seq: 500, ack: 101);
    private static byte[] InData(ushort sport, ushort dport = 9090) => TestFrames.Tcp(U, H, Hip, C, sport, dport, Ack | 8, 10, 101, ack: 501);
    private static byte[] InPing(ushort id) => TestFrames.Icmp(U, H, Hip, C, 8, id);
    private static byte[] InUdp(ushort sport, ushort dport) => TestFrames.Udp(U, H, Hip, C, sport, dport);

    private static StateReport State(DatapathControlTests.Rig rig)
        => JsonReplies.ReadState(rig.Send("""{"nvr_get_state": {}}""").SelectMany(c => c.Skip(4)).ToArray());

    private static List<JsonElement> Connections(DatapathControlTests.Rig rig)
    {
        var doc = JsonDocument.Parse(rig.Send("""{"nvr_list_connection": {}}""").SelectMany(c => c.Skip(4)).ToArray());
        return doc.RootElement.GetProperty(Key.Connections).EnumerateArray().ToList();
    }

    [Fact]
    public void Driven_raw_the_daemon_starts_with_dps_defaults_and_strict_with_the_strict_ones()
    {
        var raw = new DatapathControlTests.Rig(strict: false);
        Assert.Equal((false, false), (State(raw).Strict, State(raw).EnableIcmpPolicy));
        var strict = new DatapathControlTests.Rig(strict: true);
        Assert.Equal((true, true), (State(strict).Strict, State(strict).EnableIcmpPolicy));
        Assert.True(Options.Parse(["--strict"]).Strict);
        Assert.False(Options.Parse([]).Strict);
        // nvr_cfg_strict switches at run time, is reported, and kept as the other switches are
        Assert.Empty(raw.Send("""{"nvr_cfg_strict": {"strict": true}}"""));
        Assert.True(State(raw).Strict);
        Assert.Contains("strict=True", raw.Controller.State.Describe());
        Assert.Empty(raw.Send("""{"nvr_cfg_strict": {"strict": "yes"}}"""));
        Assert.Equal(1, raw.Controller.Rejected);
        Assert.True(State(raw).Strict);
    }

    [Fact]
    public void An_address_the_agent_has_not_named_gets_dps_grace_period_which_runs_out_after_ten_renewals()
    {
        var rig = Seeded(strict: false);
        ushort port = 40000;
        // no rule allows 9090 and Protect's default is DENY, but 10.10.10.66 is in no ctrl_cfg_policy_addr: OPEN, rule 0
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(port++)));
        var open = Assert.Single(Connections(rig), c => c.GetProperty(Key.ServerPort).GetInt32() == 9090);
        Assert.Equal((DpPolicyAction.Open, 0), ((DpPolicyAction)open.GetProperty(Key.Action).GetByte(), open.GetProperty(Key.ConnectionRuleId).GetInt32()));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(39999, 8080)));
        // the session list marks the session as dp does (DPSESS_FLAG_TMP_OPEN); the one a rule allowed is not marked
        var sessions = Replies.ReadSessionList(rig.Send("""{"ctrl_list_session": {}}""")[0], out _);
        Assert.Equal(DpWire.SessionFlagIngress | DpWire.SessionFlagTmpOpen, Assert.Single(sessions, x => x.ServerPort == 9090).Flags);
        Assert.Equal(DpWire.SessionFlagIngress, Assert.Single(sessions, x => x.ServerPort == 8080).Flags);
        rig.Clock.Advance(30);
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(port++))); // inside the 60 s window
        // each later window takes one of the ten tries
        for (int i = 0; i < UnknownPeerGrace.Tries; i++)
        {
            rig.Clock.Advance(UnknownPeerGrace.Window + 1);
            Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(port++)));
        }
        rig.Clock.Advance(UnknownPeerGrace.Window + 1);
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InSyn(port++)));
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InSyn(port++)));
        // the allowed port is decided by its rule throughout, never by the grace
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(port++, 8080)));
        var state = State(rig);
        Assert.Equal(12, state.PolicyCounters.GraceOpened);
        Assert.Equal(2, state.PolicyCounters.DeniedSessions);
        // forgotten after ten idle minutes, the pair gets a fresh grace (as dp's cache timeout)
        rig.Clock.Advance(UnknownPeerGrace.Idle);
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(port++)));
    }

    [Fact]
    public void An_external_peer_gets_two_renewals_and_is_named_through_the_workloads_own_address()
    {
        var rig = Seeded(strict: false);
        ushort port = 41000;
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(port++, from: Far)));
        for (int i = 0; i < UnknownPeerGrace.ExternalTries; i++)
        {
            rig.Clock.Advance(UnknownPeerGrace.Window + 1);
            Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(port++, from: Far)));
        }
        rig.Clock.Advance(UnknownPeerGrace.Window + 1);
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InSyn(port++, from: Far)));

        // an external peer is never named: once the workload's own address is, the default stands at once
        var named = Seeded(strict: false);
        Assert.Empty(named.Send("""{"ctrl_cfg_policy_addr": {"flag": 3, "subnet_addr": [{"ip": "10.10.10.88", "mask": "255.255.255.255"}]}}"""));
        Assert.Equal(FrameVerdict.Deny, named.Frame(InSyn(42000, from: Far)));
        // while an internal peer the agent has not named still gets its grace
        Assert.Equal(FrameVerdict.Forward, named.Frame(InSyn(42001)));
    }

    [Fact]
    public void Naming_the_address_cuts_the_grace_short_for_new_and_open_sessions()
    {
        var rig = Seeded(strict: false);
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(40000)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(OutSynAck(40000)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InData(40000)));
        Assert.Empty(rig.Send(BothNamed));
        // the open session is decided again: denied now, so it is reset both ways; a new one is refused
        Assert.Equal(FrameVerdict.Reset, rig.Frame(InData(40000)));
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InSyn(40001)));
        Assert.Contains(Connections(rig), c => c.GetProperty(Key.ServerPort).GetInt32() == 9090 && (DpPolicyAction)c.GetProperty(Key.Action).GetByte() == DpPolicyAction.Deny);
    }

    [Fact]
    public void Strict_has_no_grace_and_switching_to_it_ends_the_grace_of_open_sessions()
    {
        var strict = Seeded(strict: true);
        Assert.Equal(FrameVerdict.Deny, strict.Frame(InSyn(40000)));
        Assert.Equal(0, State(strict).PolicyCounters.GraceOpened);

        var rig = Seeded(strict: false);
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(40000)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(OutSynAck(40000)));
        Assert.Empty(rig.Send("""{"nvr_cfg_strict": {"strict": true}}"""));
        Assert.Equal(FrameVerdict.Reset, rig.Frame(InData(40000)));
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InSyn(40001)));
    }

    [Fact]
    public void A_monitor_default_gets_the_grace_too_and_strict_group_mode_withholds_it_from_internal_peers()
    {
        var rig = Seeded(strict: false, Protect.Replace("\"defact\": 7", "\"defact\": 6"));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(40000)));
        Assert.Contains(Connections(rig), c => (DpPolicyAction)c.GetProperty(Key.Action).GetByte() == DpPolicyAction.Open);
        var sgm = Seeded(strict: false);
        Assert.Empty(sgm.Send("""{"ctrl_strict_group_mode": {"strict_group_mode": true}}"""));
        Assert.Equal(FrameVerdict.Deny, sgm.Frame(InSyn(40000)));
        Assert.Equal(FrameVerdict.Forward, sgm.Frame(InSyn(40001, from: Far))); // external peers keep theirs
    }

    [Fact]
    public void Ping_passes_until_the_agents_icmp_toggle_and_strict_polices_it_from_the_start()
    {
        var rig = Seeded(strict: false);
        Assert.Empty(rig.Send(BothNamed)); // no grace: only the ICMP switch decides
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InPing(1)));
        var builtIn = Assert.Single(Connections(rig), c => c.GetProperty(Key.Protocol).GetInt32() == 1);
        Assert.Equal((DpPolicyAction.Allow, 0), ((DpPolicyAction)builtIn.GetProperty(Key.Action).GetByte(), builtIn.GetProperty(Key.ConnectionRuleId).GetInt32()));
        Assert.Empty(rig.Send("""{"ctrl_enable_icmp_policy": {"enable_icmp_policy": true}}"""));
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InPing(1))); // the open echo session is decided again: blocked
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InPing(2)));

        var strict = Seeded(strict: true);
        Assert.Equal(FrameVerdict.Deny, strict.Frame(InPing(1)));
        // the agent's own toggle still rules a strict daemon: off, the built-in rule lets ping pass
        Assert.Empty(strict.Send("""{"ctrl_enable_icmp_policy": {"enable_icmp_policy": false}}"""));
        Assert.Equal(FrameVerdict.Forward, strict.Frame(InPing(3)));
    }

    [Fact]
    public void Inbound_udp_to_a_port_not_in_the_listening_table_is_an_answer_to_the_workload_in_dps_semantics()
    {
        // dp's own run: Protect with dir 2 (ingress policed), both addresses named; UDP 7000 is listed in apps
        const string apps = """{"ctrl_cfg_mac": {"macs": ["1a:27:f3:87:3a:27"], "tap": false, "apps": [{"port": 7000, "ip_proto": 17, "app": 0, "server": 0}]}}""";
        foreach (bool strict in new[] { false, true })
        {
            var rig = Seeded(strict, Protect.Replace("\"dir\": 3", "\"dir\": 2"));
            Assert.Empty(rig.Send(BothNamed));
            Assert.Empty(rig.Send(apps));
            // to a listed port the sender is the client: an ingress session, denied by default either way
            Assert.Equal(FrameVerdict.Deny, rig.Frame(InUdp(40000, 7000)));
            var toUnlisted = rig.Frame(InUdp(40001, 7001));
            if (strict) { Assert.Equal(FrameVerdict.Deny, toUnlisted); continue; }
            // dp: the workload is taken as the client and the peer's port as the server's: an egress session, which dir 2
            // does not police for an internal peer
            Assert.Equal(FrameVerdict.Forward, toUnlisted);
            var c = Assert.Single(Connections(rig), c => c.GetProperty(Key.Protocol).GetInt32() == 17 && c.GetProperty(Key.Action).GetByte() == (byte)DpPolicyAction.Open);
            Assert.Equal((false, 40001, "10.10.10.88"), (c.GetProperty(Key.Ingress).GetBoolean(), c.GetProperty(Key.ServerPort).GetInt32(), c.GetProperty(Key.Client).GetString()));
            // DNS by its well-known port: the sender to 53 is the client, whatever the table says
            Assert.Equal(FrameVerdict.Deny, rig.Frame(InUdp(40002, 53)));
        }
    }

    [Fact]
    public void Dps_semantics_allocate_nothing_on_the_packet_path()
    {
        var rig = Seeded(strict: false);
        Assert.Empty(rig.Send("""{"ctrl_cfg_mac": {"macs": ["1a:27:f3:87:3a:27"], "tap": false, "apps": [{"port": 7000, "ip_proto": 17, "app": 0, "server": 0}]}}"""));
        var frames = new List<byte[]>();
        for (ushort p = 0; p < 64; p++)
        {
            frames.Add(InSyn((ushort)(30000 + p)));                             // grace, renewed, used up, forgotten
            frames.Add(InSyn((ushort)(30000 + p), from: Far + p));              // external peers: a pair each
            frames.Add(InUdp((ushort)(30000 + p), (ushort)(7000 + p % 2)));     // oriented by the listening table
            frames.Add(InPing((ushort)(p + 1)));                                // the built-in ICMP rule
        }
        var processor = rig.Engine.Processor;
        long sum = 0;
        void Run(int count)
        {
            for (int n = 0; n < count; n++)
            {
                var f = frames[n % frames.Count];
                sum += (int)processor.Process(f, f.Length, rig.Engine.Workloads.Current, rig.Clock.NowSeconds, out _);
                if (n % 5_000 == 0) { rig.Clock.Advance(61); rig.Engine.Sessions.Expire(rig.Clock.NowSeconds); }
            }
        }
        Run(frames.Count * 20);
        long allocated = Allocations.Fewest(() => Run(300_000));
        Assert.True(sum > 0);
        Assert.True(processor.Grace.Granted > 0 && processor.Grace.Exhausted > 0);
        Assert.Equal(0, allocated);
    }
}
