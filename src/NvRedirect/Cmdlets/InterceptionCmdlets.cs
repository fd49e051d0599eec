using System;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Model;

namespace NvRedirect.Cmdlets;

/// <summary>
/// <para type="synopsis">Intercepts a workload: steers its unicast IPv4 through the monitor pair (vbr/vth) where the datapath decides what passes.</para>
/// <para type="description">Ensures ingress qdiscs on the entry (vex), inner (vin) and monitor (vbr) ports and installs the seed's six rules, NeuVector's Protect-mode wiring: unicast IPv4 to or from the workload MAC gets the workload's "NeuV" alias (ucmac) and is mirrored to vbr; frames the datapath writes back on vth get the real MAC again and continue to the workload or to the host side; everything else (ARP, broadcast) passes straight through. The MAC rewrite uses u32 + pedit (byte for byte the seed's tc filters) where the kernel has act_pedit, or cls_bpf programs where it does not (-Backend Auto, the default, probes and says which and why). Idempotent: running it again changes nothing and says so. Every rule is tagged with the workload MAC, so listing and removal only ever touch this workload's rules. Segmentation and checksum offloads are switched off on the agent-side ports (vex, vin, vbr, vth) unless -KeepOffloads.</para>
/// </summary>
/// <example><code>Add-WorkloadInterception -Namespace agent-ns -WorkloadMac 1a:27:f3:87:3a:27</code><para>Intercepts the workload behind vex/vin with the default ports, a ucmac derived from vex's ifindex, and the backend the kernel supports.</para></example>
/// <example><code>Add-WorkloadInterception -Namespace agent-ns -EntryLink vex -InnerLink vin -MonitorLink vbr -WorkloadMac 1a:27:f3:87:3a:27 -UcMac 4e:65:75:56:00:b4 -ToWorkloadPriority 5 -FromWorkloadPriority 172 -Backend Pedit</code><para>The seed's exact rules (fails with a clear message on a kernel without act_pedit).</para></example>
[Cmdlet(VerbsCommon.Add, "WorkloadInterception", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(InterceptionInfo))]
public sealed class AddWorkloadInterceptionCommand : NvCmdlet
{
    /// <summary><para type="description">The agent namespace holding the entry, inner and monitor ports; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">The workload's MAC address (the container interface's), e.g. 1a:27:f3:87:3a:27.</para></summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true)]
    public string WorkloadMac { get; set; } = "";

    /// <summary><para type="description">The entry port, where traffic from the host side arrives (default vex).</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string EntryLink { get; set; } = "vex";

    /// <summary><para type="description">The inner port, whose peer is the workload's interface (default vin).</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string InnerLink { get; set; } = "vin";

    /// <summary><para type="description">The monitor port, whose peer (vth) is where the datapath runs (default vbr).</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string MonitorLink { get; set; } = "vbr";

    /// <summary><para type="description">The workload's alias towards the datapath; it must start with 4e:65:75:56 ("NeuV"). Default: 4e:65:75:56:HI:LO of the entry port's ifindex, as NeuVector derives it.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? UcMac { get; set; }

    /// <summary><para type="description">Auto (default): Pedit where the kernel has act_pedit, Bpf otherwise. Pedit: u32 + pedit + mirred, the seed's exact filters. Bpf: cls_bpf direct-action programs with the same match, rewrite and mirror.</para></summary>
    [Parameter]
    public InterceptionBackend Backend { get; set; } = InterceptionBackend.Auto;

    /// <summary><para type="description">pref of the monitor-port rule that returns frames to the workload (the seed uses 5); default: the entry port's ifindex.</para></summary>
    [Parameter]
    [ValidateRange(1, 65535)]
    public int? ToWorkloadPriority { get; set; }

    /// <summary><para type="description">pref of the monitor-port rule that returns frames to the host side (the seed uses 172); default: the inner port's ifindex.</para></summary>
    [Parameter]
    [ValidateRange(1, 65535)]
    public int? FromWorkloadPriority { get; set; }

    /// <summary><para type="description">Leave checksum and segmentation offloads as they are on the agent-side ports.</para></summary>
    [Parameter]
    public SwitchParameter KeepOffloads { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(WorkloadMac, () =>
        {
            var request = new InterceptionRequest
            {
                Namespace = ns, EntryLink = EntryLink, InnerLink = InnerLink, MonitorLink = MonitorLink,
                WorkloadMac = Parse.Mac(WorkloadMac, "workload MAC"), UcMac = UcMac == null ? null : Parse.Mac(UcMac, "ucmac"),
                Backend = Backend, ToWorkloadPriority = (ushort?)ToWorkloadPriority, FromWorkloadPriority = (ushort?)FromWorkloadPriority,
                KeepOffloads = KeepOffloads,
            };
            if (!ShouldProcess($"{WorkloadMac} via {EntryLink}/{InnerLink}/{MonitorLink} in {Where(ns)}", "Intercept workload")) return;
            WriteObject(Interception.Add(request));
        });
    }
}

/// <summary>
/// <para type="synopsis">Lists the intercepted workloads of a namespace.</para>
/// <para type="description">Rebuilds each interception from the tagged tc rules on the namespace's devices: workload MAC, ucmac, ports, backend, monitor-port prefs and the rules themselves. Rules installed by anyone else are never shown.</para>
/// </summary>
/// <example><code>Get-WorkloadInterception -Namespace agent-ns</code><para>Lists every workload intercepted in agent-ns.</para></example>
/// <example><code>Get-WorkloadInterception -Namespace agent-ns | Select-Object -ExpandProperty Rules | Format-Table Role, LinkName, Priority, Kind</code><para>Shows each interception's six rules.</para></example>
[Cmdlet(VerbsCommon.Get, "WorkloadInterception")]
[OutputType(typeof(InterceptionInfo))]
public sealed class GetWorkloadInterceptionCommand : NvCmdlet
{
    /// <summary><para type="description">The agent namespace; the root namespace when absent (a namespace object binds here).</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Only the interception of this workload MAC.</para></summary>
    [Parameter]
    public string? WorkloadMac { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(ns, () =>
        {
            string? mac = WorkloadMac == null ? null : Parse.Mac(Parse.Mac(WorkloadMac, "workload MAC"));
            foreach (var i in Interception.List(ns).Where(i => mac == null || i.WorkloadMac == mac)) WriteObject(i);
        });
    }
}

/// <summary>
/// <para type="synopsis">Removes a workload's interception: exactly its six rules, nothing else.</para>
/// <para type="description">Finds the rules by the workload's tag and removes them; rules of other workloads and filters installed by others stay, and so do the ingress qdiscs. In the seed topology vex and vin have no other path between them, so after the removal nothing reaches the workload through them until it is intercepted again.</para>
/// </summary>
/// <example><code>Get-WorkloadInterception -Namespace agent-ns | Remove-WorkloadInterception</code><para>Removes every interception of agent-ns.</para></example>
/// <example><code>Remove-WorkloadInterception -Namespace agent-ns -WorkloadMac 1a:27:f3:87:3a:27 -WhatIf</code><para>Shows what would be removed.</para></example>
[Cmdlet(VerbsCommon.Remove, "WorkloadInterception", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(InterceptionRule))]
public sealed class RemoveWorkloadInterceptionCommand : NvCmdlet
{
    /// <summary><para type="description">The agent namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">The workload whose rules to remove.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    public string WorkloadMac { get; set; } = "";

    /// <summary><para type="description">Return the removed rules.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(WorkloadMac, () =>
        {
            var mac = Parse.Mac(WorkloadMac, "workload MAC");
            var existing = Interception.List(ns).FirstOrDefault(i => i.WorkloadMac == Parse.Mac(mac));
            if (existing == null)
                throw new ItemNotFoundException($"No interception of {Parse.Mac(mac)} in {Where(ns)}; list them with Get-WorkloadInterception.");
            if (!ShouldProcess($"{Parse.Mac(mac)} in {Where(ns)}", $"Remove {existing.Rules.Count} interception rules")) return;
            var removed = Interception.Remove(ns, mac);
            if (PassThru) WriteObject(removed, enumerateCollection: true);
        });
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
