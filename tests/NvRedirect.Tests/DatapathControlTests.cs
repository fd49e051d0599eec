using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath;
using NvRedirect.Datapath.Control;
using NvRedirect.Datapath.Engine;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>The control protocol: JSON commands in, state and binary replies out (no sockets: fake service ports).</summary>
public class DatapathControlTests
{
    // The seed's four messages byte for byte as its Python client sends them (json.dumps defaults).
    internal const string SeedInternalNet = """{"ctrl_cfg_internal_net": {"flag": 3, "subnet_addr": [{"ip": "172.17.0.0", "mask": "255.255.0.0"}, {"ip": "179.20.23.0", "mask": "255.255.255.0"}, {"ip": "10.10.10.0", "mask": "255.255.255.0"}, {"ip": "172.20.166.0", "mask": "255.255.255.0"}, {"ip": "10.10.10.66", "mask": "255.255.255.0", "iptype": "devip"}, {"ip": "10.10.10.88", "mask": "255.255.255.0", "iptype": "devip"}]}}""";
    internal const string SeedServicePort = """{"ctrl_add_srvc_port": {"iface": "vth", "jumboframe": false}}""";
    internal const string SeedAddMac = """{"ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27", "ucmac": "4e:65:75:56:00:b4", "bcmac": "ff:ff:ff:00:00:b4", "oldmac": "", "pmac": "", "pips": null}}""";
    internal const string SeedCfgMac = """{"ctrl_cfg_mac": {"tap": false, "macs": ["1a:27:f3:87:3a:27"]}}""";

    internal sealed class Rig
    {
        public readonly Logger Log = new(null, false, keepInMemory: true);
        public readonly ManualClock Clock = new();
        public readonly PacketEngine Engine;
        public readonly List<FakeServicePort> Ports = [];
        public readonly Controller Controller;

        /// <summary>A controller on fake ports; <paramref name="strict"/> as nvr-dp --strict (the module's default, which
        /// most tests here check), false for NeuVector dp's semantics (nvr-dp started by hand or -AgentCompatible).</summary>
        public Rig(int connections = 16384, bool strict = true)
        {
            Engine = new PacketEngine(1024, Clock, Log, connections);
            Controller = new Controller(Engine, FakeServicePort.Opener(Ports, "vth", "vth2"), Log, strict);
        }

        public List<byte[]> Send(string json) => Controller.Handle(Encoding.UTF8.GetBytes(json));

        public void SendSeed()
        {
            foreach (var m in new[] { SeedInternalNet, SeedServicePort, SeedAddMac, SeedCfgMac }) Assert.Empty(Send(m));
            Assert.Equal(0, Controller.Rejected);
        }

        public FrameVerdict Frame(byte[] frame)
            => Engine.Processor.Process(frame, frame.Length, Engine.Workloads.Current, Clock.NowSeconds, out _);
    }

    private static byte[] EgressPing(ushort id = 1) => TestFrames.Icmp(TestFrames.HostMac, TestFrames.UnicastAlias, TestFrames.ContainerIp, TestFrames.HostIp, 8, id);

    [Fact]
    public void The_seed_messages_as_its_python_client_sends_them_configure_the_datapath()
    {
        var rig = new Rig();
        rig.SendSeed();
        var state = rig.Controller.State;

        Assert.Equal("vth", state.ServicePort);
        var port = Assert.Single(rig.Ports);
        Assert.True(port.Started);
        Assert.Same(port, rig.Engine.Port);

        var w = Assert.Single(state.Workloads.Values);
        Assert.Equal(TestFrames.ContainerMac, w.Mac);
        Assert.Equal(TestFrames.UnicastAlias, w.UnicastAlias);
        Assert.Equal(TestFrames.BroadcastAlias, w.BroadcastAlias);
        Assert.Equal("vth", w.Interface);
        Assert.Empty(w.ProxyMeshIPs);
        Assert.False(w.State.Tap);
        Assert.Equal(6, state.InternalNets.Length);
        Assert.Equal(new InternalSubnet(0xac110000, 0xffff0000, null), state.InternalNets[0]);
        Assert.Equal(new InternalSubnet(0x0a0a0a58, 0xffffff00, "devip"), state.InternalNets[5]);

        // the published table finds the workload under all three MACs
        var table = rig.Engine.Workloads.Current;
        foreach (var mac in new[] { TestFrames.ContainerMac, TestFrames.UnicastAlias, TestFrames.BroadcastAlias })
            Assert.True(table.TryGet(mac, out var found) && found.Mac == TestFrames.ContainerMac);
        // and the seed's host-device entries, which are not network addresses, are noted in the log
        Assert.Contains(rig.Log.Lines, l => l.Contains("10.10.10.66 is not the network address"));
    }

    [Fact]
    public void A_new_mac_starts_in_tap_mode_and_cfg_mac_tap_false_makes_it_inline()
    {
        var rig = new Rig();
        Assert.Empty(rig.Send(SeedAddMac));
        Assert.Equal(FrameVerdict.Tap, rig.Frame(EgressPing()));
        Assert.Empty(rig.Send(SeedCfgMac));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(EgressPing()));
        Assert.Empty(rig.Send("""{"ctrl_cfg_mac": {"tap": true, "macs": ["4e:65:75:56:00:b4"]}}""")); // found by its alias too
        Assert.Equal(FrameVerdict.Tap, rig.Frame(EgressPing()));
        Assert.Empty(rig.Send("""{"ctrl_cfg_mac": {"macs": ["1a:27:f3:87:3a:27"]}}"""));            // no "tap": unchanged
        Assert.True(rig.Controller.State.Tap[TestFrames.ContainerMac]);
    }

    [Fact]
    public void Several_commands_in_one_datagram_run_in_order()
    {
        var rig = new Rig();
        var replies = rig.Send("""{"ctrl_keep_alive": {"seq_num": 1}, "ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27", "ucmac": "4e:65:75:56:00:b4"}, "ctrl_cfg_mac": {"tap": false, "macs": ["1a:27:f3:87:3a:27"]}, "ctrl_keep_alive": {"seq_num": 2}}""");
        Assert.Equal(2, replies.Count);
        Assert.Equal(Replies.KeepAlive(1), replies[0]);
        Assert.Equal(Replies.KeepAlive(2), replies[1]);
        Assert.False(rig.Controller.State.Tap[TestFrames.ContainerMac]);
        Assert.Equal(FrameVerdict.Forward, rig.Frame(EgressPing()));
    }

    [Fact]
    public void Keep_alive_answers_with_its_sequence_number()
    {
        var rig = new Rig();
        Assert.Equal(Convert.FromHexString("0a00000800000007"), Assert.Single(rig.Send("""{"ctrl_keep_alive": {"seq_num": 7}}""")));
        Assert.Equal(Convert.FromHexString("0a000008ffffffff"), Assert.Single(rig.Send("""{"ctrl_keep_alive": {"seq_num": 4294967295}}""")));
    }

    [Fact]
    public void Chunked_internal_net_is_swapped_in_only_at_END()
    {
        var rig = new Rig();
        Assert.Empty(rig.Send("""{"ctrl_cfg_internal_net": {"flag": 3, "subnet_addr": [{"ip": "192.0.2.0", "mask": "255.255.255.0"}]}}"""));
        var before = rig.Controller.State.InternalNets;

        Assert.Empty(rig.Send("""{"ctrl_cfg_internal_net": {"flag": 1, "subnet_addr": [{"ip": "10.10.10.0", "mask": "255.255.255.0"}, {"ip": "172.17.0.0", "mask": "255.255.0.0"}]}}"""));
        Assert.Same(before, rig.Controller.State.InternalNets);
        Assert.Empty(rig.Send("""{"ctrl_cfg_internal_net": {"flag": 0, "subnet_addr": [{"ip": "172.20.166.0", "mask": "255.255.255.0"}]}}"""));
        Assert.Same(before, rig.Controller.State.InternalNets);
        Assert.Equal(3, rig.Controller.State.PendingInternalNets!.Count);
        Assert.Empty(rig.Send("""{"ctrl_cfg_internal_net": {"flag": 2, "subnet_addr": [{"ip": "179.20.23.0", "mask": "255.255.255.0"}]}}"""));

        Assert.Equal(new uint[] { 0x0a0a0a00, 0xac110000, 0xac14a600, 0xb3141700 },
            rig.Controller.State.InternalNets.Select(n => n.Ip).ToArray());
        Assert.Null(rig.Controller.State.PendingInternalNets);

        // a continuation without a START is refused and changes nothing
        Assert.Empty(rig.Send("""{"ctrl_cfg_internal_net": {"flag": 2, "subnet_addr": []}}"""));
        Assert.Equal(1, rig.Controller.Rejected);
        Assert.Equal(4, rig.Controller.State.InternalNets.Length);
        // an empty single message empties the table
        Assert.Empty(rig.Send("""{"ctrl_cfg_internal_net": {"flag": 3, "subnet_addr": []}}"""));
        Assert.Empty(rig.Controller.State.InternalNets);
    }

    [Fact]
    public void Count_and_list_replies_reflect_the_session_table()
    {
        var rig = new Rig();
        rig.SendSeed();
        rig.Frame(EgressPing(1));
        rig.Frame(TestFrames.Tcp(TestFrames.HostMac, TestFrames.UnicastAlias, TestFrames.ContainerIp, TestFrames.HostIp, 40000, 80, 0x02));
        rig.Frame(TestFrames.Tcp(TestFrames.UnicastAlias, TestFrames.HostMac, TestFrames.HostIp, TestFrames.ContainerIp, 40001, 8080, 0x02));
        rig.Frame(TestFrames.Udp(TestFrames.HostMac, TestFrames.UnicastAlias, TestFrames.ContainerIp, TestFrames.HostIp, 5353, 53));

        var count = Assert.Single(rig.Send("""{"ctrl_count_session": {}}"""));
        Assert.Equal(Replies.SessionCount(4, 2, 1, 1, 0), count);

        var list = rig.Send("""{"ctrl_list_session": {}}""");
        Assert.Equal(2, list.Count);
        Assert.Equal(8 + 4 * 140, list[0].Length);
        Assert.Equal(Convert.FromHexString("0200000800000000"), list[1]);
        var ingress = Enumerable.Range(0, 4).Select(i => list[0].AsSpan(8 + 140 * i, 140).ToArray())
            .Single(s => BinaryPrimitives.ReadUInt16BigEndian(s.AsSpan(58)) == 8080);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(ingress.AsSpan(118)) & 1);                 // DPSESS_FLAG_INGRESS
        Assert.Equal("1a27f3873a27", Convert.ToHexString(ingress, 4, 6).ToLowerInvariant());            // EPMAC = the real MAC

        Assert.Empty(rig.Send("""{"ctrl_clear_session": {"filter_id": 0}}"""));
        Assert.Equal(Replies.SessionCount(0, 0, 0, 0, 0), Assert.Single(rig.Send("""{"ctrl_count_session": {}}""")));
        Assert.Equal(Convert.FromHexString("0200000800000000"), Assert.Single(rig.Send("""{"ctrl_list_session": {}}""")));
    }

    [Fact]
    public void Device_counters_report_what_the_datapath_saw()
    {
        var rig = new Rig();
        rig.SendSeed();
        rig.Frame(EgressPing(1));
        rig.Frame(TestFrames.Tcp(TestFrames.HostMac, TestFrames.UnicastAlias, TestFrames.ContainerIp, TestFrames.HostIp, 40000, 80, 0x04)); // RST, no session
        rig.Frame(TestFrames.Udp(TestFrames.HostMac, 0x4e6575560999, TestFrames.ContainerIp, TestFrames.HostIp, 1, 2));
        var b = Assert.Single(rig.Send("""{"ctrl_counter_device": {}}"""));
        Assert.Equal(4 + DeviceCounterLayout.Size, b.Length);
        ulong At(DeviceCounter c) => BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(4 + 8 * (int)c));
        Assert.Equal(3UL, At(DeviceCounter.RXPackets));
        Assert.Equal(1UL, At(DeviceCounter.NoWorkloadPackets));
        Assert.Equal(2UL, At(DeviceCounter.IPv4Packets));
        Assert.Equal(1UL, At(DeviceCounter.TCPPackets));
        Assert.Equal(1UL, At(DeviceCounter.TCPNoSessionPackets));
        Assert.Equal(1UL, At(DeviceCounter.ICMPPackets));
        Assert.Equal(1UL, At(DeviceCounter.TotalSessions));
        Assert.Equal(1UL, At(DeviceCounter.ICMPSessions));
    }

    [Fact]
    public void Clear_session_by_id_removes_only_that_session()
    {
        var rig = new Rig();
        rig.SendSeed();
        rig.Frame(EgressPing(1));
        rig.Frame(EgressPing(2));
        var ids = rig.Engine.Sessions.Snapshot(rig.Clock.NowSeconds).Select(s => s.Id).ToArray();
        Assert.Equal(2, ids.Length);
        Assert.Empty(rig.Send("{\"ctrl_clear_session\": {\"filter_id\": " + ids[0] + "}}"));
        Assert.Equal(ids[1], Assert.Single(rig.Engine.Sessions.Snapshot(rig.Clock.NowSeconds)).Id);
    }

    [Fact]
    public void Readding_with_oldmac_keeps_tap_and_counters_and_replaces_the_aliases()
    {
        var rig = new Rig();
        rig.SendSeed();
        rig.Frame(EgressPing());
        var state = rig.Controller.State.Workloads[TestFrames.ContainerMac].State;
        Assert.Equal(1, state.PacketsOut);

        Assert.Empty(rig.Send("""{"ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:28", "ucmac": "4e:65:75:56:00:b5", "bcmac": "ff:ff:ff:00:00:b5", "oldmac": "1a:27:f3:87:3a:27", "pmac": "", "pips": [{"ip": "192.0.2.9"}]}}"""));
        var w = Assert.Single(rig.Controller.State.Workloads.Values);
        Assert.Equal(0x1a27f3873a28UL, w.Mac);
        Assert.Same(state, w.State);
        Assert.False(w.State.Tap);
        Assert.Equal(new[] { 0xc0000209u }, w.ProxyMeshIPs);
        var table = rig.Engine.Workloads.Current;
        Assert.False(table.TryGet(TestFrames.UnicastAlias, out _));
        Assert.False(table.TryGet(TestFrames.ContainerMac, out _));
        Assert.True(table.TryGet(0x4e65755600b5, out _));
        Assert.Equal(FrameVerdict.NoWorkload, rig.Frame(EgressPing()));
    }

    [Fact]
    public void Del_mac_removes_the_workload_and_its_sessions()
    {
        var rig = new Rig();
        rig.SendSeed();
        Assert.Empty(rig.Send("""{"ctrl_add_mac": {"iface": "vth", "mac": "02:00:00:00:00:01", "ucmac": "4e:65:75:56:00:01", "bcmac": "", "oldmac": "", "pmac": "", "pips": null}}"""));
        rig.Frame(EgressPing(1));
        rig.Frame(TestFrames.Icmp(TestFrames.HostMac, 0x4e6575560001, 0x0a0a0a01, TestFrames.HostIp, 8, 9));
        Assert.Equal(2, rig.Engine.Sessions.Count);

        Assert.Empty(rig.Send("""{"ctrl_del_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27"}}"""));
        Assert.False(rig.Controller.State.Workloads.ContainsKey(TestFrames.ContainerMac));
        Assert.Equal(FrameVerdict.NoWorkload, rig.Frame(EgressPing(1)));
        var left = Assert.Single(rig.Engine.Sessions.Snapshot(rig.Clock.NowSeconds));
        Assert.Equal(0x020000000001UL, left.EndpointMac);

        // deleting an unknown MAC is a no-op, not an error
        Assert.Empty(rig.Send("""{"ctrl_del_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27"}}"""));
        Assert.Equal(0, rig.Controller.Rejected);
    }

    [Fact]
    public void Cfg_mac_skips_unknown_macs_without_failing()
    {
        var rig = new Rig();
        rig.SendSeed();
        Assert.Empty(rig.Send("""{"ctrl_cfg_mac": {"tap": true, "macs": ["02:00:00:00:00:99", "1a:27:f3:87:3a:27"], "apps": [{"port": 8080, "ip_proto": 6, "app": 1001, "server": 0}]}}"""));
        Assert.Equal(0, rig.Controller.Rejected);
        Assert.True(rig.Controller.State.Tap[TestFrames.ContainerMac]);
        Assert.Equal(new AppPort(8080, 6, 1001, 0), Assert.Single(rig.Controller.State.Workloads[TestFrames.ContainerMac].Apps));
        Assert.Contains(rig.Log.Lines, l => l.Contains("not registered, skipped: 02:00:00:00:00:99"));
    }

    [Fact]
    public void Global_toggles_and_debug_categories_are_accepted()
    {
        var rig = new Rig();
        Assert.Empty(rig.Send("""{"ctrl_sys_conf": {"xff_enabled": true}, "ctrl_disable_net_policy": {"disable_net_policy": true}, "ctrl_detect_unmanaged_wl": {"detect_unmanaged_wl": true}, "ctrl_enable_icmp_policy": {"enable_icmp_policy": true}, "ctrl_strict_group_mode": {"strict_group_mode": true}, "ctrl_set_debug": {"categories": ["ctrl", "packet"]}}"""));
        var s = rig.Controller.State;
        Assert.True(s.XffEnabled && s.DisableNetPolicy && s.DetectUnmanagedWorkloads && s.EnableIcmpPolicy && s.StrictGroupMode);
        Assert.Equal(new[] { "ctrl", "packet" }, s.DebugCategories);
        Assert.Empty(rig.Send("""{"ctrl_sys_conf": {}}""")); // absent means false, as in NeuVector
        Assert.False(rig.Controller.State.XffEnabled);
    }

    [Fact]
    public void Service_port_add_is_idempotent_and_del_closes_it()
    {
        var rig = new Rig();
        Assert.Empty(rig.Send(SeedServicePort));
        Assert.Empty(rig.Send(SeedServicePort));
        var port = Assert.Single(rig.Ports);
        Assert.Equal(0, rig.Controller.Rejected);

        Assert.Empty(rig.Send("""{"ctrl_add_srvc_port": {"iface": "vth2"}}"""));   // another port while one is open
        Assert.Equal(1, rig.Controller.Rejected);
        Assert.Single(rig.Ports);

        Assert.Empty(rig.Send("""{"ctrl_del_srvc_port": {"iface": "vth"}}"""));
        Assert.True(port.Disposed);
        Assert.Null(rig.Engine.Port);
        Assert.Null(rig.Controller.State.ServicePort);
        Assert.Empty(rig.Send("""{"ctrl_del_srvc_port": {"iface": "vth"}}"""));   // nothing open: a no-op
        Assert.Equal(1, rig.Controller.Rejected);

        // del then add in one datagram moves to the other port
        Assert.Empty(rig.Send(SeedServicePort));
        Assert.Empty(rig.Send("""{"ctrl_del_srvc_port": {"iface": "vth"}, "ctrl_add_srvc_port": {"iface": "vth2"}}"""));
        Assert.Equal("vth2", rig.Engine.Port!.Interface);
        Assert.True(rig.Ports[1].Disposed);
    }

    [Fact]
    public void A_port_opened_for_a_request_that_is_then_rejected_is_closed_again()
    {
        var rig = new Rig();
        Assert.Empty(rig.Send("""{"ctrl_add_srvc_port": {"iface": "vth"}, "ctrl_no_such_command": {}}"""));
        var port = Assert.Single(rig.Ports);
        Assert.False(port.Started);
        Assert.True(port.Disposed);
        Assert.Null(rig.Engine.Port);
        Assert.Null(rig.Controller.State.ServicePort);
    }

    public static IEnumerable<object[]> BadInput() => new (string Json, string Reason)[]
    {
        ("not json", "malformed JSON"),
        ("""{"ctrl_keep_alive": {"seq_num": 1}""", "malformed JSON"),
        ("""{"ctrl_keep_alive": {"seq_num": 1}} trailing""", "malformed JSON"),
        ("[]", "must be a JSON object"),
        ("\"ctrl_keep_alive\"", "must be a JSON object"),
        ("""{"ctrl_keep_alive": 5}""", "expects an object"),
        ("""{"ctrl_unknown": {}}""", "unknown command"),
        // the agent's other messages are accepted, but not in any shape
        ("""{"ctrl_cfg_specip_net": {"flag": 3, "subnet_addr": [{"ip": "10.0.0.0", "mask": "255.0.0.0"}]}}""", "\"iptype\" is missing"),
        ("""{"ctrl_cfg_specip_net": {"flag": 2, "subnet_addr": []}}""", "no list was started"),
        ("""{"ctrl_add_tap_port": {"netns": "/proc/1/ns/net", "iface": "eth0"}}""", "\"epmac\" is missing"),
        ("""{"ctrl_add_tap_port": {"netns": "", "iface": "eth0", "epmac": "1a:27:f3:87:3a:27"}}""", "\"netns\" is empty"),
        ("""{"ctrl_del_tap_port": {"netns": "/proc/1/ns/net", "iface": "a/b"}}""", "not an interface name"),
        ("""{"ctrl_add_nfq_port": {"netns": "/proc/1/ns/net", "iface": "eth0", "qnum": 70000, "epmac": "1a:27:f3:87:3a:27"}}""", "\"qnum\" must be an integer from 0 to 65535"),
        ("""{"ctrl_add_port_pair": {"vex_iface": "vex1", "epmac": "1a:27:f3:87:3a:27"}}""", "\"vin_iface\" is missing"),
        ("""{"ctrl_cfg_nbe": {"macs": [], "nbe": true}}""", "lists no workload"),
        ("""{"ctrl_cfg_nbe": {"macs": ["1a:27:f3:87:3a:27"], "nbe": 1}}""", "\"nbe\" must be true or false"),
        ("""{"ctrl_cfg_set_fqdn": {"fqdn_ips": ["192.0.2.1"]}}""", "\"fqdn_name\" is missing"),
        ("""{"ctrl_cfg_set_fqdn": {"fqdn_name": "a.example", "fqdn_ips": ["10.1"]}}""", "not an IPv4 or IPv6 address"),
        ("""{"ctrl_cfg_del_fqdn": {"names": [1]}}""", "\"names\" must hold names"),
        ("""{"ctrl_cfg_dlp": {"flag": 3, "mac": ["nope"]}}""", "not a MAC address"),
        ("""{"ctrl_refresh_app": []}""", "expects an object"),
        ("""{"ctrl_stats_macs": {}}""", "\"macs\" is missing"),
        ("""{"ctrl_cfg_policy": {"cmd": 1}}""", "\"flag\" is missing"),
        ("""{"ctrl_cfg_policy": {"cmd": 4, "flag": 3, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": []}}""", "\"cmd\""),
        ("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 3, "mac": ["02:00:00:00:00:99"], "rules": []}}""", "not a registered workload"),
        ("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 2, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": []}}""", "none was started"),
        ("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 8, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": []}}""", "\"defact\""),
        ("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 1, "sip": "10.10.10.9", "sipr": "10.10.10.1", "dip": "10.10.10.2", "port": 80, "proto": 6, "action": 2, "ingress": true}]}}""", "\"sipr\" 10.10.10.1 is below"),
        ("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 1, "sip": "10.10.10.1", "dip": "10.10.10.2", "port": 90, "portr": 80, "proto": 6, "action": 2, "ingress": true}]}}""", "\"portr\" 80 is below"),
        ("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 1, "sip": "10.10.10.1", "dip": "10.10.10.2", "port": 80, "proto": 6, "action": 9, "ingress": true}]}}""", "\"action\""),
        ("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 1, "sip": "10.10.10.1", "dip": "10.10.10.2", "port": 80, "proto": 6, "action": 2}]}}""", "\"ingress\" is missing"),
        ("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 1, "sip": "10.10.10.1", "dip": "0.0.0.0", "port": 80, "proto": 6, "action": 2, "ingress": false, "fqdn": "example.org"}]}}""", "\"fqdn\" are not supported"),
        ("""{"ctrl_cfg_policy_addr": {"flag": 0, "subnet_addr": []}}""", "no list was started"),
        ("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 7, "dir": 0, "mac": ["1a:27:f3:87:3a:27"], "rules": []}}""", "polices no direction"),
        ("""{"nvr_get_policy": {"macs": ["02:00:00:00:00:99"]}}""", "not a registered workload"),
        ("""{"ctrl_keep_alive": {}}""", "\"seq_num\" is missing"),
        ("""{"ctrl_keep_alive": {"seq_num": "1"}}""", "\"seq_num\" must be an integer"),
        ("""{"ctrl_keep_alive": {"seq_num": -1}}""", "\"seq_num\" must be an integer"),
        ("""{"ctrl_keep_alive": {"seq_num": 1.5}}""", "\"seq_num\" must be an integer"),
        ("""{"ctrl_keep_alive": {"seq_num": 4294967296}}""", "\"seq_num\" must be an integer"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "zz:27:f3:87:3a:27"}}""", "\"mac\" is not a MAC address"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a"}}""", "\"mac\" is not a MAC address"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "1a-27-f3-87-3a-27"}}""", "\"mac\" is not a MAC address"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:270"}}""", "\"mac\" is not a MAC address"),
        ("""{"ctrl_add_mac": {"iface": "vth"}}""", "\"mac\" is missing"),
        ("""{"ctrl_add_mac": {"mac": "02:00:00:00:00:01"}}""", "\"iface\" is missing"),
        ("""{"ctrl_add_mac": {"iface": 7, "mac": "02:00:00:00:00:01"}}""", "\"iface\" must be a string"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "02:00:00:00:00:01", "ucmac": "02:00:00:00:00:01"}}""", "must differ from \"mac\""),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "02:00:00:00:00:01", "ucmac": "4e:65:75:56:00:b4"}}""", "already registered to workload 1a:27:f3:87:3a:27"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "4e:65:75:56:00:b4", "ucmac": "4e:65:75:56:00:01"}}""", "already registered to workload 1a:27:f3:87:3a:27"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "03:00:00:00:00:01"}}""", "not a unicast address"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "00:00:00:00:00:00"}}""", "not a unicast address"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "02:00:00:00:00:01", "pips": {"ip": "10.0.0.1"}}}""", "\"pips\" must be an array"),
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "02:00:00:00:00:01", "pips": [{"ip": "10.1"}]}}""", "\"ip\" is not a dotted-quad IPv4 address"),
        ("""{"ctrl_cfg_mac": {"tap": false, "macs": "1a:27:f3:87:3a:27"}}""", "\"macs\" must be an array"),
        ("""{"ctrl_cfg_mac": {"tap": false, "macs": [1]}}""", "\"macs\" must hold MAC strings"),
        ("""{"ctrl_cfg_mac": {"tap": false, "macs": ["nope"]}}""", "not a MAC address"),
        ("""{"ctrl_cfg_mac": {"tap": "true", "macs": ["1a:27:f3:87:3a:27"]}}""", "\"tap\" must be true or false"),
        ("""{"ctrl_cfg_mac": {"tap": 1, "macs": ["1a:27:f3:87:3a:27"]}}""", "\"tap\" must be true or false"),
        ("""{"ctrl_cfg_mac": {"tap": true}}""", "\"macs\" is missing"),
        ("""{"ctrl_cfg_mac": {"macs": ["1a:27:f3:87:3a:27"], "apps": [{"port": 70000, "ip_proto": 6, "app": 1, "server": 0}]}}""", "\"port\" must be an integer from 0 to 65535"),
        ("""{"ctrl_cfg_internal_net": {"flag": 4, "subnet_addr": []}}""", "\"flag\" must be an integer from 0 to 3"),
        ("""{"ctrl_cfg_internal_net": {"subnet_addr": []}}""", "\"flag\" is missing"),
        ("""{"ctrl_cfg_internal_net": {"flag": 3}}""", "\"subnet_addr\" is missing"),
        ("""{"ctrl_cfg_internal_net": {"flag": 3, "subnet_addr": [{"ip": "10.1", "mask": "255.0.0.0"}]}}""", "\"ip\" is not a dotted-quad"),
        ("""{"ctrl_cfg_internal_net": {"flag": 3, "subnet_addr": [{"ip": "10.0.0.0"}]}}""", "\"mask\" is missing"),
        ("""{"ctrl_cfg_internal_net": {"flag": 3, "subnet_addr": [{"ip": "10.0.0.256", "mask": "255.0.0.0"}]}}""", "\"ip\" is not a dotted-quad"),
        ("""{"ctrl_cfg_internal_net": {"flag": 2, "subnet_addr": []}}""", "no list was started"),
        ("""{"ctrl_del_srvc_port": {"iface": "vth"}, "ctrl_add_srvc_port": {"iface": "nosuch"}}""", "cannot open service port nosuch"),
        ("""{"ctrl_add_srvc_port": {"iface": "a/b"}}""", "not an interface name"),
        ("""{"ctrl_add_srvc_port": {"iface": "vth", "jumboframe": "no"}}""", "\"jumboframe\" must be true or false"),
        ("""{"ctrl_add_srvc_port": {"iface": "vth2"}}""", "already serving vth"),
        ("""{"ctrl_del_srvc_port": {"iface": "vth2"}}""", "the service port is vth, not vth2"),
        ("""{"ctrl_clear_session": {}}""", "\"filter_id\" is missing"),
        ("""{"ctrl_count_session": []}""", "expects an object"),
        ("""{"ctrl_sys_conf": {"xff_enabled": "yes"}}""", "\"xff_enabled\" must be true or false"),
        ("""{"ctrl_strict_group_mode": {"strict_group_mode": 1}}""", "\"strict_group_mode\" must be true or false"),
        ("""{"ctrl_set_debug": {"categories": ["verbose"]}}""", "unknown debug category"),
        ("""{"ctrl_set_debug": {"categories": "all"}}""", "\"categories\" must be an array"),
        // one good command and one bad one: neither is applied
        ("""{"ctrl_add_mac": {"iface": "vth", "mac": "02:00:00:00:00:01", "ucmac": "4e:65:75:56:00:01"}, "ctrl_cfg_mac": {"macs": "x"}}""", "\"macs\" must be an array"),
        ("""{"ctrl_cfg_internal_net": {"flag": 3, "subnet_addr": []}, "ctrl_keep_alive": {"seq_num": true}}""", "\"seq_num\" must be an integer"),
        ("""{"ctrl_del_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27"}, "bogus": 1}""", "unknown command"),
        (new string('[', 100) + new string(']', 100), "malformed JSON"),
    }.Select(c => new object[] { c.Json, c.Reason });

    [Theory]
    [MemberData(nameof(BadInput))]
    public void Bad_input_is_logged_with_its_reason_and_changes_nothing(string json, string reason)
    {
        var rig = new Rig();
        rig.SendSeed();
        rig.Frame(EgressPing());
        var before = rig.Controller.State.Describe();
        var table = rig.Engine.Workloads.Current;
        var port = (FakeServicePort)rig.Engine.Port!;
        int sessions = rig.Engine.Sessions.Count;
        int ports = rig.Ports.Count;

        Assert.Empty(rig.Send(json));

        Assert.Equal(1, rig.Controller.Rejected);
        Assert.Contains(rig.Log.Lines, l => l.Contains("request rejected") && l.Contains(reason));
        Assert.Equal(before, rig.Controller.State.Describe());
        Assert.Same(table, rig.Engine.Workloads.Current);
        Assert.Same(port, rig.Engine.Port);
        Assert.False(port.Disposed);
        Assert.Equal(sessions, rig.Engine.Sessions.Count);
        Assert.All(rig.Ports.Skip(ports), p => Assert.True(p.Disposed && !p.Started));
        Assert.False(rig.Controller.State.Tap[TestFrames.ContainerMac]);
        // and the controller still works
        Assert.Equal(Replies.KeepAlive(9), Assert.Single(rig.Send("""{"ctrl_keep_alive": {"seq_num": 9}}""")));
    }

    [Fact]
    public void Invalid_utf8_and_oversized_datagrams_are_rejected()
    {
        var rig = new Rig();
        Assert.Empty(rig.Controller.Handle([(byte)'{', (byte)'"', 0xff, 0xfe, (byte)'"', (byte)':', (byte)'1', (byte)'}']));
        Assert.Equal(1, rig.Controller.Rejected);
        Assert.Contains(rig.Log.Lines, l => l.Contains("not valid UTF-8"));

        string keepAlive = """{"ctrl_keep_alive": {"seq_num": 5}}""";
        var exactly = Encoding.UTF8.GetBytes(keepAlive.PadRight(Controller.MaxRequestSize));
        Assert.Single(rig.Controller.Handle(exactly));
        var over = Encoding.UTF8.GetBytes(keepAlive.PadRight(Controller.MaxRequestSize + 1));
        Assert.Empty(rig.Controller.Handle(over));
        Assert.Equal(2, rig.Controller.Rejected);
        Assert.Contains(rig.Log.Lines, l => l.Contains("exceeds the 8192-byte limit"));
    }

    [Fact]
    public void Mac_and_ipv4_parsers_accept_what_ether_aton_and_dotted_quads_allow_only()
    {
        Assert.Equal(0x010203040506UL, Fields.ParseMac("1:2:3:4:5:6"));
        Assert.Equal(0x4e65755600b4UL, Fields.ParseMac("4E:65:75:56:00:B4"));
        Assert.Null(Fields.ParseMac("4e:65:75:56:00:b4:00"));
        Assert.Null(Fields.ParseMac("4e:65:75:56::b4"));
        Assert.Null(Fields.ParseMac(" 4e:65:75:56:00:b4"));
        Assert.Equal(0x0a0a0a42u, Fields.ParseIPv4("10.10.10.66"));
        Assert.Null(Fields.ParseIPv4("10.10.10"));
        Assert.Null(Fields.ParseIPv4("10.10.10.66 "));
        Assert.Null(Fields.ParseIPv4("0x0a.10.10.66"));
        Assert.Null(Fields.ParseIPv4("-1.10.10.66"));
    }
}
