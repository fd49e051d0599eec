using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace NvRedirect.Core.Datapath;

/// <summary>Writes one sample: its label values after the datapath's socket and namespace, and its value.</summary>
public delegate void DpSampleWriter(double value, params string[] labels);

/// <summary>
/// A Prometheus metric family: name, type (counter or gauge), help text, the labels its samples carry (socket and
/// namespace first), and how its samples are read from a datapath.
/// </summary>
public sealed record DpMetric(string Name, string Type, string Help, string[] Labels, Action<DatapathInfo, DpSampleWriter> Read)
{
    /// <summary>The family's HELP and TYPE lines (help escaped as the exposition format wants: backslash and newline).</summary>
    public string Header => $"# HELP {Name} {Help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)}\n# TYPE {Name} {Type}\n";
}

/// <summary>
/// nvr-dp's counters in the Prometheus text exposition format (version 0.0.4), from what Get-Datapath reads
/// (<see cref="DatapathInfo"/> with its session count and device counters). The one definition of the metric names
/// and help texts: Export-DpMetrics writes a node_exporter textfile with it, and nvr-dp --metrics serves it on
/// GET /metrics. Every sample carries the datapath's control socket and namespace, so one file can hold several
/// daemons; workload samples add the workload's MAC. Pure: objects in, text out (golden text in the tests).
/// </summary>
public static class DpMetrics
{
    /// <summary>The exposition format's content type, for an HTTP response.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private const string Counter = "counter", Gauge = "gauge";
    private static readonly string[] Daemon = ["socket", "namespace"];
    private static readonly string[] PerWorkload = ["socket", "namespace", "mac"];
    private static string[] With(string[] labels, params string[] more) => [.. labels, .. more];

    /// <summary>Each family nvr-dp exposes, in the order they are written (docs/metrics.md lists them).</summary>
    public static readonly IReadOnlyList<DpMetric> Families =
    [
        new("nvr_dp_info", Gauge, "Always 1: the datapath's pid and version as labels.", With(Daemon, "pid", "version"),
            (d, e) => e(1, d.Pid.ToString(CultureInfo.InvariantCulture), d.Version)),
        new("nvr_dp_start_time_seconds", Gauge, "When the datapath started serving, in seconds since the Unix epoch.", Daemon,
            (d, e) => e(new DateTimeOffset(DateTime.SpecifyKind(d.StartTime, DateTimeKind.Utc)).ToUnixTimeMilliseconds() / 1000.0)),
        new("nvr_dp_restarts_total", Counter, "How often the supervisor restarted the datapath after it died.", Daemon, (d, e) => e(d.Restarts)),
        new("nvr_dp_workloads", Gauge, "Workloads registered with the datapath.", Daemon, (d, e) => e(d.Workloads.Length)),
        new("nvr_dp_workload_info", Gauge, "Always 1: a registered workload's interface, mode (None, Discover, Monitor, Protect) and whether it is tapped (true) or inline (false).",
            With(PerWorkload, "interface", "mode", "tap"),
            (d, e) => { foreach (var w in d.Workloads) e(1, w.Mac, w.Interface, w.Mode.ToString(), w.Tap ? "true" : "false"); }),
        new("nvr_dp_workload_packets_total", Counter, "Frames towards (in) and from (out) the workload that the datapath saw.", With(PerWorkload, "direction"),
            (d, e) => { foreach (var w in d.Workloads) { e(w.PacketsIn, w.Mac, "in"); e(w.PacketsOut, w.Mac, "out"); } }),
        new("nvr_dp_workload_bytes_total", Counter, "Bytes towards (in) and from (out) the workload that the datapath saw.", With(PerWorkload, "direction"),
            (d, e) => { foreach (var w in d.Workloads) { e(w.BytesIn, w.Mac, "in"); e(w.BytesOut, w.Mac, "out"); } }),
        new("nvr_dp_workload_sessions_total", Counter, "Sessions opened towards (in) and from (out) the workload.", With(PerWorkload, "direction"),
            (d, e) => { foreach (var w in d.Workloads) { e(w.SessionsIn, w.Mac, "in"); e(w.SessionsOut, w.Mac, "out"); } }),
        new("nvr_dp_workload_policy_rules", Gauge, "Rules in the workload's policy (0 without a policy).", PerWorkload,
            (d, e) => { foreach (var w in d.Workloads) e(w.RuleCount, w.Mac); }),
        Device("nvr_dp_rx_packets_total", "Frames read from the service port's ring.", c => c.RXPackets),
        Device("nvr_dp_rx_dropped_packets_total", "Frames the kernel dropped before the ring, and frames too big to read whole.", c => c.RXDropPackets),
        Device("nvr_dp_tx_packets_total", "Frames written back to the service port.", c => c.TXPackets),
        Device("nvr_dp_tx_dropped_packets_total", "Frames that could not be written back.", c => c.TXDropPackets),
        Device("nvr_dp_error_packets_total", "Malformed frames.", c => c.ErrorPackets),
        Device("nvr_dp_no_workload_packets_total", "Frames of no registered workload.", c => c.NoWorkloadPackets),
        new("nvr_dp_protocol_packets_total", Counter, "Frames by protocol (ipv4, ipv6, tcp, udp, icmp, other).", With(Daemon, "protocol"), (d, e) =>
        {
            if (d.Counters is not { } c) return;
            e(c.IPv4Packets, "ipv4"); e(c.IPv6Packets, "ipv6"); e(c.TCPPackets, "tcp"); e(c.UDPPackets, "udp"); e(c.ICMPPackets, "icmp"); e(c.OtherPackets, "other");
        }),
        new("nvr_dp_sessions", Gauge, "Sessions in the session table now, by protocol (tcp, udp, icmp, other).", With(Daemon, "protocol"), (d, e) =>
        {
            if (d.Sessions is not { } s) return;
            e(s.Tcp, "tcp"); e(s.Udp, "udp"); e(s.Icmp, "icmp"); e(s.Other, "other");
        }),
        new("nvr_dp_sessions_created_total", Counter, "Sessions created, by protocol (tcp, udp, icmp, other).", With(Daemon, "protocol"), (d, e) =>
        {
            if (d.Counters is not { } c) return;
            e(c.TCPSessions, "tcp"); e(c.UDPSessions, "udp"); e(c.ICMPSessions, "icmp"); e(c.IPSessions, "other");
        }),
        new("nvr_dp_policy_denied_packets_total", Counter, "Packets withheld by policy (Protect: dropped, not sent on).", Daemon, (d, e) => e(d.DeniedPackets)),
        new("nvr_dp_policy_denied_sessions_total", Counter, "New sessions refused by policy (each retransmission counts again).", Daemon, (d, e) => e(d.DeniedSessions)),
        new("nvr_dp_policy_blocked_sessions_total", Counter, "Open sessions blocked after a policy change denied them.", Daemon, (d, e) => e(d.BlockedSessions)),
        new("nvr_dp_policy_resets_total", Counter, "TCP sessions reset (a RST written to each end).", Daemon, (d, e) => e(d.ResetsSent)),
        new("nvr_dp_policy_reevaluations_total", Counter, "Sessions decided again after their workload's policy or the policy settings changed.", Daemon, (d, e) => e(d.Reevaluations)),
        Table("nvr_dp_table_capacity", Gauge, "Entries the preallocated table (sessions, connections) can hold.", t => t.Capacity),
        Table("nvr_dp_table_entries", Gauge, "Entries the table holds now.", t => t.Count),
        Table("nvr_dp_table_evicted_total", Counter, "Entries evicted to make room.", t => t.Evicted),
        Table("nvr_dp_table_live_evicted_total", Counter, "Evicted entries that were live sessions or learned connections: non-zero means the table is too small.", t => t.LearnedEvicted),
        Table("nvr_dp_table_summarised_total", Counter, "Connection attempts folded into scan summaries instead of entries of their own.", t => t.Summarised),
        new("nvr_dp_control_requests_total", Counter, "Control requests applied (accepted) and refused (rejected).", With(Daemon, "outcome"),
            (d, e) => { e(d.RequestsAccepted, "accepted"); e(d.RequestsRejected, "rejected"); }),
    ];

    // a device counter (ctrl_counter_device): written only when the datapath was asked for its counters
    private static DpMetric Device(string name, string help, Func<DpDeviceCounters, ulong> value)
        => new(name, Counter, help, Daemon, (d, e) => { if (d.Counters is { } c) e(value(c)); });

    // a figure of each of the datapath's tables, labelled table="sessions" or "connections"
    private static DpMetric Table(string name, string type, string help, Func<DpTable, long> value)
        => new(name, type, help, With(Daemon, "table"), (d, e) => { foreach (var t in d.Tables) e(value(t), t.Name.ToLowerInvariant()); });

    /// <summary>The exposition text of <paramref name="datapaths"/> (each family once, a sample per datapath, workload, ...).</summary>
    public static string Format(IEnumerable<DatapathInfo> datapaths)
    {
        var list = datapaths.ToList();
        var text = new StringBuilder();
        var samples = new StringBuilder();
        foreach (var family in Families)
        {
            samples.Clear();
            foreach (var d in list) family.Read(d, (value, labels) => Sample(samples, family, [d.ControlSocket, d.Namespace, .. labels], value));
            if (samples.Length == 0) continue;
            text.Append(family.Header).Append(samples);
        }
        return text.ToString();
    }

    private static void Sample(StringBuilder text, DpMetric family, string[] labels, double value)
    {
        text.Append(family.Name).Append('{');
        for (int i = 0; i < family.Labels.Length; i++)
        {
            if (i > 0) text.Append(',');
            text.Append(family.Labels[i]).Append("=\"").Append(EscapeLabel(labels[i])).Append('"');
        }
        text.Append("} ").Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
    }

    /// <summary>
    /// Writes <paramref name="text"/> to <paramref name="path"/> atomically, as node_exporter's textfile collector
    /// needs: into a temporary file in the same directory (named so the collector, which reads only *.prom, skips it),
    /// flushed, then renamed over the target, so a scrape sees the old file or the new one, never half of one.
    /// </summary>
    public static void WriteTextfile(string path, string text)
    {
        var full = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(full) ?? "/";
        if (!System.IO.Directory.Exists(directory))
            throw new System.IO.DirectoryNotFoundException($"the directory {directory} does not exist: create it, or give node_exporter's --collector.textfile.directory");
        var temporary = System.IO.Path.Combine(directory, $".{System.IO.Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var file = new System.IO.FileStream(temporary, System.IO.FileMode.Create, System.IO.FileAccess.Write, System.IO.FileShare.None))
            {
                var bytes = new UTF8Encoding(false).GetBytes(text);
                file.Write(bytes);
                file.Flush(flushToDisk: true);
            }
            System.IO.File.Move(temporary, full, overwrite: true); // rename(2): atomic within one filesystem
        }
        finally
        {
            if (System.IO.File.Exists(temporary)) System.IO.File.Delete(temporary);
        }
    }

    /// <summary>A label value as the exposition format wants it: backslash, double quote and newline escaped.</summary>
    public static string EscapeLabel(string value) => value
        .Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>
    /// Parses a --metrics / -MetricsEndpoint value, ADDRESS:PORT (an IPv6 address in brackets), and refuses any
    /// address that is not loopback: the listener has no authentication, so it must not be reachable from another host.
    /// Throws <see cref="ArgumentException"/> saying what was wrong and what to give instead.
    /// </summary>
    public static System.Net.IPEndPoint ParseEndpoint(string text)
    {
        const string Form = "give a loopback ADDRESS:PORT, e.g. 127.0.0.1:9464 or [::1]:9464";
        if (!System.Net.IPEndPoint.TryParse(text ?? "", out var endpoint) || endpoint.Port == 0 || !(text ?? "").Contains(':')
            || (endpoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && !(text ?? "").StartsWith('[')))
            throw new ArgumentException($"'{text}' is not an address and port: {Form}.");
        if (!System.Net.IPAddress.IsLoopback(endpoint.Address))
            throw new ArgumentException($"{endpoint.Address} is not a loopback address: the metrics listener has no authentication, so it serves only on loopback ({Form}); expose it further through a proxy or node_exporter's textfile collector (Export-DpMetrics).");
        return endpoint;
    }
}
