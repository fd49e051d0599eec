using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Text;
using System.Text.Json;
using NvRedirect.Cmdlets;
using NvRedirect.Core.Datapath;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>The module's side of the policy extension, bytes in and objects out (no daemon, no root): rule text,
/// ctrl_cfg_policy and its chunks, the mode-switch datagram, and the kind 201/202 replies.</summary>
public class DpPolicyClientTests
{
    private const string Mac = "1a:27:f3:87:3a:27";

    // a reply of `kind` as nvr-dp chunks it: header {Kind, More, Length BE} then a slice of the JSON, More=1 until the last
    private static List<byte[]> Chunk(byte kind, string json, int bodySize)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var list = new List<byte[]>();
        for (int at = 0; at == 0 || at < bytes.Length; at += bodySize)
        {
            int n = Math.Min(bodySize, bytes.Length - at);
            var d = new byte[DpWire.HeaderSize + n];
            d[0] = kind;
            d[1] = (byte)(at + n < bytes.Length ? 1 : 0);
            BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(2), (ushort)d.Length);
            bytes.AsSpan(at, n).CopyTo(d.AsSpan(DpWire.HeaderSize));
            list.Add(d);
        }
        return list;
    }

    private static JsonElement Command(byte[] datagram, string name)
    {
        using var doc = JsonDocument.Parse(datagram);
        return doc.RootElement.GetProperty(name).Clone();
    }

    [Theory]
    [InlineData("10.10.10.0/24", "10.10.10.0", "10.10.10.255", "10.10.10.0/24")]
    [InlineData("10.10.10.7", "10.10.10.7", "10.10.10.7", "10.10.10.7")]
    [InlineData("10.10.10.7/32", "10.10.10.7", "10.10.10.7", "10.10.10.7")]
    [InlineData("10.10.10.1-10.10.10.9", "10.10.10.1", "10.10.10.9", "10.10.10.1-10.10.10.9")]
    [InlineData("10.10.10.0-10.10.10.127", "10.10.10.0", "10.10.10.127", "10.10.10.0/25")]
    [InlineData("192.0.2.0/23", "192.0.2.0", "192.0.3.255", "192.0.2.0/23")]
    [InlineData("any", "0.0.0.0", "255.255.255.255", "any")]
    [InlineData("*", "0.0.0.0", "255.255.255.255", "any")]
    [InlineData("0.0.0.0/0", "0.0.0.0", "255.255.255.255", "any")]
    [InlineData(" 10.10.10.5 - 10.10.10.5 ", "10.10.10.5", "10.10.10.5", "10.10.10.5")]
    public void Source_text_becomes_a_range_and_shows_back_in_its_shortest_form(string text, string from, string to, string shown)
    {
        var rule = DpRule.Parse(text, "any", "any", "any");
        Assert.Equal((from, to), (rule.SourceFrom.ToString(), rule.SourceTo.ToString()));
        Assert.Equal(shown, rule.Source);
        Assert.Equal("any", rule.Destination);
    }

    [Theory]
    [InlineData("80", 80, 80, "80")]
    [InlineData("8000-8100", 8000, 8100, "8000-8100")]
    [InlineData("any", 0, 65535, "any")]
    [InlineData("*", 0, 65535, "any")]
    [InlineData("0", 0, 0, "0")]
    [InlineData("0-65535", 0, 65535, "any")]
    public void Port_text_becomes_a_range(string text, int from, int to, string shown)
    {
        var rule = DpRule.Parse("any", "any", text, "tcp");
        Assert.Equal((from, to), ((int)rule.PortFrom, (int)rule.PortTo));
        Assert.Equal(shown, rule.Port);
    }

    [Theory]
    [InlineData("Any", 0, "Any")]
    [InlineData("tcp", 6, "TCP")]
    [InlineData("UDP", 17, "UDP")]
    [InlineData("icmp", 1, "ICMP")]
    [InlineData("ICMPv6", 58, "ICMPv6")]
    [InlineData("132", 132, "132")]
    public void Protocol_text_becomes_a_number(string text, byte number, string name)
    {
        var rule = DpRule.Parse("any", "any", "any", text);
        Assert.Equal(number, rule.Protocol);
        Assert.Equal(name, rule.ProtocolName);
    }

    [Theory]
    [InlineData("10.10.10.5/24", "any", "any", "any", "not a network address: did you mean 10.10.10.0/24")]
    [InlineData("10.10.10.9-10.10.10.1", "any", "any", "any", "ends before it starts")]
    [InlineData("any", "any", "8", "ICMP", "ICMP has no ports")]
    [InlineData("10.10.10", "any", "any", "any", "is not an IPv4 address, CIDR or range")]
    [InlineData("2001:db8::1", "10.0.0.1", "any", "any", "different address families")]
    [InlineData("2001:db8::1-10.0.0.1", "any", "any", "any", "mixes IPv4 and IPv6")]
    [InlineData("2001:db8::5/64", "any", "any", "any", "not a network address: did you mean 2001:db8::/64")]
    [InlineData("2001:db8::/129", "any", "any", "any", "from 0 to 128")]
    [InlineData("2001:db8::9-2001:db8::1", "any", "any", "any", "ends before it starts")]
    [InlineData("fe80::1%eth0", "any", "any", "any", "is not an IPv6 address")]
    [InlineData("::ffff:10.0.0.1", "any", "any", "any", "is not an IPv6 address")]
    [InlineData("2001:db8:::1", "any", "any", "any", "is not an IPv6 address")]
    [InlineData("2001:db8::1", "any", "any", "ICMP", "write -Protocol ICMPv6")]
    [InlineData("10.0.0.1", "any", "any", "ICMPv6", "for IPv4 addresses write -Protocol ICMP")]
    [InlineData("2001:db8::1", "any", "7", "ICMPv6", "ICMPv6 has no ports")]
    [InlineData("10.10.10.0/33", "any", "any", "any", "invalid prefix length")]
    [InlineData("any", "web", "any", "any", "The destination 'web' is not an IPv4 address")]
    [InlineData("any", "any", "65536", "any", "The port '65536' is not a port or port range")]
    [InlineData("any", "any", "90-80", "any", "ends before it starts")]
    [InlineData("any", "any", "http", "any", "write a number from 0 to 65535")]
    [InlineData("any", "any", "any", "sctp", "'sctp' is not a protocol")]
    [InlineData("any", "any", "any", "256", "'256' is not a protocol")]
    public void Bad_rule_text_is_refused_with_what_is_wrong(string source, string destination, string port, string protocol, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => DpRule.Parse(source, destination, port, protocol));
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32")]
    [InlineData("fd00::7", "fd00::7", "fd00::7", "fd00::7")]
    [InlineData("FD00::7/128", "fd00::7", "fd00::7", "fd00::7")]
    [InlineData("fd00::1-fd00::9", "fd00::1", "fd00::9", "fd00::1-fd00::9")]
    [InlineData("fd00::-fd00::ff", "fd00::", "fd00::ff", "fd00::/120")]
    [InlineData("::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "any")]
    public void IPv6_source_text_becomes_a_range_and_any_on_the_other_side_is_every_IPv6_address(string text, string from, string to, string shown)
    {
        var rule = DpRule.Parse(text, "any", "443", "tcp");
        Assert.Equal((from, to), (rule.SourceFrom.ToString(), rule.SourceTo.ToString()));
        Assert.Equal(shown, rule.Source);
        Assert.Equal(("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "any"), (rule.DestinationFrom.ToString(), rule.DestinationTo.ToString(), rule.Destination));
    }

    [Fact]
    public void An_IPv6_rule_goes_on_the_wire_as_IPv6_text_and_comes_back_the_same_while_IPv4_rules_keep_their_bytes()
    {
        var v6 = DpRule.Parse("fd00::/64", "fd00::2", "80", "tcp", id: 7);
        var wire = v6.ToWire();
        Assert.True(wire.IPv6);
        Assert.Equal((0u, 0u, 0u, 0u), (wire.SourceFrom, wire.SourceTo, wire.DestinationFrom, wire.DestinationTo));
        var buffer = new System.IO.MemoryStream();
        using (var w = new Utf8JsonWriter(buffer)) wire.Write(w);
        var json = Encoding.UTF8.GetString(buffer.ToArray());
        Assert.Equal("""{"id":7,"sip":"fd00::","sipr":"fd00::ffff:ffff:ffff:ffff","dip":"fd00::2","dipr":"fd00::2","port":80,"portr":80,"proto":6,"action":2,"ingress":true}""", json);
        using var doc = JsonDocument.Parse(json);
        var back = PolicyRule.Read(doc.RootElement, out _);
        Assert.Equal(wire, back);
        Assert.Equal(v6.ToString(), DpRule.FromWire(back, null, null).ToString());

        // IPv4: NeuVector's bytes, unchanged by the extension
        var v4 = DpRule.Parse("10.10.10.0/24", "any", "80", "tcp", id: 8).ToWire();
        buffer.SetLength(0);
        using (var w = new Utf8JsonWriter(buffer)) v4.Write(w);
        Assert.Equal("""{"id":8,"sip":"10.10.10.0","sipr":"10.10.10.255","dip":"0.0.0.0","dipr":"255.255.255.255","port":80,"portr":80,"proto":6,"action":2,"ingress":true}""",
            Encoding.UTF8.GetString(buffer.ToArray()));
        Assert.False(v4.IPv6);
    }

    [Theory]
    [InlineData("""{"id":1,"sip":"fd00::1","dip":"10.0.0.1","port":0,"proto":6,"action":2,"ingress":true}""", "\"dip\" is IPv4 but \"sip\" is IPv6")]
    [InlineData("""{"id":1,"sip":"fd00::9","sipr":"fd00::1","dip":"fd00::1","port":0,"proto":6,"action":2,"ingress":true}""", "\"sipr\" fd00::1 is below \"sip\" fd00::9")]
    [InlineData("""{"id":1,"sip":"fd00::1%2","dip":"fd00::1","port":0,"proto":6,"action":2,"ingress":true}""", "\"sip\" is not an IPv6 address")]
    [InlineData("""{"id":1,"sip":"::ffff:1.2.3.4","dip":"fd00::1","port":0,"proto":6,"action":2,"ingress":true}""", "\"sip\" is not an IPv6 address")]
    public void A_bad_IPv6_rule_on_the_wire_is_refused_with_what_is_wrong(string json, string message)
    {
        using var doc = JsonDocument.Parse(json);
        var e = Assert.Throws<CommandException>(() => PolicyRule.Read(doc.RootElement, out _));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_rule_is_one_way_only()
    {
        var e = Assert.Throws<ArgumentException>(() => DpRule.Parse("any", "any", "any", "any", direction: DpDirection.Both));
        Assert.Contains("write two rules", e.Message);
    }

    private static List<DpRule> ManyRules(int count) => Enumerable.Range(1, count).Select(i => DpRule.Parse(
        $"10.10.{i / 256}.{i % 256}", "192.0.2.0/24", $"{1000 + i}-{2000 + i}", i % 2 == 0 ? "tcp" : "udp",
        i % 3 == 0 ? DpPolicyAction.Deny : DpPolicyAction.Allow, i % 5 == 0 ? DpDirection.Egress : DpDirection.Ingress, (uint)i)).ToList();

    [Fact]
    public void A_thousand_rules_go_in_chunks_of_at_most_8120_bytes_flagged_start_middle_end_in_order()
    {
        var rules = ManyRules(1000);
        var chunks = DpRequests.Policy(DpRequests.PolicyModify, [Mac], DpPolicyAction.Deny, DpDirection.Both, rules);
        Assert.True(chunks.Count >= 3, $"{chunks.Count} chunks");
        Assert.All(chunks, c => Assert.InRange(c.Length, 1, DpRequests.MaxRequestSize));
        var flags = chunks.Select(c => Command(c, "ctrl_cfg_policy").GetProperty("flag").GetInt32()).ToList();
        Assert.Equal(1, flags[0]);
        Assert.Equal(2, flags[^1]);
        Assert.All(flags.Skip(1).SkipLast(1), f => Assert.Equal(0, f));

        var sent = new List<DpRule>();
        foreach (var c in chunks)
        {
            var p = Command(c, "ctrl_cfg_policy");
            Assert.Equal(Commands(c), ["ctrl_cfg_policy"]);
            Assert.Equal((2, 7, 3), (p.GetProperty("cmd").GetInt32(), p.GetProperty("defact").GetInt32(), p.GetProperty("dir").GetInt32()));
            Assert.Equal([Mac], p.GetProperty("mac").EnumerateArray().Select(m => m.GetString()));
            sent.AddRange(p.GetProperty("rules").EnumerateArray().Select(r => DpReplyReader.Rule(r, null, null)));
        }
        Assert.Equal(rules.Select(r => r.ToString()), sent.Select(r => r.ToString()));
        Assert.Equal(rules.Select(r => (r.SourceFrom, r.SourceTo, r.PortFrom, r.PortTo)), sent.Select(r => (r.SourceFrom, r.SourceTo, r.PortFrom, r.PortTo)));
        // the chunks are full: the first could not have taken one more rule
        Assert.True(chunks[0].Length > DpRequests.MaxRequestSize - 200, $"first chunk {chunks[0].Length} bytes");
    }

    private static List<string> Commands(byte[] d) => DpRequests.Commands(d).ToList();

    [Fact]
    public void A_small_policy_is_one_datagram_with_flag_3_and_every_rule_field()
    {
        var rule = DpRule.Parse("10.10.10.0/24", "10.10.10.88", "8000-8100", "tcp", DpPolicyAction.Allow, DpDirection.Ingress, 5);
        var chunks = DpRequests.Policy(DpRequests.PolicyAdd, [Mac], DpPolicyAction.Learn, DpDirection.Ingress, [rule]);
        var d = Assert.Single(chunks);
        Assert.Equal(
            """{"ctrl_cfg_policy":{"cmd":1,"flag":3,"defact":1,"dir":2,"mac":["1a:27:f3:87:3a:27"],"rules":[{"id":5,"sip":"10.10.10.0","sipr":"10.10.10.255","dip":"10.10.10.88","dipr":"10.10.10.88","port":8000,"portr":8100,"proto":6,"action":2,"ingress":true}]}}""",
            Encoding.UTF8.GetString(d));
    }

    [Fact]
    public void Deleting_a_policy_is_cmd_3_with_no_rules()
    {
        var d = Assert.Single(DpRequests.Policy(DpRequests.PolicyDelete, [Mac], DpPolicyAction.Open, DpDirection.Both, []));
        var p = Command(d, "ctrl_cfg_policy");
        Assert.Equal((3, 3, 0), (p.GetProperty("cmd").GetInt32(), p.GetProperty("flag").GetInt32(), p.GetProperty("rules").GetArrayLength()));
    }

    [Fact]
    public void A_change_says_which_version_it_was_made_from_in_every_chunk_and_only_when_asked()
    {
        var rules = Enumerable.Range(1, 100).Select(i => DpRule.Parse("10.10.10.66", "10.10.10.88", $"{1000 + i}", "tcp", id: (uint)i)).ToList();
        var chunks = DpRequests.Policy(DpRequests.PolicyModify, [Mac], DpPolicyAction.Deny, DpDirection.Both, rules, expectVersion: 42);
        Assert.True(chunks.Count > 1);
        Assert.All(chunks, c => Assert.Equal(42u, Command(c, "ctrl_cfg_policy").GetProperty("nvr_expect_version").GetUInt32()));
        var plain = Assert.Single(DpRequests.Policy(DpRequests.PolicyAdd, [Mac], DpPolicyAction.Learn, DpDirection.Both, []));
        Assert.False(Command(plain, "ctrl_cfg_policy").TryGetProperty("nvr_expect_version", out _)); // what NeuVector's agent sends
    }

    [Fact]
    public void A_mode_switch_is_ctrl_cfg_mac_and_ctrl_cfg_policy_in_one_datagram()
    {
        var rule = DpRule.Parse("any", "any", "5201", "tcp", id: 1);
        var d = Assert.Single(DpRequests.Policy(DpRequests.PolicyModify, [Mac], DpPolicy.DefaultActionOf(DpWorkloadMode.Protect), DpDirection.Both, [rule], modeSwitchTap: false));
        Assert.Equal(["ctrl_cfg_mac", "ctrl_cfg_policy"], Commands(d));
        var m = Command(d, "ctrl_cfg_mac");
        Assert.False(m.GetProperty("tap").GetBoolean());
        Assert.Equal([Mac], m.GetProperty("macs").EnumerateArray().Select(x => x.GetString()));
        var p = Command(d, "ctrl_cfg_policy");
        Assert.Equal((2, 3, 7, 3), (p.GetProperty("cmd").GetInt32(), p.GetProperty("flag").GetInt32(), p.GetProperty("defact").GetInt32(), p.GetProperty("dir").GetInt32()));
        Assert.Equal(1u, p.GetProperty("rules")[0].GetProperty("id").GetUInt32());
    }

    [Fact]
    public void A_chunked_mode_switch_carries_ctrl_cfg_mac_in_the_end_chunk_only_and_still_fits()
    {
        var rules = ManyRules(400);
        var chunks = DpRequests.Policy(DpRequests.PolicyModify, [Mac], DpPolicyAction.Learn, DpDirection.Both, rules, modeSwitchTap: true);
        Assert.True(chunks.Count > 1);
        Assert.All(chunks, c => Assert.True(c.Length <= DpRequests.MaxRequestSize));
        Assert.All(chunks.SkipLast(1), c => Assert.Equal(["ctrl_cfg_policy"], Commands(c)));
        Assert.Equal(["ctrl_cfg_mac", "ctrl_cfg_policy"], Commands(chunks[^1]));
        Assert.True(Command(chunks[^1], "ctrl_cfg_mac").GetProperty("tap").GetBoolean());
        Assert.Equal(400, chunks.Sum(c => Command(c, "ctrl_cfg_policy").GetProperty("rules").GetArrayLength()));
    }

    [Fact]
    public void The_end_chunk_of_a_mode_switch_gives_up_a_rule_when_ctrl_cfg_mac_would_not_fit()
    {
        // a limit the policy alone fits exactly: with ctrl_cfg_mac in front it does not
        var rules = ManyRules(30);
        int limit = Assert.Single(DpRequests.Policy(2, [Mac], DpPolicyAction.Deny, DpDirection.Both, rules)).Length;
        Assert.Single(DpRequests.Policy(2, [Mac], DpPolicyAction.Deny, DpDirection.Both, rules, maxSize: limit));
        var withMac = DpRequests.Policy(2, [Mac], DpPolicyAction.Deny, DpDirection.Both, rules, modeSwitchTap: false, maxSize: limit);
        Assert.Equal(2, withMac.Count);
        Assert.All(withMac, c => Assert.True(c.Length <= limit));
        Assert.Equal(["ctrl_cfg_policy"], Commands(withMac[0]));
        Assert.Equal(1, Command(withMac[0], "ctrl_cfg_policy").GetProperty("flag").GetInt32());
        Assert.Equal(29, Command(withMac[0], "ctrl_cfg_policy").GetProperty("rules").GetArrayLength());
        Assert.Equal(["ctrl_cfg_mac", "ctrl_cfg_policy"], Commands(withMac[1]));
        Assert.Equal(2, Command(withMac[1], "ctrl_cfg_policy").GetProperty("flag").GetInt32());
        Assert.Equal(30u, Command(withMac[1], "ctrl_cfg_policy").GetProperty("rules")[0].GetProperty("id").GetUInt32());
    }

    [Fact]
    public void A_rule_too_large_for_any_request_is_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => DpRequests.Policy(1, [Mac], DpPolicyAction.Deny, DpDirection.Both, ManyRules(3), maxSize: 200));
        Assert.Contains("rule 1 does not fit in a request of 200 bytes", e.Message);
    }

    [Fact]
    public void Policy_addresses_are_chunked_like_internal_networks()
    {
        var addresses = Enumerable.Range(0, 600).Select(i => IPAddress.Parse($"10.10.{i / 250}.{i % 250 + 1}")).ToList();
        var chunks = DpRequests.PolicyAddresses(addresses);
        Assert.True(chunks.Count > 1);
        Assert.All(chunks, c => Assert.True(c.Length <= DpRequests.MaxRequestSize));
        Assert.Equal(addresses.Select(a => a.ToString()),
            chunks.SelectMany(c => Command(c, "ctrl_cfg_policy_addr").GetProperty("subnet_addr").EnumerateArray().Select(e => e.GetProperty("ip").GetString())));
        Assert.Equal([1, 2], new[] { chunks[0], chunks[^1] }.Select(c => Command(c, "ctrl_cfg_policy_addr").GetProperty("flag").GetInt32()));
    }

    [Fact]
    public void The_extension_queries_name_their_workloads_or_none()
    {
        Assert.Equal("""{"nvr_get_policy":{}}""", Encoding.UTF8.GetString(DpRequests.GetPolicy()));
        Assert.Equal("""{"nvr_list_connection":{"macs":["1a:27:f3:87:3a:27"]}}""", Encoding.UTF8.GetString(DpRequests.ListConnections([Mac])));
        Assert.Equal("""{"nvr_clear_connection":{}}""", Encoding.UTF8.GetString(DpRequests.ClearConnections()));
    }

    [Fact]
    public void A_policy_reply_over_several_datagrams_reads_back_with_every_rule()
    {
        var rules = string.Join(",", Enumerable.Range(1, 120).Select(i =>
            $$"""{"id":{{i}},"sip":"10.10.10.{{i}}","sipr":"10.10.10.{{i}}","dip":"0.0.0.0","dipr":"255.255.255.255","port":{{i}},"portr":{{i + 10}},"proto":{{(i % 2 == 0 ? 6 : 17)}},"action":{{(i == 120 ? 7 : 2)}},"ingress":{{(i % 2 == 0 ? "true" : "false")}}}"""));
        var json = $$"""{"policies":[{"mac":"{{Mac}}","version":42,"defact":7,"dir":3,"rules":[{{rules}}]},{"mac":"02:00:00:00:00:02","version":43,"defact":1,"dir":2,"rules":[]}]}""";
        var datagrams = Chunk(MessageKind.Policy, json, 1000);
        Assert.True(datagrams.Count > 5);
        var policies = DpReplyReader.Policies(DpReplyReader.Join(datagrams, MessageKind.Policy, "policy"), "/s");
        Assert.Equal(2, policies.Count);
        var p = policies[0];
        Assert.Equal((Mac, 42u, DpPolicyAction.Deny, DpDirection.Both, DpWorkloadMode.Protect, "/s"), (p.Mac, p.Version, p.DefaultAction, p.Direction, p.Mode, p.ControlSocket));
        Assert.Equal(120, p.Rules.Length);
        Assert.Equal(Enumerable.Range(1, 120).Select(i => (uint)i), p.Rules.Select(r => r.Id));
        var r7 = p.Rules[6];
        Assert.Equal(("10.10.10.7", "any", "7-17", "UDP", DpPolicyAction.Allow, DpDirection.Egress, Mac, "/s"),
            (r7.Source, r7.Destination, r7.Port, r7.ProtocolName, r7.Action, r7.Direction, r7.Mac, r7.ControlSocket));
        Assert.Equal(DpPolicyAction.Deny, p.Rules[^1].Action);
        Assert.Equal(DpDirection.Ingress, p.Rules[^1].Direction);
        Assert.Equal((DpWorkloadMode.Discover, DpDirection.Ingress), (policies[1].Mode, policies[1].Direction));
        Assert.Empty(policies[1].Rules);

        // what was read goes back as it came
        var again = DpRequests.Policy(2, [Mac], p.DefaultAction, p.Direction, p.Rules);
        var resent = again.SelectMany(c => Command(c, "ctrl_cfg_policy").GetProperty("rules").EnumerateArray().Select(r => r.GetRawText())).ToList();
        using var original = JsonDocument.Parse(json);
        Assert.Equal(original.RootElement.GetProperty("policies")[0].GetProperty("rules").EnumerateArray().Select(r => r.GetRawText()), resent);
    }

    [Fact]
    public void A_rule_without_the_optional_ends_is_a_single_address_and_port()
    {
        using var doc = JsonDocument.Parse("""{"id":3,"sip":"10.10.10.1","dip":"10.10.10.2","port":80,"proto":6,"action":7,"ingress":true}""");
        var r = DpReplyReader.Rule(doc.RootElement, Mac, null);
        Assert.Equal(("10.10.10.1", "10.10.10.2", "80", DpPolicyAction.Deny), (r.Source, r.Destination, r.Port, r.Action));
    }

    [Fact]
    public void A_connection_reply_over_several_datagrams_reads_back_field_by_field()
    {
        var entries = Enumerable.Range(1, 60).Select(i =>
            $$"""{"mac":"{{Mac}}","ingress":{{(i % 2 == 0 ? "true" : "false")}},"client":"10.10.10.{{i}}","server":"10.10.10.88","server_port":{{5000 + i}},"proto":6,"rule_id":{{i % 4}},"action":{{i % 8}},"sessions":{{i}},"packets":{{i * 10}},"bytes":{{i * 1000L * 1000 * 1000}},"dropped":{{(i % 8 == 7 ? i : 0)}},"first_seen":"2026-11-26T02:10:00.000Z","last_seen":"2026-11-26T02:1{{i % 10}}:30.250Z"}""").ToList();
        entries.Add("""{"mac":"02:00:00:00:00:02","ingress":true,"client":"2001:db8::1","server":"2001:db8::2","server_port":0,"proto":58,"rule_id":0,"action":0,"sessions":1,"packets":2,"bytes":3,"dropped":0,"first_seen":"2026-11-26T02:10:00Z","last_seen":"2026-11-26T02:10:01Z"}""");
        var json = $$"""{"connections":[{{string.Join(",", entries)}}],"capacity":4096,"evicted":9}""";
        var datagrams = Chunk(MessageKind.Connections, json, 700);
        Assert.True(datagrams.Count > 5);
        var list = DpReplyReader.Connections(DpReplyReader.Join(datagrams, MessageKind.Connections, "connection"), "/s", out long capacity, out long evicted);
        Assert.Equal((4096L, 9L), (capacity, evicted));
        Assert.Equal(61, list.Count);
        var c = list[6]; // i = 7
        Assert.Equal((Mac, DpDirection.Egress, "10.10.10.7", "10.10.10.88", (ushort)5007, "TCP", 3u, DpPolicyAction.Deny, 7L, 70L, 7_000_000_000L, 7L),
            (c.Mac, c.Direction, c.Client.ToString(), c.Server.ToString(), c.ServerPort, c.ProtocolName, c.RuleId, c.Action, c.Sessions, c.Packets, c.Bytes, c.DroppedPackets));
        Assert.Equal(new DateTime(2026, 11, 26, 2, 10, 0, DateTimeKind.Utc), c.FirstSeen);
        Assert.Equal(new DateTime(2026, 11, 26, 2, 17, 30, 250, DateTimeKind.Utc), c.LastSeen);
        Assert.Equal(DateTimeKind.Utc, c.LastSeen.Kind);
        Assert.Equal(DpDirection.Ingress, list[7].Direction);
        Assert.Equal(("2001:db8::1", "ICMPv6", DpPolicyAction.Open), (list[^1].Client.ToString(), list[^1].ProtocolName, list[^1].Action));
    }

    [Fact]
    public void Joining_refuses_another_kind_and_a_reply_cut_short()
    {
        var policy = Chunk(MessageKind.Policy, """{"policies":[]}""", 5);
        Assert.Throws<DatapathProtocolException>(() => DpReplyReader.Join(policy, MessageKind.Connections, "connection"));
        Assert.Throws<DatapathProtocolException>(() => DpReplyReader.Join(policy.Take(2), MessageKind.Policy, "policy"));
        Assert.Throws<DatapathProtocolException>(() => DpReplyReader.Policies(Encoding.UTF8.GetBytes("""{"policies":[{"mac":"x","version":1,"defact":9,"dir":3,"rules":[]}]}"""), "/s"));
        Assert.Empty(DpReplyReader.Policies(DpReplyReader.Join(policy, MessageKind.Policy, "policy"), "/s"));
    }

    [Theory]
    [InlineData(null, DpWorkloadMode.None)]
    [InlineData(DpPolicyAction.Learn, DpWorkloadMode.Discover)]
    [InlineData(DpPolicyAction.Violate, DpWorkloadMode.Monitor)]
    [InlineData(DpPolicyAction.Deny, DpWorkloadMode.Protect)]
    [InlineData(DpPolicyAction.Open, DpWorkloadMode.Custom)]
    [InlineData(DpPolicyAction.Allow, DpWorkloadMode.Custom)]
    public void The_mode_is_read_from_the_default_action(DpPolicyAction? defact, DpWorkloadMode mode)
    {
        Assert.Equal(mode, DpPolicy.ModeOf(defact));
        if (mode is DpWorkloadMode.Discover or DpWorkloadMode.Monitor or DpWorkloadMode.Protect) Assert.Equal(defact, DpPolicy.DefaultActionOf(mode));
    }

    [Fact]
    public void A_policy_less_workload_is_mode_None_and_one_with_a_policy_shows_its_mode_in_the_state()
    {
        static string Workload(string mac, string policy) =>
            $$"""{"mac":"{{mac}}","iface":"vth","ucmac":null,"bcmac":null,"pmac":null,"pips":[],"tap":false,"apps":[],"packets_in":0,"packets_out":0,"bytes_in":0,"bytes_out":0,"sessions_in":0,"sessions_out":0""" + policy + "}";
        var json = $$"""
            {"daemon":{"pid":7,"version":"x","netns":"","socket":"/s","sessions_capacity":10,"started":"2026-11-26T02:10:00Z"},
             "service_port":"vth","workloads":[{{Workload(Mac, ""","policy":{"version":5,"defact":6,"dir":3,"rules":12}""")}},{{Workload("02:00:00:00:00:02", ""","policy":null""")}},{{Workload("02:00:00:00:00:03", "")}}],
             "internal_nets":[],"internal_nets_pending":null,"xff_enabled":false,"disable_net_policy":false,"detect_unmanaged_wl":false,
             "enable_icmp_policy":true,"strict_group_mode":false,"debug":[],"requests":{"accepted":1,"rejected":0},
             "policy_addr":["10.10.10.88"],"policy_pending":{"macs":["{{Mac}}"],"rules":40} }
            """;
        var state = DpReplyReader.State(Encoding.UTF8.GetBytes(json), out _, out _);
        var w = state.Workloads[0];
        Assert.Equal((DpWorkloadMode.Monitor, (DpPolicyAction?)DpPolicyAction.Violate, (DpDirection?)DpDirection.Both, 5u, 12),
            (w.Mode, w.DefaultAction, w.PolicyDirection, w.PolicyVersion, w.RuleCount));
        Assert.All(state.Workloads.Skip(1), x => Assert.Equal((DpWorkloadMode.None, (DpPolicyAction?)null, 0u, 0), (x.Mode, x.DefaultAction, x.PolicyVersion, x.RuleCount)));
        Assert.Equal(["10.10.10.88"], state.PolicyAddresses);
        Assert.Equal($"40 rules for {Mac}", state.PolicyPending);
    }

    [Fact]
    public void Added_rules_replace_by_id_append_otherwise_and_get_the_next_free_ids()
    {
        var current = new[] { 1u, 5u, 3u }.Select(id => DpRule.Parse("any", "any", $"{id}", "tcp", id: id)).ToList();
        var merged = DpPolicyEditor.Merge(current, [
            DpRule.Parse("any", "any", "99", "udp", id: 5),
            DpRule.Parse("any", "any", "100", "udp"),
            DpRule.Parse("any", "any", "101", "udp", id: 9),
            DpRule.Parse("any", "any", "102", "udp"),
        ]);
        Assert.Equal([1u, 5u, 3u, 10u, 9u, 11u], merged.Select(r => r.Id));
        Assert.Equal(["1", "99", "3", "100", "101", "102"], merged.Select(r => r.Port));
    }
}
