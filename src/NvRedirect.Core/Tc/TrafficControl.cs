using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Links;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Tc;

/// <summary>The outcome of <see cref="TrafficControl.AddFilter"/>: what was done, and the filter as the kernel now holds it.</summary>
/// <param name="Change">Added, Unchanged or Replaced.</param>
/// <param name="Filter">The filter read back from the kernel (with its handle, action indexes and names).</param>
public sealed record TcFilterResult(TcChange Change, U32Filter Filter);

/// <summary>
/// Qdisc and filter operations on the devices of one namespace, through the namespace's <see cref="RouteHandle"/>
/// socket (so ifindexes, mirred targets included, resolve in that namespace). The handle stays the caller's.
/// Operations are idempotent and report what they did: tc itself is not (a second `tc filter add` of the same u32
/// filter appends a duplicate node; a second `tc qdisc add` fails).
/// </summary>
public sealed class TrafficControl
{
    private const int ENOENT = 2, EINVAL = 22;
    /// <summary>The extack text of a request naming an action kind the kernel lacks (act_api.c tc_lookup_action_n).</summary>
    public const string MissingActionModuleText = "Failed to load TC action module";

    /// <summary>The namespace handle used for every request.</summary>
    public RouteHandle Handle { get; }

    /// <summary>Operations on <paramref name="handle"/>'s namespace.</summary>
    public TrafficControl(RouteHandle handle) => Handle = handle ?? throw new ArgumentNullException(nameof(handle));

    private NetlinkSocket Socket => Handle.Socket;

    /// <summary>The ifindex of a device of this namespace; <see cref="LinkNotFoundException"/> when there is none.</summary>
    public int LinkIndexOf(string linkName) => Handle.GetLink(linkName).Index;

    // ------------------------------------------------------------------ qdiscs

    /// <summary>
    /// Makes sure the device has an ingress qdisc, keeping any filters it already holds (`tc qdisc replace dev D
    /// ingress`, which also wins races with another creator). Added when there was none, Unchanged otherwise.
    /// A device with a clsact qdisc is refused by the kernel ("Invalid qdisc name").
    /// </summary>
    public TcChange EnsureIngressQdisc(int linkIndex)
    {
        bool present = HasIngressQdisc(linkIndex);
        Socket.Execute(TcMessages.NewQdisc(Qdisc.Ingress(linkIndex), replace: true), $"ensure an ingress qdisc on {Describe(linkIndex)}");
        return present ? TcChange.Unchanged : TcChange.Added;
    }

    /// <summary>Removes the device's ingress qdisc and with it every ingress filter; Absent when there is none.</summary>
    public TcChange RemoveIngressQdisc(int linkIndex)
    {
        if (!HasIngressQdisc(linkIndex)) return TcChange.Absent;
        try
        {
            Socket.Execute(TcMessages.DeleteQdisc(Qdisc.Ingress(linkIndex)), $"remove the ingress qdisc of {Describe(linkIndex)}");
        }
        catch (NetlinkException e) when (e.Errno is ENOENT or EINVAL && !HasIngressQdisc(linkIndex))
        {
            return TcChange.Absent; // removed by someone else in between
        }
        return TcChange.Removed;
    }

    /// <summary>The qdiscs of one device (0 = every device of the namespace), with device names.</summary>
    public List<Qdisc> ListQdiscs(int linkIndex = 0)
    {
        var qdiscs = ListQdiscsRaw(linkIndex);
        // one device: its name alone; every device: one link dump
        Func<int, string?> nameOf = linkIndex != 0 ? new LinkNameCache(Handle).NameOf : LinkNames().GetValueOrDefault;
        return qdiscs.Select(q => q with { LinkName = nameOf(q.LinkIndex) }).ToList();
    }

    /// <summary>Whether the device has an ingress qdisc.</summary>
    public bool HasIngressQdisc(int linkIndex)
    {
        // one get, not a dump: the kernel answers a qdisc dump with every device's qdiscs, whatever the ifindex
        List<Qdisc> found;
        try { found = TcDecoder.ParseQdiscs(Socket.Query(TcMessages.GetQdisc(linkIndex, Tca.IngressHandle, Tca.TC_H_INGRESS), $"look up the ingress qdisc of ifindex {linkIndex} in {Handle.NamespaceText}")); }
        catch (NetlinkException e) when (e.Errno is ENOENT or EINVAL) { return false; }
        return found.Count > 0 ? found.Any(q => q.LinkIndex == linkIndex && q.IsIngress) : ListQdiscsRaw(linkIndex).Any(q => q.IsIngress); // no answer but the ACK: ask the old way
    }

    private List<Qdisc> ListQdiscsRaw(int linkIndex)
        => TcDecoder.ParseQdiscs(Socket.Dump(TcMessages.DumpQdiscs(linkIndex), $"list qdiscs in {Handle.NamespaceText}"))
                    .Where(q => linkIndex == 0 || q.LinkIndex == linkIndex).ToList();

    // ------------------------------------------------------------------ filters

    /// <summary>
    /// The filters of a device under <paramref name="parent"/> (default: the ingress qdisc), one object per u32
    /// node or bpf program, optionally only those at one priority; device and mirred target names filled in.
    /// A device without the qdisc has no filters.
    /// </summary>
    /// <param name="linkIndex">The device.</param>
    /// <param name="priority">Only this pref (0: all).</param>
    /// <param name="parent">The parent (default: the ingress qdisc).</param>
    /// <param name="names">
    /// Device names by ifindex, when the caller already holds them (listing many devices); otherwise they are asked
    /// of the kernel: one by one for a single pref (a few filters), by one link dump for a whole device.
    /// </param>
    public List<TcFilter> ListFilters(int linkIndex, ushort priority = 0, uint parent = Tca.IngressHandle, IReadOnlyDictionary<int, string>? names = null)
    {
        Func<int, string?> nameOf = names != null ? names.GetValueOrDefault
            : priority != 0 ? new LinkNameCache(Handle).NameOf
            : LinkNames().GetValueOrDefault;
        return WithNames(ListFiltersRaw(linkIndex, priority, parent, names?.GetValueOrDefault(linkIndex)), nameOf);
    }

    // the device's name for messages from the caller's names when it has them (no lookup per dump)
    private List<TcFilter> ListFiltersRaw(int linkIndex, ushort priority, uint parent, string? linkName = null)
        => TcDecoder.ParseFilters(Socket.Dump(TcMessages.DumpFilters(linkIndex, parent, priority),
            $"list the filters of {(linkName != null ? Handle.Describe(linkName) : Describe(linkIndex))}{(priority != 0 ? $" at pref {priority}" : "")}"));

    /// <summary>
    /// Adds a u32 filter idempotently, by its priority: when the priority already holds exactly this filter
    /// (same protocol, keys and actions; compared by request bytes) nothing is sent (Unchanged); when it holds
    /// anything else, that is removed first (Replaced; restored if the new filter is then refused); otherwise the
    /// filter is added (Added). Mirred targets given by name only are resolved in this namespace.
    /// Throws <see cref="TcActionUnavailableException"/> when the kernel lacks one of the filter's action kinds
    /// (act_pedit on this project's test kernels); the kernel then installs nothing. With <paramref name="mayReplace"/>,
    /// a different filter at the priority is only replaced when it agrees (<see cref="FilterNotOwnedException"/>
    /// otherwise, nothing sent). Device names are looked up one by one (not by dumping every link), so the cost does
    /// not grow with the number of devices in the namespace.
    /// </summary>
    public TcFilterResult AddFilter(U32Filter filter, Predicate<TcFilter>? mayReplace = null)
    {
        ArgumentNullException.ThrowIfNull(filter);
        if (filter.Priority == 0)
            throw new ArgumentException("The filter needs a pref (priority) from 1 to 65535: the pref is what makes adding it idempotent and removing it possible.", nameof(filter));
        var names = new LinkNameCache(Handle);
        var linkName = names.NameOf(filter.LinkIndex)
            ?? throw new ArgumentException($"There is no device with ifindex {filter.LinkIndex} in {Handle.NamespaceText}.", nameof(filter));
        var desired = Resolve(filter, names);
        string what = $"u32 filter pref {filter.Priority} on {Handle.Describe(linkName)}";

        var existing = ListFiltersRaw(filter.LinkIndex, filter.Priority, filter.Parent);
        if (existing.Count == 1 && existing[0] is U32Filter current && SameRule(current, desired))
            return new TcFilterResult(TcChange.Unchanged, (U32Filter)WithNames([current], names.NameOf)[0]);
        if (mayReplace != null && existing.FirstOrDefault(f => !mayReplace(f)) is { } refused)
            throw new FilterNotOwnedException(refused, Handle.Describe(linkName), "replaced");

        var change = existing.Count == 0 ? TcChange.Added : TcChange.Replaced;
        if (change == TcChange.Replaced)
            Socket.Execute(TcMessages.DeleteFilter(filter.LinkIndex, filter.Priority, parent: filter.Parent),
                $"remove the previous filters at pref {filter.Priority} of {Handle.Describe(linkName)} (to replace them)");
        try
        {
            Socket.Execute(TcMessages.AddFilter(desired), $"add {what}");
        }
        catch (NetlinkException e)
        {
            var (restored, lost) = change == TcChange.Replaced ? Restore(existing) : (0, 0);
            var now = ListFiltersRaw(filter.LinkIndex, filter.Priority, filter.Parent);
            string state = now.Count == restored
                ? (restored == 0 ? "Nothing was installed (checked)." : $"The previous filter{(restored > 1 ? "s were" : " was")} restored (checked).")
                : $"Pref {filter.Priority} now holds {now.Count} filter(s).";
            if (lost > 0) state += $" {lost} previous non-u32 filter(s) at this pref could not be restored.";
            if (e.Errno == ENOENT && e.KernelMessage?.Contains(MissingActionModuleText, StringComparison.OrdinalIgnoreCase) == true)
                throw new TcActionUnavailableException(e, what, MissingKinds(desired), state);
            if (e.Errno == EINVAL && filter.Parent == Tca.IngressHandle && !HasIngressQdisc(filter.LinkIndex))
                throw new NetlinkException(e.Errno, $"add {what}: the device has no ingress qdisc to attach it to (ensure one first: EnsureIngressQdisc, Add-AgentQdisc)", e.KernelMessage);
            throw new NetlinkException(e.Errno, $"add {what} ({state})", e.KernelMessage);
        }
        var readBack = WithNames(ListFiltersRaw(filter.LinkIndex, filter.Priority, filter.Parent), names.NameOf).OfType<U32Filter>().FirstOrDefault()
            ?? throw new InvalidOperationException($"The kernel accepted the {what} but it is not in the filter list afterwards.");
        return new TcFilterResult(change, readBack);
    }

    /// <summary>Removes every filter at a priority of a device; Absent when there is none (or no qdisc).</summary>
    public TcChange RemoveFilter(int linkIndex, ushort priority, uint parent = Tca.IngressHandle)
    {
        if (priority == 0) throw new ArgumentOutOfRangeException(nameof(priority), "Name the pref (1 to 65535) to remove.");
        try
        {
            Socket.Execute(TcMessages.DeleteFilter(linkIndex, priority, parent: parent), $"remove the filters at pref {priority} of {Describe(linkIndex)}");
            return TcChange.Removed;
        }
        catch (NetlinkException e) when (e.Errno == ENOENT)
        {
            return TcChange.Absent; // "Filter with specified priority/protocol not found" / "Cannot find specified filter chain."
        }
        catch (NetlinkException e) when (e.Errno == EINVAL && parent == Tca.IngressHandle && !HasIngressQdisc(linkIndex))
        {
            return TcChange.Absent; // "Parent Qdisc doesn't exists.": no ingress qdisc, hence no filter
        }
    }

    // ------------------------------------------------------------------ helpers

    private (int Restored, int Lost) Restore(List<TcFilter> previous)
    {
        int restored = 0, lost = 0;
        foreach (var f in previous)
        {
            if (f is not U32Filter u) { lost++; continue; }
            try
            {
                Socket.Execute(TcMessages.AddFilter(u), $"restore the previous u32 filter at pref {u.Priority}");
                restored++;
            }
            // ArgumentException: a filter the kernel dumps but that cannot be sent back (e.g. a mirred whose target is gone)
            catch (Exception e) when (e is NetlinkException or ArgumentException) { lost++; }
        }
        return (restored, lost);
    }

    /// <summary>Same rule = same request bytes; a kernel filter that cannot be encoded is never the same.</summary>
    private static bool SameRule(U32Filter current, U32Filter desired)
    {
        try { return TcMessages.Fingerprint(current).AsSpan().SequenceEqual(TcMessages.Fingerprint(desired)); }
        catch (ArgumentException) { return false; }
    }

    private static string[] MissingKinds(U32Filter filter)
    {
        var kinds = filter.Actions.Select(a => a.Kind).Distinct().ToList();
        // mirred is present on every kernel this project targets; name it only when it is all there is
        var suspects = kinds.Where(k => k != "mirred").ToList();
        return (suspects.Count > 0 ? suspects : kinds).ToArray();
    }

    private U32Filter Resolve(U32Filter filter, LinkNameCache names)
    {
        var actions = filter.Actions.Select(a =>
        {
            if (a is not MirredAction m) return a;
            if (m.TargetIndex == 0)
            {
                if (string.IsNullOrEmpty(m.TargetName))
                    throw new ArgumentException("A mirred action needs a target device (TargetIndex or TargetName).", nameof(filter));
                return m with { TargetIndex = names.IndexOf(m.TargetName) ?? throw new LinkNotFoundException(m.TargetName, Handle.Namespace) };
            }
            if (names.NameOf(m.TargetIndex) is not { } targetName)
                throw new ArgumentException($"The mirred target ifindex {m.TargetIndex} is not a device of {Handle.NamespaceText}: mirred can only reach devices of the filter's own namespace.", nameof(filter));
            return m with { TargetName = targetName };
        }).ToArray();
        return filter with { Actions = actions };
    }

    private Dictionary<int, string> LinkNames() => Handle.DumpLinks().ToDictionary(l => l.Index, l => l.Name);

    private static List<TcFilter> WithNames(List<TcFilter> filters, Func<int, string?> nameOf)
    {
        IReadOnlyList<TcAction> Named(IReadOnlyList<TcAction> actions) => actions
            .Select(a => a is MirredAction m ? m with { TargetName = nameOf(m.TargetIndex) } : a).ToArray();
        return filters.Select(f => f switch
        {
            U32Filter u => u with { LinkName = nameOf(u.LinkIndex), Actions = Named(u.Actions) },
            BpfFilter b => b with { LinkName = nameOf(b.LinkIndex), Actions = Named(b.Actions) },
            _ => (TcFilter)(f with { LinkName = nameOf(f.LinkIndex) }),
        }).ToList();
    }

    /// <summary>Device names and ifindexes of one operation, each asked of the kernel once (RTM_GETLINK by index or name).</summary>
    private sealed class LinkNameCache(RouteHandle handle)
    {
        private readonly Dictionary<int, string?> _names = new();
        private readonly Dictionary<string, int?> _indexes = new(StringComparer.Ordinal);

        public string? NameOf(int index)
        {
            if (index <= 0) return null;
            if (!_names.TryGetValue(index, out var name)) _names[index] = name = handle.FindLink(index)?.Name;
            return name;
        }

        public int? IndexOf(string name)
        {
            if (!_indexes.TryGetValue(name, out var index))
            {
                index = handle.FindLink(name)?.Index;
                _indexes[name] = index;
                if (index is int i) _names[i] = name;
            }
            return index;
        }
    }

    private string Describe(int linkIndex)
    {
        var link = Handle.FindLink(linkIndex);
        return link != null ? Handle.Describe(link.Name) : $"ifindex {linkIndex} in {Handle.NamespaceText}";
    }
}

/// <summary>
/// The kernel refused a filter because one of its action kinds is not available (no act_pedit module here): the
/// whole filter was rejected. The message names the module, quotes the kernel and gives the ways out.
/// </summary>
public sealed class TcActionUnavailableException : NetlinkException
{
    /// <summary>The action kinds of the filter that may be missing (pedit first of all).</summary>
    public IReadOnlyList<string> ActionKinds { get; }
    /// <summary>The kernel modules to load, e.g. act_pedit.</summary>
    public IReadOnlyList<string> ModuleNames { get; }

    internal TcActionUnavailableException(NetlinkException cause, string what, string[] kinds, string state)
        : base(cause.Errno, $"add {what}", cause.KernelMessage, Compose(what, kinds, cause.KernelMessage, state))
    {
        ActionKinds = kinds;
        ModuleNames = kinds.Select(k => "act_" + k).ToArray();
    }

    private static string Compose(string what, string[] kinds, string? kernelText, string state)
    {
        var modules = string.Join(", ", kinds.Select(k => "act_" + k));
        var load = string.Join(" ", kinds.Select(k => "act_" + k));
        bool pedit = kinds.Contains("pedit");
        return $"Cannot add the {what}: this kernel has no {modules} module for the filter's {string.Join("/", kinds)} action " +
               $"(kernel says: \"{kernelText}\"). The kernel rejects such a filter whole. {state} " +
               $"Load the {modules} module (modprobe {load}), or " +
               (pedit ? "use the Bpf backend of the interception, which rewrites the MAC with a cls_bpf program instead of pedit."
                      : "use a filter without that action.");
    }
}
