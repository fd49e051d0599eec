using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Net;
using System.Threading;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Probes;

namespace NvRedirect.Cmdlets;

/// <summary>
/// A cmdlet that acts from inside a network namespace named one of four ways (at most one given): -Namespace (a name
/// under /run/netns), -NetnsPath, -ProcessId or -Container; the root namespace when none is given.
/// </summary>
public abstract class NamespaceTargetCmdlet : NvCmdlet
{
    /// <summary><para type="description">The namespace by its name under /run/netns (an object's Namespace property binds here); the root namespace when no target is given.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">The namespace by an nsfs file: /proc/PID/ns/net, /run/netns/NAME, /var/run/docker/netns/ID or any bind mount of one.</para></summary>
    [Parameter]
    public string? NetnsPath { get; set; }

    /// <summary><para type="description">The namespace of a running process (its /proc/PID/ns/net).</para></summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int? ProcessId { get; set; }

    /// <summary><para type="description">The namespace of a running podman or docker container, by name or id (its main process, from `podman inspect` or `docker inspect`).</para></summary>
    [Parameter]
    public string? Container { get; set; }

    /// <summary>The target the parameters name; throws ArgumentException when more than one is given.</summary>
    protected NamespaceTarget ResolveTarget()
    {
        var given = new (string Name, bool IsSet)[] { ("-Namespace", !string.IsNullOrEmpty(Namespace)), ("-NetnsPath", NetnsPath != null), ("-ProcessId", ProcessId != null), ("-Container", Container != null) }
            .Where(t => t.IsSet).Select(t => t.Name).ToList();
        if (given.Count > 1)
            throw new ArgumentException($"Give one namespace target, not {string.Join(" and ", given)}.");
        if (NetnsPath != null) return NamespaceTarget.FromPath(GetUnresolvedProviderPathFromPSPath(NetnsPath));
        if (ProcessId is int pid) return NamespaceTarget.FromProcess(pid);
        if (Container != null) return NamespaceTarget.FromContainer(Container);
        return NamespaceTarget.FromName(Namespace);
    }

    /// <summary>Runs one item's work, reporting namespace, socket and classifier failures as non-terminating errors.</summary>
    protected void TryTarget(object? target, Action work)
    {
        try { work(); }
        catch (Exception e) when (e is NamespaceTargetNotFoundException or System.Net.Sockets.SocketException or TimeoutException
            or NvRedirect.Core.Netlink.NetlinkException or ArgumentException or InvalidOperationException or ItemNotFoundException)
        {
            WriteFailure(e, target);
        }
    }
}

/// <summary>
/// <para type="synopsis">Probes a connection from a namespace: TCP, UDP or ICMP echo, with one result object per probe (Connected, Answered, NotRefused, Refused, Reset, Closed, TimedOut or Unreachable).</para>
/// <para type="description">Runs in this process, with no ping, netcat or python: each probe's socket is opened on a thread inside the namespace (-Namespace, -NetnsPath, -ProcessId or -Container; the root namespace by default) and closed before the next. TCP: the handshake (Connected; an RST gives Refused, silence TimedOut, no route or no neighbour or an ICMP unreachable gives Unreachable); with -Echo it also sends a line and requires it back (through Start-AgentEchoServer, for instance), so a connection reset after it opened gives Reset with ResetAfterOpen. UDP: one datagram on a connected socket; an ICMP port unreachable gives Refused; any answer gives Answered (with -Echo only the same bytes do), silence NotRefused (with -Echo TimedOut). ICMP: one echo request on a raw socket; a reply gives Answered, a destination unreachable quoting it Unreachable. Without -Protocol, a probe with -Port is TCP, one without is ICMP. -Count sends several probes one after another. -KeepOpen keeps a TCP connection open (the result's Connection); `Test-AgentConnection -Connection` probes it again later, which is how a test shows that a policy change reset connections that were open; Disconnect-AgentConnection closes it. -Quiet returns only $true when any probe succeeded (Connected, Answered or NotRefused; it stops at the first), as Test-NetConnection -Quiet does.</para>
/// </summary>
/// <example><code>Test-AgentConnection 10.10.10.88 -Port 5432 -Namespace host-ns</code><para>Connects from host-ns to 10.10.10.88:5432 and shows the outcome (Connected, Refused, TimedOut...) with the round trip time.</para></example>
/// <example><code>Test-AgentConnection 10.10.10.88 -Namespace host-ns -Count 3 -Quiet</code><para>Three ICMP echoes; $true when any was answered.</para></example>
/// <example><code>Test-AgentConnection 10.10.10.88 -Port 53 -Protocol UDP -Container web</code><para>One UDP datagram from the container web's namespace; Refused when 10.10.10.88 answers with an ICMP port unreachable, NotRefused when nothing comes back.</para></example>
/// <example><code>$c = Test-AgentConnection 10.10.10.88 -Port 8080 -Namespace host-ns -Echo -KeepOpen
/// Set-DpWorkloadMode -Mac 1a:27:f3:87:3a:27 -Mode Protect
/// $c | Test-AgentConnection -Echo      # its Connection binds: Outcome Reset, ResetAfterOpen True
/// $c | Disconnect-AgentConnection</code><para>Holds a connection to an echo server open across a switch to Protect mode, shows that the datapath reset it, and closes it.</para></example>
[Cmdlet(VerbsDiagnostic.Test, "AgentConnection", DefaultParameterSetName = ProbeSet)]
[OutputType(typeof(ProbeResult), typeof(bool))]
public sealed class TestAgentConnectionCommand : NamespaceTargetCmdlet
{
    private const string ProbeSet = "Probe", HeldSet = "Connection";
    private readonly CancellationTokenSource _stop = new();

    /// <summary><para type="description">The address to probe, IPv4 or IPv6.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ProbeSet)]
    [Alias("Destination")]
    public IPAddress Address { get; set; } = IPAddress.None;

    /// <summary><para type="description">The destination port (TCP, UDP). Without -Protocol, a port means TCP and no port means ICMP.</para></summary>
    [Parameter(Position = 1, ParameterSetName = ProbeSet)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; }

    /// <summary><para type="description">TCP, UDP or ICMP (echo).</para></summary>
    [Parameter(ParameterSetName = ProbeSet)]
    public ProbeProtocol? Protocol { get; set; }

    /// <summary><para type="description">The local address to send from (one of the namespace's; the kernel's choice when absent).</para></summary>
    [Parameter(ParameterSetName = ProbeSet)]
    public IPAddress? Source { get; set; }

    /// <summary><para type="description">How many probes to send, one after another (default 1).</para></summary>
    [Parameter(ParameterSetName = ProbeSet)]
    [ValidateRange(1, 10000)]
    public int Count { get; set; } = 1;

    /// <summary><para type="description">Keep a TCP connection that opened (the result's Connection) for later probes; close it with Disconnect-AgentConnection.</para></summary>
    [Parameter(ParameterSetName = ProbeSet)]
    public SwitchParameter KeepOpen { get; set; }

    /// <summary><para type="description">A connection kept open by -KeepOpen (or a result holding one): send on it again and report whether it still answers, was reset (Reset, ResetAfterOpen) or closed. It keeps the namespace it was opened in: the namespace parameters do not apply.</para></summary>
    [Parameter(Mandatory = true, ParameterSetName = HeldSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    public HeldConnection? Connection { get; set; }

    /// <summary><para type="description">TCP and UDP: the other end echoes (an echo server); send a line and require the same bytes back.</para></summary>
    [Parameter]
    public SwitchParameter Echo { get; set; }

    /// <summary><para type="description">How many seconds to wait for each answer (default 2).</para></summary>
    [Parameter]
    [ValidateRange(0.01, 600)]
    public double TimeoutSeconds { get; set; } = 2;

    /// <summary><para type="description">Return only $true (some probe succeeded: Connected, Answered or NotRefused) or $false.</para></summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var timeout = TimeSpan.FromSeconds(TimeoutSeconds);
        var results = new List<ProbeResult>();
        if (ParameterSetName == HeldSet)
        {
            TryTarget(Connection, () => results.Add(Connection!.Probe(Echo, timeout, _stop.Token)));
        }
        else
        {
            var protocol = Protocol ?? (Port > 0 ? ProbeProtocol.TCP : ProbeProtocol.ICMP);
            TryTarget(Address, () =>
            {
                var from = ResolveTarget();
                var request = new ProbeRequest(protocol, Address, Port, timeout, Source, Echo);
                for (int i = 1; i <= Count && !_stop.IsCancellationRequested; i++)
                {
                    var r = ConnectionProbe.Send(from, request, i, KeepOpen, _stop.Token);
                    if (!Quiet) { WriteObject(r); continue; }
                    results.Add(r);
                    if (r.Succeeded) break; // the answer is known: one success is enough

                }
            });
        }
        if (Quiet) WriteObject(results.Any(r => r.Succeeded));
        else if (ParameterSetName == HeldSet) WriteObject(results, true);
    }

    /// <inheritdoc/>
    protected override void StopProcessing() => _stop.Cancel();
}

/// <summary>
/// <para type="synopsis">Closes TCP connections kept open by Test-AgentConnection -KeepOpen.</para>
/// <para type="description">Closes the socket (a FIN to the server). Without -Connection, closes every connection this session kept open. Removing the module closes them too.</para>
/// </summary>
/// <example><code>$c | Disconnect-AgentConnection</code><para>Closes the connection a Test-AgentConnection -KeepOpen result holds (its Connection binds from the pipeline).</para></example>
/// <example><code>Disconnect-AgentConnection</code><para>Closes every connection kept open in this session.</para></example>
[Cmdlet(VerbsCommunications.Disconnect, "AgentConnection", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(HeldConnection))]
public sealed class DisconnectAgentConnectionCommand : NvCmdlet
{
    /// <summary><para type="description">The connection(s) to close (a result's Connection binds here); every open one when absent.</para></summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowNull]
    public HeldConnection?[]? Connection { get; set; }

    /// <summary><para type="description">Return each connection after closing it.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var targets = MyInvocation.BoundParameters.ContainsKey(nameof(Connection)) ? (Connection ?? []).Where(c => c != null).Select(c => c!) : HeldConnection.Open;
        foreach (var c in targets)
        {
            if (!ShouldProcess(c.ToString(), "Close connection")) continue;
            c.Dispose();
            if (PassThru) WriteObject(c);
        }
    }
}

/// <summary>
/// <para type="synopsis">Starts a TCP/UDP echo server inside a namespace, in this PowerShell process: the other end of Test-AgentConnection.</para>
/// <para type="description">Binds the ports inside the namespace (-Namespace, -NetnsPath, -ProcessId or -Container; the root namespace by default) on every address of both families (or on -Address) and serves them on a background thread of this process: every TCP byte and UDP datagram goes back unchanged. It records what it sees (accept, close, reset, datagram: the Events property) and counts it. Port 0 lets the kernel choose; the object shows the ports bound. Nothing is left listening when any port cannot be bound. It runs until Stop-AgentEchoServer, the module's removal or the end of the process.</para>
/// </summary>
/// <example><code>$echo = Start-AgentEchoServer -Namespace container-ns -TcpPort 8080 -UdpPort 9999</code><para>Echoes TCP 8080 and UDP 9999 in container-ns.</para></example>
/// <example><code>Start-AgentEchoServer -Namespace host-ns -TcpPort 0 | Select-Object -ExpandProperty TcpPort</code><para>Lets the kernel choose a free port and shows it.</para></example>
[Cmdlet(VerbsLifecycle.Start, "AgentEchoServer", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(EchoServer))]
public sealed class StartAgentEchoServerCommand : NamespaceTargetCmdlet
{
    /// <summary><para type="description">TCP ports to echo on (0: one the kernel chooses).</para></summary>
    [Parameter(Position = 0)]
    [ValidateRange(0, 65535)]
    public int[] TcpPort { get; set; } = [];

    /// <summary><para type="description">UDP ports to echo on (0: one the kernel chooses).</para></summary>
    [Parameter]
    [ValidateRange(0, 65535)]
    public int[] UdpPort { get; set; } = [];

    /// <summary><para type="description">Listen on this address only (one of the namespace's) instead of every address of both families.</para></summary>
    [Parameter]
    public IPAddress? Address { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        TryTarget(Namespace, () =>
        {
            var ns = ResolveTarget();
            var ports = string.Join(", ", TcpPort.Select(p => $"TCP {p}").Concat(UdpPort.Select(p => $"UDP {p}")));
            if (!ShouldProcess($"{ports} in {ns}", "Start echo server")) return;
            WriteObject(EchoServer.Start(ns, Address, TcpPort, UdpPort));
        });
    }
}

/// <summary>
/// <para type="synopsis">Lists the echo servers running in this PowerShell process, with their counters and events.</para>
/// <para type="description">Shows each server's id, namespace, address, ports, whether it runs, the TCP connections accepted and open and the UDP datagrams answered; the Events property lists what it saw (Accept, Close, Reset, Error, Datagram with the peer).</para>
/// </summary>
/// <example><code>Get-AgentEchoServer</code><para>Lists the running echo servers.</para></example>
/// <example><code>(Get-AgentEchoServer -Id 1).Events | Where-Object Kind -eq Reset</code><para>The connections of server 1 that were reset.</para></example>
[Cmdlet(VerbsCommon.Get, "AgentEchoServer")]
[OutputType(typeof(EchoServer))]
public sealed class GetAgentEchoServerCommand : NvCmdlet
{
    /// <summary><para type="description">Only these servers; all when absent.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(EchoServerIdCompleter))]
    public int[]? Id { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var running = EchoServer.Running;
        if (Id == null) { WriteObject(running, true); return; }
        foreach (var id in Id)
        {
            if (running.FirstOrDefault(s => s.Id == id) is { } s) WriteObject(s);
            else WriteFailure(new ItemNotFoundException($"There is no running echo server {id}; list them with Get-AgentEchoServer."), id);
        }
    }
}

/// <summary>
/// <para type="synopsis">Stops echo servers started by Start-AgentEchoServer: their thread ends and every socket closes.</para>
/// <para type="description">Open TCP connections are closed with a FIN, or with -Abort reset (an RST, as a crashing server would). Without -Id, stops every echo server of this process. Stopping a server that was stopped already does nothing; an id no server ever had is an error (StopAgentEchoServerNotFound).</para>
/// </summary>
/// <example><code>$echo | Stop-AgentEchoServer</code><para>Stops the server in $echo (its Id binds from the pipeline).</para></example>
/// <example><code>Stop-AgentEchoServer -Abort</code><para>Stops every echo server, resetting their open connections.</para></example>
[Cmdlet(VerbsLifecycle.Stop, "AgentEchoServer", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(EchoServer))]
public sealed class StopAgentEchoServerCommand : NvCmdlet
{
    /// <summary><para type="description">The servers to stop (a server object's Id binds here); every one when absent.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(EchoServerIdCompleter))]
    public int[]? Id { get; set; }

    /// <summary><para type="description">Reset open TCP connections (RST) instead of closing them (FIN).</para></summary>
    [Parameter] public SwitchParameter Abort { get; set; }

    /// <summary><para type="description">Return each server after stopping it.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var running = EchoServer.Running;
        var targets = new List<EchoServer>();
        if (Id == null) targets.AddRange(running);
        else
            foreach (var id in Id)
            {
                if (running.FirstOrDefault(s => s.Id == id) is { } s) targets.Add(s);
                else if (!EchoServer.WasStarted(id)) // a server stopped before has nothing left to stop
                    WriteFailure(new ItemNotFoundException($"There is no running echo server {id}; list them with Get-AgentEchoServer."), id);
            }
        foreach (var s in targets)
        {
            if (!ShouldProcess(s.ToString(), Abort ? "Stop echo server, resetting its connections" : "Stop echo server")) continue;
            Try(s, () => s.Stop(Abort));
            if (PassThru) WriteObject(s);
        }
    }
}

/// <summary>Stops every echo server and closes every kept connection when the module is removed: their threads and sockets would otherwise outlive it.</summary>
public sealed class ProbeCleanup : IModuleAssemblyCleanup
{
    /// <inheritdoc/>
    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        EchoServer.StopAll();
        HeldConnection.CloseAll();
    }
}
