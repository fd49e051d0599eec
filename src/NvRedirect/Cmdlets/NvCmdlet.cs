using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Links;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Tc;

namespace NvRedirect.Cmdlets;

/// <summary>
/// What every NvRedirect cmdlet shares: turning exceptions into ErrorRecords with stable ids
/// (&lt;Command&gt;&lt;Condition&gt;, e.g. NewAgentLinkAlreadyExists) and the right category, per pipeline item.
/// </summary>
public abstract class NvCmdlet : PSCmdlet
{
    /// <summary>The command name without the dash (NewAgentLink), the prefix of every error id.</summary>
    protected string ErrorPrefix => MyInvocation.MyCommand.Name.Replace("-", "");

    /// <summary>Builds an ErrorRecord for a failure.</summary>
    protected ErrorRecord ToErrorRecord(Exception e, object? target)
    {
        var (condition, category) = Classify(e);
        Exception reported = e;
        if (e is NetlinkException { Errno: 1 or 13 })
            reported = new UnauthorizedAccessException(
                e.Message + ". NvRedirect changes network namespaces and links: run it as root (it needs CAP_NET_ADMIN and CAP_SYS_ADMIN).", e);
        var record = new ErrorRecord(reported, ErrorPrefix + condition, category, target);
        if (e is NetlinkException { KernelMessage: { Length: > 0 } km })
            record.ErrorDetails = new ErrorDetails(reported.Message) { RecommendedAction = "Kernel message: " + km };
        return record;
    }

    /// <summary>Maps an exception to a condition name and an ErrorCategory.</summary>
    internal static (string Condition, ErrorCategory Category) Classify(Exception e) => e switch
    {
        NvRedirect.Core.Intercept.TakeoverException => ("StepFailed", ErrorCategory.InvalidOperation),
        NamespaceNotFoundException => ("NamespaceNotFound", ErrorCategory.ObjectNotFound),
        LinkNotFoundException => ("LinkNotFound", ErrorCategory.ObjectNotFound),
        AddressNotFoundException => ("NotFound", ErrorCategory.ObjectNotFound),
        LinkExistsException => ("AlreadyExists", ErrorCategory.ResourceExists),
        FilterNotOwnedException => ("NotOwned", ErrorCategory.PermissionDenied),
        ArgumentException => ("InvalidArgument", ErrorCategory.InvalidArgument),
        ItemNotFoundException => ("NotFound", ErrorCategory.ObjectNotFound),
        NvRedirect.Core.Tc.TcActionUnavailableException => ("ActionUnavailable", ErrorCategory.NotInstalled),
        NvRedirect.Core.Intercept.InterceptionPriorityInUseException => ("PriorityInUse", ErrorCategory.ResourceExists),
        NvRedirect.Core.Intercept.InterceptionUcMacInUseException => ("UcMacInUse", ErrorCategory.ResourceExists),
        NvRedirect.Core.Bpf.BpfVerifierException => ("VerifierRejected", ErrorCategory.InvalidData),
        NvRedirect.Core.Datapath.DatapathNotRespondingException => ("NotResponding", ErrorCategory.ConnectionError),
        NvRedirect.Core.Datapath.DatapathRejectedException => ("Rejected", ErrorCategory.InvalidData),
        NvRedirect.Core.Datapath.DatapathAlreadyRunningException => ("AlreadyRunning", ErrorCategory.ResourceExists),
        NvRedirect.Core.Datapath.DatapathStartException => ("StartFailed", ErrorCategory.OpenError),
        NvRedirect.Core.Datapath.DatapathStopException => ("StopFailed", ErrorCategory.OperationTimeout),
        NvRedirect.Core.Datapath.DatapathProtocolException => ("BadReply", ErrorCategory.ProtocolError),
        NvRedirect.Core.Datapath.DatapathNotInstalledException => ("NotInstalled", ErrorCategory.NotInstalled),
        NvRedirect.Core.Datapath.DatapathNoReplyException => ("NoReply", ErrorCategory.InvalidResult),
        NvRedirect.Core.Topology.ToolNotInstalledException => ("NotInstalled", ErrorCategory.NotInstalled),
        NvRedirect.Core.Namespaces.NamespaceTargetNotFoundException => ("NamespaceNotFound", ErrorCategory.ObjectNotFound),
        NvRedirect.Core.Probes.PortInUseException => ("PortInUse", ErrorCategory.ResourceExists),
        System.Net.Sockets.SocketException => ("SocketError", ErrorCategory.ConnectionError),
        TimeoutException => ("Timeout", ErrorCategory.OperationTimeout),
        System.IO.DirectoryNotFoundException => ("DirectoryNotFound", ErrorCategory.ObjectNotFound),
        System.IO.IOException => ("WriteFailed", ErrorCategory.WriteError),
        UnauthorizedAccessException => ("AccessDenied", ErrorCategory.PermissionDenied),
        NetlinkException { Errno: 1 or 13 } => ("PermissionDenied", ErrorCategory.PermissionDenied),
        NetlinkException { Errno: 17 } => ("AlreadyExists", ErrorCategory.ResourceExists),
        NetlinkException { Errno: 2 or 19 or 99 } => ("NotFound", ErrorCategory.ObjectNotFound),
        NetlinkException { Errno: 22 or 34 or 90 } => ("InvalidArgument", ErrorCategory.InvalidArgument),
        NetlinkException { Errno: 16 } => ("Busy", ErrorCategory.ResourceBusy),
        NetlinkException { Errno: 100 } => ("LinkDown", ErrorCategory.ResourceUnavailable),
        NetlinkException { Errno: 95 or 93 or 97 } => ("NotSupported", ErrorCategory.NotImplemented),
        NetlinkException => ("KernelError", ErrorCategory.NotSpecified),
        _ => ("Failed", ErrorCategory.NotSpecified),
    };

    /// <summary>Reports a per-item failure and continues with the next item.</summary>
    protected void WriteFailure(Exception e, object? target) => WriteError(ToErrorRecord(e, target));

    /// <summary>Runs one item's work, reporting its failure as a non-terminating error.</summary>
    protected void Try(object? target, Action work)
    {
        try { work(); }
        catch (Exception e) when (e is NetlinkException or ArgumentException or InvalidOperationException or ItemNotFoundException or NvRedirect.Core.Namespaces.NamespaceTargetNotFoundException)
        {
            WriteFailure(e, target);
        }
    }

    /// <summary>"link X in namespace N", for ShouldProcess targets.</summary>
    protected static string Where(string? ns) => string.IsNullOrEmpty(ns) ? "root namespace" : $"namespace {ns}";

    /// <summary>Filters names by wildcard patterns; reports patterns without wildcards that matched nothing.</summary>
    protected List<T> Select<T>(IEnumerable<T> items, Func<T, string> name, string[]? patterns, Func<string, Exception> notFound)
    {
        var list = items.ToList();
        if (patterns == null || patterns.Length == 0) return list;
        var result = new List<T>();
        foreach (var pattern in patterns)
        {
            var wildcard = WildcardPattern.Get(pattern, WildcardOptions.None);
            var matches = list.Where(i => wildcard.IsMatch(name(i))).ToList();
            if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(pattern))
                WriteFailure(notFound(pattern), pattern);
            foreach (var m in matches) if (!result.Contains(m)) result.Add(m);
        }
        return result;
    }
}
