using System;
using System.Collections.Generic;
using System.Security.Cryptography;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Engine;

/// <summary>What identifies a connection: a workload, a direction, client and server, server port, protocol, and the
/// verdict (rule id and action), so a conversation whose verdict changes gets a second entry.</summary>
internal struct ConnectionKey
{
    public ulong EndpointMac;
    public ulong ClientHigh, ClientLow, ServerHigh, ServerLow;
    public ushort ServerPort;
    public byte Protocol;
    public bool Ingress, IPv6;
    public uint RuleId;
    public DpPolicyAction Action;

    public readonly bool SameAs(in ConnectionKey o)
        => EndpointMac == o.EndpointMac && ClientLow == o.ClientLow && ServerLow == o.ServerLow && ServerPort == o.ServerPort
           && Protocol == o.Protocol && Ingress == o.Ingress && RuleId == o.RuleId && Action == o.Action && IPv6 == o.IPv6
           && ClientHigh == o.ClientHigh && ServerHigh == o.ServerHigh;
}

/// <summary>One connection entry (stored by value).</summary>
internal struct Connection
{
    public ConnectionKey Key;
    public uint Hash;
    public bool InUse;
    /// <summary>Which use of this slot it is (a new value each time an entry is created here, never 0).</summary>
    public uint Epoch;
    public long Sessions, Packets, Bytes, Dropped;
    public long FirstSeen, LastSeen;
    /// <summary>Neighbours in the least-recently-seen list, or the next free entry.</summary>
    public int Prev, Next;
    /// <summary>What the last connection report to the agent covered (see <see cref="ConnectionTable.CollectReports"/>).</summary>
    public long ReportedSessions, ReportedBytes, ReportedDropped;
}

/// <summary>What an entry gained since the previous connection report.</summary>
internal readonly record struct ConnectionDelta(ConnectionKey Key, long Sessions, long Bytes, long Dropped, long FirstSeen, long LastSeen);

/// <summary>A connection copied out for the control side.</summary>
internal sealed record ConnectionRecord(ConnectionKey Key, long Sessions, long Packets, long Bytes, long Dropped, long FirstSeen, long LastSeen);

/// <summary>
/// The connections the datapath saw, per workload: what NeuVector's dp reports to its agent as connection messages
/// and the agent aggregates, kept here in the daemon (there is no agent). Preallocated, open-addressing index like the
/// session table, least recently seen entry evicted when full. Owned by the packet thread; nothing allocates after
/// construction. Every entry gets a new <see cref="Connection.Epoch"/>, so a session that keeps (index, epoch) notices
/// when its entry was forgotten and the slot reused (<see cref="IsCurrent"/>).
/// </summary>
internal sealed class ConnectionTable
{
    private readonly Connection[] _entries;
    private readonly SlotIndex _index;
    private readonly ulong _seed;
    private int _freeHead, _oldest = -1, _newest = -1;

    /// <summary>Most entries held.</summary>
    public int Capacity { get; }
    /// <summary>Entries held now.</summary>
    public int Count { get; private set; }
    /// <summary>Entries dropped to make room.</summary>
    public long Evicted { get; private set; }
    private uint _epoch;

    public ConnectionTable(int capacity = 16384)
    {
        if (capacity < 1 || capacity > 1 << 22) throw new ArgumentOutOfRangeException(nameof(capacity), "1 to 4194304 connections");
        Capacity = capacity;
        _entries = new Connection[capacity];
        _index = new SlotIndex(capacity);
        _seed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        for (int i = 0; i < capacity; i++) _entries[i].Next = i + 1 < capacity ? i + 1 : -1;
    }

    /// <summary>The entry at <paramref name="index"/>.</summary>
    public ref Connection this[int index] => ref _entries[index];

    /// <summary>Whether entry <paramref name="index"/> is still the one created with <paramref name="epoch"/>.</summary>
    public bool IsCurrent(int index, uint epoch) => _entries[index].InUse && _entries[index].Epoch == epoch;

    /// <summary>Finds or creates the entry for <paramref name="key"/>; a new one counts as seen now.</summary>
    public int Find(in ConnectionKey key, long now) => Find(in key, now, out _);

    /// <summary>Finds or creates the entry for <paramref name="key"/> and says which it did.</summary>
    public int Find(in ConnectionKey key, long now, out bool created)
    {
        created = false;
        uint hash = Hash(in key);
        for (int slot = _index.First(hash); ; slot = _index.Next(slot))
        {
            int e = _index.EntryAt(slot);
            if (e < 0) break;
            if (_index.HashAt(slot) == hash && _entries[e].Key.SameAs(in key)) return e;
        }
        created = true;
        if (_freeHead < 0) { Remove(_oldest); Evicted++; }
        int index = _freeHead;
        ref var n = ref _entries[index];
        _freeHead = n.Next;
        n.Key = key;
        n.Hash = hash;
        n.InUse = true;
        if (++_epoch == 0) _epoch = 1;
        n.Epoch = _epoch;
        n.Sessions = n.Packets = n.Bytes = n.Dropped = 0;
        n.ReportedSessions = n.ReportedBytes = n.ReportedDropped = 0;
        n.FirstSeen = n.LastSeen = now;
        Append(index);
        _index.Insert(hash, index);
        Count++;
        return index;
    }

    /// <summary>Accounts a packet (forwarded or, with <paramref name="dropped"/>, withheld) to entry <paramref name="index"/>.</summary>
    public void Account(int index, int bytes, bool dropped, long now)
    {
        ref var c = ref _entries[index];
        c.Packets++;
        c.Bytes += bytes;
        if (dropped) c.Dropped++;
        if (c.LastSeen != now)
        {
            c.LastSeen = now;
            if (_newest != index) { Unlink(index); Append(index); }
        }
    }

    /// <summary>Removes the entries of the workload <paramref name="mac"/>, or all when it is 0.</summary>
    public int Clear(ulong mac)
    {
        int n = 0;
        for (int i = 0; i < _entries.Length; i++)
            if (_entries[i].InUse && (mac == 0 || _entries[i].Key.EndpointMac == mac)) { Remove(i); n++; }
        return n;
    }

    /// <summary>
    /// Adds to <paramref name="into"/> what each entry gained since the previous call, and marks it reported (control
    /// path, on the packet thread: the reports to the agent's socket). Entries evicted meanwhile are lost to reports.
    /// </summary>
    public void CollectReports(List<ConnectionDelta> into)
    {
        for (int i = _oldest; i >= 0; i = _entries[i].Next)
        {
            ref var c = ref _entries[i];
            long sessions = c.Sessions - c.ReportedSessions, bytes = c.Bytes - c.ReportedBytes, dropped = c.Dropped - c.ReportedDropped;
            if (sessions == 0 && bytes == 0 && dropped == 0) continue;
            into.Add(new ConnectionDelta(c.Key, sessions, bytes, dropped, c.FirstSeen, c.LastSeen));
            c.ReportedSessions = c.Sessions;
            c.ReportedBytes = c.Bytes;
            c.ReportedDropped = c.Dropped;
        }
    }

    /// <summary>Copies the entries out (control path; allocates), oldest first.</summary>
    public List<ConnectionRecord> Snapshot(ulong mac = 0)
    {
        var list = new List<ConnectionRecord>(Count);
        for (int i = _oldest; i >= 0; i = _entries[i].Next)
        {
            ref var c = ref _entries[i];
            if (mac != 0 && c.Key.EndpointMac != mac) continue;
            list.Add(new ConnectionRecord(c.Key, c.Sessions, c.Packets, c.Bytes, c.Dropped, c.FirstSeen, c.LastSeen));
        }
        return list;
    }

    private void Remove(int index)
    {
        ref var c = ref _entries[index];
        _index.Remove(c.Hash, index);
        Unlink(index);
        c.InUse = false;
        c.Next = _freeHead;
        _freeHead = index;
        Count--;
    }

    private void Append(int index)
    {
        ref var c = ref _entries[index];
        c.Prev = _newest;
        c.Next = -1;
        if (_newest >= 0) _entries[_newest].Next = index; else _oldest = index;
        _newest = index;
    }

    private void Unlink(int index)
    {
        ref var c = ref _entries[index];
        if (c.Prev >= 0) _entries[c.Prev].Next = c.Next; else _oldest = c.Next;
        if (c.Next >= 0) _entries[c.Next].Prev = c.Prev; else _newest = c.Prev;
        c.Prev = c.Next = -1;
    }

    private uint Hash(in ConnectionKey k)
    {
        ulong h = _seed ^ (k.EndpointMac * 0x9E3779B97F4A7C15UL) ^ (k.ClientLow * 0xC2B2AE3D27D4EB4FUL) ^ (k.ServerLow * 0x165667B19E3779F9UL)
            ^ (k.ClientHigh * 0xD6E8FEB86659FD93UL) ^ (k.ServerHigh * 0x27D4EB2F165667C5UL)
            ^ (((ulong)k.ServerPort << 48 | (ulong)k.Protocol << 40 | (ulong)k.Action << 32 | k.RuleId) * 0xFF51AFD7ED558CCDUL)
            ^ (k.Ingress ? 0x5bd1e995UL : 0) ^ (k.IPv6 ? 0x1b873593UL << 20 : 0);
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53UL;
        h ^= h >> 33;
        return (uint)h;
    }
}
