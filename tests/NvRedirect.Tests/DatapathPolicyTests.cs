using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.Json;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath;
using NvRedirect.Datapath.Engine;
using NvRedirect.Core.Packets;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>
/// The policy engine alone on synthetic sessions (first match in order, ranges, directions, default action, settings),
/// ctrl_cfg_policy through the controller (chunks, versions, delete, the nvr_get_policy reply), verdicts of the frame
/// processor across policy changes (re-evaluation, block, reset, unblock), the resets' bytes, the connection table,
/// and no allocation on the policed packet path.
/// </summary>
public class DatapathPolicyTests
{
    private const byte Tcp = 6, Udp = 17, Icmp = 1;
    private const DpPolicyAction Open = DpPolicyAction.Open, Learn = DpPolicyAction.Learn, Allow = DpPolicyAction.Allow, Violate = DpPolicyAction.Violate, Deny = DpPolicyAction.Deny;
    private const byte Fin = 1, Syn = 2, Rst = 4, Ack = 16;
    private const string Mac = "1a:27:f3:87:3a:27";
    private const ulong U = TestFrames.UnicastAlias, H = TestFrames.HostMac;
    private const uint C = TestFrames.ContainerIp, Hip = TestFrames.HostIp; // 10.10.10.88 (workload), 10.10.10.66 (host side)

    private static uint Ip(string text) => BinaryPrimitives.ReadUInt32BigEndian(System.Net.IPAddress.Parse(text).GetAddressBytes());

    private static PolicyRule R(uint id, string src, string dst, ushort port, byte proto, DpPolicyAction action, bool ingress, ushort? portTo = null)
    {
        static (uint, uint) Range(string t) => t.Contains('-') ? (Ip(t.Split('-')[0]), Ip(t.Split('-')[1])) : (Ip(t), Ip(t));
        var (sf, st) = Range(src);
        var (df, dt) = Range(dst);
        return new PolicyRule(id, sf, st, df, dt, port, portTo ?? port, proto, action, ingress);
    }

    private static PolicyVerdict Decide(Policy? p, string client, string server, ushort port, byte proto, bool ingress, PolicySettings? settings = null)
        => PolicyEngine.Decide(p, settings ?? PolicySettings.Default, Ip(client), Ip(server), port, proto, ingress);

    // --- the engine alone ---

    [Fact]
    public void The_first_matching_rule_in_list_order_decides_whether_it_is_exact_or_a_range()
    {
        var p = new Policy(1, Deny, DpDirection.Both, [
            R(10, "10.10.10.0-10.10.10.255", "10.10.10.88", 80, Tcp, Violate, true),   // range first
            R(11, "10.10.10.66", "10.10.10.88", 80, Tcp, Allow, true),                  // exact, later: shadowed
            R(12, "10.10.10.67", "10.10.10.88", 81, Tcp, Allow, true),                  // exact, earlier than the range below
            R(13, "10.10.10.0-10.10.10.255", "10.10.10.88", 81, Tcp, Deny, true),
        ]);
        Assert.Equal(new PolicyVerdict(10, Violate), Decide(p, "10.10.10.66", "10.10.10.88", 80, Tcp, true));
        Assert.Equal(new PolicyVerdict(12, Allow), Decide(p, "10.10.10.67", "10.10.10.88", 81, Tcp, true));
        Assert.Equal(new PolicyVerdict(13, Deny), Decide(p, "10.10.10.68", "10.10.10.88", 81, Tcp, true));
        // two exact rules with the same key: the first wins
        var twice = new Policy(2, Deny, DpDirection.Both, [R(1, "10.10.10.66", "10.10.10.88", 80, Tcp, Allow, true), R(2, "10.10.10.66", "10.10.10.88", 80, Tcp, Deny, true)]);
        Assert.Equal(new PolicyVerdict(1, Allow), Decide(twice, "10.10.10.66", "10.10.10.88", 80, Tcp, true));
    }

    [Fact]
    public void Address_and_port_ranges_include_both_ends_and_nothing_outside()
    {
        var p = new Policy(1, Deny, DpDirection.Both, [R(5, "10.10.10.10-10.10.10.20", "10.10.10.88", 8000, Tcp, Allow, true, portTo: 8100)]);
        foreach (var (client, port, match) in new[] {
            ("10.10.10.10", 8000, true), ("10.10.10.20", 8100, true), ("10.10.10.15", 8050, true),
            ("10.10.10.9", 8050, false), ("10.10.10.21", 8050, false), ("10.10.10.15", 7999, false), ("10.10.10.15", 8101, false) })
            Assert.Equal(match ? new PolicyVerdict(5, Allow) : new PolicyVerdict(0, Deny), Decide(p, client, "10.10.10.88", (ushort)port, Tcp, true));
        Assert.Equal(new PolicyVerdict(0, Deny), Decide(p, "10.10.10.15", "10.10.10.89", 8050, Tcp, true));
    }

    [Fact]
    public void No_match_gives_the_default_action_with_rule_id_0()
    {
        foreach (var defact in new[] { Open, Learn, Allow, Violate, Deny })
            Assert.Equal(new PolicyVerdict(0, defact), Decide(new Policy(1, defact, DpDirection.Both, []), "10.10.10.66", "10.10.10.88", 22, Tcp, true));
    }

    [Fact]
    public void Rules_apply_to_their_direction_and_protocol_only()
    {
        var p = new Policy(1, Deny, DpDirection.Both, [
            R(1, "10.10.10.66", "10.10.10.88", 80, Tcp, Allow, ingress: true),
            R(2, "10.10.10.88", "10.10.10.66", 53, Udp, Allow, ingress: false),
            R(3, "10.10.10.0-10.10.10.255", "10.10.10.88", 0, 0, Violate, ingress: true, portTo: 65535),
        ]);
        Assert.Equal(1u, Decide(p, "10.10.10.66", "10.10.10.88", 80, Tcp, true).RuleId);
        Assert.Equal(3u, Decide(p, "10.10.10.66", "10.10.10.88", 80, Udp, true).RuleId);   // wrong protocol for 1; 3 is any protocol
        Assert.Equal(0u, Decide(p, "10.10.10.66", "10.10.10.88", 80, Tcp, false).RuleId);  // an egress session: ingress rules do not apply
        Assert.Equal(2u, Decide(p, "10.10.10.88", "10.10.10.66", 53, Udp, false).RuleId);
        Assert.Equal(0u, Decide(p, "10.10.10.88", "10.10.10.66", 53, Tcp, false).RuleId);
        Assert.Equal(new PolicyVerdict(3, Violate), Decide(p, "10.10.10.66", "10.10.10.88", 0, Icmp, true)); // any protocol covers ICMP
        Assert.Equal(PolicyVerdict.Open, Decide(p, "10.10.10.66", "10.10.10.88", 0, 47, true));            // GRE is not policed
    }

    [Fact]
    public void Icmp_not_policed_gets_the_built_in_allow_after_explicit_icmp_rules()
    {
        var off = new PolicySettings(1, false, icmpPolicy: false, []);
        var p = new Policy(1, Deny, DpDirection.Both, [
            R(1, "10.10.10.0-10.10.10.255", "10.10.10.88", 0, 0, Violate, true, portTo: 65535),
            R(2, "10.10.10.77", "10.10.10.88", 0, Icmp, Deny, true),
        ]);
        Assert.Equal(PolicyVerdict.IcmpAllowed, Decide(p, "10.10.10.66", "10.10.10.88", 0, Icmp, true, off)); // rule 1 (any protocol) skips ICMP
        Assert.Equal(new PolicyVerdict(2, Deny), Decide(p, "10.10.10.77", "10.10.10.88", 0, Icmp, true, off)); // explicit ICMP rule applies
        Assert.Equal(new PolicyVerdict(1, Violate), Decide(p, "10.10.10.66", "10.10.10.88", 0, Icmp, true)); // policed (nvr-dp's default)
        Assert.Equal(new PolicyVerdict(0, Deny), Decide(new Policy(1, Deny, DpDirection.Both, []), "10.10.10.66", "10.10.10.88", 0, Icmp, true));
    }

    [Fact]
    public void Direction_internal_peers_external_wildcards_link_local_and_the_switches()
    {
        var internalNets = new PolicySettings(1, false, true, [(Ip("10.10.10.0"), Ip("255.255.255.0"))]);
        var ingressOnly = new Policy(1, Deny, DpDirection.Ingress, [R(7, "10.10.10.88", "0.0.0.0", 443, Tcp, Allow, false)]);
        // egress to an internal peer with dir = ingress only: not policed
        Assert.Equal(PolicyVerdict.Open, Decide(ingressOnly, "10.10.10.88", "10.10.10.66", 443, Tcp, false, internalNets));
        // egress to an external peer is policed whatever dir says; the rule for "any external" (0.0.0.0) matches it
        Assert.Equal(new PolicyVerdict(7, Allow), Decide(ingressOnly, "10.10.10.88", "192.0.2.9", 443, Tcp, false, internalNets));
        Assert.Equal(new PolicyVerdict(0, Deny), Decide(ingressOnly, "10.10.10.88", "192.0.2.9", 80, Tcp, false, internalNets));
        // with no internal nets every address is internal, so the wildcard never applies
        Assert.Equal(PolicyVerdict.Open, Decide(ingressOnly, "10.10.10.88", "192.0.2.9", 443, Tcp, false));
        var both = new Policy(2, Deny, DpDirection.Both, []);
        Assert.Equal(PolicyVerdict.Open, Decide(both, "169.254.1.1", "10.10.10.88", 80, Tcp, true)); // link-local
        Assert.Equal(PolicyVerdict.Open, Decide(null, "10.10.10.66", "10.10.10.88", 80, Tcp, true));  // no policy
        Assert.Equal(PolicyVerdict.Open, Decide(both, "10.10.10.66", "10.10.10.88", 80, Tcp, true, new PolicySettings(1, true, true, []))); // disabled
        Assert.Equal(new PolicyVerdict(0, Deny), Decide(both, "10.10.10.66", "10.10.10.88", 80, Tcp, true));
    }

    [Fact]
    public void A_thousand_range_rules_still_find_the_first_match()
    {
        var rules = Enumerable.Range(0, 1000).Select(i => R((uint)(i + 1), "10.10.10.1-10.10.10.200", "10.10.10.88", (ushort)(1000 + i), Tcp, Allow, true, portTo: (ushort)(1000 + i))).ToList();
        rules.Add(R(5000, "10.10.10.0-10.10.10.255", "10.10.10.88", 0, Tcp, Violate, true, portTo: 65535));
        var p = new Policy(1, Deny, DpDirection.Both, rules);
        Assert.Equal(new PolicyVerdict(1, Allow), Decide(p, "10.10.10.66", "10.10.10.88", 1000, Tcp, true));
        Assert.Equal(new PolicyVerdict(1000, Allow), Decide(p, "10.10.10.66", "10.10.10.88", 1999, Tcp, true));
        Assert.Equal(new PolicyVerdict(5000, Violate), Decide(p, "10.10.10.66", "10.10.10.88", 2000, Tcp, true));
        Assert.Equal(new PolicyVerdict(0, Deny), Decide(p, "10.10.10.66", "10.10.10.88", 2000, Udp, true));
    }

    // --- ctrl_cfg_policy through the controller ---

    private static string RuleJson(uint id, string sip, string dip, int port, int proto, int action, bool ingress, string extra = "")
        => $$"""{"id": {{id}}, "sip": "{{sip}}", "dip": "{{dip}}", "port": {{port}}, "portr": {{port}}, "proto": {{proto}}, "action": {{action}}, "ingress": {{(ingress ? "true" : "false")}}{{extra}}}""";

    private static string RuleJson(uint id, string sip, string dip, int port, int proto, DpPolicyAction action, bool ingress, string extra = "")
        => RuleJson(id, sip, dip, port, proto, (int)action, ingress, extra);

    private static string PolicyJson(int cmd, int flag, DpPolicyAction defact, IEnumerable<string> rules, int dir = 3, string mac = Mac)
        => $$"""{"ctrl_cfg_policy": {"cmd": {{cmd}}, "flag": {{flag}}, "defact": {{(int)defact}}, "dir": {{dir}}, "mac": ["{{mac}}"], "rules": [""" + string.Join(", ", rules) + "]}}";

    private static DatapathControlTests.Rig Seeded()
    {
        var rig = new DatapathControlTests.Rig();
        rig.SendSeed();
        return rig;
    }

    private static Workload Workload(DatapathControlTests.Rig rig) => rig.Engine.Workloads.Current.Workloads.Single();

    [Fact]
    public void Chunks_from_start_to_end_become_one_policy_in_order_and_only_at_the_end()
    {
        var rig = Seeded();
        var rules = Enumerable.Range(1, 120).Select(i => RuleJson((uint)i, "10.10.10.66", "10.10.10.88", 1000 + i, 6, 2, true)).ToArray();
        Assert.Empty(rig.Send(PolicyJson(1, 1, Deny, rules[..40])));
        Assert.Null(Workload(rig).Policy);
        Assert.Empty(rig.Send(PolicyJson(1, 0, Deny, rules[40..80])));
        Assert.Null(Workload(rig).Policy);
        Assert.Contains("policy_pending=80", rig.Controller.State.Describe());
        Assert.Empty(rig.Send(PolicyJson(1, 2, Deny, rules[80..])));
        var p = Workload(rig).Policy!;
        Assert.Equal(Enumerable.Range(1, 120).Select(i => (uint)i), p.Rules.Select(r => r.Id));
        Assert.Equal((Deny, DpDirection.Both), (p.DefaultAction, p.Direction));
        Assert.Contains("policy_pending=-", rig.Controller.State.Describe());
        Assert.Equal(0, rig.Controller.Rejected);
    }

    [Fact]
    public void A_chunk_continues_only_the_policy_its_own_client_started_with_the_same_settings()
    {
        var rig = Seeded();
        var rules = Enumerable.Range(1, 3).Select(i => RuleJson((uint)i, "10.10.10.66", "10.10.10.88", 1000 + i, 6, 2, true)).ToArray();
        byte[] D(string json) => Encoding.UTF8.GetBytes(json);
        rig.Controller.Handle(D(PolicyJson(1, 1, Learn, rules[..1])), "/tmp/client-a");
        // another client's continuation is refused; so is one of the same client that changes the settings
        rig.Controller.Handle(D(PolicyJson(1, 2, Learn, rules[1..2])), "/tmp/client-b");
        Assert.Contains(rig.Log.Lines, l => l.Contains("another client started (/tmp/client-a)"));
        rig.Controller.Handle(D(PolicyJson(1, 2, Deny, rules[1..2])), "/tmp/client-a");
        Assert.Contains(rig.Log.Lines, l => l.Contains("but says otherwise"));
        Assert.Equal(2, rig.Controller.Rejected);
        Assert.Null(Workload(rig).Policy);
        // the starter finishes it as it began
        rig.Controller.Handle(D(PolicyJson(1, 2, Learn, rules[1..])), "/tmp/client-a");
        Assert.Equal(new uint[] { 1, 2, 3 }, Workload(rig).Policy!.Rules.Select(r => r.Id));
        Assert.Equal(Learn, Workload(rig).Policy!.DefaultAction);
    }

    [Fact]
    public void A_change_made_from_an_older_version_of_the_policy_is_refused()
    {
        var rig = Seeded();
        string Expect(int cmd, DpPolicyAction defact, uint version) => PolicyJson(cmd, 3, defact, []).Replace("\"dir\": 3,", $"\"dir\": 3, \"nvr_expect_version\": {version},");
        rig.Send(Expect(1, Learn, 0));                                 // no policy yet: version 0
        uint first = Workload(rig).Policy!.Version;
        rig.Send(Expect(2, Deny, first));                              // made from the current version: applied
        uint second = Workload(rig).Policy!.Version;
        Assert.Equal((0L, Deny), (rig.Controller.Rejected, Workload(rig).Policy!.DefaultAction));
        rig.Send(Expect(2, Violate, first));                           // made from the older one: refused, nothing changes
        Assert.Equal(1, rig.Controller.Rejected);
        Assert.Contains(rig.Log.Lines, l => l.Contains($"is at version {second}, not at version {first}"));
        Assert.Equal((second, Deny), (Workload(rig).Policy!.Version, Workload(rig).Policy!.DefaultAction));
        rig.Send(PolicyJson(2, 3, Violate, []));                       // without the field (NeuVector's agent): applied
        Assert.Equal(Violate, Workload(rig).Policy!.DefaultAction);
    }

    [Fact]
    public void Application_sub_rules_are_accepted_and_noted_and_the_rule_acts_by_its_action()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Deny, [RuleJson(8, "10.10.10.66", "10.10.10.88", 80, 6, DpPolicyAction.CheckApp, true,
            extra: ", \"apps\": [{\"rid\": 81, \"app\": 1001, \"action\": 2}]")]));
        Assert.Equal(0, rig.Controller.Rejected);
        Assert.Contains(rig.Log.Lines, l => l.Contains("rule 8: its 1 application sub-rules are not applied"));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn()));
        Assert.Contains(Connections(rig), c => c.GetProperty("rule_id").GetInt32() == 8 && (DpPolicyAction)c.GetProperty("action").GetByte() == DpPolicyAction.CheckApp);
    }

    [Fact]
    public void Every_change_makes_a_new_version_and_delete_removes_the_policy()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Learn, []));
        var first = Workload(rig).Policy!;
        rig.Send(PolicyJson(2, 3, Deny, [RuleJson(9, "10.10.10.66", "10.10.10.88", 80, 6, 2, true)]));
        var second = Workload(rig).Policy!;
        Assert.True(second.Version > first.Version);
        Assert.Equal(Deny, second.DefaultAction);
        // a re-add of the MAC keeps the policy, as NeuVector carries the endpoint over
        rig.Send(DatapathControlTests.SeedAddMac);
        Assert.Same(second, Workload(rig).Policy);
        rig.Send("""{"ctrl_cfg_policy": {"cmd": 3, "flag": 3, "mac": ["4e:65:75:56:00:b4"]}}"""); // found by its alias too
        Assert.Null(Workload(rig).Policy);
        Assert.Equal(0, rig.Controller.Rejected);
    }

    [Fact]
    public void Nvr_get_policy_returns_the_rules_in_the_wire_names_so_they_can_be_sent_back()
    {
        var rig = Seeded();
        rig.Send("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 2, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 4, "sip": "10.10.10.1", "sipr": "10.10.10.99", "dip": "10.10.10.88", "port": 8000, "portr": 8100, "proto": 6, "action": 2, "ingress": true}, {"id": 5, "sip": "10.10.10.88", "dip": "10.10.10.66", "port": 0, "proto": 1, "action": 6, "ingress": false}]}}""");
        var replies = rig.Send("""{"nvr_get_policy": {}}""");
        var reply = Assert.Single(replies);
        Assert.Equal((MessageKind.Policy, 0), (reply[0], (int)reply[1]));
        Assert.Equal(reply.Length, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(2)));
        using var doc = JsonDocument.Parse(reply.AsMemory(4));
        var policy = doc.RootElement.GetProperty("policies").EnumerateArray().Single();
        Assert.Equal((Mac, 7, 2), (policy.GetProperty("mac").GetString(), policy.GetProperty("defact").GetInt32(), policy.GetProperty("dir").GetInt32()));
        var rules = policy.GetProperty("rules").EnumerateArray().ToArray();
        Assert.Equal("""{"id":4,"sip":"10.10.10.1","sipr":"10.10.10.99","dip":"10.10.10.88","dipr":"10.10.10.88","port":8000,"portr":8100,"proto":6,"action":2,"ingress":true}""", rules[0].GetRawText());
        Assert.Equal((0, 0), (rules[1].GetProperty("port").GetInt32(), rules[1].GetProperty("portr").GetInt32())); // portr defaults to port

        // sent back unchanged, it builds the same rules
        var before = Workload(rig).Policy!.Rules;
        rig.Send("""{"ctrl_cfg_policy": {"cmd": 2, "flag": 3, "defact": 7, "dir": 2, "mac": ["1a:27:f3:87:3a:27"], "rules": [""" + string.Join(",", rules.Select(r => r.GetRawText())) + "]}}");
        Assert.Equal(before, Workload(rig).Policy!.Rules);
        Assert.Equal(0, rig.Controller.Rejected);

        // a thousand rules come back in several datagrams, More=1 on all but the last
        rig.Send(PolicyJson(2, 3, Deny, []));
        var many = Enumerable.Range(1, 1000).Select(i => RuleJson((uint)i, "10.10.10.66", "10.10.10.88", i, 6, 2, true)).ToArray();
        for (int i = 0; i < many.Length; i += 40)
            rig.Send(PolicyJson(2, (i == 0 ? 1 : 0) | (i + 40 >= many.Length ? 2 : 0), Deny, many[i..Math.Min(i + 40, many.Length)]));
        var chunks = rig.Send("""{"nvr_get_policy": {"macs": ["1a:27:f3:87:3a:27"]}}""");
        Assert.True(chunks.Count > 1);
        Assert.All(chunks, c => Assert.True(c.Length <= DpWire.MaxMessageSize));
        Assert.Equal(Enumerable.Repeat(1, chunks.Count - 1).Append(0), chunks.Select(c => (int)c[1]));
        using var joined = JsonDocument.Parse(chunks.SelectMany(c => c.Skip(4)).ToArray());
        Assert.Equal(1000, joined.RootElement.GetProperty("policies")[0].GetProperty("rules").GetArrayLength());
    }

    [Fact]
    public void The_state_reports_each_workloads_policy_and_the_policy_addresses()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Violate, [RuleJson(1, "10.10.10.66", "10.10.10.88", 80, 6, 2, true)], dir: 2));
        rig.Send("""{"ctrl_cfg_policy_addr": {"flag": 3, "subnet_addr": [{"ip": "10.10.10.66", "mask": "255.255.255.255"}, {"ip": "10.10.10.88", "mask": "255.255.255.255"}]}}""");
        var state = rig.Send("""{"nvr_get_state": {}}""");
        using var doc = JsonDocument.Parse(state.SelectMany(c => c.Skip(4)).ToArray());
        var policy = doc.RootElement.GetProperty("workloads")[0].GetProperty("policy");
        Assert.Equal((6, 2, 1), (policy.GetProperty("defact").GetInt32(), policy.GetProperty("dir").GetInt32(), policy.GetProperty("rules").GetInt32()));
        Assert.Equal(["10.10.10.66", "10.10.10.88"], doc.RootElement.GetProperty("policy_addr").EnumerateArray().Select(e => e.GetString()!));
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("policy_pending").ValueKind);
    }

    // --- verdicts on frames ---

    private static byte[] InSyn(ushort sport = 40000, ushort dport = 80) => TestFrames.Tcp(U, H, Hip, C, sport, dport, Syn, seq: 100);
    private static byte[] OutSynAck(ushort sport = 80, ushort dport = 40000) => TestFrames.Tcp(H, U, C, Hip, sport, dport, Syn | Ack, seq: 500, ack: 101);
    private static byte[] InData(ushort sport = 40000, ushort dport = 80, uint seq = 101, int payload = 10) => TestFrames.Tcp(U, H, Hip, C, sport, dport, Ack | 8, payload, seq, ack: 501);
    private static byte[] InUdp(ushort sport = 5000, ushort dport = 53) => TestFrames.Udp(U, H, Hip, C, sport, dport);
    private static byte[] InPing(ushort id = 7) => TestFrames.Icmp(U, H, Hip, C, 8, id);

    private static List<JsonElement> Connections(DatapathControlTests.Rig rig)
    {
        var chunks = rig.Send("""{"nvr_list_connection": {}}""");
        Assert.All(chunks, c => Assert.Equal(MessageKind.Connections, c[0]));
        var doc = JsonDocument.Parse(chunks.SelectMany(c => c.Skip(4)).ToArray());
        return doc.RootElement.GetProperty("connections").EnumerateArray().ToList();
    }

    [Fact]
    public void After_a_restart_an_open_tcp_connection_is_picked_up_mid_stream_allowed_goes_on_and_denied_is_reset()
    {
        // a fresh datapath (no sessions: what a restarted nvr-dp has) with a Protect policy allowing port 80 only
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Deny, [RuleJson(1, "10.10.10.66", "10.10.10.88", 80, 6, Allow, true)]));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InData(dport: 80)));   // data of a connection opened before: allowed
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InData(dport: 80, seq: 111)));
        Assert.Contains(rig.Engine.Sessions.Snapshot(rig.Clock.NowSeconds), s => s.ServerPort == 80 && s.ClientState == TcpState.Established);
        Assert.Equal(FrameVerdict.Reset, rig.Frame(InData(dport: 81)));     // denied: reset both ways, not left to hang
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InSyn(dport: 81)));       // a new connection is only refused
        Assert.Equal(1L, rig.Engine.Counters.ResetsSent);
        Assert.DoesNotContain(rig.Engine.Sessions.Snapshot(rig.Clock.NowSeconds), s => s.ServerPort == 81);
    }

    [Fact]
    public void Discover_learns_protect_blocks_and_resets_an_open_connection_and_an_allow_rule_lets_it_pass_again()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Learn, []));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn()));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(OutSynAck()));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InData()));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InUdp()));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InPing()));
        var learned = Connections(rig);
        Assert.Equal(3, learned.Count);
        Assert.All(learned, c => Assert.Equal((Learn, 0), ((DpPolicyAction)c.GetProperty("action").GetByte(), c.GetProperty("rule_id").GetInt32())));
        var tcp = learned.Single(c => c.GetProperty("proto").GetInt32() == 6);
        Assert.Equal(("10.10.10.66", "10.10.10.88", 80, true, 3, 1), (tcp.GetProperty("client").GetString(), tcp.GetProperty("server").GetString(),
            tcp.GetProperty("server_port").GetInt32(), tcp.GetProperty("ingress").GetBoolean(), tcp.GetProperty("packets").GetInt32(), tcp.GetProperty("sessions").GetInt32()));
        Assert.Equal(0, learned.Single(c => c.GetProperty("proto").GetInt32() == 1).GetProperty("server_port").GetInt32());

        // Protect: the open TCP session is reset and blocked on its next packet; new sessions are refused
        rig.Send(PolicyJson(2, 3, Deny, []));
        Assert.Equal(FrameVerdict.Reset, rig.Frame(InData(seq: 111)));
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InData(seq: 121)));
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InUdp()));                 // UDP: blocked, no reset
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InSyn(sport: 40001)));     // new: refused
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InSyn(sport: 40001)));     // and again (retransmission, still no session)
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InPing(8)));
        var counters = rig.Engine.Counters;
        Assert.Equal((1L, 2L, 3L), (counters.ResetsSent, counters.BlockedSessions, counters.DeniedSessions));
        var sessions = rig.Engine.Sessions.Snapshot(rig.Clock.NowSeconds);
        Assert.DoesNotContain(sessions, s => s.ClientPort == 40001);
        Assert.Contains(sessions, s => s.Protocol == 6 && s.Blocked && s.PolicyAction == Deny && s.ClientState == TcpState.Close);
        var denied = Connections(rig).Where(c => (DpPolicyAction)c.GetProperty("action").GetByte() == Deny).ToList();
        // one entry per (client, server, port, protocol, verdict): the blocked session's two segments and the two refused SYNs
        var refused = denied.Single(c => c.GetProperty("proto").GetInt32() == 6);
        Assert.Equal((1, 4), (refused.GetProperty("sessions").GetInt32(), refused.GetProperty("dropped").GetInt32()));
        Assert.Equal(3, Connections(rig).Count(c => (DpPolicyAction)c.GetProperty("action").GetByte() == Learn)); // the learned entries stay

        // an allow rule for the learned UDP conversation: it passes again (the blocked session is decided again)
        rig.Send(PolicyJson(2, 3, Deny, [RuleJson(42, "10.10.10.66", "10.10.10.88", 53, 17, Allow, true)]));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InUdp()));
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InUdp(dport: 54)));
        Assert.Contains(Connections(rig), c => c.GetProperty("rule_id").GetInt32() == 42 && (DpPolicyAction)c.GetProperty("action").GetByte() == Allow);

        // Monitor: everything passes, reported as violations
        rig.Send(PolicyJson(2, 3, Violate, []));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InSyn(sport: 40002)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(InUdp(dport: 54)));
        Assert.Contains(Connections(rig), c => (DpPolicyAction)c.GetProperty("action").GetByte() == Violate && c.GetProperty("server_port").GetInt32() == 54);
    }

    [Fact]
    public void Tapped_workloads_record_verdicts_but_send_nothing_and_their_blocked_sessions_are_reset_once_inline()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Learn, []));
        rig.Frame(InSyn());
        rig.Frame(OutSynAck());
        rig.Send("""{"ctrl_cfg_mac": {"macs": ["1a:27:f3:87:3a:27"], "tap": true}}""");
        rig.Send(PolicyJson(2, 3, Deny, []));
        Assert.Equal(FrameVerdict.Tap, rig.Frame(InData()));
        Assert.Equal(FrameVerdict.Tap, rig.Frame(InSyn(sport: 41000)));
        Assert.Equal(0L, rig.Engine.Counters.ResetsSent);
        Assert.Equal(1L, rig.Engine.Counters.BlockedSessions);
        var all = Connections(rig);
        var denied = Assert.Single(all, c => (DpPolicyAction)c.GetProperty("action").GetByte() == Deny);
        Assert.Equal((1, 2), (denied.GetProperty("sessions").GetInt32(), denied.GetProperty("dropped").GetInt32())); // the tapped session and the refused SYN

        // inline again: the session blocked while tapped is reset at its first packet, once
        rig.Send("""{"ctrl_cfg_mac": {"macs": ["1a:27:f3:87:3a:27"], "tap": false}}""");
        Assert.Equal(FrameVerdict.Reset, rig.Frame(InData(seq: 111)));
        Assert.Equal(FrameVerdict.Deny, rig.Frame(InData(seq: 121)));
        Assert.Equal((1L, 1L), (rig.Engine.Counters.ResetsSent, rig.Engine.Counters.BlockedSessions));
    }

    [Fact]
    public void Deleting_a_workload_forgets_its_connections_and_clear_forgets_them_on_request()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Learn, []));
        rig.Frame(InPing());
        Assert.Single(Connections(rig));
        rig.Send("""{"nvr_clear_connection": {"macs": ["1a:27:f3:87:3a:27"]}}""");
        Assert.Empty(Connections(rig));
        rig.Frame(InPing(9));
        Assert.Single(Connections(rig));
        rig.Send("""{"ctrl_del_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27"}}""");
        Assert.Empty(Connections(rig));
    }

    [Fact]
    public void The_connection_table_evicts_the_least_recently_seen_entry_when_full()
    {
        var t = new ConnectionTable(4);
        ConnectionKey K(ushort port) => new() { EndpointMac = 1, ServerPort = port, Protocol = 6 };
        var idx = Enumerable.Range(0, 4).Select(i => t.Find(K((ushort)i), 100 + i)).ToArray();
        var epochs = idx.Select(i => t[i].Epoch).ToArray();
        t.Account(idx[0], 60, false, 200); // entry 0 is now the most recent
        int fresh = t.Find(K(9), 201, out bool created);
        Assert.True(created);
        Assert.Equal((4, 1L), (t.Count, t.Evicted));
        Assert.Equal(idx[1], fresh);                       // the slot of the evicted entry is reused...
        Assert.False(t.IsCurrent(idx[1], epochs[1]));      // ...and whoever kept (index, epoch) of the old entry notices
        Assert.True(t.IsCurrent(idx[2], epochs[2]));       // the others are untouched
        Assert.Equal(idx[2], t.Find(K(2), 202, out created));
        Assert.False(created);
        Assert.DoesNotContain(t.Snapshot(), c => c.Key.ServerPort == 1);
        Assert.Equal(new ushort[] { 2, 3, 0, 9 }, t.Snapshot().Select(c => c.Key.ServerPort));
    }

    [Fact]
    public void A_connection_entry_made_again_after_a_clear_counts_the_session_that_goes_on()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Learn, []));
        rig.Frame(InSyn());
        rig.Frame(OutSynAck());
        rig.Send("""{"nvr_clear_connection": {}}""");
        rig.Frame(InData());
        var entry = Assert.Single(Connections(rig));
        Assert.Equal((1, 1), (entry.GetProperty("sessions").GetInt32(), entry.GetProperty("packets").GetInt32()));
    }

    // --- bounded learning ---

    private static TableUsage Tables(DatapathControlTests.Rig rig) => TableUsage.Of(rig.Engine);

    // three conversations the workload answers: TCP 80 (handshake and data), TCP 443 from another client, UDP 53 with a reply
    private static void LearnThreeConversations(DatapathControlTests.Rig rig)
    {
        const uint other = 0x0a0a0a43; // 10.10.10.67
        foreach (var f in new[] {
            InSyn(), OutSynAck(), InData(),
            TestFrames.Tcp(U, H, other, C, 41000, 443, Syn), TestFrames.Tcp(H, U, C, other, 443, 41000, Syn | Ack, seq: 9, ack: 2), TestFrames.Tcp(U, H, other, C, 41000, 443, Ack, seq: 2, ack: 10),
            InUdp(), TestFrames.Udp(H, U, C, Hip, 53, 5000) })
            Assert.Equal(FrameVerdict.Forward, rig.Frame(f));
    }

    private static void AssertLearned(DatapathControlTests.Rig rig)
    {
        var answered = Connections(rig).Where(c => c.GetProperty("answered").GetBoolean()).ToList();
        Assert.Equal(new[] { "10.10.10.66:53/17", "10.10.10.66:80/6", "10.10.10.67:443/6" },
            answered.Select(c => $"{c.GetProperty("client").GetString()}:{c.GetProperty("server_port").GetInt32()}/{c.GetProperty("proto").GetInt32()}").Order());
        Assert.All(answered, c => Assert.Equal((byte)Learn, c.GetProperty("action").GetByte()));
    }

    [Fact]
    public void A_30000_port_scan_in_Discover_folds_into_one_scan_entry_and_leaves_the_learned_connections()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Learn, []));
        LearnThreeConversations(rig);
        var before = Tables(rig);
        Assert.Equal((3, 3, 0L), (before.Connections, before.AnsweredConnections, before.ConnectionsEvicted));

        // a scanner (10.10.10.99) sends SYNs to 30,000 random ports; the workload's kernel answers each with a RST
        const uint scanner = 0x0a0a0a63;
        var random = new Random(12);
        var ports = Enumerable.Range(1, 65535).OrderBy(_ => random.Next()).Take(30_000).Select(p => (ushort)p).ToArray();
        foreach (var port in ports)
        {
            Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames.Tcp(U, H, scanner, C, 50000, port, Syn)));
            rig.Frame(TestFrames.Tcp(H, U, C, scanner, port, 50000, Rst | Ack, ack: 2));
        }
        var after = Tables(rig);
        var list = Connections(rig);
        var scan = Assert.Single(list, c => c.GetProperty("scan").GetBoolean());
        Assert.Equal(("10.10.10.99", 0, false), (scan.GetProperty("client").GetString(), scan.GetProperty("server_port").GetInt32(), scan.GetProperty("answered").GetBoolean()));
        long attempts = scan.GetProperty("attempts").GetInt64();
        Assert.Equal(30_000 - ConnectionTable.ScanThreshold, attempts);
        Assert.Equal(attempts, after.ConnectionsSummarised);
        Assert.Equal(ConnectionTable.ScanThreshold, list.Count(c => c.GetProperty("client").GetString() == "10.10.10.99" && !c.GetProperty("scan").GetBoolean()));
        Assert.Equal((3 + ConnectionTable.ScanThreshold + 1, 3, 1, 0L), (after.Connections, after.AnsweredConnections, after.ScanConnections, after.ConnectionsEvicted));
        AssertLearned(rig);
        // the session table (1024 here) was full: the scan's reset sessions were evicted, the learned TCP sessions were not
        Assert.True(after.SessionsEvicted > 25_000, $"{after.SessionsEvicted} sessions evicted");
        Assert.Equal(0L, after.LiveSessionsEvicted);
        Assert.Contains(rig.Engine.Sessions.Snapshot(rig.Clock.NowSeconds), x => x.ServerPort == 443 && x.ClientState == TcpState.Established);

        // an open port the scanner finds (the workload answers SYN-ACK) gets an entry of its own, answered
        rig.Frame(TestFrames.Tcp(U, H, scanner, C, 50001, 8080, Syn));
        rig.Frame(TestFrames.Tcp(H, U, C, scanner, 8080, 50001, Syn | Ack, ack: 2));
        var found = Assert.Single(Connections(rig), c => c.GetProperty("client").GetString() == "10.10.10.99" && c.GetProperty("answered").GetBoolean());
        Assert.Equal((8080, 1), (found.GetProperty("server_port").GetInt32(), found.GetProperty("sessions").GetInt32()));
        Assert.Equal(attempts, Assert.Single(Connections(rig), c => c.GetProperty("scan").GetBoolean()).GetProperty("attempts").GetInt64()); // folded, then taken out again

        // the scan entry is no rule: state JSON reports the figures Get-Datapath shows
        var state = JsonDocument.Parse(rig.Send("""{"nvr_get_state": {}}""").SelectMany(c => c.Skip(4)).ToArray()).RootElement.GetProperty("tables");
        Assert.Equal((16384, attempts + 1), (state.GetProperty("connections").GetProperty("capacity").GetInt32(), state.GetProperty("connections").GetProperty("summarised").GetInt64()));
        Assert.Equal(1024, state.GetProperty("sessions").GetProperty("capacity").GetInt32());
    }

    [Fact]
    public void A_busy_client_whose_connections_are_answered_is_not_summarised_as_a_scan()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Learn, []));
        for (ushort port = 1000; port < 1200; port++) // 200 ports within the window, each answered
        {
            rig.Frame(TestFrames.Tcp(U, H, Hip, C, 40000, port, Syn));
            rig.Frame(TestFrames.Tcp(H, U, C, Hip, port, 40000, Syn | Ack, ack: 2));
        }
        var t = Tables(rig);
        Assert.Equal((200, 200, 0, 0L), (t.Connections, t.AnsweredConnections, t.ScanConnections, t.ConnectionsSummarised));
    }

    [Fact]
    public void Never_answered_flows_from_many_sources_evict_each_other_but_never_a_learned_connection()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Learn, []));
        LearnThreeConversations(rig);
        // 30,000 never-answered flows from 1,500 sources, 20 ports each (under the scan threshold): more than the 16,384 entries
        for (int n = 0; n < 30_000; n++)
        {
            uint client = 0xc6336400u + (uint)(n / 20); // 198.51.100.0 and up
            rig.Frame(TestFrames.Tcp(U, H, client, C, 50000, (ushort)(1000 + n % 20), Syn));
            if (n % 1000 == 0) rig.Clock.Advance(1);
        }
        var t = Tables(rig);
        Assert.Equal(16384, t.Connections);                   // full
        Assert.True(t.ConnectionsEvicted >= 30_000 + 3 - 16384, $"{t.ConnectionsEvicted} evicted");
        Assert.Equal((0L, 0L, 3), (t.AnsweredConnectionsEvicted, t.ConnectionsSummarised, t.AnsweredConnections));
        AssertLearned(rig);
        // the newest never-answered flows are the ones kept
        Assert.Contains(Connections(rig), c => c.GetProperty("client").GetString() == "198.51.105.219" && c.GetProperty("server_port").GetInt32() == 1019);
    }

    [Fact]
    public void Denied_flows_in_Protect_do_not_evict_learned_connections_and_answered_entries_keep_a_reserve_free()
    {
        var rig = Seeded();
        rig.Send(PolicyJson(1, 3, Learn, []));
        LearnThreeConversations(rig);
        rig.Send(PolicyJson(2, 3, Deny, [RuleJson(1, "10.10.10.66", "10.10.10.88", 80, 6, Allow, true)]));
        for (int n = 0; n < 20_000; n++) // refused: no session, one entry per source and port
            Assert.Equal(FrameVerdict.Deny, rig.Frame(TestFrames.Tcp(U, H, 0xc6336400u + (uint)(n / 16), C, 50000, (ushort)(2000 + n % 16), Syn)));
        var t = Tables(rig);
        Assert.Equal((0L, 3), (t.AnsweredConnectionsEvicted, t.AnsweredConnections));
        Assert.True(t.ConnectionsEvicted > 0);
        AssertLearned(rig);

        // the table alone: answered entries take at most capacity - capacity/8; past that an answer evicts the oldest answered one
        var table = new ConnectionTable(16);
        Assert.Equal(14, table.MaxAnswered);
        ConnectionKey K(ushort port) => new() { EndpointMac = 1, ServerPort = port, Protocol = 6 };
        for (ushort p = 0; p < 15; p++) table.MarkAnswered(table.Find(K(p), p));
        Assert.Equal((14, 14, 1L, 1L), (table.AnsweredCount, table.Count, table.Evicted, table.AnsweredEvicted));
        Assert.DoesNotContain(table.Snapshot(), c => c.Key.ServerPort == 0);
        for (ushort p = 100; p < 200; p++) table.Find(K(p), 100);  // unanswered churn: only the two reserved entries turn over
        Assert.Equal((14, 16, 1L), (table.AnsweredCount, table.Count, table.AnsweredEvicted));
        Assert.Equal(Enumerable.Range(1, 14).Select(p => (ushort)p), table.Snapshot().Where(c => c.Answered).Select(c => c.Key.ServerPort));

        // scan entries have their own list: per-port entries push out each other first; past a quarter of the table the oldest scan goes
        var small = new ConnectionTable(8);
        Assert.Equal(2, small.MaxScans);
        ConnectionKey S(ulong client) => new() { EndpointMac = 1, ClientLow = client, Protocol = 6, Scan = true };
        int scan = small.Find(S(1), 0);
        for (ushort p = 0; p < 50; p++) small.Find(K(p), p);
        Assert.True(small[scan].InUse && small[scan].Key.Scan);
        Assert.Equal((8, 1), (small.Count, small.ScanCount));
        small.Find(S(2), 60);
        small.Find(S(3), 61);
        Assert.Equal(new ulong[] { 2, 3 }, small.Snapshot().Where(c => c.Key.Scan).Select(c => c.Key.ClientLow));
    }

    // --- the resets ---

    [Fact]
    public void The_two_resets_mirror_the_dropped_segment_with_the_sequence_numbers_each_end_expects()
    {
        var segment = InData(seq: 1000, payload: 10); // host -> workload, ack 501
        FrameParser.Parse(segment, out var info);
        var toReceiver = new byte[TcpReset.FrameLength];
        var toSender = new byte[TcpReset.FrameLength];
        Assert.Equal(54, TcpReset.Build(segment, in info, towardsSender: false, toReceiver));
        Assert.Equal(54, TcpReset.Build(segment, in info, towardsSender: true, toSender));
        foreach (var f in new[] { toReceiver, toSender })
        {
            Assert.Equal(FrameError.None, FrameParser.Parse(f, out var r));
            Assert.True(Checksum.VerifyTransportChecksum(f, 14));
            Assert.Equal(0, Checksum.IPv4HeaderChecksum(f.AsSpan(14, 20)) - BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(24)));
            Assert.Equal(Rst | Ack, r.TcpFlags);
        }
        FrameParser.Parse(toReceiver, out var a);
        Assert.Equal((U, H, Hip, C, (ushort)40000, (ushort)80), (a.DestinationMac, a.SourceMac, a.SourceIPv4, a.DestinationIPv4, a.SourcePort, a.DestinationPort));
        Assert.Equal((1000u, 501u), (BinaryPrimitives.ReadUInt32BigEndian(toReceiver.AsSpan(38)), BinaryPrimitives.ReadUInt32BigEndian(toReceiver.AsSpan(42))));
        FrameParser.Parse(toSender, out var b);
        Assert.Equal((H, U, C, Hip, (ushort)80, (ushort)40000), (b.DestinationMac, b.SourceMac, b.SourceIPv4, b.DestinationIPv4, b.SourcePort, b.DestinationPort));
        Assert.Equal((501u, 1010u), (BinaryPrimitives.ReadUInt32BigEndian(toSender.AsSpan(38)), BinaryPrimitives.ReadUInt32BigEndian(toSender.AsSpan(42))));
        var udp = InUdp();
        FrameParser.Parse(udp, out var udpInfo);
        Assert.Equal(0, TcpReset.Build(udp, in udpInfo, false, toSender)); // not TCP: nothing
    }

    // --- no allocation ---

    [Fact]
    public void The_policed_packet_path_allocates_nothing_across_policy_changes()
    {
        var rig = Seeded();
        var rules = Enumerable.Range(1, 1000).Select(i => RuleJson((uint)i, "10.10.10.1", "10.10.10.88", 20000 + i, 6, 2, true)).ToList();
        rules.Add(RuleJson(2000, "10.10.10.0", "10.10.10.88", 80, 6, 2, true, extra: "").Replace("\"sip\": \"10.10.10.0\"", "\"sip\": \"10.10.10.0\", \"sipr\": \"10.10.10.255\""));
        for (int i = 0; i < rules.Count; i += 40)
            rig.Send(PolicyJson(1, (i == 0 ? 1 : 0) | (i + 40 >= rules.Count ? 2 : 0), Deny, rules.Skip(i).Take(40)));
        Assert.Equal(0, rig.Controller.Rejected);
        var frames = new List<byte[]>();
        for (ushort p = 0; p < 64; p++)
        {
            frames.Add(InSyn(sport: (ushort)(30000 + p)));
            frames.Add(OutSynAck(dport: (ushort)(30000 + p)));
            frames.Add(InData(sport: (ushort)(30000 + p)));
            frames.Add(InSyn(sport: (ushort)(30000 + p), dport: 81)); // denied: no session
        }
        var allow = Workload(rig).Policy!;
        var deny = new Policy(allow.Version + 1000, Deny, DpDirection.Both, []);
        var table = rig.Engine.Workloads.Current;
        var workload = table.Workloads.Single();
        var flipped = new WorkloadTable([workload.WithPolicy(deny)], table.Settings);
        var processor = rig.Engine.Processor;
        long sum = 0;
        void Run(int count)
        {
            for (int n = 0; n < count; n++)
            {
                var f = frames[n % frames.Count];
                var t = (n / 20_000) % 2 == 0 ? table : flipped; // policy changes: sessions decided again, blocked, reset, unblocked
                sum += (int)processor.Process(f, f.Length, t, rig.Clock.NowSeconds, out _);
                if (n % 50_000 == 0) { rig.Clock.Advance(31); rig.Engine.Sessions.Expire(rig.Clock.NowSeconds); }
            }
        }
        Run(frames.Count * 20);
        long allocated = Allocations.Fewest(() => Run(1_000_000));
        Assert.True(sum > 0);
        Assert.True(rig.Engine.Counters.ResetsSent > 0 && rig.Engine.Counters.Reevaluations > 0 && rig.Engine.Counters.DeniedSessions > 0);
        Assert.Equal(0, allocated);
    }
}

/// <summary>nvr-dp's table sizes on its command line.</summary>
public class DatapathOptionsTests
{
    [Fact]
    public void The_session_and_connection_tables_are_sized_from_the_command_line()
    {
        var o = Options.Parse(["--sessions", "1000", "--connections", "300"]);
        Assert.Equal((1000, 300), (o.Sessions, o.Connections));
        Assert.Equal((65536, 16384), (Options.Parse([]).Sessions, Options.Parse([]).Connections));
        using var engine = new PacketEngine(o.Sessions, new ManualClock(), new Logger(null, false, keepInMemory: true), o.Connections);
        Assert.Equal((1000, 300), (engine.Sessions.Capacity, engine.Connections.Capacity));
    }

    [Theory]
    [InlineData("--connections", "0", "--connections: 0 is not a number from 1 to 4194304")]
    [InlineData("--connections", "many", "--connections: many is not a number")]
    [InlineData("--sessions", "0", "--sessions: 0 is not a number from 1 to 16777216")]
    public void Bad_sizes_are_refused_with_what_is_wrong(string option, string value, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => Options.Parse([option, value]));
        Assert.Contains(message, e.Message);
    }
}
