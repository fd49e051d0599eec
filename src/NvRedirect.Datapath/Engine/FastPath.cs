using System;
using System.Collections.Generic;
using System.Text;
using NvRedirect.Core.Bpf;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// The daemon's side of the kernel fast path (docs/datapath.md, "The kernel fast path"): it publishes allowed sessions
/// in their workload's flow map (pinned by the module with the interception, FastPathMap.PathFor), folds what the
/// programs counted back into the sessions, and revokes. Owned by the packet thread, like the session table; the
/// control thread reaches it through PacketEngine.OnPacketThread. The per-packet calls allocate nothing.
/// </summary>
internal sealed class FastPath(string ns)
{
    private const byte TcpFin = 1, TcpSyn = 2, TcpRst = 4;
    private const int Eexist = 17;
    private const int CheckSeconds = 2;

    private sealed class Handle(byte[] pathZ)
    {
        public readonly byte[] PathZ = pathZ;
        public BpfMap? Map;
        public long NextCheck = long.MinValue;
    }

    private readonly Dictionary<ulong, Handle> _handles = new();
    private readonly byte[] _key = new byte[FastPathFlow.KeySize], _value = new byte[FastPathFlow.ValueSize], _zero = new byte[FastPathFlow.ValueSize];

    /// <summary>The connections the sessions are counted in (Get-DpConnection); what the kernel forwarded is added to them too.</summary>
    public ConnectionTable? Connections { get; init; }

    /// <summary>The agent namespace whose maps are used ("" = the daemon's own).</summary>
    public string Namespace { get; } = ns;
    /// <summary>Flow entries published and revoked; packets and bytes the kernel forwarded (as folded in).</summary>
    public long Published, Revoked, Packets, Bytes;

    /// <summary>The workload's map, checked against the pinned one every few seconds (an interception removed and added again pins a new one).</summary>
    private BpfMap? MapOf(ulong mac, long now)
    {
        if (!_handles.TryGetValue(mac, out var h))
        {
            var mac6 = new byte[6];
            for (int i = 0; i < 6; i++) mac6[i] = (byte)(mac >> (40 - 8 * i));
            _handles[mac] = h = new Handle(Encoding.UTF8.GetBytes(FastPathMap.PathFor(Namespace, mac6) + "\0"));
        }
        if (now >= h.NextCheck)
        {
            h.NextCheck = now + CheckSeconds;
            int id = BpfMap.PinnedId(h.PathZ);
            if (id < 0) { h.Map?.Dispose(); h.Map = null; }
            else if (h.Map == null || h.Map.Id != id)
            {
                h.Map?.Dispose();
                h.Map = BpfMap.OpenPinned(Encoding.UTF8.GetString(h.PathZ, 0, h.PathZ.Length - 1));
            }
        }
        return h.Map;
    }

    // The flow key of one direction of an IPv4 session into _key: towards the workload the peer sends, from it the workload.
    private void Key(ref Session s, FastPathDirection direction)
    {
        bool workloadIsServer = (s.Flags & SessionFlags.Ingress) != 0;
        ushort clientPort = s.ClientIsLo ? s.LoPort : s.HiPort;
        if ((direction == FastPathDirection.ToWorkload) == workloadIsServer)
            FastPathFlow.WriteKey(_key, s.ClientIPv4, s.ServerIPv4, clientPort, s.ServerPort, s.Protocol, direction);
        else
            FastPathFlow.WriteKey(_key, s.ServerIPv4, s.ClientIPv4, s.ServerPort, clientPort, s.Protocol, direction);
    }

    /// <summary>
    /// After an allowed packet reached the daemon: publishes the session when it may take the fast path (IPv4 TCP with
    /// both wings established and this segment without SYN/FIN/RST, or UDP or ICMP echo answered; inline; not blocked,
    /// not denied).
    /// A published session whose packet still arrives here lost its entry (revoked, a new map) or the packet was in
    /// flight: the entry is created again when missing (BPF_NOEXIST keeps the counters of one that is there).
    /// </summary>
    public void Consider(ref Session s, in PacketTuple t, Workload workload, long now)
    {
        if (s.IsIPv6 || s.Blocked || s.PolicyAction == Core.Protocol.DpPolicyAction.Deny || workload.State.Tap) return;
        if (s.Protocol == 6)
        {
            if ((t.TcpFlags & (TcpFin | TcpSyn | TcpRst)) != 0 || s.ClientState != Core.Protocol.TcpState.Established || s.ServerState != Core.Protocol.TcpState.Established) return;
        }
        else if (s.Protocol is not (17 or 1) || s.ClientPackets == 0 || s.ServerPackets == 0) return; // UDP, ICMP echo: answered
        var map = MapOf(workload.Mac, now);
        if (map == null) return;
        Key(ref s, FastPathDirection.ToWorkload);
        if (map.TryUpdate(_key, _zero, BpfUpdate.NoExist) == 0) { s.FastInPackets = s.FastInBytes = 0; Published++; }
        Key(ref s, FastPathDirection.FromWorkload);
        if (map.TryUpdate(_key, _zero, BpfUpdate.NoExist) == 0) { s.FastOutPackets = s.FastOutBytes = 0; Published++; }
        s.Published = true;
    }

    /// <summary>
    /// Folds what the kernel forwarded for a published session since the last fold into its counters and its
    /// workload's; returns the last time (clock seconds) the kernel forwarded one of its packets, or -1.
    /// </summary>
    public long Fold(ref Session s)
    {
        if (!s.Published || !_handles.TryGetValue(s.EndpointMac, out var h) || h.Map is not { } map) return -1;
        long last = -1;
        bool workloadIsServer = (s.Flags & SessionFlags.Ingress) != 0;
        foreach (var direction in Directions)
        {
            Key(ref s, direction);
            if (!map.TryLookup(_key, _value)) continue;
            var (packets, bytes, seen) = FastPathFlow.ReadValue(_value);
            bool toWorkload = direction == FastPathDirection.ToWorkload;
            ref ulong knownPackets = ref toWorkload ? ref s.FastInPackets : ref s.FastOutPackets;
            ref ulong knownBytes = ref toWorkload ? ref s.FastInBytes : ref s.FastOutBytes;
            if (packets <= knownPackets) continue;
            ulong dp = packets - knownPackets, db = bytes - knownBytes;
            knownPackets = packets;
            knownBytes = bytes;
            if (toWorkload == workloadIsServer) { s.ClientPackets += (uint)dp; s.ClientBytes += db; }
            else { s.ServerPackets += (uint)dp; s.ServerBytes += db; }
            if (s.Endpoint is { } ep)
            {
                if (toWorkload) { ep.PacketsIn += (long)dp; ep.BytesIn += (long)db; }
                else { ep.PacketsOut += (long)dp; ep.BytesOut += (long)db; }
            }
            Packets += (long)dp;
            Bytes += (long)db;
            last = Math.Max(last, (long)(seen / 1_000_000_000UL));
            if (Connections is { } ct && s.Connection >= 0 && ct.IsCurrent(s.Connection, s.ConnectionEpoch))
                ct.AccountForwarded(s.Connection, (long)dp, (long)db, last);
        }
        return last;
    }

    private static readonly FastPathDirection[] Directions = [FastPathDirection.ToWorkload, FastPathDirection.FromWorkload];

    /// <summary>A published session ends: its counts are folded in and both entries deleted.</summary>
    public void Unpublish(ref Session s)
    {
        Fold(ref s);
        if (_handles.TryGetValue(s.EndpointMac, out var h) && h.Map is { } map)
            foreach (var direction in Directions)
            {
                Key(ref s, direction);
                if (map.Delete(_key)) Revoked++;
            }
        s.Published = false;
    }

    /// <summary>
    /// Empties the map of workload <paramref name="mac"/> (the pinned one and the one held, should they differ): after a
    /// policy or mode change, nothing it published forwards any more, so the next packet of every flow is decided again.
    /// The caller folds and unmarks the sessions first (SessionTable.RevokeFastPath).
    /// </summary>
    public void Clear(ulong mac)
    {
        if (_handles.TryGetValue(mac, out var h)) { h.NextCheck = long.MinValue; if (h.Map is { } held) Revoked += held.Clear(); }
        var mac6 = new byte[6];
        for (int i = 0; i < 6; i++) mac6[i] = (byte)(mac >> (40 - 8 * i));
        using var pinned = FastPathMap.Open(Namespace, mac6);
        if (pinned != null) Revoked += pinned.Clear();
    }

    /// <summary>Workloads whose maps were used.</summary>
    public IEnumerable<ulong> Workloads => _handles.Keys;

    /// <summary>Closes the maps held (the pins stay with the interceptions).</summary>
    public void Close()
    {
        foreach (var h in _handles.Values) h.Map?.Dispose();
        _handles.Clear();
    }
}
