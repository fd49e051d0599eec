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
/// <param name="Role">What the rule does, e.g. "entry: to datapath".</param>
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
    /// <summary>The six rules.</summary>
    public IReadOnlyList<InterceptionRule> Rules { get; init; } = [];
    /// <summary>Whether offloads were switched off on the agent-side ports by this call.</summary>
    public bool OffloadsDisabled { get; init; }
    /// <summary>Whether the kernel fast path is installed (programs at pref 10000 on the entry and inner ports, a pinned flow map).</summary>
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

/// <summary>
/// Installs, lists and removes the seed's six rules for a workload (NeuVector's Protect-mode wiring):
/// <code>
/// entry (vex)  pref 10001 ip : unicast, dst == M  -> dst := U, mirror to vbr      (to the datapath)
/// entry (vex)  pref 10002 all: anything else       -> mirror to vin                (straight in)
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
    /// <summary>pref of the catch-all rules on the entry and inner ports.</summary>
    public const ushort PassPriority = 10002;
    private static readonly byte[] NeuVPrefix = [0x4e, 0x65, 0x75, 0x56];
    internal const string ToWorkloadRole = "monitor: to workload", FromWorkloadRole = "monitor: to host side";

    /// <summary>NeuVector's ucmac for an entry port: 4e:65:75:56:hi:lo of its ifindex.</summary>
    public static byte[] UcMacFor(int entryIndex) => [0x4e, 0x65, 0x75, 0x56, (byte)(entryIndex >> 8), (byte)entryIndex];

    /// <summary>NeuVector's bcmac: ff:ff:ff:00:hi:lo.</summary>
    public static byte[] BcMacFor(byte[] ucMac) => [0xff, 0xff, 0xff, 0x00, ucMac[4], ucMac[5]];

    /// <summary>NeuVector's port pref: ifindex modulo 65536, 1 when that is 0.</summary>
    public static ushort PriorityFor(int ifindex) => (ushort)(ifindex % 65536 == 0 ? 1 : ifindex % 65536);

    /// <summary>The 8-byte owner tag of a workload's rules.</summary>
    public static byte[] TagFor(byte[] workloadMac) => [(byte)'i', (byte)'c', .. workloadMac];

    /// <summary>Installs (idempotently) the interception of one workload.</summary>
    public static InterceptionInfo Add(InterceptionRequest request)
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

        // prefs and ucmac are allocated against what the monitor port holds (one dump): every workload of the enforcer has its two return rules there
        var usage = InterceptionUsage.Of(tc.ListFilters(monitor.Index));
        var self = Parse.Mac(request.WorkloadMac);
        var where = tc.Handle.Describe(monitor.Name);
        var uc = usage.ChooseUcMac(request.UcMac, UcMacFor(entry.Index), self);
        ushort to = usage.ChoosePriority(request.ToWorkloadPriority, PriorityFor(entry.Index), self, ToWorkloadRole, null, where, "ToWorkloadPriority");
        ushort from = usage.ChoosePriority(request.FromWorkloadPriority, PriorityFor(inner.Index), self, FromWorkloadRole, to, where, "FromWorkloadPriority");
        if (to == from) throw new ArgumentException($"The two monitor-port prefs must differ (both are {to}).");

        // every pref we are about to use on the entry and inner ports must be free or already ours for this workload
        foreach (var (link, pref) in new[] { (entry, SteerPriority), (entry, PassPriority), (inner, SteerPriority), (inner, PassPriority) })
            CheckPrefIsFreeOrOurs(tc, link, pref, tag);

        var rewrites = new[]
        {
            ("entry: to datapath", new MacRule(entry.Index, SteerPriority, TcProtocol.IPv4, MacField.Destination, request.WorkloadMac, true, MacField.Destination, uc, MirredAction.EgressMirror(monitor.Index)), entry.Name),
            ("inner: to datapath", new MacRule(inner.Index, SteerPriority, TcProtocol.IPv4, MacField.Source, request.WorkloadMac, true, MacField.Source, uc, MirredAction.EgressMirror(monitor.Index)), inner.Name),
            ("monitor: to workload", new MacRule(monitor.Index, to, TcProtocol.All, MacField.Destination, uc, false, MacField.Destination, request.WorkloadMac, MirredAction.EgressMirror(inner.Index)), monitor.Name),
            ("monitor: to host side", new MacRule(monitor.Index, from, TcProtocol.All, MacField.Source, uc, false, MacField.Source, request.WorkloadMac, MirredAction.EgressMirror(entry.Index)), monitor.Name),
        };
        var passes = new[]
        {
            ("entry: straight in", new U32Filter { LinkIndex = entry.Index, Priority = PassPriority, Selector = U32Selector.MatchAll, Actions = [MirredAction.EgressMirror(inner.Index) with { Cookie = cookie }] }, entry.Name),
            ("inner: straight out", new U32Filter { LinkIndex = inner.Index, Priority = PassPriority, Selector = U32Selector.MatchAll, Actions = [MirredAction.EgressMirror(entry.Index) with { Cookie = cookie }] }, inner.Name),
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
                var (pedit, refusal) = ProbePedit(tc, monitor.Index);
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
            foreach (var (role, rule, linkName) in new[] { rewrites[0], rewrites[1] })
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
    /// The ucmac <see cref="Add"/> gives a workload whose entry port is <paramref name="entryIndex"/> when none is asked
    /// for: its own when intercepted already, NeuVector's derived one when free, else the next free (one dump of the
    /// monitor port). The container take-over registers it with the datapath before the rules go in.
    /// </summary>
    public static byte[] AllocateUcMac(RouteHandle handle, string monitorLink, int entryIndex, byte[] workloadMac)
    {
        var monitor = handle.GetLink(monitorLink);
        return InterceptionUsage.Of(new TrafficControl(handle).ListFilters(monitor.Index)).ChooseUcMac(null, UcMacFor(entryIndex), Parse.Mac(workloadMac));
    }

    /// <summary>Every interception in a namespace, rebuilt from the tagged filters.</summary>
    public static List<InterceptionInfo> List(string ns)
    {
        using var handle = RouteHandle.Open(ns);
        var tc = new TrafficControl(handle);
        return Collect(tc).Values.Select(v => Describe(handle, v)).OrderBy(i => i.EntryLink, StringComparer.Ordinal).ToList();
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
        if (!Collect(tc, links).TryGetValue(tag, out var rules)) return [];
        var removed = new List<InterceptionRule>();
        // one rule per device and pref (a u32 pref may dump as several nodes); removing the pref removes them all
        var described = Describe(handle, rules);
        foreach (var r in described.FastPathRules.Concat(described.Rules).GroupBy(r => (r.Filter!.LinkIndex, r.Priority)).Select(g => g.First()))
        {
            tc.RemoveFilter(r.Filter!.LinkIndex, r.Priority);
            removed.Add(r with { Change = TcChange.Removed });
        }
        // the programs are gone, then the map: emptied and unpinned, so a datapath still holding it publishes into nothing
        Bpf.FastPathMap.Remove(handle.Namespace, workloadMac);
        return removed;
    }

    /// <summary>The tagged filters of every ingress qdisc of the namespace, by hex tag, with their device names.</summary>
    private static Dictionary<string, List<(TcFilter Filter, string Link)>> Collect(TrafficControl tc, IReadOnlyCollection<string>? links = null)
    {
        var found = new Dictionary<string, List<(TcFilter Filter, string Link)>>();
        var devices = tc.ListQdiscs().Where(q => q.IsIngress && (links == null || links.Contains(q.LinkName ?? ""))).Select(q => (q.LinkIndex, q.LinkName ?? "")).Distinct();
        foreach (var (index, name) in devices)
            foreach (var f in tc.ListFilters(index))
                if (TagText(f) is string tag) (found.TryGetValue(tag, out var l) ? l : found[tag] = new()).Add((f, name));
        return found;
    }

    private static InterceptionInfo Describe(RouteHandle handle, List<(TcFilter Filter, string Link)> rules)
    {
        var tagged = rules.Select(r => r.Filter).First();
        var mac = Convert.FromHexString(TagText(tagged)!)[2..];
        string Link(string role) => rules.FirstOrDefault(r => RoleOf(r.Filter) == role).Link ?? "";
        ushort Pref(string role) => rules.FirstOrDefault(r => RoleOf(r.Filter) == role).Filter?.Priority ?? 0;
        var entryName = Link("entry: to datapath");
        var innerName = Link("inner: to datapath");
        // a catch-all carries no role of its own: it is the entry's or the inner port's by the device it sits on
        string Role(TcFilter f, string link) => RoleOf(f) is not PassRole ? RoleOf(f)
            : link == entryName ? "entry: straight in" : link == innerName ? "inner: straight out" : PassRole;
        var uc = rules.Select(r => UcMacOf(r.Filter)).FirstOrDefault(u => u != null);
        var monitorName = Link("monitor: to workload");
        var monitor = monitorName.Length > 0 ? handle.FindLink(monitorName) : null;
        return new InterceptionInfo
        {
            Namespace = handle.Namespace,
            WorkloadMac = Parse.Mac(mac), UcMac = uc != null ? Parse.Mac(uc) : "", BcMac = uc != null ? Parse.Mac(BcMacFor(uc)) : "",
            EntryLink = entryName, InnerLink = innerName, MonitorLink = monitorName,
            DatapathLink = monitor is { PeerIndex: not 0, PeerNamespaceId: null } ? handle.FindLink(monitor.PeerIndex)?.Name : null,
            Backend = rules.Any(r => r.Filter is BpfFilter && !FastPathFilters.IsFastPath(r.Filter)) ? "Bpf" : "Pedit",
            BackendReason = "as installed",
            ToWorkloadPriority = Pref("monitor: to workload"), FromWorkloadPriority = Pref("monitor: to host side"),
            Rules = rules.Where(r => !FastPathFilters.IsFastPath(r.Filter)).Select(r => new InterceptionRule(Role(r.Filter, r.Link), r.Link, r.Filter.Priority, r.Filter.Kind, TcChange.Unchanged, r.Filter)).ToList(),
            FastPath = rules.Any(r => FastPathFilters.IsFastPath(r.Filter)),
            FastPathReason = rules.Any(r => FastPathFilters.IsFastPath(r.Filter)) ? "on: as installed" : "off: not installed",
            FastPathRules = rules.Where(r => FastPathFilters.IsFastPath(r.Filter)).Select(r => new InterceptionRule(RoleOf(r.Filter), r.Link, r.Filter.Priority, r.Filter.Kind, TcChange.Unchanged, r.Filter)).ToList(),
            FastPathMap = rules.Any(r => FastPathFilters.IsFastPath(r.Filter)) ? Bpf.FastPathMap.PathFor(handle.Namespace, mac) : null,
        };
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
    public static (bool Available, TcActionUnavailableException? Refusal) ProbePedit(TrafficControl tc, int linkIndex)
    {
        var used = tc.ListFilters(linkIndex).Select(f => f.Priority).ToHashSet();
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
        "entry: to datapath" => "entry",
        "inner: to datapath" => "inner",
        "monitor: to workload" => "to-workload",
        "monitor: to host side" => "to-host",
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
        if (f is U32Filter u && u.Actions.OfType<PeditAction>().FirstOrDefault()?.Munges is { } munges && RoleOf(f) is "entry: to datapath" or "inner: to datapath")
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
        if (f is U32Filter ret && RoleOf(f) is ToWorkloadRole or FromWorkloadRole)
        {
            // the return rules match the ucmac: destination at -14..-9, source at -8..-3 (whole bytes of the keys)
            int start = RoleOf(f) == ToWorkloadRole ? -14 : -8;
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
                "entry" => "entry: to datapath", "inner" => "inner: to datapath", "to-workload" => "monitor: to workload", "to-host" => "monitor: to host side",
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
                (SteerPriority, TcProtocol.IPv4, true) => "entry: to datapath",
                (SteerPriority, TcProtocol.IPv4, false) => "inner: to datapath",
                (_, _, true) => "monitor: to workload",
                _ => "monitor: to host side",
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
            if (role is Interception.ToWorkloadRole or Interception.FromWorkloadRole) u.Own[(owner, role)] = f.Priority;
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
