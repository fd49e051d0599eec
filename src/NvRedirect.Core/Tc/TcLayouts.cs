using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Tc;

/// <summary>The fixed header of every qdisc and filter message (struct tcmsg, 20 bytes).</summary>
/// <param name="IfIndex">tcm_ifindex.</param>
/// <param name="Handle">tcm_handle.</param>
/// <param name="Parent">tcm_parent.</param>
/// <param name="Info">tcm_info: for filters prio &lt;&lt; 16 | htons(protocol); for qdiscs the refcount.</param>
public readonly record struct TcMsg(int IfIndex, uint Handle, uint Parent, uint Info)
{
    /// <summary>The filter priority (pref) in tcm_info.</summary>
    public ushort Priority => (ushort)(Info >> 16);
    /// <summary>The filter protocol in tcm_info, host order (the low half holds it in network order).</summary>
    public ushort Protocol => BinaryPrimitives.ReverseEndianness((ushort)Info);
    /// <summary>tcm_info for a filter.</summary>
    public static uint FilterInfo(ushort priority, ushort protocol) => (uint)priority << 16 | BinaryPrimitives.ReverseEndianness(protocol);
}

/// <summary>
/// Every tc struct layout, writer and reader side by side (docs/kernel-interfaces.md, "tc"): tcmsg, tc_u32_sel +
/// tc_u32_key, tc_gen, tc_mirred, tc_pedit_sel + tc_pedit_key, tcf_t and the gnet stats. Host order unless noted;
/// u32 and pedit masks/values are big-endian on the wire.
/// </summary>
internal static class TcLayouts
{
    // ---- tcmsg: u8 family | u8 pad[3] | s32 ifindex | u32 handle | u32 parent | u32 info
    public static NetlinkWriter WriteTcMsg(NetlinkWriter w, TcMsg m)
        => w.U8(Rtnl.AF_UNSPEC).Zeros(3).S32(m.IfIndex).U32(m.Handle).U32(m.Parent).U32(m.Info);

    public static TcMsg ReadTcMsg(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < Tca.TcMsgSize) throw new InvalidOperationException($"A tc message shorter than tcmsg ({payload.Length} bytes).");
        return new TcMsg(BinaryPrimitives.ReadInt32LittleEndian(payload[4..]), BinaryPrimitives.ReadUInt32LittleEndian(payload[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(payload[12..]), BinaryPrimitives.ReadUInt32LittleEndian(payload[16..]));
    }

    // ---- tc_u32_sel (16): u8 flags | u8 offshift | u8 nkeys | pad | be16 offmask | u16 off | s16 offoff | s16 hoff | be32 hmask
    // ---- then nkeys x tc_u32_key (16): be32 mask | be32 val | s32 off | s32 offmask
    public static byte[] U32Selector(U32Selector sel)
    {
        if (sel.Keys.Count > 255) throw new ArgumentException($"A u32 selector holds at most 255 keys, not {sel.Keys.Count}.");
        var b = new byte[Tca.U32SelSize + Tca.U32KeySize * sel.Keys.Count];
        var s = b.AsSpan();
        s[0] = sel.Flags;
        s[1] = sel.OffShift;
        s[2] = (byte)sel.Keys.Count;
        BinaryPrimitives.WriteUInt16BigEndian(s[4..], sel.OffMask);
        BinaryPrimitives.WriteUInt16LittleEndian(s[6..], sel.Off);
        BinaryPrimitives.WriteInt16LittleEndian(s[8..], sel.OffOff);
        BinaryPrimitives.WriteInt16LittleEndian(s[10..], sel.HashOffset);
        BinaryPrimitives.WriteUInt32BigEndian(s[12..], sel.HashMask);
        for (int i = 0; i < sel.Keys.Count; i++)
        {
            var k = s[(Tca.U32SelSize + i * Tca.U32KeySize)..];
            var key = sel.Keys[i];
            BinaryPrimitives.WriteUInt32BigEndian(k, key.Mask);
            BinaryPrimitives.WriteUInt32BigEndian(k[4..], key.Value);
            BinaryPrimitives.WriteInt32LittleEndian(k[8..], key.Offset);
            BinaryPrimitives.WriteInt32LittleEndian(k[12..], key.OffMask);
        }
        return b;
    }

    public static U32Selector ReadU32Selector(ReadOnlySpan<byte> s)
    {
        if (s.Length < Tca.U32SelSize) throw new InvalidOperationException($"TCA_U32_SEL of {s.Length} bytes is shorter than tc_u32_sel.");
        int nkeys = s[2];
        if (s.Length < Tca.U32SelSize + nkeys * Tca.U32KeySize)
            throw new InvalidOperationException($"TCA_U32_SEL announces {nkeys} keys but holds {s.Length} bytes.");
        var keys = new U32Key[nkeys];
        for (int i = 0; i < nkeys; i++)
        {
            var k = s[(Tca.U32SelSize + i * Tca.U32KeySize)..];
            keys[i] = new U32Key(BinaryPrimitives.ReadUInt32BigEndian(k), BinaryPrimitives.ReadUInt32BigEndian(k[4..]),
                BinaryPrimitives.ReadInt32LittleEndian(k[8..]), BinaryPrimitives.ReadInt32LittleEndian(k[12..]));
        }
        return new U32Selector
        {
            Flags = s[0],
            OffShift = s[1],
            OffMask = BinaryPrimitives.ReadUInt16BigEndian(s[4..]),
            Off = BinaryPrimitives.ReadUInt16LittleEndian(s[6..]),
            OffOff = BinaryPrimitives.ReadInt16LittleEndian(s[8..]),
            HashOffset = BinaryPrimitives.ReadInt16LittleEndian(s[10..]),
            HashMask = BinaryPrimitives.ReadUInt32BigEndian(s[12..]),
            Keys = keys,
        };
    }

    // ---- tc_gen (20): u32 index | u32 capab | s32 action | s32 refcnt | s32 bindcnt
    // Requests always carry index 0 (the kernel allocates a new action) and zero counts.
    private static void WriteGenForRequest(Span<byte> s, TcActionControl control)
    {
        s[..Tca.TcGenSize].Clear();
        BinaryPrimitives.WriteInt32LittleEndian(s[8..], (int)control);
    }

    public readonly record struct TcGen(uint Index, TcActionControl Action, int RefCount, int BindCount);

    public static TcGen ReadGen(ReadOnlySpan<byte> s) => new(BinaryPrimitives.ReadUInt32LittleEndian(s),
        (TcActionControl)BinaryPrimitives.ReadInt32LittleEndian(s[8..]), BinaryPrimitives.ReadInt32LittleEndian(s[12..]),
        BinaryPrimitives.ReadInt32LittleEndian(s[16..]));

    // ---- tc_mirred (28): tc_gen | s32 eaction | u32 ifindex
    public static byte[] Mirred(MirredAction a)
    {
        var b = new byte[Tca.MirredSize];
        WriteGenForRequest(b, a.EffectiveControl);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(20), a.EAction);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(24), a.TargetIndex);
        return b;
    }

    public static (TcGen Gen, int EAction, int IfIndex) ReadMirred(ReadOnlySpan<byte> s)
    {
        if (s.Length < Tca.MirredSize) throw new InvalidOperationException($"TCA_MIRRED_PARMS of {s.Length} bytes is shorter than tc_mirred.");
        return (ReadGen(s), BinaryPrimitives.ReadInt32LittleEndian(s[20..]), BinaryPrimitives.ReadInt32LittleEndian(s[24..]));
    }

    // ---- tc_pedit_sel (24): tc_gen | u8 nkeys | u8 flags | pad[2]
    // ---- then nkeys x tc_pedit_key (24): be32 mask (keep) | be32 val | s32 off | u32 at | u32 offmask | s32 shift
    public static byte[] Pedit(PeditAction a)
    {
        if (a.Keys.Count > 255) throw new ArgumentException($"A pedit action holds at most 255 keys, not {a.Keys.Count}.");
        var b = new byte[Tca.PeditSelSize + Tca.PeditKeySize * a.Keys.Count];
        var s = b.AsSpan();
        WriteGenForRequest(s, a.EffectiveControl);
        s[20] = (byte)a.Keys.Count;
        s[21] = a.Flags;
        for (int i = 0; i < a.Keys.Count; i++)
        {
            var k = s[(Tca.PeditSelSize + i * Tca.PeditKeySize)..];
            var key = a.Keys[i];
            BinaryPrimitives.WriteUInt32BigEndian(k, key.KeepMask);
            BinaryPrimitives.WriteUInt32BigEndian(k[4..], key.Value);
            BinaryPrimitives.WriteInt32LittleEndian(k[8..], key.Offset);
            BinaryPrimitives.WriteUInt32LittleEndian(k[12..], key.At);
            BinaryPrimitives.WriteUInt32LittleEndian(k[16..], key.OffMask);
            BinaryPrimitives.WriteInt32LittleEndian(k[20..], key.Shift);
        }
        return b;
    }

    public static (TcGen Gen, byte Flags, List<PeditPackedKey> Keys) ReadPedit(ReadOnlySpan<byte> s)
    {
        if (s.Length < Tca.PeditSelSize) throw new InvalidOperationException($"TCA_PEDIT_PARMS of {s.Length} bytes is shorter than tc_pedit_sel.");
        int nkeys = s[20];
        if (s.Length < Tca.PeditSelSize + nkeys * Tca.PeditKeySize)
            throw new InvalidOperationException($"TCA_PEDIT_PARMS announces {nkeys} keys but holds {s.Length} bytes.");
        var keys = new List<PeditPackedKey>(nkeys);
        for (int i = 0; i < nkeys; i++)
        {
            var k = s[(Tca.PeditSelSize + i * Tca.PeditKeySize)..];
            keys.Add(new PeditPackedKey(BinaryPrimitives.ReadUInt32BigEndian(k), BinaryPrimitives.ReadUInt32BigEndian(k[4..]),
                BinaryPrimitives.ReadInt32LittleEndian(k[8..]), BinaryPrimitives.ReadUInt32LittleEndian(k[12..]),
                BinaryPrimitives.ReadUInt32LittleEndian(k[16..]), BinaryPrimitives.ReadInt32LittleEndian(k[20..])));
        }
        return (ReadGen(s), s[21], keys);
    }

    // ---- tcf_t (32): u64 install | u64 lastuse | u64 expires | u64 firstuse, each an age in USER_HZ ticks
    public static (TimeSpan Installed, TimeSpan LastUsed)? ReadTimes(ReadOnlySpan<byte> s)
    {
        if (s.Length < 16) return null;
        static TimeSpan Age(ulong ticks) => TimeSpan.FromMilliseconds(ticks * (1000.0 / Tca.UserHz));
        return (Age(BinaryPrimitives.ReadUInt64LittleEndian(s)), Age(BinaryPrimitives.ReadUInt64LittleEndian(s[8..])));
    }

    // ---- TCA_ACT_STATS: TCA_STATS_BASIC {u64 bytes | u32 packets (+pad)}, TCA_STATS_PKT64 u64,
    //      TCA_STATS_QUEUE {u32 qlen | u32 backlog | u32 drops | u32 requeues | u32 overlimits}
    public static TcStatistics ReadStatistics(ReadOnlySpan<byte> nest)
    {
        ulong bytes = 0, packets = 0;
        uint drops = 0, overlimits = 0;
        bool have64 = false;
        foreach (var a in new NetlinkAttributes(nest))
        {
            switch (a.Type)
            {
                case Tca.TCA_STATS_BASIC when a.Value.Length >= 12:
                    bytes = BinaryPrimitives.ReadUInt64LittleEndian(a.Value);
                    if (!have64) packets = BinaryPrimitives.ReadUInt32LittleEndian(a.Value[8..]);
                    break;
                case Tca.TCA_STATS_PKT64 when a.Value.Length >= 8:
                    packets = a.U64;
                    have64 = true;
                    break;
                case Tca.TCA_STATS_QUEUE when a.Value.Length >= 20:
                    drops = BinaryPrimitives.ReadUInt32LittleEndian(a.Value[8..]);
                    overlimits = BinaryPrimitives.ReadUInt32LittleEndian(a.Value[16..]);
                    break;
            }
        }
        return new TcStatistics(bytes, packets, drops, overlimits);
    }

    // ---- tc_u32_pcnt: u64 rcnt | u64 rhit | u64 kcnts[nkeys]
    public static (ulong Lookups, ulong Hits)? ReadU32Counters(ReadOnlySpan<byte> s)
        => s.Length < 16 ? null : (BinaryPrimitives.ReadUInt64LittleEndian(s), BinaryPrimitives.ReadUInt64LittleEndian(s[8..]));
}
