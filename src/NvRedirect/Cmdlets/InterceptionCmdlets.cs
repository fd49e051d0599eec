using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Model;

using NvRedirect.Core.Namespaces;

namespace NvRedirect.Cmdlets;

/// <summary>What the three interception cmdlets share: naming a workload by process, namespace path or container.</summary>
public abstract class WorkloadTargetCmdlet : NvCmdlet
{
    /// <summary>The parameter set names.</summary>
    protected const string MacSet = "WorkloadMac", PidSet = "ProcessId", PathSet = "NetnsPath", ContainerSet = "Container";

    /// <summary><para type="description">A process of the container (any: they share its network namespace); `podman ps`-like objects bind their Pid here.</para></summary>
    [Parameter(Mandatory = true, ParameterSetName = PidSet, ValueFromPipelineByPropertyName = true)]
    [Alias("Pid")]
    [ValidateRange(1, int.MaxValue)]
    public int[]? ProcessId { get; set; }

    /// <summary><para type="description">The container's network namespace as a file: /proc/PID/ns/net, /run/netns/NAME, /run/docker/netns/ID or any other bind mount of it.</para></summary>
    [Parameter(Mandatory = true, ParameterSetName = PathSet, ValueFromPipelineByPropertyName = true)]
    public string? NetnsPath { get; set; }

    /// <summary><para type="description">podman or docker container names or ids; each is resolved with `podman inspect --type container` when podman is installed, else (or when podman does not know it) `docker inspect --type container`, whose .State.Pid names the namespace. Objects with an Id property (podman ps --format json, docker ps) bind here.</para></summary>
    [Parameter(Mandatory = true, ParameterSetName = ContainerSet, ValueFromPipelineByPropertyName = true)]
    [Alias("Id")]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[]? Container { get; set; }

    /// <summary>Whether the workload was named by process, path or container (not by MAC).</summary>
    protected bool ByTarget => ParameterSetName != MacSet;

    /// <summary>The targets named in this pipeline item, each resolved (or its failure reported) in turn.</summary>
    protected IEnumerable<(object Label, Func<WorkloadTarget> Resolve)> Targets()
    {
        switch (ParameterSetName)
        {
            case PidSet:
                foreach (var pid in ProcessId!) yield return (pid, () => WorkloadTarget.FromProcessId(pid));
                break;
            case PathSet:
                var path = GetUnresolvedProviderPathFromPSPath(NetnsPath!);
                yield return (path, () => WorkloadTarget.FromNetnsPath(path));
                break;
            case ContainerSet:
                foreach (var c in Container!) yield return (c, () => WorkloadTarget.FromContainer(c));
                break;
        }
    }
}

/// <summary>
/// <para type="synopsis">Intercepts a workload: a running container by process, namespace path or name (its interfaces taken over into an enforcer namespace), or a lab workload by MAC.</para>
/// <para type="description">With -ProcessId, -NetnsPath or -Container, takes the container's interfaces over NeuVector's way, in one operation per container: each interface (all Ethernet interfaces unless -Interface) is moved into the enforcer namespace (-Namespace, default nvr-enforcer, created on first use with its vbr/vth monitor pair) as its entry port nvxHHHHHHHHHH; a new veth takes its place in the container with the same name, ifindex, MAC, MTU, queue length, offload features, addresses (with broadcast, scope, flags and lifetimes), routes of every table, permanent neighbours and up state, its peer nviHHHHHHHHHH being the inner port; the workload is registered inline with the datapath running in the enforcer (-ControlSocket, else the one found there, else one started with Start-Datapath's defaults) and -Mode sets its mode in the same call; then the eight steering rules are installed (the seed's six, and two that steer IPv6 the same way). The host side is not touched. Port names and tc prefs are derived per workload (from the namespace inode and interface name, and from ifindexes), so hundreds of workloads fit in one enforcer. A failure at any step undoes the steps before it and names the step with the kernel's message. Running it again on a taken-over container changes nothing (but the mode). The entry port's ifalias records the container's identity, so Get-WorkloadInterception finds it from the kernel alone.</para>
/// <para type="description">With -WorkloadMac (lab topologies such as New-SeedTopology's): ensures ingress qdiscs on the entry (vex), inner (vin) and monitor (vbr) ports and installs the seed's six rules, NeuVector's Protect-mode wiring, and two more that do the same for IPv6 (NeuVector steers IPv4 only): unicast IPv4 and IPv6 to or from the workload MAC gets the workload's "NeuV" alias (ucmac) and is mirrored to vbr; frames the datapath writes back on vth get the real MAC again and continue to the workload or to the host side; everything else (ARP, broadcast) passes straight through. The MAC rewrite uses u32 + pedit (byte for byte the seed's tc filters) where the kernel has act_pedit, or cls_bpf programs where it does not (-Backend Auto, the default, probes and says which and why). Idempotent: running it again changes nothing and says so. Every rule is tagged with the workload MAC, so listing and removal only ever touch this workload's rules. The entry port gets two alternative names (`ip link` shows them as altname nvr-ic-MAC and nvr-ic-MAC-TO-FROM-INNER-MONITOR) that index the interception, so Get-WorkloadInterception -WorkloadMac and Remove-WorkloadInterception find one workload without reading every other's rules; removal takes them away. A pipeline allocates against the monitor port's rules read once. Segmentation and checksum offloads are switched off on the agent-side ports (vex, vin, vbr, vth) unless -KeepOffloads.</para>
/// </summary>
/// <example><code>Add-WorkloadInterception -Container web -Mode Discover</code><para>Takes over every interface of the podman (or docker) container web into nvr-enforcer, registers it with the datapath there (starting one if none runs) and lets it learn.</para></example>
/// <example><code>podman ps --format json | ConvertFrom-Json | Add-WorkloadInterception -Namespace enf1 -Mode Protect -ControlSocket /tmp/enf1.sock</code><para>Protects every running podman container: each object's Id binds to -Container.</para></example>
/// <example><code>Add-WorkloadInterception -ProcessId 4242 -Interface eth0</code><para>Takes over eth0 of the network namespace of process 4242 (a container made with unshare --net, say).</para></example>
/// <example><code>Add-WorkloadInterception -Namespace agent-ns -WorkloadMac 1a:27:f3:87:3a:27</code><para>Intercepts the lab workload behind vex/vin with the default ports, a ucmac derived from vex's ifindex, and the backend the kernel supports.</para></example>
/// <example><code>Add-WorkloadInterception -Namespace agent-ns -EntryLink vex -InnerLink vin -MonitorLink vbr -WorkloadMac 1a:27:f3:87:3a:27 -UcMac 4e:65:75:56:00:b4 -ToWorkloadPriority 5 -FromWorkloadPriority 172 -Backend Pedit</code><para>The seed's exact rules (fails with a clear message on a kernel without act_pedit).</para></example>
[Cmdlet(VerbsCommon.Add, "WorkloadInterception", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = MacSet)]
[OutputType(typeof(InterceptionInfo))]
public sealed class AddWorkloadInterceptionCommand : WorkloadTargetCmdlet
{
    /// <summary><para type="description">The agent (enforcer) namespace holding the entry, inner and monitor ports. For a lab workload (-WorkloadMac) the root namespace when absent; for a container, nvr-enforcer when absent, created on first use.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">The workload's MAC address (the container interface's), e.g. 1a:27:f3:87:3a:27.</para></summary>
    [Parameter(Mandatory = true, ParameterSetName = MacSet, ValueFromPipelineByPropertyName = true)]
    public string WorkloadMac { get; set; } = "";

    /// <summary><para type="description">The entry port, where traffic from the host side arrives (default vex).</para></summary>
    [Parameter(ParameterSetName = MacSet, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string EntryLink { get; set; } = "vex";

    /// <summary><para type="description">The inner port, whose peer is the workload's interface (default vin).</para></summary>
    [Parameter(ParameterSetName = MacSet, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string InnerLink { get; set; } = "vin";

    /// <summary><para type="description">The monitor port, whose peer (vth) is where the datapath runs (default vbr).</para></summary>
    [Parameter(ParameterSetName = MacSet, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string MonitorLink { get; set; } = "vbr";

    /// <summary><para type="description">The workload's alias towards the datapath; it must start with 4e:65:75:56 ("NeuV"). Default: 4e:65:75:56:HI:LO of the entry port's ifindex, as NeuVector derives it, or the next free one when another workload of the namespace has that (the workload's own ucmac when it is intercepted already). An explicit ucmac another workload has is refused (UcMacInUse, naming it) and nothing is changed.</para></summary>
    [Parameter(ParameterSetName = MacSet, ValueFromPipelineByPropertyName = true)]
    public string? UcMac { get; set; }

    /// <summary><para type="description">Auto (default): Pedit where the kernel has act_pedit, Bpf otherwise. Pedit: u32 + pedit + mirred, the seed's exact filters. Bpf: cls_bpf direct-action programs with the same match, rewrite and mirror.</para></summary>
    [Parameter]
    public InterceptionBackend Backend { get; set; } = InterceptionBackend.Auto;

    /// <summary><para type="description">pref of the monitor-port rule that returns frames to the workload (the seed uses 5); default: the entry port's ifindex, or the next free pref of the monitor port when that is taken. An explicit pref that holds another workload's or anyone else's filter is refused (PriorityInUse, naming the workload) and nothing is changed.</para></summary>
    [Parameter(ParameterSetName = MacSet)]
    [ValidateRange(1, 65535)]
    public int? ToWorkloadPriority { get; set; }

    /// <summary><para type="description">pref of the monitor-port rule that returns frames to the host side (the seed uses 172); default: the inner port's ifindex, or the next free pref of the monitor port when that is taken. An explicit pref in use is refused as with -ToWorkloadPriority.</para></summary>
    [Parameter(ParameterSetName = MacSet)]
    [ValidateRange(1, 65535)]
    public int? FromWorkloadPriority { get; set; }

    /// <summary><para type="description">The kernel fast path (docs/datapath.md, "The kernel fast path"): a cls_bpf program on the entry and inner ports, ahead of the steering rules (pref 10000), forwards the packets of connections the datapath allowed straight to the other port, and the datapath sees only their first packets, SYN/FIN/RST and whatever it has not published. On by default where the kernel loads the program (FastPathReason says why it is on or off); -FastPath requires it (an error on a kernel without it, nothing changed); -FastPath:$false installs the interception without it and removes one that is there.</para></summary>
    [Parameter]
    public SwitchParameter FastPath { get; set; }

    /// <summary><para type="description">Leave checksum and segmentation offloads as they are on the agent-side ports.</para></summary>
    [Parameter(ParameterSetName = MacSet)]
    public SwitchParameter KeepOffloads { get; set; }

    /// <summary><para type="description">Only these interfaces of the container (default: every Ethernet interface).</para></summary>
    [Parameter(ParameterSetName = PidSet)]
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = ContainerSet)]
    public string[]? Interface { get; set; }

    /// <summary><para type="description">Discover, Monitor or Protect: the workload's mode in the datapath, set in the same call (see Set-DpWorkloadMode). Absent: the datapath's default for a new workload (no policy: everything passes).</para></summary>
    [Parameter(ParameterSetName = PidSet)]
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = ContainerSet)]
    [ValidateSet("Discover", "Monitor", "Protect")]
    public DpWorkloadMode? Mode { get; set; }

    /// <summary><para type="description">The control socket of the enforcer's datapath: used when a datapath answers there, else one is started there. Absent: the datapath running in the enforcer namespace, else one started with Start-Datapath's defaults (strict semantics, supervised, on /run/nvredirect/dp-NAMESPACE.sock).</para></summary>
    [Parameter(ParameterSetName = PidSet)]
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = ContainerSet)]
    [ArgumentCompleter(typeof(ControlSocketCompleter))]
    public string? ControlSocket { get; set; }

    // what the monitor ports hold, read once per pipeline and kept up to date with what this command installs
    private readonly InterceptionAllocator _allocator = new();

    /// <summary><para type="description">Install the rules only and register the workload with no datapath (its steered traffic then stops until a datapath serves vth).</para></summary>
    [Parameter(ParameterSetName = PidSet)]
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = ContainerSet)]
    public SwitchParameter NoDatapath { get; set; }

    // absent: on where supported; -FastPath: required; -FastPath:$false: off
    private bool? FastPathChoice => MyInvocation.BoundParameters.ContainsKey(nameof(FastPath)) ? FastPath.IsPresent : null;

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        if (ByTarget)
        {
            var enforcer = string.IsNullOrEmpty(Namespace) ? ContainerTakeover.DefaultEnforcer : Namespace;
            foreach (var (label, resolve) in Targets())
                Try(label, () =>
                {
                    var target = resolve();
                    var request = new TakeoverRequest
                    {
                        Target = target, Enforcer = enforcer, Interfaces = Interface, Backend = Backend, Mode = Mode, NoDatapath = NoDatapath, FastPath = FastPathChoice, Allocator = _allocator,
                        ControlSocket = ControlSocket == null ? null : GetUnresolvedProviderPathFromPSPath(ControlSocket),
                    };
                    var which = Interface is { Length: > 0 } ? string.Join(", ", Interface) : "every interface";
                    if (!ShouldProcess($"{which} of {target.Display} into namespace {enforcer}", "Take over and intercept")) return;
                    WriteObject(ContainerTakeover.TakeOver(request), enumerateCollection: true);
                });
            return;
        }
        var ns = Namespace ?? "";
        Try(WorkloadMac, () =>
        {
            var request = new InterceptionRequest
            {
                Namespace = ns, EntryLink = EntryLink, InnerLink = InnerLink, MonitorLink = MonitorLink,
                WorkloadMac = Parse.Mac(WorkloadMac, "workload MAC"), UcMac = UcMac == null ? null : Parse.Mac(UcMac, "ucmac"),
                Backend = Backend, ToWorkloadPriority = (ushort?)ToWorkloadPriority, FromWorkloadPriority = (ushort?)FromWorkloadPriority,
                KeepOffloads = KeepOffloads, FastPath = FastPathChoice,
            };
            if (!ShouldProcess($"{WorkloadMac} via {EntryLink}/{InnerLink}/{MonitorLink} in {Where(ns)}", "Intercept workload")) return;
            WriteObject(Interception.Add(request, _allocator));
        });
    }
}

/// <summary>
/// <para type="synopsis">Lists the intercepted workloads of a namespace, taken-over containers with their identity, from the kernel and the datapath.</para>
/// <para type="description">Rebuilds each interception from the tagged tc rules on the namespace's devices: workload MAC, ucmac, ports, backend, monitor-port prefs and the rules themselves. Rules installed by anyone else are never shown. A taken-over container is found by the mark on its entry port (ifalias) and shown with its interface, ifindex, namespace path and inode, pid, runtime, name and id, the datapath it is registered with (ControlSocket) and its mode there; when its container exited (its namespace or inner port is gone) it is marked IsOrphaned, and Remove-WorkloadInterception cleans it up. Without -Namespace: the root namespace and, when it exists, nvr-enforcer. -ProcessId, -NetnsPath or -Container keep the workloads of that container.</para>
/// </summary>
/// <example><code>Get-WorkloadInterception -Namespace agent-ns</code><para>Lists every workload intercepted in agent-ns.</para></example>
/// <example><code>Get-WorkloadInterception -Container web | Set-DpWorkloadMode -Mode Protect</code><para>Protects the taken-over container web: the interception's WorkloadMac and ControlSocket bind to Set-DpWorkloadMode.</para></example>
/// <example><code>Get-WorkloadInterception | Where-Object IsOrphaned | Remove-WorkloadInterception</code><para>Removes what is left of containers that exited while intercepted.</para></example>
[Cmdlet(VerbsCommon.Get, "WorkloadInterception", DefaultParameterSetName = MacSet)]
[OutputType(typeof(InterceptionInfo))]
public sealed class GetWorkloadInterceptionCommand : WorkloadTargetCmdlet
{
    /// <summary><para type="description">The agent (enforcer) namespace; absent: the root namespace and nvr-enforcer (a namespace object binds here).</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Only the interception of this workload MAC.</para></summary>
    [Parameter(ParameterSetName = MacSet)]
    public string? WorkloadMac { get; set; }

    private readonly Dictionary<string, InterceptionListing> _listed = new(StringComparer.Ordinal);

    private InterceptionListing Listed(string ns)
        => _listed.TryGetValue(ns, out var l) ? l : _listed[ns] = new InterceptionListing(ContainerTakeover.List(ns));

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var namespaces = Namespace != null ? [Namespace]
            : ByTarget ? [ContainerTakeover.DefaultEnforcer]
            : NvRedirect.Core.Namespaces.NetworkNamespace.Exists(ContainerTakeover.DefaultEnforcer) ? ["", ContainerTakeover.DefaultEnforcer] : new[] { "" };
        if (ByTarget)
        {
            foreach (var (label, resolve) in Targets())
                Try(label, () =>
                {
                    var target = resolve();
                    // from the container's side (its interfaces name their entry ports); else one listing per namespace for the whole pipeline
                    foreach (var ns in namespaces)
                    {
                        var found = ContainerTakeover.FindTakenOver(ns, target);
                        if (found.Count == 0) found = Listed(ns).ByInode.GetValueOrDefault(target.NetnsInode) ?? [];
                        WriteObject(found, enumerateCollection: true);
                    }
                });
            return;
        }
        foreach (var ns in namespaces)
            Try(ns, () =>
            {
                string? mac = WorkloadMac == null ? null : Parse.Mac(Parse.Mac(WorkloadMac, "workload MAC"));
                // one workload: through its entry port's index, not a listing of every workload
                if (mac != null) { if (ContainerTakeover.Find(ns, mac) is { } one) WriteObject(one); }
                else foreach (var i in ContainerTakeover.List(ns)) WriteObject(i);
            });
    }
}

/// <summary>
/// <para type="synopsis">Removes a workload's interception: gives a taken-over container its interfaces back exactly, or removes a lab workload's eight rules.</para>
/// <para type="description">For a taken-over container (by -ProcessId, -NetnsPath, -Container, or piped from Get-WorkloadInterception): deregisters the workload from its datapath, removes its rules, deletes the replacement veth and moves the original interface back under its name and ifindex with the replacement's addresses, routes, permanent neighbours, offload features and up state, so `ip -d link`, `ip addr`, `ip route show table all`, `ip neigh` and `ethtool -k` in the container read as before the take-over. A failure at any step undoes the steps before it and names the step with the kernel's message. For an orphan (the container exited) it removes what is left: the rules and the entry port (with the host-side veth peer). For a lab workload (-WorkloadMac without a take-over mark) it removes exactly its eight rules, found by the workload's tag; rules of other workloads, filters installed by others and the ingress qdiscs stay.</para>
/// </summary>
/// <example><code>Remove-WorkloadInterception -Container web</code><para>Gives the container web its interfaces back (enforcer nvr-enforcer).</para></example>
/// <example><code>Get-WorkloadInterception -Namespace agent-ns | Remove-WorkloadInterception</code><para>Removes every interception of agent-ns, giving taken-over containers back.</para></example>
/// <example><code>Remove-WorkloadInterception -Namespace agent-ns -WorkloadMac 1a:27:f3:87:3a:27 -WhatIf</code><para>Shows what would be removed.</para></example>
[Cmdlet(VerbsCommon.Remove, "WorkloadInterception", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = MacSet)]
[OutputType(typeof(InterceptionRule), typeof(InterceptionInfo))]
public sealed class RemoveWorkloadInterceptionCommand : WorkloadTargetCmdlet
{
    /// <summary><para type="description">The agent (enforcer) namespace; for a lab workload the root namespace when absent, for a container nvr-enforcer.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">The workload whose interception to remove.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = MacSet, ValueFromPipelineByPropertyName = true)]
    public string WorkloadMac { get; set; } = "";

    /// <summary><para type="description">Only these interfaces of the container (default: every taken-over one).</para></summary>
    [Parameter(ParameterSetName = PidSet)]
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = ContainerSet)]
    public string[]? Interface { get; set; }

    /// <summary><para type="description">Return the removed rules (lab workload) or the interceptions given back (container).</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    // one listing per namespace for the life of the pipeline; what this command removes is dropped from it
    private readonly Dictionary<string, InterceptionListing> _listed = new(StringComparer.Ordinal);

    private InterceptionListing Listed(string ns)
        => _listed.TryGetValue(ns, out var l) ? l : _listed[ns] = new InterceptionListing(ContainerTakeover.List(ns, withDatapath: false));

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        if (ByTarget)
        {
            var enforcer = string.IsNullOrEmpty(Namespace) ? ContainerTakeover.DefaultEnforcer : Namespace;
            foreach (var (label, resolve) in Targets())
                Try(label, () =>
                {
                    var target = resolve();
                    // from the container's side (its interfaces name their entry ports); else one listing for the whole pipeline
                    var all = ContainerTakeover.FindTakenOver(enforcer, target, withDatapath: false);
                    if (all.Count == 0) all = Listed(enforcer).ByInode.GetValueOrDefault(target.NetnsInode) ?? [];
                    var found = all.Where(i => Interface is not { Length: > 0 } || Interface.Contains(i.Interface)).ToList();
                    if (found.Count == 0)
                        throw new ItemNotFoundException($"No interface of {target.Display} is taken over in namespace {enforcer}; list them with Get-WorkloadInterception -Namespace {enforcer}.");
                    // in ifindex order, as a runtime made them: the kernel then lists their routes in the order it did before
                    foreach (var i in found.OrderBy(i => i.InterfaceIndex)) GiveBack(i);
                });
            return;
        }
        var ns = Namespace ?? "";
        Try(WorkloadMac, () =>
        {
            var mac = Parse.Mac(WorkloadMac, "workload MAC");
            // through the entry port's index (a listing only when there is none): the same cost for the 1st and the 1000th
            var existing = ContainerTakeover.Find(ns, Parse.Mac(mac), withDatapath: false);
            if (existing == null)
                throw new ItemNotFoundException($"No interception of {Parse.Mac(mac)} in {Where(ns)}; list them with Get-WorkloadInterception.");
            if (existing.Interface != null) { GiveBack(existing); return; }
            if (!ShouldProcess($"{Parse.Mac(mac)} in {Where(ns)}", $"Remove {existing.Rules.Count} interception rules")) return;
            // the rules where the listing saw them, pref by pref (no dump of every device per removal)
            var removed = Interception.Remove(existing);
            if (PassThru) WriteObject(removed, enumerateCollection: true);
        });
    }

    private void GiveBack(InterceptionInfo i)
    {
        var what = i.IsOrphaned ? $"Remove the orphaned entry port {i.EntryLink} and its rules" : $"Give {i.Interface} back (entry port {i.EntryLink})";
        if (!ShouldProcess($"{i.WorkloadMac} of {(i.ContainerName ?? (i.ProcessId is int p ? $"process {p}" : i.NetnsPath))} in namespace {i.Namespace}", what)) return;
        ContainerTakeover.GiveBack(i);
        if (_listed.TryGetValue(i.Namespace, out var listed)) listed.Forget(i);
        if (PassThru) WriteObject(i);
    }
}

/// <summary>One listing of a namespace's interceptions, indexed by container namespace inode, for the life of a pipeline.</summary>
internal sealed class InterceptionListing
{
    /// <summary>A taken-over container's interceptions, by its namespace inode.</summary>
    public Dictionary<ulong, List<InterceptionInfo>> ByInode { get; } = new();

    public InterceptionListing(IEnumerable<InterceptionInfo> listed)
    {
        foreach (var i in listed)
        {
            if (i.NetnsInode is ulong inode) (ByInode.TryGetValue(inode, out var l) ? l : ByInode[inode] = []).Add(i);
        }
    }

    /// <summary>Drops an interception this command removed.</summary>
    public void Forget(InterceptionInfo i)
    {
        if (i.NetnsInode is ulong inode && ByInode.TryGetValue(inode, out var l)) l.RemoveAll(x => x.EntryLink == i.EntryLink);
    }
}

/// <summary>
/// <para type="synopsis">Builds the seed's whole topology in one command: namespaces, veth pairs, addresses and the interception.</para>
/// <para type="description">Creates agent-ns and container-ns, the vex/vex-peer, vin/vin-peer (renamed eth0 in the container, with the seed's MAC 1a:27:f3:87:3a:27) and vbr/vth pairs, brings everything up, adds 10.10.10.66/24 on the host side and 10.10.10.88/24 in the container, and intercepts the container with the seed's ucmac (4e:65:75:56:00:b4) and monitor prefs (5 and 172). By default the host side (vex-peer) lives in a third namespace, host-ns, so trying the module never touches this machine's addresses or routes; -InRootNamespace puts it in the root namespace exactly as the seed does. Built from the module's own operations (no ip, no tc); either everything is built or nothing is left.</para>
/// </summary>
/// <example><code>$lab = New-SeedTopology; ip netns exec host-ns ping -c1 10.10.10.88</code><para>Builds the seed; the ping fails until a datapath (or a bounce) runs on vth, because unicast IPv4 to the container is steered there.</para></example>
/// <example><code>New-SeedTopology -AgentNamespace a1 -ContainerNamespace c1 -HostNamespace h1 -Backend Bpf -NoInterception</code><para>Only the namespaces, links and addresses, under other names.</para></example>
[Cmdlet(VerbsCommon.New, "SeedTopology", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(SeedTopologyInfo))]
public sealed class NewSeedTopologyCommand : NvCmdlet
{
    /// <summary><para type="description">The agent namespace (default agent-ns).</para></summary>
    [Parameter] public string AgentNamespace { get; set; } = "agent-ns";
    /// <summary><para type="description">The container namespace (default container-ns).</para></summary>
    [Parameter] public string ContainerNamespace { get; set; } = "container-ns";
    /// <summary><para type="description">The host side's namespace (default host-ns); ignored with -InRootNamespace.</para></summary>
    [Parameter] public string HostNamespace { get; set; } = "host-ns";
    /// <summary><para type="description">Put vex-peer and 10.10.10.66/24 in the root namespace, exactly as the seed does.</para></summary>
    [Parameter] public SwitchParameter InRootNamespace { get; set; }
    /// <summary><para type="description">The container's MAC (default the seed's 1a:27:f3:87:3a:27).</para></summary>
    [Parameter] public string WorkloadMac { get; set; } = "1a:27:f3:87:3a:27";
    /// <summary><para type="description">The ucmac (default the seed's 4e:65:75:56:00:b4).</para></summary>
    [Parameter] public string UcMac { get; set; } = "4e:65:75:56:00:b4";
    /// <summary><para type="description">Host side address (default 10.10.10.66/24).</para></summary>
    [Parameter] public string HostAddress { get; set; } = "10.10.10.66/24";
    /// <summary><para type="description">Container address (default 10.10.10.88/24).</para></summary>
    [Parameter] public string WorkloadAddress { get; set; } = "10.10.10.88/24";
    /// <summary><para type="description">Interception backend: Auto (default), Pedit or Bpf.</para></summary>
    [Parameter] public InterceptionBackend Backend { get; set; } = InterceptionBackend.Auto;
    /// <summary><para type="description">Build the namespaces, links and addresses only.</para></summary>
    [Parameter] public SwitchParameter NoInterception { get; set; }
    /// <summary><para type="description">The interception's kernel fast path, as Add-WorkloadInterception's -FastPath: absent, on where the kernel has it; -FastPath required; -FastPath:$false off.</para></summary>
    [Parameter] public SwitchParameter FastPath { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var hostNs = InRootNamespace ? "" : HostNamespace;
        Try(AgentNamespace, () =>
        {
            var request = new SeedTopologyRequest
            {
                AgentNamespace = AgentNamespace, ContainerNamespace = ContainerNamespace, HostNamespace = hostNs,
                WorkloadMac = Parse.Mac(WorkloadMac, "workload MAC"), UcMac = Parse.Mac(UcMac, "ucmac"),
                HostAddress = HostAddress, WorkloadAddress = WorkloadAddress, Backend = Backend, NoInterception = NoInterception,
                FastPath = MyInvocation.BoundParameters.ContainsKey(nameof(FastPath)) ? FastPath.IsPresent : null,
            };
            Parse.Cidr(HostAddress);
            Parse.Cidr(WorkloadAddress);
            if (!ShouldProcess($"{AgentNamespace}, {ContainerNamespace}, {(hostNs.Length == 0 ? "the root namespace" : hostNs)}", "Build the seed topology")) return;
            WriteObject(SeedTopology.Create(request));
        });
    }
}

/// <summary>
/// <para type="synopsis">Tears down what New-SeedTopology built.</para>
/// <para type="description">Removes the topology's namespaces, which takes every veth, address and rule in them along; with -InRootNamespace also the root namespace's vex-peer (only when its other end is the agent namespace's vex). Missing parts are skipped, so it also cleans up after an interrupted run.</para>
/// </summary>
/// <example><code>New-SeedTopology | Remove-SeedTopology</code><para>Builds and tears down the seed.</para></example>
/// <example><code>Remove-SeedTopology -AgentNamespace agent-ns -ContainerNamespace container-ns -HostNamespace host-ns</code><para>Tears down a topology by its namespace names.</para></example>
[Cmdlet(VerbsCommon.Remove, "SeedTopology", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(string))]
public sealed class RemoveSeedTopologyCommand : NvCmdlet
{
    /// <summary><para type="description">The agent namespace (default agent-ns).</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)] public string AgentNamespace { get; set; } = "agent-ns";
    /// <summary><para type="description">The container namespace (default container-ns).</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)] public string ContainerNamespace { get; set; } = "container-ns";
    /// <summary><para type="description">The host side's namespace (default host-ns); an empty string means the root namespace.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)][AllowEmptyString] public string HostNamespace { get; set; } = "host-ns";
    /// <summary><para type="description">Return the names of what was removed.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(AgentNamespace, () =>
        {
            if (!ShouldProcess($"{AgentNamespace}, {ContainerNamespace}, {(HostNamespace.Length == 0 ? "vex-peer in the root namespace" : HostNamespace)}", "Remove the seed topology")) return;
            var removed = SeedTopology.Remove(AgentNamespace, ContainerNamespace, HostNamespace);
            if (PassThru) WriteObject(removed, enumerateCollection: true);
        });
    }
}
