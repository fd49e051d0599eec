using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Protocol;

namespace NvRedirect.Core.Configuration;

/// <summary>What one step of a convergence does.</summary>
public enum ConfigurationAction
{
    /// <summary>Start the enforcer's datapath (creating the enforcer namespace when missing).</summary>
    StartDatapath,
    /// <summary>Take a container's interfaces over (registered with the mode that is at most as open as the one wanted).</summary>
    TakeOver,
    /// <summary>Write a workload's policy: default action and rules in one atomic change.</summary>
    SetPolicy,
    /// <summary>Remove a workload's policy (mode none: everything passes).</summary>
    RemovePolicy,
    /// <summary>Give a taken-over interface back (or remove what is left of one whose container exited).</summary>
    GiveBack,
}

/// <summary>One difference between the document and the host, and the step that removes it (Test-/Set-NvRedirectConfiguration return these).</summary>
public sealed class ConfigurationChange
{
    /// <summary>The step's place in the plan (1 first).</summary>
    public int Step { get; init; }
    /// <summary>The enforcer namespace.</summary>
    public string Namespace { get; init; } = "";
    /// <summary>What the step does.</summary>
    public ConfigurationAction Action { get; init; }
    /// <summary>What it acts on: the datapath, or a workload (and its interface and MAC).</summary>
    public string Target { get; init; } = "";
    /// <summary>Why: the difference it removes.</summary>
    public string Reason { get; init; } = "";
    /// <summary>The state before, as lines of text (for diffs).</summary>
    public string Before { get; init; } = "";
    /// <summary>The state after, as lines of text.</summary>
    public string After { get; init; } = "";
    /// <summary>The workload's MAC (SetPolicy, RemovePolicy, GiveBack).</summary>
    public string? Mac { get; init; }

    internal WorkloadConfiguration? Workload { get; init; }
    internal WorkloadTarget? WorkloadTarget { get; init; }
    internal string[]? Interfaces { get; init; }
    internal DpWorkloadMode? InterimMode { get; init; }
    internal DpPolicyAction? DefaultAction { get; init; }
    internal IReadOnlyList<DpRule>? Rules { get; init; }
    internal InterceptionInfo? Interception { get; init; }

    /// <summary>"Action Target", as -WhatIf says it.</summary>
    public string Description => $"{Action} {Target}";

    /// <inheritdoc/>
    public override string ToString() => $"{Step}. {Description}: {Reason}";
}

/// <summary>A workload of the document as found on the host: its namespace and Ethernet interfaces (name, MAC), or why it cannot be found.</summary>
public sealed record ObservedTarget(WorkloadTarget? Target, IReadOnlyList<(string Name, string Mac)> Interfaces, string? Problem);

/// <summary>What runs in an enforcer, as far as a document describes it.</summary>
public sealed class ObservedEnforcer
{
    /// <summary>The enforcer namespace.</summary>
    public string Namespace { get; init; } = "";
    /// <summary>The datapath running in it, or null.</summary>
    public DatapathInfo? Datapath { get; init; }
    /// <summary>The taken-over interfaces (marked entry ports; lab interceptions are not the document's).</summary>
    public IReadOnlyList<InterceptionInfo> Interceptions { get; init; } = [];
    /// <summary>The policies the datapath holds.</summary>
    public IReadOnlyList<DpPolicy> Policies { get; init; } = [];
    /// <summary>Each document workload as found, by its <see cref="WorkloadConfiguration.Identity"/>.</summary>
    public IReadOnlyDictionary<string, ObservedTarget> Targets { get; init; } = new Dictionary<string, ObservedTarget>();
}

/// <summary>
/// Desired state, converged: <see cref="Observe"/> reads the host, <see cref="Plan"/> (pure) lists the fewest steps
/// that make it match the document, in an order that never opens a protected workload, <see cref="Execute"/> does
/// one step, <see cref="Export"/> writes what runs as a document.
/// </summary>
/// <remarks>
/// Order: the datapath first; then each workload: take-over (registered in its wanted mode, Protect for a custom one,
/// with no rules: as closed as the end state or more), then its policy as ONE change carrying default action and rules
/// together (the datapath swaps a policy whole, chunked ones at their END chunk), so no moment has the new mode with
/// the old rules or the reverse; give-backs (protection removed on purpose) come last.
/// </remarks>
public static class Configurator
{
    /// <summary>Reads what the document talks about: the enforcer's datapath, taken-over workloads and policies, and each document workload's namespace and interfaces.</summary>
    public static ObservedEnforcer Observe(EnforcerConfiguration desired)
    {
        var ns = desired.Namespace;
        bool exists = NetworkNamespace.Exists(ns);
        var interceptions = exists ? ContainerTakeover.List(ns, withDatapath: false).Where(i => i.Interface != null).ToList() : [];
        var dp = RunningDatapath(ns, desired.Datapath.ControlSocket);
        var policies = new List<DpPolicy>();
        if (dp != null)
        {
            using var c = DpClient.Open(dp.ControlSocket);
            policies = c.Policies().Policies;
        }
        var targets = new Dictionary<string, ObservedTarget>(StringComparer.Ordinal);
        foreach (var w in desired.Workloads) targets[w.Identity] = Resolve(w);
        return new ObservedEnforcer { Namespace = ns, Datapath = dp, Interceptions = interceptions, Policies = policies, Targets = targets };
    }

    /// <summary>The datapath serving <paramref name="socket"/>, else the one running in <paramref name="ns"/>, or null.</summary>
    private static DatapathInfo? RunningDatapath(string ns, string? socket)
    {
        if (socket != null)
        {
            // the one the document names, asked directly (the others on the machine are not waited for)
            try
            {
                using var c = DpClient.Open(socket, TimeSpan.FromSeconds(2));
                if (c.KeepAlive()) return c.State();
            }
            catch (Exception e) when (e is DatapathException or System.Net.Sockets.SocketException) { }
        }
        var all = DatapathProcess.Find(TimeSpan.FromSeconds(2));
        return (socket != null ? all.FirstOrDefault(d => d.ControlSocket == socket) : null) ?? all.FirstOrDefault(d => d.Namespace == ns);
    }

    /// <summary>A document workload's namespace and Ethernet interfaces (after a take-over the replacements have the same names and MACs).</summary>
    public static ObservedTarget Resolve(WorkloadConfiguration w)
    {
        WorkloadTarget t;
        try
        {
            t = w.Container != null ? WorkloadTarget.FromContainer(w.Container)
                : w.ProcessId is int pid ? WorkloadTarget.FromProcessId(pid) : WorkloadTarget.FromNetnsPath(w.NetnsPath!);
        }
        catch (Exception e) when (e is NamespaceTargetNotFoundException or ArgumentException) { return new ObservedTarget(null, [], e.Message); }
        using var h = RouteHandle.Open(t.NetnsPath);
        var ifs = h.DumpLinks().Where(l => l.HardwareType == 1 && (l.Flags & Rtnl.IFF_LOOPBACK) == 0 && l.Address.Length == 6)
            .Select(l => (l.Name, Parse.Mac(l.Address))).ToList();
        return new ObservedTarget(t, ifs, null);
    }

    /// <summary>
    /// The steps that make <paramref name="observed"/> match <paramref name="desired"/>, in order; none when it matches.
    /// A workload that cannot be found (a container that is not running), a named interface it lacks, or a datapath of
    /// the namespace on another socket than the document's is an <see cref="ArgumentException"/> that says so.
    /// </summary>
    public static List<ConfigurationChange> Plan(EnforcerConfiguration desired, ObservedEnforcer observed)
    {
        var ns = desired.Namespace;
        var steps = new List<ConfigurationChange>();
        var removals = new List<ConfigurationChange>();
        var claimed = new HashSet<string>(StringComparer.Ordinal); // entry ports a document workload accounts for
        int n = 0;

        var dp = observed.Datapath;
        if (dp != null && desired.Datapath.ControlSocket is { } wantSocket && dp.ControlSocket != wantSocket)
            throw new ArgumentException($"The datapath of namespace '{ns}' serves {dp.ControlSocket}, but the configuration's datapath.controlSocket is {wantSocket}: stop it (Stop-Datapath -ControlSocket {dp.ControlSocket}) or write its socket in the configuration.");
        if (dp != null && dp.Namespace != ns)
            throw new ArgumentException($"The datapath at {dp.ControlSocket} runs in {(dp.Namespace.Length == 0 ? "the root namespace" : $"namespace '{dp.Namespace}'")}, not in the enforcer '{ns}': give the enforcer a control socket of its own.");
        // a datapath serves workloads: one is started for a document that protects some (give-backs need none)
        if (dp == null && desired.Workloads.Any(w => w.State == WorkloadState.Present))
        {
            var socket = desired.Datapath.ControlSocket ?? DatapathPaths.DefaultSocket(ns);
            steps.Add(new ConfigurationChange
            {
                Step = ++n, Namespace = ns, Action = ConfigurationAction.StartDatapath, Target = $"datapath {socket}",
                Reason = "no datapath runs in the enforcer", Before = "datapath: none", After = $"datapath: {socket}",
            });
        }

        // the interfaces each workload's present entries ask for together (null: all of them)
        var wanted = desired.Workloads.Where(w => w.State == WorkloadState.Present).GroupBy(w => w.Identity)
            .ToDictionary(g => g.Key, g => g.Any(w => w.Interfaces == null) ? null : g.SelectMany(w => w.Interfaces!).ToHashSet());
        foreach (var w in desired.Workloads)
        {
            var t = observed.Targets.TryGetValue(w.Identity, out var found) ? found : new ObservedTarget(null, [], $"{w.Display} was not looked up");
            var mine = observed.Interceptions.Where(i => Matches(i, w, t)).ToList();
            if (w.State == WorkloadState.Absent)
            {
                foreach (var i in mine.Where(i => !removals.Any(r => r.Interception!.EntryLink == i.EntryLink)))
                    removals.Add(GiveBack(ns, i, $"{w.Display} is absent in the configuration"));
                foreach (var i in mine) claimed.Add(i.EntryLink);
                continue;
            }
            if (t.Target == null)
                throw new ArgumentException($"{w.Display} cannot be protected: {t.Problem}");
            var names = w.Interfaces?.ToList() ?? t.Interfaces.Select(x => x.Name).ToList();
            foreach (var name in names)
                if (!t.Interfaces.Any(x => x.Name == name))
                    throw new ArgumentException($"{w.Display} has no Ethernet interface '{name}' (it has {(t.Interfaces.Count == 0 ? "none" : string.Join(", ", t.Interfaces.Select(x => x.Name)))}): fix its interfaces in the configuration.");
            if (names.Count == 0) throw new ArgumentException($"{w.Display} has no Ethernet interface to take over.");
            var live = mine.Where(i => !i.IsOrphaned).ToList();
            foreach (var i in mine) claimed.Add(i.EntryLink);
            var together = wanted[w.Identity];
            foreach (var i in mine.Where(i => i.IsOrphaned || (together != null && !together.Contains(i.Interface!))))
                if (!removals.Any(r => r.Interception!.EntryLink == i.EntryLink))
                    removals.Add(GiveBack(ns, i, i.IsOrphaned ? "what is left of an exited container" : $"interface {i.Interface} is not among the configuration's {string.Join(", ", together!)}"));

            var missing = names.Where(name => !live.Any(i => i.Interface == name)).ToArray();
            DpWorkloadMode? interim = w.Mode switch { DpWorkloadMode.None => null, DpWorkloadMode.Custom => DpWorkloadMode.Protect, var m => m };
            if (missing.Length > 0)
                steps.Add(new ConfigurationChange
                {
                    Step = ++n, Namespace = ns, Action = ConfigurationAction.TakeOver, Target = $"{w.Display} {string.Join(", ", missing)}",
                    Reason = "not taken over", Before = $"{w.Display}: not protected",
                    After = $"{w.Display}: {string.Join(", ", missing)} taken over into {ns}{(interim is { } im ? $", mode {im.ToString().ToLowerInvariant()}" : "")}",
                    Workload = w, WorkloadTarget = t.Target, Interfaces = missing, InterimMode = interim,
                });
            foreach (var name in names)
            {
                var mac = t.Interfaces.First(x => x.Name == name).Mac;
                // the policy as it is, or as the take-over leaves it (the interim mode, no rules)
                DpPolicy current = missing.Contains(name)
                    ? new DpPolicy { Mac = mac, HasPolicy = interim != null, DefaultAction = interim is { } im ? DpPolicy.DefaultActionOf(im) : DpPolicyAction.Open }
                    : DpPolicyEditor.PolicyOf(observed.Policies, mac, dp?.ControlSocket ?? "");
                var want = w.PolicyDefault;
                bool same = want == null ? !current.HasPolicy
                    : current.HasPolicy && current.DefaultAction == want && SameRules(current.Rules, w.Rules);
                if (same) continue;
                var target = $"{w.Display} {name} ({mac})";
                var before = current.HasPolicy ? PolicyText(current.DefaultAction, current.Rules) : PolicyText(null, []);
                steps.Add(want == null
                    ? new ConfigurationChange
                    {
                        Step = ++n, Namespace = ns, Action = ConfigurationAction.RemovePolicy, Target = target, Mac = mac,
                        Reason = "the configuration's mode is none", Before = before, After = w.PolicyText, Workload = w,
                    }
                    : new ConfigurationChange
                    {
                        Step = ++n, Namespace = ns, Action = ConfigurationAction.SetPolicy, Target = target, Mac = mac,
                        Reason = !current.HasPolicy || current.DefaultAction != want ? (SameRules(current.Rules, w.Rules) ? "the mode differs" : "the mode and the rules differ") : "the rules differ",
                        Before = before, After = w.PolicyText, Workload = w, DefaultAction = want, Rules = w.Rules,
                    });
            }
        }
        if (desired.RemoveUnlisted)
            foreach (var i in observed.Interceptions.Where(i => !claimed.Contains(i.EntryLink)))
                removals.Add(GiveBack(ns, i, i.IsOrphaned ? "what is left of an exited container" : "not in the configuration (removeUnlisted)"));
        foreach (var r in removals) steps.Add(new ConfigurationChange
        {
            Step = ++n, Namespace = r.Namespace, Action = r.Action, Target = r.Target, Reason = r.Reason, Before = r.Before, After = r.After,
            Mac = r.Mac, Interception = r.Interception,
        });
        return steps;
    }

    private static bool Matches(InterceptionInfo i, WorkloadConfiguration w, ObservedTarget t)
    {
        if (t.Target != null && i.NetnsInode == t.Target.NetnsInode) return true;
        if (t.Target != null) return false;
        // not found now (exited): by what the mark remembers
        return w.Container != null ? i.ContainerName == w.Container || i.ContainerId == w.Container
            : w.ProcessId is int p ? i.ProcessId == p : i.NetnsPath == w.NetnsPath;
    }

    private static ConfigurationChange GiveBack(string ns, InterceptionInfo i, string reason) => new()
    {
        Namespace = ns, Action = ConfigurationAction.GiveBack, Target = $"{Who(i)} {i.Interface} ({i.WorkloadMac})", Mac = i.WorkloadMac, Reason = reason,
        Before = $"{Who(i)}: {i.Interface} taken over into {ns}", After = $"{Who(i)}: {(i.IsOrphaned ? "entry port removed" : $"{i.Interface} given back")}", Interception = i,
    };

    private static string Who(InterceptionInfo i) => i.ContainerName != null ? $"container '{i.ContainerName}'"
        : i.NetnsPath is { } p && !p.StartsWith("/proc/", StringComparison.Ordinal) ? $"network namespace {p}" : $"process {i.ProcessId}";

    /// <summary>Whether two rule lists are the same rules in the same order (ids included; the workload and socket they were read with are not compared).</summary>
    public static bool SameRules(IReadOnlyList<DpRule> a, IReadOnlyList<DpRule> b)
        => a.Count == b.Count && a.Zip(b).All(p => p.First.ToWire() == p.Second.ToWire());

    /// <summary>A policy as lines: "mode protect" (or "mode none" without a policy, "mode custom (default open)") and one line per rule.</summary>
    public static string PolicyText(DpPolicyAction? defaultAction, IReadOnlyList<DpRule> rules)
    {
        var mode = DpPolicy.ModeOf(defaultAction);
        var head = "mode " + mode.ToString().ToLowerInvariant() + (mode == DpWorkloadMode.Custom ? $" (default {defaultAction.ToString()!.ToLowerInvariant()})" : "");
        return string.Join("\n", new[] { head }.Concat(rules.Select(r =>
            $"rule {r.Id}: {r.Direction.ToString().ToLowerInvariant()} {r.ProtocolName.ToLowerInvariant()} {r.Source} -> {r.Destination}:{r.Port} {r.Action.ToString().ToLowerInvariant()}")));
    }

    /// <summary>Does one step of a plan made by <see cref="Plan"/>.</summary>
    public static void Execute(EnforcerConfiguration desired, ConfigurationChange c)
    {
        var ns = desired.Namespace;
        switch (c.Action)
        {
            case ConfigurationAction.StartDatapath:
                ContainerTakeover.EnsureEnforcer(ns);
                var started = DatapathProcess.Start(new DatapathStartRequest
                {
                    Namespace = ns, ControlSocket = desired.Datapath.ControlSocket, LogPath = desired.Datapath.LogPath,
                    Sessions = desired.Datapath.SessionCapacity, Connections = desired.Datapath.ConnectionCapacity, Supervise = desired.Datapath.Supervised,
                });
                using (var client = DpClient.Open(started.ControlSocket))
                    if (!started.ServicePorts.Contains(ContainerTakeover.DatapathLink)) client.Apply(DpRequests.AddServicePort(ContainerTakeover.DatapathLink, false));
                break;
            case ConfigurationAction.TakeOver:
                ContainerTakeover.TakeOver(new TakeoverRequest
                {
                    Target = c.WorkloadTarget!, Enforcer = ns, Interfaces = c.Interfaces, Mode = c.InterimMode,
                    ControlSocket = RunningDatapath(ns, desired.Datapath.ControlSocket)?.ControlSocket ?? desired.Datapath.ControlSocket,
                });
                break;
            case ConfigurationAction.SetPolicy:
            case ConfigurationAction.RemovePolicy:
                var dp = RunningDatapath(ns, desired.Datapath.ControlSocket)
                    ?? throw new InvalidOperationException($"No datapath runs in namespace '{ns}' to take the policy of {c.Target}.");
                using (var client = DpClient.Open(dp.ControlSocket))
                {
                    var editor = DpPolicyEditor.Read(client);
                    var current = editor.PolicyOf(c.Mac!);
                    if (c.Action == ConfigurationAction.RemovePolicy) { if (current.HasPolicy) editor.Write(DpPolicyEditor.Delete(current)); }
                    else editor.Write(DpPolicyEditor.Replace(current, c.Rules!, c.DefaultAction, current.HasPolicy ? current.Direction : DpDirection.Both));
                }
                break;
            case ConfigurationAction.GiveBack:
                ContainerTakeover.GiveBack(c.Interception!);
                break;
        }
    }

    /// <summary>
    /// What runs in the enforcer <paramref name="ns"/> as a document: its datapath (socket, log, capacity, supervision) and
    /// each taken-over container (orphans left out) with its mode and rules; interfaces are listed when not all of the
    /// container's are taken over, and a container whose interfaces differ in policy gets one entry per interface.
    /// Applying the result changes nothing. A namespace that does not exist is a <see cref="NamespaceNotFoundException"/>.
    /// </summary>
    public static EnforcerConfiguration Export(string ns)
    {
        NetworkNamespace.ThrowIfInvalid(ns);
        if (!NetworkNamespace.Exists(ns)) throw new NamespaceNotFoundException(ns);
        var observed = Observe(new EnforcerConfiguration { Namespace = ns });
        var dp = observed.Datapath;
        var workloads = new List<WorkloadConfiguration>();
        foreach (var group in observed.Interceptions.Where(i => !i.IsOrphaned).GroupBy(i => i.NetnsInode).OrderBy(g => g.Min(i => i.EntryLink), StringComparer.Ordinal))
        {
            var first = group.First();
            WorkloadConfiguration named = first.ContainerName != null ? new() { Container = first.ContainerName }
                : first.NetnsPath is { } p && !p.StartsWith("/proc/", StringComparison.Ordinal) ? new() { NetnsPath = p }
                : new() { ProcessId = first.ProcessId };
            var all = Resolve(named).Interfaces.Select(x => x.Name).ToHashSet();
            var policies = group.OrderBy(i => i.InterfaceIndex).Select(i => (i.Interface!, DpPolicyEditor.PolicyOf(observed.Policies, i.WorkloadMac, dp?.ControlSocket ?? ""))).ToList();
            bool uniform = policies.All(x => x.Item2.HasPolicy == policies[0].Item2.HasPolicy && x.Item2.DefaultAction == policies[0].Item2.DefaultAction && SameRules(x.Item2.Rules, policies[0].Item2.Rules));
            var parts = uniform ? [(policies.Select(x => x.Item1).ToList(), policies[0].Item2)] : policies.Select(x => (new List<string> { x.Item1 }, x.Item2)).ToList();
            foreach (var (ifs, policy) in parts)
            {
                var mode = policy.HasPolicy ? policy.Mode : DpWorkloadMode.None;
                workloads.Add(new WorkloadConfiguration
                {
                    Container = named.Container, ProcessId = named.ProcessId, NetnsPath = named.NetnsPath,
                    Interfaces = uniform && ifs.ToHashSet().SetEquals(all) ? null : ifs,
                    Mode = mode, DefaultAction = mode == DpWorkloadMode.Custom ? policy.DefaultAction : null,
                    Rules = policy.HasPolicy ? policy.Rules.Select(r => r.With(mac: "", controlSocket: "")).ToList() : [],
                });
            }
        }
        return new EnforcerConfiguration
        {
            Namespace = ns,
            Datapath = dp == null ? new DatapathSettings()
                : new DatapathSettings { ControlSocket = dp.ControlSocket, LogPath = dp.LogPath, SessionCapacity = dp.SessionCapacity, Supervised = dp.Supervised },
            Workloads = workloads,
        };
    }
}
