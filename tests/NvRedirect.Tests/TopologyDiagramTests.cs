using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Model;
using NvRedirect.Core.Protocol;
using NvRedirect.Core.Tc;
using NvRedirect.Core.Topology;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The topology model built from the queries' objects (AgentTopology.Build) and its diagrams against golden text: the
/// seed's wiring (bpf steering rules whose targets come from their part, u32 pass rules with mirred targets), a datapath
/// with one inline workload, a container namespace opened by path whose peer is matched by ifindex, and a peer outside.
/// </summary>
public class TopologyDiagramTests
{
    private const string Agent = "agent-ns", Container = "/proc/4242/ns/net", Host = "host-ns", Mac = "1a:27:f3:87:3a:27";

    private static AgentLink Link(string ns, string name, int index, string mac, int peerIndex = 0, string? peerName = null, string? peerNs = null, params string[] addresses)
        => new() { Namespace = ns, Name = name, Index = index, Kind = "veth", MacAddress = mac, State = "Up", PeerIndex = peerIndex, PeerName = peerName, PeerNamespace = peerNs, Addresses = addresses };

    private static RedirectFilter Bpf(string link, ushort pref) => new()
    {
        Namespace = Agent, LinkName = link, Priority = pref, Protocol = "all", Kind = "bpf", IsOwned = true, Filter = new BpfFilter { Priority = pref, Name = "rs_macrw" },
    };

    private static RedirectFilter Pass(string link, string target) => new()
    {
        Namespace = Agent, LinkName = link, Priority = 10002, Protocol = "all", Kind = "u32", IsOwned = true,
        Filter = new U32Filter { Priority = 10002, Actions = [new MirredAction { TargetIndex = 9, TargetName = target }] },
    };

    private static AgentTopology Seed()
    {
        string[] namespaces = [Agent, Container, Host];
        var links = new List<AgentLink>
        {
            Link(Agent, "lo", 1, "00:00:00:00:00:00"),
            Link(Agent, "vex", 2, "02:00:00:00:00:02", 2, "vex-peer", Host),
            Link(Agent, "vin", 3, "02:00:00:00:00:03", 2, null, null),   // its peer is in the container's namespace, which has no name
            Link(Agent, "vbr", 4, "02:00:00:00:00:04", 5, "vth", Agent),
            Link(Agent, "vth", 5, "02:00:00:00:00:05", 4, "vbr", Agent),
            Link(Agent, "uplink", 6, "02:00:00:00:00:06", 7, "up-peer", "elsewhere-ns"),
            Link(Container, "eth0", 2, Mac, 3, null, null, "10.10.10.88/24", "fe80::1827:f3ff:fe87:3a27/64"),
            Link(Host, "vex-peer", 2, "02:00:00:00:00:12", 2, "vex", Agent, "10.10.10.66/24"),
        };
        var interception = new InterceptionInfo
        {
            Namespace = Agent, WorkloadMac = Mac, UcMac = "4e:65:75:56:00:b4", EntryLink = "vex", InnerLink = "vin", MonitorLink = "vbr", ContainerName = "web",
            Rules =
            [
                new("entry: to datapath", "vex", 10001, "bpf", TcChange.Unchanged, null), new("entry: straight in", "vex", 10002, "u32", TcChange.Unchanged, null),
                new("inner: to datapath", "vin", 10001, "bpf", TcChange.Unchanged, null), new("inner: straight out", "vin", 10002, "u32", TcChange.Unchanged, null),
                new("monitor: to workload", "vbr", 5, "bpf", TcChange.Unchanged, null), new("monitor: to host side", "vbr", 172, "bpf", TcChange.Unchanged, null),
            ],
        };
        RedirectFilter[] filters = [Bpf("vex", 10001), Pass("vex", "vin"), Bpf("vin", 10001), Pass("vin", "vex"), Bpf("vbr", 5), Bpf("vbr", 172)];
        var datapath = new DatapathInfo
        {
            Pid = 777, Namespace = Agent, ControlSocket = "/run/nvredirect/dp-agent-ns.sock", ServicePorts = ["vth"],
            Workloads = [new DpWorkload { Mac = Mac, UcMac = "4e:65:75:56:00:b4", Interface = "vth", Tap = false, DefaultAction = DpPolicyAction.Deny }],
        };
        var elsewhere = new DatapathInfo { Pid = 1, Namespace = "other-ns", ControlSocket = "/tmp/other.sock" };
        return AgentTopology.Build(namespaces, links, filters, [interception], [datapath, elsewhere]);
    }

    [Fact]
    public void Build_resolves_peers_targets_roles_and_the_workload_interface()
    {
        var t = Seed();
        Assert.Equal(["agent-ns", Container, "host-ns"], t.Namespaces.Select(n => n.Name));
        Assert.Equal(["Enforcer", "Workload", "Other"], t.Namespaces.Select(n => n.Role));
        Assert.DoesNotContain(t.Links, l => l.Name == "lo");
        var vin = t.Links.Single(l => l.Name == "vin");
        Assert.Equal(("eth0", Container), (vin.PeerName!, vin.PeerNamespace!));   // matched by the ifindex pair
        Assert.Equal("vin", t.Links.Single(l => l.Name == "eth0").PeerName);
        var toDatapath = t.SteeringRules.Single(r => r.LinkName == "vex" && r.Priority == 10001);
        Assert.Equal(("entry: to datapath", Mac), (toDatapath.Role!, toDatapath.WorkloadMac!));
        Assert.Equal(["vbr"], toDatapath.Targets);                                // a bpf rule: from its part
        Assert.Equal(["vin"], t.SteeringRules.Single(r => r.LinkName == "vex" && r.Priority == 10002).Targets);   // u32: from its mirred action
        Assert.Equal(["vex"], t.SteeringRules.Single(r => r.LinkName == "vbr" && r.Priority == 172).Targets);
        var dp = Assert.Single(t.Datapaths);                                      // the one in another namespace is left out
        var w = Assert.Single(dp.Workloads);
        Assert.Equal(($"{Container}/eth0", "Protect", "web"), (w.Link!, w.Mode, w.ContainerName!));
    }

    [Fact]
    public void The_seed_draws_as_the_golden_Mermaid_text()
        => GoldenText.AssertMatches("topology-seed.mmd", TopologyDiagram.Mermaid(Seed(), "seed"));

    [Fact]
    public void The_seed_draws_as_the_golden_DOT_text()
        => GoldenText.AssertMatches("topology-seed.dot", TopologyDiagram.Dot(Seed(), "seed"));

    [Fact]
    public void Labels_cannot_break_out_of_their_quotes()
    {
        var t = AgentTopology.Build(["a\"b"], [Link("a\"b", "x<y>&\"z\\", 2, "02:00:00:00:00:01")], [], [], []);
        var mermaid = TopologyDiagram.Mermaid(t, "t\"");
        Assert.Contains("l0[\"x#lt;y#gt;#amp;#quot;z\\<br/>", mermaid);
        Assert.Contains("subgraph ns0[\"a#quot;b\"]", mermaid);
        var dot = TopologyDiagram.Dot(t, "t\"");
        Assert.Contains("l0 [label=\"x<y>&\\\"z\\\\\\n", dot);
        Assert.Contains("label=\"t\\\"\"", dot);
    }

    [Fact]
    public void Merged_topologies_keep_each_namespace_once()
    {
        var seed = Seed();
        var merged = AgentTopology.Merge([seed, seed]);
        Assert.Equal(seed.Namespaces.Length, merged.Namespaces.Length);
        Assert.Equal(seed.Links.Length, merged.Links.Length);
        Assert.Equal(TopologyDiagram.Dot(seed), TopologyDiagram.Dot(merged));
    }
}
