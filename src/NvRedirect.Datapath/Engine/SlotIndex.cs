using System;
using System.Numerics;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// An open-addressing index from 32-bit hashes to entry numbers of a preallocated table (sessions, connections):
/// linear probing, at most half full, backward-shift deletion (no tombstones, so probe sequences never grow with
/// churn). It keeps each entry's hash beside it, so removing needs nothing from the table. The caller walks a probe
/// sequence with <see cref="First"/>/<see cref="Next"/> and compares its own keys. Allocates nothing after construction.
/// </summary>
internal sealed class SlotIndex
{
    private readonly int[] _entries; // entry + 1; 0 = empty
    private readonly uint[] _hashes;
    private readonly int _mask;

    /// <summary>An index for up to <paramref name="capacity"/> entries (twice as many slots, a power of two).</summary>
    public SlotIndex(int capacity)
    {
        int slots = (int)BitOperations.RoundUpToPowerOf2((uint)capacity * 2);
        _entries = new int[slots];
        _hashes = new uint[slots];
        _mask = slots - 1;
    }

    /// <summary>The first slot of <paramref name="hash"/>'s probe sequence.</summary>
    public int First(uint hash) => (int)hash & _mask;
    /// <summary>The slot after <paramref name="slot"/>.</summary>
    public int Next(int slot) => (slot + 1) & _mask;
    /// <summary>The entry in <paramref name="slot"/>, or -1 when it is empty (the probe sequence ends there).</summary>
    public int EntryAt(int slot) => _entries[slot] - 1;
    /// <summary>The hash of the entry in <paramref name="slot"/>.</summary>
    public uint HashAt(int slot) => _hashes[slot];

    /// <summary>Adds <paramref name="entry"/> under <paramref name="hash"/>.</summary>
    public void Insert(uint hash, int entry)
    {
        int slot = First(hash);
        while (_entries[slot] != 0) slot = Next(slot);
        _entries[slot] = entry + 1;
        _hashes[slot] = hash;
    }

    /// <summary>Removes <paramref name="entry"/> (present under <paramref name="hash"/>), pulling later entries of its cluster back.</summary>
    public void Remove(uint hash, int entry)
    {
        int i = First(hash);
        while (_entries[i] != entry + 1) i = Next(i);
        for (int j = Next(i); _entries[j] != 0; j = Next(j))
        {
            int home = First(_hashes[j]);
            // the entry at j may move into the hole at i when its home slot is not inside (i, j] (cyclically)
            bool movable = i <= j ? home <= i || home > j : home <= i && home > j;
            if (!movable) continue;
            _entries[i] = _entries[j];
            _hashes[i] = _hashes[j];
            i = j;
        }
        _entries[i] = 0;
    }

    /// <summary>Empties the index.</summary>
    public void Clear() => Array.Clear(_entries);
}
