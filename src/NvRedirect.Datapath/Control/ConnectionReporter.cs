using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath.Engine;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Datapath.Control;

/// <summary>
/// Sends NeuVector's CONNECTION reports to the agent's socket (/tmp/ctrl_listen.sock unless configured) on dp's
/// schedule: every third 2-second tick of the control thread. What is sent is what the connection table gained since
/// the previous report, one record per dp key (rule, client, server, server port, protocol, direction) with the latest
/// action; the packet thread only counts (nothing allocated per packet), the collection runs on it when asked.
/// Only IPv4 connections are reported (as dp). The socket is trusted only when it is a socket (not a symlink) owned by
/// root or by the configured group; anything else is refused, logged once and counted (docs/datapath.md, "Reports").
/// </summary>
internal sealed unsafe class ConnectionReporter : IDisposable
{
    /// <summary>NeuVector's fixed path of the agent's listening socket.</summary>
    public const string DefaultSocket = "/tmp/ctrl_listen.sock";
    /// <summary>dp sends connections every third round of its 2-second loop.</summary>
    public const int TicksPerReport = 3;

    private readonly PacketEngine _engine;
    private readonly Logger _log;
    private readonly uint? _group;
    private readonly Func<long> _unixNow;
    private readonly SafeFd _fd;
    private int _ticks;
    private long _datagrams, _records, _failures;
    private string? _lastFailure;
    private bool _listening;
    private string? _lastProblem;

    /// <summary>The agent's socket path.</summary>
    public string Path { get; }

    /// <summary>Reports to <paramref name="path"/>; a socket owned by <paramref name="group"/> (a gid) is trusted as well as root's.</summary>
    public ConnectionReporter(PacketEngine engine, string path, uint? group, Logger log, Func<long>? unixNow = null)
    {
        if (Encoding.UTF8.GetByteCount(path) >= 108) throw new ArgumentException($"report socket path {path} is longer than 107 bytes");
        _engine = engine;
        Path = path;
        _group = group;
        _log = log;
        _unixNow = unixNow ?? (() => DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        int raw = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (raw < 0) throw SyscallException.FromLastError("open the report socket");
        _fd = new SafeFd(raw);
    }

    /// <summary>The counters nvr_get_state shows.</summary>
    public ReportCounters Counters() => new(Path, _listening, _datagrams, _records, _failures, _lastFailure);

    /// <summary>One 2-second tick of the control thread: every third one reports.</summary>
    public void Tick()
    {
        if (++_ticks < TicksPerReport) return;
        _ticks = 0;
        try { Report(); }
        catch (Exception e) when (e is SyscallException or InvalidOperationException) { Fail($"collecting connections failed: {e.Message}"); }
    }

    /// <summary>Collects what the connections gained and sends it; returns the records sent (0 when nobody listens).</summary>
    public int Report()
    {
        if (Trust() is { } problem)
        {
            if (problem.Length > 0) Fail(problem);
            return 0; // "" = nobody listens: not a failure, and nothing is collected, so nothing is lost either
        }
        var reports = Collect();
        if (reports.Count == 0) return 0;
        int sent = 0;
        foreach (var datagram in StatsReplies.Connections(reports))
        {
            int errno = Send(datagram);
            if (errno != 0) { Fail($"sending to {Path} failed: {Native.ErrnoName(errno)} ({Native.StrError(errno)})"); break; }
            _datagrams++;
            sent += (datagram.Length - DpWire.HeaderSize - 4) / ConnectionLayout.Size;
        }
        _records += sent;
        return sent;
    }

    // "" when the path does not exist (nobody listens), null when it may be trusted, else why not
    private string? Trust()
    {
        stat st;
        int r;
        fixed (byte* p = Encoding.UTF8.GetBytes(Path + "\0")) r = lstat(p, &st);
        if (r < 0)
        {
            bool was = _listening;
            _listening = false;
            if (was) _log.Info($"connection reports: {Path} is gone; reports resume when the agent listens again");
            return "";
        }
        string? problem = S_ISLNK(st.st_mode) ? $"{Path} is a symbolic link; no reports are sent through it"
            : !S_ISSOCK(st.st_mode) ? $"{Path} is not a socket; no reports are sent to it"
            : st.st_uid != 0 && (_group is not uint g || st.st_gid != g)
                ? $"{Path} is owned by uid {st.st_uid} gid {st.st_gid}, not by root{(_group is uint gid ? $" or group {gid}" : "")}; no reports are sent to it (anyone may create a socket in /tmp)"
                : null;
        _listening = problem == null;
        if (problem == null && _lastProblem != null) { _log.Info($"connection reports: {Path} is trusted again"); _lastProblem = null; }
        return problem;
    }

    private void Fail(string problem)
    {
        _failures++;
        _lastFailure = problem;
        if (problem != _lastProblem) _log.Warn($"connection reports: {problem}"); // once per distinct problem, not every 6 s
        _lastProblem = problem;
    }

    private int Send(byte[] datagram)
    {
        byte* addr = stackalloc byte[110];
        new Span<byte>(addr, 110).Clear();
        *(ushort*)addr = (ushort)AF_UNIX;
        int n = Encoding.UTF8.GetBytes(Path, new Span<byte>(addr + 2, 107));
        fixed (byte* d = datagram)
            while (true)
            {
                if (sendto(_fd.Fd, d, datagram.Length, MSG_DONTWAIT, (sockaddr*)addr, (uint)(2 + n + 1)) >= 0) return 0;
                int errno = Native.LastErrno;
                if (errno != EINTR) return errno;
            }
    }

    private readonly record struct Key(uint RuleId, uint Client, uint Server, ushort Port, byte Protocol, bool Ingress);

    private sealed class Aggregate
    {
        public ulong Mac;
        public long Sessions, Bytes, Violates, FirstSeen, LastSeen = long.MinValue;
        public DpPolicyAction Action;
        public bool External;
    }

    // On the packet thread: the deltas and the per-workload numbers dp adds (current sessions in, sessions and bytes
    // in over 12 slots); then, here, one record per dp key, the latest action winning.
    private List<ConnectionReport> Collect()
    {
        var (deltas, metrics, now, settings) = _engine.OnPacketThread(() =>
        {
            var list = new List<ConnectionDelta>();
            _engine.Connections.CollectReports(list);
            long slot = TrafficMeter.SlotOf(_engine.Clock.NowSeconds);
            var table = _engine.Workloads.Current;
            var m = new Dictionary<ulong, (uint, uint, ulong)>();
            foreach (var mac in list.Select(d => d.Key.EndpointMac).Distinct())
                if (table.TryGet(mac, out var w))
                {
                    var twelve = w.State.Meter.WorkloadWindows(slot).Last12;
                    m[mac] = ((uint)Math.Max(0, w.State.CurrentSessionsIn), twelve.SessionIn, twelve.ByteIn);
                }
            return (list, m, _engine.Clock.NowSeconds, table.Settings);
        });
        var groups = new Dictionary<Key, Aggregate>();
        var order = new List<Key>();
        foreach (var d in deltas)
        {
            var k = d.Key;
            if (k.IPv6) continue; // dp reports IPv4 connections only
            var key = new Key(k.RuleId, (uint)k.ClientLow, (uint)k.ServerLow, k.ServerPort, k.Protocol, k.Ingress);
            if (!groups.TryGetValue(key, out var a))
            {
                groups[key] = a = new Aggregate { Mac = k.EndpointMac, FirstSeen = d.FirstSeen, External = !settings.IsInternal(k.Ingress ? (uint)k.ClientLow : (uint)k.ServerLow) };
                order.Add(key);
            }
            a.Sessions += d.Sessions;
            a.Bytes += d.Bytes;
            // violations: sessions allowed with a violation, packets refused or dropped by a deny
            if (k.Action == DpPolicyAction.Deny) a.Violates += d.Dropped;
            else if (PolicyActions.IsViolation(k.Action)) a.Violates += d.Sessions;
            a.FirstSeen = Math.Min(a.FirstSeen, d.FirstSeen);
            if (d.LastSeen >= a.LastSeen) { a.LastSeen = d.LastSeen; a.Action = k.Action; }
        }
        long unix = _unixNow();
        uint Unix(long t) => (uint)Math.Clamp(unix - (now - t), 0, uint.MaxValue);
        var reports = new List<ConnectionReport>(order.Count);
        foreach (var key in order)
        {
            var a = groups[key];
            metrics.TryGetValue(a.Mac, out var metric);
            ushort flags = (ushort)((key.Ingress ? ConnectionLayout.FlagIngress : 0) | (a.External ? ConnectionLayout.FlagExternal : 0));
            reports.Add(new ConnectionReport(a.Mac, key.Protocol, key.Port, 0, false, Bytes(key.Client), Bytes(key.Server), flags,
                (uint)Math.Min(a.Bytes, uint.MaxValue), (uint)Math.Min(a.Sessions, uint.MaxValue), Unix(a.FirstSeen), Unix(a.LastSeen), 0, a.Action, 0,
                key.RuleId, (uint)Math.Min(a.Violates, uint.MaxValue), 0, metric.Item1, metric.Item2, metric.Item3));
        }
        return reports;
    }

    private static byte[] Bytes(uint ip) => [(byte)(ip >> 24), (byte)(ip >> 16), (byte)(ip >> 8), (byte)ip];

    /// <inheritdoc/>
    public void Dispose() => _fd.Dispose();
}
