using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using NvRedirect.Core.Bpf;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Tc;

namespace NvRedirect.Core.Intercept;

/// <summary>How the MAC-rewriting rules are implemented.</summary>
public enum InterceptionBackend
{
    /// <summary>Pedit where the kernel has act_pedit, Bpf otherwise.</summary>
    Auto,
    /// <summary>u32 + pedit + mirred, byte for byte the seed's (and NeuVector's) tc filters.</summary>
    Pedit,
    /// <summary>cls_bpf direct-action programs doing the same match, rewrite and mirror.</summary>
    Bpf,
}

/// <summary>What to intercept: the seed's wiring of one workload (docs/kernel-interfaces.md, "NeuVector's filters per workload").</summary>
public sealed record InterceptionRequest
{
    /// <summary>The agent namespace holding the entry, inner and monitor ports ("" = root).</summary>
    public string Namespace { get; init; } = "";
    /// <summary>The entry port (vex): traffic from the host side arrives here.</summary>
    public string EntryLink { get; init; } = "vex";
    /// <summary>The inner port (vin): its peer is the workload's interface.</summary>
    public string InnerLink { get; init; } = "vin";
    /// <summary>The monitor port (vbr): its peer (vth) is where the datapath reads and writes.</summary>
    public string MonitorLink { get; init; } = "vbr";
    /// <summary>The workload's MAC (the container's eth0).</summary>
    public byte[] WorkloadMac { get; init; } = [];
    /// <summary>The NeuV alias the datapath sees; null = derived from the entry port's ifindex as NeuVector does.</summary>
    public byte[]? UcMac { get; init; }
    /// <summary>Pedit, Bpf or Auto.</summary>
    public InterceptionBackend Backend { get; init; } = InterceptionBackend.Auto;
    /// <summary>Pref of the monitor-port rule that returns frames to the workload (seed: 5); null = from the entry port's ifindex.</summary>
    public ushort? ToWorkloadPriority { get; init; }
    /// <summary>Pref of the monitor-port rule that returns frames to the host side (seed: 172); null = from the inner port's ifindex.</summary>
    public ushort? FromWorkloadPriority { get; init; }
    /// <summary>Leave segmentation and checksum offloads as they are on the agent-side ports.</summary>
    public bool KeepOffloads { get; init; }
    /// <summary>The kernel fast path (docs/datapath.md, "The kernel fast path"): null = on where the kernel supports it, true = required, false = off (and removed).</summary>
    public bool? FastPath { get; init; }
}

/// <summary>One installed rule of an interception.</summary>
/// <param name="Role">What the rule does, e.g. InterceptionRoles.EntryToDatapath.</param>
/// <param name="LinkName">The device.</param>
/// <param name="Priority">Its pref.</param>
/// <param name="Kind">u32 or bpf.</param>
/// <param name="Change">Added, Unchanged, Replaced or Removed.</param>
/// <param name="Filter">The filter as the kernel reports it.</param>
public sealed record InterceptionRule(string Role, string LinkName, ushort Priority, string Kind, TcChange Change, TcFilter? Filter);

/// <summary>An intercepted workload.</summary>
public sealed record InterceptionInfo
{
    /// <summary>The agent namespace ("" = root).</summary>
    public string Namespace { get; init; } = "";
    /// <summary>The workload's MAC.</summary>
    public string WorkloadMac { get; init; } = "";
    /// <summary>The NeuV alias used towards the datapath.</summary>
    public string UcMac { get; init; } = "";
    /// <summary>The broadcast alias NeuVector registers with the datapath (ff:ff:ff:00:hi:lo).</summary>
    public string BcMac { get; init; } = "";
    /// <summary>Entry port (vex).</summary>
    public string EntryLink { get; init; } = "";
    /// <summary>Inner port (vin).</summary>
    public string InnerLink { get; init; } = "";
    /// <summary>Monitor port (vbr).</summary>
    public string MonitorLink { get; init; } = "";
    /// <summary>The monitor port's peer, where the datapath runs (vth), when known.</summary>
    public string? DatapathLink { get; init; }
    /// <summary>Pedit or Bpf.</summary>
    public string Backend { get; init; } = "";
    /// <summary>Why that backend (for Auto: whether act_pedit was there).</summary>
    public string BackendReason { get; init; } = "";
    /// <summary>Pref of the monitor-port rule towards the workload.</summary>
    public ushort ToWorkloadPriority { get; init; }
    /// <summary>Pref of the monitor-port rule towards the host side.</summary>
    public ushort FromWorkloadPriority { get; init; }
    /// <summary>The eight rules (the seed's six and the two IPv6 steering rules).</summary>
    public IReadOnlyList<InterceptionRule> Rules { get; init; } = [];
    /// <summary>Whether offloads were switched off on the agent-side ports by this call.</summary>
    public bool OffloadsDisabled { get; init; }
    /// <summary>Whether the kernel fast path is installed (programs at pref 9999 on the entry and inner ports, a pinned flow map).</summary>
    public bool FastPath { get; init; }
    /// <summary>Why the fast path is on or off.</summary>
    public string FastPathReason { get; init; } = "";
    /// <summary>The fast path's two programs (not among <see cref="Rules"/>, the six steering rules).</summary>
    public IReadOnlyList<InterceptionRule> FastPathRules { get; init; } = [];
    /// <summary>Where the workload's flow map is pinned, when the fast path is on.</summary>
    public string? FastPathMap { get; init; }

    /// <summary>For a taken-over container: the interface's name inside the container (eth0), else null.</summary>
    public string? Interface { get; init; }
    /// <summary>The interface's ifindex inside the container (kept by the take-over).</summary>
    public int? InterfaceIndex { get; init; }
    /// <summary>The container's network namespace path as it was targeted (/proc/PID/ns/net, a bind mount).</summary>
    public string? NetnsPath { get; init; }
    /// <summary>The container namespace's nsfs inode (its identity).</summary>
    public ulong? NetnsInode { get; init; }
    /// <summary>A process of the container, when known.</summary>
    public int? ProcessId { get; init; }
    /// <summary>podman or docker, when the container was named through its runtime.</summary>
    public string? Runtime { get; init; }
    /// <summary>The container's name, when known.</summary>
    public string? ContainerName { get; init; }
    /// <summary>The container's id (first 12 characters), when known.</summary>
    public string? ContainerId { get; init; }
    /// <summary>True when the container's namespace is gone (it exited while intercepted): only the enforcer-side ports are left; Remove-WorkloadInterception cleans them up.</summary>
    public bool IsOrphaned { get; init; }
    /// <summary>The control socket of the datapath the workload is registered with, when any.</summary>
    public string? ControlSocket { get; init; }
    /// <summary>The workload's mode in that datapath (Discover, Monitor, Protect; None when it has no policy), when registered.</summary>
    public string? Mode { get; init; }
}

/// <summary>A pref an interception needs already holds a filter that is not this workload's; nothing was changed.</summary>
public sealed class InterceptionPriorityInUseException : InvalidOperationException
{
    /// <summary>The device.</summary>
    public string LinkName { get; }
    /// <summary>The pref in use.</summary>
    public ushort Priority { get; }

    /// <summary>Creates the exception.</summary>
    public InterceptionPriorityInUseException(string linkName, ushort priority, string message) : base(message)
    {
        LinkName = linkName;
        Priority = priority;
    }
}


/// <summary>The part each steering rule plays in an interception (InterceptionRule.Role); one spelling for the listing,
/// the take-over and the topology.</summary>
public static class InterceptionRoles
{
    /// <summary>Entry port: unicast IPv4 to the workload, rewritten to the ucmac and mirrored to the monitor port.</summary>
    public const string EntryToDatapath = "entry: to datapath";
    /// <summary>Inner port: unicast IPv4 from the workload, rewritten to the ucmac and mirrored to the monitor port.</summary>
    public const string InnerToDatapath = "inner: to datapath";
    /// <summary>Entry port: unicast IPv6 to the workload, as <see cref="EntryToDatapath"/>.</summary>
    public const string EntryIPv6ToDatapath = "entry: IPv6 to datapath";
    /// <summary>Inner port: unicast IPv6 from the workload, as <see cref="InnerToDatapath"/>.</summary>
    public const string InnerIPv6ToDatapath = "inner: IPv6 to datapath";
    /// <summary>Monitor port: what the datapath writes back to the workload, real MAC restored, to the inner port.</summary>
    public const string ToWorkload = "monitor: to workload";
    /// <summary>Monitor port: what the datapath writes back from the workload, real MAC restored, to the entry port.</summary>
    public const string ToHostSide = "monitor: to host side";
    /// <summary>Entry port: everything else (ARP, broadcast) straight to the inner port.</summary>
    public const string EntryStraightIn = "entry: straight in";
    /// <summary>Inner port: everything else straight to the entry port.</summary>
    public const string InnerStraightOut = "inner: straight out";
}

/// <summary>
/// Installs, lists and removes the seed's six rules for a workload (NeuVector's Protect-mode wiring), and two more
/// of nvr's that steer IPv6 the same way (NeuVector steers IPv4 only, so IPv6 would pass a protected workload untouched):
/// <code>
/// entry (vex)  pref 9999  ip : fast path (FastPathFilters, when on): a published flow -> redirect to vin
/// entry (vex)  pref 10000 ipv6: unicast, dst == M -> dst := U, mirror to vbr      (IPv6 to the datapath)
/// entry (vex)  pref 10001 ip : unicast, dst == M  -> dst := U, mirror to vbr      (to the datapath)
/// entry (vex)  pref 10002 all: anything else       -> mirror to vin                (straight in)
/// inner (vin)  pref 9999  ip : fast path (when on): a published flow -> redirect to vex
/// inner (vin)  pref 10000 ipv6: unicast, src == M -> src := U, mirror to vbr      (IPv6 to the datapath)
/// inner (vin)  pref 10001 ip : unicast, src == M  -> src := U, mirror to vbr      (to the datapath)
/// inner (vin)  pref 10002 all: anything else       -> mirror to vex                (straight out)
/// monitor (vbr) pref TO  all : dst == U            -> dst := M, mirror to vin     (datapath let it through, inwards)
/// monitor (vbr) pref FROM all: src == U            -> src := M, mirror to vex     (datapath let it through, outwards)
/// </code>
/// Every rule is tagged (cookie or bpf name: "nvredir1" + "ic" + M), so listing and removal only ever see ours.
/// </summary>
public static class Interception
{
    /// <summary>pref of the steering rules on the entry and inner ports.</summary>
    public const ushort SteerPriority = 10001;
    /// <summary>pref of the IPv6 steering rules on the entry and inner ports (a tc pref holds one protocol, so IPv6 has its own).</summary>
    public const ushort SteerIPv6Priority = 10000;
    /// <summary>pref of the catch-all rules on the entry and inner ports.</summary>
    public const ushort PassPriority = 10002;
    private static readonly byte[] NeuVPrefix = [0x4e, 0x65, 0x75, 0x56];

    /// <summary>NeuVector's ucmac for an entry port: 4e:65:75:56:hi:lo of its ifindex.</summary>
    public static byte[] UcMacFor(int entryIndex) => [0x4e, 0x65, 0x75, 0x56, (byte)(entryIndex >> 8), (byte)entryIndex];

    /// <summary>NeuVector's bcmac: ff:ff:ff:00:hi:lo.</summary>
    public static byte[] BcMacFor(byte[] ucMac) => [0xff, 0xff, 0xff, 0x00, ucMac[4], ucMac[5]];

    /// <summary>NeuVector's port pref: ifindex modulo 65536, 1 when that is 0.</summary>
    public static ushort PriorityFor(int ifindex) => (ushort)(ifindex % 65536 == 0 ? 1 : ifindex % 65536);

    /// <summary>The 8-byte owner tag of a workload's rules.</summary>
    public static byte[] TagFor(byte[] workloadMac) => [(byte)'i', (byte)'c', .. workloadMac];

    /// <summary>Installs (idempotently) the interception of one workload.</summary>
    public static InterceptionInfo Add(InterceptionRequest request) => Add(request, null);

    /// <summary>
    /// Installs (idempotently) the interception of one workload; <paramref name="allocator"/> (one per pipeline)
    /// remembers what the monitor port holds between calls, so allocating prefs and ucmacs for the next workload
    /// needs no dump of every workload's rules (the prefs chosen are still checked one by one).
    /// </summary>
    public static InterceptionInfo Add(InterceptionRequest request, InterceptionAllocator? allocator)
    {
        if (request.WorkloadMac is not { Length: 6 }) throw new ArgumentException("The workload MAC must be 6 bytes.");
        if ((request.WorkloadMac[0] & 1) != 0) throw new ArgumentException($"{Parse.Mac(request.WorkloadMac)} is a multicast MAC; a workload's MAC is unicast.", "WorkloadMac");
        using var handle = RouteHandle.Open(request.Namespace);
        var tc = new TrafficControl(handle);
        var entry = handle.GetLink(request.EntryLink);
        var inner = handle.GetLink(request.InnerLink);
        var monitor = handle.GetLink(request.MonitorLink);
        if (new[] { entry.Index, inner.Index, monitor.Index }.Distinct().Count() != 3)
            throw new ArgumentException("The entry, inner and monitor ports must be three different links.");
        if (request.UcMac is { } requested)
        {
            if (requested.Length != 6) throw new ArgumentException("The ucmac must be 6 bytes.", "UcMac");
            if (requested.AsSpan().SequenceEqual(request.WorkloadMac))
                throw new ArgumentException("The ucmac must differ from the workload's MAC: the two tell the directions apart.", "UcMac");
            if (!requested.AsSpan(0, 4).SequenceEqual(NeuVPrefix))
                throw new ArgumentException($"The ucmac {Parse.Mac(requested)} lacks the 4e:65:75:56 (\"NeuV\") prefix the datapath recognises workloads by.", "UcMac");
        }
        if (request.ToWorkloadPriority is { } t0 && t0 == request.FromWorkloadPriority)
            throw new ArgumentException($"The two monitor-port prefs must differ (both are {t0}).");
        var tag = TagFor(request.WorkloadMac);
        var cookie = RedirectCookie.Create(tag);

        // prefs and ucmac are allocated against what the monitor port holds (one dump, no link dump to name mirred
        // targets): every workload of the enforcer has its two return rules there
        var ports = new Dictionary<int, string> { [entry.Index] = entry.Name, [inner.Index] = inner.Name, [monitor.Index] = monitor.Name };
        var self = Parse.Mac(request.WorkloadMac);
        var where = tc.Handle.Describe(monitor.Name);
        var remembered = allocator?.Find(handle.NamespaceInode, monitor.Index);
        var usage = remembered ?? InterceptionUsage.Of(tc.ListFilters(monitor.Index, names: ports));
        byte[] uc;
        ushort to, from;
        while (true)
        {
            uc = usage.ChooseUcMac(request.UcMac, UcMacFor(entry.Index), self);
            to = usage.ChoosePriority(request.ToWorkloadPriority, PriorityFor(entry.Index), self, InterceptionRoles.ToWorkload, null, where, "ToWorkloadPriority");
            from = usage.ChoosePriority(request.FromWorkloadPriority, PriorityFor(inner.Index), self, InterceptionRoles.ToHostSide, to, where, "FromWorkloadPriority");
            if (to == from) throw new ArgumentException($"The two monitor-port prefs must differ (both are {to}).");
            // what a pipeline remembers is checked where it matters (the two prefs, pref-filtered dumps); when someone
            // else changed the monitor port meanwhile, it is read again and the choice made again
            if (remembered == null || IsFreeOrOurs(tc, monitor, to, tag) && IsFreeOrOurs(tc, monitor, from, tag)) break;
            usage = InterceptionUsage.Of(tc.ListFilters(monitor.Index, names: ports));
            remembered = null;
        }

        // every pref we are about to use on the entry and inner ports must be free or already ours for this workload
        foreach (var (link, pref) in new[] { (entry, SteerPriority), (entry, PassPriority), (inner, SteerPriority), (inner, PassPriority), (entry, SteerIPv6Priority), (inner, SteerIPv6Priority) })
            CheckPrefIsFreeOrOurs(tc, link, pref, tag);

        var rewrites = new[]
        {
            (InterceptionRoles.EntryToDatapath, new MacRule(entry.Index, SteerPriority, TcProtocol.IPv4, MacField.Destination, request.WorkloadMac, true, MacField.Destination, uc, MirredAction.EgressMirror(monitor.Index)), entry.Name),
            (InterceptionRoles.InnerToDatapath, new MacRule(inner.Index, SteerPriority, TcProtocol.IPv4, MacField.Source, request.WorkloadMac, true, MacField.Source, uc, MirredAction.EgressMirror(monitor.Index)), inner.Name),
            (InterceptionRoles.ToWorkload, new MacRule(monitor.Index, to, TcProtocol.All, MacField.Destination, uc, false, MacField.Destination, request.WorkloadMac, MirredAction.EgressMirror(inner.Index)), monitor.Name),
            (InterceptionRoles.ToHostSide, new MacRule(monitor.Index, from, TcProtocol.All, MacField.Source, uc, false, MacField.Source, request.WorkloadMac, MirredAction.EgressMirror(entry.Index)), monitor.Name),
            (InterceptionRoles.EntryIPv6ToDatapath, new MacRule(entry.Index, SteerIPv6Priority, TcProtocol.IPv6, MacField.Destination, request.WorkloadMac, true, MacField.Destination, uc, MirredAction.EgressMirror(monitor.Index)), entry.Name),
            (InterceptionRoles.InnerIPv6ToDatapath, new MacRule(inner.Index, SteerIPv6Priority, TcProtocol.IPv6, MacField.Source, request.WorkloadMac, true, MacField.Source, uc, MirredAction.EgressMirror(monitor.Index)), inner.Name),
        };
        var passes = new[]
        {
            (InterceptionRoles.EntryStraightIn, new U32Filter { LinkIndex = entry.Index, Priority = PassPriority, Selector = U32Selector.MatchAll, Actions = [MirredAction.EgressMirror(inner.Index) with { Cookie = cookie }] }, entry.Name),
            (InterceptionRoles.InnerStraightOut, new U32Filter { LinkIndex = inner.Index, Priority = PassPriority, Selector = U32Selector.MatchAll, Actions = [MirredAction.EgressMirror(entry.Index) with { Cookie = cookie }] }, inner.Name),
        };

        var installed = new List<InterceptionRule>();
        var fastRules = new List<InterceptionRule>();
        var (fastPath, fastReason) = request.FastPath == false ? (false, "off as requested (-FastPath:$false)") : FastPathFilters.Probe();
        if (request.FastPath == true && !fastPath)
            throw new InvalidOperationException($"The fast path was required but {fastReason}. Nothing was changed; leave -FastPath out to intercept without it.");
        if (request.FastPath == null && fastPath) fastReason = "on: " + fastReason;
        else if (request.FastPath == null) fastReason = "off: " + fastReason;
        else if (fastPath) fastReason = "on as requested: " + fastReason;
        var addedQdiscs = new List<int>();
        var backend = request.Backend;
        string reason = "requested";
        try
        {
            foreach (var link in new[] { inner, entry, monitor })
                if (tc.EnsureIngressQdisc(link.Index) == TcChange.Added) addedQdiscs.Add(link.Index);

            // Decide the backend before touching any rule: a failed pedit add must never cost an existing one.
            if (backend != InterceptionBackend.Bpf)
            {
                var (pedit, refusal) = ProbePedit(tc, monitor.Index, usage.Priorities.Keys);
                if (backend == InterceptionBackend.Auto)
                {
                    backend = pedit ? InterceptionBackend.Pedit : InterceptionBackend.Bpf;
                    reason = pedit ? "the kernel has act_pedit"
                        : $"the kernel has no act_pedit (\"{refusal?.KernelMessage ?? TrafficControl.MissingActionModuleText}\"), so cls_bpf programs do the MAC rewrite";
                }
                else if (!pedit)
                    throw new TcActionUnavailableException(refusal!, $"Pedit backend's rules for {Parse.Mac(request.WorkloadMac)}", ["pedit"],
                        "Nothing was changed. -Backend Auto picks Bpf on such a kernel.");
            }

            // return paths first, then the catch-alls, then the steering: traffic is never steered to a dead end
            foreach (var (role, rule, linkName) in new[] { rewrites[2], rewrites[3] })
                installed.Add(AddRewrite(tc, backend, role, linkName, rule, cookie, tag, uc));
            foreach (var (role, filter, linkName) in passes)
                installed.Add(AddU32(tc, role, linkName, filter));
            foreach (var (role, rule, linkName) in new[] { rewrites[0], rewrites[1], rewrites[4], rewrites[5] })
                installed.Add(AddRewrite(tc, backend, role, linkName, rule, cookie, tag, uc));
            // the fast path last: it forwards only what the datapath publishes, and it goes before the steering (pref 10000)
            if (fastPath)
            {
                try { FastPathFilters.Install(tc, handle.Namespace, entry, inner, request.WorkloadMac, uc, fastRules); }
                catch (Exception e) when (request.FastPath == null && (e is NetlinkException || e is System.IO.IOException || e is UnauthorizedAccessException || e is System.IO.InvalidDataException))
                {
                    // not asked for explicitly: the interception goes in without it (the steering path is complete) and says why
                    Rollback(tc, fastRules, []);
                    fastRules.Clear();
                    try { FastPathFilters.Uninstall(tc, handle.Namespace, request.WorkloadMac, [entry.Index, inner.Index]); } catch (Exception u) when (u is NetlinkException or System.IO.IOException or System.IO.InvalidDataException) { /* best effort: nothing of it can forward without the programs */ }
                    (fastPath, fastReason) = (false, $"off: it could not be installed ({e.Message})");
                }
            }
            else FastPathFilters.Uninstall(tc, handle.Namespace, request.WorkloadMac, [entry.Index, inner.Index]);
        }
        catch
        {
            Rollback(tc, [.. installed, .. fastRules], addedQdiscs);
            if (fastPath && fastRules.All(r => r.Change != TcChange.Unchanged))
                try { FastPathMap.Remove(handle.Namespace, request.WorkloadMac); } catch (NetlinkException) { /* best effort, as Rollback */ }
            throw;
        }

        bool offloadsOff = false;
        var datapathLink = monitor.PeerIndex != 0 && monitor.PeerNamespaceId == null ? handle.FindLink(monitor.PeerIndex)?.Name : null;
        if (!request.KeepOffloads)
        {
            // an inline datapath needs whole, fully checksummed frames (docs/kernel-interfaces.md, "Offloads"): no TSO/GSO/GRO, no TX checksum offload
            foreach (var name in new[] { entry.Name, inner.Name, monitor.Name, datapathLink }.OfType<string>())
                Ethtool.Set(request.Namespace, name, false, false, false, false);
            offloadsOff = true;
        }

        EnsureIndex(handle, entry.Index, request.WorkloadMac, to, from, inner.Index, monitor.Index);
        if (allocator != null)
        {
            usage.Record(self, to, from, uc);
            allocator.Remember(handle.NamespaceInode, monitor.Index, usage);
        }

        return new InterceptionInfo
        {
            Namespace = handle.Namespace,
            WorkloadMac = Parse.Mac(request.WorkloadMac), UcMac = Parse.Mac(uc), BcMac = Parse.Mac(BcMacFor(uc)),
            EntryLink = entry.Name, InnerLink = inner.Name, MonitorLink = monitor.Name, DatapathLink = datapathLink,
            Backend = backend.ToString(), BackendReason = reason,
            ToWorkloadPriority = to, FromWorkloadPriority = from,
            Rules = installed, OffloadsDisabled = offloadsOff,
            FastPath = fastPath, FastPathReason = fastReason, FastPathRules = fastRules,
            FastPathMap = fastPath ? Bpf.FastPathMap.PathFor(handle.Namespace, request.WorkloadMac) : null,
        };
    }

    /// <summary>
    /// The ucmac <see cref="Add(InterceptionRequest)"/> gives a workload whose entry port is <paramref name="entryIndex"/> when none is asked
    /// for: its own when intercepted already, NeuVector's derived one when free, else the next free (one dump of the
    /// monitor port). The container take-over registers it with the datapath before the rules go in.
    /// </summary>
    public static byte[] AllocateUcMac(RouteHandle handle, string monitorLink, int entryIndex, byte[] workloadMac, InterceptionAllocator? allocator = null)
    {
        var monitor = handle.GetLink(monitorLink);
        var names = new Dictionary<int, string> { [monitor.Index] = monitor.Name };
        var usage = allocator?.Find(handle.NamespaceInode, monitor.Index) ?? InterceptionUsage.Of(new TrafficControl(handle).ListFilters(monitor.Index, names: names));
        allocator?.Remember(handle.NamespaceInode, monitor.Index, usage);
        return usage.ChooseUcMac(null, UcMacFor(entryIndex), Parse.Mac(workloadMac));
    }

    // ------------------------------------------------------------------ the index: alternative names of the entry port

    /// <summary>The entry port's alternative name that finds a workload's interception by its MAC: "nvr-ic-" + 12 hex digits.</summary>
    internal static string IndexName(byte[] workloadMac) => "nvr-ic-" + Convert.ToHexString(workloadMac).ToLowerInvariant();

    /// <summary>The entry port's second alternative name: where the rest of the interception is ("nvr-ic-HEX-TO-FROM-INNER-MONITOR": the monitor-port prefs and the inner and monitor ifindexes).</summary>
    internal static string WhereName(byte[] workloadMac, ushort to, ushort from, int innerIndex, int monitorIndex)
        => $"{IndexName(workloadMac)}-{to}-{from}-{innerIndex}-{monitorIndex}";

    /// <summary>
    /// Gives the entry port its two index names (see <see cref="Find(string, byte[])"/>), replacing stale ones. The index
    /// only speeds lookups up (every lookup checks the rules it points at), so a kernel without alternative names, or a
    /// name another link holds, leaves it out and lookups fall back to listing.
    /// </summary>
    private static void EnsureIndex(RouteHandle handle, int entryIndex, byte[] mac, ushort to, ushort from, int innerIndex, int monitorIndex)
    {
        var key = IndexName(mac);
        var where = WhereName(mac, to, from, innerIndex, monitorIndex);
        try
        {
            if (handle.FindLinkByAltName(key) is { } holder && holder.Index != entryIndex) DropIndex(handle, holder, key);
            var entry = handle.FindLink(entryIndex);
            if (entry == null) return;
            foreach (var stale in entry.AltNames.Where(n => n.StartsWith(key + "-", StringComparison.Ordinal) && n != where))
                handle.Socket.Execute(LinkMessages.DeleteAltName(entryIndex, stale), $"remove the alternative name '{stale}' of {handle.Describe(entry.Name)}");
            if (!entry.AltNames.Contains(key))
                handle.Socket.Execute(LinkMessages.AddAltName(entryIndex, key), $"give {handle.Describe(entry.Name)} the alternative name '{key}'");
            if (!entry.AltNames.Contains(where))
                handle.Socket.Execute(LinkMessages.AddAltName(entryIndex, where), $"give {handle.Describe(entry.Name)} the alternative name '{where}'");
        }
        catch (NetlinkException) { /* no index: lookups list instead */ }
    }

    /// <summary>Removes a workload's index names from the link holding them (best effort: a stale index is never trusted).</summary>
    private static void DropIndex(RouteHandle handle, byte[] mac)
    {
        var key = IndexName(mac);
        try { if (handle.FindLinkByAltName(key) is { } holder) DropIndex(handle, holder, key); }
        catch (NetlinkException) { /* nothing to drop, or no alternative names here */ }
    }

    private static void DropIndex(RouteHandle handle, LinkRecord holder, string key)
    {
        foreach (var n in holder.AltNames.Where(n => n == key || n.StartsWith(key + "-", StringComparison.Ordinal)))
        {
            try { handle.Socket.Execute(LinkMessages.DeleteAltName(holder.Index, n), $"remove the alternative name '{n}' of {handle.Describe(holder.Name)}"); }
            catch (NetlinkException) { /* gone meanwhile */ }
        }
    }

    /// <summary>
    /// The interception of one workload, or null when it has none: found through its entry port's index names (one
    /// lookup by name, one dump of the entry port and pref-filtered dumps of the inner and monitor ports, so the cost does
    /// not depend on how many workloads the namespace holds); listed like <see cref="List(string)"/> when there is no
    /// index or it does not lead to the workload's six rules.
    /// </summary>
    public static InterceptionInfo? Find(string ns, byte[] workloadMac)
    {
        using var handle = RouteHandle.Open(ns);
        return Find(handle, workloadMac, out _) ?? List(handle, handle.DumpLinks()).FirstOrDefault(i => i.WorkloadMac == Parse.Mac(workloadMac));
    }

    /// <summary>The interception of <paramref name="mac"/> through its index alone (null when that does not lead to its six rules), and its entry port.</summary>
    internal static InterceptionInfo? Find(RouteHandle handle, byte[] mac, out LinkRecord? entry)
    {
        var key = IndexName(mac);
        entry = handle.FindLinkByAltName(key);
        if (entry == null) return null;
        var where = entry.AltNames.FirstOrDefault(n => n.StartsWith(key + "-", StringComparison.Ordinal))?[(key.Length + 1)..].Split('-');
        if (where is not { Length: 4 } || !ushort.TryParse(where[0], out var to) || !ushort.TryParse(where[1], out var from)
            || !int.TryParse(where[2], out var innerIndex) || !int.TryParse(where[3], out var monitorIndex)) return null;
        var inner = handle.FindLink(innerIndex);
        var monitor = handle.FindLink(monitorIndex);
        if (inner == null || monitor == null) return null;
        var names = new Dictionary<int, string> { [entry.Index] = entry.Name, [inner.Index] = inner.Name, [monitor.Index] = monitor.Name };
        if (monitor is { PeerIndex: not 0, PeerNamespaceId: null } && handle.FindLink(monitor.PeerIndex) is { } peer) names[peer.Index] = peer.Name;
        var tc = new TrafficControl(handle);
        var tag = Convert.ToHexString(TagFor(mac)).ToLowerInvariant();
        var rules = new List<(TcFilter Filter, string Link)>();
        // the entry and inner ports hold this workload's rules alone (read whole); the monitor port only at its two prefs
        foreach (var (link, pref) in new[] { (entry, (ushort)0), (inner, (ushort)0), (monitor, to), (monitor, from) })
        {
            try { rules.AddRange(tc.ListFilters(link.Index, pref, names: names).Where(f => TagText(f) == tag).Select(f => (f, link.Name))); }
            catch (NetlinkException e) when (e.Errno is 19 or 22) { return null; }
        }
        // a whole interception: the four rewriting rules where the index says, and the two catch-alls
        var roles = rules.Select(r => (RoleOf(r.Filter), r.Link)).ToHashSet();
        if (!roles.Contains((InterceptionRoles.EntryToDatapath, entry.Name)) || !roles.Contains((InterceptionRoles.InnerToDatapath, inner.Name))
            || !roles.Contains((InterceptionRoles.ToWorkload, monitor.Name)) || !roles.Contains((InterceptionRoles.ToHostSide, monitor.Name))
            || !roles.Contains((PassRole, entry.Name)) || !roles.Contains((PassRole, inner.Name))) return null;
        return Describe(handle, rules, new Dictionary<string, LinkRecord>(StringComparer.Ordinal) { [monitor.Name] = monitor }, names);
    }

    /// <summary>Every interception in a namespace, rebuilt from the tagged filters.</summary>
    public static List<InterceptionInfo> List(string ns)
    {
        using var handle = RouteHandle.Open(ns);
        return List(handle, handle.DumpLinks());
    }

    /// <summary>
    /// Every interception of <paramref name="handle"/>'s namespace whose links are <paramref name="links"/> (one dump
    /// the caller made): one qdisc dump and one filter dump per ingress device, nothing per workload.
    /// </summary>
    internal static List<InterceptionInfo> List(RouteHandle handle, List<LinkRecord> links)
    {
        var tc = new TrafficControl(handle);
        var byName = new Dictionary<string, LinkRecord>(StringComparer.Ordinal);
        var names = new Dictionary<int, string>();
        foreach (var l in links) { byName[l.Name] = l; names[l.Index] = l.Name; }
        return Collect(tc, names).Values.Select(v => Describe(handle, v, byName, names)).OrderBy(i => i.EntryLink, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Removes exactly the rules of one workload (found by its tag); qdiscs stay. <paramref name="links"/> limits the
    /// search to the workload's own devices when the caller knows them (its entry, inner and monitor ports).
    /// </summary>
    public static List<InterceptionRule> Remove(string ns, byte[] workloadMac, IReadOnlyCollection<string>? links = null)
    {
        using var handle = RouteHandle.Open(ns);
        var tc = new TrafficControl(handle);
        var tag = Convert.ToHexString(TagFor(workloadMac)).ToLowerInvariant();
        Dictionary<int, string>? names = null;
        if (links != null)
        {
            // the caller named the devices: look them up (no link or qdisc dump), and only those are searched
            names = new();
            foreach (var name in links)
                if (handle.FindLink(name) is { } l) names[l.Index] = l.Name;
        }
        if (!Collect(tc, names, devicesOnly: links != null).TryGetValue(tag, out var rules))
        {
            DropIndex(handle, workloadMac);
            return [];
        }
        var removed = new List<InterceptionRule>();
        // one rule per device and pref (a u32 pref may dump as several nodes); removing the pref removes them all
        var described = Describe(handle, rules);
        foreach (var r in described.FastPathRules.Concat(described.Rules).GroupBy(r => (r.Filter!.LinkIndex, r.Priority)).Select(g => g.First()))
        {
            tc.RemoveFilter(r.Filter!.LinkIndex, r.Priority);
            removed.Add(r with { Change = TcChange.Removed });
        }
        DropIndex(handle, workloadMac);
        // the programs are gone, then the map: emptied and unpinned, so a datapath still holding it publishes into nothing
        Bpf.FastPathMap.Remove(handle.Namespace, workloadMac);
        return removed;
    }

    /// <summary>
    /// Removes the rules of an interception as listed (<see cref="List(string)"/>): each device and pref its rules sat
    /// at is read alone (a pref-filtered dump) and cleared only when it still holds this workload's tagged rule, so the
    /// cost does not depend on how many workloads the namespace holds. When a rule is no longer where the listing saw
    /// it, the workload's own devices are searched as <see cref="Remove(string, byte[], IReadOnlyCollection{string}?)"/> does.
    /// </summary>
    public static List<InterceptionRule> Remove(InterceptionInfo info)
    {
        var mac = Parse.Mac(info.WorkloadMac, "workload MAC");
        var tag = Convert.ToHexString(TagFor(mac)).ToLowerInvariant();
        var removed = new List<InterceptionRule>();
        bool stale = false;
        using (var handle = RouteHandle.Open(info.Namespace))
        {
            var tc = new TrafficControl(handle);
            var none = new Dictionary<int, string>();
            // the fast path's programs first (they forward only what the datapath published), then the steering
            foreach (var r in info.FastPathRules.Concat(info.Rules).Where(r => r.Filter != null).GroupBy(r => (r.Filter!.LinkIndex, r.Priority)).Select(g => g.First()))
            {
                List<TcFilter> here;
                try { here = tc.ListFilters(r.Filter!.LinkIndex, r.Priority, names: none); }
                catch (NetlinkException e) when (e.Errno is 19 or 22) { stale = true; continue; } // the device is gone or has no qdisc
                if (!here.Any(f => TagText(f) == tag)) { stale = true; continue; }
                if (tc.RemoveFilter(r.Filter.LinkIndex, r.Priority) == TcChange.Removed) removed.Add(r with { Change = TcChange.Removed });
            }
            if (!stale)
            {
                DropIndex(handle, mac);
                // the programs are gone, then the map: emptied and unpinned (as the search below does)
                Bpf.FastPathMap.Remove(handle.Namespace, mac);
            }
        }
        if (stale || info.Rules.Count == 0)
            removed.AddRange(Remove(info.Namespace, mac, new[] { info.EntryLink, info.InnerLink, info.MonitorLink }.Where(n => n.Length > 0).ToList()));
        return removed;
    }

    /// <summary>
    /// The tagged filters of every ingress qdisc of the namespace (or, with <paramref name="devicesOnly"/>, of the
    /// devices <paramref name="names"/> holds), by hex tag, with their device names. <paramref name="names"/> names
    /// devices and mirred targets without a link dump per device.
    /// </summary>
    private static Dictionary<string, List<(TcFilter Filter, string Link)>> Collect(TrafficControl tc, Dictionary<int, string>? names = null, bool devicesOnly = false)
    {
        var found = new Dictionary<string, List<(TcFilter Filter, string Link)>>();
        IEnumerable<(int, string)> devices = devicesOnly ? names!.Select(n => (n.Key, n.Value))
            : tc.ListQdiscs().Where(q => q.IsIngress).Select(q => (q.LinkIndex, q.LinkName ?? "")).Distinct();
        foreach (var (index, name) in devices)
        {
            List<TcFilter> filters;
            try { filters = tc.ListFilters(index, names: names); }
            catch (NetlinkException e) when (devicesOnly && e.Errno is 19 or 22) { continue; } // a named device without a qdisc holds nothing
            foreach (var f in filters)
                if (TagText(f) is string tag) (found.TryGetValue(tag, out var l) ? l : found[tag] = new()).Add((f, name));
        }
        return found;
    }

    private static InterceptionInfo Describe(RouteHandle handle, List<(TcFilter Filter, string Link)> rules,
        Dictionary<string, LinkRecord>? linksByName = null, Dictionary<int, string>? names = null)
    {
        var tagged = rules.Select(r => r.Filter).First();
        var mac = Convert.FromHexString(TagText(tagged)!)[2..];
        string Link(string role) => rules.FirstOrDefault(r => RoleOf(r.Filter) == role).Link ?? "";
        ushort Pref(string role) => rules.FirstOrDefault(r => RoleOf(r.Filter) == role).Filter?.Priority ?? 0;
        var entryName = Link(InterceptionRoles.EntryToDatapath);
        var innerName = Link(InterceptionRoles.InnerToDatapath);
        // a catch-all carries no role of its own: it is the entry's or the inner port's by the device it sits on
        string Role(TcFilter f, string link) => RoleOf(f) is not PassRole ? RoleOf(f)
            : link == entryName ? InterceptionRoles.EntryStraightIn : link == innerName ? InterceptionRoles.InnerStraightOut : PassRole;
        var uc = rules.Select(r => UcMacOf(r.Filter)).FirstOrDefault(u => u != null);
        var monitorName = Link(InterceptionRoles.ToWorkload);
        var monitor = monitorName.Length == 0 ? null : linksByName != null ? linksByName.GetValueOrDefault(monitorName) : handle.FindLink(monitorName);
        return new InterceptionInfo
        {
            Namespace = handle.Namespace,
            WorkloadMac = Parse.Mac(mac), UcMac = uc != null ? Parse.Mac(uc) : "", BcMac = uc != null ? Parse.Mac(BcMacFor(uc)) : "",
            EntryLink = entryName, InnerLink = innerName, MonitorLink = monitorName,
            DatapathLink = monitor is { PeerIndex: not 0, PeerNamespaceId: null }
                ? names != null ? names.GetValueOrDefault(monitor.PeerIndex) : handle.FindLink(monitor.PeerIndex)?.Name : null,
            Backend = rules.Any(r => r.Filter is BpfFilter && !FastPathFilters.IsFastPath(r.Filter)) ? "Bpf" : "Pedit",
            BackendReason = "as installed",
            ToWorkloadPriority = Pref(InterceptionRoles.ToWorkload), FromWorkloadPriority = Pref(InterceptionRoles.ToHostSide),
            Rules = rules.Where(r => !FastPathFilters.IsFastPath(r.Filter)).Select(r => new InterceptionRule(Role(r.Filter, r.Link), r.Link, r.Filter.Priority, r.Filter.Kind, TcChange.Unchanged, r.Filter)).ToList(),
            FastPath = rules.Any(r => FastPathFilters.IsFastPath(r.Filter)),
            FastPathReason = rules.Any(r => FastPathFilters.IsFastPath(r.Filter)) ? "on: as installed" : "off: not installed",
            FastPathRules = rules.Where(r => FastPathFilters.IsFastPath(r.Filter)).Select(r => new InterceptionRule(RoleOf(r.Filter), r.Link, r.Filter.Priority, r.Filter.Kind, TcChange.Unchanged, r.Filter)).ToList(),
            FastPathMap = rules.Any(r => FastPathFilters.IsFastPath(r.Filter)) ? Bpf.FastPathMap.PathFor(handle.Namespace, mac) : null,
        };
    }

    private static bool IsFreeOrOurs(TrafficControl tc, LinkRecord link, ushort pref, byte[] tag)
    {
        var tagText = Convert.ToHexString(tag).ToLowerInvariant();
        return tc.ListFilters(link.Index, pref, names: new Dictionary<int, string>()).All(f => TagText(f) == tagText);
    }

    private static void CheckPrefIsFreeOrOurs(TrafficControl tc, LinkRecord link, ushort pref, byte[] tag)
    {
        var tagText = Convert.ToHexString(tag).ToLowerInvariant();
        foreach (var f in tc.ListFilters(link.Index, pref))
            if (TagText(f) != tagText)
                throw new InterceptionPriorityInUseException(link.Name, pref,
                    $"pref {pref} of {tc.Handle.Describe(link.Name)} already holds a filter that is not this workload's ({(RedirectCookie.IsOurs(f) ? "another interception's" : "installed by someone else")}): " +
                    "remove it, or choose other prefs with -ToWorkloadPriority/-FromWorkloadPriority. Nothing was changed.");
    }

    private static InterceptionRule AddRewrite(TrafficControl tc, InterceptionBackend backend, string role, string linkName, MacRule rule, byte[] cookie, byte[] tag, byte[] uc)
        => backend == InterceptionBackend.Bpf ? AddBpf(tc, role, linkName, rule, tag, uc) : AddU32(tc, role, linkName, rule.ToU32Filter(cookie));

    /// <summary>
    /// Whether the kernel runs pedit actions: adds, then removes, a pedit filter at a free pref of the monitor port for an
    /// ethertype no frame carries (0x88b5, IEEE local experimental), so no traffic ever meets it.
    /// </summary>
    public static (bool Available, TcActionUnavailableException? Refusal) ProbePedit(TrafficControl tc, int linkIndex, IEnumerable<ushort>? usedPrefs = null)
    {
        // the prefs in use, from the caller's dump of the device when it has one
        var used = (usedPrefs ?? tc.ListFilters(linkIndex, names: new Dictionary<int, string>()).Select(f => f.Priority)).ToHashSet();
        ushort pref = 65535;
        while (used.Contains(pref)) pref--;
        var probe = new U32Filter
        {
            LinkIndex = linkIndex, Priority = pref, Protocol = 0x88b5, Selector = U32Selector.MatchAll,
            Actions = [PeditAction.Munge([PeditKey.U8(-14, 0)], TcActionControl.Pipe) with { Cookie = RedirectCookie.Create() }],
        };
        try
        {
            tc.AddFilter(probe);
            tc.RemoveFilter(linkIndex, pref);
            return (true, null);
        }
        catch (TcActionUnavailableException e) { return (false, e); }
    }

    private static InterceptionRule AddU32(TrafficControl tc, string role, string linkName, U32Filter filter)
    {
        var result = tc.AddFilter(filter);
        return new InterceptionRule(role, linkName, filter.Priority, "u32", result.Change, result.Filter);
    }

    private static InterceptionRule AddBpf(TrafficControl tc, string role, string linkName, MacRule rule, byte[] tag, byte[] uc)
    {
        var program = rule.ToBpfProgram();
        var digest = Convert.ToHexString(SHA256.HashData(program).AsSpan(0, 4)).ToLowerInvariant();
        var name = $"{RedirectCookie.Marker}:{Convert.ToHexString(tag).ToLowerInvariant()}:{Convert.ToHexString(uc).ToLowerInvariant()}:{RoleKey(role)}:{digest}";
        var existing = tc.ListFilters(rule.LinkIndex, rule.Priority);
        if (existing.Count == 1 && existing[0] is BpfFilter b && b.Name == name)
            return new InterceptionRule(role, linkName, rule.Priority, "bpf", TcChange.Unchanged, b);
        var change = existing.Count == 0 ? TcChange.Added : TcChange.Replaced;
        if (change == TcChange.Replaced) tc.RemoveFilter(rule.LinkIndex, rule.Priority);
        using (var fd = BpfProgram.LoadSchedCls(program))
        {
            var filter = new BpfFilter { LinkIndex = rule.LinkIndex, Priority = rule.Priority, Protocol = rule.Protocol, Name = name };
            tc.Handle.Socket.Execute(TcMessages.AddFilter(filter, fd.Fd), $"attach the cls_bpf program for '{role}' at pref {rule.Priority} of {tc.Handle.Describe(linkName)}");
        }
        var readBack = tc.ListFilters(rule.LinkIndex, rule.Priority).OfType<BpfFilter>().FirstOrDefault();
        return new InterceptionRule(role, linkName, rule.Priority, "bpf", change, readBack);
    }

    /// <summary>Undoes a failed Add: the rules it added, then the qdiscs it added (only while they hold no filter).</summary>
    private static void Rollback(TrafficControl tc, List<InterceptionRule> installed, List<int> addedQdiscs)
    {
        foreach (var r in installed.Where(r => r.Change != TcChange.Unchanged).Reverse())
        {
            try { if (r.Filter != null) tc.RemoveFilter(r.Filter.LinkIndex, r.Priority); }
            catch (NetlinkException) { /* best effort: the original error matters more */ }
        }
        foreach (var index in addedQdiscs)
        {
            try { if (tc.ListFilters(index).Count == 0) tc.RemoveIngressQdisc(index); }
            catch (NetlinkException) { /* best effort, as above */ }
        }
    }

    private static string RoleKey(string role) => role switch
    {
        InterceptionRoles.EntryToDatapath => "entry",
        InterceptionRoles.InnerToDatapath => "inner",
        InterceptionRoles.ToWorkload => "to-workload",
        InterceptionRoles.ToHostSide => "to-host",
        InterceptionRoles.EntryIPv6ToDatapath => "entry6",
        InterceptionRoles.InnerIPv6ToDatapath => "inner6",
        _ => "rule",
    };

    /// <summary>The hex owner tag of a filter of ours that belongs to an interception, or null.</summary>
    internal static string? TagText(TcFilter f)
    {
        if (f is BpfFilter b && b.Name?.StartsWith(RedirectCookie.Marker + ":", StringComparison.Ordinal) == true)
        {
            var parts = b.Name.Split(':');
            return parts.Length >= 2 && parts[1].StartsWith("6963", StringComparison.Ordinal) && parts[1].Length == 16 ? parts[1] : null;
        }
        if (f is U32Filter u)
            foreach (var a in u.Actions)
                if (RedirectCookie.TagOf(a.Cookie) is { } tag && tag[0] == (byte)'i' && tag[1] == (byte)'c')
                    return Convert.ToHexString(tag).ToLowerInvariant();
        return null;
    }

    internal static byte[]? UcMacOf(TcFilter f)
    {
        if (f is BpfFilter b && b.Name?.Split(':') is { Length: >= 3 } parts && parts[2].Length == 12) return Convert.FromHexString(parts[2]);
        if (f is U32Filter u && u.Actions.OfType<PeditAction>().FirstOrDefault()?.Munges is { } munges && RoleOf(f) is InterceptionRoles.EntryToDatapath or InterceptionRoles.InnerToDatapath or InterceptionRoles.EntryIPv6ToDatapath or InterceptionRoles.InnerIPv6ToDatapath)
        {
            var mac = new byte[6];
            foreach (var m in munges)
            {
                int at = m.Offset + 14; // -14 -> 0 (dst), -8 -> 6 (src)
                int start = at >= 6 ? at - 6 : at;
                for (int i = 0; i < m.Size / 8; i++) mac[start + i] = (byte)(m.Value >> (m.Size - 8 * (i + 1)));
            }
            return mac;
        }
        if (f is U32Filter ret && RoleOf(f) is InterceptionRoles.ToWorkload or InterceptionRoles.ToHostSide)
        {
            // the return rules match the ucmac: destination at -14..-9, source at -8..-3 (whole bytes of the keys)
            int start = RoleOf(f) == InterceptionRoles.ToWorkload ? -14 : -8;
            var mac = new byte[6];
            int seen = 0;
            foreach (var k in ret.Keys)
                for (int i = 0; i < 4; i++)
                {
                    int at = k.Offset + i - start;
                    if (k.OffMask != 0 || at < 0 || at >= 6 || (byte)(k.Mask >> (24 - 8 * i)) != 0xff) continue;
                    mac[at] = (byte)(k.Value >> (24 - 8 * i));
                    seen |= 1 << at;
                }
            return seen == 0x3f ? mac : null;
        }
        return null;
    }

    private const string PassRole = "pass";

    internal static string RoleOf(TcFilter f)
    {
        if (f is BpfFilter b && b.Name?.Split(':') is { Length: >= 4 } parts)
            return parts[3] switch
            {
                "entry" => InterceptionRoles.EntryToDatapath, "inner" => InterceptionRoles.InnerToDatapath,
                "to-workload" => InterceptionRoles.ToWorkload, "to-host" => InterceptionRoles.ToHostSide,
                "entry6" => InterceptionRoles.EntryIPv6ToDatapath, "inner6" => InterceptionRoles.InnerIPv6ToDatapath,
                FastPathFilters.EntryKey => FastPathFilters.EntryRole, FastPathFilters.InnerKey => FastPathFilters.InnerRole, _ => "rule",
            };
        if (f is U32Filter u)
        {
            if (u.Priority == PassPriority && u.Keys.All(k => k.Mask == 0))
                return PassRole;
            var munge = u.Actions.OfType<PeditAction>().FirstOrDefault()?.Munges?.FirstOrDefault();
            bool dst = munge is { } m && m.Offset is -14 or -12;
            return (u.Priority, u.Protocol, dst) switch
            {
                (SteerPriority, TcProtocol.IPv4, true) => InterceptionRoles.EntryToDatapath,
                (SteerPriority, TcProtocol.IPv4, false) => InterceptionRoles.InnerToDatapath,
                (SteerIPv6Priority, TcProtocol.IPv6, true) => InterceptionRoles.EntryIPv6ToDatapath,
                (SteerIPv6Priority, TcProtocol.IPv6, false) => InterceptionRoles.InnerIPv6ToDatapath,
                (_, _, true) => InterceptionRoles.ToWorkload,
                _ => InterceptionRoles.ToHostSide,
            };
        }
        return "rule";
    }
}

/// <summary>A ucmac an interception asks for already belongs to another workload; nothing was changed.</summary>
public sealed class InterceptionUcMacInUseException : InvalidOperationException
{
    /// <summary>The ucmac.</summary>
    public string UcMac { get; }
    /// <summary>The workload that has it.</summary>
    public string OtherWorkloadMac { get; }

    /// <summary>Creates the exception.</summary>
    public InterceptionUcMacInUseException(string ucMac, string otherWorkloadMac, string message) : base(message)
    {
        UcMac = ucMac;
        OtherWorkloadMac = otherWorkloadMac;
    }
}

/// <summary>
/// What a monitor port holds, read from one dump of its filters: which pref each filter sits at and whose it is, and
/// which ucmac each intercepted workload uses. Allocates prefs and ucmacs that collide with none of it: the value
/// NeuVector derives (from ifindexes) when free, else the next free one; an explicit value is taken only when free or
/// already this workload's.
/// </summary>
public sealed class InterceptionUsage
{
    /// <summary>Each used pref and its owner: a workload MAC, or null for a filter that is not an interception's.</summary>
    public Dictionary<ushort, string?> Priorities { get; } = new();
    /// <summary>Each used ucmac (aa:bb:.. text) and the workload MAC it belongs to.</summary>
    public Dictionary<string, string> UcMacs { get; } = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>The pref each workload's return rule of a role already sits at.</summary>
    public Dictionary<(string Workload, string Role), ushort> Own { get; } = new();

    /// <summary>Adds what an interception of <paramref name="self"/> just installed (its two return rules and its ucmac).</summary>
    public void Record(string self, ushort to, ushort from, byte[] ucMac)
    {
        var owner = self.ToLowerInvariant();
        Priorities[to] = owner;
        Priorities[from] = owner;
        Own[(owner, InterceptionRoles.ToWorkload)] = to;
        Own[(owner, InterceptionRoles.ToHostSide)] = from;
        foreach (var stale in UcMacs.Where(u => string.Equals(u.Value, owner, StringComparison.OrdinalIgnoreCase)).Select(u => u.Key).ToList()) UcMacs.Remove(stale);
        UcMacs[Parse.Mac(ucMac)] = owner;
    }

    /// <summary>The usage shown by the filters of a monitor port.</summary>
    public static InterceptionUsage Of(IEnumerable<TcFilter> monitorFilters)
    {
        var u = new InterceptionUsage();
        foreach (var f in monitorFilters)
        {
            string? owner = Interception.TagText(f) is string tag ? Parse.Mac(Convert.FromHexString(tag)[2..]) : null;
            if (!u.Priorities.TryGetValue(f.Priority, out var had) || had == null) u.Priorities[f.Priority] = owner;
            if (owner == null) continue;
            var role = Interception.RoleOf(f);
            if (role is InterceptionRoles.ToWorkload or InterceptionRoles.ToHostSide) u.Own[(owner, role)] = f.Priority;
            if (Interception.UcMacOf(f) is { } uc) u.UcMacs.TryAdd(Parse.Mac(uc), owner);
        }
        return u;
    }

    /// <summary>
    /// The pref for a return rule of <paramref name="self"/>: the requested one when free or its own (else refused),
    /// the one it already has, the preferred one when free, else the next free pref above it (never <paramref name="avoid"/>).
    /// </summary>
    public ushort ChoosePriority(ushort? requested, ushort preferred, string self, string role, ushort? avoid, string where, string parameter)
    {
        if (requested is ushort r)
        {
            if (Priorities.TryGetValue(r, out var owner) && !string.Equals(owner, self, StringComparison.OrdinalIgnoreCase))
                throw new InterceptionPriorityInUseException(where, r, owner == null
                    ? $"pref {r} of {where} already holds a filter installed by someone else: remove it, or leave -{parameter} out to have a free pref allocated. Nothing was changed."
                    : $"pref {r} of {where} already holds a rule of workload {owner}: choose another -{parameter}, leave it out to have a free pref allocated, or remove that interception first (Remove-WorkloadInterception -WorkloadMac {owner}). Nothing was changed.");
            return r;
        }
        if (Own.TryGetValue((self.ToLowerInvariant(), role), out var mine) && mine != avoid) return mine;
        ushort p = preferred == 0 ? (ushort)1 : preferred;
        for (int i = 0; i < 65535; i++, p = p == 65535 ? (ushort)1 : (ushort)(p + 1))
            if (!Priorities.ContainsKey(p) && p != avoid) return p;
        throw new InvalidOperationException($"Every pref of {where} is in use; remove interceptions first.");
    }

    /// <summary>
    /// The ucmac for <paramref name="self"/>: the requested one unless another workload has it (then refused), the one
    /// it already has, the preferred one when free, else the next free 4e:65:75:56:hi:lo above it.
    /// </summary>
    public byte[] ChooseUcMac(byte[]? requested, byte[] preferred, string self)
    {
        if (requested != null)
        {
            var text = Parse.Mac(requested);
            if (UcMacs.TryGetValue(text, out var owner) && !string.Equals(owner, self, StringComparison.OrdinalIgnoreCase))
                throw new InterceptionUcMacInUseException(text, owner,
                    $"The ucmac {text} is already workload {owner}'s: the datapath tells workloads apart by it. Choose another -UcMac, leave it out to have a free one allocated, or remove that interception first (Remove-WorkloadInterception -WorkloadMac {owner}). Nothing was changed.");
            return requested;
        }
        foreach (var (uc, owner) in UcMacs)
            if (string.Equals(owner, self, StringComparison.OrdinalIgnoreCase)) return Parse.Mac(uc, "ucmac");
        int low = (preferred[4] << 8) | preferred[5];
        for (int i = 0; i < 65536; i++, low = (low + 1) & 0xffff)
        {
            byte[] candidate = [preferred[0], preferred[1], preferred[2], preferred[3], (byte)(low >> 8), (byte)low];
            if (!UcMacs.ContainsKey(Parse.Mac(candidate)) && !string.Equals(Parse.Mac(candidate), self, StringComparison.OrdinalIgnoreCase)) return candidate;
        }
        throw new InvalidOperationException("Every ucmac is in use; remove interceptions first.");
    }
}


/// <summary>
/// What one pipeline of Add-WorkloadInterception remembers of the monitor ports it allocated on (by namespace inode
/// and ifindex): read once, then kept up to date with what it installs.
/// </summary>
public sealed class InterceptionAllocator
{
    private readonly Dictionary<(ulong Namespace, int Monitor), InterceptionUsage> _usage = new();

    /// <summary>The usage remembered for a monitor port, or null.</summary>
    public InterceptionUsage? Find(ulong namespaceInode, int monitorIndex) => _usage.GetValueOrDefault((namespaceInode, monitorIndex));

    /// <summary>Remembers a monitor port's usage.</summary>
    public void Remember(ulong namespaceInode, int monitorIndex, InterceptionUsage usage) => _usage[(namespaceInode, monitorIndex)] = usage;
}
