using System;
using System.Buffers.Binary;
using NvRedirect.Packets;

namespace NvRedirect.Datapath.Engine;

/// <summary>What to do with a frame.</summary>
internal enum FrameVerdict : byte
{
    /// <summary>Write it back unchanged (the workload is inline: tap off).</summary>
    Forward,
    /// <summary>Inspected and accounted, not transmitted (tap on: someone else delivered the original).</summary>
    Tap,
    /// <summary>No NeuV MAC, or a NeuV MAC no workload is registered under: dropped.</summary>
    NoWorkload,
    /// <summary>A workload frame whose headers do not parse: dropped.</summary>
    Malformed,
}

/// <summary>Datapath-wide counters. Written by the packet thread only; other threads read them (64-bit reads are atomic on x64).</summary>
internal sealed class DatapathCounters
{
    public long RxPackets, RxBytes;
    /// <summary>Frames written back, and frames that could not be (TX ring full, send error).</summary>
    public long TxPackets, TxBytes, TxDropped, TxErrors;
    public long ForwardPackets, TapPackets, NoWorkloadPackets, MalformedPackets;
    public long IPv4Packets, IPv6Packets, TcpPackets, UdpPackets, IcmpPackets, OtherPackets, Fragments;
    /// <summary>Frames larger than a ring slot read whole from the socket, and those lost (no full copy available).</summary>
    public long LargeFrames, LostLargeFrames;
    /// <summary>Frames whose TCP/UDP checksum was completed (TP_STATUS_CSUMNOTREADY).</summary>
    public long ChecksumsCompleted;
    /// <summary>Frames this host sent out the port, skipped.</summary>
    public long OutgoingSkipped;
    /// <summary>Frames the kernel dropped because the RX ring was full (PACKET_STATISTICS tp_drops).</summary>
    public long RingDrops;
    /// <summary>TCP segments that neither matched nor opened a session (RST/FIN of an unknown conversation).</summary>
    public long TcpNoSessionPackets;
}

/// <summary>
/// The per-frame decision, free of sockets so it can be tested and benchmarked alone: classify by the NeuV MAC prefix
/// (source = egress from the workload, else destination = ingress), find the workload by the full MAC, parse, count,
/// track the session, and say whether to forward. Allocates nothing.
/// </summary>
internal sealed class FrameProcessor(SessionTable sessions, DatapathCounters counters)
{
    /// <summary>"NeuV" (4e:65:75:56): the first four bytes of every MAC tc rewrites a steered frame to.</summary>
    public const ulong NeuVPrefix = 0x4e657556;

    /// <summary>The session table (owned by the packet thread).</summary>
    public SessionTable Sessions { get; } = sessions;
    /// <summary>The counters.</summary>
    public DatapathCounters Counters { get; } = counters;

    /// <summary>Decides about one frame (<paramref name="wireLength"/> may exceed the span for truncated captures).</summary>
    public FrameVerdict Process(ReadOnlySpan<byte> frame, int wireLength, WorkloadTable workloads, long now, out FrameInfo info)
    {
        var c = Counters;
        c.RxPackets++;
        c.RxBytes += wireLength;
        info = default;
        if (frame.Length < 14) { c.MalformedPackets++; return FrameVerdict.Malformed; }

        ulong destination = FrameParser.ReadMac(frame);
        ulong source = FrameParser.ReadMac(frame[6..]);
        bool ingress;
        Workload? workload;
        if (source >> 16 == NeuVPrefix) { ingress = false; workloads.TryGet(source, out workload); }
        else if (destination >> 16 == NeuVPrefix) { ingress = true; workloads.TryGet(destination, out workload); }
        else { ingress = false; workload = null; }
        if (workload is null) { c.NoWorkloadPackets++; return FrameVerdict.NoWorkload; }

        if (FrameParser.Parse(frame, out info) != FrameError.None) { c.MalformedPackets++; return FrameVerdict.Malformed; }

        var state = workload.State;
        if (ingress) { state.PacketsIn++; state.BytesIn += wireLength; }
        else { state.PacketsOut++; state.BytesOut += wireLength; }

        if (info.IpVersion != 0) Track(frame, in info, ingress, wireLength, workload, now);

        if (state.Tap) { c.TapPackets++; return FrameVerdict.Tap; }
        c.ForwardPackets++;
        return FrameVerdict.Forward;
    }

    private void Track(ReadOnlySpan<byte> frame, in FrameInfo info, bool ingress, int wireLength, Workload workload, long now)
    {
        var c = Counters;
        int l3 = info.L3Offset;
        PacketTuple t = default;
        if (info.IpVersion == 4)
        {
            c.IPv4Packets++;
            uint dst = info.DestinationIPv4;
            if (dst == 0xffffffff || dst >> 28 == 0xe) return; // broadcast / multicast: forwarded, not tracked (as NeuVector)
            const ulong V4Mapped = 0xffff00000000UL;
            t.SourceLow = V4Mapped | info.SourceIPv4;
            t.DestinationLow = V4Mapped | dst;
        }
        else
        {
            c.IPv6Packets++;
            if (frame[l3 + 24] == 0xff) return; // multicast
            t.IPv6 = true;
            t.SourceHigh = BinaryPrimitives.ReadUInt64BigEndian(frame[(l3 + 8)..]);
            t.SourceLow = BinaryPrimitives.ReadUInt64BigEndian(frame[(l3 + 16)..]);
            t.DestinationHigh = BinaryPrimitives.ReadUInt64BigEndian(frame[(l3 + 24)..]);
            t.DestinationLow = BinaryPrimitives.ReadUInt64BigEndian(frame[(l3 + 32)..]);
        }
        if (info.IsLaterFragment) { c.Fragments++; return; } // no ports: passes with the conversation, untracked

        t.Protocol = info.Protocol;
        t.Ingress = ingress;
        t.SourceMac = info.SourceMac;
        t.DestinationMac = info.DestinationMac;
        t.Length = wireLength;
        switch (info.Protocol)
        {
            case 6:
                c.TcpPackets++;
                t.SourcePort = info.SourcePort;
                t.DestinationPort = info.DestinationPort;
                t.TcpFlags = info.TcpFlags;
                int ipPayload = info.IpVersion == 4
                    ? BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 2)..]) - (frame[l3] & 0x0f) * 4
                    : BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 4)..]);
                t.PayloadLength = ipPayload - (frame[info.L4Offset + 12] >> 4) * 4;
                break;
            case 17:
                c.UdpPackets++;
                t.SourcePort = info.SourcePort;
                t.DestinationPort = info.DestinationPort;
                break;
            case 1:
            case 58:
                c.IcmpPackets++;
                if (IsIcmpError(info)) return; // errors belong to another conversation: forwarded, not tracked
                t.SourcePort = t.DestinationPort = info.SourcePort; // echo identifier, equal both ways
                t.IcmpTypeCode = (ushort)(info.IcmpType << 8 | info.IcmpCode);
                break;
            default:
                c.OtherPackets++;
                break;
        }
        if (Sessions.Track(in t, workload, now) < 0) c.TcpNoSessionPackets++;
    }

    private static bool IsIcmpError(in FrameInfo info)
        => info.Protocol == 1 ? info.IcmpType is 3 or 4 or 5 or 11 or 12 : info.IcmpType is >= 1 and <= 4;
}
