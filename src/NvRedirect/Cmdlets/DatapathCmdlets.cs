using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Model;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Cmdlets;

/// <summary>Completes control socket paths with those of the running nvr-dp processes.</summary>
public sealed class ControlSocketCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var prefix = (wordToComplete ?? "").Trim('\'', '"');
        return DatapathProcess.Processes().Select(p => p.ControlSocket).Distinct(StringComparer.Ordinal)
            .Where(s => s.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)
            .Select(s => new CompletionResult(NamespaceNameCompleter.Quote(s), s, CompletionResultType.ParameterValue, s));
    }
}

/// <summary>What the datapath client cmdlets share: the control socket they talk to.</summary>
public abstract class DpCmdlet : NvCmdlet
{
    /// <summary><para type="description">The datapath's control socket. Default: the socket of the one running nvr-dp; with none or several, the root namespace's default /run/nvredirect/dp.sock (a datapath started with -Namespace NAME serves /run/nvredirect/dp-NAME.sock; NeuVector's /tmp/dp_listen.sock only when started with it). A datapath object from Start-Datapath or Get-Datapath, and the workloads, sessions, policies, rules and connections they list, bind here by property name.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ControlSocketCompleter))]
    [AllowNull, AllowEmptyString]
    [PSDefaultValue(Help = "the socket of the only running nvr-dp, else " + DatapathPaths.Directory + "/dp.sock")]
    public string ControlSocket
    {
        get => _controlSocket ??= DefaultSocket();
        // a rule built by New-DpRule has no control socket: binding its null by property name means "the default"
        set => _controlSocket = string.IsNullOrEmpty(value) ? null : value;
    }
    private string? _controlSocket;

    /// <summary>The socket of the only running nvr-dp, else the root namespace's default.</summary>
    internal static string DefaultSocket()
    {
        var running = DatapathProcess.Processes().Select(p => p.ControlSocket).Distinct(StringComparer.Ordinal).ToList();
        return running.Count == 1 ? running[0] : DatapathPaths.DefaultSocket("");
    }

    /// <summary><para type="description">How many seconds to wait for the datapath's answers (default 5, as NeuVector's agent waits).</para></summary>
    [Parameter]
    [ValidateRange(0.1, 600)]
    public double TimeoutSeconds { get; set; } = 5;

    /// <summary>The control socket as an absolute path.</summary>
    protected string SocketPath => GetUnresolvedProviderPathFromPSPath(ControlSocket);

    /// <summary>A client of the datapath on <see cref="SocketPath"/>.</summary>
    protected DpClient OpenClient() => DpClient.Open(SocketPath, TimeSpan.FromSeconds(TimeoutSeconds));

    /// <summary>Formats a MAC parameter the way the datapath reports MACs (lower case, two digits a byte).</summary>
    protected static string FormatMac(string text, string what) => Parse.Mac(Parse.Mac(text, what));
}

/// <summary>
/// <para type="synopsis">Starts the datapath daemon (nvr-dp) in a namespace and returns it once its control socket answers.</para>
/// <para type="description">Runs `dotnet nvr-dp.dll --supervise --strict --netns NAMESPACE --socket PATH --log FILE` from the module's bin folder in nvr-dp's background mode: the daemon detaches into a session of its own (so it outlives this PowerShell session and its terminal) and the command returns once the daemon serves its control socket and answers a keep-alive. By default a small supervisor process runs the daemon and starts it again within a second when it dies, with the configuration it saved (/run/nvredirect/...state, written before every change is acknowledged); Get-Datapath shows Restarts and LastExit; -Unsupervised runs it alone. The datapath opens its service ports (Add-DpServicePort) inside the namespace. The control socket defaults to /run/nvredirect/dp-NAMESPACE.sock, in a root-owned 0700 directory no other user can reach; any other path (NeuVector's /tmp/dp_listen.sock) is created mode 0600 and serves only datagrams whose sender is root or in -ControlGroup. A second daemon on a control socket that a datapath already serves (it holds the socket's lock) is refused. The daemon logs to -LogPath (default /var/log/nvr-dp.log). Stop it with Stop-Datapath.</para>
/// </summary>
/// <example><code>Start-Datapath -Namespace agent-ns</code><para>Starts the datapath for the seed's agent namespace, supervised, on its default control socket /run/nvredirect/dp-agent-ns.sock and shows its pid, namespace and socket.</para></example>
/// <example><code>Start-Datapath -Namespace agent-ns -ControlSocket /tmp/dp_listen.sock -AgentCompatible</code><para>Starts a datapath for a NeuVector agent on NeuVector's socket, with dp's semantics (ping unpoliced until the agent's toggle, the grace period for addresses it has not named yet).</para></example>
/// <example><code>$dp = New-SeedTopology | Start-Datapath -ControlSocket /tmp/lab-dp.sock -LogPath /tmp/lab-dp.log</code><para>Builds the seed topology and starts a datapath in its agent namespace (the topology's AgentNamespace binds to -Namespace) on a socket of its own.</para></example>
[Cmdlet(VerbsLifecycle.Start, "Datapath", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DatapathInfo))]
public sealed class StartDatapathCommand : NvCmdlet
{
    /// <summary><para type="description">The network namespace for the datapath's service ports, where vth is (a seed topology's AgentNamespace or an interception's Namespace binds here). Absent or empty: the root namespace.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("AgentNamespace")]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">The control socket to serve. Default: /run/nvredirect/dp-NAMESPACE.sock (/run/nvredirect/dp.sock for the root namespace), in a root-owned directory only root can enter. NeuVector's /tmp/dp_listen.sock (or any other path) on request: there every datagram's sender must be root or in -ControlGroup.</para></summary>
    [Parameter]
    public string? ControlSocket { get; set; }

    /// <summary><para type="description">A group (name or id) whose members may command the datapath besides root: the socket becomes mode 0660, group GROUP (useful only outside /run/nvredirect, which stays root's).</para></summary>
    [Parameter]
    public string? ControlGroup { get; set; }

    /// <summary><para type="description">The log file the daemon appends to (default /var/log/nvr-dp.log).</para></summary>
    [Parameter]
    public string? LogPath { get; set; }

    /// <summary><para type="description">The size of the preallocated session table (default 65536).</para></summary>
    [Parameter]
    [ValidateRange(1, 1 << 24)]
    public int? SessionCapacity { get; set; }

    /// <summary><para type="description">The size of the preallocated connection table Get-DpConnection reads (default 16384; when it is full, denied and never-answered entries are evicted first and a scanning client is summarised in one entry: Get-Datapath shows its fill and evictions in Tables).</para></summary>
    [Parameter]
    [ValidateRange(1, 1 << 22)]
    public int? ConnectionCapacity { get; set; }

    /// <summary><para type="description">Serve the datapath's counters in Prometheus text format on http://ADDRESS:PORT/metrics (nvr-dp --metrics; docs/metrics.md lists them). Loopback addresses only (127.0.0.1:9464, [::1]:9464): the listener has no authentication. Absent: no listener (Export-DpMetrics writes the same metrics to a node_exporter textfile).</para></summary>
    [Parameter]
    public string? MetricsEndpoint { get; set; }

    /// <summary><para type="description">Run nvr-dp without its supervisor: a crash then leaves the datapath down (and its workloads cut off) until someone starts it again. By default nvr-dp --supervise restarts a daemon that dies within a second, with its saved configuration.</para></summary>
    [Parameter] public SwitchParameter Unsupervised { get; set; }

    /// <summary><para type="description">Run the datapath with NeuVector dp's semantics, for a NeuVector agent driving it: ICMP is not policed until the agent sends ctrl_enable_icmp_policy, an address the agent has not named in ctrl_cfg_policy_addr gets dp's grace period (a DENY default lets it through for up to 60 s at a time), and inbound UDP to a port not in the workload's listening table (ctrl_cfg_mac apps) is taken as an answer to the workload. By default the datapath starts strict (nvr-dp --strict): Protect blocks whatever no rule allows, ping included, at once. Get-Datapath shows which in Strict.</para></summary>
    [Parameter] public SwitchParameter AgentCompatible { get; set; }

    /// <summary><para type="description">How many seconds to wait for the daemon to serve its socket (default 60).</para></summary>
    [Parameter]
    [ValidateRange(1, 600)]
    public double TimeoutSeconds { get; set; } = 60;

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        var socket = string.IsNullOrEmpty(ControlSocket) ? DatapathPaths.DefaultSocket(ns) : GetUnresolvedProviderPathFromPSPath(ControlSocket);
        Try(socket, () =>
        {
            var request = new DatapathStartRequest
            {
                Namespace = ns, ControlSocket = socket, ControlGroup = ControlGroup, Supervise = !Unsupervised, Strict = !AgentCompatible, LogPath = LogPath == null ? null : GetUnresolvedProviderPathFromPSPath(LogPath),
                Sessions = SessionCapacity, Connections = ConnectionCapacity, Timeout = TimeSpan.FromSeconds(TimeoutSeconds),
                Metrics = MetricsEndpoint == null ? null : DpMetrics.ParseEndpoint(MetricsEndpoint).ToString(),
            };
            if (!ShouldProcess($"nvr-dp serving {socket}, service ports in {Where(ns)}", "Start datapath")) return;
            WriteObject(DatapathProcess.Start(request));
        });
    }
}

/// <summary>
/// <para type="synopsis">Lists the running datapath daemons, or describes the one on a control socket.</para>
/// <para type="description">Without -ControlSocket, finds every nvr-dp process through its command line in /proc and asks each one's control socket for its state; a daemon that does not answer (starting, stopping) is left out. With -ControlSocket, asks that socket and reports an error when nothing answers. Each datapath is described by itself: pid, namespace, control socket, log file, service ports, workloads (MAC, ucmac, tap), internal networks, current sessions, device counters, and Tables: for the session and the connection table their capacity, fill, evictions (LearnedEvicted: learned connections or live sessions among them; non-zero means the table is too small) and the connection attempts summarised in scan entries.</para>
/// </summary>
/// <example><code>Get-Datapath</code><para>Lists every running datapath.</para></example>
/// <example><code>(Get-Datapath -ControlSocket $dp.ControlSocket).Tables</code><para>Shows how full the session and connection tables are and what they evicted or summarised, say after a port scan.</para></example>
/// <example><code>(Get-Datapath -ControlSocket /tmp/dp_listen.sock).Workloads | Format-Table Mac, UcMac, Tap</code><para>Shows the workloads registered with the datapath on NeuVector's socket and whether each is tapped or inline.</para></example>
[Cmdlet(VerbsCommon.Get, "Datapath")]
[OutputType(typeof(DatapathInfo))]
public sealed class GetDatapathCommand : NvCmdlet
{
    /// <summary><para type="description">The control socket(s) to ask; absent: every running nvr-dp's.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ControlSocketCompleter))]
    public string[]? ControlSocket { get; set; }

    /// <summary><para type="description">How many seconds to wait for each datapath's answer (default 5).</para></summary>
    [Parameter]
    [ValidateRange(0.1, 600)]
    public double TimeoutSeconds { get; set; } = 5;

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var timeout = TimeSpan.FromSeconds(TimeoutSeconds);
        if (ControlSocket == null || ControlSocket.Length == 0)
        {
            Try("", () => { foreach (var d in DatapathProcess.Find(timeout)) WriteObject(d); });
            return;
        }
        foreach (var s in ControlSocket)
        {
            var socket = GetUnresolvedProviderPathFromPSPath(s);
            Try(socket, () =>
            {
                using var client = DpClient.Open(socket, timeout);
                WriteObject(client.Query());
            });
        }
    }
}

/// <summary>
/// <para type="synopsis">Stops a datapath daemon cleanly and waits until it is gone and its control socket removed.</para>
/// <para type="description">Finds the daemon's pid by the lock it holds on its control socket (an answer on the socket proves nothing: anyone can answer a keep-alive on a /tmp path; a daemon that does not answer is still found), checks that the pid is an nvr-dp process, sends SIGTERM and waits until the process and its supervisor have exited. On SIGTERM nvr-dp stops its packet thread, closes the service port, removes its socket and forgets its saved configuration (a deliberate stop; a crash keeps it), and its supervisor ends with it. -Force sends SIGKILL to the supervisor and then the daemon, removes the socket the killed daemon leaves (only when it is a socket nothing is bound to) and the saved configuration. With the daemon gone, frames steered to vth are dropped: the intercepted workloads are cut off until a datapath runs again.</para>
/// </summary>
/// <example><code>Stop-Datapath</code><para>Stops the running datapath (the only one; with several, name it with -ControlSocket) and its supervisor.</para></example>
/// <example><code>Get-Datapath | Stop-Datapath -WhatIf</code><para>Shows which running datapaths would be stopped.</para></example>
[Cmdlet(VerbsLifecycle.Stop, "Datapath", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(DatapathInfo))]
public sealed class StopDatapathCommand : DpCmdlet
{
    /// <summary><para type="description">Kill the daemon with SIGKILL (no clean shutdown) and remove the socket it leaves.</para></summary>
    [Parameter] public SwitchParameter Force { get; set; }

    /// <summary><para type="description">How many seconds to wait for the daemon to exit (default 30).</para></summary>
    [Parameter]
    [ValidateRange(1, 600)]
    public double StopTimeoutSeconds { get; set; } = 30;

    /// <summary><para type="description">Return the datapath as it was just before it stopped.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var socket = SocketPath;
        Try(socket, () =>
        {
            DatapathInfo? info = null;
            int pid;
            // the pid lock names the daemon (null: no live nvr-dp; 0: one is starting); an answer on the socket proves nothing
            int? owner = DatapathLock.Owner(socket);
            try
            {
                using var client = OpenClient();
                info = client.Query();
            }
            catch (DatapathNotRespondingException) when (owner != null) { } // a hung daemon: the lock names it
            catch (DatapathNotRespondingException) when (Force)
            {
                // a killed daemon left a stale socket, which -Force removes
                if (ShouldProcess(socket, "Remove the stale control socket") && DatapathProcess.RemoveStaleSocket(socket)) { DatapathProcess.Forget(socket); return; }
                throw;
            }
            if (owner == null)
                throw new DatapathNotRespondingException(socket, $"something answers on it, but no nvr-dp holds its lock {DatapathPaths.LockFile(socket)}: it is not a datapath, and the pid {info?.Pid} it claims is not signalled");
            pid = owner > 0 ? owner.Value : DatapathProcess.FindPid(socket) ?? throw new DatapathNotRespondingException(socket, "its nvr-dp is still starting");
            if (info?.Pid != pid) info = null;
            if (!ShouldProcess($"nvr-dp (pid {pid}) serving {socket}", Force ? "Kill datapath" : "Stop datapath")) return;
            DatapathProcess.Stop(pid, socket, TimeSpan.FromSeconds(StopTimeoutSeconds), Force);
            if (PassThru && info != null) WriteObject(info);
        });
    }
}

/// <summary>
/// <para type="synopsis">Opens the datapath's service port: the interface (vth) it reads steered frames from and writes allowed frames back to.</para>
/// <para type="description">Sends ctrl_add_srvc_port, as NeuVector's agent does once: the datapath opens an AF_PACKET ring on the interface inside its namespace. It has one service port; adding the same one again changes nothing, adding another is rejected. Like every datapath client cmdlet it then asks the datapath (nvr-dp's nvr_get_state) whether the request was applied, and reports a rejection with the datapath's reason.</para>
/// </summary>
/// <example><code>Add-DpServicePort vth</code><para>Serves vth, the seed's service port, on the running datapath.</para></example>
/// <example><code>Get-WorkloadInterception agent-ns | Add-DpServicePort -ControlSocket $dp.ControlSocket -PassThru</code><para>Serves the interception's datapath link (vth) on the datapath in $dp and returns the datapath.</para></example>
[Cmdlet(VerbsCommon.Add, "DpServicePort", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DatapathInfo))]
public sealed class AddDpServicePortCommand : DpCmdlet
{
    /// <summary><para type="description">The interface in the datapath's namespace (an interception's DatapathLink or a link's LinkName binds here).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("DatapathLink", "LinkName")]
    public string Interface { get; set; } = "";

    /// <summary><para type="description">Size the ring for jumbo frames (NeuVector's jumboframe).</para></summary>
    [Parameter] public SwitchParameter JumboFrame { get; set; }

    /// <summary><para type="description">Return the datapath afterwards.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(Interface, () =>
        {
            Parse.ThrowIfInvalidLinkName(Interface, nameof(Interface));
            if (!ShouldProcess($"{Interface} on the datapath at {SocketPath}", "Add service port")) return;
            using var client = OpenClient();
            var state = client.Apply(DpRequests.AddServicePort(Interface, JumboFrame));
            if (PassThru) WriteObject(client.Query());
            else WriteVerbose($"service ports: {string.Join(", ", state.ServicePorts)}");
        });
    }
}

/// <summary>
/// <para type="synopsis">Sets the datapath's internal networks (ctrl_cfg_internal_net), replacing the list in force.</para>
/// <para type="description">Sends the subnets, then the device addresses (iptype devip), as NeuVector's agent does: one request with flag 3 when the list fits in 8120 bytes, otherwise chunks flagged START (1), middle (0) and END (2); the datapath swaps the new list in at END. A subnet must be written as its network address (the datapath matches (ip AND mask) == ip); device addresses keep their host bits. An empty -Subnet list with no device addresses clears the list.</para>
/// </summary>
/// <example><code>Set-DpInternalNetwork -Subnet 172.17.0.0/16, 179.20.23.0/24, 10.10.10.0/24, 172.20.166.0/24 -DeviceAddress 10.10.10.66/24, 10.10.10.88/24</code><para>Sets exactly the seed's internal networks.</para></example>
/// <example><code>Set-DpInternalNetwork -Subnet @()</code><para>Clears the list.</para></example>
[Cmdlet(VerbsCommon.Set, "DpInternalNetwork", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DatapathInfo))]
public sealed class SetDpInternalNetworkCommand : DpCmdlet
{
    /// <summary><para type="description">Internal subnets as NETWORK/PREFIX, e.g. 10.10.10.0/24.</para></summary>
    [Parameter(Mandatory = true, Position = 0)]
    [AllowEmptyCollection]
    public string[] Subnet { get; set; } = [];

    /// <summary><para type="description">Device addresses as ADDRESS/PREFIX (sent with iptype devip), e.g. 10.10.10.66/24.</para></summary>
    [Parameter]
    public string[] DeviceAddress { get; set; } = [];

    /// <summary><para type="description">Return the datapath afterwards.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(string.Join(",", Subnet), () =>
        {
            var entries = Subnet.Select(s => DpInternalNetwork.Parse(s)).Concat(DeviceAddress.Select(d => DpInternalNetwork.Parse(d, "devip"))).ToList();
            var chunks = DpRequests.InternalNetworks(entries);
            if (!ShouldProcess($"the datapath at {SocketPath}", $"Set {entries.Count} internal networks{(chunks.Count > 1 ? $" in {chunks.Count} requests" : "")}")) return;
            using var client = OpenClient();
            foreach (var chunk in chunks) client.Apply(chunk);
            if (PassThru) WriteObject(client.Query());
        });
    }
}

/// <summary>
/// <para type="synopsis">Registers a workload with the datapath (ctrl_add_mac): its MAC and the aliases frames carry towards the datapath.</para>
/// <para type="description">A new workload starts in tap mode, as in NeuVector: its frames are inspected and counted but not sent on until Set-DpMac -Tap $false (or -Tap $false here, sent in the same request, so both or neither apply). An interception from Get-WorkloadInterception binds by property name (WorkloadMac, UcMac, BcMac, DatapathLink), so `Get-WorkloadInterception agent-ns | Add-DpMac` registers every intercepted workload. Without -Interface the datapath's service port is named. Registering a MAC again updates it and keeps its tap setting; -OldMac re-keys a workload whose MAC changed.</para>
/// </summary>
/// <example><code>Add-DpMac -Mac 1a:27:f3:87:3a:27 -UcMac 4e:65:75:56:00:b4 -BcMac ff:ff:ff:00:00:b4 -Interface vth</code><para>Registers the seed's container exactly as the seed's script does (still tapped).</para></example>
/// <example><code>Get-WorkloadInterception agent-ns | Add-DpMac -Tap $false -PassThru</code><para>Registers every workload intercepted in agent-ns and puts it inline at once.</para></example>
[Cmdlet(VerbsCommon.Add, "DpMac", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DpWorkload))]
public sealed class AddDpMacCommand : DpCmdlet
{
    /// <summary><para type="description">The workload's MAC (an interception's WorkloadMac binds here).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    public string Mac { get; set; } = "";

    /// <summary><para type="description">The unicast alias ("NeuV" prefix 4e:65:75:56) the interception rewrites the MAC to towards the datapath.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowNull, AllowEmptyString]
    public string? UcMac { get; set; }

    /// <summary><para type="description">The broadcast alias (ff:ff:ff:00:HI:LO in NeuVector).</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowNull, AllowEmptyString]
    public string? BcMac { get; set; }

    /// <summary><para type="description">The service port the workload is served on (an interception's DatapathLink binds here); default: the datapath's service port.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("DatapathLink")]
    [AllowNull, AllowEmptyString]
    public string? Interface { get; set; }

    /// <summary><para type="description">The workload's previous MAC, when its MAC changed (the entry is re-keyed, sessions and tap setting kept).</para></summary>
    [Parameter]
    public string? OldMac { get; set; }

    /// <summary><para type="description">Also set tap mode in the same request: $false puts the workload inline (its frames are sent on), $true keeps it tapped.</para></summary>
    [Parameter]
    public bool? Tap { get; set; }

    /// <summary><para type="description">Return the workload as the datapath then reports it.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(Mac, () =>
        {
            var mac = FormatMac(Mac, "MAC");
            string? ucmac = string.IsNullOrEmpty(UcMac) ? null : FormatMac(UcMac, "ucmac");
            string? bcmac = string.IsNullOrEmpty(BcMac) ? null : FormatMac(BcMac, "bcmac");
            string? oldmac = string.IsNullOrEmpty(OldMac) ? null : FormatMac(OldMac, "old MAC");
            using var client = OpenClient();
            var iface = Interface;
            if (string.IsNullOrEmpty(iface))
            {
                var ports = client.State([]).ServicePorts;
                iface = ports.Length > 0 ? ports[0]
                    : throw new ArgumentException($"No -Interface given and the datapath at {SocketPath} has no service port yet: add one with Add-DpServicePort, or pass -Interface.");
            }
            if (!ShouldProcess($"{mac} (ucmac {ucmac ?? "-"}, bcmac {bcmac ?? "-"}) on {iface} at {SocketPath}", "Register workload with the datapath")) return;
            var state = client.Apply(DpRequests.AddMac(iface, mac, ucmac, bcmac, oldmac, Tap), [mac]);
            if (PassThru && state.FindWorkload(mac) is { } w) WriteObject(w);
        });
    }
}

/// <summary>
/// <para type="synopsis">Switches registered workloads between tap mode and inline mode (ctrl_cfg_mac).</para>
/// <para type="description">-Tap $true: the datapath only inspects and counts the workload's frames and sends nothing on, so steered traffic stops (NeuVector's tap). -Tap $false: the frames are written back and reach their destination (inline). MACs may be given as the workload's MAC or one of its aliases; a MAC the datapath does not know is reported as an error (the datapath itself would skip it silently).</para>
/// </summary>
/// <example><code>Set-DpMac -Mac 1a:27:f3:87:3a:27 -Tap $false</code><para>Puts the seed's container inline, as the seed's script does: a ping from the host side now passes.</para></example>
/// <example><code>(Get-Datapath -ControlSocket /tmp/dp_listen.sock).Workloads | Set-DpMac -Tap $true</code><para>Taps every registered workload.</para></example>
[Cmdlet(VerbsCommon.Set, "DpMac", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DpWorkload))]
public sealed class SetDpMacCommand : DpCmdlet
{
    /// <summary><para type="description">Workload MACs (or their aliases); a workload or interception object binds its Mac or WorkloadMac here.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    public string[] Mac { get; set; } = [];

    /// <summary><para type="description">$true: tap mode (inspect, send nothing on). $false: inline (send on).</para></summary>
    [Parameter(Mandatory = true)]
    public bool Tap { get; set; }

    /// <summary><para type="description">Return the workloads as the datapath then reports them.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(string.Join(",", Mac), () =>
        {
            var macs = Mac.Select(m => FormatMac(m, "MAC")).ToList();
            using var client = OpenClient();
            var before = client.State(macs);
            var known = new List<string>();
            foreach (var m in macs)
            {
                if (before.FindWorkload(m) is { } w) known.Add(w.Mac);
                else WriteFailure(new ItemNotFoundException($"{m} is not registered with the datapath at {SocketPath}; register it with Add-DpMac."), m);
            }
            if (known.Count == 0) return;
            if (!ShouldProcess($"{string.Join(", ", known)} at {SocketPath}", Tap ? "Tap (inspect only)" : "Inline (send on)")) return;
            var state = client.Apply(DpRequests.ConfigureMac(known, Tap), known);
            if (PassThru) foreach (var m in known.Distinct()) if (state.FindWorkload(m) is { } w) WriteObject(w);
        });
    }
}

/// <summary>
/// <para type="synopsis">Unregisters workloads from the datapath (ctrl_del_mac) and drops their sessions.</para>
/// <para type="description">The datapath forgets the workload: frames steered to it with the workload's aliases are then dropped as frames of no workload, so an intercepted workload is cut off until it is registered again. MACs may be given as the workload's MAC or one of its aliases; one the datapath does not know is reported as an error.</para>
/// </summary>
/// <example><code>Remove-DpMac 1a:27:f3:87:3a:27</code><para>Unregisters the seed's container: a ping from the host side fails again.</para></example>
/// <example><code>Get-WorkloadInterception agent-ns | Remove-DpMac -ControlSocket $dp.ControlSocket -PassThru</code><para>Unregisters every workload intercepted in agent-ns from the datapath in $dp and returns what was removed.</para></example>
[Cmdlet(VerbsCommon.Remove, "DpMac", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(DpWorkload))]
public sealed class RemoveDpMacCommand : DpCmdlet
{
    /// <summary><para type="description">Workload MACs (or their aliases); a workload or interception object binds its Mac or WorkloadMac here.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    public string[] Mac { get; set; } = [];

    /// <summary><para type="description">Return the removed workloads as they were.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        using var client = Open();
        if (client == null) return;
        foreach (var text in Mac)
        {
            Try(text, () =>
            {
                var m = FormatMac(text, "MAC");
                var w = client.State([m]).FindWorkload(m)
                    ?? throw new ItemNotFoundException($"{m} is not registered with the datapath at {SocketPath}; list the workloads with Get-Datapath.");
                if (!ShouldProcess($"{w.Mac} at {SocketPath}", "Unregister workload from the datapath")) return;
                client.Apply(DpRequests.DeleteMac(w.Mac));
                if (PassThru) WriteObject(w);
            });
        }
    }

    private DpClient? Open()
    {
        DpClient? client = null;
        Try(SocketPath, () => client = OpenClient());
        return client;
    }
}

/// <summary>
/// <para type="synopsis">Lists the datapath's sessions (ctrl_list_session), or counts them by protocol (ctrl_count_session).</para>
/// <para type="description">Each session shows its id, workload, protocol, client and server (address, port, MAC), packets and bytes each way, TCP states, idle time, age, time left, and whether it was opened towards the workload (Ingress), started while the workload was tapped, or picked up mid-stream. -Count returns the current sessions per protocol instead.</para>
/// </summary>
/// <example><code>Get-DpSession</code><para>Lists every session of the running datapath.</para></example>
/// <example><code>Get-DpSession -Count -ControlSocket $dp.ControlSocket</code><para>Counts the sessions of the datapath in $dp per protocol.</para></example>
[Cmdlet(VerbsCommon.Get, "DpSession")]
[OutputType(typeof(DpSession), typeof(DpSessionCount))]
public sealed class GetDpSessionCommand : DpCmdlet
{
    /// <summary><para type="description">Return the session count per protocol instead of the sessions.</para></summary>
    [Parameter] public SwitchParameter Count { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(SocketPath, () =>
        {
            using var client = OpenClient();
            if (Count) WriteObject(client.CountSessions());
            else foreach (var s in client.ListSessions()) WriteObject(s);
        });
    }
}

/// <summary>
/// <para type="synopsis">Removes sessions from the datapath's table (ctrl_clear_session): all of them, or those with the given ids.</para>
/// <para type="description">The datapath forgets the sessions; the next packet of a conversation starts a new one (a TCP segment without SYN is then picked up mid-stream). Sessions from Get-DpSession bind by property name (Id, ControlSocket).</para>
/// </summary>
/// <example><code>Clear-DpSession</code><para>Removes every session of the running datapath.</para></example>
/// <example><code>Get-DpSession | Where-Object Protocol -eq ICMP | Clear-DpSession</code><para>Removes the ICMP sessions only.</para></example>
[Cmdlet(VerbsCommon.Clear, "DpSession", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(DpSessionCount))]
public sealed class ClearDpSessionCommand : DpCmdlet
{
    /// <summary><para type="description">Ids of the sessions to remove; absent: every session.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, uint.MaxValue)]
    public uint[]? Id { get; set; }

    /// <summary><para type="description">Return the session count afterwards.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(SocketPath, () =>
        {
            var ids = Id is { Length: > 0 } given ? given : [0u];
            if (!ShouldProcess($"the datapath at {SocketPath}", Id is { Length: > 0 } ? $"Remove sessions {string.Join(", ", ids)}" : "Remove every session")) return;
            using var client = OpenClient();
            foreach (var id in ids) client.Apply(DpRequests.ClearSession(id));
            if (PassThru) WriteObject(client.CountSessions());
        });
    }
}

/// <summary>
/// <para type="synopsis">Sends one raw control message to the datapath and reports whether it was applied; with -ExpectReply, returns its replies.</para>
/// <para type="description">The message is a JSON object whose keys are commands (NeuVector's protocol), given as a JSON string (sent byte for byte, even when it is not valid JSON), as a hashtable or object (converted to JSON; use [ordered]@{} to keep several commands in order), or as bytes. After sending it, the cmdlet asks nvr-dp whether the message was applied and reports a rejection as an error with the datapath's reason; the datapath applies a message completely or not at all. -ExpectReply returns the replies the message produced, decoded: keep-alive answers, session counts, sessions, device counters, nvr-dp's state; any other reply kind as bytes.</para>
/// </summary>
/// <example><code>Send-DpMessage '{"ctrl_keep_alive": {"seq_num": 7}}' -ExpectReply</code><para>Sends a keep-alive and returns its answer (Sequence 7).</para></example>
/// <example><code>Send-DpMessage ([ordered]@{ ctrl_sys_conf = @{ xff_enabled = $true } }) -ControlSocket $dp.ControlSocket</code><para>Switches X-Forwarded-For handling on; an error says why if the datapath rejects it.</para></example>
[Cmdlet(VerbsCommunications.Send, "DpMessage", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DpKeepAlive), typeof(DpSessionCount), typeof(DpSession), typeof(DpDeviceCounters), typeof(DatapathInfo), typeof(DpReply))]
public sealed class SendDpMessageCommand : DpCmdlet
{
    /// <summary><para type="description">The message: a JSON string, a hashtable or object, or bytes.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    public object Message { get; set; } = "";

    /// <summary><para type="description">Return the replies the message produced; an error when it produced none.</para></summary>
    [Parameter] public SwitchParameter ExpectReply { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(SocketPath, () =>
        {
            var datagram = DpMessageJson.ToDatagram(Message);
            var commands = DpRequests.Commands(datagram);
            if (!ShouldProcess($"the datapath at {SocketPath}", $"Send {(commands.Count > 0 ? string.Join(", ", commands) : $"a message of {datagram.Length} bytes")}")) return;
            using var client = OpenClient();
            var result = client.Exchange(datagram);
            if (result.Accepted == false) throw new DatapathRejectedException(SocketPath, result.Error ?? "no reason given");
            if (result.Accepted == null) WriteWarning($"The datapath at {SocketPath} does not say whether it applied the message (it does not support nvr_get_state).");
            else if (result.Error != null) WriteWarning($"The datapath applied the message, but: {result.Error}");
            WriteVerbose($"{result.Replies.Count} reply datagram(s)");
            if (!ExpectReply) return;
            if (result.Replies.Count == 0)
                throw new DatapathNoReplyException($"the datapath at {SocketPath} applied the message but sent no reply (only queries such as ctrl_keep_alive, ctrl_count_session, ctrl_list_session, ctrl_counter_device and nvr_get_state answer)");
            foreach (var reply in DecodeReplies(result.Replies, SocketPath)) WriteObject(reply);
        });
    }

    private static IEnumerable<object> DecodeReplies(IReadOnlyList<byte[]> replies, string socket)
    {
        var state = new List<byte[]>();
        foreach (var d in replies)
        {
            var (kind, more) = DpReplyReader.Header(d);
            switch (kind)
            {
                case MessageKind.KeepAlive: yield return new DpKeepAlive { ControlSocket = socket, Sequence = DpReplyReader.KeepAlive(d) }; break;
                case MessageKind.SessionCount: yield return DpReplyReader.SessionCount(d, socket); break;
                case MessageKind.DeviceCounter: yield return DpReplyReader.DeviceCounters(d, socket); break;
                case MessageKind.SessionList: foreach (var s in DpReplyReader.SessionList(d, socket, out _)) yield return s; break;
                case MessageKind.State:
                    state.Add(d);
                    if (!more)
                    {
                        yield return DpReplyReader.State(DpReplyReader.JoinState(state), out _, out _);
                        state.Clear();
                    }
                    break;
                default: yield return new DpReply { ControlSocket = socket, Kind = kind, More = more, Bytes = d }; break;
            }
        }
    }
}

/// <summary>Turns a PowerShell value into a control datagram: strings and bytes as they are, hashtables and objects as JSON.</summary>
internal static class DpMessageJson
{
    private const int MaxDepth = 32;

    public static byte[] ToDatagram(object? message)
    {
        var value = Unwrap(message);
        switch (value)
        {
            case string s: return System.Text.Encoding.UTF8.GetBytes(s);
            case byte[] b: return b;
            case IDictionary or PSObject:
                var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
                using (var w = new System.Text.Json.Utf8JsonWriter(buffer)) Write(w, value, 0);
                return buffer.WrittenSpan.ToArray();
            default:
                throw new ArgumentException($"-Message must be a JSON string, a hashtable or object, or bytes; got {value?.GetType().Name ?? "null"}.");
        }
    }

    // a PSObject wrapping a .NET value stands for that value; a PSCustomObject stays a PSObject (its note properties)
    private static object? Unwrap(object? v) => v is PSObject p && p.BaseObject is not PSCustomObject ? p.BaseObject : v;

    private static void Write(System.Text.Json.Utf8JsonWriter w, object? value, int depth)
    {
        if (depth > MaxDepth) throw new ArgumentException($"-Message nests deeper than {MaxDepth} levels.");
        switch (Unwrap(value))
        {
            case null: w.WriteNullValue(); break;
            case string s: w.WriteStringValue(s); break;
            case char c: w.WriteStringValue(c.ToString()); break;
            case bool b: w.WriteBooleanValue(b); break;
            case byte or sbyte or short or ushort or int or uint or long: w.WriteNumberValue(Convert.ToInt64(Unwrap(value), System.Globalization.CultureInfo.InvariantCulture)); break;
            case ulong u: w.WriteNumberValue(u); break;
            case decimal m: w.WriteNumberValue(m); break;
            case double or float:
                var d = Convert.ToDouble(Unwrap(value), System.Globalization.CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d)) throw new ArgumentException("-Message holds a number JSON cannot express (NaN or infinity).");
                w.WriteNumberValue(d);
                break;
            case IDictionary dict:
                w.WriteStartObject();
                foreach (DictionaryEntry e in dict)
                {
                    w.WritePropertyName(Convert.ToString(Unwrap(e.Key), System.Globalization.CultureInfo.InvariantCulture) ?? "");
                    Write(w, e.Value, depth + 1);
                }
                w.WriteEndObject();
                break;
            case PSObject custom:
                w.WriteStartObject();
                foreach (var p in custom.Properties)
                {
                    w.WritePropertyName(p.Name);
                    Write(w, p.Value, depth + 1);
                }
                w.WriteEndObject();
                break;
            case IEnumerable list:
                w.WriteStartArray();
                foreach (var item in list) Write(w, item, depth + 1);
                w.WriteEndArray();
                break;
            case var other: w.WriteStringValue(Convert.ToString(other, System.Globalization.CultureInfo.InvariantCulture)); break;
        }
    }
}
