using System;
using System.Buffers.Binary;
using NvRedirect.Core.Packets;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// Builds the two TCP resets nvr-dp writes when a session becomes denied (as NeuVector's dp/dpi/dpi_entry.c does): one to the receiver of the
/// dropped segment (same addresses, its sequence number: what the receiver expects next) and one back to its sender
/// (addresses swapped, sequence = the segment's acknowledgement: what the sender expects next). The Ethernet addresses
/// are the frame's own, so one of them is the workload's NeuV alias and the vbr tc rules steer each reset to its side
/// with the real MAC restored. IPv4 and IPv6 (an IPv6 reset carries no extension headers). Allocates nothing.
/// </summary>
internal static class TcpReset
{
    /// <summary>Length of an IPv4 reset frame: Ethernet 14 + IPv4 20 + TCP 20.</summary>
    public const int FrameLength = 54;
    /// <summary>Length of an IPv6 reset frame: Ethernet 14 + IPv6 40 + TCP 20 (the buffer size for both).</summary>
    public const int MaxFrameLength = 74;
    private const byte Fin = 1, Syn = 2, Rst = 4, Ack = 16;

    /// <summary>
    /// Writes the reset into <paramref name="output"/> (at least <see cref="FrameLength"/> bytes) and returns its length,
    /// (<see cref="MaxFrameLength"/> for IPv6), or 0 when <paramref name="frame"/> is not a TCP segment.
    /// </summary>
    public static int Build(ReadOnlySpan<byte> frame, in FrameInfo info, bool towardsSender, Span<byte> output)
    {
        if (info.IpVersion is not (4 or 6) || info.Protocol != 6 || info.L4Offset == 0 || info.L4Offset + 20 > frame.Length) return 0;
        int l3 = info.L3Offset, l4 = info.L4Offset;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(frame[(l4 + 4)..]);
        uint ack = BinaryPrimitives.ReadUInt32BigEndian(frame[(l4 + 8)..]);
        byte flags = frame[l4 + 13];
        // the segment's payload: from the end of the IP packet back to the end of the TCP header
        int ipEnd = info.IpVersion == 4 ? l3 + BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 2)..]) : l3 + 40 + BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 4)..]);
        int payload = ipEnd - l4 - (frame[l4 + 12] >> 4) * 4;
        uint end = seq + (uint)Math.Max(payload, 0) + ((flags & Syn) != 0 ? 1u : 0) + ((flags & Fin) != 0 ? 1u : 0);
        bool hasAck = (flags & Ack) != 0;

        bool v6 = info.IpVersion == 6;
        int length = v6 ? MaxFrameLength : FrameLength;
        var o = output[..length];
        o.Clear();
        // Ethernet: as the frame, or swapped
        if (towardsSender) { frame.Slice(6, 6).CopyTo(o); frame[..6].CopyTo(o[6..]); }
        else frame[..12].CopyTo(o);
        BinaryPrimitives.WriteUInt16BigEndian(o[12..], v6 ? FrameParser.EtherTypeIPv6 : FrameParser.EtherTypeIPv4);
        var ip = o[14..];
        if (v6)
        {
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 20);
            ip[6] = 6;
            ip[7] = 64;
            var source = frame.Slice(l3 + 8, 16);
            var destination = frame.Slice(l3 + 24, 16);
            (towardsSender ? destination : source).CopyTo(ip[8..]);
            (towardsSender ? source : destination).CopyTo(ip[24..]);
        }
        else
        {
            ip[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], 40);
            ip[6] = 0x40; // DF
            ip[8] = 64;
            ip[9] = 6;
            var source = frame.Slice(l3 + 12, 4);
            var destination = frame.Slice(l3 + 16, 4);
            (towardsSender ? destination : source).CopyTo(ip[12..]);
            (towardsSender ? source : destination).CopyTo(ip[16..]);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.IPv4HeaderChecksum(ip[..20]));
        }
        // TCP
        var tcp = o[(v6 ? 54 : 34)..];
        var sourcePort = frame.Slice(l4, 2);
        var destinationPort = frame.Slice(l4 + 2, 2);
        (towardsSender ? destinationPort : sourcePort).CopyTo(tcp);
        (towardsSender ? sourcePort : destinationPort).CopyTo(tcp[2..]);
        uint rstSeq, rstAck;
        if (towardsSender) { rstSeq = hasAck ? ack : 0; rstAck = end; }
        else { rstSeq = seq; rstAck = hasAck ? ack : 0; }
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], rstSeq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], rstAck);
        tcp[12] = 0x50;
        tcp[13] = (byte)(Rst | (towardsSender || hasAck ? Ack : 0));
        Checksum.CompleteTransportChecksum(o, 14);
        return length;
    }
}
