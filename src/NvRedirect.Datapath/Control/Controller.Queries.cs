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
        replies.Add(Replies.DeviceCounters(values));
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

    // nvr-dp's extension: the configuration, identity and request counters, and the outcome of the sender's previous
    // datagram (so a client can tell whether what it sent was applied).
    private void GetState(Request r)
    {
        var previous = _previousOfSender;
        r.Effects.Add(replies => replies.AddRange(Replies.State(JsonReplies.WriteState(Report(previous)))));
    }

    private StateReport Report(RequestOutcome? previous)
    {
        var s = State;
        var id = Identity;
        var workloads = s.Workloads.Values.OrderBy(x => x.Mac).Select(wl =>
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
                Volatile.Read(ref dc.ResetsSent), Volatile.Read(ref dc.Reevaluations)),
            new RequestCounters(Accepted, Rejected, LastRejection),
            previous is { } last ? new LastRequest(last.Accepted, last.Error) : null);
    }
}
