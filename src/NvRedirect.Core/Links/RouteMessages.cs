using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Links;

/// <summary>
/// Dump requests and replays for routes (RTM_GETROUTE/NEWROUTE, every table, both families), neighbours
/// (RTM_GETNEIGH/NEWNEIGH) and whole addresses (RTM_NEWADDR with broadcast, label, flags and lifetimes).
/// A dumped object is kept as its family header and attributes (<see cref="RtnlObject"/>), so what goes back is what
/// the kernel reported, minus only what the kernel computes itself (cache info, state flags).
/// </summary>
public static class RouteMessages
{
    /// <summary>`ip route show table all` for one family: rtmsg with RTM_F_... none, table 0 (every table).</summary>
    public static NetlinkWriter DumpRoutes(byte family)
        => new NetlinkWriter(Rtnl.RTM_GETROUTE, Rtnl.DumpFlags).U8(family).Zeros(11);

    /// <summary>`ip neigh show` for one family (ndmsg: family, pads, ifindex 0, state 0, flags 0, type 0).</summary>
    public static NetlinkWriter DumpNeighbours(byte family)
        => new NetlinkWriter(Rtnl.RTM_GETNEIGH, Rtnl.DumpFlags).U8(family).Zeros(11);

    /// <summary>An RTM_NEWROUTE that puts a dumped route back: same header and attributes; cache info left out, only ONLINK kept of rtm_flags.</summary>
    public static NetlinkWriter AddRoute(RtnlObject route)
    {
        var header = route.Header.ToArray();
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8)) & Rtnl.RTNH_F_ONLINK;
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), flags);
        return Replay(Rtnl.RTM_NEWROUTE, Rtnl.CreateFlags, header, route.Attributes.Where(a => a.Type is not (Rtnl.RTA_CACHEINFO or Rtnl.RTA_EXPIRES)));
    }

    /// <summary>An RTM_NEWNEIGH that puts a dumped neighbour back: state and flags as dumped, destination and link-layer address only.</summary>
    public static NetlinkWriter AddNeighbour(RtnlObject neighbour)
        => Replay(Rtnl.RTM_NEWNEIGH, Rtnl.CreateFlags, neighbour.Header, neighbour.Attributes.Where(a => a.Type is Rtnl.NDA_DST or Rtnl.NDA_LLADDR));

    /// <summary>
    /// An RTM_NEWADDR that puts a dumped address back with its prefix, scope, broadcast, label, flags and remaining
    /// lifetimes; the flags the kernel sets itself (tentative, deprecated, permanent, dad failed) are left to it.
    /// </summary>
    public static NetlinkWriter AddAddress(RtnlObject address)
    {
        const uint kernelFlags = Rtnl.IFA_F_TENTATIVE | Rtnl.IFA_F_DADFAILED | Rtnl.IFA_F_DEPRECATED | Rtnl.IFA_F_PERMANENT;
        var header = address.Header.ToArray();
        header[2] = (byte)(header[2] & ~kernelFlags);
        var attributes = address.Attributes.Select(a =>
        {
            if (a.Type != Rtnl.IFA_FLAGS || a.Value.Length != 4) return a;
            var v = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(v, BinaryPrimitives.ReadUInt32LittleEndian(a.Value) & ~kernelFlags);
            return (a.Type, v);
        });
        return Replay(Rtnl.RTM_NEWADDR, Rtnl.CreateFlags, header, attributes);
    }

    private static NetlinkWriter Replay(ushort type, ushort flags, ReadOnlySpan<byte> header, IEnumerable<(ushort Type, byte[] Value)> attributes)
    {
        var w = new NetlinkWriter(type, flags).Raw(header);
        foreach (var (t, v) in attributes) w.Attr(t, v);
        return w;
    }
}

/// <summary>
/// A dumped rtnetlink object (address, route or neighbour): message type, family header and attributes (type without
/// the nested/byte-order bits kept as sent), with the fields the take-over needs decoded.
/// </summary>
public sealed class RtnlObject
{
    /// <summary>RTM_NEWADDR, RTM_NEWROUTE or RTM_NEWNEIGH.</summary>
    public ushort Type { get; init; }
    /// <summary>ifaddrmsg (8 bytes), rtmsg (12) or ndmsg (12).</summary>
    public byte[] Header { get; init; } = [];
    /// <summary>The attributes in the order the kernel sent them.</summary>
    public List<(ushort Type, byte[] Value)> Attributes { get; init; } = [];

    /// <summary>AF_INET or AF_INET6.</summary>
    public byte Family => Header[0];

    /// <summary>The value of an attribute, or null.</summary>
    public byte[]? Attribute(ushort type) => Attributes.FirstOrDefault(a => (a.Type & Rtnl.NLA_TYPE_MASK) == type).Value;

    /// <summary>Decodes a message with a family header of <paramref name="headerLength"/> bytes.</summary>
    public static RtnlObject Parse(NetlinkMessage msg, int headerLength)
    {
        var p = msg.Payload;
        if (p.Length < headerLength) throw new InvalidOperationException($"rtnetlink message type {msg.Type} shorter than its {headerLength}-byte header.");
        var attributes = new List<(ushort, byte[])>();
        // keep the raw type (nested flag included) so a replay is byte-identical
        var rest = p[headerLength..];
        while (rest.Length >= 4)
        {
            int len = BinaryPrimitives.ReadUInt16LittleEndian(rest);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(rest[2..]);
            if (len < 4 || len > rest.Length) break;
            attributes.Add((type, rest[4..len].ToArray()));
            int next = NetlinkWriter.Pad(len);
            rest = next >= rest.Length ? ReadOnlySpan<byte>.Empty : rest[next..];
        }
        return new RtnlObject { Type = msg.Type, Header = p[..headerLength].ToArray(), Attributes = attributes };
    }

    // ------------------------------------------------------------------ addresses (ifaddrmsg)

    /// <summary>The address's link (ifa_index).</summary>
    public int AddressIndex => BinaryPrimitives.ReadInt32LittleEndian(Header.AsSpan(4));

    // ------------------------------------------------------------------ routes (rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags)

    /// <summary>rtm_protocol (2 = kernel).</summary>
    public byte RouteProtocol => Header[5];

    /// <summary>The route's table (RTA_TABLE when present, else rtm_table).</summary>
    public uint RouteTable => Attribute(Rtnl.RTA_TABLE) is { Length: 4 } t ? BinaryPrimitives.ReadUInt32LittleEndian(t) : Header[4];

    /// <summary>Whether the route leaves through <paramref name="index"/> (RTA_OIF or one of its multipath hops).</summary>
    public bool RouteUses(int index)
    {
        if (Attribute(Rtnl.RTA_OIF) is { Length: 4 } oif && BinaryPrimitives.ReadInt32LittleEndian(oif) == index) return true;
        if (Attribute(Rtnl.RTA_MULTIPATH) is { } hops)
        {
            // struct rtnexthop { u16 len; u8 flags, hops; s32 ifindex; } followed by its attributes
            var span = hops.AsSpan();
            while (span.Length >= 8)
            {
                int len = BinaryPrimitives.ReadUInt16LittleEndian(span);
                if (BinaryPrimitives.ReadInt32LittleEndian(span[4..]) == index) return true;
                if (len < 8 || len > span.Length) break;
                span = span[NetlinkWriter.Pad(len)..];
            }
        }
        return false;
    }

    // ------------------------------------------------------------------ neighbours (ndmsg: family, pad1, pad2, ifindex, state, flags, type)

    /// <summary>ndm_ifindex.</summary>
    public int NeighbourIndex => BinaryPrimitives.ReadInt32LittleEndian(Header.AsSpan(4));
    /// <summary>ndm_state (NUD_*).</summary>
    public ushort NeighbourState => BinaryPrimitives.ReadUInt16LittleEndian(Header.AsSpan(8));
}
