using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using NvRedirect.Core.Packets;
using NvRedirect.Datapath.Engine;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// Property-based fuzz targets (CsCheck): the frame parser and the frame processor on arbitrary and mutated frames,
/// and the control-message handler (the controller's one entry point, <c>Controller.Handle</c>) on arbitrary,
/// mutated and randomly structured JSON datagrams. Each runs a bounded number of iterations (a few seconds in CI;
/// NVR_FUZZ_SCALE=N runs N times as many); a failure prints CsCheck's seed, and every input that ever crashed is kept
/// under Fuzz/ as a regression input (<see cref="Every_kept_regression_input_is_handled"/>).
/// </summary>
public class FuzzTests
{
    private static long Iterations(long ci) => ci * (long.TryParse(Environment.GetEnvironmentVariable("NVR_FUZZ_SCALE"), out long n) && n > 0 ? n : 1);

    private const ulong U = TestFrames.UnicastAlias, H = TestFrames.HostMac;
    private const uint C = TestFrames.ContainerIp, Hip = TestFrames.HostIp;

    /// <summary>Valid frames of every kind the parser knows, towards and from the seed workload.</summary>
    internal static readonly byte[][] ValidFrames =
    [
        TestFrames.Tcp(U, H, Hip, C, 40000, 80, 2, seq: 100),
        TestFrames.Tcp(H, U, C, Hip, 80, 40000, 18, seq: 500, ack: 101),
        TestFrames.Tcp(U, H, Hip, C, 40000, 80, 24, payload: 40, seq: 101, ack: 501),
        TestFrames.Udp(U, H, Hip, C, 5000, 53),
        TestFrames.Udp(H, U, C, Hip, 53, 5000, payload: 100),
        TestFrames.Icmp(U, H, Hip, C, 8, 7),
        TestFrames.Icmp(H, U, C, Hip, 0, 7),
        TestFrames.Icmp(H, U, C, Hip, 3, 7),
        TestFrames.Tagged(TestFrames.Tcp(U, H, Hip, C, 40001, 81, 2), 100),
        TestFrames.Tagged(TestFrames.Tagged(TestFrames.Udp(U, H, Hip, C, 5001, 54), 7), 100),
        IPv6(U, H, 6, 20), IPv6(H, U, 17, 8), IPv6(U, H, 58, 8), IPv6(U, H, 0, 8),
    ];

    // an IPv6 frame with an L4 header of `l4` bytes (ports 40000 -> 80, TCP data offset 5); checksums do not matter here
    private static byte[] IPv6(ulong dst, ulong src, byte protocol, int l4)
    {
        var f = new byte[14 + 40 + l4];
        BinaryPrimitives.WriteUInt64BigEndian(f, dst << 16);
        BinaryPrimitives.WriteUInt64BigEndian(f.AsSpan(6), src << 16 | 0x86dd);
        f[14] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(18), (ushort)l4);
        f[20] = protocol;
        f[21] = 64;
        f[22] = 0xfd; f[37] = 1; f[38] = 0xfd; f[53] = 2;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(54), 40000);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(56), 80);
        if (protocol == 6) { f[54 + 12] = 0x50; f[54 + 13] = 2; }
        if (protocol == 58) f[54] = 128;
        if (protocol == 0) { f[54] = 59; f[55] = 0; } // a hop-by-hop header (8 bytes) followed by no next header
        return f;
    }

    /// <summary>A valid frame mutated: bytes overwritten (often in the headers), cut short or grown, headers' lengths set to extremes.</summary>
    internal static readonly Gen<byte[]> MutatedFrame =
        Gen.Select(Gen.Int[0, ValidFrames.Length - 1], Gen.Int[0, 5], Gen.Int[0, 10_000].Array[1, 8], Gen.Byte.Array[1, 8], (which, how, positions, values) =>
        {
            var f = (byte[])ValidFrames[which].Clone();
            switch (how)
            {
                case 0: // cut short
                    return f[..(positions[0] % (f.Length + 1))];
                case 1: // grown with junk
                    return [.. f, .. values];
                case 2: // a length or offset field at an extreme (IPv4 IHL/total, IPv6 payload, TCP data offset)
                    int at = new[] { 14, 16, 17, 18, 19, 14 + 20 + 12, 14 + 40 + 12, 12, 13, 20 }[positions[0] % 10];
                    if (at < f.Length) f[at] = values[0];
                    return f;
                default: // bytes overwritten, mostly within the first 80 (headers)
                    for (int i = 0; i < positions.Length; i++)
                    {
                        int p = how == 5 ? positions[i] % f.Length : positions[i] % Math.Min(f.Length, 80);
                        f[p] = values[i % values.Length];
                    }
                    return f;
            }
        });

    private static void AssertWithinBounds(ReadOnlySpan<byte> frame)
    {
        var error = FrameParser.Parse(frame, out var info);
        Assert.True(Enum.IsDefined(error));
        if (error == FrameError.TruncatedEthernet) { Assert.True(frame.Length < 14); return; }
        Assert.True(frame.Length >= 14);
        if (error != FrameError.None) return;
        Assert.InRange(info.L3Offset, 14, 22);
        Assert.InRange(info.VlanId, -1, 4095);
        if (info.IpVersion == 4)
        {
            Assert.True(info.L3Offset + 20 <= frame.Length);
            Assert.Equal(4, frame[info.L3Offset] >> 4);
        }
        else if (info.IpVersion == 6) Assert.True(info.L3Offset + 40 <= frame.Length);
        else Assert.Equal(0, info.IpVersion);
        if (info.L4Offset != 0)
        {
            Assert.True(info.IpVersion != 0 && info.Protocol is 6 or 17 or 1 or 58 && !info.IsLaterFragment);
            Assert.True(info.L4Offset >= info.L3Offset + 20);
            Assert.True(info.L4Offset + (info.Protocol == 6 ? 20 : 8) <= frame.Length);
        }
    }

    [Fact]
    public void The_frame_parser_never_throws_and_stays_within_the_frame_on_arbitrary_bytes()
        => Gen.Byte.Array[0, 120].Sample(f => AssertWithinBounds(f), iter: Iterations(300_000));

    [Fact]
    public void The_frame_parser_never_throws_and_stays_within_the_frame_on_mutated_valid_frames()
    {
        foreach (var f in ValidFrames) Assert.Equal(FrameError.None, FrameParser.Parse(f, out _));
        MutatedFrame.Sample(f => AssertWithinBounds(f), iter: Iterations(300_000));
    }

    [Fact]
    public void The_frame_processor_never_throws_on_mutated_workload_frames_and_valid_traffic_still_passes()
    {
        var rig = new DatapathControlTests.Rig();
        rig.SendSeed();
        rig.Send("""{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 1, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": []}}""");
        long n = 0;
        MutatedFrame.Sample(f =>
        {
            var verdict = rig.Frame(f);
            Assert.True(Enum.IsDefined(verdict));
            if (++n % 10_000 == 0) { rig.Clock.Advance(7); rig.Engine.Sessions.Expire(rig.Clock.NowSeconds); }
        }, iter: Iterations(150_000), threads: 1);
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames.Icmp(U, H, Hip, C, 8, 999)));
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames.Icmp(H, U, C, Hip, 0, 999)));
        Assert.True(rig.Engine.Counters.MalformedPackets > 0 && rig.Engine.Counters.ForwardPackets > 0);
    }

    // --- the control messages ---

    /// <summary>Valid datagrams: the seed's, every command with plausible arguments.</summary>
    internal static readonly string[] ValidDatagrams =
    [
        DatapathControlTests.SeedInternalNet, DatapathControlTests.SeedServicePort, DatapathControlTests.SeedAddMac, DatapathControlTests.SeedCfgMac,
        """{"ctrl_keep_alive": {"seq_num": 7}}""",
        """{"ctrl_del_srvc_port": {"iface": "vth"}}""",
        """{"ctrl_del_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27"}}""",
        """{"ctrl_cfg_mac": {"macs": ["1a:27:f3:87:3a:27"], "tap": true}}""",
        """{"ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 5, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 1, "sip": "10.10.10.66", "dip": "10.10.10.88", "port": 80, "portr": 81, "proto": 6, "action": 2, "ingress": true}]}}""",
        """{"ctrl_cfg_policy": {"cmd": 2, "flag": 1, "defact": 1, "dir": 1, "mac": ["1a:27:f3:87:3a:27"], "rules": []}}""",
        """{"ctrl_cfg_policy_addr": {"flag": 3, "subnet_addr": [{"ip": "10.10.10.88", "mask": "255.255.255.255"}]}}""",
        """{"ctrl_sys_conf": {"xff_enabled": true}, "ctrl_disable_net_policy": {"disable_net_policy": false}}""",
        """{"ctrl_enable_icmp_policy": {"enable_icmp_policy": true}, "ctrl_strict_group_mode": {"strict_group_mode": true}}""",
        """{"ctrl_detect_unmanaged_wl": {"detect_unmanaged_wl": true}}""",
        """{"ctrl_set_debug": {"categories": ["ctrl", "policy"]}}""",
        """{"ctrl_count_session": {}, "ctrl_list_session": {}, "ctrl_counter_device": {}}""",
        """{"ctrl_clear_session": {"filter_id": 0}}""",
        """{"nvr_get_state": {}, "nvr_get_policy": {}, "nvr_list_connection": {"macs": ["1a:27:f3:87:3a:27"]}}""",
        """{"nvr_clear_connection": {}}""",
    ];

    private static readonly string[] Keys =
    [
        "ctrl_keep_alive", "ctrl_add_srvc_port", "ctrl_del_srvc_port", "ctrl_add_mac", "ctrl_del_mac", "ctrl_cfg_mac", "ctrl_cfg_internal_net",
        "ctrl_cfg_policy", "ctrl_cfg_policy_addr", "ctrl_set_debug", "ctrl_sys_conf", "nvr_get_state", "nvr_list_connection",
        "iface", "mac", "macs", "ucmac", "bcmac", "oldmac", "pmac", "pips", "tap", "jumboframe", "flag", "subnet_addr", "ip", "mask", "iptype",
        "cmd", "defact", "dir", "rules", "id", "sip", "sipr", "dip", "dipr", "port", "portr", "proto", "action", "ingress", "categories",
        "filter_id", "seq_num", "xff_enabled",
    ];

    private static readonly string[] Strings =
    [
        "vth", "vth2", "1a:27:f3:87:3a:27", "4e:65:75:56:00:b4", "ff:ff:ff:ff:ff:ff", "10.10.10.88", "255.255.255.0", "devip", "ctrl",
        "", "vth\nINFO forged line", "vth\u0000", "\u001b[31mred", "\u2028", "\ud800", "../../etc/passwd", new string('a', 300), "1a:27:f3:87:3a:27\r\n",
        "::1", "10.10.10.256", "-1",
    ];

    private static readonly JsonNode?[] Numbers =
    [
        0, 1, 2, 3, 5, -1, 255, 256, 65535, 65536, int.MaxValue, long.MaxValue, ulong.MaxValue, 1e308, -0.5, 3.14,
    ];

    /// <summary>Randomly structured JSON: objects with known keys, values of every kind (deeper the lower <paramref name="depth"/> is).</summary>
    private static Gen<JsonNode?> Value(int depth) => depth == 0
        ? Gen.OneOf(Gen.Int[0, Strings.Length - 1].Select(i => (JsonNode?)JsonValue.Create(Strings[i])),
                    Gen.Int[0, Numbers.Length - 1].Select(i => Numbers[i]?.DeepClone()),
                    Gen.Bool.Select(b => (JsonNode?)JsonValue.Create(b)),
                    Gen.Const<JsonNode?>(() => null))
        : Gen.Frequency(
            (3, Value(0)),
            (2, Value(depth - 1).Array[0, 4].Select(items => (JsonNode?)new JsonArray(items.Select(x => x?.DeepClone()).ToArray()))),
            (3, Gen.Select(Gen.Int[0, Keys.Length - 1], Value(depth - 1)).Array[0, 5].Select(fields =>
            {
                var o = new JsonObject();
                foreach (var (k, v) in fields) o[Keys[k]] = v?.DeepClone();
                return (JsonNode?)o;
            })));

    /// <summary>Datagrams: arbitrary bytes, mutated valid datagrams, and structured random JSON under command keys.</summary>
    internal static readonly Gen<byte[]> Datagram = Gen.Frequency(
        (1, Gen.Byte.Array[0, 200]),
        (4, Gen.Select(Gen.Int[0, ValidDatagrams.Length - 1], Gen.Int[0, 4], Gen.Int[0, 100_000].Array[1, 6], Gen.Byte.Array[1, 6], (which, how, positions, values) =>
        {
            var d = Encoding.UTF8.GetBytes(ValidDatagrams[which]);
            switch (how)
            {
                case 0: return d[..(positions[0] % (d.Length + 1))];
                case 1:
                    int cut = positions[0] % (d.Length + 1);
                    return [.. d[..cut], .. values, .. d[cut..]];
                case 2: // a JSON-significant character swapped in
                    var specials = "{}[]\":,\\0-e.ntf "u8.ToArray();
                    for (int i = 0; i < positions.Length; i++) d[positions[i] % d.Length] = specials[values[i % values.Length] % specials.Length];
                    return d;
                default:
                    for (int i = 0; i < positions.Length; i++) d[positions[i] % d.Length] = values[i % values.Length];
                    return d;
            }
        })),
        (4, Gen.Select(Gen.Int[0, 12], Value(3)).Array[1, 3].Select(commands =>
        {
            var o = new JsonObject();
            foreach (var (k, v) in commands) o[Keys[k]] = v?.DeepClone();
            return Encoding.UTF8.GetBytes(o.ToJsonString());
        })));

    // the state as nvr_get_state and nvr_get_policy report it, without the request counters (which every datagram moves)
    private static string Fingerprint(DatapathControlTests.Rig rig)
    {
        var state = JsonNode.Parse(rig.Controller.Handle("""{"nvr_get_state": {}}"""u8).SelectMany(c => c.Skip(4)).ToArray())!.AsObject();
        state.Remove("requests");
        state.Remove("your_last_request");
        var policy = Encoding.UTF8.GetString(rig.Controller.Handle("""{"nvr_get_policy": {}}"""u8).SelectMany(c => c.Skip(4)).ToArray());
        return state.ToJsonString() + policy;
    }

    private static void HandleOne(DatapathControlTests.Rig rig, byte[] datagram)
    {
        string before = Fingerprint(rig);
        long rejected = rig.Controller.Rejected, accepted = rig.Controller.Accepted;
        var replies = rig.Controller.Handle(datagram); // anything thrown fails the property
        Assert.NotNull(replies);
        if (rig.Controller.Rejected > rejected)
        {
            Assert.Equal(accepted, rig.Controller.Accepted);
            Assert.Empty(replies);
            Assert.Equal(before, Fingerprint(rig)); // refused: nothing changed
        }
    }

    // valid datagrams are applied after whatever the fuzzing left (it may have moved or deleted the port and the workload)
    private static void AssertStillWorks(DatapathControlTests.Rig rig)
    {
        long rejected = rig.Controller.Rejected;
        if (rig.Controller.State.ServicePort is { } port && port != "vth") rig.Send("{\"ctrl_del_srvc_port\": {\"iface\": " + JsonSerializer.Serialize(port) + "}}");
        if (rig.Controller.State.ServicePort == null) rig.Send(DatapathControlTests.SeedServicePort);
        foreach (var w in rig.Controller.State.Workloads.Values.ToList()) // the fuzzing may have given the seed's aliases to another MAC
            rig.Send($"{{\"ctrl_del_mac\": {{\"iface\": \"vth\", \"mac\": \"{NvRedirect.Core.Packets.FrameParser.FormatMac(w.Mac)}\"}}}}");
        rig.Send(DatapathControlTests.SeedAddMac);
        rig.Send("""{"ctrl_cfg_mac": {"tap": false, "macs": ["1a:27:f3:87:3a:27"]}, "ctrl_cfg_policy": {"cmd": 1, "flag": 3, "defact": 1, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": []}}""");
        Assert.True(rejected == rig.Controller.Rejected, string.Join("\n", rig.Log.Lines.TakeLast(4)));
        Assert.Equal("vth", rig.Controller.State.ServicePort);
        Assert.Equal(FrameVerdict.Forward, rig.Frame(TestFrames.Icmp(U, H, Hip, C, 8, 4242)));
    }

    [Fact]
    public void The_controller_never_throws_refuses_without_changing_state_and_still_works_afterwards()
    {
        var rig = new DatapathControlTests.Rig();
        rig.SendSeed();
        Datagram.Sample(d => HandleOne(rig, d), iter: Iterations(15_000), threads: 1);
        Assert.True(rig.Controller.Rejected > 1000 && rig.Controller.Accepted > 1000, $"{rig.Controller.Rejected} rejected, {rig.Controller.Accepted} accepted");
        AssertStillWorks(rig);
        // no log line was forged: every line is one line, free of control characters
        Assert.All(rig.Log.Lines, l => Assert.DoesNotContain(l, c => char.IsControl(c) || c is '\u2028' or '\u2029'));
    }

    // --- the regression inputs ---

    /// <summary>The inputs kept under Fuzz/ (name.frame.hex: a frame; name.control.hex: a control datagram), as hex.</summary>
    public static TheoryData<string> RegressionInputs()
    {
        var data = new TheoryData<string>();
        var dir = Path.Combine(AppContext.BaseDirectory, "Fuzz");
        foreach (var f in Directory.GetFiles(dir, "*.hex").Order()) data.Add(Path.GetFileName(f));
        return data;
    }

    [Theory]
    [MemberData(nameof(RegressionInputs))]
    public void Every_kept_regression_input_is_handled(string name)
    {
        var hex = string.Concat(File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Fuzz", name)).Where(l => !l.StartsWith('#')).Select(l => l.Trim()));
        var input = Convert.FromHexString(hex);
        var rig = new DatapathControlTests.Rig();
        rig.SendSeed();
        if (name.EndsWith(".frame.hex", StringComparison.Ordinal))
        {
            AssertWithinBounds(input);
            rig.Frame(input);
        }
        else
        {
            Assert.EndsWith(".control.hex", name);
            HandleOne(rig, input);
        }
        AssertStillWorks(rig);
    }
}
