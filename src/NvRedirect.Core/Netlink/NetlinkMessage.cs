using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;

namespace NvRedirect.Core.Netlink;

/// <summary>One received (or captured) netlink message.</summary>
public sealed class NetlinkMessage
{
    /// <summary>The whole message, header included.</summary>
    public byte[] Bytes { get; }
    /// <summary>nlmsg_type.</summary>
    public ushort Type => BinaryPrimitives.ReadUInt16LittleEndian(Bytes.AsSpan(4));
    /// <summary>nlmsg_flags.</summary>
    public ushort Flags => BinaryPrimitives.ReadUInt16LittleEndian(Bytes.AsSpan(6));
    /// <summary>nlmsg_seq.</summary>
    public uint Seq => BinaryPrimitives.ReadUInt32LittleEndian(Bytes.AsSpan(8));
    /// <summary>nlmsg_pid.</summary>
    public uint PortId => BinaryPrimitives.ReadUInt32LittleEndian(Bytes.AsSpan(12));
    /// <summary>Everything after the 16-byte header.</summary>
    public ReadOnlySpan<byte> Payload => Bytes.AsSpan(16);

    /// <summary>Wraps a complete message.</summary>
    public NetlinkMessage(byte[] bytes)
    {
        if (bytes.Length < 16) throw new ArgumentException("A netlink message is at least 16 bytes.", nameof(bytes));
        Bytes = bytes;
    }

    /// <summary>Splits a receive buffer (or a captured stream) into messages, checking every length.</summary>
    public static List<NetlinkMessage> Split(ReadOnlySpan<byte> buffer)
    {
        var list = new List<NetlinkMessage>();
        while (buffer.Length >= 16)
        {
            int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer);
            if (len < 16 || len > buffer.Length)
                throw new InvalidOperationException($"Malformed netlink message: nlmsg_len {len} with {buffer.Length} bytes left.");
            list.Add(new NetlinkMessage(buffer[..len].ToArray()));
            buffer = buffer[Math.Min(NetlinkWriter.Pad(len), buffer.Length)..];
        }
        return list;
    }
}

/// <summary>One attribute (TLV) inside a payload.</summary>
public readonly ref struct NetlinkAttribute
{
    /// <summary>Type without the NESTED/BYTEORDER bits.</summary>
    public ushort Type { get; }
    /// <summary>Whether NLA_F_NESTED was set.</summary>
    public bool IsNested { get; }
    /// <summary>The payload, padding excluded.</summary>
    public ReadOnlySpan<byte> Value { get; }

    internal NetlinkAttribute(ushort rawType, ReadOnlySpan<byte> value)
    {
        Type = (ushort)(rawType & Rtnl.NLA_TYPE_MASK);
        IsNested = (rawType & Rtnl.NLA_F_NESTED) != 0;
        Value = value;
    }

    /// <summary>u8 value.</summary>
    public byte U8 => Value[0];
    /// <summary>u16 value (host order).</summary>
    public ushort U16 => BinaryPrimitives.ReadUInt16LittleEndian(Value);
    /// <summary>u32 value (host order).</summary>
    public uint U32 => BinaryPrimitives.ReadUInt32LittleEndian(Value);
    /// <summary>s32 value (host order).</summary>
    public int S32 => BinaryPrimitives.ReadInt32LittleEndian(Value);
    /// <summary>u64 value (host order).</summary>
    public ulong U64 => BinaryPrimitives.ReadUInt64LittleEndian(Value);
    /// <summary>String value, up to the first NUL.</summary>
    public string String
    {
        get
        {
            var v = Value;
            int nul = v.IndexOf((byte)0);
            return Encoding.UTF8.GetString(nul >= 0 ? v[..nul] : v);
        }
    }
    /// <summary>The attributes nested inside this one.</summary>
    public NetlinkAttributes Nested => new(Value);
}

/// <summary>Enumerates the attributes of a span; stops (without throwing) at a truncated tail.</summary>
public readonly ref struct NetlinkAttributes
{
    private readonly ReadOnlySpan<byte> _span;
    /// <summary>Attributes laid out back to back in <paramref name="span"/>.</summary>
    public NetlinkAttributes(ReadOnlySpan<byte> span) => _span = span;
    /// <summary>foreach support.</summary>
    public Enumerator GetEnumerator() => new(_span);

    /// <summary>The enumerator.</summary>
    public ref struct Enumerator
    {
        private ReadOnlySpan<byte> _rest;
        private NetlinkAttribute _current;
        internal Enumerator(ReadOnlySpan<byte> span) { _rest = span; _current = default; }
        /// <summary>The current attribute.</summary>
        public NetlinkAttribute Current => _current;
        /// <summary>Advances; false at the end or at a malformed attribute.</summary>
        public bool MoveNext()
        {
            if (_rest.Length < 4) return false;
            int len = BinaryPrimitives.ReadUInt16LittleEndian(_rest);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(_rest[2..]);
            if (len < 4 || len > _rest.Length) return false;
            _current = new NetlinkAttribute(type, _rest[4..len]);
            int next = NetlinkWriter.Pad(len);
            _rest = next >= _rest.Length ? ReadOnlySpan<byte>.Empty : _rest[next..];
            return true;
        }
    }
}
