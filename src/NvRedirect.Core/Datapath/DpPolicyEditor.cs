using System;
using System.Collections.Generic;
using System.Linq;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Core.Datapath;

/// <summary>
/// One planned change to one workload's policy, made from the policy as it was read: the request (ADD, MODIFY or
/// DELETE), the policy it sends, and its datagrams, each carrying the version it was made from
/// (nvr_expect_version) so the datapath refuses it when the policy changed in between. Nothing is sent until
/// <see cref="DpPolicyEditor.Write"/>.
/// </summary>
public sealed class DpPolicyChange
{
    /// <summary>The policy as it was read (Mode None when the workload had none).</summary>
    public required DpPolicy Current { get; init; }
    /// <summary>The workload.</summary>
    public string Mac => Current.Mac;
    /// <summary>ctrl_cfg_policy's cmd: <see cref="DpRequests.PolicyAdd"/>, Modify or Delete.</summary>
    public required int Command { get; init; }
    /// <summary>The default action sent.</summary>
    public required DpPolicyAction DefaultAction { get; init; }
    /// <summary>The direction sent.</summary>
    public required DpDirection Direction { get; init; }
    /// <summary>The rules sent, in matching order (none for DELETE).</summary>
    public required IReadOnlyList<DpRule> Rules { get; init; }
    /// <summary>The wire mode sent with the policy (ctrl_cfg_mac in the last datagram), or null for none.</summary>
    public bool? Tap { get; init; }
    /// <summary>The datagrams, in order: one, or chunks flagged START ... END.</summary>
    public required IReadOnlyList<byte[]> Datagrams { get; init; }

    /// <summary>"N rules, default A, direction D[, in K requests]": what the change sends, for confirmation prompts.</summary>
    public string Summary => $"{Rules.Count} rule{(Rules.Count == 1 ? "" : "s")}, default {DefaultAction}, direction {Direction}" +
        (Datagrams.Count > 1 ? $", in {Datagrams.Count} requests" : "");

    /// <inheritdoc/>
    public override string ToString() => $"{Mac}: {Summary}";
}

/// <summary>
/// Policy editing as one operation: read the policies with their versions (<see cref="Read"/>), plan a change to a
/// workload's policy (<see cref="Replace"/>, <see cref="AddRules"/>, <see cref="RemoveRules"/>,
/// <see cref="SwitchMode"/>, <see cref="Delete"/>: pure, nothing is sent), and <see cref="Write"/> it chunk by chunk
/// with the version check. What the policy cmdlets do between planning and writing is theirs (asking, reporting).
/// </summary>
public sealed class DpPolicyEditor
{
    /// <summary>The client the policies were read through, and changes are written through.</summary>
    public DpClient Client { get; }
    /// <summary>The policies as read (workloads without one are absent).</summary>
    public IReadOnlyList<DpPolicy> Policies { get; }
    /// <summary>The datapath's state at the same moment (its workloads).</summary>
    public DatapathInfo State { get; }

    private DpPolicyEditor(DpClient client, IReadOnlyList<DpPolicy> policies, DatapathInfo state)
    {
        Client = client;
        Policies = policies;
        State = state;
    }

    /// <summary>
    /// Reads the policies and versions, and the state, through <paramref name="client"/>: every workload's (one
    /// nvr_get_policy), or only those of <paramref name="macs"/> (MACs or aliases; one nvr_get_state that resolves them,
    /// unknown ones left out, and one nvr_get_policy), so editing one workload reads one workload whatever the datapath serves.
    /// </summary>
    public static DpPolicyEditor Read(DpClient client, IReadOnlyCollection<string>? macs = null)
    {
        if (macs is not { Count: <= 256 })
        {
            var (all, full) = client.Policies();
            return new DpPolicyEditor(client, all, full);
        }
        var state = client.State(macs);
        var known = macs.Select(m => state.FindWorkload(m)?.Mac).OfType<string>().Distinct().ToList();
        var policies = known.Count == 0 ? [] : client.Policies(known).Policies;
        return new DpPolicyEditor(client, policies, state);
    }

    /// <summary>The policy of <paramref name="mac"/> as read, or one with Mode None (default Open, both directions, version 0, no rules).</summary>
    public DpPolicy PolicyOf(string mac) => PolicyOf(Policies, mac, Client.ControlSocket);

    /// <summary>The policy of <paramref name="mac"/> among <paramref name="policies"/>, or one with Mode None for <paramref name="socket"/>.</summary>
    public static DpPolicy PolicyOf(IEnumerable<DpPolicy> policies, string mac, string socket)
        => policies.FirstOrDefault(p => p.Mac == mac) ?? new DpPolicy { ControlSocket = socket, Mac = mac };

    /// <summary>The policy of <paramref name="mac"/> as the datapath reports it now (after a <see cref="Write"/>).</summary>
    public DpPolicy ReadAgain(string mac) => PolicyOf(Client.Policies([mac]).Policies, mac, Client.ControlSocket);

    /// <summary>
    /// Sends <paramref name="change"/>'s datagrams in order; each must be applied (a stale version is refused by the
    /// datapath). Returns the state after the last (with this workload only). A chunk after the first that is refused says which one.
    /// </summary>
    public DatapathInfo Write(DpPolicyChange change)
    {
        var datagrams = change.Datagrams;
        DatapathInfo? state = null;
        for (int i = 0; i < datagrams.Count; i++)
        {
            try { state = Client.Apply(datagrams[i], [change.Mac]); }
            catch (DatapathRejectedException e) when (i > 0)
            {
                throw new DatapathRejectedException(Client.ControlSocket, $"chunk {i + 1} of {datagrams.Count} of the policy was refused, so the policy was not applied " +
                    $"(the chunks before it wait in the datapath until the next START replaces them): {e.Reason}");
            }
        }
        return state!;
    }

    // --- planning: pure functions of the policy as read ---

    private static DpPolicyChange Plan(DpPolicy current, int command, DpPolicyAction defaultAction, DpDirection direction, IReadOnlyList<DpRule> rules, bool? tap = null)
        => new()
        {
            Current = current, Command = command, DefaultAction = defaultAction, Direction = direction, Rules = rules, Tap = tap,
            Datagrams = DpRequests.Policy(command, [current.Mac], defaultAction, direction, rules, modeSwitchTap: tap, expectVersion: current.Version),
        };

    // ADD for a workload without a policy, MODIFY otherwise
    private static int AddOrModify(DpPolicy current) => current.HasPolicy ? DpRequests.PolicyModify : DpRequests.PolicyAdd;

    /// <summary>
    /// Replaces the policy: <paramref name="rules"/> (numbered, see <see cref="NumberRules"/>) become the whole rule list,
    /// or the current rules are kept when null; the default action and direction are kept when null.
    /// </summary>
    public static DpPolicyChange Replace(DpPolicy current, IEnumerable<DpRule>? rules, DpPolicyAction? defaultAction = null, DpDirection? direction = null)
        => Plan(current, AddOrModify(current), defaultAction ?? current.DefaultAction, direction ?? current.Direction,
            rules == null ? current.Rules.ToList() : NumberRules(rules));

    /// <summary>Adds rules (see <see cref="Merge"/>), keeping the others, the default action and the direction.</summary>
    public static DpPolicyChange AddRules(DpPolicy current, IEnumerable<DpRule> added)
        => Plan(current, AddOrModify(current), current.DefaultAction, current.Direction, Merge(current.Rules, added));

    /// <summary>
    /// Removes the rules with <paramref name="ids"/>, keeping the others, the default action and the direction.
    /// <paramref name="removed"/> are the ids the policy has, <paramref name="missing"/> those it has not; null when it
    /// has none of them (nothing to send).
    /// </summary>
    public static DpPolicyChange? RemoveRules(DpPolicy current, IEnumerable<uint> ids, out IReadOnlyList<uint> removed, out IReadOnlyList<uint> missing)
    {
        var distinct = ids.Distinct().ToList();
        var present = distinct.Where(id => current.Rules.Any(r => r.Id == id)).ToList();
        removed = present;
        missing = distinct.Except(present).ToList();
        if (present.Count == 0) return null;
        return Plan(current, DpRequests.PolicyModify, current.DefaultAction, current.Direction, current.Rules.Where(r => !present.Contains(r.Id)).ToList());
    }

    /// <summary>
    /// Switches the workload to <paramref name="mode"/> (its default action) with <paramref name="wire"/> in the same
    /// datagram, rules and direction unchanged (Both without a policy). Tap with Protect is refused.
    /// </summary>
    public static DpPolicyChange SwitchMode(DpPolicy current, DpWorkloadMode mode, DpWireMode wire)
    {
        CheckMode(mode, wire);
        return Plan(current, AddOrModify(current), DpPolicy.DefaultActionOf(mode), current.Direction, current.Rules, tap: wire == DpWireMode.Tap);
    }

    /// <summary>Refuses a mode and wire mode that cannot go together (Protect with Tap: a tapped workload blocks nothing).</summary>
    public static void CheckMode(DpWorkloadMode mode, DpWireMode wire)
    {
        if (mode == DpWorkloadMode.Protect && wire == DpWireMode.Tap)
            throw new ArgumentException("-Wire Tap cannot go with -Mode Protect: a tapped workload's frames are only inspected, so nothing could be blocked. Use -Wire Inline.");
    }

    /// <summary>Removes the policy (DELETE); the caller checks <see cref="DpPolicy.HasPolicy"/> first.</summary>
    public static DpPolicyChange Delete(DpPolicy current)
        => Plan(current, DpRequests.PolicyDelete, current.DefaultAction, current.Direction, []);

    /// <summary>
    /// Gives rules with id 0 the next free ids (after the highest id in use) and refuses two rules with the same id,
    /// since the id is what connections report and what Remove-DpPolicyRule removes.
    /// </summary>
    public static List<DpRule> NumberRules(IEnumerable<DpRule> rules)
    {
        var list = rules.ToList();
        var seen = new HashSet<uint>();
        foreach (var r in list)
            if (r.Id != 0 && !seen.Add(r.Id))
                throw new ArgumentException($"Two rules have id {r.Id}: ids must be unique within a policy (give id 0 to get the next free one).");
        uint highest = list.Count == 0 ? 0 : list.Max(r => r.Id);
        if (highest == uint.MaxValue && list.Any(r => r.Id == 0))
            throw new ArgumentException($"A rule has id {uint.MaxValue}, so there is no next free id for the rules with id 0: give them ids yourself.");
        uint next = highest + 1;
        return list.Select(r => r.Id != 0 ? r : r.With(id: next++)).ToList();
    }

    /// <summary>The current rules with the new ones: a new rule with an existing id replaces it in place, others are appended; id 0 gets the next free id.</summary>
    public static List<DpRule> Merge(IEnumerable<DpRule> current, IEnumerable<DpRule> added)
    {
        var list = current.ToList();
        var fresh = new List<DpRule>();
        foreach (var r in added)
        {
            int at = r.Id == 0 ? -1 : list.FindIndex(x => x.Id == r.Id);
            if (at >= 0) list[at] = r;
            else
            {
                int again = r.Id == 0 ? -1 : fresh.FindIndex(x => x.Id == r.Id);
                if (again >= 0) fresh[again] = r; else fresh.Add(r);
            }
        }
        return NumberRules(list.Concat(fresh));
    }
}
