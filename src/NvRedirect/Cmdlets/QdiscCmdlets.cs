using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Tc;

namespace NvRedirect.Cmdlets;

/// <summary>
/// Shared plumbing of the qdisc and filter cmdlets: the link cmdlets' handle cache (one namespace socket per
/// namespace for the whole pipeline, reopened when the namespace was replaced), with the traffic-control operations on it.
/// </summary>
public abstract class TcCmdletBase : LinkCmdletBase
{
    /// <summary>The traffic-control operations of a namespace ("" = root), on its cached handle.</summary>
    protected TrafficControl Tc(string? ns) => new(Query.Handle(ns));
}

/// <summary>
/// <para type="synopsis">Makes sure a device has an ingress qdisc, like `tc qdisc replace dev DEV ingress`.</para>
/// <para type="description">Idempotent: a device that already has its ingress qdisc keeps it and every filter on it (the request is tc's replace, which also wins a race with another creator). Returns the qdisc with Change = Added when it was created, Unchanged when it was already there. Filters attach to the ingress qdisc with Add-RedirectFilter.</para>
/// <para type="description">Link objects from Get-AgentLink bind by LinkName and Namespace. A device with a clsact qdisc is refused by the kernel.</para>
/// </summary>
/// <example><code>Add-AgentQdisc vex, vin, vbr -Namespace agent-ns</code><para>Gives the three agent-side devices of the seed their ingress qdisc (the seed's `tc qdisc add dev vin ingress` and so on) and shows for each whether it was added.</para></example>
/// <example><code>Get-AgentLink -Namespace agent-ns -Kind veth | Add-AgentQdisc</code><para>Ensures an ingress qdisc on every veth of agent-ns; running it again changes nothing and reports Unchanged.</para></example>
[Cmdlet(VerbsCommon.Add, "AgentQdisc", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(AgentQdisc))]
public sealed class AddAgentQdiscCommand : TcCmdletBase
{
    /// <summary><para type="description">The device(s) (a link object binds here through its LinkName property).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Interface")]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string[] LinkName { get; set; } = [];

    /// <summary><para type="description">The devices' namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">The qdisc kind; ingress is the only kind so far.</para></summary>
    [Parameter]
    [ValidateSet("ingress")]
    public string Kind { get; set; } = "ingress";

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        foreach (var name in LinkName)
        {
            Try(name, () =>
            {
                var tc = Tc(ns);
                var link = tc.Handle.GetLink(name);
                if (!ShouldProcess($"{name} in {Where(ns)}", "Ensure ingress qdisc")) return;
                var change = tc.EnsureIngressQdisc(link.Index);
                var qdisc = tc.ListQdiscs(link.Index).FirstOrDefault(q => q.IsIngress)
                    ?? throw new InvalidOperationException($"The kernel accepted the ingress qdisc of {tc.Handle.Describe(name)} but does not list it afterwards.");
                WriteObject(AgentQdisc.From(ns, qdisc, change));
            });
        }
    }
}

/// <summary>
/// <para type="synopsis">Lists the qdiscs of a namespace or of some devices, like `tc qdisc show [dev DEV]`.</para>
/// <para type="description">Returns one object per qdisc with its device, kind, handle and parent: every qdisc the kernel reports (noqueue, pfifo_fast, ingress...), not only the ones NvRedirect added. -LinkName narrows the list to some devices, -Kind to one kind.</para>
/// </summary>
/// <example><code>Get-AgentQdisc -Namespace agent-ns -Kind ingress</code><para>Lists the ingress qdiscs of agent-ns: the devices filters can be attached to.</para></example>
/// <example><code>Get-AgentLink vex -Namespace agent-ns | Get-AgentQdisc</code><para>Lists the qdiscs of vex (its root qdisc and, once added, its ingress qdisc).</para></example>
[Cmdlet(VerbsCommon.Get, "AgentQdisc")]
[OutputType(typeof(AgentQdisc))]
public sealed class GetAgentQdiscCommand : TcCmdletBase
{
    /// <summary><para type="description">Only qdiscs of these devices: names or wildcard patterns (a link object binds here through its LinkName property). A name without wildcards that matches no device is reported as an error.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Interface")]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    [SupportsWildcards]
    public string[]? LinkName { get; set; }

    /// <summary><para type="description">The namespace to list (a namespace object binds here); the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Only qdiscs of this kind (ingress, noqueue...), ignoring case.</para></summary>
    [Parameter]
    public string? Kind { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(ns, () =>
        {
            var tc = Tc(ns);
            var links = Select(tc.Handle.DumpLinks(), l => l.Name, LinkName, n => new LinkNotFoundException(n, ns));
            var wanted = links.Select(l => l.Index).ToHashSet();
            var qdiscs = tc.ListQdiscs()
                .Where(q => wanted.Contains(q.LinkIndex) && (Kind == null || string.Equals(q.Kind, Kind, StringComparison.OrdinalIgnoreCase)))
                .OrderBy(q => q.LinkIndex);
            foreach (var q in qdiscs) WriteObject(AgentQdisc.From(ns, q));
        });
    }
}

/// <summary>
/// <para type="synopsis">Removes the ingress qdisc of a device, like `tc qdisc del dev DEV ingress`.</para>
/// <para type="description">Only the devices named by -LinkName are touched. The kernel removes every filter of the qdisc with it, so a qdisc that holds filters NvRedirect did not install (their actions carry no NvRedirect cookie) is left alone unless -Force is given. A device without an ingress qdisc is not an error: there is nothing to do (said with -Verbose).</para>
/// </summary>
/// <example><code>Remove-AgentQdisc vex, vin, vbr -Namespace agent-ns</code><para>Removes the ingress qdiscs of the seed's agent-side devices and with them the steering filters NvRedirect installed there.</para></example>
/// <example><code>Get-AgentQdisc -Namespace agent-ns -Kind ingress | Remove-AgentQdisc -Force -WhatIf</code><para>Shows which ingress qdiscs of agent-ns would be removed, including those holding filters installed by other tools, without removing them.</para></example>
[Cmdlet(VerbsCommon.Remove, "AgentQdisc", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveAgentQdiscCommand : TcCmdletBase
{
    /// <summary><para type="description">The device(s) whose ingress qdisc goes (a link or qdisc object binds here through its LinkName property).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Interface")]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string[] LinkName { get; set; } = [];

    /// <summary><para type="description">The devices' namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Remove the qdisc even when it holds filters NvRedirect did not install (they go with it).</para></summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        foreach (var name in LinkName)
        {
            Try(name, () =>
            {
                var tc = Tc(ns);
                var link = tc.Handle.GetLink(name);
                if (!tc.HasIngressQdisc(link.Index))
                {
                    WriteVerbose($"{tc.Handle.Describe(name)} has no ingress qdisc: nothing to remove.");
                    return;
                }
                var filters = tc.ListFilters(link.Index);
                var foreign = filters.Where(f => !RedirectCookie.IsOurs(f)).ToList();
                if (foreign.Count > 0 && !Force)
                    throw new FilterNotOwnedException(foreign[0],
                        $"The ingress qdisc of {tc.Handle.Describe(name)} holds {foreign.Count} filter(s) NvRedirect did not install " +
                        $"(pref {string.Join(", ", foreign.Select(f => f.Priority).Distinct())}), and removing the qdisc would remove them too. Use -Force to remove it anyway.");
                if (!ShouldProcess($"{name} in {Where(ns)}", $"Remove ingress qdisc and its {filters.Count} filter(s)")) return;
                tc.RemoveIngressQdisc(link.Index);
            });
        }
    }
}
