using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath.Engine;

namespace NvRedirect.Datapath.Control;

// The queries: ctrl_keep_alive, ctrl_count_session, ctrl_list_session, ctrl_clear_session, ctrl_counter_device and
// nvr-dp's nvr_get_state (see Controller.cs for how a datagram is applied). Their replies are built when the effects
// run, after the earlier commands of the same datagram.
internal sealed partial class Controller
{
    private static void KeepAlive(KeepAliveRequest m, Request r) => r.Effects.Add(replies => replies.Add(Replies.KeepAlive(m.Sequence)));

    private void CountSessions(List<byte[]> replies)
    {
        var counts = _datapath.OnPacketThread(() =>
        {
            var t = _datapath.Sessions;
            return new SessionCounts((uint)t.Count, (uint)t.CurrentTcp, (uint)t.CurrentUdp, (uint)t.CurrentIcmp, (uint)t.CurrentOther);
        });
        replies.Add(Replies.SessionCount(counts));
    }

    private void DeviceCounters(List<byte[]> replies)
    {
        var values = _datapath.OnPacketThread(() =>
        {
            var c = _datapath.Counters;
            var t = _datapath.Sessions;
            var v = new ulong[(int)DeviceCounter.CurLogCaches + 1];
            v[(int)DeviceCounter.RXPackets] = (ulong)c.RxPackets;
            v[(int)DeviceCounter.RXDropPackets] = (ulong)(c.RingDrops + c.LostLargeFrames);
            v[(int)DeviceCounter.TXPackets] = (ulong)c.TxPackets;
            v[(int)DeviceCounter.TXDropPackets] = (ulong)(c.TxDropped + c.TxErrors);
            v[(int)DeviceCounter.ErrorPackets] = (ulong)c.MalformedPackets;
            v[(int)DeviceCounter.NoWorkloadPackets] = (ulong)c.NoWorkloadPackets;
            v[(int)DeviceCounter.IPv4Packets] = (ulong)c.IPv4Packets;
            v[(int)DeviceCounter.IPv6Packets] = (ulong)c.IPv6Packets;
            v[(int)DeviceCounter.TCPPackets] = (ulong)c.TcpPackets;
            v[(int)DeviceCounter.TCPNoSessionPackets] = (ulong)c.TcpNoSessionPackets;
            v[(int)DeviceCounter.UDPPackets] = (ulong)c.UdpPackets;
            v[(int)DeviceCounter.ICMPPackets] = (ulong)c.IcmpPackets;
            v[(int)DeviceCounter.OtherPackets] = (ulong)c.OtherPackets;
            v[(int)DeviceCounter.Fragments] = (ulong)c.Fragments;
            v[(int)DeviceCounter.TotalSessions] = (ulong)t.Created;
            v[(int)DeviceCounter.TCPSessions] = (ulong)t.CreatedTcp;
            v[(int)DeviceCounter.UDPSessions] = (ulong)t.CreatedUdp;
            v[(int)DeviceCounter.ICMPSessions] = (ulong)t.CreatedIcmp;
            v[(int)DeviceCounter.IPSessions] = (ulong)t.CreatedOther;
            return v;
        });
        // NeuVector counts rules by where its policy lookup keeps them: type 1 the exact (hash) rules, type 2 the ranges;
        // domains are the FQDN names and their addresses. No rate limiting here: the limit counters stay 0.
        var s = State;
        var policies = s.Workloads.Values.Select(w => w.Policy).OfType<Policy>().Distinct().ToList();
        uint exact = (uint)policies.Sum(p => p.Rules.Count(x => x.IsExact)), ranges = (uint)policies.Sum(p => p.Rules.Count(x => !x.IsExact));
        var counts = new DevicePolicyCounts(exact, ranges, (uint)s.Fqdns.Count, (uint)s.Fqdns.Values.Sum(f => f.Addresses.Length), 0, 0);
        replies.Add(StatsReplies.DeviceCounters(values, counts));
    }

    // ctrl_stats_device: the datapath's workload traffic, totals and 5-second windows as NeuVector computes them.
    private void DeviceStats(List<byte[]> replies)
    {
        var stats = _datapath.OnPacketThread(() =>
        {
            var m = _datapath.Counters.Meter;
            long currentIn = 0, currentOut = 0;
            foreach (var w in _datapath.Workloads.Current.Workloads) { currentIn += w.State.CurrentSessionsIn; currentOut += w.State.CurrentSessionsOut; }
            return TrafficMeter.Stats(m.SessionsIn, m.SessionsOut, currentIn, currentOut, m.PacketsIn, m.PacketsOut, m.BytesIn, m.BytesOut,
                m.DeviceWindows(TrafficMeter.SlotOf(_datapath.Clock.NowSeconds)));
        });
        replies.Add(StatsReplies.Stats(MessageKind.DeviceStats, stats));
    }

    // ctrl_stats_macs: the listed workloads' traffic summed (MACs nobody registered are skipped, as in NeuVector).
    private void MacStats(MacStatsRequest m, Request r)
    {
        var known = m.Macs.Select(mac => r.State.FindByAnyMac(mac)).OfType<Workload>().Select(w => w.Mac).Distinct().ToArray();
        if (known.Length < m.Macs.Length) r.Notes.Add($"{Command.MacStats}: {m.Macs.Length - known.Length} MACs are not registered and count nothing");
        r.Effects.Add(replies =>
        {
            var stats = _datapath.OnPacketThread(() =>
            {
                long current = TrafficMeter.SlotOf(_datapath.Clock.NowSeconds);
                long si = 0, so = 0, ci = 0, co = 0, pi = 0, po = 0, bi = 0, bo = 0;
                StatsWindow one = StatsWindow.Zero, twelve = StatsWindow.Zero, sixty = StatsWindow.Zero;
                var table = _datapath.Workloads.Current;
                foreach (var mac in known)
                {
                    if (!table.TryGet(mac, out var w)) continue;
                    var st = w.State;
                    si += st.SessionsIn; so += st.SessionsOut; ci += st.CurrentSessionsIn; co += st.CurrentSessionsOut;
                    pi += st.PacketsIn; po += st.PacketsOut; bi += st.BytesIn; bo += st.BytesOut;
                    var (a, b, c) = st.Meter.WorkloadWindows(current);
                    one = TrafficMeter.Add(one, a); twelve = TrafficMeter.Add(twelve, b); sixty = TrafficMeter.Add(sixty, c);
                }
                return TrafficMeter.Stats(si, so, ci, co, pi, po, bi, bo, (one, twelve, sixty));
            });
            replies.Add(StatsReplies.Stats(MessageKind.MacStats, stats));
        });
    }

    private void ListSessions(List<byte[]> replies)
    {
        var sessions = _datapath.OnPacketThread(() => _datapath.Sessions.Snapshot(_datapath.Clock.NowSeconds));
        replies.AddRange(Replies.SessionList(sessions.Select(s => s.ToWire()).ToList()));
    }

    private void ClearSession(ClearSessionRequest m, Request r)
    {
        uint id = m.Id;
        r.Effects.Add(_ =>
        {
            int n = _datapath.OnPacketThread(() => _datapath.Sessions.Clear(id));
            _log.Info(id == 0 ? $"{Command.ClearSession}: removed all {n} sessions" : $"{Command.ClearSession}: session {id} {(n > 0 ? "removed" : "not found")}");
        });
    }

    /// <summary>
    /// The replies a {ctrl_count_session, ctrl_counter_device, nvr_get_state} query would get, without a request (no
    /// request counter moves): what the metrics listener describes. Call on the control thread.
    /// </summary>
    public List<byte[]> QueryReplies()
    {
        var replies = new List<byte[]>();
        CountSessions(replies);
        DeviceCounters(replies);
        replies.AddRange(Replies.State(JsonReplies.WriteState(Report(null))));
        return replies;
    }

    // nvr-dp's extension: the configuration, identity and request counters, and the outcome of the sender's previous
    // datagram (so a client can tell whether what it sent was applied). With macs, only those workloads (by MAC or
    // alias; unknown ones are left out) are reported: an empty list acknowledges a change without listing every workload.
    private void GetState(MacFilterRequest m, Request r)
    {
        var previous = _previousOfSender;
        r.Effects.Add(replies => replies.AddRange(Replies.State(JsonReplies.WriteState(Report(previous, m.Macs)))));
    }

    private StateReport Report(RequestOutcome? previous, ulong[]? only = null)
    {
        var s = State;
        var id = Identity;
        var selected = only == null ? s.Workloads.Values
            : only.Select(mac => s.FindByAnyMac(mac)).OfType<Workload>().DistinctBy(w => w.Mac);
        var workloads = selected.OrderBy(x => x.Mac).Select(wl =>
        {
            var c = wl.State; // written by the packet thread: a recent snapshot, each value whole (64-bit reads)
            return new WorkloadEntry(wl.Mac, wl.Interface, wl.UnicastAlias, wl.BroadcastAlias, wl.ProxyMeshMac, wl.ProxyMeshIPs,
                s.Tap.TryGetValue(wl.Mac, out var tap) && tap, wl.Apps,
                Volatile.Read(ref c.PacketsIn), Volatile.Read(ref c.PacketsOut), Volatile.Read(ref c.BytesIn), Volatile.Read(ref c.BytesOut),
                Volatile.Read(ref c.SessionsIn), Volatile.Read(ref c.SessionsOut),
                wl.Policy is { } p ? new PolicySummary(p.Version, p.DefaultAction, p.Direction, p.Rules.Length) : null);
        }).ToArray();
        var dc = _datapath.Counters;
        return new StateReport(
            new DaemonEntry(id.Pid, id.Version, id.Namespace, id.SocketPath, id.LogPath, id.SessionCapacity, id.Started)
            {
                Supervised = id.Supervised, Restarts = id.Restarts, LastExit = id.LastExit, StateFile = Persist?.Path, StateProblem = StateProblem,
            },
            s.ServicePort, workloads, s.InternalNets, s.PendingInternalNets?.Count,
            s.XffEnabled, s.DisableNetPolicy, s.DetectUnmanagedWorkloads, s.EnableIcmpPolicy, s.StrictGroupMode, s.DebugCategories,
            s.PolicyAddresses,
            s.PendingPolicy is { } pp ? new PendingPolicyEntry(pp.Macs, pp.Rules.Count) : null,
            new PolicyCounters(Volatile.Read(ref dc.DeniedPackets), Volatile.Read(ref dc.DeniedSessions), Volatile.Read(ref dc.BlockedSessions),
                Volatile.Read(ref dc.ResetsSent), Volatile.Read(ref dc.Reevaluations)) { GraceOpened = Volatile.Read(ref _datapath.Processor.Grace.Granted) },
            new RequestCounters(Accepted, Rejected, LastRejection),
            previous is { } last ? new LastRequest(last.Accepted, last.Error) : null,
            _datapath.OnPacketThread(() => TableUsage.Of(_datapath)).Report(),
            new AgentState(s.SpecialNets, s.Fqdns.Values.OrderBy(f => f.Name, StringComparer.Ordinal).ToArray(), s.NbeMacs.Order().ToArray(),
                s.TapPorts.OrderBy(t => t.Key.NetNs, StringComparer.Ordinal).ThenBy(t => t.Key.Interface, StringComparer.Ordinal)
                    .Select(t => new TapPortEntry(t.Key.NetNs, t.Key.Interface, t.Value)).ToArray(),
                s.NoEffect.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => new NoEffectEntry(n.Key, n.Value)).ToArray(),
                Reports?.Counters() ?? new ReportCounters(null, false, 0, 0, 0, null))) { Strict = s.Strict };
    }
}
