using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;

namespace NvRedirect.Cmdlets;

/// <summary>Completes namespace names from /run/netns (live state).</summary>
public sealed class NamespaceNameCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var prefix = (wordToComplete ?? "").Trim('\'', '"');
        return NetworkNamespace.List()
            .Where(n => n.Name.StartsWith(prefix, StringComparison.Ordinal))
            .Select(n => new CompletionResult(Quote(n.Name), n.Name, CompletionResultType.ParameterValue, n.Path));
    }

    internal static string Quote(string s) => s.Any(c => char.IsWhiteSpace(c) || "'\"$`;(){}@,".Contains(c)) ? $"'{s.Replace("'", "''")}'" : s;
}

/// <summary>Completes link names in the namespace given by -Namespace (root when absent).</summary>
public sealed class LinkNameCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var prefix = (wordToComplete ?? "").Trim('\'', '"');
        var ns = fakeBoundParameters?["Namespace"] as string ?? "";
        try
        {
            using var handle = RouteHandle.Open(ns);
            return handle.DumpLinks()
                .Where(l => l.Name.StartsWith(prefix, StringComparison.Ordinal))
                .OrderBy(l => l.Name, StringComparer.Ordinal)
                .Select(l => new CompletionResult(l.Name, l.Name, CompletionResultType.ParameterValue, $"{l.Name} (ifindex {l.Index}{(l.Kind.Length > 0 ? ", " + l.Kind : "")})"))
                .ToList();
        }
        catch (Exception) { return []; } // completion must never throw at the prompt
    }
}

/// <summary>Completes the ids of the echo servers running in this process (Get-AgentEchoServer).</summary>
public sealed class EchoServerIdCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var prefix = (wordToComplete ?? "").Trim('\'', '"');
        return NvRedirect.Core.Probes.EchoServer.Running
            .Where(s => s.Id.ToString(System.Globalization.CultureInfo.InvariantCulture).StartsWith(prefix, StringComparison.Ordinal))
            .Select(s => new CompletionResult(s.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), s.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
                CompletionResultType.ParameterValue, s.ToString()))
            .ToList();
    }
}

/// <summary>Completes container names with the running containers of podman and docker (whichever are installed).</summary>
public sealed class ContainerNameCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var prefix = (wordToComplete ?? "").Trim('\'', '"');
        try
        {
            return NvRedirect.Core.Namespaces.WorkloadTarget.RunningContainers()
                .Where(c => c.Name.StartsWith(prefix, StringComparison.Ordinal))
                .OrderBy(c => c.Name, StringComparer.Ordinal)
                .Select(c => new CompletionResult(NamespaceNameCompleter.Quote(c.Name), c.Name, CompletionResultType.ParameterValue, $"{c.Name} ({c.Runtime})"))
                .ToList();
        }
        catch (Exception) { return []; } // completion must never throw at the prompt
    }
}
