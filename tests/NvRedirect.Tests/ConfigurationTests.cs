using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Configuration;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Protocol;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The desired-state document and its plan, without a kernel or a daemon: parsing (with errors that name the field),
/// writing back, and <see cref="Configurator.Plan"/> on observed states built by hand: the steps, their order (never
/// more open on the way than at the end) and that a matching host gives no step. Against the real kernel and nvr-dp:
/// tests/pester/Configuration.Tests.ps1 and Ansible.Tests.ps1.
/// </summary>
public class ConfigurationTests
{
    private const string Ns = "enf";
    private const string Socket = "/run/nvredirect/dp-enf.sock";
    private const string MacA = "1a:27:f3:87:3a:27", MacB = "1a:27:f3:87:3a:28";

    private static EnforcerConfiguration Doc(string workloads, bool removeUnlisted = true)
        => EnforcerConfiguration.Parse($$"""{"namespace": "{{Ns}}", "removeUnlisted": {{(removeUnlisted ? "true" : "false")}}, "workloads": [{{workloads}}]}""");

    private static ObservedTarget Target(ulong inode, params (string Name, string Mac)[] ifs)
        => new(new WorkloadTarget($"/run/netns/w{inode}", inode, null, null, null, null), ifs, null);

    private static InterceptionInfo Taken(ulong inode, string ifname, string mac, bool orphaned = false) => new()
    {
        Namespace = Ns, WorkloadMac = mac, EntryLink = $"nvx{inode}{ifname}", InnerLink = $"nvi{inode}{ifname}", MonitorLink = "vbr",
        Interface = ifname, NetnsInode = inode, NetnsPath = $"/run/netns/w{inode}", IsOrphaned = orphaned,
    };

    private static DpPolicy Policy(string mac, DpPolicyAction defact, params DpRule[] rules)
        => new() { ControlSocket = Socket, Mac = mac, HasPolicy = true, DefaultAction = defact, Version = 7, Rules = rules.Select(r => r.With(mac: mac)).ToArray() };

    private static DpRule Tcp(uint id, string port) => DpRule.Parse(null, null, port, "tcp", id: id);

    private static ObservedEnforcer Observed(IEnumerable<InterceptionInfo>? taken = null, IEnumerable<DpPolicy>? policies = null, bool datapath = true,
        params (string Identity, ObservedTarget Target)[] targets) => new()
    {
        Namespace = Ns,
        Datapath = datapath ? new DatapathInfo { Namespace = Ns, ControlSocket = Socket } : null,
        Interceptions = (taken ?? []).ToList(),
        Policies = (policies ?? []).ToList(),
        Targets = targets.ToDictionary(t => t.Identity, t => t.Target),
    };

    private static string[] Actions(IEnumerable<ConfigurationChange> plan) => plan.Select(c => c.Action.ToString()).ToArray();

    [Fact]
    public void Parse_fills_the_defaults_and_numbers_the_rules()
    {
        var doc = EnforcerConfiguration.Parse("""{"workloads": [{"container": "web", "mode": "protect", "rules": [{"port": 8080, "protocol": "TCP"}, {"id": 7, "source": "10.0.0.0/8"}, {}]}]}""");
        Assert.Equal("nvr-enforcer", doc.Namespace);
        Assert.True(doc.RemoveUnlisted);
        Assert.True(doc.Datapath.Supervised);
        var w = Assert.Single(doc.Workloads);
        Assert.Equal(DpWorkloadMode.Protect, w.Mode);
        Assert.Equal(DpPolicyAction.Deny, w.PolicyDefault);
        Assert.Equal(new uint[] { 8, 7, 9 }, w.Rules.Select(r => r.Id));   // ids 0 get the next free ones after the highest
        Assert.Equal("8080", w.Rules[0].Port);
        Assert.Equal(6, w.Rules[0].Protocol);
        Assert.Equal(DpDirection.Ingress, w.Rules[1].Direction);
        Assert.Equal(DpPolicyAction.Allow, w.Rules[2].Action);
    }

    [Theory]
    [InlineData("""{"workloads": [{"container": "web", "modus": "protect"}]}""", "configuration.workloads[0] has an unknown field 'modus'")]
    [InlineData("""{"workloads": [{"container": "web", "mode": "block"}]}""", "configuration.workloads[0].mode is 'block': write one of none, discover, monitor, protect, custom.")]
    [InlineData("""{"workloads": [{"mode": "protect"}]}""", "configuration.workloads[0] must name its workload exactly one way")]
    [InlineData("""{"workloads": [{"container": "web", "pid": 4}]}""", "exactly one way: container (a podman or docker name or id), pid (a process of the container) or netnsPath (its namespace file), not several")]
    [InlineData("""{"workloads": [{"netnsPath": "run/netns/x"}]}""", "configuration.workloads[0].netnsPath 'run/netns/x' is not an absolute path")]
    [InlineData("""{"workloads": [{"pid": 4, "rules": [{"port": 80}]}]}""", "configuration.workloads[0].rules are given with mode none")]
    [InlineData("""{"workloads": [{"pid": 4, "mode": "custom"}]}""", "configuration.workloads[0].mode is custom: give the policy's defaultAction too")]
    [InlineData("""{"workloads": [{"pid": 4, "mode": "protect", "defaultAction": "open"}]}""", "configuration.workloads[0].defaultAction is given with mode protect")]
    [InlineData("""{"workloads": [{"pid": 4, "mode": "protect", "rules": [{"protocol": "icmp", "port": 8}]}]}""", "configuration.workloads[0].rules[0]: ICMP has no ports")]
    [InlineData("""{"workloads": [{"pid": 4, "mode": "protect", "rules": [{"id": 2}, {"id": 2}]}]}""", "configuration.workloads[0].rules: Two rules have id 2")]
    [InlineData("""{"workloads": [{"pid": 4}, {"pid": 4, "interfaces": ["eth1"]}]}""", "configuration.workloads[0] and [1] both name process 4")]
    [InlineData("""{"namespace": ""}""", "configuration.namespace is empty")]
    [InlineData("""{"datapath": {"controlSocket": "dp.sock"}}""", "configuration.datapath.controlSocket 'dp.sock' is not an absolute path")]
    [InlineData("""{"datapath": {"sessionCapacity": 0}}""", "configuration.datapath.sessionCapacity is 0: it must be from 1 to 16777216")]
    [InlineData("""[1]""", "configuration must be a JSON object")]
    [InlineData("""{"workloads": """, "The configuration is not valid JSON")]
    public void Parse_refuses_mistakes_naming_the_field(string json, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => EnforcerConfiguration.Parse(json));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_workload_may_be_split_by_interfaces_that_do_not_overlap()
    {
        var doc = EnforcerConfiguration.Parse("""{"workloads": [{"pid": 4, "interfaces": ["eth0"], "mode": "protect"}, {"pid": 4, "interfaces": ["eth1"], "mode": "monitor"}]}""");
        Assert.Equal(2, doc.Workloads.Count);
    }

    [Fact]
    public void ToJson_writes_what_Parse_reads_back_the_same()
    {
        var doc = EnforcerConfiguration.Parse("""
            {"namespace": "enf", "datapath": {"controlSocket": "/tmp/dp.sock", "sessionCapacity": 1024, "supervised": false}, "removeUnlisted": false,
             "workloads": [{"container": "web", "interfaces": ["eth0"], "mode": "custom", "defaultAction": "violate",
                            "rules": [{"direction": "egress", "protocol": "udp", "destination": "192.0.2.0/24", "port": "53", "action": "deny"}]},
                           {"netnsPath": "/run/netns/db", "state": "absent"}]}
            """);
        var again = EnforcerConfiguration.Parse(doc.ToJson());
        Assert.Equal(doc.ToJson(), again.ToJson());
        Assert.Equal("/tmp/dp.sock", again.Datapath.ControlSocket);
        Assert.Equal(1024, again.Datapath.SessionCapacity);
        Assert.False(again.Datapath.Supervised);
        Assert.False(again.RemoveUnlisted);
        Assert.Equal(DpPolicyAction.Violate, again.Workloads[0].DefaultAction);
        var rule = Assert.Single(again.Workloads[0].Rules);
        Assert.Equal((1u, DpDirection.Egress, (byte)17, "any", "192.0.2.0/24", "53", DpPolicyAction.Deny),
            (rule.Id, rule.Direction, rule.Protocol, rule.Source, rule.Destination, rule.Port, rule.Action));
        Assert.Equal(WorkloadState.Absent, again.Workloads[1].State);
    }

    [Fact]
    public void Plan_from_nothing_starts_the_datapath_then_takes_over_in_Protect_then_writes_the_rules()
    {
        var doc = Doc("""{"netnsPath": "/run/netns/w1", "mode": "protect", "rules": [{"protocol": "tcp", "port": 80}]}""");
        var plan = Configurator.Plan(doc, Observed(datapath: false, targets: ("netnsPath /run/netns/w1", Target(1, ("eth0", MacA)))));
        Assert.Equal(["StartDatapath", "TakeOver", "SetPolicy"], Actions(plan));
        Assert.Equal([1, 2, 3], plan.Select(c => c.Step));
        Assert.Equal(DpWorkloadMode.Protect, plan[1].InterimMode);
        Assert.Equal(["eth0"], plan[1].Interfaces!);
        Assert.Equal(MacA, plan[2].Mac);
        Assert.Equal("mode protect", plan[2].Before);                   // as the take-over leaves it: closed
        Assert.Equal("mode protect\nrule 1: ingress tcp any -> any:80 allow", plan[2].After);
        Assert.Equal(DpPolicyAction.Deny, plan[2].DefaultAction);
    }

    [Theory]
    [InlineData("none", null)]
    [InlineData("discover", DpWorkloadMode.Discover)]
    [InlineData("monitor", DpWorkloadMode.Monitor)]
    [InlineData("custom", DpWorkloadMode.Protect)]   // a custom default action (open, here) comes after a closed take-over
    public void A_take_over_is_registered_at_most_as_open_as_the_end_state(string mode, DpWorkloadMode? interim)
    {
        var extra = mode == "custom" ? ", \"defaultAction\": \"open\"" : "";
        var doc = Doc($$"""{"pid": 42, "mode": "{{mode}}"{{extra}}}""");
        var plan = Configurator.Plan(doc, Observed(targets: ("pid 42", Target(1, ("eth0", MacA)))));
        Assert.Equal(interim, plan[0].InterimMode);
        Assert.Equal(mode == "custom" ? ["TakeOver", "SetPolicy"] : ["TakeOver"], Actions(plan));
    }

    [Fact]
    public void A_host_that_matches_gives_no_step()
    {
        var doc = Doc("""{"netnsPath": "/run/netns/w1", "mode": "protect", "rules": [{"protocol": "tcp", "port": 80}]}, {"pid": 9, "mode": "none"}""");
        var observed = Observed([Taken(1, "eth0", MacA), Taken(2, "eth0", MacB)], [Policy(MacA, DpPolicyAction.Deny, Tcp(1, "80"))],
            targets: [("netnsPath /run/netns/w1", Target(1, ("eth0", MacA))), ("pid 9", Target(2, ("eth0", MacB)))]);
        Assert.Empty(Configurator.Plan(doc, observed));
    }

    [Fact]
    public void A_mode_and_rule_change_is_one_step_carrying_both()
    {
        var doc = Doc("""{"netnsPath": "/run/netns/w1", "mode": "monitor", "rules": [{"protocol": "tcp", "port": 443}]}""");
        var observed = Observed([Taken(1, "eth0", MacA)], [Policy(MacA, DpPolicyAction.Deny, Tcp(1, "80"))], targets: ("netnsPath /run/netns/w1", Target(1, ("eth0", MacA))));
        var step = Assert.Single(Configurator.Plan(doc, observed));
        Assert.Equal(ConfigurationAction.SetPolicy, step.Action);
        Assert.Equal("the mode and the rules differ", step.Reason);
        Assert.Equal(DpPolicyAction.Violate, step.DefaultAction);
        Assert.Equal("443", Assert.Single(step.Rules!).Port);
        Assert.Equal("mode protect\nrule 1: ingress tcp any -> any:80 allow", step.Before);
    }

    [Fact]
    public void Mode_none_removes_a_policy_and_give_backs_come_last()
    {
        var doc = Doc("""{"netnsPath": "/run/netns/w2", "state": "absent"}, {"netnsPath": "/run/netns/w1", "mode": "none"}, {"pid": 3, "mode": "protect"}""");
        var observed = Observed([Taken(1, "eth0", MacA), Taken(2, "eth0", MacB), Taken(4, "eth0", "1a:27:f3:87:3a:29", orphaned: true)],
            [Policy(MacA, DpPolicyAction.Learn)],
            targets: [("netnsPath /run/netns/w1", Target(1, ("eth0", MacA))), ("netnsPath /run/netns/w2", Target(2, ("eth0", MacB))),
                ("pid 3", Target(3, ("eth0", "1a:27:f3:87:3a:30")))]);
        var plan = Configurator.Plan(doc, observed);
        Assert.Equal(["RemovePolicy", "TakeOver", "GiveBack", "GiveBack"], Actions(plan));
        Assert.Equal(MacB, plan[2].Mac);                           // the absent one
        Assert.Equal("1a:27:f3:87:3a:29", plan[3].Mac);             // the orphan, unlisted
        Assert.Equal("what is left of an exited container", plan[3].Reason);
        // with removeUnlisted false the orphan stays
        var keep = Doc("""{"netnsPath": "/run/netns/w2", "state": "absent"}, {"netnsPath": "/run/netns/w1", "mode": "none"}, {"pid": 3, "mode": "protect"}""", removeUnlisted: false);
        Assert.Equal(["RemovePolicy", "TakeOver", "GiveBack"], Actions(Configurator.Plan(keep, observed)));
    }

    [Fact]
    public void Only_the_named_interfaces_are_taken_over_and_the_others_given_back()
    {
        var doc = Doc("""{"pid": 5, "interfaces": ["eth1"]}""");
        var observed = Observed([Taken(5, "eth0", MacA)], targets: ("pid 5", Target(5, ("eth0", MacA), ("eth1", MacB))));
        var plan = Configurator.Plan(doc, observed);
        Assert.Equal(["TakeOver", "GiveBack"], Actions(plan));
        Assert.Equal(["eth1"], plan[0].Interfaces!);
        Assert.Equal(MacA, plan[1].Mac);
    }

    [Fact]
    public void What_cannot_be_converged_is_refused_with_the_reason()
    {
        var doc = Doc("""{"container": "web", "mode": "protect"}""");
        var gone = Observed(targets: ("container web", new ObservedTarget(null, [], "No container runtime knows a container 'web'")));
        Assert.Contains("container 'web' cannot be protected: No container runtime knows", Assert.Throws<ArgumentException>(() => Configurator.Plan(doc, gone)).Message);

        var noIf = Doc("""{"pid": 5, "interfaces": ["eth9"]}""");
        Assert.Contains("has no Ethernet interface 'eth9' (it has eth0)",
            Assert.Throws<ArgumentException>(() => Configurator.Plan(noIf, Observed(targets: ("pid 5", Target(5, ("eth0", MacA)))))).Message);

        var other = EnforcerConfiguration.Parse("""{"namespace": "enf", "datapath": {"controlSocket": "/tmp/other.sock"}}""");
        Assert.Contains("serves /run/nvredirect/dp-enf.sock, but the configuration's datapath.controlSocket is /tmp/other.sock",
            Assert.Throws<ArgumentException>(() => Configurator.Plan(other, Observed())).Message);
    }

    [Fact]
    public void A_datapath_is_started_only_for_a_document_that_protects_something()
    {
        var absent = Doc("""{"netnsPath": "/run/netns/w4", "state": "absent"}""");
        Assert.Empty(Configurator.Plan(absent, Observed(datapath: false, targets: ("netnsPath /run/netns/w4", Target(4, ("eth0", MacA))))));
        Assert.Empty(Configurator.Plan(Doc(""), Observed(datapath: false)));
    }

    [Fact]
    public void An_absent_workload_that_exited_is_found_by_its_mark()
    {
        var doc = Doc("""{"netnsPath": "/run/netns/w4", "state": "absent"}""", removeUnlisted: false);
        var observed = Observed([Taken(4, "eth0", MacA, orphaned: true)], targets: ("netnsPath /run/netns/w4", new ObservedTarget(null, [], "gone")));
        Assert.Equal(["GiveBack"], Actions(Configurator.Plan(doc, observed)));
    }
    [Fact]
    public void The_schema_in_docs_names_the_fields_and_values_the_parser_takes()
    {
        using var schema = System.Text.Json.JsonDocument.Parse(System.IO.File.ReadAllText(System.IO.Path.Combine(TestRun.Root, "docs", "configuration.schema.json")));
        static string[] Names(System.Text.Json.JsonElement e) => e.GetProperty("properties").EnumerateObject().Select(p => p.Name).Order().ToArray();
        static string[] Values(System.Text.Json.JsonElement e, string field) => e.GetProperty("properties").GetProperty(field).GetProperty("enum").EnumerateArray().Select(v => v.GetString()!).Order().ToArray();
        var root = schema.RootElement;
        var defs = root.GetProperty("$defs");
        Assert.Equal(EnforcerConfiguration.Fields.Order(), Names(root));
        Assert.Equal(EnforcerConfiguration.DatapathFields.Order(), Names(root.GetProperty("properties").GetProperty("datapath")));
        Assert.Equal(WorkloadConfiguration.Fields.Order(), Names(defs.GetProperty("workload")));
        Assert.Equal(WorkloadConfiguration.RuleFields.Order(), Names(defs.GetProperty("rule")));
        Assert.Equal(WorkloadConfiguration.ModeNames.Order(), Values(defs.GetProperty("workload"), "mode"));
        Assert.Equal(WorkloadConfiguration.ActionNames.Order(), Values(defs.GetProperty("workload"), "defaultAction"));
        Assert.Equal(WorkloadConfiguration.ActionNames.Order(), Values(defs.GetProperty("rule"), "action"));
    }
}
