using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;

namespace NvRedirect.Cmdlets;

/// <summary>Shared plumbing of the link and address cmdlets: one handle cache per command invocation.</summary>
public abstract class LinkCmdletBase : NvCmdlet, IDisposable
{
    private LinkQuery? _query;
    /// <summary>Handles and object building for this invocation.</summary>
    protected LinkQuery Query => _query ??= new LinkQuery();

    /// <summary>
    /// Called after every pipeline item. Namespace sockets stay open for the next item (opening one costs a thread and a
    /// setns round trip); a handle whose namespace was removed or replaced meanwhile is reopened (LinkQuery checks the
    /// namespace's inode). The namespace-id map stays: LinkQuery trusts an id only while its namespace keeps its inode,
    /// and asks the kernel only about namespaces that came or were replaced since.
    /// </summary>
    protected void Reset() => _query?.ForgetNamespaceIds();

    /// <summary>Closes every socket at the end of the pipeline: an open socket would keep its namespace alive.</summary>
    public void Dispose() { _query?.Dispose(); _query = null; GC.SuppressFinalize(this); }
}

/// <summary>
/// <para type="synopsis">Creates a veth pair, like `ip link add NAME type veth peer name PEER [netns NS]`.</para>
/// <para type="description">Both ends are created down in -Namespace (the root namespace by default), or the peer straight inside -PeerNamespace, in one kernel request: either the whole pair exists afterwards or nothing does. Returns the first end.</para>
/// </summary>
/// <example><code>New-AgentLink vin -PeerName vin-peer -Namespace agent-ns -PeerNamespace container-ns</code><para>Creates the pair in one request: vin in agent-ns, vin-peer straight inside container-ns. Both ends start down.</para></example>
/// <example>
/// <code>
/// New-AgentLink veth-host veth-ctr -PeerNamespace container-ns |
///     Set-AgentLink -Up -PassThru
/// </code>
/// <para>Creates veth-host in the root namespace with its peer veth-ctr in container-ns (the two names bind by position), then brings the root end up and shows it.</para>
/// </example>
[Cmdlet(VerbsCommon.New, "AgentLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(AgentLink))]
public sealed class NewAgentLinkCommand : LinkCmdletBase
{
    /// <summary><para type="description">Name of the first end (1-15 bytes, no '/', ':' or white space).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    public string Name { get; set; } = "";

    /// <summary><para type="description">Name of the other end (same rules as -Name); it must differ from -Name when both ends are in the same namespace.</para></summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    public string PeerName { get; set; } = "";

    /// <summary><para type="description">Namespace for the first end (and the peer unless -PeerNamespace is given); empty or absent means the root namespace.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Namespace to create the peer in directly; empty means the root namespace.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? PeerNamespace { get; set; }

    /// <summary><para type="description">Link kind; veth is the only kind so far.</para></summary>
    [Parameter]
    [ValidateSet("veth")]
    public string Kind { get; set; } = "veth";

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        var peerNs = PeerNamespace ?? ns;
        var target = $"{Name} <-> {PeerName} ({Where(ns)}{(peerNs != ns ? $", peer in {Where(peerNs)}" : "")})";
        if (!ShouldProcess(target, "Create veth pair")) return;
        Try(Name, () =>
        {
            Query.Handle(ns).CreateVeth(Name, PeerName, peerNs);
            WriteObject(Query.Link(ns, Name));
        });
        Reset();
    }
}

/// <summary>
/// <para type="synopsis">Lists links (network interfaces) in a namespace, like `ip link show`.</para>
/// <para type="description">Returns one object per link with its namespace, name, index, kind, MAC, MTU, state, veth peer (name, index and namespace, resolved across namespaces) and addresses.</para>
/// </summary>
/// <example><code>Get-AgentLink</code><para>Lists the links of the root namespace (the one this PowerShell runs in).</para></example>
/// <example><code>Get-AgentNamespace agent-ns | Get-AgentLink</code><para>Lists the links of agent-ns; for each veth the output shows its peer and the namespace the peer lives in.</para></example>
/// <example><code>Get-AgentLink v* -Namespace agent-ns -Kind veth | Set-AgentLink -Up</code><para>Brings up every veth in agent-ns whose name starts with v.</para></example>
[Cmdlet(VerbsCommon.Get, "AgentLink")]
[OutputType(typeof(AgentLink))]
public sealed class GetAgentLinkCommand : LinkCmdletBase
{
    /// <summary><para type="description">Link names or wildcard patterns; all links when absent. A name without wildcards that matches no link is reported as an error.</para></summary>
    [Parameter(Position = 0)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary><para type="description">The namespace to list (a namespace object binds here); the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Only links of this kind (veth, bridge...), ignoring case.</para></summary>
    [Parameter]
    public string? Kind { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(ns, () =>
        {
            var links = Query.Links(ns).Where(l => Kind == null || string.Equals(l.Kind, Kind, StringComparison.OrdinalIgnoreCase));
            foreach (var link in Select(links, l => l.Name, Name, n => new LinkNotFoundException(n, ns)))
                WriteObject(link);
        });
        Reset();
    }
}

/// <summary>
/// <para type="synopsis">Changes a link's state, MTU or MAC address, like `ip link set DEV up|down|mtu|address`.</para>
/// <para type="description">Applies the MAC address, then the MTU, then the state. Takes links from the pipeline by Name and Namespace.</para>
/// <para type="description">Give at least one of -Up, -Down, -Mtu, -MacAddress or -Offload (per link: a MacAddress property of the piped object counts); -Up and -Down cannot be combined.</para>
/// </summary>
/// <example><code>Import-Csv workloads.csv | Set-AgentLink -Up</code><para>Sets the MAC of every link the CSV lists (columns Name, Namespace, MacAddress) and brings it up: a topology's MACs in one pipeline.</para></example>
/// <example><code>Get-AgentLink -Namespace agent-ns | Set-AgentLink -Up</code><para>Brings up every link in agent-ns, lo included.</para></example>
/// <example><code>Set-AgentLink vin -Namespace agent-ns -MacAddress 02:00:00:00:00:01 -Mtu 1400 -PassThru</code><para>Gives vin a locally administered MAC address and an MTU of 1400, and returns the changed link.</para></example>
[Cmdlet(VerbsCommon.Set, "AgentLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(AgentLink))]
public sealed class SetAgentLinkCommand : LinkCmdletBase
{
    /// <summary><para type="description">The link to change.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary><para type="description">The link's namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Bring the link up (its administrative state); not together with -Down.</para></summary>
    [Parameter] public SwitchParameter Up { get; set; }
    /// <summary><para type="description">Bring the link down; not together with -Up.</para></summary>
    [Parameter] public SwitchParameter Down { get; set; }

    /// <summary><para type="description">New MTU in bytes (68-65535 for IPv4-capable links; the kernel checks the device's limits).</para></summary>
    [Parameter]
    [ValidateRange(68, 65535)]
    public int? Mtu { get; set; }

    /// <summary><para type="description">New unicast MAC address, e.g. 02:00:00:00:00:01. Binds by property name, so objects with Name, Namespace and MacAddress (Import-Csv rows) set one MAC per link in one pipeline. A MAC equal to the link's current one changes nothing (so `Get-AgentLink | Set-AgentLink -Up`, whose objects carry their own MacAddress, only brings links up); an empty value from the pipeline (a link without a MAC, an empty CSV cell) is taken as absent, an empty -MacAddress on the command line is an error.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? MacAddress { get; set; }

    private bool _macOnCommandLine;

    /// <summary><para type="description">Switch transmit checksum, TCP segmentation, generic segmentation and generic receive offloads on ($true) or off ($false), like `ethtool -K DEV tx off tso off gso off gro off`. An inline datapath needs them off on the ports it intercepts.</para></summary>
    [Parameter]
    public bool? Offload { get; set; }

    /// <summary><para type="description">Return the changed link.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void BeginProcessing()
    {
        _macOnCommandLine = MyInvocation.BoundParameters.ContainsKey(nameof(MacAddress));
        if (Up && Down)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("-Up and -Down cannot be used together: choose one."), "SetAgentLinkUpAndDown", ErrorCategory.InvalidArgument, null));
    }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        // per item: -MacAddress may come from the pipeline, bound only now
        var macText = MacAddress == "" && !_macOnCommandLine ? null : MacAddress;
        if (!Up && !Down && Mtu == null && macText == null && Offload == null)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("Nothing to change: give -Up, -Down, -Mtu, -MacAddress or -Offload."), "SetAgentLinkNothingToDo", ErrorCategory.InvalidArgument, Name));
        var ns = Namespace ?? "";
        Try(Name, () =>
        {
            byte[]? mac = macText == null ? null : Parse.Mac(macText);
            var handle = Query.Handle(ns);
            var link = handle.GetLink(Name);
            if (mac != null && mac.AsSpan().SequenceEqual(link.Address)) mac = null; // already so: no request, not a change
            var changes = string.Join(", ", new[] { mac != null ? "MAC " + MacAddress : null, Mtu != null ? $"MTU {Mtu}" : null, Offload is bool o ? (o ? "offloads on" : "offloads off") : null, Up ? "up" : Down ? "down" : null }.Where(s => s != null));
            if (changes.Length > 0 && !ShouldProcess($"{Name} in {Where(ns)}", $"Set {changes}")) return;
            if (mac != null) handle.SetMacAddress(link, mac);
            if (Mtu is int mtu) handle.SetMtu(link, mtu);
            if (Offload is bool on) Ethtool.Set(ns, link.Name, on, on, on, on);
            if (Up || Down) handle.SetUp(link, Up);
            if (PassThru) WriteObject(Query.Link(ns, Name));
        });
        Reset();
    }
}

/// <summary>
/// <para type="synopsis">Renames a link, like `ip link set DEV name NEW`.</para>
/// <para type="description">Refuses a name already taken in the same namespace before asking the kernel. Works on links that are up (Linux 6.2 and later).</para>
/// </summary>
/// <example><code>Rename-AgentLink vin-peer -NewName eth0 -Namespace container-ns</code><para>Renames vin-peer in container-ns to eth0, the name a container expects for its interface.</para></example>
/// <example><code>Get-AgentLink vin -Namespace agent-ns | Rename-AgentLink -NewName vin0 -PassThru</code><para>Renames the link piped in (its Name and Namespace bind by property name) and returns it under its new name.</para></example>
[Cmdlet(VerbsCommon.Rename, "AgentLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(AgentLink))]
public sealed class RenameAgentLinkCommand : LinkCmdletBase
{
    /// <summary><para type="description">The link to rename.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary><para type="description">The new name (1-15 bytes, no '/', ':' or white space).</para></summary>
    [Parameter(Mandatory = true, Position = 1)]
    public string NewName { get; set; } = "";

    /// <summary><para type="description">The link's namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Return the renamed link.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(Name, () =>
        {
            Parse.ThrowIfInvalidLinkName(NewName, nameof(NewName));
            var handle = Query.Handle(ns);
            var link = handle.GetLink(Name);
            if (!ShouldProcess($"{Name} in {Where(ns)}", $"Rename to {NewName}")) return;
            handle.Rename(link, NewName);
            if (PassThru) WriteObject(Query.Link(ns, NewName));
        });
        Reset();
    }
}

/// <summary>
/// <para type="synopsis">Moves a link to another namespace, optionally renaming it, like `ip link set DEV netns NS [name NEW]`.</para>
/// <para type="description">One kernel request: the link either arrives (with its new name) or stays where it was. The kernel brings a moved link down.</para>
/// </summary>
/// <example><code>Move-AgentLink vin-peer -Namespace agent-ns -DestinationNamespace container-ns -NewName eth0</code><para>Moves vin-peer from agent-ns into container-ns and names it eth0 there, in one request; it arrives down.</para></example>
/// <example><code>Move-AgentLink veth1 '' -Namespace container-ns -PassThru</code><para>Moves veth1 out of container-ns back to the root namespace (an empty destination) and returns it as it is there.</para></example>
[Cmdlet(VerbsCommon.Move, "AgentLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(AgentLink))]
public sealed class MoveAgentLinkCommand : LinkCmdletBase
{
    /// <summary><para type="description">The link to move.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary><para type="description">The link's current namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Where to move it; an empty string means the root namespace.</para></summary>
    [Parameter(Mandatory = true, Position = 1)]
    [AllowEmptyString]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string DestinationNamespace { get; set; } = "";

    /// <summary><para type="description">A new name to take on arrival (1-15 bytes, no '/', ':' or white space); the current name when absent.</para></summary>
    [Parameter]
    public string? NewName { get; set; }

    /// <summary><para type="description">Return the moved link.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(Name, () =>
        {
            var handle = Query.Handle(ns);
            var link = handle.GetLink(Name);
            if (!ShouldProcess($"{Name} in {Where(ns)}", $"Move to {Where(DestinationNamespace)}{(NewName != null ? " as " + NewName : "")}")) return;
            handle.Move(link, DestinationNamespace, NewName);
            if (PassThru) WriteObject(Query.Link(DestinationNamespace, NewName ?? Name));
        });
        Reset();
    }
}

/// <summary>
/// <para type="synopsis">Removes a link, like `ip link del DEV`.</para>
/// <para type="description">Removing one end of a veth pair removes both ends.</para>
/// </summary>
/// <example><code>Remove-AgentLink veth-host</code><para>Removes veth-host from the root namespace; the kernel removes its peer with it, wherever the peer is.</para></example>
/// <example><code>Get-AgentLink vex -Namespace agent-ns | Remove-AgentLink -WhatIf</code><para>Shows which link would be removed without removing it.</para></example>
[Cmdlet(VerbsCommon.Remove, "AgentLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveAgentLinkCommand : LinkCmdletBase
{
    /// <summary><para type="description">The link to remove.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary><para type="description">The link's namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    // veth peers the kernel removed along with a link removed earlier in this pipeline
    private readonly HashSet<(string Namespace, string Name)> _removedPeers = new();

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(Name, () =>
        {
            var handle = Query.Handle(ns);
            var record = handle.FindLink(Name);
            if (record == null && _removedPeers.Contains((ns, Name)))
            {
                WriteVerbose($"{Name} in {Where(ns)} is already gone: it was the veth peer of a link removed earlier in this pipeline.");
                return;
            }
            if (record == null) throw new LinkNotFoundException(Name, ns);
            var link = Query.Link(ns, Name);
            if (!ShouldProcess($"{Name} in {Where(ns)}", "Remove link")) return;
            handle.Delete(record);
            if (link.PeerName != null && link.PeerNamespace != null) _removedPeers.Add((link.PeerNamespace, link.PeerName));
        });
        Reset();
    }
}
