using System;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Namespaces;

namespace NvRedirect.Cmdlets;

/// <summary>
/// <para type="synopsis">Creates a named network namespace, like `ip netns add`.</para>
/// <para type="description">Creates a new network namespace and pins it on /run/netns/NAME, exactly as iproute2 does, so `ip netns list` and `ip netns exec` see it. The calling thread never changes namespace: the work happens on a dedicated OS thread.</para>
/// </summary>
/// <example><code>New-AgentNamespace agent-ns, container-ns</code><para>Creates two namespaces, one for the agent and one standing in for a container, and returns an object for each.</para></example>
/// <example><code>'web', 'db' | New-AgentNamespace -WhatIf</code><para>Shows which namespaces would be created (/run/netns/web and /run/netns/db) without creating them.</para></example>
[Cmdlet(VerbsCommon.New, "AgentNamespace", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(AgentNamespace))]
public sealed class NewAgentNamespaceCommand : NvCmdlet
{
    /// <summary><para type="description">Name(s) of the namespace(s) to create: no '/', no white space, at most 255 bytes.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    public string[] Name { get; set; } = [];

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        foreach (var name in Name)
        {
            if (!ShouldProcess(NetworkNamespace.PathOf(name), "Create network namespace")) continue;
            Try(name, () => WriteObject(NamespaceCmdletHelper.ToObject(NetworkNamespace.Create(name))));
        }
    }
}

/// <summary>
/// <para type="synopsis">Lists named network namespaces, ours and iproute2's alike.</para>
/// <para type="description">Reads /run/netns. Without -Name every namespace is listed; names accept wildcards. A name without wildcards that does not exist is an error.</para>
/// </summary>
/// <example><code>Get-AgentNamespace</code><para>Lists every named namespace with its path, its nsfs inode (Id) and whether it is still mounted.</para></example>
/// <example><code>Get-AgentNamespace agent-* | Get-AgentLink</code><para>Lists the links of every namespace whose name starts with agent-: each namespace object binds to -Namespace of Get-AgentLink.</para></example>
[Cmdlet(VerbsCommon.Get, "AgentNamespace")]
[OutputType(typeof(AgentNamespace))]
public sealed class GetAgentNamespaceCommand : NvCmdlet
{
    /// <summary><para type="description">Names or wildcard patterns; every namespace when absent. A name without wildcards that does not exist is reported as an error.</para></summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var all = NetworkNamespace.List().Select(NamespaceCmdletHelper.ToObject);
        foreach (var ns in Select(all, n => n.Name, Name, n => new NamespaceNotFoundException(n)))
            WriteObject(ns);
    }
}

/// <summary>
/// <para type="synopsis">Removes a named network namespace, like `ip netns del`.</para>
/// <para type="description">Unmounts and removes /run/netns/NAME. The kernel frees the namespace, and destroys the veths in it (and so their peers), once nothing else holds it.</para>
/// </summary>
/// <example><code>Remove-AgentNamespace container-ns</code><para>Removes the namespace container-ns. Once no process holds it any more, the kernel destroys the veth ends inside it, and with them their peers in other namespaces.</para></example>
/// <example><code>Get-AgentNamespace test-* | Remove-AgentNamespace -Confirm</code><para>Removes every namespace whose name starts with test-, asking before each one.</para></example>
[Cmdlet(VerbsCommon.Remove, "AgentNamespace", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveAgentNamespaceCommand : NvCmdlet
{
    /// <summary><para type="description">Name(s) of the namespace(s) to remove; a namespace object binds here by its Name. Names are taken literally (no wildcards): pipe from Get-AgentNamespace to remove by pattern.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        foreach (var name in Name)
        {
            Try(name, () =>
            {
                NetworkNamespace.ThrowIfInvalid(name);
                if (NetworkNamespace.Describe(name) == null) throw new NamespaceNotFoundException(name);
                if (ShouldProcess(NetworkNamespace.PathOf(name), "Remove network namespace"))
                {
                    NetworkNamespace.Delete(name);
                    // the fast-path maps pinned for its interceptions outlive the links their programs were on: unpinned with it
                    NvRedirect.Core.Bpf.FastPathMap.SweepGoneNamespaces();
                }
            });
        }
    }
}

internal static class NamespaceCmdletHelper
{
    public static AgentNamespace ToObject(NamespaceInfo n) => new() { Name = n.Name, Path = n.Path, Id = n.Inode, IsMounted = n.IsMounted };
}
