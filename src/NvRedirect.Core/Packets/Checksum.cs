using System;
using System.Buffers.Binary;

namespace NvRedirect.Core.Packets;

/// <summary>
/// The Internet checksum (RFC 1071) for IPv4 headers and TCP/UDP over IPv4/IPv6, without allocating.
/// Sums are kept in the little-endian domain: adding 16-bit words read little-endian and folding gives the
/// byte-swapped one's complement sum, so the final value is stored little-endian and lands in network order.
/// </summary>
public static class Checksum
{
    /// <summary>Adds <paramref name="data"/> to a running sum (data must start at an even offset of the summed stream).</summary>
    public static ulong Accumulate(ReadOnlySpan<byte> data, ulong sum)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            ulong w = BinaryPrimitives.ReadUInt64LittleEndian(data[i..]);
            sum += (w & 0xffffffff) + (w >> 32); // 2^32 = 1 (mod 2^16 - 1), so 32-bit halves fold like 16-bit words
        }
        if (i + 4 <= data.Length) { sum += BinaryPrimitives.ReadUInt32LittleEndian(data[i..]); i += 4; }
        if (i + 2 <= data.Length) { sum += BinaryPrimitives.ReadUInt16LittleEndian(data[i..]); i += 2; }
        if (i < data.Length) sum += data[i]; // odd tail: padded with a zero byte
        return sum;
    }

    /// <summary>Folds a running sum to 16 bits (still in the little-endian domain, not complemented).</summary>
    public static ushort Fold(ulong sum)
    {
        sum = (sum & 0xffffffff) + (sum >> 32);
        sum = (sum & 0xffffffff) + (sum >> 32);
        uint s = (uint)sum;
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        return (ushort)s;
    }

    /// <summary>A 16-bit big-endian value as it adds in the little-endian domain.</summary>
    private static ulong Word(int bigEndianValue) => BinaryPrimitives.ReverseEndianness((ushort)bigEndianValue);

    /// <summary>
    /// Recomputes the TCP or UDP checksum of the IPv4/IPv6 packet at <paramref name="l3Offset"/> in place (whatever the
    /// field held: a partial pseudo-header sum from checksum offload, or garbage). Returns false, touching nothing,
    /// when the packet is not an unfragmented TCP/UDP packet whose headers fit in <paramref name="frame"/>.
    /// </summary>
    public static bool CompleteTransportChecksum(Span<byte> frame, int l3Offset)
    {
        if (!Locate(frame, l3Offset, out int l4, out int l4Length, out int field, out bool udp)) return false;
        frame[field] = 0;
        frame[field + 1] = 0;
        ushort value = (ushort)~Fold(TransportSum(frame, l3Offset, l4, l4Length));
        if (udp && value == 0) value = 0xffff; // RFC 768: a computed zero is sent as all ones
        BinaryPrimitives.WriteUInt16LittleEndian(frame[field..], value);
        return true;
    }

    /// <summary>Whether the TCP/UDP checksum of the packet at <paramref name="l3Offset"/> verifies (false when not TCP/UDP).</summary>
    public static bool VerifyTransportChecksum(ReadOnlySpan<byte> frame, int l3Offset)
    {
        if (!Locate(frame, l3Offset, out int l4, out int l4Length, out int field, out bool udp)) return false;
        if (udp && frame[field] == 0 && frame[field + 1] == 0 && frame[l3Offset] >> 4 == 4) return true; // IPv4 UDP: no checksum
        return Fold(TransportSum(frame, l3Offset, l4, l4Length)) == 0xffff;
    }

    /// <summary>The IPv4 header checksum over <paramref name="header"/> with its checksum field taken as zero.</summary>
    public static ushort IPv4HeaderChecksum(ReadOnlySpan<byte> header)
    {
        ulong sum = Accumulate(header[..10], 0);
        sum = Accumulate(header[12..], sum);
        return BinaryPrimitives.ReverseEndianness((ushort)~Fold(sum));
    }

    private static ulong TransportSum(ReadOnlySpan<byte> frame, int l3, int l4, int l4Length)
    {
        ulong sum;
        if (frame[l3] >> 4 == 4) sum = Accumulate(frame.Slice(l3 + 12, 8), 0) + Word(frame[l3 + 9]);
        else sum = Accumulate(frame.Slice(l3 + 8, 32), 0) + Word(frame[l3 + 6]);
        sum += Word(l4Length);
        return Accumulate(frame.Slice(l4, l4Length), sum);
    }

    private static bool Locate(ReadOnlySpan<byte> frame, int l3, out int l4, out int l4Length, out int field, out bool udp)
    {
        l4 = l4Length = field = 0;
        udp = false;
        if (l3 < 0 || frame.Length < l3 + 20) return false;
        byte protocol;
        int version = frame[l3] >> 4;
        if (version == 4)
        {
            int ihl = (frame[l3] & 0x0f) * 4;
            int total = BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 2)..]);
            if (ihl < 20 || total < ihl || l3 + total > frame.Length) return false;
            if ((BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 6)..]) & 0x3fff) != 0) return false; // MF or offset: a fragment
            protocol = frame[l3 + 9];
            l4 = l3 + ihl;
            l4Length = total - ihl;
        }
        else if (version == 6)
        {
            if (frame.Length < l3 + 40) return false;
            int payload = BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 4)..]);
            if (l3 + 40 + payload > frame.Length) return false;
            protocol = frame[l3 + 6]; // extension headers are not walked: such packets are left alone
            l4 = l3 + 40;
            l4Length = payload;
        }
        else return false;
        if (protocol == 6 && l4Length >= 20) field = l4 + 16;
        else if (protocol == 17 && l4Length >= 8) { field = l4 + 6; udp = true; }
        else return false;
        return true;
    }
}
