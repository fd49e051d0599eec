using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Datapath.Engine;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>The session table and the per-frame processor: orientation, TCP states, timeouts, eviction, no allocation.</summary>
public class DatapathSessionTests
{
    private const ulong U = TestFrames.UnicastAlias, H = TestFrames.HostMac;
    private const uint C = TestFrames.ContainerIp, Hip = TestFrames.HostIp;
    private const byte Fin = 1, Syn = 2, Rst = 4, Ack = 16;

    private sealed class Rig
    {
        public readonly ManualClock Clock = new(5000);
        public readonly SessionTable Sessions;
        public readonly FrameProcessor Processor;
        public readonly Workload Workload;
        public readonly WorkloadTable Table;

        public Rig(int capacity = 1024, bool tap = false)
        {
            Sessions = new SessionTable(capacity);
            Processor = new FrameProcessor(Sessions, new DatapathCounters());
            Workload = new Workload("vth", TestFrames.ContainerMac, U, TestFrames.BroadcastAlias, 0, [], [], new WorkloadState { Tap = tap });
            Table = new WorkloadTable([Workload]);
        }

        public FrameVerdict Send(byte[] frame) => Processor.Process(frame, frame.Length, Table, Clock.NowSeconds, out _);
        public SessionRecord Only() => Assert.Single(Sessions.Snapshot(Clock.NowSeconds));
        public void At(long offset, Action action) { Clock.Advance(offset); action(); }
        public int Expire() => Sessions.Expire(Clock.NowSeconds);
    }

    // egress = from the workload (source MAC = its NeuV alias), ingress = towards it (destination MAC = alias)
    private static byte[] OutTcp(byte flags, int payload = 0, ushort sport = 40000, ushort dport = 80) => TestFrames.Tcp(H, U, C, Hip, sport, dport, flags, payload);
    private static byte[] InTcp(byte flags, int payload = 0, ushort sport = 80, ushort dport = 40000) => TestFrames.Tcp(U, H, Hip, C, sport, dport, flags, payload);
    private static byte[] OutUdp(ushort sport = 5353, ushort dport = 53) => TestFrames.Udp(H, U, C, Hip, sport, dport);
    private static byte[] InUdp(ushort sport = 53, ushort dport = 5353) => TestFrames.Udp(U, H, Hip, C, sport, dport);

    [Fact]
    public void A_tcp_handshake_from_the_workload_is_one_session_seen_from_both_sides()
    {
        var rig = new Rig();
        Assert.Equal(FrameVerdict.Forward, rig.Send(OutTcp(Syn)));
        var s = rig.Only();
        Assert.Equal((TcpState.SynSent, TcpState.SynRecv, TimeoutClass.TcpOpening), (s.ClientState, s.ServerState, s.Class));
        Assert.Equal(SessionFlags.None, s.Flags);
        Assert.Equal(new byte[] { 10, 10, 10, 88 }, s.ClientIP);
        Assert.Equal((40000, 80), (s.ClientPort, s.ServerPort));

        rig.Send(InTcp(Syn | Ack));
        Assert.Equal((TcpState.Established, TcpState.SynRecv), (rig.Only().ClientState, rig.Only().ServerState));
        rig.Send(OutTcp(Ack));
        Assert.Equal((TcpState.Established, TcpState.Established, TimeoutClass.TcpNoData), (rig.Only().ClientState, rig.Only().ServerState, rig.Only().Class));
        rig.Send(OutTcp(Ack | 8, payload: 100));
        rig.Send(InTcp(Ack, payload: 50));

        var done = rig.Only();
        Assert.Equal(s.Id, done.Id);
        Assert.Equal(TimeoutClass.TcpEstablished, done.Class);
        Assert.Equal((3u, 2u), (done.ClientPackets, done.ServerPackets));
        Assert.Equal(TestFrames.ContainerMac, done.EndpointMac);
        Assert.Equal((TestFrames.ContainerMac, H), (done.ClientMac, done.ServerMac)); // the workload by its registered MAC, as dp (not the alias on the wire)
        Assert.Equal((1, 1, 0), (rig.Sessions.Count, rig.Sessions.CurrentTcp, rig.Sessions.CurrentUdp));
        Assert.Equal((0, 1), (rig.Workload.State.CurrentSessionsIn, rig.Workload.State.CurrentSessionsOut));
        Assert.Equal((2L, 3L), (rig.Workload.State.PacketsIn, rig.Workload.State.PacketsOut));
    }

    [Fact]
    public void A_session_opened_towards_the_workload_is_ingress()
    {
        var rig = new Rig();
        rig.Send(InTcp(Syn, sport: 51000, dport: 8080));
        rig.Send(OutTcp(Syn | Ack, sport: 8080, dport: 51000));
        var s = rig.Only();
        Assert.Equal(SessionFlags.Ingress, s.Flags);
        Assert.Equal(new byte[] { 10, 10, 10, 66 }, s.ClientIP);
        Assert.Equal((51000, 8080), (s.ClientPort, s.ServerPort));
        Assert.Equal((1u, 1u), (s.ClientPackets, s.ServerPackets));
        Assert.Equal((1, 0), (rig.Workload.State.CurrentSessionsIn, rig.Workload.State.CurrentSessionsOut));
        Assert.Equal(1L, rig.Workload.State.SessionsIn);
    }

    [Fact]
    public void A_syn_ack_seen_first_makes_its_receiver_the_client()
    {
        var rig = new Rig();
        rig.Send(InTcp(Syn | Ack));                        // the server (host) answers a SYN dp did not see
        var s = rig.Only();
        Assert.Equal(new byte[] { 10, 10, 10, 88 }, s.ClientIP);
        Assert.Equal(SessionFlags.None, s.Flags);          // the workload is the client: egress
        Assert.Equal(TcpState.Established, s.ClientState);
    }

    [Fact]
    public void Mid_stream_tcp_is_picked_up_established_with_the_well_known_port_as_server()
    {
        var rig = new Rig();
        rig.Send(InTcp(Ack, payload: 10));                 // from host:80 to container:40000
        var s = rig.Only();
        Assert.Equal(SessionFlags.MidStream, s.Flags);
        Assert.Equal((40000, 80), (s.ClientPort, s.ServerPort));
        Assert.Equal(TimeoutClass.TcpEstablished, s.Class);
    }

    [Fact]
    public void Frames_that_open_no_session_are_still_decided()
    {
        var rig = new Rig();
        Assert.Equal(FrameVerdict.Forward, rig.Send(OutTcp(Rst)));
        Assert.Equal(FrameVerdict.Forward, rig.Send(OutTcp(Fin | Ack)));
        Assert.Equal(FrameVerdict.Forward, rig.Send(TestFrames.Icmp(H, U, C, Hip, 3, 0)));          // ICMP error
        Assert.Equal(FrameVerdict.Forward, rig.Send(TestFrames.Udp(H, U, C, 0xffffffff, 68, 67)));  // broadcast
        Assert.Equal(FrameVerdict.Forward, rig.Send(TestFrames.Udp(H, U, C, 0xe0000001, 5000, 5000))); // multicast
        var fragment = OutUdp();
        fragment[14 + 6] = 0x00; fragment[14 + 7] = 0x10;  // fragment offset 16
        Assert.Equal(FrameVerdict.Forward, rig.Send(fragment));
        var arp = OutUdp(); arp[12] = 0x08; arp[13] = 0x06;
        Assert.Equal(FrameVerdict.Forward, rig.Send(arp));
        Assert.Equal(0, rig.Sessions.Count);
        Assert.Equal(1, rig.Processor.Counters.Fragments);
    }

    [Fact]
    public void Unknown_and_non_neuv_macs_are_dropped_and_counted_and_tap_is_not_forwarded()
    {
        var rig = new Rig();
        Assert.Equal(FrameVerdict.NoWorkload, rig.Send(TestFrames.Udp(H, 0x4e6575560999, C, Hip, 1, 2)));  // NeuV, not registered
        Assert.Equal(FrameVerdict.NoWorkload, rig.Send(TestFrames.Udp(H, TestFrames.ContainerMac, C, Hip, 1, 2))); // the real MAC: not NeuV
        Assert.Equal(FrameVerdict.NoWorkload, rig.Send(TestFrames.Udp(TestFrames.BroadcastAlias, H, Hip, C, 1, 2))); // bcmac lacks the prefix
        Assert.Equal(FrameVerdict.Malformed, rig.Send(OutUdp().AsSpan(0, 30).ToArray()));
        Assert.Equal(3, rig.Processor.Counters.NoWorkloadPackets);
        Assert.Equal(1, rig.Processor.Counters.MalformedPackets);
        Assert.Equal(0, rig.Sessions.Count);

        var tapped = new Rig(tap: true);
        Assert.Equal(FrameVerdict.Tap, tapped.Send(OutUdp()));
        Assert.Equal(SessionFlags.Tap, tapped.Only().Flags);
        Assert.Equal(1, tapped.Processor.Counters.TapPackets);
    }

    [Theory]
    [InlineData("udp", 30)]
    [InlineData("icmp", 5)]
    [InlineData("gre", 15)]
    [InlineData("syn", 20)]
    public void Idle_sessions_expire_after_their_protocols_timeout(string kind, int timeout)
    {
        var rig = new Rig();
        byte[] first = kind switch
        {
            "udp" => OutUdp(),
            "icmp" => TestFrames.Icmp(H, U, C, Hip, 8, 7),
            "gre" => TestFrames.Ip(H, U, C, Hip, 47, new byte[8]),
            _ => OutTcp(Syn),
        };
        rig.Send(first);
        rig.At(timeout - 1, () => Assert.Equal(0, rig.Expire()));
        rig.Send(first);                                     // a packet restarts the timeout
        rig.At(timeout - 1, () => Assert.Equal(0, rig.Expire()));
        Assert.Equal(1, rig.Only().Life);
        rig.At(1, () => Assert.Equal(1, rig.Expire()));
        Assert.Equal(0, rig.Sessions.Count);
        Assert.Equal(1, rig.Sessions.Expired);
        Assert.Equal((0, 0), (rig.Workload.State.CurrentSessionsIn, rig.Workload.State.CurrentSessionsOut));
    }

    [Fact]
    public void Tcp_without_client_data_moves_to_the_established_timeout_instead_of_expiring()
    {
        var rig = new Rig();
        rig.Send(OutTcp(Syn)); rig.Send(InTcp(Syn | Ack)); rig.Send(OutTcp(Ack));
        Assert.Equal(TimeoutClass.TcpNoData, rig.Only().Class);
        rig.At(30, () => Assert.Equal(0, rig.Expire()));
        Assert.Equal(TimeoutClass.TcpEstablished, rig.Only().Class);
        Assert.Equal(1200, rig.Only().Life);
        rig.At(1199, () => Assert.Equal(0, rig.Expire()));
        rig.At(1, () => Assert.Equal(1, rig.Expire()));
    }

    [Fact]
    public void Tcp_close_states_use_the_close_and_half_close_timeouts()
    {
        var rig = new Rig();
        rig.Send(OutTcp(Syn)); rig.Send(InTcp(Syn | Ack)); rig.Send(OutTcp(Ack)); rig.Send(OutTcp(Ack, 10));
        rig.Send(OutTcp(Fin | Ack));
        Assert.Equal((TcpState.FinWait1, TcpState.CloseWait), (rig.Only().ClientState, rig.Only().ServerState));
        rig.Send(InTcp(Ack));
        Assert.Equal((TcpState.CloseWait, TcpState.FinWait2, TimeoutClass.TcpHalfClosed), (rig.Only().ServerState, rig.Only().ClientState, rig.Only().Class));
        Assert.Equal(90, rig.Only().Life);
        rig.Send(InTcp(Fin | Ack));
        rig.Send(OutTcp(Ack));
        var s = rig.Only();
        Assert.Equal(TimeoutClass.TcpClosed, s.Class);
        Assert.Equal(TcpState.Close, s.ServerState);
        rig.At(15, () => Assert.Equal(1, rig.Expire()));

        rig.Send(OutTcp(Syn)); rig.Send(InTcp(Rst | Ack));
        Assert.Equal((TcpState.Close, TcpState.Close, TimeoutClass.TcpClosed), (rig.Only().ClientState, rig.Only().ServerState, rig.Only().Class));
        Assert.Equal(15, rig.Only().Life);
    }

    [Fact]
    public void A_new_syn_on_a_closed_conversation_starts_a_new_session()
    {
        var rig = new Rig();
        rig.Send(OutTcp(Syn)); rig.Send(InTcp(Rst | Ack));
        uint first = rig.Only().Id;
        rig.Send(OutTcp(Syn));
        var s = rig.Only();
        Assert.NotEqual(first, s.Id);
        Assert.Equal(TimeoutClass.TcpOpening, s.Class);
        Assert.Equal(1, rig.Workload.State.CurrentSessionsOut);
    }

    [Fact]
    public void A_full_table_evicts_the_session_closest_to_expiring()
    {
        var rig = new Rig(capacity: 4);
        rig.Send(OutUdp(1000));                              // expires at +30
        rig.At(1, () => rig.Send(OutUdp(1001)));             // +31
        rig.At(1, () => rig.Send(TestFrames.Icmp(H, U, C, Hip, 8, 1))); // ICMP: +2+5 = +7, the earliest
        rig.At(1, () => rig.Send(OutUdp(1003)));
        Assert.Equal(4, rig.Sessions.Count);

        rig.Send(OutUdp(1004));
        Assert.Equal(4, rig.Sessions.Count);
        Assert.Equal(1, rig.Sessions.Evicted);
        Assert.DoesNotContain(rig.Sessions.Snapshot(rig.Clock.NowSeconds), s => s.Protocol == 1);

        rig.Send(OutUdp(1005));                              // next: the oldest UDP one
        Assert.DoesNotContain(rig.Sessions.Snapshot(rig.Clock.NowSeconds), s => s.ClientPort == 1000);
        Assert.Equal(4, rig.Workload.State.CurrentSessionsOut);
    }

    [Fact]
    public void Clear_and_endpoint_removal_release_sessions_and_counters()
    {
        var rig = new Rig();
        rig.Send(OutUdp(1)); rig.Send(OutUdp(2)); rig.Send(InUdp(3, 4));
        var ids = rig.Sessions.Snapshot(rig.Clock.NowSeconds).Select(s => s.Id).ToArray();
        Assert.Equal(1, rig.Sessions.Clear(ids[1]));
        Assert.Equal(0, rig.Sessions.Clear(ids[1]));
        Assert.Equal(2, rig.Sessions.Count);
        Assert.Equal(2, rig.Sessions.RemoveEndpoint(TestFrames.ContainerMac));
        Assert.Equal((0, 0, 0), (rig.Sessions.Count, rig.Workload.State.CurrentSessionsIn, rig.Workload.State.CurrentSessionsOut));
        rig.Send(OutUdp(1));
        Assert.Equal(1, rig.Sessions.Clear(0));
    }

    [Fact]
    public void The_index_agrees_with_a_reference_model_under_random_traffic_and_expiry()
    {
        // random UDP flows, random directions and clock steps; the model is a dictionary of flow -> last seen
        var rig = new Rig(capacity: 2048);
        var random = new Random(12345);
        var model = new Dictionary<(ushort, ushort), long>();
        for (int step = 0; step < 200_000; step++)
        {
            if (random.Next(50) == 0)
            {
                rig.Clock.Advance(random.Next(1, 4));
                rig.Expire();
                foreach (var k in model.Where(kv => kv.Value + 30 <= rig.Clock.NowSeconds).Select(kv => kv.Key).ToList()) model.Remove(k);
            }
            var flow = ((ushort)random.Next(1, 700), (ushort)random.Next(1, 3));
            var frame = random.Next(2) == 0 ? OutUdp(flow.Item1, flow.Item2) : InUdp(flow.Item2, flow.Item1);
            rig.Send(frame);
            model[flow] = rig.Clock.NowSeconds;
            if (step % 997 == 0)
            {
                // every session, keyed as the model keys it: (container port, host port)
                var flows = rig.Sessions.Snapshot(rig.Clock.NowSeconds)
                    .Select(x => x.ClientIP[3] == 88 ? (x.ClientPort, x.ServerPort) : (x.ServerPort, x.ClientPort)).ToList();
                Assert.Equal(model.Count, rig.Sessions.Count);
                Assert.Equal(model.Keys.OrderBy(k => k), flows.OrderBy(k => k));
            }
        }
        Assert.Equal(0, rig.Sessions.Evicted);
        Assert.Equal(rig.Sessions.Count, rig.Workload.State.CurrentSessionsIn + rig.Workload.State.CurrentSessionsOut);
    }

    [Fact]
    public void A_million_frames_through_parse_classify_lookup_and_session_update_allocate_nothing()
    {
        var rig = new Rig(capacity: 4096);
        var frames = new List<byte[]>();
        for (ushort f = 0; f < 64; f++)
        {
            frames.Add(OutTcp(Syn, sport: (ushort)(40000 + f)));
            frames.Add(InTcp(Syn | Ack, dport: (ushort)(40000 + f)));
            frames.Add(OutTcp(Ack, 100, sport: (ushort)(40000 + f)));
            frames.Add(OutUdp((ushort)(10000 + f)));
            frames.Add(InUdp(dport: (ushort)(10000 + f)));
            frames.Add(TestFrames.Icmp(H, U, C, Hip, 8, f));
        }
        frames.Add(TestFrames.Udp(H, 0x4e6575560999, C, Hip, 1, 2));   // unknown workload
        frames.Add(TestFrames.Udp(H, 0x020000000001, C, Hip, 1, 2));   // not NeuV
        var tx = new byte[2048];
        ulong checksum = 0;
        void Run(int count)
        {
            for (int n = 0; n < count; n++)
            {
                var frame = frames[n % frames.Count];
                if (rig.Processor.Process(frame, frame.Length, rig.Table, rig.Clock.NowSeconds, out var info) == FrameVerdict.Forward)
                    frame.AsSpan().CopyTo(tx);                              // the TX copy
                checksum += info.SourceMac;
                if (n % 50_000 == 0) { rig.Clock.Advance(7); rig.Expire(); } // sessions expire and are created again
            }
        }
        Run(frames.Count * 10); // warm up: JIT, tiering
        long allocated = Allocations.Fewest(() => Run(1_000_000));
        Assert.NotEqual(0UL, checksum);
        Assert.True(rig.Sessions.Expired > 0 && rig.Sessions.Created > 64 * 4);
        Assert.Equal(0, allocated);
    }
}
