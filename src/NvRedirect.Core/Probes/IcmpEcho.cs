using System;
using System.Buffers.Binary;
using System.Net;
using NvRedirect.Core.Packets;

namespace NvRedirect.Core.Probes;

/// <summary>What a received ICMP message says about one echo request.</summary>
public enum IcmpEchoAnswer
{
    /// <summary>Not about our request (another process's echo, our own request looped back, noise).</summary>
    Unrelated,
    /// <summary>The echo reply (type 0 / ICMPv6 129) with our identifier and sequence number.</summary>
    Reply,
    /// <summary>A destination unreachable (3 / ICMPv6 1) quoting our request.</summary>
    Unreachable,
    /// <summary>A time exceeded (11 / ICMPv6 3) quoting our request: a routing loop or too small a TTL.</summary>
    TimeExceeded,
}

/// <summary>
/// ICMP and ICMPv6 echo requests as a raw socket sends them, and the matching of what it receives (RFC 792,
/// RFC 4443). An IPv4 raw socket receives the IP header too; an ICMPv6 raw socket receives the ICMPv6 message only
/// and the kernel fills its checksum (RFC 3542 §3.1), so the IPv6 request carries a zero checksum.
/// </summary>
public static class IcmpEcho
{
    /// <summary>The echo request: type 8 (ICMPv6 128), code 0, checksum (IPv4), identifier, sequence, payload.</summary>
    public static byte[] BuildRequest(bool ipv6, ushort identifier, ushort sequence, ReadOnlySpan<byte> payload)
    {
        var packet = new byte[8 + payload.Length];
        packet[0] = ipv6 ? (byte)128 : (byte)8;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), identifier);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(6), sequence);
        payload.CopyTo(packet.AsSpan(8));
        if (!ipv6) BinaryPrimitives.WriteUInt16LittleEndian(packet.AsSpan(2), (ushort)~Checksum.Fold(Checksum.Accumulate(packet, 0)));
        return packet;
    }

    /// <summary>
    /// What <paramref name="received"/> (as the raw socket returned it, from <paramref name="from"/>) says about our
    /// request (<paramref name="identifier"/>, <paramref name="sequence"/>) to <paramref name="destination"/>; for
    /// errors also the ICMP code.
    /// </summary>
    public static (IcmpEchoAnswer Answer, byte Code) Match(bool ipv6, ReadOnlySpan<byte> received, IPAddress from, IPAddress destination, ushort identifier, ushort sequence)
    {
        var icmp = received;
        if (!ipv6)
        {
            if (icmp.Length < 20 || icmp[0] >> 4 != 4) return (IcmpEchoAnswer.Unrelated, (byte)0);
            int headerLength = (icmp[0] & 0xf) * 4;
            if (icmp.Length < headerLength + 8) return (IcmpEchoAnswer.Unrelated, (byte)0);
            icmp = icmp[headerLength..];
        }
        if (icmp.Length < 8) return (IcmpEchoAnswer.Unrelated, (byte)0);
        byte type = icmp[0], code = icmp[1];
        byte reply = ipv6 ? (byte)129 : (byte)0;
        if (type == reply)
            return from.Equals(destination) && IsOurs(icmp, identifier, sequence) ? (IcmpEchoAnswer.Reply, (byte)0) : (IcmpEchoAnswer.Unrelated, (byte)0);
        var answer = (ipv6, type) switch
        {
            (false, 3) or (true, 1) => IcmpEchoAnswer.Unreachable,
            (false, 11) or (true, 3) => IcmpEchoAnswer.TimeExceeded,
            _ => IcmpEchoAnswer.Unrelated,
        };
        if (answer == IcmpEchoAnswer.Unrelated) return (answer, (byte)0);
        return QuotesOurRequest(ipv6, icmp[8..], destination, identifier, sequence) ? (answer, code) : (IcmpEchoAnswer.Unrelated, (byte)0);
    }

    /// <summary>"ICMP destination unreachable code 1 (host unreachable)", for a result's detail.</summary>
    public static string Describe(bool ipv6, IcmpEchoAnswer answer, byte code, IPAddress from)
    {
        string name = answer == IcmpEchoAnswer.TimeExceeded ? "time exceeded" : "destination unreachable";
        string reason = (ipv6, answer, code) switch
        {
            (false, IcmpEchoAnswer.Unreachable, 0) => "net unreachable",
            (false, IcmpEchoAnswer.Unreachable, 1) => "host unreachable",
            (false, IcmpEchoAnswer.Unreachable, 13) => "administratively prohibited",
            (true, IcmpEchoAnswer.Unreachable, 0) => "no route",
            (true, IcmpEchoAnswer.Unreachable, 1) => "administratively prohibited",
            (true, IcmpEchoAnswer.Unreachable, 3) => "address unreachable",
            (_, IcmpEchoAnswer.TimeExceeded, 0) => "hop limit exceeded",
            _ => "",
        };
        return $"{(ipv6 ? "ICMPv6" : "ICMP")} {name} code {code}{(reason.Length > 0 ? $" ({reason})" : "")} from {from}";
    }

    private static bool IsOurs(ReadOnlySpan<byte> echo, ushort identifier, ushort sequence)
        => BinaryPrimitives.ReadUInt16BigEndian(echo[4..]) == identifier && BinaryPrimitives.ReadUInt16BigEndian(echo[6..]) == sequence;

    // the quoted packet: our IP header, then at least the first 8 bytes of our echo request (RFC 792, RFC 4443 §3)
    private static bool QuotesOurRequest(bool ipv6, ReadOnlySpan<byte> quoted, IPAddress destination, ushort identifier, ushort sequence)
    {
        ReadOnlySpan<byte> inner;
        if (!ipv6)
        {
            if (quoted.Length < 20 || quoted[0] >> 4 != 4 || quoted[9] != 1) return false;
            int headerLength = (quoted[0] & 0xf) * 4;
            if (quoted.Length < headerLength + 8 || !new IPAddress(quoted.Slice(16, 4)).Equals(destination)) return false;
            inner = quoted[headerLength..];
            return inner[0] == 8 && IsOurs(inner, identifier, sequence);
        }
        if (quoted.Length < 48 || quoted[0] >> 4 != 6 || quoted[6] != 58 || !new IPAddress(quoted.Slice(24, 16)).Equals(destination)) return false;
        inner = quoted[40..];
        return inner[0] == 128 && IsOurs(inner, identifier, sequence);
    }
}
