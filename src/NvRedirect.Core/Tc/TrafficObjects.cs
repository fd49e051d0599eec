using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using NvRedirect.Core.Bpf;

namespace NvRedirect.Core.Tc;

/// <summary>A qdisc of a device, as Get-AgentQdisc and Add-AgentQdisc return it.</summary>
public sealed class AgentQdisc
{
    /// <summary>The namespace; "" is the root namespace.</summary>
    public string Namespace { get; init; } = "";
    /// <summary>The device the qdisc belongs to.</summary>
    public string LinkName { get; init; } = "";
    /// <summary>The device's ifindex.</summary>
    public int LinkIndex { get; init; }
    /// <summary>ingress, clsact, noqueue, pfifo_fast...</summary>
    public string Kind { get; init; } = "";
    /// <summary>The handle in tc's notation (ingress: ffff:; qdiscs without one, such as noqueue: 0:).</summary>
    public string Handle { get; init; } = "";
    /// <summary>The parent in tc's notation (ingress: ffff:fff1; root qdiscs: root).</summary>
    public string Parent { get; init; } = "";
    /// <summary>What Add-AgentQdisc did: Added or Unchanged; null for listed qdiscs.</summary>
    public TcChange? Change { get; init; }
    /// <summary>The underlying tc object.</summary>
    public Qdisc Qdisc { get; init; } = new();

    /// <summary>Builds the object for a qdisc of <paramref name="ns"/>.</summary>
    public static AgentQdisc From(string ns, Qdisc qdisc, TcChange? change = null) => new()
    {
        Namespace = ns,
        LinkName = qdisc.LinkName ?? "",
        LinkIndex = qdisc.LinkIndex,
        Kind = qdisc.Kind,
        Handle = qdisc.Handle == 0 ? "0:" : qdisc.HandleText, // as tc prints it
        Parent = qdisc.ParentText,
        Change = change,
        Qdisc = qdisc,
    };

    /// <inheritdoc/>
    public override string ToString() => $"{Kind} {Handle} dev {LinkName}";
}

/// <summary>
/// A tc filter of a device's ingress, as Get-RedirectFilter and Add-RedirectFilter return it: one object per u32 node
/// (tc's three dump entries per pref folded into one) or bpf program, with readable matches and actions, the
/// counters, whether NvRedirect installed it, and the underlying <see cref="TcFilter"/> that Add-RedirectFilter
/// -InputObject sends again unchanged.
/// </summary>
public sealed class RedirectFilter
{
    /// <summary>The namespace; "" is the root namespace.</summary>
    public string Namespace { get; init; } = "";
    /// <summary>The device the filter is attached to.</summary>
    public string LinkName { get; init; } = "";
    /// <summary>The device's ifindex.</summary>
    public int LinkIndex { get; init; }
    /// <summary>The pref: lower runs first; the filter's identity for removal.</summary>
    public int Priority { get; init; }
    /// <summary>The protocol as tc names it: ip, all, ipv6, arp or 0xNNNN.</summary>
    public string Protocol { get; init; } = "";
    /// <summary>The classifier: u32, bpf...</summary>
    public string Kind { get; init; } = "";
    /// <summary>The kernel's handle for the node: 800::800 for u32, 0x1 for bpf.</summary>
    public string Handle { get; init; } = "";
    /// <summary>The parent in tc's notation (ffff: = the ingress qdisc).</summary>
    public string Parent { get; init; } = "";
    /// <summary>
    /// What the filter compares, readable: dst-mac X, src-mac X, dst-mac-unicast, all; or, when a key compares
    /// anything else, every key as tc prints it (00001a27/0000ffff at -16).
    /// </summary>
    public string[] Matches { get; init; } = [];
    /// <summary>
    /// The actions in execution order, in tc's syntax (mirred egress mirror dev vbr; pedit munge offset -14 u16 set
    /// 0x4e65 ... pipe), a pedit that rewrites one MAC shortened to pedit dst-mac := X pipe.
    /// </summary>
    public string[] Actions { get; init; } = [];
    /// <summary>Packets the filter's actions handled (the mirred action's counter, else the first action's).</summary>
    public ulong Packets { get; init; }
    /// <summary>Bytes the filter's actions handled (same action as <see cref="Packets"/>).</summary>
    public ulong Bytes { get; init; }
    /// <summary>Whether NvRedirect installed it (every action carries NvRedirect's cookie).</summary>
    public bool IsOwned { get; init; }
    /// <summary>The tag given to Add-RedirectFilter -Tag ("" for none; 0x and 16 hex digits for a long one, whose SHA-256 is stored, or a binary tag such as an interception's); null when not ours.</summary>
    public string? Tag { get; init; }
    /// <summary>What Add-RedirectFilter did: Added, Unchanged or Replaced; null for listed filters.</summary>
    public TcChange? Change { get; init; }
    /// <summary>The underlying tc object (the round trip: Add-RedirectFilter -InputObject sends it again).</summary>
    public TcFilter Filter { get; init; } = new GenericFilter("");

    /// <summary>Builds the object for a filter of <paramref name="ns"/> (device and mirred names already filled in).</summary>
    public static RedirectFilter From(string ns, TcFilter filter, TcChange? change = null)
    {
        IReadOnlyList<TcAction> actions = filter switch { U32Filter u => u.Actions, BpfFilter b => b.Actions, _ => [] };
        var counted = actions.LastOrDefault(a => a is MirredAction && a.Statistics != null) ?? actions.FirstOrDefault(a => a.Statistics != null);
        return new RedirectFilter
        {
            Namespace = ns,
            LinkName = filter.LinkName ?? "",
            LinkIndex = filter.LinkIndex,
            Priority = filter.Priority,
            Protocol = filter.ProtocolName,
            Kind = filter.Kind,
            Handle = filter switch
            {
                U32Filter u => u.HandleText,
                _ => "0x" + filter.Handle.ToString("x", CultureInfo.InvariantCulture),
            },
            Parent = filter.ParentText,
            Matches = filter switch
            {
                U32Filter u => TcText.DescribeMatches(u.Selector).ToArray(),
                BpfFilter b => [$"bpf {b.Name}{(b.DirectAction ? " direct-action" : "")}{(b.ProgramId != 0 ? $" id {b.ProgramId} tag {b.TagText}" : "")}"],
                _ => [],
            },
            Actions = actions.Select(TcText.Describe).ToArray(),
            Packets = counted?.Statistics?.Packets ?? 0,
            Bytes = counted?.Statistics?.Bytes ?? 0,
            IsOwned = RedirectCookie.IsOurs(filter),
            Tag = RedirectCookie.TagText(filter),
            Change = change,
            Filter = filter,
        };
    }

    /// <inheritdoc/>
    public override string ToString() => $"{LinkName} pref {Priority} {Kind}";
}

/// <summary>
/// Turns the three ways Add-RedirectFilter is given a filter (tc text, the typed common case, an object read back)
/// into the one u32 filter it sends. Mirred targets stay names, resolved in the filter's namespace when it is added;
/// the device's ifindex is set by the caller.
/// </summary>
public static class RedirectFilterBuilder
{
    /// <summary>What no -Match means: `match u8 0 0`, the match-everything key NeuVector's catch-all filters use.</summary>
    public static readonly U32Match MatchAll = U32Match.U8(0, 0);
    /// <summary>`match u8 0 1 at -14`: the destination MAC's group bit is 0 (unicast).</summary>
    public static readonly U32Match UnicastDestination = U32Match.U8(0, 1, -14);

    /// <summary>
    /// A filter from tc syntax: the matches (none = match everything) and the actions, one or more per text
    /// (<see cref="TcText.ParseMatches"/>, <see cref="TcText.ParseActions"/>).
    /// </summary>
    public static U32Filter FromText(ushort priority, ushort protocol, IEnumerable<string>? matches, IEnumerable<string> actions)
    {
        var parsedMatches = matches == null ? [] : TcText.ParseMatches(matches);
        var parsedActions = TcText.ParseActions(actions);
        if (parsedActions.Count == 0) throw new ArgumentException("A redirect filter needs at least one action, e.g. 'mirred egress mirror dev vbr'.");
        return new U32Filter
        {
            Priority = priority,
            Protocol = protocol,
            Selector = U32Selector.FromMatches(parsedMatches.Count == 0 ? [MatchAll] : parsedMatches),
            Actions = parsedActions,
        };
    }

    /// <summary>
    /// The common case, typed: compare one MAC (<paramref name="matchField"/> and <paramref name="matchMac"/>, or
    /// nothing), optionally only unicast destinations, optionally rewrite a MAC (needs a MAC to compare), then mirror
    /// or redirect to <paramref name="target"/>. Exactly the filter the equivalent tc text gives (<see cref="MacRule"/>
    /// writes the matches and munges as NeuVector's command lines do).
    /// </summary>
    public static U32Filter FromTyped(ushort priority, ushort protocol, MacField? matchField, byte[]? matchMac, bool unicastOnly,
        MacField? rewriteField, byte[]? newMac, MirredAction target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (matchField is MacField field)
        {
            if (matchMac is not { Length: 6 }) throw new ArgumentException("The MAC to compare must be 6 bytes.");
            return new MacRule(0, priority, protocol, field, matchMac, unicastOnly, rewriteField, newMac, target).ToU32Filter();
        }
        if (rewriteField != null)
            throw new ArgumentException("Rewriting a MAC needs a MAC to compare (-DestinationMac or -SourceMac); for anything else give the filter as tc text (-Match, -Action).");
        return new U32Filter
        {
            Priority = priority,
            Protocol = protocol,
            Selector = U32Selector.FromMatches(unicastOnly ? UnicastDestination : MatchAll),
            Actions = [target],
        };
    }

    /// <summary>The filter with <paramref name="cookie"/> on every action (null: no cookie attribute, tc's bytes).</summary>
    public static U32Filter WithCookie(U32Filter filter, byte[]? cookie)
        => filter with { Actions = filter.Actions.Select(a => a with { Cookie = cookie }).ToArray() };

    /// <summary>
    /// A filter read back from the kernel, ready to be added again with the request that created it: mirred targets
    /// go by name again (their ifindex is looked up anew), cookies and everything else stay as they were read.
    /// </summary>
    public static U32Filter ForReAdd(U32Filter read)
        => read with
        {
            Handle = 0,
            Actions = read.Actions.Select(a => a is MirredAction { TargetName: { Length: > 0 } } m ? m with { TargetIndex = 0 } : a).ToArray(),
        };
}
