using System;
using System.Collections.Generic;

namespace NvRedirect.Core.Tc;

/// <summary>
/// iproute2's rules for turning tc's text-level matches and munges into kernel keys (tc/f_u32.c pack_key*,
/// tc/m_pedit.c pack_key*; docs/kernel-interfaces.md, "u32 keys" and "pedit keys"), reproduced so that our requests equal tc's byte for
/// byte. Keys address aligned 32-bit words; values and masks are numbers whose big-endian bytes are the packet bytes.
/// </summary>
public static class TcKeyPacking
{
    /// <summary>
    /// Packs `match uN VALUE MASK at OFFSET` clauses into u32 keys, in order of first appearance:
    /// u32 needs an aligned offset; u16 at OFF with OFF&amp;3 == 0 goes to the word's upper half, otherwise to its
    /// lower half (tc does not reject OFF&amp;3 == 1 or 3, it silently compares the lower half); u8 goes to byte
    /// OFF&amp;3 of the word. Clauses on the same word merge (masks and values OR-ed); clauses that disagree on a bit
    /// both compare are rejected, as tc rejects them.
    /// </summary>
    public static List<U32Key> PackU32(IEnumerable<U32Match> matches)
    {
        var keys = new List<U32Key>();
        foreach (var m in matches)
        {
            uint limit = m.Size switch
            {
                8 => 0xff,
                16 => 0xffff,
                32 => 0xffffffff,
                _ => throw new ArgumentException($"match {m}: the size must be 8, 16 or 32 bits, not {m.Size}.", nameof(matches)),
            };
            if (m.Value > limit || m.Mask > limit)
                throw new ArgumentException($"match {m}: value and mask must fit in {m.Size} bits (at most 0x{limit:x}).", nameof(matches));
            int shift = m.Size switch
            {
                32 => 0,
                16 => (m.Offset & 3) == 0 ? 16 : 0,
                _ => 8 * (3 - (m.Offset & 3)),
            };
            if (m.Size == 32 && (m.Offset & 3) != 0)
                throw new ArgumentException($"match {m}: a u32 match needs an offset that is a multiple of 4 (tc: \"off % 4\"); use u16/u8 matches for unaligned fields.", nameof(matches));
            uint mask = m.Mask << shift, value = (m.Value << shift) & mask;
            int offset = m.Offset & ~3;
            Merge(keys, new U32Key(mask, value, offset), m);
        }
        if (keys.Count > Tca.U32MaxKeys)
            throw new ArgumentException($"A u32 selector holds at most {Tca.U32MaxKeys} keys; these matches need {keys.Count}.", nameof(matches));
        return keys;
    }

    private static void Merge(List<U32Key> keys, U32Key key, U32Match source)
    {
        for (int i = 0; i < keys.Count; i++)
        {
            var k = keys[i];
            if (k.Offset != key.Offset || k.OffMask != key.OffMask) continue;
            uint common = k.Mask & key.Mask;
            if (((k.Value ^ key.Value) & common) != 0)
                throw new ArgumentException($"match {source} contradicts an earlier match on the same word at offset {key.Offset} " +
                    $"(it wants {key.Value & common:x8} where the other wants {k.Value & common:x8} under mask {common:x8}); no packet could match both.", "matches");
            keys[i] = k with { Mask = k.Mask | key.Mask, Value = k.Value | key.Value };
            return;
        }
        keys.Add(key);
    }

    /// <summary>
    /// Packs `munge offset OFF uN set VALUE` into a kernel key with a keep-mask: u32 needs an aligned offset;
    /// u16 goes to bytes OFF&amp;3..+1 of the word (OFF&amp;3 == 3 would cross a word and is rejected, as tc does);
    /// u8 to byte OFF&amp;3.
    /// </summary>
    public static PeditPackedKey PackPedit(PeditKey key)
    {
        int index = key.Offset & 3, word = key.Offset & ~3;
        switch (key.Size)
        {
            case 32:
                if (index != 0)
                    throw new ArgumentException($"munge {key}: a u32 munge needs an offset that is a multiple of 4 (tc: \"32 bit offsets must begin in 32bit boundaries\").", nameof(key));
                return new PeditPackedKey(0, key.Value, word);
            case 16:
            {
                if (key.Value > 0xffff) throw new ArgumentException($"munge {key}: the value must fit in 16 bits.", nameof(key));
                if (index == 3)
                    throw new ArgumentException($"munge {key}: a u16 munge at offset {key.Offset} would cross a 32-bit word (tc: \"pack_key16 bad index value 3\"); split it into two u8 munges.", nameof(key));
                int shift = 8 * (2 - index);
                return new PeditPackedKey(~(0xffffu << shift), key.Value << shift, word);
            }
            case 8:
            {
                if (key.Value > 0xff) throw new ArgumentException($"munge {key}: the value must fit in 8 bits.", nameof(key));
                int shift = 8 * (3 - index);
                return new PeditPackedKey(~(0xffu << shift), key.Value << shift, word);
            }
            default:
                throw new ArgumentException($"munge {key}: the size must be 8, 16 or 32 bits, not {key.Size}.", nameof(key));
        }
    }

    /// <summary>Packs several munges in order.</summary>
    public static List<PeditPackedKey> PackPedit(IEnumerable<PeditKey> keys)
    {
        var list = new List<PeditPackedKey>();
        foreach (var k in keys) list.Add(PackPedit(k));
        return list;
    }
}
