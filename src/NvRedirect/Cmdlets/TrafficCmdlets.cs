using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Management.Automation;
using NvRedirect.Core.Packets;

namespace NvRedirect.Cmdlets;

/// <summary>
/// <para type="synopsis">Captures frames on an interface in any namespace, like `tcpdump -enpli DEV`.</para>
/// <para type="description">Opens an AF_PACKET socket (all protocols) on each interface inside its namespace (several interfaces are captured at the same time) and emits one object per frame as it arrives: time, interface, direction, MACs, ethertype, IPs, protocol, ports and a tcpdump-style one-line summary. Stops after -Count frames or -TimeoutSeconds, whichever comes first (Ctrl+C also stops it). -PcapPath also writes the frames (of every piped link, in the order seen) to a pcap file that tcpdump and Wireshark read; an existing file is not touched when no capture could start. A link that is down cannot be captured on (WatchAgentTrafficLinkDown), also when it goes down during the capture.</para>
/// </summary>
/// <example><code>Watch-AgentTraffic vbr -Namespace agent-ns -Count 4 -TimeoutSeconds 5 | Select-Object -ExpandProperty Summary</code><para>Prints up to four frames seen on vbr within five seconds, one tcpdump-style line each.</para></example>
/// <example><code>Watch-AgentTraffic vex -Namespace agent-ns -Count 100 -PcapPath ./vex.pcap | Where-Object Protocol -eq ICMP</code><para>Captures up to 100 frames on vex into vex.pcap (readable with tcpdump -r) and shows the ICMP ones.</para></example>
/// <example><code>Get-AgentLink eth0 -Namespace container-ns | Watch-AgentTraffic -Count 2</code><para>A link object binds to -Interface and -Namespace from the pipeline.</para></example>
[Cmdlet(VerbsCommon.Watch, "AgentTraffic")]
[OutputType(typeof(AgentPacket))]
public sealed class WatchAgentTrafficCommand : NvCmdlet
{
    private volatile bool _stopping;
    // every frame of the command, all piped links together: -PcapPath holds them all
    private readonly List<CapturedFrame> _frames = new();
    private string? _pcapFullPath;

    /// <summary><para type="description">The interface(s) to capture on, captured together (a link object binds here through its LinkName property).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("LinkName")]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string[] Interface { get; set; } = [];

    /// <summary><para type="description">The interface's namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Stop after this many frames in all (default 10).</para></summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int Count { get; set; } = 10;

    /// <summary><para type="description">Stop after this many seconds even if fewer frames arrived (default 10).</para></summary>
    [Parameter]
    [ValidateRange(0.001, 86400)]
    public double TimeoutSeconds { get; set; } = 10;

    /// <summary><para type="description">Also write the frames to this pcap file (overwritten).</para></summary>
    [Parameter]
    public string? PcapPath { get; set; }

    /// <inheritdoc/>
    protected override void BeginProcessing()
    {
        if (PcapPath == null) return;
        _pcapFullPath = GetUnresolvedProviderPathFromPSPath(PcapPath);
        var directory = Path.GetDirectoryName(_pcapFullPath);
        if (!string.IsNullOrEmpty(directory) && !Directory.Exists(directory))
            ThrowTerminatingError(new ErrorRecord(
                new ItemNotFoundException($"Cannot write the pcap file '{_pcapFullPath}': the folder '{directory}' does not exist."),
                ErrorPrefix + "PcapFolderNotFound", ErrorCategory.ObjectNotFound, PcapPath));
    }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        var captures = new List<PacketCapture>();
        try
        {
            foreach (var name in Interface)
                Try(name, () => captures.Add(PacketCapture.Open(ns, name)));
            if (captures.Count == 0) return; // nothing captured: an existing pcap file is not touched
            Try(string.Join(",", Interface), () =>
            {
                var sw = Stopwatch.StartNew();
                var timeout = TimeSpan.FromSeconds(TimeoutSeconds);
                int seen = 0;
                while (seen < Count && !_stopping)
                {
                    var left = timeout - sw.Elapsed;
                    if (left <= TimeSpan.Zero) break;
                    if (PacketCapture.ReadAny(captures, left, () => _stopping) is not var (capture, frame)) break;
                    seen++;
                    _frames.Add(frame);
                    WriteObject(AgentPacket.From(frame, ns, capture.Interface));
                }
            });
        }
        finally
        {
            foreach (var c in captures) c.Dispose();
        }
        // rewritten after each piped link, with every frame so far: an interrupted pipeline still leaves what was captured
        if (_pcapFullPath != null)
        {
            try { PcapWriter.Write(_pcapFullPath, _frames); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                WriteError(new ErrorRecord(e, ErrorPrefix + "PcapWriteFailed", ErrorCategory.WriteError, PcapPath));
            }
        }
    }

    /// <inheritdoc/>
    protected override void StopProcessing() => _stopping = true;
}
