using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Topology;

namespace NvRedirect.Cmdlets;

/// <summary>
/// <para type="synopsis">Reads the namespaces, links, steering rules and datapath registrations of an interception setup as one object.</para>
/// <para type="description">For each namespace (names, wildcards, '' for the root namespace, or a /proc/PID/ns/net path for a container's): its links with their veth peers resolved across namespaces (as Get-AgentLink; a peer in a namespace without a name is matched by its ifindex pair when that namespace is listed too), the ingress filters on its links and the links each one sends frames to (as Get-RedirectFilter; for an interception's rules also their part, e.g. "entry: to datapath", and the workload), and the running datapaths whose service ports are there with their registered workloads, mode and tap state (as Get-Datapath), each joined to the link carrying its MAC. Without -Namespace, every named namespace. Pipe it to ConvertTo-TopologyDiagram to draw it.</para>
/// </summary>
/// <example><code>Get-AgentTopology agent-ns, container-ns, host-ns</code><para>Shows the seed topology's namespaces, links, steering rules and datapaths; expand the properties for the details.</para></example>
/// <example><code>(Get-AgentTopology agent-ns).SteeringRules | Format-Table LinkName, Priority, Role, Targets, Packets</code><para>Lists where each tc filter in agent-ns sends frames and how many it sent.</para></example>
[Cmdlet(VerbsCommon.Get, "AgentTopology")]
[OutputType(typeof(AgentTopology))]
public sealed class GetAgentTopologyCommand : NvCmdlet
{
    private readonly List<string> _namespaces = [];

    /// <summary><para type="description">The namespaces: names or wildcard patterns of named namespaces, '' for the root namespace, or /proc/PID/ns/net paths. Namespace objects bind by property name. Absent: every named namespace.</para></summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string[]? Namespace { get; set; }

    /// <summary><para type="description">How many seconds to wait for each datapath's answer (default 5).</para></summary>
    [Parameter]
    [ValidateRange(0.1, 600)]
    public double TimeoutSeconds { get; set; } = 5;

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        if (Namespace == null) return;
        var named = NetworkNamespace.List().Where(n => n.IsMounted).Select(n => n.Name).ToList();
        foreach (var ns in Namespace)
        {
            if (ns.Length > 0 && !NetworkNamespace.IsPath(ns) && WildcardPattern.ContainsWildcardCharacters(ns))
            {
                var pattern = WildcardPattern.Get(ns, WildcardOptions.None);
                _namespaces.AddRange(named.Where(n => pattern.IsMatch(n) && !_namespaces.Contains(n)).Order(StringComparer.Ordinal));
            }
            else if (ns.Length > 0 && !NetworkNamespace.IsPath(ns) && !named.Contains(ns)) WriteFailure(new NamespaceNotFoundException(ns), ns);
            else if (!_namespaces.Contains(ns)) _namespaces.Add(ns);
        }
    }

    /// <inheritdoc/>
    protected override void EndProcessing()
    {
        if (Namespace == null && _namespaces.Count == 0)
            _namespaces.AddRange(NetworkNamespace.List().Where(n => n.IsMounted).Select(n => n.Name).Order(StringComparer.Ordinal));
        Try(string.Join(", ", _namespaces), () => WriteObject(TopologyReader.Read(_namespaces, TimeSpan.FromSeconds(TimeoutSeconds))));
    }
}

/// <summary>
/// <para type="synopsis">Draws a topology from Get-AgentTopology as a Mermaid flowchart, Graphviz DOT, or SVG.</para>
/// <para type="description">Each namespace is a box holding its links (name, kind, MAC, addresses); veth pairs are thick lines across boxes; each steering rule is a dashed arrow from the link it is on to the link it sends frames to, labelled with its pref and its part ("10001 to datapath"); a datapath is a cylinder joined to its service port, with its registered workloads (MAC, mode, tap or inline), each joined to the interface that carries its MAC. Mermaid text renders in GitHub Markdown (a ```mermaid block); DOT renders with Graphviz; -Format Svg runs Graphviz's dot (dot -Tsvg) and fails with ConvertToTopologyDiagramNotInstalled when it is not installed. Several topologies piped in are drawn as one. The same topology always gives the same text.</para>
/// </summary>
/// <example><code>Get-AgentTopology agent-ns, container-ns, host-ns | ConvertTo-TopologyDiagram</code><para>Writes the seed topology as a Mermaid flowchart.</para></example>
/// <example><code>Get-AgentTopology nvr-enforcer | ConvertTo-TopologyDiagram -Format Svg -Title 'protected container' | Set-Content enforcer.svg</code><para>Draws the enforcer namespace of protected containers as an SVG file (needs Graphviz).</para></example>
[Cmdlet(VerbsData.ConvertTo, "TopologyDiagram")]
[OutputType(typeof(string))]
public sealed class ConvertToTopologyDiagramCommand : NvCmdlet
{
    private readonly List<AgentTopology> _topologies = [];

    /// <summary><para type="description">The topology to draw (Get-AgentTopology's output).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    public AgentTopology[] InputObject { get; set; } = [];

    /// <summary><para type="description">Mermaid (default), Dot, or Svg (drawn by Graphviz's dot).</para></summary>
    [Parameter]
    public TopologyDiagramFormat Format { get; set; } = TopologyDiagramFormat.Mermaid;

    /// <summary><para type="description">A title drawn above the diagram.</para></summary>
    [Parameter]
    public string? Title { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord() => _topologies.AddRange(InputObject);

    /// <inheritdoc/>
    protected override void EndProcessing()
    {
        if (_topologies.Count == 0) return;
        try { WriteObject(TopologyDiagram.Render(AgentTopology.Merge(_topologies), Format, Title)); }
        catch (InvalidOperationException e) { WriteFailure(e, Format); }
    }
}
