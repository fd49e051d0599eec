using System;
using System.Collections.Generic;
using System.Security.Cryptography;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Engine;

/// <summary>What identifies a connection: a workload, a direction, client and server, server port, protocol, and the
/// verdict (rule id and action), so a conversation whose verdict changes gets a second entry. A scan summary
/// (<see cref="Scan"/>) has server port 0 and stands for many never-answered server ports of one client.</summary>
internal struct ConnectionKey
{
    public ulong EndpointMac;
    public ulong ClientHigh, ClientLow, ServerHigh, ServerLow;
    public ushort ServerPort;
    public byte Protocol;
    public bool Ingress, IPv6, Scan;
    public uint RuleId;
    public DpPolicyAction Action;

    public readonly bool SameAs(in ConnectionKey o)
        => EndpointMac == o.EndpointMac && ClientLow == o.ClientLow && ServerLow == o.ServerLow && ServerPort == o.ServerPort
           && Protocol == o.Protocol && Ingress == o.Ingress && RuleId == o.RuleId && Action == o.Action && IPv6 == o.IPv6
           && Scan == o.Scan && ClientHigh == o.ClientHigh && ServerHigh == o.ServerHigh;
}

/// <summary>One connection entry (stored by value).</summary>
internal struct Connection
{
    public ConnectionKey Key;
    public uint Hash;
    public bool InUse;
    /// <summary>The server answered one of its sessions (a learned entry; only another such entry evicts it).</summary>
    public bool Answered;
    /// <summary>Which use of this slot it is (a new value each time an entry is created here, never 0).</summary>
    public uint Epoch;
    public long Sessions, Packets, Bytes, Dropped;
    /// <summary>Connection attempts folded into this entry (scan summaries; 0 otherwise).</summary>
    public long Attempts;
    public long FirstSeen, LastSeen;
    /// <summary>Neighbours in the least-recently-seen list of its kind (answered or not), or the next free entry.</summary>
    public int Prev, Next;
    /// <summary>What the last connection report to the agent covered (see <see cref="ConnectionTable.CollectReports"/>).</summary>
    public long ReportedSessions, ReportedBytes, ReportedDropped;
}

/// <summary>What an entry gained since the previous connection report.</summary>
internal readonly record struct ConnectionDelta(ConnectionKey Key, long Sessions, long Bytes, long Dropped, long FirstSeen, long LastSeen);

/// <summary>A connection copied out for the control side.</summary>
internal sealed record ConnectionRecord(ConnectionKey Key, long Sessions, long Packets, long Bytes, long Dropped, long FirstSeen, long LastSeen,
    bool Answered = false, long Attempts = 0);

/// <summary>
/// The connections the datapath saw, per workload: what NeuVector's dp reports to its agent as connection messages
/// and the agent aggregates, kept here in the daemon (there is no agent). Preallocated, open-addressing index like the
/// session table. Owned by the packet thread; nothing allocates after construction. Every entry gets a new
/// <see cref="Connection.Epoch"/>, so a session that keeps (index, epoch) notices when its entry was forgotten and the
/// slot reused (<see cref="IsCurrent"/>).
/// <para>Bounded learning: entries are of two kinds, each in its own least-recently-seen list. A new entry is
/// unanswered; it becomes answered (learned) when the server answers one of its sessions (<see cref="MarkAnswered"/>).
/// When the table is full a new entry evicts the least recently seen unanswered entry (then a scan entry), never an answered one; answered
/// entries may hold at most <see cref="MaxAnswered"/> entries (the rest is reserved for unanswered ones), and past
/// that an answer evicts the least recently seen answered entry. So denied and never-answered flows (scans) only ever
/// push each other out. A client that opens more than <see cref="ScanThreshold"/> new entries of one workload within
/// <see cref="ScanWindowSeconds"/> that are not answered (an answer takes its entry off the count) is scanning: its further new entries fold into one scan entry per client, verdict
/// and protocol (server port 0, <see cref="Connection.Attempts"/> counting them); a folded session the server does
/// answer gets an entry of its own then. Scan entries have a list of their own, at most <see cref="MaxScans"/> of
/// them, so per-port flood entries push out each other before a summary.</para>
/// </summary>
internal sealed class ConnectionTable
{
    /// <summary>New entries of one client and workload within <see cref="ScanWindowSeconds"/>, not answered, past which further ones fold into a scan entry.</summary>
    public const int ScanThreshold = 32;
    /// <summary>See <see cref="ScanThreshold"/>.</summary>
    public const long ScanWindowSeconds = 60;
    private const int Unanswered = 0, AnsweredList = 1, ScanList = 2;
    private const int TrackerSlots = 4096;

    private readonly Connection[] _entries;
    private readonly SlotIndex _index;
    private readonly ulong _seed;
    private readonly int[] _oldest = [-1, -1, -1], _newest = [-1, -1, -1];
    private int _freeHead;
    // per client and workload: new entries in the current window (direct-mapped; a collision starts the slot afresh)
    private readonly ScanTracker[] _trackers = new ScanTracker[TrackerSlots];
    private uint _epoch;

    private struct ScanTracker
    {
        public ulong EndpointMac, ClientHigh, ClientLow;
        public bool Ingress, InUse;
        public long WindowStart;
        public int NewEntries;
    }

    /// <summary>Most entries held.</summary>
    public int Capacity { get; }
    /// <summary>Most answered entries held (the rest of the table is reserved for unanswered ones).</summary>
    public int MaxAnswered { get; }
    /// <summary>Most scan entries held (a quarter of the table).</summary>
    public int MaxScans { get; }
    /// <summary>Entries held now, and how many of them are answered.</summary>
    public int Count { get; private set; }
    /// <summary>See <see cref="Count"/>.</summary>
    public int AnsweredCount { get; private set; }
    /// <summary>Scan entries held now.</summary>
    public int ScanCount { get; private set; }
    /// <summary>Entries dropped to make room, and how many of them were answered.</summary>
    public long Evicted { get; private set; }
    /// <summary>See <see cref="Evicted"/>.</summary>
    public long AnsweredEvicted { get; private set; }
    /// <summary>Connection attempts folded into scan entries instead of getting entries of their own.</summary>
    public long Summarised { get; private set; }
    /// <summary>
    /// Bumped (on the packet thread) whenever the set of answered entries changes: one learned, one forgotten. The control
    /// thread reads it without a round trip (<see cref="LearnedChanges"/>) to tell whether the saved learned entries are stale.
    /// </summary>
    private long _learnedChanges;
    /// <summary>See <see cref="_learnedChanges"/> (any thread).</summary>
    public long LearnedChanges => System.Threading.Volatile.Read(ref _learnedChanges);

    public ConnectionTable(int capacity = 16384)
    {
        if (capacity < 1 || capacity > 1 << 22) throw new ArgumentOutOfRangeException(nameof(capacity), "1 to 4194304 connections");
        Capacity = capacity;
        MaxAnswered = capacity == 1 ? 1 : capacity - Math.Clamp(capacity / 8, 1, 4096);
        MaxScans = Math.Max(1, capacity / 4);
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

    /// <summary>Finds or creates the entry for <paramref name="key"/> and says which it did (no scan folding).</summary>
    public int Find(in ConnectionKey key, long now, out bool created)
    {
        uint hash = Hash(in key);
        int found = Lookup(in key, hash);
        if (found >= 0) { created = false; return found; }
        created = true;
        return Create(in key, hash, now);
    }

    /// <summary>
    /// Finds the entry for <paramref name="key"/>, or creates it, or, when its client is scanning the workload, folds
    /// the attempt into the client's scan entry (then <paramref name="created"/> says whether that was new).
    /// </summary>
    public int Record(in ConnectionKey key, long now, out bool created)
    {
        uint hash = Hash(in key);
        int found = Lookup(in key, hash);
        if (found >= 0) { created = false; return found; }
        ref var tr = ref _trackers[(int)(TrackerHash(in key) & (TrackerSlots - 1))];
        if (!tr.InUse || tr.EndpointMac != key.EndpointMac || tr.ClientLow != key.ClientLow || tr.ClientHigh != key.ClientHigh
            || tr.Ingress != key.Ingress || now - tr.WindowStart >= ScanWindowSeconds)
        {
            tr.InUse = true;
            tr.EndpointMac = key.EndpointMac; tr.ClientHigh = key.ClientHigh; tr.ClientLow = key.ClientLow; tr.Ingress = key.Ingress;
            tr.WindowStart = now;
            tr.NewEntries = 0;
        }
        if (key.Scan || tr.NewEntries < ScanThreshold)
        {
            tr.NewEntries++;
            created = true;
            return Create(in key, hash, now);
        }
        var scan = key;
        scan.Scan = true;
        scan.ServerPort = 0;
        int index = Find(in scan, now, out created);
        _entries[index].Attempts++;
        Summarised++;
        return index;
    }

    /// <summary>
    /// The server answered a session counted in entry <paramref name="index"/>: it becomes a learned entry (scan
    /// entries stay what they are). When answered entries are at <see cref="MaxAnswered"/>, the least recently seen
    /// one is evicted to make room.
    /// </summary>
    public void MarkAnswered(int index)
    {
        ref var c = ref _entries[index];
        if (c.Answered || c.Key.Scan) return;
        // an answered entry does not count towards its client's scan threshold
        ref var tr = ref _trackers[(int)(TrackerHash(in c.Key) & (TrackerSlots - 1))];
        if (tr.InUse && tr.NewEntries > 0 && tr.EndpointMac == c.Key.EndpointMac && tr.ClientLow == c.Key.ClientLow
            && tr.ClientHigh == c.Key.ClientHigh && tr.Ingress == c.Key.Ingress) tr.NewEntries--;
        if (AnsweredCount >= MaxAnswered && _oldest[AnsweredList] >= 0 && _oldest[AnsweredList] != index)
        {
            Remove(_oldest[AnsweredList]);
            Evicted++;
            AnsweredEvicted++;
        }
        Unlink(index);
        c.Answered = true;
        AnsweredCount++;
        Append(index);
        System.Threading.Volatile.Write(ref _learnedChanges, _learnedChanges + 1);
    }

    /// <summary>
    /// Re-learns an answered entry saved before a restart (control path, before the ring opens): creates it with its
    /// counters as saved (already reported to the agent) and marks it answered, newest last, so the answered share's
    /// bound holds as it does for learning. An entry already present is left as it is.
    /// </summary>
    public void Relearn(in ConnectionKey key, long sessions, long packets, long bytes, long dropped, long firstSeen, long lastSeen)
    {
        if (key.Scan) return;
        int index = Find(in key, lastSeen, out bool created);
        if (!created) return;
        ref var c = ref _entries[index];
        c.Sessions = c.ReportedSessions = sessions;
        c.Packets = packets;
        c.Bytes = c.ReportedBytes = bytes;
        c.Dropped = c.ReportedDropped = dropped;
        c.FirstSeen = firstSeen;
        c.LastSeen = lastSeen;
        MarkAnswered(index);
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
            if (_newest[Kind(in c)] != index) { Unlink(index); Append(index); }
        }
    }

    /// <summary>Accounts what the kernel fast path forwarded for a session of the entry (docs/datapath.md, "The kernel fast path"), last forwarded at <paramref name="seen"/>.</summary>
    public void AccountForwarded(int index, long packets, long bytes, long seen)
    {
        ref var c = ref _entries[index];
        c.Packets += packets;
        c.Bytes += bytes;
        if (seen > c.LastSeen)
        {
            c.LastSeen = seen;
            if (_newest[Kind(in c)] != index) { Unlink(index); Append(index); }
        }
    }

    /// <summary>Removes the entries of the workload <paramref name="mac"/>, or all when it is 0.</summary>
    public int Clear(ulong mac)
    {
        int n = 0;
        for (int i = 0; i < _entries.Length; i++)
            if (_entries[i].InUse && (mac == 0 || _entries[i].Key.EndpointMac == mac)) { Remove(i); n++; }
        if (mac == 0) Array.Clear(_trackers);
        return n;
    }

    /// <summary>
    /// Adds to <paramref name="into"/> what each entry gained since the previous call, and marks it reported (control
    /// path, on the packet thread: the reports to the agent's socket). Entries evicted meanwhile are lost to reports.
    /// </summary>
    public void CollectReports(List<ConnectionDelta> into)
    {
        for (int kind = 0; kind < _oldest.Length; kind++)
            for (int i = _oldest[kind]; i >= 0; i = _entries[i].Next)
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

    /// <summary>Copies the entries out (control path; allocates), oldest first: unanswered ones, then answered ones, then scans.</summary>
    public List<ConnectionRecord> Snapshot(ulong mac = 0) => Snapshot(mac, [Unanswered, AnsweredList, ScanList]);

    /// <summary>Copies the answered (learned) entries out, oldest first (control path; allocates): at most <see cref="MaxAnswered"/>.</summary>
    public List<ConnectionRecord> SnapshotLearned() => Snapshot(0, [AnsweredList]);

    private List<ConnectionRecord> Snapshot(ulong mac, ReadOnlySpan<int> kinds)
    {
        var list = new List<ConnectionRecord>(Count);
        foreach (int kind in kinds)
            for (int i = _oldest[kind]; i >= 0; i = _entries[i].Next)
            {
                ref var c = ref _entries[i];
                if (mac != 0 && c.Key.EndpointMac != mac) continue;
                list.Add(new ConnectionRecord(c.Key, c.Sessions, c.Packets, c.Bytes, c.Dropped, c.FirstSeen, c.LastSeen, c.Answered, c.Attempts));
            }
        return list;
    }

    private int Lookup(in ConnectionKey key, uint hash)
    {
        for (int slot = _index.First(hash); ; slot = _index.Next(slot))
        {
            int e = _index.EntryAt(slot);
            if (e < 0) return -1;
            if (_index.HashAt(slot) == hash && _entries[e].Key.SameAs(in key)) return e;
        }
    }

    private int Create(in ConnectionKey key, uint hash, long now)
    {
        // a new scan entry past MaxScans replaces the least recently seen scan entry; otherwise, when full, the least
        // recently seen unanswered entry goes, then a scan entry, and an answered one only when there is nothing else
        // (capacity 1)
        int victim = key.Scan && ScanCount >= MaxScans ? _oldest[ScanList]
            : _freeHead >= 0 ? -1
            : _oldest[Unanswered] >= 0 ? _oldest[Unanswered] : _oldest[ScanList] >= 0 ? _oldest[ScanList] : _oldest[AnsweredList];
        if (victim >= 0)
        {
            if (_entries[victim].Answered) AnsweredEvicted++;
            Remove(victim);
            Evicted++;
        }
        int index = _freeHead;
        ref var n = ref _entries[index];
        _freeHead = n.Next;
        n.Key = key;
        n.Hash = hash;
        n.InUse = true;
        n.Answered = false;
        if (++_epoch == 0) _epoch = 1;
        n.Epoch = _epoch;
        n.Sessions = n.Packets = n.Bytes = n.Dropped = n.Attempts = 0;
        n.ReportedSessions = n.ReportedBytes = n.ReportedDropped = 0;
        n.FirstSeen = n.LastSeen = now;
        Append(index);
        _index.Insert(hash, index);
        Count++;
        if (key.Scan) ScanCount++;
        return index;
    }

    private void Remove(int index)
    {
        ref var c = ref _entries[index];
        _index.Remove(c.Hash, index);
        Unlink(index);
        if (c.Answered) AnsweredCount--;
        if (c.Key.Scan) ScanCount--;
        if (c.Answered) System.Threading.Volatile.Write(ref _learnedChanges, _learnedChanges + 1);
        c.InUse = false;
        c.Answered = false;
        c.Next = _freeHead;
        _freeHead = index;
        Count--;
    }

    private void Append(int index)
    {
        ref var c = ref _entries[index];
        int kind = Kind(in c);
        c.Prev = _newest[kind];
        c.Next = -1;
        if (_newest[kind] >= 0) _entries[_newest[kind]].Next = index; else _oldest[kind] = index;
        _newest[kind] = index;
    }

    private void Unlink(int index)
    {
        ref var c = ref _entries[index];
        int kind = Kind(in c);
        if (c.Prev >= 0) _entries[c.Prev].Next = c.Next; else _oldest[kind] = c.Next;
        if (c.Next >= 0) _entries[c.Next].Prev = c.Prev; else _newest[kind] = c.Prev;
        c.Prev = c.Next = -1;
    }

    private static int Kind(in Connection c) => c.Answered ? AnsweredList : c.Key.Scan ? ScanList : Unanswered;

    private uint TrackerHash(in ConnectionKey k)
    {
        ulong h = _seed ^ (k.EndpointMac * 0x9E3779B97F4A7C15UL) ^ (k.ClientLow * 0xC2B2AE3D27D4EB4FUL) ^ (k.ClientHigh * 0xD6E8FEB86659FD93UL)
            ^ (k.Ingress ? 0x5bd1e995UL : 0);
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53UL;
        h ^= h >> 33;
        return (uint)h;
    }

    private uint Hash(in ConnectionKey k)
    {
        ulong h = _seed ^ (k.EndpointMac * 0x9E3779B97F4A7C15UL) ^ (k.ClientLow * 0xC2B2AE3D27D4EB4FUL) ^ (k.ServerLow * 0x165667B19E3779F9UL)
            ^ (k.ClientHigh * 0xD6E8FEB86659FD93UL) ^ (k.ServerHigh * 0x27D4EB2F165667C5UL)
            ^ (((ulong)k.ServerPort << 48 | (ulong)k.Protocol << 40 | (ulong)k.Action << 32 | k.RuleId) * 0xFF51AFD7ED558CCDUL)
            ^ (k.Ingress ? 0x5bd1e995UL : 0) ^ (k.IPv6 ? 0x1b873593UL << 20 : 0) ^ (k.Scan ? 0x2545F4914F6CDD1DUL : 0);
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53UL;
        h ^= h >> 33;
        return (uint)h;
    }
}
