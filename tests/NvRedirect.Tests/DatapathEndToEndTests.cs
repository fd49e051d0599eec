using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath;
using NvRedirect.Datapath.Engine;
using NvRedirect.Core.Packets;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The packet engine on a real veth: namespace N holds a&lt;-&gt;b, the engine serves b, frames are injected on a
/// with the NeuV alias as source MAC (what tc sends dp for egress) and read back on a.
/// </summary>
public class DatapathEndToEndTests
{
    private const ulong U = TestFrames.UnicastAlias, H = TestFrames.HostMac;
    private const uint C = TestFrames.ContainerIp, Hip = TestFrames.HostIp;
    private const ulong SentinelAlias = 0x4e6575560002;

    private sealed class Rig : IDisposable
    {
        public readonly TestNamespace Ns = TestNamespace.WithVeth("engine", "a", "b", quiet: true);
        public readonly Logger Log = new(null, false, keepInMemory: true);
        public readonly PacketEngine Engine;
        public readonly ServicePort Port;
        public readonly WorkloadState Workload = new() { Tap = false };
        public readonly WorkloadState Sentinel = new() { Tap = false };
        public readonly RawPacketSocket A;

        public Rig()
        {
            try
            {
                Engine = new PacketEngine(4096, DatapathClock.Monotonic, Log);
                Port = ServicePort.Open(Ns.Name, Ns.B, false, Engine.Processor, Engine.Workloads, Engine.Clock, Log);
                Engine.AttachPort(Port);
                Engine.Workloads.Publish(new WorkloadTable([
                    new Workload("b", TestFrames.ContainerMac, U, TestFrames.BroadcastAlias, 0, [], [], Workload),
                    new Workload("b", 0x020000000002, SentinelAlias, 0, 0, [], [], Sentinel),
                ]));
                A = RawPacketSocket.Open(Ns.Name, Ns.A);
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        /// <summary>Sends a frame of the always-inline sentinel workload and reads until it is back: everything sent before it was handled.</summary>
        public List<byte[]> ReceiveThroughSentinel(string marker)
        {
            var sentinel = TestFrames.Icmp(H, SentinelAlias, 0x0a0a0a02, Hip, 8, 4242, 1, "SENTINEL-" + marker);
            A.Send(sentinel);
            var frames = A.ReceiveUntil(got => got.Any(f => f.AsSpan().SequenceEqual(sentinel)), TimeSpan.FromSeconds(10));
            Assert.Contains(frames, f => f.AsSpan().SequenceEqual(sentinel));
            return frames.Where(f => !f.AsSpan().SequenceEqual(sentinel)).ToList();
        }

        public void Dispose()
        {
            A?.Dispose();
            Engine?.Dispose();
            Ns.Dispose();
        }
    }

    private static bool Has(byte[] frame, string marker) => frame.AsSpan().IndexOf(Encoding.ASCII.GetBytes(marker)) >= 0;

    [RootFact]
    public void Inline_frames_come_back_unchanged_and_in_order()
    {
        using var rig = new Rig();
        var sent = Enumerable.Range(0, 200).Select(i => TestFrames.Icmp(H, U, C, Hip, 8, 7, (ushort)i, "NVR-INLINE")).ToList();
        sent.Add(TestFrames.Tcp(H, U, C, Hip, 40000, 80, 0x02));
        sent.Add(TestFrames.Udp(U, H, Hip, C, 53, 5353));                 // ingress: the alias as destination
        foreach (var f in sent) rig.A.Send(f);

        var back = rig.ReceiveThroughSentinel("inline");
        Assert.Equal(sent.Count, back.Count);
        for (int i = 0; i < sent.Count; i++) Assert.Equal(sent[i], back[i]);
        var c = rig.Engine.Counters;
        Assert.True(c.ForwardPackets >= sent.Count && c.TxPackets >= sent.Count);
        var count = rig.Engine.OnPacketThread(() => (rig.Engine.Sessions.CurrentIcmp, rig.Engine.Sessions.CurrentTcp, rig.Engine.Sessions.CurrentUdp));
        Assert.Equal((2, 1, 1), count); // the workload's echo session, the sentinel's, one TCP, one UDP
    }

    [RootFact]
    public void Tapped_unknown_and_non_neuv_frames_are_not_transmitted_and_are_counted()
    {
        using var rig = new Rig();
        rig.Workload.Tap = true;
        var c = rig.Engine.Counters;
        for (int i = 0; i < 30; i++) rig.A.Send(TestFrames.Icmp(H, U, C, Hip, 8, 9, (ushort)i, "NVR-TAPPED"));
        for (int i = 0; i < 20; i++) rig.A.Send(TestFrames.Icmp(H, 0x4e6575560999, C, Hip, 8, 9, (ushort)i, "NVR-UNKNOWN"));
        for (int i = 0; i < 10; i++) rig.A.Send(TestFrames.Icmp(H, 0x020000000077, C, Hip, 8, 9, (ushort)i, "NVR-NOTNEUV"));

        var back = rig.ReceiveThroughSentinel("tap");
        Assert.DoesNotContain(back, f => Has(f, "NVR-"));
        Assert.Equal(30, c.TapPackets);
        Assert.Equal(30, rig.Workload.PacketsOut);
        Assert.True(c.NoWorkloadPackets >= 30, $"{c.NoWorkloadPackets} frames counted without a workload");
        Assert.Equal(1, rig.Engine.OnPacketThread(() => rig.Engine.Sessions.Snapshot(0).Count(s => s.EndpointMac == TestFrames.ContainerMac)));
    }

    [RootFact]
    public void A_vlan_tag_the_kernel_moved_into_the_ring_header_is_written_back()
    {
        using var rig = new Rig();
        var tagged = TestFrames.Tagged(TestFrames.Icmp(H, U, C, Hip, 8, 11, 1, "NVR-VLAN"), 42);
        rig.A.Send(tagged);
        var back = rig.ReceiveThroughSentinel("vlan");
        Assert.Equal(tagged, Assert.Single(back, f => Has(f, "NVR-VLAN")));
    }

    [RootFact]
    public void A_partial_checksum_from_transmit_offload_is_completed_before_the_frame_goes_back()
    {
        using var rig = new Rig();
        using var offload = RawPacketSocket.Open(rig.Ns.Name, rig.Ns.A, vnetHeader: true);
        var complete = TestFrames.Tcp(H, U, C, Hip, 40100, 8080, 0x18, payload: 64);
        // what the TCP stack hands a veth with TX checksum offload: the pseudo-header sum in the field, CHECKSUM_PARTIAL
        var partial = (byte[])complete.Clone();
        ulong pseudo = Checksum.Accumulate(partial.AsSpan(26, 8), 0) + BinaryPrimitives.ReverseEndianness((ushort)6)
            + BinaryPrimitives.ReverseEndianness((ushort)(partial.Length - 34));
        BinaryPrimitives.WriteUInt16LittleEndian(partial.AsSpan(50), Checksum.Fold(pseudo));
        Assert.False(Checksum.VerifyTransportChecksum(partial, 14));
        var vnet = new byte[10];
        vnet[0] = 1;                                                  // VIRTIO_NET_HDR_F_NEEDS_CSUM
        BinaryPrimitives.WriteUInt16LittleEndian(vnet.AsSpan(6), 34); // csum_start: the TCP header
        BinaryPrimitives.WriteUInt16LittleEndian(vnet.AsSpan(8), 16); // csum_offset: th_sum
        offload.Send(partial, vnet);

        var back = Assert.Single(rig.ReceiveThroughSentinel("csum"));
        Assert.True(Checksum.VerifyTransportChecksum(back, 14));
        Assert.Equal(complete, back);
        Assert.True(rig.Engine.Counters.ChecksumsCompleted >= 1);
    }

    [RootFact]
    public void A_frame_larger_than_a_ring_slot_is_read_whole_and_sent_back_whole()
    {
        using var rig = new Rig();
        rig.Ns.SetMtu(rig.Ns.A, 9000);  // the rings were sized for MTU 1500: 2048-byte slots
        rig.Ns.SetMtu(rig.Ns.B, 9000);
        var big = TestFrames.Udp(H, U, C, Hip, 7000, 7001, payload: 5000);
        Encoding.ASCII.GetBytes("NVR-LARGE").CopyTo(big, 42);
        rig.A.Send(big);
        var back = rig.ReceiveThroughSentinel("large");
        Assert.Equal(big, Assert.Single(back, f => Has(f, "NVR-LARGE")));
        Assert.Equal(1, rig.Engine.Counters.LargeFrames);
        Assert.Equal(0, rig.Engine.Counters.LostLargeFrames);
    }

    [RootFact]
    public void A_gso_frame_above_the_mtu_is_sent_back_as_gso()
    {
        using var rig = new Rig();
        using var offload = RawPacketSocket.Open(rig.Ns.Name, rig.Ns.A, vnetHeader: true);
        var segment = TestFrames.Tcp(H, U, C, Hip, 40200, 8080, 0x18, payload: 4000);
        Encoding.ASCII.GetBytes("NVR-GSO").CopyTo(segment, 54);
        ulong pseudo = Checksum.Accumulate(segment.AsSpan(26, 8), 0) + BinaryPrimitives.ReverseEndianness((ushort)6)
            + BinaryPrimitives.ReverseEndianness((ushort)(segment.Length - 34));
        BinaryPrimitives.WriteUInt16LittleEndian(segment.AsSpan(50), Checksum.Fold(pseudo));
        var vnet = new byte[10];
        vnet[0] = 1;                                                    // NEEDS_CSUM
        vnet[1] = 1;                                                    // VIRTIO_NET_HDR_GSO_TCPV4
        BinaryPrimitives.WriteUInt16LittleEndian(vnet.AsSpan(2), 54);   // hdr_len
        BinaryPrimitives.WriteUInt16LittleEndian(vnet.AsSpan(4), 1448); // gso_size
        BinaryPrimitives.WriteUInt16LittleEndian(vnet.AsSpan(6), 34);
        BinaryPrimitives.WriteUInt16LittleEndian(vnet.AsSpan(8), 16);
        offload.Send(segment, vnet);

        var back = rig.ReceiveThroughSentinel("gso").Where(f => Has(f, "NVR-GSO")).ToList();
        Assert.Equal(segment, Assert.Single(back)); // one frame above the MTU, still carrying the partial checksum
        Assert.Equal(1, rig.Engine.Counters.LargeFrames);
        Assert.Equal(0, rig.Engine.Counters.TxErrors);
    }

    [RootFact]
    public void The_packet_thread_allocates_nothing_per_frame()
    {
        using var rig = new Rig();
        var frames = Enumerable.Range(0, 64).SelectMany(i => new[]
        {
            TestFrames.Icmp(H, U, C, Hip, 8, (ushort)i, 1, "NVR-ALLOC"),
            TestFrames.Udp(U, H, Hip, C, 53, (ushort)(6000 + i)),
            TestFrames.Tcp(H, U, C, Hip, (ushort)(41000 + i), 80, 0x10, 20),
            TestFrames.Tagged(TestFrames.Udp(H, U, C, Hip, (ushort)(7000 + i), 53), 7),
        }).ToList();
        void Round(string marker)
        {
            foreach (var f in frames) rig.A.Send(f);
            Assert.Equal(frames.Count, rig.ReceiveThroughSentinel(marker).Count);
        }
        Round("warm1");
        Round("warm2");
        long before = rig.Port.PacketThreadAllocatedBytes;
        for (int i = 0; i < 20; i++) Round("measure" + i);
        Assert.True(rig.Engine.Counters.TxPackets > 20 * frames.Count);
        Assert.Equal(before, rig.Port.PacketThreadAllocatedBytes);
    }
}
