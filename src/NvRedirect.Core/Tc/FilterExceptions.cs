using System;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Tc;

/// <summary>
/// A filter NvRedirect did not install (its actions carry no cookie of ours) stands where a command would remove or
/// replace it; the command refuses unless forced.
/// </summary>
public sealed class FilterNotOwnedException : InvalidOperationException
{
    /// <summary>The filter that is not ours.</summary>
    public TcFilter Filter { get; }

    /// <summary>Explains that <paramref name="filter"/> on <paramref name="where"/> is not ours and what <paramref name="doing"/> would have done.</summary>
    public FilterNotOwnedException(TcFilter filter, string where, string doing)
        : base($"The {filter.Kind} filter at pref {filter.Priority} of {where} was not installed by NvRedirect (its actions carry no " +
               $"NvRedirect cookie), so it is not {doing}. Use -Force to {(doing == "removed" ? "remove" : "replace")} it anyway.")
        => Filter = filter;

    /// <summary>For a refusal whose message the caller composes (e.g. a qdisc that holds filters not ours).</summary>
    public FilterNotOwnedException(TcFilter filter, string message) : base(message) => Filter = filter;
}

/// <summary>A device has no filter at the priority a command names.</summary>
public sealed class FilterNotFoundException(ushort priority, string where)
    : NetlinkException(2, "find filter", null, $"There is no filter at pref {priority} of {where}; list them with Get-RedirectFilter")
{
    /// <summary>The priority that holds nothing.</summary>
    public ushort Priority { get; } = priority;
}
