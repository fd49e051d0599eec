using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.Specialized;
using System.Linq;
using System.Management.Automation;
using System.Text;
using NvRedirect.Cmdlets;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath.Control;
using NvRedirect.Datapath.Engine;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>The module's side of the control protocol, bytes in and objects out: what DpRequests writes the daemon's
/// Controller accepts, and what the daemon's Replies writes DpReplyReader reads back (no sockets, no root).</summary>
public class DpClientCodecTests
{
    [Fact]
    public void The_reader_reads_what_the_daemon_writes()
    {
        Assert.Equal(77u, DpReplyReader.KeepAlive(Replies.KeepAlive(77)));

        var count = DpReplyReader.SessionCount(Replies.SessionCount(9, 4, 3, 1, 1), "/s");
        Assert.Equal((9u, 4u, 3u, 1u, 1u, "/s"), (count.Total, count.Tcp, count.Udp, count.Icmp, count.Other, count.ControlSocket));

        var values = Enumerable.Range(1, 27).Select(i => (ulong)i * 1000).ToArray();
        var counters = DpReplyReader.DeviceCounters(Replies.DeviceCounters(values), "/s");
        Assert.Equal(1000UL, counters.RXPackets);
        Assert.Equal(6000UL, counters.NoWorkloadPackets);
        Assert.Equal(19000UL, counters.TotalSessions);
        Assert.Equal(27000UL, counters.CurLogCaches);
    }

    [Fact]
    public void Sessions_come_back_field_by_field_over_several_datagrams()
    {
        var records = Enumerable.Range(1, 130).Select(i => new SessionRecord(
            (uint)i, 0x1a27f3873a27, false, [10, 10, 10, 66], [10, 10, 10, 88], (ushort)(40000 + i), 5201, 6, 0,
            0x0a0b0c0d0e0f, 0x1a27f3873a27, 10, 20, 3000, 4000, TcpState.Established, TcpState.Established, 12, 3, 1188,
            SessionFlags.Ingress | SessionFlags.MidStream, TimeoutClass.TcpEstablished, PolicyId: (uint)(1000 + i), PolicyAction: DpPolicyAction.Allow)).ToList();
        records.Add(new SessionRecord(999, 0x1a27f3873a27, true, new byte[16] { 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
            new byte[16] { 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 }, 7, 7, 58, 0x8000, 1, 2, 1, 1, 64, 64, TcpState.None, TcpState.None, 1, 1, 4,
            SessionFlags.Tap, TimeoutClass.Icmp));
        var datagrams = Replies.SessionList(records.Select(r => r.ToWire()).ToList());
        Assert.Equal(4, datagrams.Count); // 58 + 58 + 15, then the terminator

        var sessions = new List<DpSession>();
        var more = new List<bool>();
        foreach (var d in datagrams) { sessions.AddRange(DpReplyReader.SessionList(d, "/s", out bool m)); more.Add(m); }
        Assert.Equal([true, true, true, false], more);
        Assert.Equal(131, sessions.Count);

        var s = sessions[0];
        Assert.Equal(1u, s.Id);
        Assert.Equal("1a:27:f3:87:3a:27", s.EndpointMac);
        Assert.Equal(("IPv4", "TCP", (byte)6), (s.Family, s.Protocol, s.ProtocolNumber));
        Assert.Equal("10.10.10.66:40001", s.Client);
        Assert.Equal("10.10.10.88:5201", s.Server);
        Assert.Equal(("0a:0b:0c:0d:0e:0f", "1a:27:f3:87:3a:27"), (s.ClientMac, s.ServerMac));
        Assert.Equal((10u, 20u, 3000u, 4000u), (s.ClientPackets, s.ServerPackets, s.ClientBytes, s.ServerBytes));
        Assert.Equal(("ESTABLISHED", "ESTABLISHED"), (s.ClientState, s.ServerState));
        Assert.Equal(((ushort)3, 12u, (ushort)1188), (s.IdleSeconds, s.AgeSeconds, s.LifeSeconds));
        Assert.Equal((true, false, true), (s.Ingress, s.Tap, s.MidStream));
        Assert.Null(s.IcmpType);
        Assert.Equal((1001u, DpPolicyAction.Allow), (s.PolicyId, s.PolicyAction));

        var v6 = sessions[^1];
        Assert.Equal(("IPv6", "ICMPv6"), (v6.Family, v6.Protocol));
        Assert.Equal("[2001:db8::1]:7", v6.Client);
        Assert.Equal(((byte?)0x80, (byte?)0), (v6.IcmpType, v6.IcmpCode));
        Assert.Equal("", v6.ClientState);
        Assert.True(v6.Tap);
        Assert.Equal((0u, DpPolicyAction.Open), (v6.PolicyId, v6.PolicyAction));
    }

    [Fact]
    public void A_reply_that_breaks_the_layout_is_refused_with_what_is_wrong()
    {
        Assert.Contains("says it is 153 bytes long but is 6",
            Assert.Throws<DatapathProtocolException>(() => DpReplyReader.Header(new byte[] { 3, 0, 0, 0x99, 0, 0 })).Message);
        Assert.Contains("shorter than its 4-byte header", Assert.Throws<DatapathProtocolException>(() => DpReplyReader.Header(new byte[] { 10, 0 })).Message);
        Assert.Contains("expected a session count reply (kind 3), got kind 10",
            Assert.Throws<DatapathProtocolException>(() => DpReplyReader.SessionCount(Replies.KeepAlive(1), "/s")).Message);
        Assert.Contains("not what nvr-dp sends",
            Assert.Throws<DatapathProtocolException>(() => DpReplyReader.State("{\"daemon\": 5}"u8, out _, out _)).Message);
    }

    [Fact]
    public void The_typed_requests_configure_the_same_state_as_the_seeds_messages()
    {
        var seed = new DatapathControlTests.Rig();
        seed.SendSeed();

        var typed = new DatapathControlTests.Rig();
        var nets = new[] { "172.17.0.0/16", "179.20.23.0/24", "10.10.10.0/24", "172.20.166.0/24" }.Select(n => DpInternalNetwork.Parse(n))
            .Concat(new[] { "10.10.10.66/24", "10.10.10.88/24" }.Select(d => DpInternalNetwork.Parse(d, "devip"))).ToList();
        foreach (var request in DpRequests.InternalNetworks(nets)
            .Append(DpRequests.AddServicePort("vth", false))
            .Append(DpRequests.AddMac("vth", "1a:27:f3:87:3a:27", "4e:65:75:56:00:b4", "ff:ff:ff:00:00:b4", null, null))
            .Append(DpRequests.ConfigureMac(["1a:27:f3:87:3a:27"], false)))
            Assert.Empty(typed.Controller.Handle(request));
        Assert.Equal(0, typed.Controller.Rejected);
        Assert.Equal(seed.Controller.State.Describe(), typed.Controller.State.Describe());

        // and the state reply reads back into the same objects the cmdlets show
        var info = DpReplyReader.State(DpReplyReader.JoinState(typed.Controller.Handle(DpRequests.State())), out _, out _);
        Assert.Equal(["vth"], info.ServicePorts);
        Assert.Equal(["172.17.0.0/16", "179.20.23.0/24", "10.10.10.0/24", "172.20.166.0/24", "10.10.10.66/24 devip", "10.10.10.88/24 devip"], info.InternalNetworks);
        var w = Assert.Single(info.Workloads);
        Assert.Equal(("1a:27:f3:87:3a:27", "4e:65:75:56:00:b4", "ff:ff:ff:00:00:b4", "vth", false), (w.Mac, w.UcMac, w.BcMac, w.Interface, w.Tap));
        Assert.Null(w.ProxyMac);
    }

    [Fact]
    public void Add_mac_with_tap_is_one_request_applied_whole_or_not_at_all()
    {
        var rig = new DatapathControlTests.Rig();
        Assert.Empty(rig.Controller.Handle(DpRequests.AddMac("vth", "1a:27:f3:87:3a:27", "4e:65:75:56:00:b4", null, null, false)));
        Assert.False(rig.Controller.State.Tap[TestFrames.ContainerMac]);
        Assert.Empty(rig.Controller.Handle(DpRequests.AddMac("vth", "02:00:00:00:00:01", "02:00:00:00:00:01", null, null, false)));
        Assert.Equal(1, rig.Controller.Rejected);
        Assert.Single(rig.Controller.State.Workloads);
    }

    [Fact]
    public void A_long_internal_network_list_is_chunked_as_the_agent_does_and_swapped_in_at_END()
    {
        var entries = Enumerable.Range(0, 600).Select(i => DpInternalNetwork.Parse($"10.{i >> 8}.{i & 255}.0/24")).ToList();
        var chunks = DpRequests.InternalNetworks(entries);
        Assert.True(chunks.Count >= 3);
        Assert.All(chunks, c => Assert.True(c.Length <= DpRequests.MaxRequestSize));
        var flags = chunks.Select(c => System.Text.Json.JsonDocument.Parse(c).RootElement.GetProperty("ctrl_cfg_internal_net").GetProperty("flag").GetInt32()).ToList();
        Assert.Equal(1, flags[0]);
        Assert.Equal(2, flags[^1]);
        Assert.All(flags.Skip(1).SkipLast(1), f => Assert.Equal(0, f));

        var rig = new DatapathControlTests.Rig();
        for (int i = 0; i < chunks.Count; i++)
        {
            Assert.Empty(rig.Controller.Handle(chunks[i]));
            Assert.Equal(i < chunks.Count - 1 ? 0 : 600, rig.Controller.State.InternalNets.Length);
        }
        Assert.Equal(0, rig.Controller.Rejected);

        Assert.Equal(3, System.Text.Json.JsonDocument.Parse(Assert.Single(DpRequests.InternalNetworks([]))).RootElement
            .GetProperty("ctrl_cfg_internal_net").GetProperty("flag").GetInt32()); // an empty list clears
    }

    [Theory]
    [InlineData("10.10.10.0/24", null, "10.10.10.0", "255.255.255.0")]
    [InlineData("172.17.0.0/16", null, "172.17.0.0", "255.255.0.0")]
    [InlineData("10.10.10.66/24", "devip", "10.10.10.66", "255.255.255.0")]
    [InlineData("0.0.0.0/0", null, "0.0.0.0", "0.0.0.0")]
    [InlineData("192.0.2.7/32", null, "192.0.2.7", "255.255.255.255")]
    public void Internal_networks_parse_into_address_and_mask(string text, string? type, string ip, string mask)
        => Assert.Equal(new DpInternalNetwork(ip, mask, type), DpInternalNetwork.Parse(text, type));

    [Theory]
    [InlineData("10.10.10.66/24", "not a network address")]
    [InlineData("10.10.10.0", "no prefix length")]
    [InlineData("2001:db8::/64", "not IPv4")]
    [InlineData("10.1/8", "not a valid IP address")]
    public void Internal_networks_that_would_never_match_are_refused(string text, string problem)
        => Assert.Contains(problem, Assert.Throws<ArgumentException>(() => DpInternalNetwork.Parse(text)).Message);

    [Theory]
    [InlineData("255.255.255.0", 24)]
    [InlineData("255.255.0.0", 16)]
    [InlineData("0.0.0.0", 0)]
    [InlineData("255.255.255.255", 32)]
    [InlineData("255.0.255.0", null)]
    public void Masks_become_prefix_lengths_when_they_are_one(string mask, int? prefix) => Assert.Equal(prefix, DpRequests.PrefixOf(mask));

    [Fact]
    public void Messages_become_datagrams_strings_and_bytes_as_they_are_hashtables_and_objects_as_JSON_in_order()
    {
        Assert.Equal("{not json"u8.ToArray(), DpMessageJson.ToDatagram("{not json"));
        Assert.Equal(new byte[] { 0xff, 0xfe }, DpMessageJson.ToDatagram(new byte[] { 0xff, 0xfe }));

        var ordered = new OrderedDictionary
        {
            ["ctrl_keep_alive"] = new Hashtable { ["seq_num"] = 5 },
            ["ctrl_cfg_mac"] = new OrderedDictionary { ["tap"] = false, ["macs"] = new object[] { "1a:27:f3:87:3a:27" } },
            ["ctrl_add_mac"] = new OrderedDictionary { ["pips"] = null, ["n"] = 4294967295L, ["x"] = 1.5 },
        };
        Assert.Equal("""{"ctrl_keep_alive":{"seq_num":5},"ctrl_cfg_mac":{"tap":false,"macs":["1a:27:f3:87:3a:27"]},"ctrl_add_mac":{"pips":null,"n":4294967295,"x":1.5}}""",
            Encoding.UTF8.GetString(DpMessageJson.ToDatagram(ordered)));

        var custom = new PSObject();
        custom.Properties.Add(new PSNoteProperty("ctrl_sys_conf", new Hashtable { ["xff_enabled"] = PSObject.AsPSObject(true) }));
        Assert.Equal("""{"ctrl_sys_conf":{"xff_enabled":true}}""", Encoding.UTF8.GetString(DpMessageJson.ToDatagram(custom)));
        Assert.Equal("""{"a":"b"}""", Encoding.UTF8.GetString(DpMessageJson.ToDatagram(PSObject.AsPSObject("""{"a":"b"}"""))));

        Assert.Throws<ArgumentException>(() => DpMessageJson.ToDatagram(DateTime.Now));
        Assert.Throws<ArgumentException>(() => DpMessageJson.ToDatagram(new Hashtable { ["x"] = double.NaN }));
    }

    [Fact]
    public void Datapath_errors_have_their_own_ids()
    {
        Assert.Equal(("NotResponding", ErrorCategory.ConnectionError), NvCmdlet.Classify(new DatapathNotRespondingException("/s")));
        Assert.Equal(("Rejected", ErrorCategory.InvalidData), NvCmdlet.Classify(new DatapathRejectedException("/s", "why")));
        Assert.Equal(("AlreadyRunning", ErrorCategory.ResourceExists), NvCmdlet.Classify(new DatapathAlreadyRunningException("x")));
        Assert.Equal(("StartFailed", ErrorCategory.OpenError), NvCmdlet.Classify(new DatapathStartException("x")));
        Assert.Equal(("StopFailed", ErrorCategory.OperationTimeout), NvCmdlet.Classify(new DatapathStopException("x")));
        Assert.Equal(("BadReply", ErrorCategory.ProtocolError), NvCmdlet.Classify(new DatapathProtocolException("x")));
        Assert.Equal(("NotInstalled", ErrorCategory.NotInstalled), NvCmdlet.Classify(new DatapathNotInstalledException("x")));
        Assert.Equal(("NoReply", ErrorCategory.InvalidResult), NvCmdlet.Classify(new DatapathNoReplyException("x")));
        Assert.Equal("no datapath answers on /tmp/x.sock (it does not exist): start one with Start-Datapath",
            new DatapathNotRespondingException("/tmp/x.sock", "it does not exist").Message);
    }
}
