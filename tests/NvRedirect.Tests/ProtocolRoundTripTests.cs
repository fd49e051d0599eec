using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Json;
using NvRedirect.Core.Datapath;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>
/// Every message of the control protocol both ways: what a writer writes, its reader reads back equal to the input
/// (field by field, arrays element by element). Requests are written as the module sends them and read as nvr-dp reads
/// them; replies are written as nvr-dp sends them and read as the module reads them. No sockets, no root.
/// </summary>
public class ProtocolRoundTripTests
{
    private const ulong Wl = 0x1a27f3873a27, Uc = 0x4e65755600b4, Bc = 0xffffff0000b4, Other = 0x0a0b0c0d0e0f;
    private const uint A = 0x0a0a0a42, B = 0x0a0a0a58; // 10.10.10.66, 10.10.10.88

    private static readonly PolicyRule[] Rules =
    [
        new(1, A, A, B, B, 80, 80, 6, DpPolicyAction.Allow, true),
        new(2, 0, uint.MaxValue, 0x0a0a0a00, 0x0a0a0aff, 1000, 2000, 17, DpPolicyAction.Deny, false),
        new(uint.MaxValue, A, B, 0, 0, 0, ushort.MaxValue, 0, DpPolicyAction.CheckApp, true),
    ];

    /// <summary>One instance (or more) of every request, as the module would send it.</summary>
    private static IEnumerable<IRequestMessage> EveryRequest() =>
    [
        new KeepAliveRequest(0xdeadbeef),
        new EmptyRequest(Command.CountSessions), new EmptyRequest(Command.ListSessions), new EmptyRequest(Command.DeviceCounters),
        new MacFilterRequest(Command.GetState),
        new MacFilterRequest(Command.GetState, [0x1a27f3873a27]),
        new MacFilterRequest(Command.GetState, []),
        new AddServicePortRequest("vth", true), new AddServicePortRequest("éé-port", false),
        new DeleteServicePortRequest("vth"),
        new AddMacRequest("vth", Wl, Uc, Bc, Other, 0x020000000001, [A, B]), new AddMacRequest("vth", Wl),
        new DeleteMacRequest(Wl, "vth"), new DeleteMacRequest(Wl),
        new ConfigureMacRequest([Wl, Uc], true, [new AppPort(8080, 6, 1001, 2), new AppPort(53, 17, 0, 0)]), new ConfigureMacRequest([Wl], null),
        new ClearSessionRequest(0), new ClearSessionRequest(77),
        new ToggleRequest(Command.SystemConfig, true), new ToggleRequest(Command.DisableNetPolicy, false),
        new ToggleRequest(Command.DetectUnmanagedWorkloads, true), new ToggleRequest(Command.EnableIcmpPolicy, false),
        new ToggleRequest(Command.StrictGroupMode, true), new ToggleRequest(Command.ConfigureStrict, true),
        new SetDebugRequest(["ctrl", "policy"]), new SetDebugRequest([]),
        new InternalNetRequest(ChunkFlags.Whole, [new InternalSubnet(0xac110000, 0xffff0000, null), new InternalSubnet(A, 0xffffff00, "devip")]),
        new InternalNetRequest(ChunkFlags.Middle, []),
        new PolicyAddressRequest(ChunkFlags.Start, [A, B]),
        new PolicyRequest(PolicyCommand.Add, ChunkFlags.Whole, DpPolicyAction.Deny, DpDirection.Both, [Wl], Rules, ExpectVersion: 4),
        new PolicyRequest(PolicyCommand.Modify, ChunkFlags.End, DpPolicyAction.Learn, DpDirection.Ingress, [Wl, Other], []),
        new PolicyRequest(PolicyCommand.Delete, ChunkFlags.Whole, null, null, [Wl], []),
        new MacFilterRequest(Command.GetPolicy), new MacFilterRequest(Command.GetPolicy, [Wl]),
        new MacFilterRequest(Command.ListConnections, [Wl, Uc]), new MacFilterRequest(Command.ClearConnections),
        // the rest of what NeuVector's agent sends
        new TapPortRequest(Command.AddTapPort, "/proc/4242/ns/net", "eth0", Wl), new TapPortRequest(Command.DeleteTapPort, "/proc/4242/ns/net", "eth0", 0),
        new NfqPortRequest(Command.AddNfqPort, "/proc/1/ns/net", "eth0", 7, Wl, true), new NfqPortRequest(Command.AddNfqPort, "/proc/1/ns/net", "eth0", 0, Wl),
        new NfqPortRequest(Command.DeleteNfqPort, "/proc/1/ns/net", "eth0"),
        new PortPairRequest(Command.AddPortPair, "vex1a2b-eth0", "vin1a2b-eth0", Wl, true), new PortPairRequest(Command.AddPortPair, "vex1", "vin1", Wl),
        new PortPairRequest(Command.DeletePortPair, "vex1a2b-eth0", "vin1a2b-eth0"),
        new SpecialIpNetRequest(ChunkFlags.Whole, [new InternalSubnet(0xac110001, 0xffffffff, "hostip"), new InternalSubnet(0x0a600000, 0xfff00000, "svcip")]),
        new SpecialIpNetRequest(ChunkFlags.Start, []),
        new NbeRequest([Wl, Uc], true), new NbeRequest([Wl], null),
        new SetFqdnRequest("www.example.com", [IPAddress.Parse("192.0.2.7"), IPAddress.Parse("2001:db8::7")], true), new SetFqdnRequest("*.example.org", []),
        new DeleteFqdnRequest(["www.example.com", "*.example.org"]),
        new EmptyRequest(Command.RefreshApp), new EmptyRequest(Command.DeviceStats), new EmptyRequest(Command.ListMeters),
        new MacStatsRequest([Wl, Other]), new MacStatsRequest([]),
        new DlpRequest(Command.ConfigureDlp, ChunkFlags.Whole, [new MacList(Key.Mac, [Wl])]),
        new DlpRequest(Command.BuildDlp, ChunkFlags.Start, [new MacList(Key.Mac, [Wl]), new MacList(Key.DeleteMacs, [Other])]),
        new DlpRequest(Command.ConfigureDlpMac, null, [new MacList(Key.DeleteMacs, [Wl])]),
        new DlpRequest(Command.BuildDlpMac, null, [new MacList(Key.OldMac, [Other]), new MacList(Key.AddMacs, [Wl]), new MacList(Key.DeleteMacs, [])]),
    ];

    [Fact]
    public void Every_request_reads_back_as_it_was_written()
    {
        foreach (var message in EveryRequest())
        {
            var datagram = Datagram.Of(message);
            using var doc = JsonDocument.Parse(datagram);
            var command = Assert.Single(doc.RootElement.EnumerateObject());
            Assert.Equal(message.Command, command.Name);
            Same(message, Datagram.Read(command.Name, command.Value), message.Command);
        }
    }

    [Fact]
    public void The_round_trip_covers_every_command_of_the_protocol()
    {
        var all = typeof(Command).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!);
        Assert.Equal(all.Order(), EveryRequest().Select(m => m.Command).Distinct().Order());
    }

    [Fact]
    public void Several_commands_in_one_datagram_read_back_in_order()
    {
        var messages = EveryRequest().ToArray();
        // a JSON object holds a name once: one message per command
        var distinct = messages.GroupBy(m => m.Command).Select(g => g.First()).ToArray();
        using var doc = JsonDocument.Parse(Datagram.Of(distinct));
        var read = doc.RootElement.EnumerateObject().Select(p => Datagram.Read(p.Name, p.Value)).ToArray();
        Same(distinct, read, "datagram");
    }

    [Fact]
    public void Chunked_lists_read_back_whole_in_order()
    {
        var rules = Enumerable.Range(1, 300).Select(i => Rules[i % 3] with { Id = (uint)i }).ToArray();
        var policy = new PolicyRequest(PolicyCommand.Modify, ChunkFlags.Whole, DpPolicyAction.Violate, DpDirection.Egress, [Wl], rules, 9);
        var chunks = Datagram.Policy(policy, new ConfigureMacRequest([Wl], false), 2000, i => $"rule {rules[i].Id}");
        Assert.True(chunks.Count > 2);
        var read = new List<PolicyRule>();
        for (int i = 0; i < chunks.Count; i++)
        {
            using var doc = JsonDocument.Parse(chunks[i]);
            var commands = doc.RootElement.EnumerateObject().ToList();
            if (i == chunks.Count - 1) Same(new ConfigureMacRequest([Wl], false), Datagram.Read(commands[0].Name, commands[0].Value), "mode switch");
            var m = (PolicyRequest)Datagram.Read(Command.ConfigurePolicy, commands[^1].Value);
            var flag = (i == 0 ? ChunkFlags.Start : 0) | (i == chunks.Count - 1 ? ChunkFlags.End : 0);
            Same(policy with { Flag = flag, Rules = m.Rules }, m, $"chunk {i}");
            read.AddRange(m.Rules);
        }
        Same(rules, read.ToArray(), "rules");

        var subnets = Enumerable.Range(0, 500).Select(i => new InternalSubnet((uint)(0x0a000000 + (i << 8)), 0xffffff00, i % 2 == 0 ? null : "devip")).ToArray();
        var netChunks = Datagram.InternalNetworks(subnets, 1000, i => $"entry {i}");
        Same(subnets, netChunks.SelectMany(c => ReadSingle<InternalNetRequest>(c).Subnets).ToArray(), "subnets");
        var addresses = Enumerable.Range(0, 500).Select(i => (uint)(0x0a000000 + i)).ToArray();
        var addressChunks = Datagram.PolicyAddresses(addresses, 1000, i => $"address {i}");
        Same(addresses, addressChunks.SelectMany(c => ReadSingle<PolicyAddressRequest>(c).Addresses).ToArray(), "addresses");
    }

    [Fact]
    public void The_modules_requests_read_back_as_the_messages_they_stand_for()
    {
        var rules = new[] { DpRule.Parse("10.10.10.66", "10.10.10.88", "80", "TCP", DpPolicyAction.Allow, DpDirection.Ingress, 5) };
        var policy = ReadSingle<PolicyRequest>(Assert.Single(DpRequests.Policy(DpRequests.PolicyModify, ["1a:27:f3:87:3a:27"], DpPolicyAction.Deny,
            DpDirection.Both, rules, expectVersion: 3)));
        Same(new PolicyRequest(PolicyCommand.Modify, ChunkFlags.Whole, DpPolicyAction.Deny, DpDirection.Both, [Wl], [rules[0].ToWire()], 3), policy, "policy");
        Same(DpRule.FromWire(policy.Rules[0], "1a:27:f3:87:3a:27", null), rules[0].With(mac: "1a:27:f3:87:3a:27"), "rule");
        Same(new AddMacRequest("vth", Wl, Uc, Bc), ReadSingle<AddMacRequest>(DpRequests.AddMac("vth", "1a:27:f3:87:3a:27", "4e:65:75:56:00:b4", "ff:ff:ff:00:00:b4", null, null)), "add mac");
        Same(new InternalSubnet(0x0a0a0a00, 0xffffff00, null), ReadSingle<InternalNetRequest>(Assert.Single(DpRequests.InternalNetworks([DpInternalNetwork.Parse("10.10.10.0/24")]))).Subnets.Single(), "subnet");
    }

    private static T ReadSingle<T>(byte[] datagram) where T : IRequestMessage
    {
        using var doc = JsonDocument.Parse(datagram);
        var p = Assert.Single(doc.RootElement.EnumerateObject());
        return Assert.IsType<T>(Datagram.Read(p.Name, p.Value));
    }

    // --- replies: nvr-dp writes, the module reads ---

    [Fact]
    public void The_binary_replies_read_back_as_they_were_written()
    {
        Assert.Equal(0xfeedfaceu, Replies.ReadKeepAlive(Replies.KeepAlive(0xfeedface)));
        Assert.True(Replies.IsKeepAlive(Replies.KeepAlive(5), 5));
        Assert.False(Replies.IsKeepAlive(Replies.KeepAlive(5), 6));
        var counts = new SessionCounts(10, 4, 3, 2, 1);
        Assert.Equal(counts, Replies.ReadSessionCount(Replies.SessionCount(counts)));
        var values = Enumerable.Range(1, 27).Select(i => (ulong)i * 0x0101010101UL).ToArray();
        Assert.Equal(values, Replies.ReadDeviceCounters(Replies.DeviceCounters(values)));

        var sessions = Enumerable.Range(1, 130).Select(i => new SessionEntry((uint)i, Wl, false, [10, 10, 10, 66], [10, 10, 10, 88], (ushort)(40000 + i), 80, 6, 0,
            Other, Uc, 10, 20, 3000, 4000, TcpState.Established, TcpState.CloseWait, 12, 3, 1188, DpWire.SessionFlagIngress | DpWire.SessionFlagMidStream,
            (uint)i * 7, DpPolicyAction.Violate)).ToList();
        sessions.Add(new SessionEntry(999, Wl, true, IPAddress.Parse("2001:db8::1").GetAddressBytes(), IPAddress.Parse("2001:db8::2").GetAddressBytes(),
            7, 7, 58, 0x8000, Other, Wl, 1, 2, 64, 64, TcpState.None, TcpState.None, uint.MaxValue, ushort.MaxValue, 4, DpWire.SessionFlagTap, 0, DpPolicyAction.Open));
        var read = new List<SessionEntry>();
        var more = new List<bool>();
        foreach (var d in Replies.SessionList(sessions)) { read.AddRange(Replies.ReadSessionList(d, out bool m)); more.Add(m); }
        Assert.Equal([true, true, true, false], more);
        Same(sessions.ToArray(), read.ToArray(), "sessions");
    }

    [Fact]
    public void The_chunked_json_replies_join_back_whole()
    {
        foreach (var kind in new[] { MessageKind.State, MessageKind.Policy, MessageKind.Connections })
            foreach (int length in new[] { 0, 1, 8188, 8189, 20000 })
            {
                var text = Encoding.UTF8.GetBytes(new string('x', length));
                var datagrams = Replies.Json(kind, text);
                Assert.All(datagrams, d => Assert.True(d.Length <= DpWire.MaxMessageSize));
                Assert.Equal(text, Replies.Join(datagrams, kind, "test"));
            }
    }

    private static readonly DateTime T0 = new(2026, 12, 3, 8, 30, 15, 123, DateTimeKind.Utc);

    [Fact]
    public void The_state_reads_back_as_it_was_written()
    {
        var state = new StateReport(
            new DaemonEntry(4242, "1.2.3.4", "nvr-agent", "/tmp/dp.sock", "/tmp/dp.log", 65536, T0),
            "vth",
            [
                new WorkloadEntry(Wl, "vth", Uc, Bc, 0x020000000001, [A], false, [new AppPort(8080, 6, 1001, 2)], 1, 2, 3, 4, 5, 6,
                    new PolicySummary(7, DpPolicyAction.Deny, DpDirection.Both, 3)),
                new WorkloadEntry(Other, "vth", 0, 0, 0, [], true, [], 0, 0, 0, 0, 0, 0, null),
            ],
            [new InternalSubnet(0xac110000, 0xffff0000, null), new InternalSubnet(A, 0xffffff00, "devip")],
            2, true, false, true, false, true, ["ctrl", "policy"], [A, B],
            new PendingPolicyEntry([Wl, Other], 80),
            new PolicyCounters(11, 12, 13, 14, 15),
            new RequestCounters(100, 2, "ctrl_add_mac: \"mac\" is missing"),
            new LastRequest(false, "because"),
            new TablesReport(new TableFigures(65536, 40000, 0, 0, 143331, 0, 0), new TableFigures(16384, 16384, 4, 4096, 30970, 0, 175068)),
            new AgentState([new InternalSubnet(0x0a0a0a01, 0xffffffff, "hostip")],
                [new FqdnEntry("www.example.com", [IPAddress.Parse("192.0.2.7"), IPAddress.Parse("2001:db8::7")], true), new FqdnEntry("a.example", [], false)],
                [Wl, Other], [new TapPortEntry("/proc/1/ns/net", "eth0", Wl)], [new NoEffectEntry(Command.AddTapPort, 2), new NoEffectEntry(Command.ConfigureDlp, 1)],
                new ReportCounters("/tmp/ctrl_listen.sock", true, 3, 200, 1, "owned by uid 1000")));
        Same(state, JsonReplies.ReadState(JsonReplies.WriteState(state)), "state");
        var bare = state with { Daemon = state.Daemon with { Log = null }, ServicePort = null, InternalNetsPending = null, PolicyPending = null,
            Requests = new RequestCounters(0, 0, null), YourLastRequest = null, Agent = null };
        Same(bare, JsonReplies.ReadState(JsonReplies.WriteState(bare)), "bare state");

        // and the module shows what the daemon counted
        var info = DpReplyReader.State(JsonReplies.WriteState(state), out var accepted, out var error);
        Assert.Equal((11L, 12L, 13L, 14L, 15L), (info.DeniedPackets, info.DeniedSessions, info.BlockedSessions, info.ResetsSent, info.Reevaluations));
        Assert.Equal((false, "because"), (accepted, error));
    }

    [Fact]
    public void Policies_and_connections_read_back_as_they_were_written()
    {
        PolicyEntry[] policies = [new(Wl, 9, DpPolicyAction.Violate, DpDirection.Ingress, Rules), new(Other, 10, DpPolicyAction.Learn, DpDirection.Egress, [])];
        Same(policies, JsonReplies.ReadPolicies(JsonReplies.WritePolicies(policies)).ToArray(), "policies");

        var list = new ConnectionList(
        [
            new ConnectionEntry(Wl, true, IPAddress.Parse("10.10.10.66"), IPAddress.Parse("10.10.10.88"), 80, 6, 4, DpPolicyAction.Allow, 3, 30, 3000, 0, T0, T0.AddSeconds(5)),
            new ConnectionEntry(Other, false, IPAddress.Parse("2001:db8::1"), IPAddress.Parse("2001:db8::2"), 0, 58, 0, DpPolicyAction.Deny, 1, 2, 200, 2, T0, T0),
        ], 4096, 17);
        Same(list, JsonReplies.ReadConnections(JsonReplies.WriteConnections(list)), "connections");
    }

    // field by field (public properties), arrays and lists element by element, values by Equals
    private static void Same(object? expected, object? actual, string path)
    {
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{path}: expected {expected ?? "null"}, got {actual ?? "null"}");
            return;
        }
        var type = expected.GetType();
        if (type.IsPrimitive || type.IsEnum || expected is string or IPAddress or DateTime)
        {
            Assert.True(expected.Equals(actual), $"{path}: expected {expected}, got {actual}");
            return;
        }
        if (expected is IEnumerable items)
        {
            var x = items.Cast<object?>().ToList();
            var y = Assert.IsAssignableFrom<IEnumerable>(actual).Cast<object?>().ToList();
            Assert.True(x.Count == y.Count, $"{path}: expected {x.Count} items, got {y.Count}");
            for (int i = 0; i < x.Count; i++) Same(x[i], y[i], $"{path}[{i}]");
            return;
        }
        Assert.Equal(type, actual.GetType());
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0))
            Same(p.GetValue(expected), p.GetValue(actual), $"{path}.{p.Name}");
    }
}
