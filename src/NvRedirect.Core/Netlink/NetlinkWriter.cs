using System;
using System.Buffers.Binary;
using System.Text;

namespace NvRedirect.Core.Netlink;

/// <summary>
/// Builds one netlink message: the 16-byte header, a fixed family header (ifinfomsg, tcmsg...), then
/// 4-byte-aligned attributes, nests included. Host byte order, as the kernel expects. The sequence number is
/// left 0 and patched by <see cref="NetlinkSocket"/> when the message is sent.
/// </summary>
public sealed class NetlinkWriter
{
    private byte[] _buffer = new byte[256];
    private int _length;

    /// <summary>Starts a message of the given type and flags.</summary>
    public NetlinkWriter(ushort type, ushort flags)
    {
        _length = 16;
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(6), flags);
    }

    /// <summary>Message type (RTM_*).</summary>
    public ushort Type => BinaryPrimitives.ReadUInt16LittleEndian(_buffer.AsSpan(4));

    /// <summary>Bytes written so far (header included).</summary>
    public int Length => _length;

    private Span<byte> Grow(int count)
    {
        if (_length + count > _buffer.Length)
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + count + 64));
        var span = _buffer.AsSpan(_length, count);
        span.Clear();
        _length += count;
        return span;
    }

    private void Align() { var pad = Pad(_length) - _length; if (pad > 0) Grow(pad); }

    /// <summary>Rounds up to the netlink 4-byte alignment.</summary>
    public static int Pad(int n) => (n + 3) & ~3;

    /// <summary>Appends raw bytes (a family header or a packed kernel struct) without alignment.</summary>
    public NetlinkWriter Raw(ReadOnlySpan<byte> bytes) { bytes.CopyTo(Grow(bytes.Length)); return this; }
    /// <summary>Appends a u8.</summary>
    public NetlinkWriter U8(byte v) { Grow(1)[0] = v; return this; }
    /// <summary>Appends a host-order u16.</summary>
    public NetlinkWriter U16(ushort v) { BinaryPrimitives.WriteUInt16LittleEndian(Grow(2), v); return this; }
    /// <summary>Appends a host-order u32.</summary>
    public NetlinkWriter U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(Grow(4), v); return this; }
    /// <summary>Appends a host-order s32.</summary>
    public NetlinkWriter S32(int v) { BinaryPrimitives.WriteInt32LittleEndian(Grow(4), v); return this; }
    /// <summary>Appends a network-order (big-endian) u32.</summary>
    public NetlinkWriter U32BE(uint v) { BinaryPrimitives.WriteUInt32BigEndian(Grow(4), v); return this; }
    /// <summary>Appends zero bytes.</summary>
    public NetlinkWriter Zeros(int count) { Grow(count); return this; }

    /// <summary>Attribute with an arbitrary payload.</summary>
    public NetlinkWriter Attr(ushort type, ReadOnlySpan<byte> payload)
    {
        Align();
        var header = Grow(4);
        BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)(4 + payload.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], type);
        payload.CopyTo(Grow(payload.Length));
        Align();
        return this;
    }

    /// <summary>u8 attribute.</summary>
    public NetlinkWriter AttrU8(ushort type, byte v) => Attr(type, [v]);
    /// <summary>u16 attribute (host order).</summary>
    public NetlinkWriter AttrU16(ushort type, ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); return Attr(type, b); }
    /// <summary>u32 attribute (host order).</summary>
    public NetlinkWriter AttrU32(ushort type, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return Attr(type, b); }
    /// <summary>s32 attribute (host order).</summary>
    public NetlinkWriter AttrS32(ushort type, int v) => AttrU32(type, unchecked((uint)v));

    /// <summary>String attribute, NUL-terminated unless <paramref name="nulTerminated"/> is false.</summary>
    public NetlinkWriter AttrString(ushort type, string value, bool nulTerminated = true)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        if (!nulTerminated) return Attr(type, bytes);
        var withNul = new byte[bytes.Length + 1];
        bytes.CopyTo(withNul, 0);
        return Attr(type, withNul);
    }

    /// <summary>Opens a nest; returns its offset for <see cref="EndNest"/>.</summary>
    public int BeginNest(ushort type)
    {
        Align();
        int start = _length;
        var header = Grow(4);
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], type);
        return start;
    }

    /// <summary>Closes a nest: its length covers every child, padding included.</summary>
    public NetlinkWriter EndNest(int start)
    {
        Align();
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(start), (ushort)(_length - start));
        return this;
    }

    /// <summary>The finished message with nlmsg_len set and the given sequence number.</summary>
    public byte[] ToArray(uint seq = 0)
    {
        var result = _buffer.AsSpan(0, _length).ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(result, (uint)_length);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(8), seq);
        return result;
    }
}
