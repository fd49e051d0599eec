using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Core.Intercept;

/// <summary>What to take over: a container's interfaces, the enforcer that takes them, and what to tell its datapath.</summary>
public sealed record TakeoverRequest
{
    /// <summary>The container (see <see cref="WorkloadTarget"/>).</summary>
    public required WorkloadTarget Target { get; init; }
    /// <summary>The enforcer namespace (created with its vbr/vth pair when missing).</summary>
    public string Enforcer { get; init; } = ContainerTakeover.DefaultEnforcer;
    /// <summary>The container's interfaces to take; null = every Ethernet interface but loopback.</summary>
    public string[]? Interfaces { get; init; }
    /// <summary>Pedit, Bpf or Auto.</summary>
    public InterceptionBackend Backend { get; init; } = InterceptionBackend.Auto;
    /// <summary>The kernel fast path: null = on where supported, true = required, false = off (InterceptionRequest.FastPath).</summary>
    public bool? FastPath { get; init; }
    /// <summary>The datapath's control socket; null = the datapath running in the enforcer, or a new one with Start-Datapath's defaults.</summary>
    public string? ControlSocket { get; init; }
    /// <summary>Install the rules only; register with no datapath.</summary>
    public bool NoDatapath { get; init; }
    /// <summary>The mode to set in the datapath (Discover, Monitor, Protect); null leaves the policy as it is.</summary>
    public DpWorkloadMode? Mode { get; init; }
    /// <summary>What a pipeline remembers of the monitor port between take-overs (null: read it each time).</summary>
    public InterceptionAllocator? Allocator { get; init; }
}

/// <summary>A step of a take-over or give-back failed; everything done before it was undone (or <see cref="RollbackFailures"/> says what could not be).</summary>
public sealed class TakeoverException : NetlinkException
{
    /// <summary>The step that failed, e.g. "create the replacement veth eth0 (ifindex 2)".</summary>
    public string Step { get; }
    /// <summary>The undo actions that failed in turn (empty: the state before the call is back).</summary>
    public IReadOnlyList<string> RollbackFailures { get; }
    /// <summary>The error of the failed step.</summary>
    public Exception Cause { get; }

    /// <summary>Builds the exception.</summary>
    public TakeoverException(string operation, string step, Exception cause, IReadOnlyList<string> rollbackFailures)
        : base(cause is NetlinkException n ? n.Errno : 0, step, (cause as NetlinkException)?.KernelMessage,
               $"{operation} failed at step '{step}': {cause.Message}. " +
               (rollbackFailures.Count == 0 ? "Everything done before it was undone."
                   : $"Undoing the steps before it failed too: {string.Join("; ", rollbackFailures)}."))
    {
        Step = step;
        Cause = cause;
        RollbackFailures = rollbackFailures;
    }
}

/// <summary>
/// Takes a running container's interfaces over, NeuVector's way (agent/pipe/port.go), and gives them back exactly.
/// <para>Take-over of interface X (ifindex i, name n) of container namespace C into enforcer namespace E:
/// 1. read X's link, addresses, routes of every table (both families), permanent neighbours and offload features;
/// 2. move X into E under its entry-port name (the move takes its addresses and routes away in C);
/// 3. create a veth in C named n with ifindex i, X's MAC, MTU and queue length, its peer (the inner port) in E;
/// 4. give it X's offload features, addresses (broadcast, scope, flags, lifetimes), up state, routes and neighbours;
/// 5. mark the entry port with the workload's identity (its ifalias), bring the entry and inner ports up;
/// 6. register the workload inline with the datapath of E (and set its mode);
/// 7. install the eight steering rules (<see cref="Interception"/>).</para>
/// <para>Give-back reads the replacement's state, deregisters, removes the rules, deletes the replacement (its peer
/// goes with it), moves X back under its name (it gets ifindex i again, free once the replacement is gone), clears the
/// mark and puts the state back, offloads included. Each step registers its undo; a failure undoes the steps before it
/// in reverse order and reports the step with the kernel's message.</para>
/// </summary>
public static class ContainerTakeover
{
    /// <summary>The enforcer namespace used when none is named.</summary>
    public const string DefaultEnforcer = "nvr-enforcer";
    /// <summary>The enforcer's monitor port and its peer, where the datapath runs.</summary>
    public const string MonitorLink = "vbr", DatapathLink = "vth";
    /// <summary>How the entry port's ifalias starts (the mark Get finds workloads by).</summary>
    public const string AliasPrefix = "nvredirect v1 ";

    /// <summary>The entry port's name for interface <paramref name="ifname"/> of the namespace with inode <paramref name="inode"/>: "nvx" + 10 hex digits.</summary>
    public static string EntryName(ulong inode, string ifname) => "nvx" + PortTag(inode, ifname);

    /// <summary>The inner port's name: "nvi" + the same 10 hex digits.</summary>
    public static string InnerName(ulong inode, string ifname) => "nvi" + PortTag(inode, ifname);

    private static string PortTag(ulong inode, string ifname)
        => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{inode}/{ifname}")).AsSpan(0, 5)).ToLowerInvariant();

    // ------------------------------------------------------------------ take-over

    /// <summary>Takes over the container's interfaces (all or none); returns one interception per interface.</summary>
    public static List<InterceptionInfo> TakeOver(TakeoverRequest r)
    {
        var t = r.Target;
        var enforcer = string.IsNullOrEmpty(r.Enforcer) ? DefaultEnforcer : r.Enforcer;
        NetworkNamespace.ThrowIfInvalid(enforcer);
        using var hc = RouteHandle.Open(t.NetnsPath);
        if (hc.NamespaceInode != t.NetnsInode)
            throw new ArgumentException($"{t.Display} no longer has the network namespace it had when it was named (inode {t.NetnsInode}, now {hc.NamespaceInode}): name it again.");
        var links = hc.DumpLinks();
        var selected = r.Interfaces is { Length: > 0 }
            ? r.Interfaces.Select(n => links.FirstOrDefault(l => l.Name == n) ?? throw new LinkNotFoundException(n, t.NetnsPath)).ToList()
            : links.Where(l => l.HardwareType == 1 && (l.Flags & Rtnl.IFF_LOOPBACK) == 0).ToList();
        if (selected.Count == 0)
            throw new ArgumentException($"{t.Display} has no Ethernet interface to take over (only {string.Join(", ", links.Select(l => l.Name))}).");
        foreach (var l in selected)
            if (l.HardwareType != 1 || l.Address.Length != 6)
                throw new ArgumentException($"'{l.Name}' of {t.Display} is not an Ethernet interface; only Ethernet interfaces (veth, macvlan...) can be taken over.");

        var steps = new Steps($"Taking over {t.Display}");
        var results = new List<InterceptionInfo>();
        DpClient? client = null;
        try
        {
            // the shared parts first (undone last): the enforcer and its datapath, each undone only when this call made it
            bool made = !NetworkNamespace.Exists(enforcer);
            steps.Run($"create the enforcer namespace '{enforcer}' with its {MonitorLink}/{DatapathLink} pair", () => EnsureEnforcer(enforcer),
                made ? () => NetworkNamespace.Delete(enforcer) : null);
            using var he = RouteHandle.Open(enforcer);
            string? socket = null;
            int? startedPid = null;
            if (!r.NoDatapath)
                steps.Run($"find or start the datapath of namespace '{enforcer}'", () => (client, socket, startedPid) = OpenDatapath(enforcer, r.ControlSocket),
                    () => { if (startedPid is int pid) DatapathProcess.Stop(pid, socket!, TimeSpan.FromSeconds(10), force: false); });
            foreach (var x in selected)
            {
                var entryName = EntryName(t.NetnsInode, x.Name);
                // looked up by name (its entry port) and by MAC (the interceptions' index), never by listing every workload
                var existing = he.FindLink(entryName);
                if (existing != null && TakeoverMark.Parse(existing.Alias) != null)
                {
                    // idempotent: already taken over; only the mode may change
                    var already = Find(enforcer, Parse.Mac(existing.Address), withDatapath: false) ?? List(enforcer, withDatapath: false).First(i => i.EntryLink == entryName);
                    if (client != null && r.Mode is { } m) SetMode(client, already.WorkloadMac, m);
                    results.Add(client != null ? already with { Mode = client.State([already.WorkloadMac]).FindWorkload(already.WorkloadMac)?.Mode.ToString() } : already);
                    continue;
                }
                if (he.FindLinkByAltName(Interception.IndexName(x.Address)) is { } clash)
                    throw new ArgumentException($"The MAC {Parse.Mac(x.Address)} of '{x.Name}' is already intercepted in namespace '{enforcer}' (entry port {clash.Name}); a workload's MAC identifies its rules, so two workloads in one enforcer need different MACs.");
                if (existing != null) throw new LinkExistsException(entryName, enforcer);
                results.Add(TakeOverOne(steps, r, enforcer, hc, he, x, client, socket));
            }
        }
        catch (TakeoverException) { throw; }
        catch (Exception e) when (e is NetlinkException or ArgumentException or InvalidOperationException)
        {
            if (!steps.AnyDone) throw; // refused before anything changed: the error as it is
            throw steps.Fail("check the interfaces", e);
        }
        finally { client?.Dispose(); }
        return results;
    }

    private static InterceptionInfo TakeOverOne(Steps steps, TakeoverRequest r, string enforcer, RouteHandle hc, RouteHandle he, LinkRecord x, DpClient? client, string? socket)
    {
        var t = r.Target;
        steps.NextGroup();
        var entryName = EntryName(t.NetnsInode, x.Name);
        var innerName = InnerName(t.NetnsInode, x.Name);
        var mac = Parse.Mac(x.Address);
        var state = steps.Run($"read the state of '{x.Name}'", () => InterfaceState.Capture(hc, t.NetnsPath, x));
        using var enforcerFd = RouteHandle.OpenNamespaceFd(enforcer);
        using var containerFd = RouteHandle.OpenNamespaceFd(t.NetnsPath);
        int efd = enforcerFd.Fd, cfd = containerFd.Fd;

        steps.Run($"move '{x.Name}' (ifindex {x.Index}) into namespace '{enforcer}' as {entryName}",
            () => hc.Socket.Execute(LinkMessages.Move(x.Index, efd, entryName), $"move {hc.Describe(x.Name)} to namespace '{enforcer}' as '{entryName}'"),
            () =>
            {
                var entry = he.GetLink(entryName);
                he.Socket.Execute(LinkMessages.SetAlias(entry.Index, ""), $"clear the alias of {he.Describe(entryName)}");
                using var fd = RouteHandle.OpenNamespaceFd(t.NetnsPath);
                MoveBack(he, entry.Index, fd.Fd, x.Name, x.Index, $"move {he.Describe(entryName)} back as '{x.Name}' (ifindex {x.Index})");
                var back = hc.GetLink(x.Name);
                Ethtool.SetFeatures(t.NetnsPath, x.Name, state.Features);
                state.Apply(hc, back.Index);
            });

        steps.Run($"create the replacement veth '{x.Name}' (ifindex {x.Index}) with its peer {innerName} in namespace '{enforcer}'",
            () =>
            {
                hc.Socket.Execute(LinkMessages.CreateVethAt(x.Index, x.Name, x.Address, x.Mtu, x.TxQueueLength, innerName, efd),
                    $"create veth {x.Name} (ifindex {x.Index}) in {hc.NamespaceText} with peer '{innerName}' in namespace '{enforcer}'");
            },
            () => hc.Socket.Execute(LinkMessages.Delete(x.Index), $"remove the replacement {hc.Describe(x.Name)}"));

        steps.Run($"give the replacement '{x.Name}' the offloads, addresses, routes and neighbours of the original", () =>
        {
            Ethtool.SetFeatures(t.NetnsPath, x.Name, state.Features);
            state.Apply(hc, x.Index);
        });

        var entry = he.GetLink(entryName);
        var inner = he.GetLink(innerName);
        var alias = new TakeoverMark(x.Name, x.Index, t.NetnsInode, t.NetnsPath, t.ProcessId, t.Runtime, t.ContainerName, t.ContainerId, socket).ToAlias();
        steps.Run($"mark and bring up the entry port {entryName} and the inner port {innerName}", () =>
        {
            he.Socket.Execute(LinkMessages.SetAlias(entry.Index, alias), $"set the alias of {he.Describe(entryName)}");
            he.SetUp(entry, true);
            he.SetUp(inner, true);
        });

        var uc = Interception.AllocateUcMac(he, MonitorLink, entry.Index, x.Address, r.Allocator);
        if (client != null)
            steps.Run($"register {mac} inline with the datapath at {socket}", () =>
            {
                client.Apply(DpRequests.AddMac(DatapathLink, mac, Parse.Mac(uc), Parse.Mac(Interception.BcMacFor(uc)), null, false));
                if (r.Mode is { } m) SetMode(client, mac, m);
            }, () => client.Apply(DpRequests.DeleteMac(mac)));

        var info = steps.Run($"install the steering rules for {mac}", () => Interception.Add(new InterceptionRequest
        {
            Namespace = enforcer, EntryLink = entryName, InnerLink = innerName, MonitorLink = MonitorLink,
            WorkloadMac = x.Address, UcMac = uc, Backend = r.Backend, FastPath = r.FastPath,
        }, r.Allocator), () => Interception.Remove(enforcer, x.Address, [entryName, innerName, MonitorLink]));

        string? mode = null;
        if (client != null) mode = client.State([mac]).FindWorkload(mac)?.Mode.ToString();
        return Describe(info, TakeoverMark.Parse(alias)!, orphaned: false, socket, mode);
    }

    private static void SetMode(DpClient client, string mac, DpWorkloadMode mode)
    {
        var current = client.Policies([mac]).Policies.FirstOrDefault();
        bool has = current is { HasPolicy: true };
        var chunks = DpRequests.Policy(has ? DpRequests.PolicyModify : DpRequests.PolicyAdd, [mac], DpPolicy.DefaultActionOf(mode),
            current?.Direction ?? DpDirection.Both, current?.Rules ?? [], modeSwitchTap: false, expectVersion: current?.Version);
        foreach (var c in chunks) client.Apply(c);
    }

    /// <summary>The datapath serving <paramref name="socket"/> (started there when nothing answers), or the one running in the enforcer (started with the defaults when none); its service port is the enforcer's vth.</summary>
    private static (DpClient, string, int?) OpenDatapath(string enforcer, string? socket)
    {
        int? started = null;
        if (socket == null)
        {
            var running = DatapathProcess.Find(TimeSpan.FromSeconds(2)).FirstOrDefault(d => d.Namespace == enforcer);
            if (running != null) socket = running.ControlSocket;
            else
            {
                var dp = DatapathProcess.Start(new DatapathStartRequest { Namespace = enforcer });
                (socket, started) = (dp.ControlSocket, dp.Pid);
            }
        }
        else
        {
            bool answers;
            using (var probe = DpClient.Open(socket, TimeSpan.FromSeconds(2))) answers = probe.KeepAlive();
            if (!answers) started = DatapathProcess.Start(new DatapathStartRequest { Namespace = enforcer, ControlSocket = socket }).Pid;
        }
        var client = DpClient.Open(socket);
        try
        {
            var state = client.State([]);
            if (state.Namespace != enforcer)
                throw new ArgumentException($"The datapath at {socket} runs in {(state.Namespace.Length == 0 ? "the root namespace" : $"namespace '{state.Namespace}'")}, not in the enforcer '{enforcer}': its service port cannot be the enforcer's {DatapathLink}. Give the control socket of a datapath in '{enforcer}', or a free one.");
            if (!state.ServicePorts.Contains(DatapathLink)) client.Apply(DpRequests.AddServicePort(DatapathLink, false));
            return (client, socket, started);
        }
        catch
        {
            client.Dispose();
            if (started is int pid) DatapathProcess.Stop(pid, socket, TimeSpan.FromSeconds(10), force: false);
            throw;
        }
    }

    /// <summary>Creates the enforcer namespace and its vbr/vth monitor pair when missing, and brings both up.</summary>
    public static void EnsureEnforcer(string enforcer)
    {
        if (!NetworkNamespace.Exists(enforcer)) NetworkNamespace.Create(enforcer);
        using var he = RouteHandle.Open(enforcer);
        if (he.FindLink(MonitorLink) == null) he.CreateVeth(MonitorLink, DatapathLink, null);
        he.SetUp(he.GetLink(MonitorLink), true);
        he.SetUp(he.GetLink(DatapathLink), true);
        if (he.FindLink("lo") is { } lo) he.SetUp(lo, true);
    }

    // ------------------------------------------------------------------ give-back

    /// <summary>
    /// Gives a taken-over interface back (or, for an orphan, removes what is left of it): deregisters it from the
    /// datapath, removes its rules, deletes the replacement and moves the original back with the replacement's state.
    /// </summary>
    public static void GiveBack(InterceptionInfo info)
    {
        var enforcer = info.Namespace;
        using var he = RouteHandle.Open(enforcer);
        var entry = he.GetLink(info.EntryLink);
        var mark = TakeoverMark.Parse(entry.Alias)
            ?? throw new ArgumentException($"{he.Describe(info.EntryLink)} carries no take-over mark: it is not a taken-over container interface (remove lab interceptions by -WorkloadMac).");
        var mac = info.WorkloadMac;
        var macBytes = Parse.Mac(mac, "workload MAC");
        var steps = new Steps($"Giving back '{mark.Interface}' of {mark.Display}");
        DpClient? client = null;
        try
        {
            DpWorkload? registered = null;
            if (mark.ControlSocket != null)
            {
                try
                {
                    client = DpClient.Open(mark.ControlSocket, TimeSpan.FromSeconds(5));
                    registered = client.KeepAlive() ? client.State([mac]).FindWorkload(mac) : null;
                }
                catch (DatapathException) { registered = null; } // no datapath any more: nothing to deregister
            }
            if (registered != null)
            {
                var policy = client!.Policies([mac]).Policies.FirstOrDefault();
                steps.Run($"deregister {mac} from the datapath at {mark.ControlSocket}", () => client.Apply(DpRequests.DeleteMac(mac)), () =>
                {
                    client.Apply(DpRequests.AddMac(registered.Interface, mac, registered.UcMac, registered.BcMac, null, registered.Tap));
                    if (policy is { HasPolicy: true })
                        foreach (var c in DpRequests.Policy(DpRequests.PolicyAdd, [mac], policy.DefaultAction, policy.Direction, policy.Rules)) client.Apply(c);
                });
            }
            var backend = info.Backend == "Bpf" ? InterceptionBackend.Bpf : InterceptionBackend.Pedit;
            var uc = string.IsNullOrEmpty(info.UcMac) ? null : Parse.Mac(info.UcMac, "ucmac");
            // the rules where the listing saw them (pref by pref), not a search of the monitor port's every rule
            steps.Run($"remove the steering rules of {mac}", () => Interception.Remove(info with { InnerLink = InnerName(mark.Inode, mark.Interface), MonitorLink = MonitorLink }), () => Interception.Add(new InterceptionRequest
            {
                Namespace = enforcer, EntryLink = info.EntryLink, InnerLink = InnerName(mark.Inode, mark.Interface), MonitorLink = MonitorLink,
                WorkloadMac = macBytes, UcMac = uc, Backend = backend,
            }));

            var path = mark.Locate();
            if (path == null || he.FindLink(InnerName(mark.Inode, mark.Interface)) == null)
            {
                // the container is gone (or its replacement interface with it): what is left is the original, a veth whose peer sits on the host's bridge
                steps.Run($"remove the orphaned entry port {info.EntryLink}", () => he.Delete(entry));
                return;
            }
            using var hc = RouteHandle.Open(path);
            var replacement = hc.FindLink(mark.InterfaceIndex) is { } l && l.Name == mark.Interface ? l
                : hc.FindLink(mark.Interface) ?? throw new LinkNotFoundException(mark.Interface, path);
            var state = steps.Run($"read the state of the replacement '{mark.Interface}'", () => InterfaceState.Capture(hc, path, replacement));
            var innerName = InnerName(mark.Inode, mark.Interface);
            steps.Run($"remove the replacement '{mark.Interface}' (and its peer {innerName})",
                () => hc.Socket.Execute(LinkMessages.Delete(replacement.Index), $"remove {hc.Describe(replacement.Name)}"),
                () =>
                {
                    using var efd = RouteHandle.OpenNamespaceFd(enforcer);
                    hc.Socket.Execute(LinkMessages.CreateVethAt(replacement.Index, replacement.Name, replacement.Address, replacement.Mtu, replacement.TxQueueLength, innerName, efd.Fd),
                        $"create the replacement {hc.Describe(replacement.Name)} again");
                    Ethtool.SetFeatures(path, replacement.Name, state.Features);
                    state.Apply(hc, replacement.Index);
                    he.SetUp(he.GetLink(innerName), true);
                });
            steps.Run($"move {info.EntryLink} back into the container as '{mark.Interface}'", () =>
            {
                he.Socket.Execute(LinkMessages.SetAlias(entry.Index, ""), $"clear the alias of {he.Describe(entry.Name)}");
                he.SetUp(entry, false);
                using var cfd = RouteHandle.OpenNamespaceFd(path);
                MoveBack(he, entry.Index, cfd.Fd, mark.Interface, mark.InterfaceIndex, $"move {he.Describe(entry.Name)} into {hc.NamespaceText} as '{mark.Interface}' (ifindex {mark.InterfaceIndex})");
            }, () =>
            {
                var back = hc.GetLink(mark.Interface);
                using var efd = RouteHandle.OpenNamespaceFd(enforcer);
                hc.Socket.Execute(LinkMessages.Move(back.Index, efd.Fd, info.EntryLink), $"move {hc.Describe(back.Name)} to namespace '{enforcer}' as '{info.EntryLink}' again");
                var again = he.GetLink(info.EntryLink);
                he.Socket.Execute(LinkMessages.SetAlias(again.Index, entry.Alias!), $"mark {he.Describe(again.Name)} again");
                he.SetUp(again, true);
            });
            steps.Run($"give '{mark.Interface}' its offloads, addresses, routes and neighbours back", () =>
            {
                var original = hc.GetLink(mark.Interface);
                Ethtool.SetFeatures(path, mark.Interface, state.Features);
                state.Apply(hc, original.Index);
            });
        }
        catch (TakeoverException) { throw; }
        catch (Exception e) when (e is NetlinkException or ArgumentException or InvalidOperationException)
        {
            throw steps.Fail("look up the workload", e);
        }
        finally { client?.Dispose(); }
    }

    /// <summary>
    /// Moves a link into the container under its name and original ifindex (IFLA_NEW_IFINDEX); a kernel that does not
    /// take the attribute gets the move without it (the link then keeps its current index when that is free).
    /// </summary>
    private static void MoveBack(RouteHandle from, int index, int containerFd, string name, int originalIndex, string what)
    {
        try { from.Socket.Execute(LinkMessages.Move(index, containerFd, name, originalIndex), what); }
        catch (NetlinkException e) when (e.Errno is 95 or 22 && e.KernelMessage?.Contains("ifindex", StringComparison.OrdinalIgnoreCase) != true)
        {
            from.Socket.Execute(LinkMessages.Move(index, containerFd, name), what + " (without asking for the ifindex: this kernel cannot)");
        }
    }

    // ------------------------------------------------------------------ live state

    /// <summary>
    /// Every interception of the enforcer, from the kernel (tagged rules, marked entry ports) and, with
    /// <paramref name="withDatapath"/>, the datapath's mode for each. A marked entry port whose container or inner port
    /// is gone is reported as orphaned; interceptions without a mark (lab topologies) are listed as they are.
    /// </summary>
    public static List<InterceptionInfo> List(string enforcer, bool withDatapath = true)
    {
        // one link dump, one qdisc dump, one filter dump per ingress device; everything else is looked up in them
        using var he = RouteHandle.Open(enforcer);
        var links = he.DumpLinks();
        var ruled = Interception.List(he, links);
        var byEntry = new Dictionary<string, InterceptionInfo>(StringComparer.Ordinal);
        foreach (var i in ruled) byEntry.TryAdd(i.EntryLink, i);
        var names = links.Select(l => l.Name).ToHashSet(StringComparer.Ordinal);
        var result = new List<InterceptionInfo>();
        var modes = new Dictionary<string, DatapathInfo?>(StringComparer.Ordinal);
        foreach (var link in links)
        {
            if (TakeoverMark.Parse(link.Alias) is not { } mark) continue;
            var mac = Parse.Mac(link.Address);
            var info = byEntry.GetValueOrDefault(link.Name) ?? new InterceptionInfo
            {
                Namespace = enforcer, WorkloadMac = mac, EntryLink = link.Name, InnerLink = InnerName(mark.Inode, mark.Interface),
                MonitorLink = MonitorLink, Backend = "", BackendReason = "no rules left",
            };
            bool orphaned = !names.Contains(InnerName(mark.Inode, mark.Interface)) || mark.Locate() == null;
            string? mode = null;
            if (withDatapath && mark.ControlSocket != null)
            {
                if (!modes.TryGetValue(mark.ControlSocket, out var dp))
                {
                    try { using var c = DpClient.Open(mark.ControlSocket, TimeSpan.FromSeconds(2)); dp = c.KeepAlive() ? c.State() : null; }
                    catch (DatapathException) { dp = null; }
                    modes[mark.ControlSocket] = dp;
                }
                mode = dp?.FindWorkload(mac)?.Mode.ToString();
            }
            result.Add(Describe(info, mark, orphaned, mark.ControlSocket, mode));
        }
        var marked = result.Select(r => r.EntryLink).ToHashSet(StringComparer.Ordinal);
        result.AddRange(ruled.Where(i => !marked.Contains(i.EntryLink)));
        return result.OrderBy(i => i.EntryLink, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// The interception of one workload MAC in the enforcer (as <see cref="List"/> shows it), or null: through the
    /// entry port's index (<see cref="Interception.Find(string, byte[])"/>), so finding one costs the same however many
    /// workloads the enforcer holds; by listing when the index does not lead to it (an orphan, an older interception).
    /// </summary>
    public static InterceptionInfo? Find(string enforcer, string workloadMac, bool withDatapath = true)
    {
        var mac = Parse.Mac(workloadMac, "workload MAC");
        using (var he = RouteHandle.Open(enforcer))
        {
            if (Interception.Find(he, mac, out var entry) is { } info && entry != null)
            {
                if (TakeoverMark.Parse(entry.Alias) is not { } mark) return info; // a lab interception
                string? mode = null;
                if (withDatapath && mark.ControlSocket != null)
                {
                    try
                    {
                        using var c = DpClient.Open(mark.ControlSocket, TimeSpan.FromSeconds(2));
                        mode = c.KeepAlive() ? c.State([info.WorkloadMac]).FindWorkload(info.WorkloadMac)?.Mode.ToString() : null;
                    }
                    catch (DatapathException) { mode = null; }
                }
                // its inner port holds its rules, so only the container can be gone
                return Describe(info, mark, orphaned: mark.Locate() == null, mark.ControlSocket, mode);
            }
        }
        return List(enforcer, withDatapath).FirstOrDefault(i => i.WorkloadMac == Parse.Mac(mac));
    }

    /// <summary>
    /// The interceptions of a container's taken-over interfaces, found from the container's side: its replacement
    /// interfaces carry the taken-over interfaces' names, which give their entry ports' names, whose index gives the
    /// rest (<see cref="Find"/>), so finding them costs the same however many workloads the enforcer holds. Empty when
    /// the container is gone or none of its interfaces leads to a marked entry port (the caller then lists).
    /// </summary>
    public static List<InterceptionInfo> FindTakenOver(string enforcer, WorkloadTarget target, bool withDatapath = true)
    {
        var found = new List<InterceptionInfo>();
        var path = target.Locate();
        if (path == null) return found;
        List<string> names;
        using (var hc = RouteHandle.Open(path)) names = hc.DumpLinks().Select(l => l.Name).ToList();
        var macs = new List<string>();
        using (var he = RouteHandle.Open(enforcer))
            foreach (var name in names)
                if (he.FindLink(EntryName(target.NetnsInode, name)) is { } entry && TakeoverMark.Parse(entry.Alias) is { } mark && mark.Inode == target.NetnsInode)
                    macs.Add(Parse.Mac(entry.Address));
        foreach (var mac in macs)
            if (Find(enforcer, mac, withDatapath) is { } info) found.Add(info);
        return found;
    }

    private static InterceptionInfo Describe(InterceptionInfo info, TakeoverMark mark, bool orphaned, string? socket, string? mode) => info with
    {
        Interface = mark.Interface, InterfaceIndex = mark.InterfaceIndex, NetnsPath = mark.NetnsPath, NetnsInode = mark.Inode,
        ProcessId = mark.ProcessId, Runtime = mark.Runtime, ContainerName = mark.ContainerName, ContainerId = mark.ContainerId,
        IsOrphaned = orphaned, ControlSocket = socket, Mode = mode, DatapathLink = info.DatapathLink ?? DatapathLink,
        InnerLink = info.InnerLink.Length > 0 ? info.InnerLink : InnerName(mark.Inode, mark.Interface), // an orphan's inner port went with its container
    };

        // ------------------------------------------------------------------ steps and their undo

    /// <summary>
    /// The steps done so far and their undo actions. Steps belong to groups (one per interface): a failure undoes the
    /// groups in the order they were done, each one's steps in reverse, so interfaces come back in their original order
    /// (the kernel lists their routes as before).
    /// </summary>
    private sealed class Steps(string operation)
    {
        private readonly List<(int Group, string Name, Action Undo)> _done = new();
        private int _group;

        /// <summary>Whether any step with an undo was done (else a failure has nothing to roll back).</summary>
        public bool AnyDone => _done.Count > 0;

        /// <summary>Starts the steps of the next interface.</summary>
        public void NextGroup() => _group++;

        public void Run(string name, Action work, Action? undo = null) => Run(name, () => { work(); return 0; }, undo);

        public T Run<T>(string name, Func<T> work, Action? undo = null)
        {
            T result;
            try { result = work(); }
            catch (Exception e) when (e is NetlinkException or ArgumentException or InvalidOperationException or DatapathException)
            {
                throw Fail(name, e);
            }
            if (undo != null) _done.Add((_group, name, undo));
            return result;
        }

        public TakeoverException Fail(string name, Exception e)
        {
            var failures = new List<string>();
            // group 0 holds the shared parts (enforcer, datapath): undone last
            foreach (var group in _done.GroupBy(d => d.Group).OrderBy(g => g.Key == 0 ? int.MaxValue : g.Key))
                foreach (var (_, step, undo) in group.Reverse())
                {
                    try { undo(); }
                    catch (Exception u) { failures.Add($"undoing '{step}': {u.Message}"); }
                }
            _done.Clear();
            return new TakeoverException(operation, name, e, failures);
        }
    }
}

/// <summary>
/// The identity of a taken-over interface, kept in its entry port's ifalias (the kernel's, so a fresh session finds it):
/// "nvredirect v1 if=eth0 ix=2 ino=4026532... ns=PATH pid=123 rt=podman name=web id=0123456789ab dp=SOCKET", values
/// URI-escaped.
/// </summary>
public sealed record TakeoverMark(string Interface, int InterfaceIndex, ulong Inode, string NetnsPath, int? ProcessId, string? Runtime,
    string? ContainerName, string? ContainerId, string? ControlSocket)
{
    private const int MaxAlias = 255;

    /// <summary>As the container target it came from.</summary>
    public WorkloadTarget Target => new(NetnsPath, Inode, ProcessId, Runtime, ContainerName, ContainerId);

    /// <summary>See <see cref="WorkloadTarget.Display"/>.</summary>
    public string Display => Target.Display;

    /// <summary>A path that reaches the container's namespace now, or null when it is gone.</summary>
    public string? Locate() => Target.Locate();

    /// <summary>The alias text; refused when longer than the kernel keeps (255 bytes).</summary>
    public string ToAlias()
    {
        var parts = new List<string> { $"if={E(Interface)}", $"ix={InterfaceIndex}", $"ino={Inode}", $"ns={E(NetnsPath)}" };
        if (ProcessId is int pid) parts.Add($"pid={pid}");
        if (Runtime != null) parts.Add($"rt={E(Runtime)}");
        if (ContainerId != null) parts.Add($"id={E(ContainerId.Length > 12 ? ContainerId[..12] : ContainerId)}");
        if (ControlSocket != null) parts.Add($"dp={E(ControlSocket)}");
        if (ContainerName != null) parts.Add($"name={E(ContainerName)}");
        var text = ContainerTakeover.AliasPrefix + string.Join(' ', parts);
        if (Encoding.UTF8.GetByteCount(text) > MaxAlias)
            throw new ArgumentException($"The workload's identity does not fit in the entry port's alias ({Encoding.UTF8.GetByteCount(text)} bytes, at most {MaxAlias}): use a shorter control socket path or netns path.");
        return text;
    }

    private static string E(string s) => Uri.EscapeDataString(s);

    /// <summary>Reads an alias; null when it is not a take-over mark.</summary>
    public static TakeoverMark? Parse(string? alias)
    {
        if (alias == null || !alias.StartsWith(ContainerTakeover.AliasPrefix, StringComparison.Ordinal)) return null;
        var kv = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in alias[ContainerTakeover.AliasPrefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            if (eq > 0) kv[part[..eq]] = Uri.UnescapeDataString(part[(eq + 1)..]);
        }
        if (!kv.TryGetValue("if", out var ifname) || !int.TryParse(kv.GetValueOrDefault("ix"), out var ix) || !ulong.TryParse(kv.GetValueOrDefault("ino"), out var ino)) return null;
        return new TakeoverMark(ifname, ix, ino, kv.GetValueOrDefault("ns") ?? "", int.TryParse(kv.GetValueOrDefault("pid"), out var pid) ? pid : null,
            kv.GetValueOrDefault("rt"), kv.GetValueOrDefault("name"), kv.GetValueOrDefault("id"), kv.GetValueOrDefault("dp"));
    }
}

/// <summary>
/// What a take-over carries from one interface to another and back: the link (MAC, MTU, txqueuelen, up state), its
/// addresses as dumped, its routes of every table and both families (all but the kernel's own, which come back with the
/// addresses), its permanent neighbours and its offload features.
/// </summary>
/// <param name="Link">The link as it was.</param>
/// <param name="Addresses">Its addresses, in the kernel's order.</param>
/// <param name="Routes">Its routes that the kernel did not make itself.</param>
/// <param name="Neighbours">Its permanent neighbours.</param>
/// <param name="Features">Its offload features as requested (<see cref="Ethtool.GetFeatures"/>).</param>
public sealed record InterfaceState(LinkRecord Link, List<RtnlObject> Addresses, List<RtnlObject> Routes, List<RtnlObject> Neighbours, uint[] Features)
{
    /// <summary>How long a route whose gateway is not reachable yet (an IPv6 prefix route still coming up) is retried.</summary>
    private static readonly TimeSpan RouteRetry = TimeSpan.FromSeconds(3);

    /// <summary>Reads the state of <paramref name="link"/> through <paramref name="h"/> (whose namespace is <paramref name="nsPath"/>, for ethtool).</summary>
    public static InterfaceState Capture(RouteHandle h, string nsPath, LinkRecord link)
    {
        var routes = h.DumpRoutes(Rtnl.AF_INET).Concat(h.DumpRoutes(Rtnl.AF_INET6))
            .Where(rt => rt.RouteUses(link.Index) && rt.RouteProtocol != Rtnl.RTPROT_KERNEL).ToList();
        var neighbours = h.DumpNeighbours(Rtnl.AF_INET).Concat(h.DumpNeighbours(Rtnl.AF_INET6))
            .Where(n => n.NeighbourIndex == link.Index && (n.NeighbourState & Rtnl.NUD_PERMANENT) != 0).ToList();
        return new InterfaceState(link, h.DumpAddressObjects(link.Index), routes, neighbours, Ethtool.GetFeatures(nsPath, link.Name));
    }

    /// <summary>
    /// Puts the state onto ifindex <paramref name="index"/> (offload features apart: <see cref="Ethtool.SetFeatures"/>):
    /// txqueuelen, up state, addresses, routes (retried while one enables another or a prefix route comes up) and
    /// neighbours. What the kernel already made (a link-local address, a prefix route) is taken as done.
    /// </summary>
    public void Apply(RouteHandle h, int index)
    {
        var name = Link.Name;
        // attaching the ingress qdisc to a noqueue device (txqueuelen 0, as runtimes make them) sets its txqueuelen to 1000
        if (h.FindLink(index) is { } now && now.TxQueueLength != Link.TxQueueLength)
            h.Socket.Execute(LinkMessages.SetTxQueueLength(index, Link.TxQueueLength), $"set the txqueuelen of {h.Describe(name)} to {Link.TxQueueLength}");
        // up first: an IPv6 address with a finite lifetime added to a link that is down gets no prefix route when it comes up.
        // The order the kernel lists addresses in does not depend on it (IPv4 by insertion, IPv6 by scope, newest first).
        if ((Link.Flags & Rtnl.IFF_UP) != 0) h.Socket.Execute(LinkMessages.SetUp(index, true), $"set {h.Describe(name)} up");
        // IPv6 addresses dump newest first: add them oldest first so the kernel lists them as before
        foreach (var a in Addresses.Where(a => a.Family == Rtnl.AF_INET).Concat(Addresses.Where(a => a.Family == Rtnl.AF_INET6).Reverse()))
            Tolerate(() => h.Socket.Execute(RouteMessages.AddAddress(Reindex(a, index)), $"add {AddressText(a)} to {h.Describe(name)}"));
        var pending = Routes.Select(rt => Reindex(rt, index)).ToList();
        var deadline = DateTime.UtcNow + RouteRetry;
        while (pending.Count > 0)
        {
            var failed = new List<(RtnlObject Route, NetlinkException Error)>();
            foreach (var rt in pending)
            {
                try { Tolerate(() => h.Socket.Execute(RouteMessages.AddRoute(rt), $"add the route {RouteText(rt)} on {h.Describe(name)}")); }
                catch (NetlinkException e) { failed.Add((rt, e)); }
            }
            if (failed.Count == pending.Count)
            {
                // nothing went in: unreachable gateways wait a little for prefix routes; anything else is final
                if (DateTime.UtcNow > deadline || failed.Any(f => f.Error.Errno is not (101 or 113))) throw failed[0].Error;
                System.Threading.Thread.Sleep(20);
            }
            pending = failed.Select(f => f.Route).ToList();
        }
        foreach (var n in Neighbours)
            Tolerate(() => h.Socket.Execute(RouteMessages.AddNeighbour(Reindex(n, index)), $"add the permanent neighbour {NeighbourText(n)} on {h.Describe(name)}"));
    }

    private static void Tolerate(Action add)
    {
        try { add(); }
        catch (NetlinkException e) when (e.Errno == 17) { } // the kernel made it already (a link-local address, a prefix route)
    }

    private static RtnlObject Reindex(RtnlObject o, int index)
    {
        if (o.Type == Rtnl.RTM_NEWROUTE)
        {
            var attributes = o.Attributes.Select(a =>
            {
                if ((a.Type & Rtnl.NLA_TYPE_MASK) != Rtnl.RTA_OIF) return a;
                var v = new byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(v, index);
                return (a.Type, v);
            }).ToList();
            return new RtnlObject { Type = o.Type, Header = o.Header, Attributes = attributes };
        }
        var header = o.Header.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), index);
        return new RtnlObject { Type = o.Type, Header = header, Attributes = o.Attributes };
    }

    private static string AddressText(RtnlObject a)
        => (a.Attribute(Rtnl.IFA_LOCAL) ?? a.Attribute(Rtnl.IFA_ADDRESS)) is { } b ? $"{new IPAddress(b)}/{a.Header[1]}" : "an address";

    private static string RouteText(RtnlObject r)
    {
        var dst = r.Attribute(Rtnl.RTA_DST) is { } d ? $"{new IPAddress(d)}/{r.Header[1]}" : "default";
        var via = r.Attribute(Rtnl.RTA_GATEWAY) is { } g ? $" via {new IPAddress(g)}" : "";
        return $"{dst}{via} (table {r.RouteTable})";
    }

    private static string NeighbourText(RtnlObject n)
        => $"{(n.Attribute(Rtnl.NDA_DST) is { } d ? new IPAddress(d).ToString() : "?")} lladdr {(n.Attribute(Rtnl.NDA_LLADDR) is { } l ? Parse.Mac(l) : "?")}";
}
