using System;
using System.Collections.Generic;
using System.IO;
using System.Management.Automation;
using NvRedirect.Core.Datapath;

namespace NvRedirect.Cmdlets;

/// <summary>
/// <para type="synopsis">Writes the datapath's counters as a node_exporter textfile (Prometheus text format).</para>
/// <para type="description">Asks each datapath (every running nvr-dp, or those named by -ControlSocket or piped from Get-Datapath) for its state, session count and device counters, as Get-Datapath does, and writes them in Prometheus text exposition format to -Path: per workload packets, bytes, sessions, mode and rule count; the datapath's receive, transmit and drop counters; current and created sessions by protocol; policy verdicts (denied packets and sessions, blocked sessions, resets, re-evaluations); table capacity, fill, evictions; control requests and supervisor restarts. docs/metrics.md lists every metric. The file is written atomically (a temporary file in the same directory, renamed over the target), so node_exporter's textfile collector (--collector.textfile.directory; it reads *.prom files) never reads half a file. Run it from a timer (cron, a systemd timer) every scrape interval; nvr-dp's own listener (Start-Datapath -MetricsEndpoint) serves the same metrics on GET /metrics instead.</para>
/// </summary>
/// <example><code>Export-DpMetrics -Path /var/lib/node_exporter/textfile/nvr-dp.prom</code><para>Writes the counters of every running datapath for node_exporter's textfile collector.</para></example>
/// <example><code>Get-Datapath -ControlSocket $dp.ControlSocket | Export-DpMetrics ./dp.prom -PassThru</code><para>Writes one datapath's counters and returns the file.</para></example>
[Cmdlet(VerbsData.Export, "DpMetrics", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(FileInfo))]
public sealed class ExportDpMetricsCommand : NvCmdlet
{
    private readonly List<DatapathInfo> _datapaths = [];
    private bool _named;

    /// <summary><para type="description">The file to write (node_exporter's textfile collector reads *.prom files in its directory). The directory must exist.</para></summary>
    [Parameter(Mandatory = true, Position = 0)]
    public string Path { get; set; } = "";

    /// <summary><para type="description">The control socket(s) of the datapaths to export (Get-Datapath's objects bind here); absent: every running nvr-dp.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ControlSocketCompleter))]
    public string[]? ControlSocket { get; set; }

    /// <summary><para type="description">How many seconds to wait for each datapath's answer (default 5).</para></summary>
    [Parameter]
    [ValidateRange(0.1, 600)]
    public double TimeoutSeconds { get; set; } = 5;

    /// <summary><para type="description">Return the file written.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        if (ControlSocket == null || ControlSocket.Length == 0) return;
        _named = true;
        var timeout = TimeSpan.FromSeconds(TimeoutSeconds);
        foreach (var s in ControlSocket)
        {
            var socket = GetUnresolvedProviderPathFromPSPath(s);
            Try(socket, () =>
            {
                using var client = DpClient.Open(socket, timeout);
                _datapaths.Add(client.Query());
            });
        }
    }

    /// <inheritdoc/>
    protected override void EndProcessing()
    {
        if (!_named) Try("", () => _datapaths.AddRange(DatapathProcess.Find(TimeSpan.FromSeconds(TimeoutSeconds))));
        var path = GetUnresolvedProviderPathFromPSPath(Path);
        if (!path.EndsWith(".prom", StringComparison.Ordinal))
            WriteWarning($"{path} does not end in .prom: node_exporter's textfile collector reads only *.prom files.");
        if (!ShouldProcess(path, $"Write the metrics of {_datapaths.Count} datapath(s)")) return;
        try
        {
            DpMetrics.WriteTextfile(path, DpMetrics.Format(_datapaths));
            if (PassThru) WriteObject(new FileInfo(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteFailure(e, path);
        }
    }
}
