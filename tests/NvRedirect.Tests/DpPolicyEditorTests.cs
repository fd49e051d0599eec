using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using NvRedirect.Core.Datapath;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>
/// Policy editing as the cmdlets use it, planned from a policy as read (no daemon, no root): which request, which
/// policy, and that every datagram carries the version the change was made from. Writing it through the daemon's real
/// control socket is in <see cref="DpClientSocketTests"/>.
/// </summary>
public class DpPolicyEditorTests
{
    private const string Mac = "1a:27:f3:87:3a:27";

    private static DpRule Rule(uint id, string port = "80") => DpRule.Parse("10.10.10.66", "any", port, "tcp", id: id);

    private static DpPolicy Read(uint version, DpPolicyAction defact, DpDirection dir, params uint[] ids)
        => new() { ControlSocket = "/s", Mac = Mac, HasPolicy = true, Version = version, DefaultAction = defact, Direction = dir, Rules = ids.Select(id => Rule(id)).ToArray() };

    private static readonly DpPolicy None = new() { ControlSocket = "/s", Mac = Mac };

    // every chunk's ctrl_cfg_policy, in order
    private static List<JsonElement> Sent(DpPolicyChange change) => change.Datagrams.Select(d =>
    {
        using var doc = JsonDocument.Parse(d);
        return doc.RootElement.GetProperty("ctrl_cfg_policy").Clone();
    }).ToList();

    private static (int Cmd, int Defact, int Dir, uint Version) Head(JsonElement p)
        => (p.GetProperty("cmd").GetInt32(), p.GetProperty("defact").GetInt32(), p.GetProperty("dir").GetInt32(), p.GetProperty("nvr_expect_version").GetUInt32());

    private static List<uint> Ids(DpPolicyChange change) => Sent(change).SelectMany(p => p.GetProperty("rules").EnumerateArray().Select(r => r.GetProperty("id").GetUInt32())).ToList();

    [Fact]
    public void Replacing_the_rules_keeps_the_default_and_direction_and_expects_the_version_read()
    {
        var change = DpPolicyEditor.Replace(Read(7, DpPolicyAction.Deny, DpDirection.Ingress, 1, 2), [Rule(0, "443"), Rule(5)]);
        Assert.Equal((2, 7, 2, 7u), Head(Assert.Single(Sent(change))));
        Assert.Equal([6u, 5u], Ids(change)); // in the order given; id 0 gets the next free one
        Assert.Equal("2 rules, default Deny, direction Ingress", change.Summary);
    }

    [Fact]
    public void Without_rules_the_current_ones_stay_and_a_workload_without_a_policy_gets_ADD_with_version_0()
    {
        var kept = DpPolicyEditor.Replace(Read(3, DpPolicyAction.Learn, DpDirection.Both, 4, 9), null, DpPolicyAction.Deny);
        Assert.Equal((2, 7, 3, 3u), Head(Sent(kept)[0]));
        Assert.Equal([4u, 9u], Ids(kept));

        var fresh = DpPolicyEditor.Replace(None, [Rule(0)], direction: DpDirection.Egress);
        Assert.Equal((1, 0, 1, 0u), Head(Sent(fresh)[0]));
    }

    [Fact]
    public void Two_rules_with_one_id_are_refused_before_anything_is_planned()
    {
        var e = Assert.Throws<ArgumentException>(() => DpPolicyEditor.Replace(None, [Rule(3), Rule(3, "81")]));
        Assert.Contains("Two rules have id 3", e.Message);
    }

    [Fact]
    public void Adding_rules_merges_them_and_a_large_policy_goes_in_chunks_that_all_expect_the_version()
    {
        var current = Read(41, DpPolicyAction.Violate, DpDirection.Both, 1, 2);
        var many = Enumerable.Range(0, 300).Select(i => DpRule.Parse($"10.10.{i / 250}.{i % 250 + 1}", "192.0.2.0/24", $"{1000 + i}", "udp")).ToList();
        var change = DpPolicyEditor.AddRules(current, many);
        var sent = Sent(change);
        Assert.True(sent.Count > 1, $"{sent.Count} datagrams");
        Assert.All(sent, p => Assert.Equal((2, 6, 3, 41u), Head(p)));
        Assert.Equal(Enumerable.Range(1, 302).Select(i => (uint)i), Ids(change));
        Assert.EndsWith($", in {sent.Count} requests", change.Summary);
    }

    [Fact]
    public void Removing_rules_reports_the_ids_it_has_not_and_plans_nothing_when_it_has_none()
    {
        var current = Read(9, DpPolicyAction.Deny, DpDirection.Both, 1, 2, 3);
        var change = DpPolicyEditor.RemoveRules(current, [2, 7, 2], out var removed, out var missing);
        Assert.Equal([2u], removed);
        Assert.Equal([7u], missing);
        Assert.Equal((2, 7, 3, 9u), Head(Sent(change!)[0]));
        Assert.Equal([1u, 3u], Ids(change!));

        Assert.Null(DpPolicyEditor.RemoveRules(current, [8], out removed, out missing));
        Assert.Empty(removed);
        Assert.Equal([8u], missing);
    }

    [Fact]
    public void A_mode_switch_sends_the_modes_default_with_the_wire_mode_and_refuses_tap_with_protect()
    {
        var change = DpPolicyEditor.SwitchMode(Read(5, DpPolicyAction.Learn, DpDirection.Ingress, 1), DpWorkloadMode.Protect, DpWireMode.Inline);
        Assert.Equal((2, 7, 2, 5u), Head(Sent(change)[0]));
        using (var doc = JsonDocument.Parse(change.Datagrams[^1]))
            Assert.False(doc.RootElement.GetProperty("ctrl_cfg_mac").GetProperty("tap").GetBoolean());
        Assert.Equal([1u], Ids(change));

        Assert.Equal((1, 1, 3, 0u), Head(Sent(DpPolicyEditor.SwitchMode(None, DpWorkloadMode.Discover, DpWireMode.Tap))[0]));
        Assert.Contains("-Wire Tap cannot go with -Mode Protect", Assert.Throws<ArgumentException>(() => DpPolicyEditor.SwitchMode(None, DpWorkloadMode.Protect, DpWireMode.Tap)).Message);
    }

    [Fact]
    public void Deleting_is_cmd_3_without_rules_from_the_version_read()
    {
        var change = DpPolicyEditor.Delete(Read(12, DpPolicyAction.Deny, DpDirection.Both, 1, 2));
        var p = Assert.Single(Sent(change));
        Assert.Equal((3, 7, 3, 12u), Head(p));
        Assert.Equal(0, p.GetProperty("rules").GetArrayLength());
    }

    [Fact]
    public void A_workload_without_a_policy_reads_as_Mode_None_on_its_socket()
    {
        var p = DpPolicyEditor.PolicyOf([Read(1, DpPolicyAction.Deny, DpDirection.Both)], "02:00:00:00:00:02", "/t");
        Assert.Equal(("02:00:00:00:00:02", "/t", DpWorkloadMode.None, 0u, false), (p.Mac, p.ControlSocket, p.Mode, p.Version, p.HasPolicy));
    }
}
