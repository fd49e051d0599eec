using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Text.Json;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Packets;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath.Engine;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>Synthetic IPv6 frames with correct TCP/UDP/ICMPv6 checksums, optionally behind extension headers.</summary>
internal static class TestFrames6
{
    public static readonly byte[] Host = Address("fd00:10::66"), Container = Address("fd00:10::88");

    public static byte[] Address(string text) => IPAddress.Parse(text).GetAddressBytes();

    /// <summary>An IPv6 frame carrying <paramref name="l4"/> as <paramref name="protocol"/>; <paramref name="extensions"/> are
    /// (next-header code, body) pairs placed before it, each body padded to a multiple of 8 with its length byte set.</summary>
    public static byte[] Ip6(ulong dst, ulong src, byte[] srcIp, byte[] dstIp, byte protocol, byte[] l4, params (byte Code, byte[] Body)[] extensions)
    {
        var ext = new List<byte>();
        for (int i = 0; i < extensions.Length; i++)
        {
            byte next = i + 1 < extensions.Length ? extensions[i + 1].Code : protocol;
            var body = extensions[i].Body;
            if (extensions[i].Code == 44) { ext.Add(next); ext.Add(0); ext.AddRange(body); continue; } // fragment: 8 bytes, body is its 6 last bytes
            int length = (body.Length + 2 + 7) / 8 * 8;
            var h = new byte[length];
            h[0] = next;
            h[1] = (byte)(length / 8 - 1);
            body.CopyTo(h, 2);
            ext.AddRange(h);
        }
        var f = new byte[14 + 40 + ext.Count + l4.Length];
        TestFrames.WriteMac(f, dst);
        TestFrames.WriteMac(f.AsSpan(6), src);
        f[12] = 0x86; f[13] = 0xdd;
        var ip = f.AsSpan(14);
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(ext.Count + l4.Length));
        ip[6] = extensions.Length > 0 ? extensions[0].Code : protocol;
        ip[7] = 64;
        srcIp.CopyTo(ip[8..]);
        dstIp.CopyTo(ip[24..]);
        ext.ToArray().CopyTo(ip[40..]);
        l4.CopyTo(ip[(40 + ext.Count)..]);
        // the checksum over the pseudo-header (addresses, upper-layer length, next header) and the upper-layer packet
        int sumAt = protocol switch { 6 => 16, 17 => 6, 58 => 2, _ => -1 };
        if (sumAt >= 0)
        {
            int l4At = 14 + 40 + ext.Count;
            ulong sum = Checksum.Accumulate(f.AsSpan(14 + 8, 32), 0);
            sum += BinaryPrimitives.ReverseEndianness((ushort)l4.Length) + (ulong)BinaryPrimitives.ReverseEndianness((ushort)protocol);
            sum = Checksum.Accumulate(f.AsSpan(l4At), sum);
            BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(l4At + sumAt), (ushort)~Checksum.Fold(sum));
        }
        return f;
    }

    public static byte[] Tcp(ulong dst, ulong src, byte[] srcIp, byte[] dstIp, ushort sport, ushort dport, byte flags, int payload = 0, uint seq = 1, uint ack = 0,
        params (byte Code, byte[] Body)[] extensions)
        => Ip6(dst, src, srcIp, dstIp, 6, TestFrames.TcpSegment(sport, dport, flags, payload, seq, ack), extensions);

    public static byte[] Icmp(ulong dst, ulong src, byte[] srcIp, byte[] dstIp, byte type, ushort id = 7, ushort sequence = 1)
    {
        var l4 = new byte[8 + 24];
        l4[0] = type;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(6), sequence);
        if (type is 135 or 136) Container.CopyTo(l4, 8); // NS/NA: the target address
        return Ip6(dst, src, srcIp, dstIp, 58, l4);
    }
}

/// <summary>
/// IPv6 in the datapath: the parser (extension headers, fragments, malformed chains; golden bytes), the policy engine
/// for IPv6 sessions, the frame processor policing IPv6 in Protect (ping6, TCP ports, neighbour discovery always
/// passing, resets), Discover learning IPv6 connections, and no allocation on the IPv6 path.
/// </summary>
public class DatapathIPv6Tests
{
    private const byte Fin = 1, Syn = 2, Rst = 4, Ack = 16;
    private const ulong U = TestFrames.UnicastAlias, H = TestFrames.HostMac;
    private static readonly byte[] Hip = TestFrames6.Host, C = TestFrames6.Container;

    // an ICMPv6 echo request fd00:10::66 -> fd00:10::88, id 7, seq 1, 24 zero bytes (checksum by RFC 4443/1071, computed apart with Python)
    private const string GoldenPing6 =
        "4e65755600b406829c02549186dd6000000000203a40fd000010000000000000000000000066fd000010000000000000000000000088" +
        "8000" + "848d" + "00070001" + "000000000000000000000000000000000000000000000000";

    [Fact]
    public void An_ICMPv6_echo_request_is_built_and_parsed_as_its_golden_bytes()
    {
        var f = TestFrames6.Icmp(U, H, Hip, C, 128);
        Assert.Equal(GoldenPing6, Convert.ToHexString(f).ToLowerInvariant());
        Assert.Equal(FrameError.None, FrameParser.Parse(Convert.FromHexString(GoldenPing6), out var info));
        Assert.Equal((6, (byte)58, (byte)128, (ushort)7, 54), (info.IpVersion, info.Protocol, info.IcmpType, info.SourcePort, info.L4Offset));
    }

    [Fact]
    public void Hop_by_hop_routing_and_destination_options_headers_are_walked_to_the_transport_header()
    {
        var f = TestFrames6.Tcp(U, H, Hip, C, 40000, 80, Syn, extensions: [(0, new byte[6]), (43, new byte[14]), (60, new byte[6])]);
        Assert.Equal(FrameError.None, FrameParser.Parse(f, out var info));
        Assert.Equal(((byte)6, (ushort)40000, (ushort)80, Syn), (info.Protocol, info.SourcePort, info.DestinationPort, info.TcpFlags));
        Assert.Equal(14 + 40 + 8 + 16 + 8, info.L4Offset);
        Assert.False(info.IsLaterFragment);
    }

    [Fact]
    public void A_first_fragment_is_parsed_through_a_later_one_is_marked_and_an_unknown_header_is_the_protocol()
    {
        var first = TestFrames6.Tcp(U, H, Hip, C, 40000, 80, Syn, extensions: [(44, [0x00, 0x01, 0, 0, 0, 1])]); // offset 0, M=1
        Assert.Equal(FrameError.None, FrameParser.Parse(first, out var a));
        Assert.Equal(((byte)6, (ushort)80, false), (a.Protocol, a.DestinationPort, a.IsLaterFragment));
        var later = TestFrames6.Tcp(U, H, Hip, C, 40000, 80, Syn, extensions: [(44, [0x00, 0x08, 0, 0, 0, 1])]); // offset 1
        Assert.Equal(FrameError.None, FrameParser.Parse(later, out var b));
        Assert.Equal(((byte)6, true, 0), (b.Protocol, b.IsLaterFragment, b.L4Offset));
        // AH (51) is not walked: the packet is protocol 51, without ports, for policy to decide as such
        var ah = TestFrames6.Ip6(U, H, Hip, C, 51, new byte[24]);
        Assert.Equal(FrameError.None, FrameParser.Parse(ah, out var c));
        Assert.Equal(((byte)51, 0), (c.Protocol, c.L4Offset));
    }

    [Fact]
    public void Extension_headers_past_the_payload_or_chained_too_long_are_malformed()
    {
        var f = TestFrames6.Tcp(U, H, Hip, C, 40000, 80, Syn, extensions: [(60, new byte[6])]);
        f[14 + 40 + 1] = 10; // destination options claiming 88 bytes
        Assert.Equal(FrameError.BadIPv6, FrameParser.Parse(f, out _));
        var chain = TestFrames6.Tcp(U, H, Hip, C, 40000, 80, Syn, extensions: Enumerable.Range(0, FrameParser.MaxIPv6ExtensionHeaders + 1).Select(_ => ((byte)60, new byte[6])).ToArray());
        Assert.Equal(FrameError.BadIPv6, FrameParser.Parse(chain, out _));
        var truncated = TestFrames6.Icmp(U, H, Hip, C, 128)[..(14 + 40 + 4)];
        Assert.Equal(FrameError.BadIPv6, FrameParser.Parse(truncated, out _)); // payload length beyond the frame
    }

    // --- the engine alone ---

    private static UInt128 A(string text) => BinaryPrimitives.ReadUInt128BigEndian(IPAddress.Parse(text).GetAddressBytes());

    private static PolicyRule R6(uint id, string src, string dst, ushort port, byte proto, DpPolicyAction action, bool ingress)
    {
        var rule = DpRule.Parse(src, dst, port == 0 ? "any" : port.ToString(), proto.ToString(), action, ingress ? DpDirection.Ingress : DpDirection.Egress, id).ToWire();
        return rule;
    }

    private static PolicyVerdict Decide(Policy p, string client, string server, ushort port, byte proto, bool ingress, PolicySettings? settings = null)
        => PolicyEngine.Decide6(p, settings ?? PolicySettings.Default, A(client), A(server), port, proto, ingress);

    [Fact]
    public void IPv6_sessions_match_IPv6_rules_and_any_address_rules_in_order_and_never_IPv4_rules()
    {
        var p = new Policy(1, DpPolicyAction.Deny, DpDirection.Both, [
            new PolicyRule(1, 0x0a0a0a42, 0x0a0a0a42, 0x0a0a0a58, 0x0a0a0a58, 80, 80, 6, DpPolicyAction.Allow, true), // IPv4: never an IPv6 session's
            R6(2, "fd00:10::/64", "fd00:10::88", 80, 6, DpPolicyAction.Allow, true),
            R6(3, "any", "fd00:10::88", 0, 58, DpPolicyAction.Violate, true),
            R6(4, "fd00:10::88", "any", 443, 6, DpPolicyAction.Allow, false),
            new PolicyRule(5, 0, uint.MaxValue, 0, uint.MaxValue, 53, 53, 17, DpPolicyAction.Allow, true),            // any -> any: both families
        ]);
        Assert.Equal(new PolicyVerdict(2, DpPolicyAction.Allow), Decide(p, "fd00:10::66", "fd00:10::88", 80, 6, true));
        Assert.Equal(new PolicyVerdict(0, DpPolicyAction.Deny), Decide(p, "fd00:11::66", "fd00:10::88", 80, 6, true));  // outside the prefix
        Assert.Equal(new PolicyVerdict(0, DpPolicyAction.Deny), Decide(p, "fd00:10::66", "fd00:10::88", 81, 6, true));  // another port
        Assert.Equal(new PolicyVerdict(3, DpPolicyAction.Violate), Decide(p, "2001:db8::1", "fd00:10::88", 9, 58, true)); // ICMPv6: port 0
        Assert.Equal(new PolicyVerdict(4, DpPolicyAction.Allow), Decide(p, "fd00:10::88", "2001:db8::1", 443, 6, false));
        Assert.Equal(new PolicyVerdict(5, DpPolicyAction.Allow), Decide(p, "2001:db8::1", "fd00:10::88", 53, 17, true));
        Assert.Equal(PolicyVerdict.Open, Decide(p, "fe80::1", "fd00:10::88", 81, 6, true));                              // link-local peer
        Assert.Equal(new PolicyVerdict(0, DpPolicyAction.Deny), Decide(p, "2001:db8::1", "fd00:10::88", 0, 132, true));  // SCTP: not let past Protect
        var icmpOff = new PolicySettings(1, false, false, []);
        Assert.Equal(PolicyVerdict.IcmpAllowed, Decide(new Policy(2, DpPolicyAction.Deny, DpDirection.Both, []), "2001:db8::1", "fd00:10::88", 0, 58, true, icmpOff));
        Assert.Equal(PolicyVerdict.Open, Decide(new Policy(3, DpPolicyAction.Deny, DpDirection.Egress, []), "2001:db8::1", "fd00:10::88", 80, 6, true));
    }

    // --- the frame processor ---

    private static DatapathControlTests.Rig Protected(params string[] rules)
    {
        var rig = new DatapathControlTests.Rig();
        rig.SendSeed();
        var json = PolicyJson(1, DpPolicyAction.Deny, rules);
        Assert.Empty(rig.Send(json));
        Assert.Equal(0, rig.Controller.Rejected);
        return rig;
    }

    private static string PolicyJson(int cmd, DpPolicyAction defact, params string[] rules)
        => "{\"ctrl_cfg_policy\": {\"cmd\": " + cmd + ", \"flag\": 3, \"defact\": " + (int)defact + ", \"dir\": 3, \"mac\": [\"1a:27:f3:87:3a:27\"], \"rules\": [" + string.Join(", ", rules) + "]}}";

    private const string Allow80 = """{"id": 6, "sip": "fd00:10::", "sipr": "fd00:10::ffff", "dip": "fd00:10::88", "port": 80, "proto": 6, "action": 2, "ingress": true}""";
    private const string AllowPing6 = """{"id": 7, "sip": "::", "sipr": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "dip": "fd00:10::88", "port": 0, "portr": 65535, "proto": 58, "action": 2, "ingress": true}""";

    [Fact]
    public void Protect_blocks_IPv6_no_rule_allows_ping6_included_and_lets_neighbour_discovery_and_multicast_pass()
    {
        var rig = Protected(Allow80);
        Assert.Equal(FrameVerdict.Deny, rig.Frame(TestFrames6.Icmp(U, H, Hip, C, 128)));                       // ping6: no rule
        Assert.Equal(FrameVerdict.Deny, rig.Frame(TestFrames6.Tcp(U, H, Hip, C, 40000, 81, Syn)));             // a denied port
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Tcp(U, H, Hip, C, 40000, 80, Syn)));          // the allowed one
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Tcp(H, U, C, Hip, 80, 40000, Syn | Ack)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Icmp(U, H, Hip, C, 135)));                    // NS, unicast
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Icmp(H, U, C, Hip, 136)));                    // NA
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Icmp(U, H, Hip, TestFrames6.Address("ff02::1"), 128))); // multicast
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Icmp(U, H, TestFrames6.Address("fe80::66"), TestFrames6.Address("fe80::88"), 128))); // link-local
        Assert.Equal(2, rig.Engine.Counters.DeniedSessions);

        // a policy with a ping6 rule lets it through; the session follows the reply
        Assert.Empty(rig.Send(PolicyJson(2, DpPolicyAction.Deny, Allow80, AllowPing6)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Icmp(U, H, Hip, C, 128, id: 8)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Icmp(H, U, C, Hip, 129, id: 8)));
        Assert.Contains(rig.Engine.Sessions.Snapshot(rig.Clock.NowSeconds), s => s.IPv6 && s.Protocol == 58 && s.PolicyId == 7);
    }

    [Fact]
    public void An_IPv6_TCP_session_that_becomes_denied_is_reset_both_ways_with_valid_IPv6_resets()
    {
        var rig = Protected(Allow80);
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Tcp(U, H, Hip, C, 40000, 80, Syn, seq: 100)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Tcp(H, U, C, Hip, 80, 40000, Syn | Ack, seq: 500, ack: 101)));
        Assert.Empty(rig.Send("""{"ctrl_cfg_policy": {"cmd": 2, "flag": 3, "defact": 7, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": []}}"""));
        var data = TestFrames6.Tcp(U, H, Hip, C, 40000, 80, Ack | 8, payload: 10, seq: 101, ack: 501, extensions: [(60, new byte[6])]);
        Assert.Equal(FrameVerdict.Reset, rig.Frame(data));
        Assert.Equal(FrameVerdict.Deny, rig.Frame(data)); // once

        FrameParser.Parse(data, out var info);
        var toReceiver = new byte[TcpReset.MaxFrameLength];
        var toSender = new byte[TcpReset.MaxFrameLength];
        Assert.Equal(74, TcpReset.Build(data, in info, towardsSender: false, toReceiver));
        Assert.Equal(74, TcpReset.Build(data, in info, towardsSender: true, toSender));
        foreach (var f in new[] { toReceiver, toSender })
        {
            Assert.Equal(FrameError.None, FrameParser.Parse(f, out var r));
            Assert.Equal((6, (byte)6), (r.IpVersion, r.Protocol));
            Assert.True(Checksum.VerifyTransportChecksum(f, 14));
            Assert.Equal(Rst | Ack, r.TcpFlags);
        }
        Assert.Equal(Hip, toReceiver.AsSpan(22, 16).ToArray());
        Assert.Equal((101u, 501u), (BinaryPrimitives.ReadUInt32BigEndian(toReceiver.AsSpan(58)), BinaryPrimitives.ReadUInt32BigEndian(toReceiver.AsSpan(62))));
        Assert.Equal(C, toSender.AsSpan(22, 16).ToArray());
        Assert.Equal((501u, 111u), (BinaryPrimitives.ReadUInt32BigEndian(toSender.AsSpan(58)), BinaryPrimitives.ReadUInt32BigEndian(toSender.AsSpan(62))));
    }

    [Fact]
    public void Discover_learns_IPv6_connections_and_ConvertTo_DpRule_makes_IPv6_rules_of_them()
    {
        var rig = new DatapathControlTests.Rig();
        rig.SendSeed();
        Assert.Empty(rig.Send("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 1, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": []}}""")); // Learn
        rig.Frame(TestFrames6.Tcp(U, H, Hip, C, 40000, 8080, Syn));
        rig.Frame(TestFrames6.Tcp(H, U, C, Hip, 8080, 40000, Syn | Ack));
        rig.Frame(TestFrames6.Icmp(U, H, Hip, C, 128, id: 9));
        rig.Frame(TestFrames6.Icmp(H, U, C, Hip, 129, id: 9));
        var chunks = rig.Send("""{"nvr_list_connection": {}}""");
        var connections = DpReplyReader.Connections(chunks.SelectMany(c => c.Skip(4)).ToArray(), "/x.sock", out _, out _);
        var tcp = Assert.Single(connections, c => c.Protocol == 6);
        Assert.Equal(("fd00:10::66", "fd00:10::88", (ushort)8080, DpDirection.Ingress, true), (tcp.Client.ToString(), tcp.Server.ToString(), tcp.ServerPort, tcp.Direction, tcp.Answered));
        Assert.Single(connections, c => c.Protocol == 58 && c.Answered);

        var rules = connections.Select(c => new DpRule
        {
            SourceFrom = c.Client, SourceTo = c.Client, DestinationFrom = c.Server, DestinationTo = c.Server,
            PortFrom = c.Protocol == 58 ? (ushort)0 : c.ServerPort, PortTo = c.Protocol == 58 ? ushort.MaxValue : c.ServerPort, Protocol = c.Protocol, Direction = c.Direction,
        }).Select((r, i) => r.With(id: (uint)(i + 1)).ToWire()).ToList();
        Assert.All(rules, r => Assert.True(r.IPv6));
        var learned = new Policy(9, DpPolicyAction.Deny, DpDirection.Both, rules);
        Assert.Equal(DpPolicyAction.Allow, PolicyEngine.Decide6(learned, PolicySettings.Default, A("fd00:10::66"), A("fd00:10::88"), 8080, 6, true).Action);
        Assert.Equal(DpPolicyAction.Allow, PolicyEngine.Decide6(learned, PolicySettings.Default, A("fd00:10::66"), A("fd00:10::88"), 0, 58, true).Action);
        Assert.Equal(DpPolicyAction.Deny, PolicyEngine.Decide6(learned, PolicySettings.Default, A("fd00:10::66"), A("fd00:10::88"), 8081, 6, true).Action);
    }

    [Fact]
    public void Monitor_forwards_IPv6_no_rule_allows_and_reports_it_as_a_violation()
    {
        var rig = new DatapathControlTests.Rig();
        rig.SendSeed();
        Assert.Empty(rig.Send(PolicyJson(1, DpPolicyAction.Violate, Allow80)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Icmp(U, H, Hip, C, 128, id: 3)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Tcp(U, H, Hip, C, 40000, 81, Syn)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames6.Tcp(U, H, Hip, C, 40001, 80, Syn)));
        var connections = DpReplyReader.Connections(rig.Send("""{"nvr_list_connection": {}}""").SelectMany(c => c.Skip(4)).ToArray(), "/x.sock", out _, out _);
        Assert.Equal(DpPolicyAction.Violate, Assert.Single(connections, c => c.Protocol == 58).Action);
        Assert.Equal(DpPolicyAction.Violate, Assert.Single(connections, c => c.ServerPort == 81).Action);
        var allowed = Assert.Single(connections, c => c.ServerPort == 80);
        Assert.Equal((DpPolicyAction.Allow, 6u), (allowed.Action, allowed.RuleId));
    }

    [Fact]
    public void An_IPv6_policy_survives_a_restart_through_the_state_file_and_still_decides()
    {
        var dir = System.IO.Directory.CreateTempSubdirectory("nvr-state6-").FullName;
        try
        {
            var path = System.IO.Path.Combine(dir, "dp.state");
            var before = new DatapathControlTests.Rig();
            before.Controller.Persist = new NvRedirect.Datapath.Control.StateFile(path, "ns-6");
            before.SendSeed();
            Assert.Empty(before.Send(PolicyJson(1, DpPolicyAction.Deny, Allow80, AllowPing6)));
            var after = new DatapathControlTests.Rig();
            after.Controller.Persist = new NvRedirect.Datapath.Control.StateFile(path, "ns-6");
            Assert.Null(after.Controller.Restore());
            var rules = after.Engine.Workloads.Current.Workloads.Single().Policy!.Rules;
            Assert.Equal(before.Engine.Workloads.Current.Workloads.Single().Policy!.Rules, rules);
            Assert.All(rules, r => Assert.True(r.IPv6));
            Assert.Equal(FrameVerdict.Forward, after.Frame(TestFrames6.Tcp(U, H, Hip, C, 40000, 80, Syn)));
            Assert.Equal(FrameVerdict.Deny, after.Frame(TestFrames6.Tcp(U, H, Hip, C, 40000, 81, Syn)));
        }
        finally { System.IO.Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void The_policed_IPv6_packet_path_allocates_nothing()
    {
        var rig = Protected(Allow80, AllowPing6);
        var frames = new List<byte[]>();
        for (ushort p = 0; p < 64; p++)
        {
            frames.Add(TestFrames6.Tcp(U, H, Hip, C, (ushort)(30000 + p), 80, Syn, seq: 100));
            frames.Add(TestFrames6.Tcp(H, U, C, Hip, 80, (ushort)(30000 + p), Syn | Ack, seq: 500, ack: 101));
            frames.Add(TestFrames6.Tcp(U, H, Hip, C, (ushort)(30000 + p), 80, Ack | 8, payload: 10, seq: 101, ack: 501, extensions: [(0, new byte[6])]));
            frames.Add(TestFrames6.Tcp(U, H, Hip, C, (ushort)(30000 + p), 81, Syn)); // denied
            frames.Add(TestFrames6.Icmp(U, H, Hip, C, 128, id: p));
            frames.Add(TestFrames6.Icmp(U, H, Hip, C, 135));
        }
        var table = rig.Engine.Workloads.Current;
        var processor = rig.Engine.Processor;
        long sum = 0;
        void Run(int count)
        {
            for (int n = 0; n < count; n++)
            {
                var f = frames[n % frames.Count];
                sum += (int)processor.Process(f, f.Length, table, rig.Clock.NowSeconds, out _);
                if (n % 50_000 == 0) { rig.Clock.Advance(31); rig.Engine.Sessions.Expire(rig.Clock.NowSeconds); }
            }
        }
        Run(frames.Count * 20);
        long allocated = Allocations.Fewest(() => Run(500_000));
        Assert.True(sum > 0);
        Assert.True(rig.Engine.Counters.IPv6Packets > 0 && rig.Engine.Counters.DeniedSessions > 0);
        Assert.Equal(0, allocated);
    }
}
