using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.Json;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath.Control;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>nvr-dp's extension nvr_get_state: the configuration as JSON, and the outcome of the sender's previous datagram.</summary>
public class DatapathStateTests
{
    private static JsonElement State(List<byte[]> replies)
    {
        var body = new List<byte>();
        for (int i = 0; i < replies.Count; i++)
        {
            var r = replies[i];
            Assert.Equal(MessageKind.State, r[0]);
            Assert.Equal(i < replies.Count - 1 ? 1 : 0, r[1]);
            Assert.Equal(r.Length, BinaryPrimitives.ReadUInt16BigEndian(r.AsSpan(2)));
            Assert.True(r.Length <= DpWire.MaxMessageSize);
            body.AddRange(r.Skip(DpWire.HeaderSize));
        }
        return JsonDocument.Parse(body.ToArray()).RootElement.Clone();
    }

    private static List<byte[]> Send(DatapathControlTests.Rig rig, string json, string? sender)
        => rig.Controller.Handle(Encoding.UTF8.GetBytes(json), sender);

    [Fact]
    public void The_state_lists_what_the_seed_configured()
    {
        var rig = new DatapathControlTests.Rig();
        rig.SendSeed();
        var s = State(rig.Send("""{"nvr_get_state": {}}"""));
        Assert.Equal(Environment.ProcessId, s.GetProperty("daemon").GetProperty("pid").GetInt32());
        Assert.Equal("vth", s.GetProperty("service_port").GetString());
        var w = Assert.Single(s.GetProperty("workloads").EnumerateArray());
        Assert.Equal("1a:27:f3:87:3a:27", w.GetProperty("mac").GetString());
        Assert.Equal("4e:65:75:56:00:b4", w.GetProperty("ucmac").GetString());
        Assert.Equal("ff:ff:ff:00:00:b4", w.GetProperty("bcmac").GetString());
        Assert.Equal(JsonValueKind.Null, w.GetProperty("pmac").ValueKind);
        Assert.Equal("vth", w.GetProperty("iface").GetString());
        Assert.False(w.GetProperty("tap").GetBoolean());
        var nets = s.GetProperty("internal_nets").EnumerateArray().Select(n => $"{n.GetProperty("ip")}/{n.GetProperty("mask")}"
            + (n.TryGetProperty("iptype", out var t) ? ":" + t : "")).ToArray();
        Assert.Equal(["172.17.0.0/255.255.0.0", "179.20.23.0/255.255.255.0", "10.10.10.0/255.255.255.0", "172.20.166.0/255.255.255.0",
            "10.10.10.66/255.255.255.0:devip", "10.10.10.88/255.255.255.0:devip"], nets);
        Assert.Equal(5, s.GetProperty("requests").GetProperty("accepted").GetInt64()); // the four seed messages and this query
        Assert.Equal(0, s.GetProperty("requests").GetProperty("rejected").GetInt64());
        Assert.Equal(JsonValueKind.Null, s.GetProperty("your_last_request").ValueKind); // an unbound sender has no history
    }

    [Fact]
    public void Each_sender_learns_the_outcome_of_its_own_previous_datagram()
    {
        var rig = new DatapathControlTests.Rig();
        Assert.Empty(Send(rig, """{"ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27", "ucmac": "1a:27:f3:87:3a:27"}}""", "/tmp/a"));
        Assert.Empty(Send(rig, SeedAddMacFor("1a:27:f3:87:3a:28", "4e:65:75:56:00:b5"), "/tmp/b"));

        var a = State(Send(rig, """{"nvr_get_state": {}}""", "/tmp/a"));
        Assert.False(a.GetProperty("your_last_request").GetProperty("accepted").GetBoolean());
        Assert.Contains("\"ucmac\" must differ from \"mac\"", a.GetProperty("your_last_request").GetProperty("error").GetString());
        Assert.Contains("must differ", a.GetProperty("requests").GetProperty("last_rejection").GetString());

        var b = State(Send(rig, """{"nvr_get_state": {}}""", "/tmp/b"));
        Assert.True(b.GetProperty("your_last_request").GetProperty("accepted").GetBoolean());
        Assert.Equal(JsonValueKind.Null, b.GetProperty("your_last_request").GetProperty("error").ValueKind);
        Assert.Single(b.GetProperty("workloads").EnumerateArray());

        // the state query itself was accepted: asking twice reports success
        Assert.True(State(Send(rig, """{"nvr_get_state": {}}""", "/tmp/a")).GetProperty("your_last_request").GetProperty("accepted").GetBoolean());

        // an oversized datagram is remembered for a bound sender too
        rig.Controller.RejectOversized(9000, "/tmp/a", bound: true);
        var after = State(Send(rig, """{"nvr_get_state": {}}""", "/tmp/a"));
        Assert.Contains("exceeds the 8192-byte limit", after.GetProperty("your_last_request").GetProperty("error").GetString());
    }

    [Fact]
    public void A_state_query_in_a_rejected_datagram_is_not_answered_and_one_after_a_command_sees_it()
    {
        var rig = new DatapathControlTests.Rig();
        Assert.Empty(rig.Send("""{"nvr_get_state": {}, "ctrl_bogus": {}}"""));
        var s = State(rig.Send("""{"ctrl_cfg_mac": {"macs": []}, "ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27"}, "nvr_get_state": {}}"""));
        Assert.Single(s.GetProperty("workloads").EnumerateArray());
        Assert.True(s.GetProperty("workloads")[0].GetProperty("tap").GetBoolean());
    }

    [Fact]
    public void A_large_state_is_split_over_datagrams_and_joins_back()
    {
        var rig = new DatapathControlTests.Rig();
        for (int i = 0; i < 200; i++)
            Assert.Empty(rig.Send(SeedAddMacFor($"02:00:00:00:{i >> 8:x2}:{i & 255:x2}", $"4e:65:75:56:{i >> 8:x2}:{i & 255:x2}")));
        var replies = rig.Send("""{"nvr_get_state": {}}""");
        Assert.True(replies.Count > 2);
        Assert.Equal(200, State(replies).GetProperty("workloads").GetArrayLength());
    }

    private static string SeedAddMacFor(string mac, string ucmac) => $$$"""{"ctrl_add_mac": {"iface": "vth", "mac": "{{{mac}}}", "ucmac": "{{{ucmac}}}"}}""";
}
