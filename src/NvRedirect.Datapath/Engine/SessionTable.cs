using System;
using System.Collections.Generic;
using System.Security.Cryptography;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// What a session's idle timeout is, by protocol and TCP state (NeuVector dp/dpi/dpi_session.c: TCP opening 20 s,
/// established without client data 30 s, established 1200 s, half closed 90 s, closed 15 s; UDP 30 s; ICMP 5 s;
/// other IP 15 s). Every packet of the session restarts the timeout of its class.
/// </summary>
internal enum TimeoutClass : byte
{
    TcpOpening, TcpNoData, TcpEstablished, TcpHalfClosed, TcpClosed, Udp, Icmp, OtherIp,
}

/// <summary>Session flags, as DPSESS_FLAG_* reports them.</summary>
[Flags]
internal enum SessionFlags : byte
{
    None = 0,
    /// <summary>The workload is the server (the session was opened towards it).</summary>
    Ingress = 1,
    /// <summary>The workload was in tap mode when the session started.</summary>
    Tap = 2,
    /// <summary>Picked up mid-stream (no handshake seen).</summary>
    MidStream = 4,
    /// <summary>Let through by the grace period for an address the agent has not named (dp's TMP_OPEN).</summary>
    TmpOpen = 8,
}

/// <summary>A packet reduced to what session tracking needs; the frame processor fills it in place.</summary>
internal struct PacketTuple
{
    /// <summary>Addresses as 128-bit numbers (IPv4 as ::ffff:a.b.c.d).</summary>
    public ulong SourceHigh, SourceLow, DestinationHigh, DestinationLow;
    /// <summary>TCP/UDP ports; for ICMP both carry the echo identifier so both directions match.</summary>
    public ushort SourcePort, DestinationPort;
    public byte Protocol;
    public bool IPv6;
    /// <summary>Towards the workload (matched by destination MAC).</summary>
    public bool Ingress;
    public byte TcpFlags;
    /// <summary>TCP payload bytes.</summary>
    public int PayloadLength;
    /// <summary>ICMP type &lt;&lt; 8 | code.</summary>
    public ushort IcmpTypeCode;
    public ulong SourceMac, DestinationMac;
    /// <summary>Frame length on the wire.</summary>
    public int Length;
}

/// <summary>One tracked conversation. Stored by value in a preallocated array.</summary>
internal struct Session
{
    // key: the two endpoints in canonical order (Lo sorts first), protocol, KeyFlags bit 0 = "Lo -> Hi packets are
    // ingress" (NeuVector keys sessions with the ingress flag too), bit 1 = IPv6
    public ulong LoHigh, LoLow, HiHigh, HiLow;
    public ushort LoPort, HiPort;
    public byte Protocol, KeyFlags;
    public uint Hash;

    public bool InUse, ClientIsLo, ClientSentData;
    public SessionFlags Flags;
    public TcpState ClientState, ServerState;
    public TimeoutClass Class;
    public ushort IcmpTypeCode;
    public uint Id;
    public uint ClientPackets, ServerPackets;
    public ulong ClientBytes, ServerBytes;
    public long CreatedAt, LastSeen, ExpiresAt;
    /// <summary>Neighbours in the timeout-class list, or the next free slot.</summary>
    public int Prev, Next;
    public ulong EndpointMac, ClientMac, ServerMac;
    public WorkloadState? Endpoint;
    /// <summary>What the session was decided under (policy version and settings generation; 0 = not decided yet).</summary>
    public ulong PolicyStamp;
    /// <summary>The deciding rule (0 = default action or built-in) and its action.</summary>
    public uint PolicyId;
    public DpPolicyAction PolicyAction;
    /// <summary>Denied after it started: every packet is dropped until it expires or a policy change allows it.</summary>
    public bool Blocked;
    /// <summary>The datapath reset it (TCP, once per block).</summary>
    public bool ResetSent;
    /// <summary>The connection entry the session is counted in, valid while that entry's epoch is unchanged.</summary>
    public int Connection;
    public uint ConnectionEpoch;
    /// <summary>Published in the workload's fast-path map (FastPath.Consider); the map counters already folded in, towards and from the workload.</summary>
    public bool Published;
    public ulong FastInPackets, FastInBytes, FastOutPackets, FastOutBytes;

    /// <summary>The client's and server's IPv4 addresses (IPv4 sessions) and the server's port.</summary>
    public readonly uint ClientIPv4 => (uint)(ClientIsLo ? LoLow : HiLow);
    public readonly uint ServerIPv4 => (uint)(ClientIsLo ? HiLow : LoLow);
    public readonly ushort ServerPort => ClientIsLo ? HiPort : LoPort;
    public readonly bool IsIPv6 => (KeyFlags & 2) != 0;
}

/// <summary>A packet's conversation key in canonical order (see <see cref="SessionTable.KeyOf"/>).</summary>
internal struct SessionKey
{
    public ulong LoHigh, LoLow, HiHigh, HiLow;
    public ushort LoPort, HiPort;
    public byte Protocol, KeyFlags;
    public uint Hash;
    /// <summary>The packet travels from Lo to Hi.</summary>
    public bool FromLo;
}

/// <summary>How a packet without a session opens one (see <see cref="SessionTable.Open"/>).</summary>
internal struct Opening
{
    public bool SenderIsClient, MidStream;
    public TimeoutClass Initial;
    public TcpState ClientState, ServerState;
}

/// <summary>A session copied out for the control side (list replies, tests).</summary>
internal sealed record SessionRecord(
    uint Id, ulong EndpointMac, bool IPv6, byte[] ClientIP, byte[] ServerIP, ushort ClientPort, ushort ServerPort,
    byte Protocol, ushort IcmpTypeCode, ulong ClientMac, ulong ServerMac, uint ClientPackets, uint ServerPackets,
    ulong ClientBytes, ulong ServerBytes, TcpState ClientState, TcpState ServerState, long Age, long Idle, long Life,
    SessionFlags Flags, TimeoutClass Class, uint PolicyId = 0, DpPolicyAction PolicyAction = 0, bool Blocked = false)
{
    /// <summary>The session as DPMsgSession carries it (counters and times clamped to the wire's widths).</summary>
    public SessionEntry ToWire()
    {
        ushort flags = 0;
        if ((Flags & SessionFlags.Ingress) != 0) flags |= DpWire.SessionFlagIngress;
        if ((Flags & SessionFlags.Tap) != 0) flags |= DpWire.SessionFlagTap;
        if ((Flags & SessionFlags.MidStream) != 0) flags |= DpWire.SessionFlagMidStream;
        if ((Flags & SessionFlags.TmpOpen) != 0) flags |= DpWire.SessionFlagTmpOpen;
        bool icmp = Protocol is 1 or 58;
        return new SessionEntry(Id, EndpointMac, IPv6, ClientIP, ServerIP, ClientPort, ServerPort, Protocol, icmp ? IcmpTypeCode : (ushort)0,
            ClientMac, ServerMac, ClientPackets, ServerPackets, (uint)ClientBytes, (uint)ServerBytes, ClientState, ServerState,
            (uint)Math.Clamp(Age, 0, uint.MaxValue), (ushort)Math.Clamp(Idle, 0, ushort.MaxValue), (ushort)Math.Clamp(Life, 0, ushort.MaxValue),
            flags, PolicyId, PolicyAction);
    }
}

/// <summary>
/// The session table: a fixed number of sessions preallocated, found through an open-addressing index (linear
/// probing, backward-shift deletion, load at most 1/2) by a seeded hash of the canonical 5-tuple, so both
/// orientations of a conversation land on the same entry with one probe sequence. Timeouts: every timeout class
/// keeps its sessions in a list ordered by expiry (a packet moves its session to the tail), so expiring is "pop
/// heads that are due"; evicting when full takes the opening or closed TCP session closest to expiring (what a scan
/// leaves), and a live one only when there is none. Owned by one thread; nothing
/// here allocates after construction.
/// </summary>
internal sealed class SessionTable
{
    /// <summary>Seconds per <see cref="TimeoutClass"/>.</summary>
    public static readonly ushort[] TimeoutSeconds = [20, 30, 1200, 90, 15, 30, 5, 15];
    private const int ClassCount = 8;
    private const byte FlagLoToHiIngress = 1, FlagIPv6 = 2;
    private const byte Fin = 1, Syn = 2, Rst = 4, Ack = 16;

    private readonly Session[] _sessions;
    private readonly SlotIndex _index;
    private readonly ulong _seed;
    private readonly int[] _head = new int[ClassCount], _tail = new int[ClassCount];
    private int _freeHead;
    private uint _nextId;

    /// <summary>Most sessions held at once.</summary>
    public int Capacity { get; }
    /// <summary>Sessions held now.</summary>
    public int Count { get; private set; }
    /// <summary>Current sessions per protocol (ICMP includes ICMPv6; Other = any other IP protocol).</summary>
    public int CurrentTcp, CurrentUdp, CurrentIcmp, CurrentOther;
    /// <summary>Sessions created, expired by timeout, evicted to make room, and removed on request.</summary>
    public long Created, Expired, Evicted, Removed;
    /// <summary>Of <see cref="Evicted"/>: live sessions (past their TCP handshake, or UDP, ICMP, other), evicted only when no
    /// opening or closed TCP session was left to evict.</summary>
    public long LiveEvicted;
    /// <summary>Sessions created per protocol.</summary>
    public long CreatedTcp, CreatedUdp, CreatedIcmp, CreatedOther;

    /// <summary>The kernel fast path, when the daemon uses one: a removed session's entries go with it, ageing counts what it forwarded.</summary>
    public FastPath? FastPath { get; set; }

    /// <summary>Preallocates <paramref name="capacity"/> sessions.</summary>
    public SessionTable(int capacity = 65536)
    {
        if (capacity < 1 || capacity > 1 << 24) throw new ArgumentOutOfRangeException(nameof(capacity), "1 to 16777216 sessions");
        Capacity = capacity;
        _sessions = new Session[capacity];
        _index = new SlotIndex(capacity);
        _seed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)); // unpredictable buckets: no crafted collisions
        Reset();
    }

    private void Reset()
    {
        _index.Clear();
        for (int i = 0; i < _sessions.Length; i++) _sessions[i] = new Session { Next = i + 1 < _sessions.Length ? i + 1 : -1 };
        _freeHead = 0;
        _head.AsSpan().Fill(-1);
        _tail.AsSpan().Fill(-1);
        Count = CurrentTcp = CurrentUdp = CurrentIcmp = CurrentOther = 0;
    }

    /// <summary>The session at <paramref name="index"/> (as returned by <see cref="Track"/>).</summary>
    public ref Session this[int index] => ref _sessions[index];

    /// <summary>
    /// Finds or creates the session of <paramref name="p"/> and accounts the packet to it. Returns the session index,
    /// or -1 when the packet opens nothing (a TCP RST or FIN without a session, as in NeuVector). The frame processor
    /// uses the steps separately (<see cref="KeyOf"/>, <see cref="Find"/>, <see cref="Open"/>, <see cref="Create"/>,
    /// <see cref="Account"/>) so that policy can refuse a new session before it exists.
    /// </summary>
    public int Track(in PacketTuple p, Workload workload, long now)
    {
        var key = KeyOf(in p);
        int index = Find(in key, in p, out bool fromClient);
        if (index >= 0) { Account(index, in p, fromClient, now); return index; }
        if (!Open(in p, out var opening)) return -1;
        return Create(in key, in p, in opening, workload, now);
    }

    /// <summary>The canonical key of a packet's conversation (both orientations give the same key).</summary>
    public SessionKey KeyOf(in PacketTuple p)
    {
        SessionKey k;
        k.FromLo = Compare(p.SourceHigh, p.SourceLow, p.SourcePort, p.DestinationHigh, p.DestinationLow, p.DestinationPort) <= 0;
        if (k.FromLo) { k.LoHigh = p.SourceHigh; k.LoLow = p.SourceLow; k.LoPort = p.SourcePort; k.HiHigh = p.DestinationHigh; k.HiLow = p.DestinationLow; k.HiPort = p.DestinationPort; }
        else { k.LoHigh = p.DestinationHigh; k.LoLow = p.DestinationLow; k.LoPort = p.DestinationPort; k.HiHigh = p.SourceHigh; k.HiLow = p.SourceLow; k.HiPort = p.SourcePort; }
        k.Protocol = p.Protocol;
        k.KeyFlags = (byte)(((k.FromLo ? p.Ingress : !p.Ingress) ? FlagLoToHiIngress : 0) | (p.IPv6 ? FlagIPv6 : 0));
        k.Hash = Hash(k.LoHigh, k.LoLow, k.HiHigh, k.HiLow, k.LoPort, k.HiPort, k.Protocol, k.KeyFlags);
        return k;
    }

    /// <summary>
    /// The live session of <paramref name="key"/>, or -1. A fresh SYN from the client of a closed TCP conversation
    /// (port reuse) ends the old session here, so the packet opens a new one.
    /// </summary>
    public int Find(in SessionKey key, in PacketTuple p, out bool fromClient)
    {
        fromClient = false;
        int index = Find(key.Hash, key.LoHigh, key.LoLow, key.HiHigh, key.HiLow, key.LoPort, key.HiPort, key.Protocol, key.KeyFlags);
        if (index < 0) return -1;
        ref var s = ref _sessions[index];
        fromClient = key.FromLo == s.ClientIsLo;
        bool restart = p.Protocol == 6 && (p.TcpFlags & (Syn | Ack)) == Syn && fromClient && s.Class == TimeoutClass.TcpClosed;
        if (!restart) return index;
        Remove(index);
        Removed++;
        return -1;
    }

    /// <summary>
    /// How a packet without a session would open one: who is the client, the first timeout class and TCP states.
    /// False when it opens nothing (a TCP RST or FIN).
    /// </summary>
    public static bool Open(in PacketTuple p, out Opening o)
    {
        o = default;
        o.Initial = TimeoutClass.OtherIp;
        o.SenderIsClient = true;
        switch (p.Protocol)
        {
            case 6:
                byte f = p.TcpFlags;
                if ((f & Syn) == 0 && (f & (Rst | Fin)) != 0) return false;
                o.Initial = TimeoutClass.TcpOpening;
                if ((f & Syn) != 0)
                {
                    o.SenderIsClient = (f & Ack) == 0;
                    o.ClientState = TcpState.SynSent;
                    o.ServerState = o.SenderIsClient ? TcpState.Listen : TcpState.SynRecv;
                }
                else
                {
                    // mid-stream: the side talking from a well-known port to an ephemeral one is the server
                    o.SenderIsClient = !(p.SourcePort < 1024 && p.DestinationPort >= 1024);
                    o.ClientState = o.ServerState = TcpState.Established;
                    o.Initial = TimeoutClass.TcpEstablished;
                    o.MidStream = true;
                }
                break;
            case 17:
                o.Initial = TimeoutClass.Udp;
                break;
            case 1:
            case 58:
                o.SenderIsClient = (p.IcmpTypeCode >> 8) is not (0 or 129); // an echo reply seen first: its receiver asked
                o.Initial = TimeoutClass.Icmp;
                break;
        }
        return true;
    }

    /// <summary>Creates the session <paramref name="o"/> describes for <paramref name="p"/> and accounts the packet to it.</summary>
    public int Create(in SessionKey key, in PacketTuple p, in Opening o, Workload workload, long now)
    {
        int index = Allocate();
        ref var n = ref _sessions[index];
        n.LoHigh = key.LoHigh; n.LoLow = key.LoLow; n.HiHigh = key.HiHigh; n.HiLow = key.HiLow; n.LoPort = key.LoPort; n.HiPort = key.HiPort;
        n.Protocol = key.Protocol; n.KeyFlags = key.KeyFlags; n.Hash = key.Hash;
        n.InUse = true;
        n.ClientIsLo = o.SenderIsClient == key.FromLo;
        n.ClientSentData = false;
        if (++_nextId == 0) _nextId = 1;
        n.Id = _nextId;
        bool workloadIsServer = o.SenderIsClient ? p.Ingress : !p.Ingress;
        n.Flags = (workloadIsServer ? SessionFlags.Ingress : 0) | (workload.State.Tap ? SessionFlags.Tap : 0) | (o.MidStream ? SessionFlags.MidStream : 0);
        n.ClientState = o.ClientState; n.ServerState = o.ServerState;
        n.IcmpTypeCode = p.IcmpTypeCode;
        n.ClientPackets = n.ServerPackets = 0;
        n.ClientBytes = n.ServerBytes = 0;
        n.CreatedAt = now;
        n.EndpointMac = workload.Mac;
        n.ClientMac = o.SenderIsClient ? p.SourceMac : p.DestinationMac;
        n.ServerMac = o.SenderIsClient ? p.DestinationMac : p.SourceMac;
        n.Endpoint = workload.State;
        n.PolicyStamp = 0; n.PolicyId = 0; n.PolicyAction = 0; n.Blocked = n.ResetSent = false;
        n.Connection = -1; n.ConnectionEpoch = 0;
        n.Published = false; n.FastInPackets = n.FastInBytes = n.FastOutPackets = n.FastOutBytes = 0;
        n.Class = o.Initial;
        Append(index, o.Initial);
        Insert(index);

        Count++;
        Created++;
        CountProtocol(p.Protocol, +1);
        switch (p.Protocol)
        {
            case 6: CreatedTcp++; break;
            case 17: CreatedUdp++; break;
            case 1: case 58: CreatedIcmp++; break;
            default: CreatedOther++; break;
        }
        if (workloadIsServer) { workload.State.SessionsIn++; workload.State.CurrentSessionsIn++; }
        else { workload.State.SessionsOut++; workload.State.CurrentSessionsOut++; }

        Account(index, in p, o.SenderIsClient, now);
        return index;
    }

    /// <summary>A session the datapath reset (RSTs sent both ways): both wings closed, the closed timeout runs.</summary>
    public void MarkReset(int index, long now)
    {
        ref var s = ref _sessions[index];
        s.ClientState = s.ServerState = TcpState.Close;
        Unlink(index);
        s.Class = TimeoutClass.TcpClosed;
        s.ExpiresAt = now + TimeoutSeconds[(int)TimeoutClass.TcpClosed];
        Append(index, TimeoutClass.TcpClosed);
    }

    /// <summary>Accounts a packet to session <paramref name="index"/>: counters, TCP state, timeout.</summary>
    public void Account(int index, in PacketTuple p, bool fromClient, long now)
    {
        ref var s = ref _sessions[index];
        if (fromClient) { s.ClientPackets++; s.ClientBytes += (ulong)p.Length; }
        else { s.ServerPackets++; s.ServerBytes += (ulong)p.Length; }
        s.LastSeen = now;
        var next = p.Protocol == 6 ? TcpUpdate(ref s, p.TcpFlags, fromClient, p.PayloadLength) : s.Class;
        Unlink(index);
        s.Class = next;
        s.ExpiresAt = now + TimeoutSeconds[(int)next];
        Append(index, next);
    }

    // The TCP wing state machine (states as Linux numbers them), driven by the state of the wing that did NOT send.
    private static TimeoutClass TcpUpdate(ref Session s, byte f, bool fromClient, int payload)
    {
        var cls = s.Class;
        if ((f & Rst) != 0)
        {
            s.ClientState = s.ServerState = TcpState.Close;
            return TimeoutClass.TcpClosed;
        }
        ref TcpState self = ref fromClient ? ref s.ClientState : ref s.ServerState;
        ref TcpState peer = ref fromClient ? ref s.ServerState : ref s.ClientState;
        bool syn = (f & Syn) != 0, ack = (f & Ack) != 0, fin = (f & Fin) != 0;
        switch (peer)
        {
            case TcpState.Listen:
                if (syn) s.ServerState = TcpState.SynRecv;
                break;
            case TcpState.SynSent:
                if (syn) s.ClientState = ack ? TcpState.Established : TcpState.SynRecv;
                break;
            case TcpState.SynRecv:
                if ((!syn && ack && fromClient) || (syn && ack))
                {
                    s.ClientState = s.ServerState = TcpState.Established;
                    cls = TimeoutClass.TcpNoData;
                }
                break;
            case TcpState.Established:
                if (fin) { self = TcpState.FinWait1; peer = TcpState.CloseWait; }
                else if (syn && !ack && s.ServerState == TcpState.SynRecv) s.ServerState = TcpState.Established;
                break;
            case TcpState.FinWait1:
                if (fin) { self = TcpState.LastAck; peer = TcpState.FinWait2; cls = TimeoutClass.TcpClosed; }
                else if (!syn && ack) { self = TcpState.CloseWait; peer = TcpState.FinWait2; cls = TimeoutClass.TcpHalfClosed; }
                break;
            case TcpState.FinWait2:
                if (fin) { self = TcpState.LastAck; peer = TcpState.TimeWait; cls = TimeoutClass.TcpClosed; }
                break;
            case TcpState.LastAck:
                if (!syn && ack) { peer = TcpState.Close; cls = TimeoutClass.TcpClosed; }
                break;
        }
        if (fromClient && payload > 0 && !s.ClientSentData)
        {
            s.ClientSentData = true;
            if (cls == TimeoutClass.TcpNoData) cls = TimeoutClass.TcpEstablished;
        }
        return cls;
    }

    /// <summary>
    /// Releases sessions whose timeout passed by <paramref name="now"/>. A TCP session that saw no client data for
    /// 30 s is not released but moved to the established timeout (what NeuVector does unless its TCP-no-data threat
    /// check is on). Cheap when nothing is due: one comparison per class.
    /// </summary>
    public int Expire(long now)
    {
        int released = 0;
        for (int c = 0; c < ClassCount; c++)
        {
            int h;
            while ((h = _head[c]) >= 0 && _sessions[h].ExpiresAt <= now)
            {
                // a published session is idle only when the kernel forwarded nothing of it either
                if (_sessions[h].Published && FastPath is { } fp && fp.Fold(ref _sessions[h]) is long seen and >= 0
                    && seen > _sessions[h].LastSeen && seen + TimeoutSeconds[c] > now)
                {
                    Unlink(h);
                    _sessions[h].LastSeen = seen;
                    _sessions[h].ExpiresAt = seen + TimeoutSeconds[c];
                    Append(h, (TimeoutClass)c);
                    continue;
                }
                if (c == (int)TimeoutClass.TcpNoData)
                {
                    Unlink(h);
                    _sessions[h].Class = TimeoutClass.TcpEstablished;
                    _sessions[h].ExpiresAt = now + TimeoutSeconds[(int)TimeoutClass.TcpEstablished];
                    Append(h, TimeoutClass.TcpEstablished);
                    continue;
                }
                Remove(h);
                Expired++;
                released++;
            }
        }
        return released;
    }

    /// <summary>Removes the session with <paramref name="id"/>, or every session when it is 0 (ctrl_clear_session).</summary>
    public int Clear(uint id)
    {
        int n = 0;
        for (int i = 0; i < _sessions.Length; i++)
            if (_sessions[i].InUse && (id == 0 || _sessions[i].Id == id)) { Remove(i); n++; }
        Removed += n;
        return n;
    }

    /// <summary>Removes every session of the workload whose real MAC is <paramref name="mac"/> (ctrl_del_mac).</summary>
    public int RemoveEndpoint(ulong mac)
    {
        int n = 0;
        for (int i = 0; i < _sessions.Length; i++)
            if (_sessions[i].InUse && _sessions[i].EndpointMac == mac) { Remove(i); n++; }
        Removed += n;
        return n;
    }

    /// <summary>Folds what the fast path forwarded into every published session (before they are listed or counted).</summary>
    public void FoldFastPath()
    {
        if (FastPath is not { } fp) return;
        for (int i = 0; i < _sessions.Length; i++)
        {
            ref var s = ref _sessions[i];
            if (!s.InUse || !s.Published) continue;
            long seen = fp.Fold(ref s);
            if (seen > s.LastSeen) s.LastSeen = seen;
        }
    }

    /// <summary>
    /// Revokes what the fast path holds for workload <paramref name="mac"/> (0 = every workload): the sessions' counts
    /// are folded in, they are unmarked, and the maps emptied. Runs on the packet thread between batches, so no
    /// decision taken under the old policy is published afterwards.
    /// </summary>
    public void RevokeFastPath(ulong mac)
    {
        if (FastPath is not { } fp) return;
        for (int i = 0; i < _sessions.Length; i++)
        {
            ref var s = ref _sessions[i];
            if (!s.InUse || !s.Published || (mac != 0 && s.EndpointMac != mac)) continue;
            fp.Fold(ref s);
            s.Published = false;
        }
        if (mac != 0) fp.Clear(mac);
        else foreach (var m in new List<ulong>(fp.Workloads)) fp.Clear(m);
    }

    /// <summary>Copies the sessions out (control path; allocates).</summary>
    public List<SessionRecord> Snapshot(long now)
    {
        FoldFastPath();
        var list = new List<SessionRecord>(Count);
        for (int i = 0; i < _sessions.Length; i++)
        {
            ref var s = ref _sessions[i];
            if (!s.InUse) continue;
            bool v6 = (s.KeyFlags & FlagIPv6) != 0;
            var lo = Address(s.LoHigh, s.LoLow, v6);
            var hi = Address(s.HiHigh, s.HiLow, v6);
            bool icmp = s.Protocol is 1 or 58;
            list.Add(new SessionRecord(
                s.Id, s.EndpointMac, v6, s.ClientIsLo ? lo : hi, s.ClientIsLo ? hi : lo,
                icmp ? (ushort)0 : s.ClientIsLo ? s.LoPort : s.HiPort, icmp ? (ushort)0 : s.ClientIsLo ? s.HiPort : s.LoPort,
                s.Protocol, s.IcmpTypeCode, s.ClientMac, s.ServerMac, s.ClientPackets, s.ServerPackets, s.ClientBytes, s.ServerBytes,
                s.ClientState, s.ServerState, now - s.CreatedAt, now - s.LastSeen, Math.Max(0, s.ExpiresAt - now), s.Flags, s.Class,
                s.PolicyId, s.PolicyAction, s.Blocked));
        }
        list.Sort((a, b) => a.Id.CompareTo(b.Id));
        return list;
    }

    private static byte[] Address(ulong high, ulong low, bool v6)
    {
        if (!v6) return [(byte)(low >> 24), (byte)(low >> 16), (byte)(low >> 8), (byte)low];
        var b = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b, high);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(8), low);
        return b;
    }

    private void CountProtocol(byte protocol, int delta)
    {
        switch (protocol)
        {
            case 6: CurrentTcp += delta; break;
            case 17: CurrentUdp += delta; break;
            case 1: case 58: CurrentIcmp += delta; break;
            default: CurrentOther += delta; break;
        }
    }

    private int Allocate()
    {
        if (_freeHead < 0)
        {
            // full: evict a session still opening or already closed (never answered, or over: scans leave these)
            // closest to expiring; only when there is none, the live session closest to expiring
            int victim = Earliest(_head[(int)TimeoutClass.TcpOpening], _head[(int)TimeoutClass.TcpClosed]);
            if (victim < 0)
            {
                for (int c = 0; c < ClassCount; c++) victim = Earliest(victim, _head[c]);
                LiveEvicted++;
            }
            Remove(victim);
            Evicted++;
        }
        int index = _freeHead;
        _freeHead = _sessions[index].Next;
        return index;
    }

    private int Earliest(int a, int b) => a < 0 ? b : b < 0 ? a : _sessions[b].ExpiresAt < _sessions[a].ExpiresAt ? b : a;

    private void Remove(int index)
    {
        ref var s = ref _sessions[index];
        if (s.Published) FastPath?.Unpublish(ref s);
        RemoveFromIndex(index);
        Unlink(index);
        Count--;
        CountProtocol(s.Protocol, -1);
        if (s.Endpoint is { } ep)
        {
            if ((s.Flags & SessionFlags.Ingress) != 0) ep.CurrentSessionsIn--;
            else ep.CurrentSessionsOut--;
        }
        s.Endpoint = null;
        s.InUse = false;
        s.Next = _freeHead;
        _freeHead = index;
    }

    // --- timeout-class lists ---

    private void Append(int index, TimeoutClass cls)
    {
        int c = (int)cls;
        ref var s = ref _sessions[index];
        s.Prev = _tail[c];
        s.Next = -1;
        if (_tail[c] >= 0) _sessions[_tail[c]].Next = index; else _head[c] = index;
        _tail[c] = index;
    }

    private void Unlink(int index)
    {
        ref var s = ref _sessions[index];
        int c = (int)s.Class;
        if (s.Prev >= 0) _sessions[s.Prev].Next = s.Next; else _head[c] = s.Next;
        if (s.Next >= 0) _sessions[s.Next].Prev = s.Prev; else _tail[c] = s.Prev;
        s.Prev = s.Next = -1;
    }

    // --- hash index ---

    private int Find(uint hash, ulong loHigh, ulong loLow, ulong hiHigh, ulong hiLow, ushort loPort, ushort hiPort, byte protocol, byte keyFlags)
    {
        for (int slot = _index.First(hash); ; slot = _index.Next(slot))
        {
            int e = _index.EntryAt(slot);
            if (e < 0) return -1;
            if (_index.HashAt(slot) != hash) continue;
            ref var s = ref _sessions[e];
            if (s.LoLow == loLow && s.HiLow == hiLow && s.LoPort == loPort && s.HiPort == hiPort
                && s.Protocol == protocol && s.KeyFlags == keyFlags && s.LoHigh == loHigh && s.HiHigh == hiHigh)
                return e;
        }
    }

    private void Insert(int index) => _index.Insert(_sessions[index].Hash, index);

    private void RemoveFromIndex(int index) => _index.Remove(_sessions[index].Hash, index);

    private uint Hash(ulong loHigh, ulong loLow, ulong hiHigh, ulong hiLow, ushort loPort, ushort hiPort, byte protocol, byte keyFlags)
    {
        ulong h = _seed ^ (loLow * 0x9E3779B97F4A7C15UL) ^ (hiLow * 0xC2B2AE3D27D4EB4FUL) ^ (loHigh * 0x165667B19E3779F9UL)
            ^ (hiHigh * 0xD6E8FEB86659FD93UL) ^ (((ulong)loPort << 32 | (ulong)hiPort << 16 | (ulong)protocol << 8 | keyFlags) * 0xFF51AFD7ED558CCDUL);
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53UL;
        h ^= h >> 33;
        return (uint)h;
    }

    private static int Compare(ulong aHigh, ulong aLow, ushort aPort, ulong bHigh, ulong bLow, ushort bPort)
        => aHigh != bHigh ? aHigh.CompareTo(bHigh) : aLow != bLow ? aLow.CompareTo(bLow) : aPort.CompareTo(bPort);
}
