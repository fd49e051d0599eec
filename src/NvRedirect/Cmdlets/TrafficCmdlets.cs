using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Management.Automation;
using NvRedirect.Packets;

namespace NvRedirect.Cmdlets;

/// <summary>
/// <para type="synopsis">Captures frames on an interface in any namespace, like `tcpdump -enpli DEV`.</para>
/// <para type="description">Opens an AF_PACKET socket (all protocols) on each interface inside its namespace (several interfaces are captured at the same time) and emits one object per frame as it arrives: time, interface, direction, MACs, ethertype, IPs, protocol, ports and a tcpdump-style one-line summary. Stops after -Count frames or -TimeoutSeconds, whichever comes first (Ctrl+C also stops it). -PcapPath also writes the frames to a pcap file that tcpdump and Wireshark read.</para>
/// </summary>
/// <example><code>Watch-AgentTraffic vbr -Namespace agent-ns -Count 4 -TimeoutSeconds 5 | Select-Object -ExpandProperty Summary</code><para>Prints up to four frames seen on vbr within five seconds, one tcpdump-style line each.</para></example>
/// <example><code>Watch-AgentTraffic vex -Namespace agent-ns -Count 100 -PcapPath ./vex.pcap | Where-Object Protocol -eq ICMP</code><para>Captures up to 100 frames on vex into vex.pcap (readable with tcpdump -r) and shows the ICMP ones.</para></example>
/// <example><code>Get-AgentLink eth0 -Namespace container-ns | Watch-AgentTraffic -Count 2</code><para>A link object binds to -Interface and -Namespace from the pipeline.</para></example>
[Cmdlet(VerbsCommon.Watch, "AgentTraffic")]
[OutputType(typeof(AgentPacket))]
public sealed class WatchAgentTrafficCommand : NvCmdlet
{
    private volatile bool _stopping;

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
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        var frames = new List<CapturedFrame>();
        var captures = new List<PacketCapture>();
        try
        {
            foreach (var name in Interface)
                Try(name, () => captures.Add(PacketCapture.Open(ns, name)));
            if (captures.Count == 0) return;
            Try(string.Join(",", Interface), () =>
            {
                var sw = Stopwatch.StartNew();
                var timeout = TimeSpan.FromSeconds(TimeoutSeconds);
                while (frames.Count < Count && !_stopping)
                {
                    var left = timeout - sw.Elapsed;
                    if (left <= TimeSpan.Zero) break;
                    if (PacketCapture.ReadAny(captures, left, () => _stopping) is not var (capture, frame)) break;
                    frames.Add(frame);
                    WriteObject(AgentPacket.From(frame, ns, capture.Interface));
                }
            });
        }
        finally
        {
            foreach (var c in captures) c.Dispose();
        }
        if (PcapPath != null)
            Try(PcapPath, () => PcapWriter.Write(GetUnresolvedProviderPathFromPSPath(PcapPath), frames));
    }

    /// <inheritdoc/>
    protected override void StopProcessing() => _stopping = true;
}
