using System;
using System.Buffers.Binary;

namespace NvRedirect.Core.Packets;

/// <summary>What a frame carries, parsed without allocating (the datapath reuses it per packet).</summary>
public struct FrameInfo
{
    /// <summary>Destination MAC as a 48-bit number (byte 0 most significant).</summary>
    public ulong DestinationMac;
    /// <summary>Source MAC as a 48-bit number.</summary>
    public ulong SourceMac;
    /// <summary>The ethertype after any 802.1Q tags.</summary>
    public ushort EtherType;
    /// <summary>802.1Q VLAN id, or -1 when untagged.</summary>
    public int VlanId;
    /// <summary>Offset of the L3 header in the frame.</summary>
    public int L3Offset;
    /// <summary>4 or 6 when an IP header parsed, else 0.</summary>
    public byte IpVersion;
    /// <summary>IP protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6), 0 when none; for IPv6 the header after any hop-by-hop,
    /// routing, destination-options and fragment headers (an unknown extension header is the protocol).</summary>
    public byte Protocol;
    /// <summary>IPv4 source (host order), or the low 32 bits of an IPv6 source.</summary>
    public uint SourceIPv4;
    /// <summary>IPv4 destination (host order).</summary>
    public uint DestinationIPv4;
    /// <summary>Offset of the L4 header, 0 when none.</summary>
    public int L4Offset;
    /// <summary>TCP/UDP source port, or ICMP id.</summary>
    public ushort SourcePort;
    /// <summary>TCP/UDP destination port.</summary>
    public ushort DestinationPort;
    /// <summary>TCP flags (FIN 1, SYN 2, RST 4, PSH 8, ACK 16).</summary>
    public byte TcpFlags;
    /// <summary>ICMP type and code.</summary>
    public byte IcmpType, IcmpCode;
    /// <summary>Whether the frame is an IPv4 or IPv6 fragment other than the first.</summary>
    public bool IsLaterFragment;
}

/// <summary>Why a frame was not parsed completely.</summary>
public enum FrameError
{
    /// <summary>Parsed (non-IP frames too: their L3 fields stay zero).</summary>
    None,
    /// <summary>Shorter than an Ethernet header.</summary>
    TruncatedEthernet,
    /// <summary>An 802.1Q tag without room for it.</summary>
    TruncatedVlan,
    /// <summary>IPv4 header truncated, IHL below 5, or total length beyond the frame.</summary>
    BadIPv4,
    /// <summary>IPv6 header truncated, payload length beyond the frame, an extension header beyond the payload, or more than <see cref="FrameParser.MaxIPv6ExtensionHeaders"/> of them.</summary>
    BadIPv6,
    /// <summary>TCP/UDP/ICMP header truncated or TCP data offset below 5.</summary>
    BadTransport,
}

/// <summary>Ethernet / 802.1Q / IPv4 / IPv6 / TCP / UDP / ICMP parsing over a span: no allocation, every length checked.</summary>
public static class FrameParser
{
    /// <summary>Ethertypes.</summary>
    public const ushort EtherTypeIPv4 = 0x0800, EtherTypeArp = 0x0806, EtherTypeVlan = 0x8100, EtherTypeQinQ = 0x88a8, EtherTypeIPv6 = 0x86dd;

    /// <summary>Parses <paramref name="frame"/> into <paramref name="info"/>.</summary>
    public static FrameError Parse(ReadOnlySpan<byte> frame, out FrameInfo info)
    {
        info = default;
        info.VlanId = -1;
        if (frame.Length < 14) return FrameError.TruncatedEthernet;
        info.DestinationMac = ReadMac(frame);
        info.SourceMac = ReadMac(frame[6..]);
        int offset = 12;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
        offset += 2;
        for (int tags = 0; (type == EtherTypeVlan || type == EtherTypeQinQ) && tags < 2; tags++)
        {
            if (frame.Length < offset + 4) return FrameError.TruncatedVlan;
            info.VlanId = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]) & 0x0fff;
            type = BinaryPrimitives.ReadUInt16BigEndian(frame[(offset + 2)..]);
            offset += 4;
        }
        info.EtherType = type;
        info.L3Offset = offset;
        var l3 = frame[offset..];
        if (type == EtherTypeIPv4) return ParseIPv4(l3, offset, ref info);
        if (type == EtherTypeIPv6) return ParseIPv6(l3, offset, ref info);
        return FrameError.None;
    }

    private static FrameError ParseIPv4(ReadOnlySpan<byte> ip, int offset, ref FrameInfo info)
    {
        if (ip.Length < 20 || ip[0] >> 4 != 4) return FrameError.BadIPv4;
        int ihl = (ip[0] & 0x0f) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (ihl < 20 || total < ihl || total > ip.Length) return FrameError.BadIPv4;
        info.IpVersion = 4;
        info.Protocol = ip[9];
        info.SourceIPv4 = BinaryPrimitives.ReadUInt32BigEndian(ip[12..]);
        info.DestinationIPv4 = BinaryPrimitives.ReadUInt32BigEndian(ip[16..]);
        int fragment = BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1fff;
        if (fragment != 0) { info.IsLaterFragment = true; return FrameError.None; }
        return ParseTransport(ip[ihl..total], offset + ihl, ref info);
    }

    /// <summary>Most IPv6 extension headers walked before a frame counts as malformed (RFC 8200 lists six kinds; a chain longer than this is an evasion, not traffic).</summary>
    public const int MaxIPv6ExtensionHeaders = 8;

    private static FrameError ParseIPv6(ReadOnlySpan<byte> ip, int offset, ref FrameInfo info)
    {
        if (ip.Length < 40 || ip[0] >> 4 != 6) return FrameError.BadIPv6;
        int payload = BinaryPrimitives.ReadUInt16BigEndian(ip[4..]);
        if (40 + payload > ip.Length) return FrameError.BadIPv6;
        info.IpVersion = 6;
        info.SourceIPv4 = BinaryPrimitives.ReadUInt32BigEndian(ip[20..]);
        info.DestinationIPv4 = BinaryPrimitives.ReadUInt32BigEndian(ip[36..]);
        // walk the extension headers the kernel walks without configuration: hop-by-hop (0), routing (43), fragment (44),
        // destination options (60); anything else (ESP, AH, unknown) is the protocol, decided by policy as such
        int end = 40 + payload, at = 40;
        byte next = ip[6];
        for (int count = 0; next is 0 or 43 or 44 or 60; count++)
        {
            if (count == MaxIPv6ExtensionHeaders || at + 8 > end) return FrameError.BadIPv6;
            byte following = ip[at];
            if (next == 44)
            {
                bool later = (BinaryPrimitives.ReadUInt16BigEndian(ip[(at + 2)..]) & 0xfff8) != 0;
                at += 8;
                next = following;
                if (later) { info.Protocol = next; info.IsLaterFragment = true; return FrameError.None; }
                continue;
            }
            int length = (ip[at + 1] + 1) * 8;
            if (at + length > end) return FrameError.BadIPv6;
            at += length;
            next = following;
        }
        info.Protocol = next;
        return ParseTransport(ip[at..end], offset + at, ref info);
    }

    private static FrameError ParseTransport(ReadOnlySpan<byte> l4, int offset, ref FrameInfo info)
    {
        switch (info.Protocol)
        {
            case 6:
                if (l4.Length < 20 || (l4[12] >> 4) < 5) return FrameError.BadTransport;
                info.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(l4);
                info.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
                info.TcpFlags = l4[13];
                break;
            case 17:
                if (l4.Length < 8) return FrameError.BadTransport;
                info.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(l4);
                info.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
                break;
            case 1:
            case 58:
                if (l4.Length < 8) return FrameError.BadTransport;
                info.IcmpType = l4[0];
                info.IcmpCode = l4[1];
                info.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]); // echo id
                break;
            default:
                return FrameError.None;
        }
        info.L4Offset = offset;
        return FrameError.None;
    }

    /// <summary>Reads 6 bytes as a 48-bit number (<see cref="Model.Parse.MacValue"/>).</summary>
    public static ulong ReadMac(ReadOnlySpan<byte> b) => Model.Parse.MacValue(b);

    /// <summary>Formats a 48-bit MAC as aa:bb:cc:dd:ee:ff (<see cref="Model.Parse.Mac(ulong)"/>).</summary>
    public static string FormatMac(ulong mac) => Model.Parse.Mac(mac);
}
