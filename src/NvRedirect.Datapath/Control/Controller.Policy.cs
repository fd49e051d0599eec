using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath.Engine;

namespace NvRedirect.Datapath.Control;

// The policy commands: ctrl_cfg_policy, ctrl_cfg_policy_addr, and nvr-dp's nvr_get_policy, nvr_list_connection and
// nvr_clear_connection (see Controller.cs for how a datagram is applied).
internal sealed partial class Controller
{
    // ctrl_cfg_policy (NeuVector dp/ctrl.c): rules of one or more workloads, in chunks START (1) ... END (2), or one
    // message (3). At END the policy is built with a new version and replaces the listed workloads' policies; DELETE
    // removes them. Stricter than NeuVector: unregistered MACs, empty ranges and features nvr-dp lacks are refused.
    private static void ConfigurePolicy(PolicyRequest m, Request r)
    {
        foreach (var (id, count) in m.ApplicationSubRules)
            // NeuVector's agent sends application rules as CHECK_APP with per-application sub-rules; nvr-dp identifies
            // no applications, so the rule acts by its own action (CHECK_APP: allow) and the sub-rules are not applied
            r.Notes.Add($"{Command.ConfigurePolicy}: rule {id}: its {count} application sub-rules are not applied (nvr-dp identifies no applications); the rule acts by its action");
        var defact = m.DefaultAction ?? DpPolicyAction.Open; // absent only from a DELETE
        var dir = m.Direction ?? 0;
        var s = r.State;
        var macs = Registered(m.Macs, Key.Mac, r);
        var flag = m.Flag;

        if ((flag & ChunkFlags.Start) != 0)
        {
            if (macs.Count == 0) throw new CommandException($"\"{Key.Mac}\" lists no workload");
            if (s.PendingPolicy != null) r.Notes.Add($"{Command.ConfigurePolicy}: a new START drops {s.PendingPolicy.Rules.Count} pending rules of an unfinished policy");
            s.PendingPolicy = new PendingPolicy
            {
                Command = m.Cmd, DefaultAction = defact, Direction = dir, Macs = macs.ToArray(), Rules = [.. m.Rules], Sender = r.Sender,
                ExpectedVersion = m.ExpectVersion,
            };
        }
        else if (s.PendingPolicy is not { } started) throw new CommandException($"flag {(uint)flag} continues a policy, but none was started (flag 1)");
        else
        {
            // a chunk belongs to the policy its START began: same client, same command, default, direction and workloads
            if (started.Sender != r.Sender)
                throw new CommandException($"flag {(uint)flag} continues the chunked policy another client started ({started.Sender ?? "an unbound client"}); send a START of your own");
            if (m.Cmd != started.Command || defact != started.DefaultAction || dir != started.Direction
                || (macs.Count > 0 && !macs.ToHashSet().SetEquals(started.Macs)))
                throw new CommandException($"flag {(uint)flag} continues a policy started with cmd {(uint)started.Command}, defact {(byte)started.DefaultAction}, dir {(byte)started.Direction} for {string.Join(", ", started.Macs.Select(Fields.FormatMac))}, but says otherwise");
            started.Rules.AddRange(m.Rules);
        }

        if ((flag & ChunkFlags.End) == 0)
        {
            r.Notes.Add($"{Command.ConfigurePolicy}: {m.Rules.Length} rules pending ({s.PendingPolicy.Rules.Count} so far)");
            return;
        }
        var pending = s.PendingPolicy;
        s.PendingPolicy = null;
        uint version = ++s.PolicyVersion;
        var policy = pending.Command == PolicyCommand.Delete ? null : new Policy(version, pending.DefaultAction, pending.Direction, pending.Rules);
        foreach (var mac in pending.Macs)
        {
            if (!s.Workloads.TryGetValue(mac, out var w))
                throw new CommandException($"{Fields.FormatMac(mac)} was removed before the policy's END chunk");
            // our extension: a client that read the policy before changing it says which version it read, so two
            // clients editing the same policy cannot silently undo each other's change
            uint current = w.Policy?.Version ?? 0;
            if (pending.ExpectedVersion is uint expected && expected != current)
                throw new CommandException($"the policy of {Fields.FormatMac(mac)} is at version {current}, not at version {expected} the change was made from: " +
                    "another client changed it meanwhile; read it again and repeat the change");
            s.Workloads[mac] = w.WithPolicy(policy);
        }
        s.WorkloadsChanged = true;
        string targets = string.Join(", ", pending.Macs.Select(Fields.FormatMac));
        r.Notes.Add(policy == null
            ? $"{Command.ConfigurePolicy}: policy of {targets} deleted (everything open)"
            : $"{Command.ConfigurePolicy}: version {version} for {targets}: {policy.Rules.Length} rules, default {PolicyActions.Name(policy.DefaultAction)}, dir {(byte)policy.Direction}");
    }

    private static void ConfigurePolicyAddresses(PolicyAddressRequest m, Request r)
    {
        var s = r.State;
        var pending = s.PendingPolicyAddresses;
        if (Assemble(Command.ConfigurePolicyAddresses, m.Flag, [.. m.Addresses], ref pending, r) is not { } list) { s.PendingPolicyAddresses = pending; return; }
        s.PendingPolicyAddresses = null;
        var addresses = list.Distinct().ToArray();
        s.SettingsChanged |= !addresses.Order().SequenceEqual(s.PolicyAddresses.Order()); // sessions in grace are decided again
        s.PolicyAddresses = addresses;
        r.Notes.Add($"{Command.ConfigurePolicyAddresses}: {s.PolicyAddresses.Length} policy addresses ({(s.Strict ? "strict: no grace period uses them" : "others get dp's grace period")})");
    }

    // The real MACs of the workloads a MAC list names (each a MAC or alias of a registered workload; anything else
    // refuses the request), without repeats.
    private static List<ulong> Registered(ulong[]? list, string name, Request r)
    {
        var macs = new List<ulong>();
        foreach (var mac in list ?? [])
        {
            var w = r.State.FindByAnyMac(mac) ?? throw new CommandException($"{Fields.FormatMac(mac)} is not a registered workload (ctrl_add_mac it first)");
            if (!macs.Contains(w.Mac)) macs.Add(w.Mac);
        }
        return macs;
    }

    private void GetPolicy(MacFilterRequest m, Request r)
    {
        var macs = Registered(m.Macs, Key.Macs, r).ToArray();
        r.Effects.Add(replies =>
        {
            var policies = State.Workloads.Values.OrderBy(x => x.Mac)
                .Where(wl => wl.Policy != null && (macs.Length == 0 || macs.Contains(wl.Mac)))
                .Select(wl => new PolicyEntry(wl.Mac, wl.Policy!.Version, wl.Policy.DefaultAction, wl.Policy.Direction, wl.Policy.Rules));
            replies.AddRange(Replies.Json(MessageKind.Policy, JsonReplies.WritePolicies(policies)));
        });
    }

    private void ListConnections(MacFilterRequest m, Request r)
    {
        var macs = Registered(m.Macs, Key.Macs, r).ToArray();
        r.Effects.Add(replies =>
        {
            var (list, capacity, evicted, now) = _datapath.OnPacketThread(() =>
                (_datapath.Connections.Snapshot(), _datapath.Connections.Capacity, _datapath.Connections.Evicted, _datapath.Clock.NowSeconds));
            var wallNow = DateTime.UtcNow;
            var entries = list.Where(c => macs.Length == 0 || macs.Contains(c.Key.EndpointMac)).Select(c => Entry(c, wallNow, now)).ToArray();
            replies.AddRange(Replies.Json(MessageKind.Connections, JsonReplies.WriteConnections(new ConnectionList(entries, capacity, evicted))));
        });
    }

    /// <summary>A connection entry in the protocol's terms (times: the datapath clock's <paramref name="now"/> is <paramref name="wallNow"/>).</summary>
    private static ConnectionEntry Entry(ConnectionRecord c, DateTime wallNow, long now)
    {
        var k = c.Key;
        return new ConnectionEntry(k.EndpointMac, k.Ingress, Address(k.ClientHigh, k.ClientLow, k.IPv6), Address(k.ServerHigh, k.ServerLow, k.IPv6),
            k.ServerPort, k.Protocol, k.RuleId, k.Action, c.Sessions, c.Packets, c.Bytes, c.Dropped,
            wallNow.AddSeconds(c.FirstSeen - now), wallNow.AddSeconds(c.LastSeen - now), c.Answered, k.Scan, c.Attempts);
    }

    /// <summary>The table key of a protocol connection entry (the inverse of <see cref="Entry"/>'s key part).</summary>
    private static ConnectionKey KeyOf(ConnectionEntry e)
    {
        var k = new ConnectionKey
        {
            EndpointMac = e.Mac, Ingress = e.Ingress, ServerPort = e.ServerPort, Protocol = e.Protocol, RuleId = e.RuleId, Action = e.Action,
            Scan = e.Scan, IPv6 = e.Client.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6,
        };
        (k.ClientHigh, k.ClientLow) = Halves(e.Client);
        (k.ServerHigh, k.ServerLow) = Halves(e.Server);
        return k;
    }

    private static (ulong High, ulong Low) Halves(IPAddress a)
    {
        var b = a.GetAddressBytes();
        return b.Length == 4 ? (0UL, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b))
            : (System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(b), System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(8)));
    }

    // the learned entries last collected for the state file, and the table's LearnedChanges they were collected at
    private ConnectionList? _learned;
    private long _learnedAt = -1;

    /// <summary>
    /// The learned (answered) connections for the state file, collected on the packet thread (as nvr_list_connection
    /// is) only when the table's learned set changed since the last collection; at most the table's answered share.
    /// </summary>
    private ConnectionList Learned()
    {
        var table = _datapath.Connections;
        long changes = table.LearnedChanges;
        if (_learned != null && changes == _learnedAt) return _learned;
        var (list, capacity, evicted, now, at) = _datapath.OnPacketThread(() =>
            (table.SnapshotLearned(), table.Capacity, table.Evicted, _datapath.Clock.NowSeconds, table.LearnedChanges));
        var wallNow = DateTime.UtcNow;
        _learned = new ConnectionList(list.Select(c => Entry(c, wallNow, now)).ToArray(), capacity, evicted);
        _learnedAt = at;
        return _learned;
    }

    /// <summary>
    /// The control thread's tick: saves the learned connections when the table learned or forgot one since the last
    /// save (a cheap read when nothing changed), so a crash between commits loses at most one tick of learning.
    /// </summary>
    public void SaveLearned()
    {
        if (Persist == null || (_learned != null && _datapath.Connections.LearnedChanges == _learnedAt)) return;
        try { Persist.Save(State, Learned()); }
        catch (Exception e) when (e is System.IO.IOException or UnauthorizedAccessException or NvRedirect.Core.Netlink.NetlinkException)
        {
            _log.Error($"the learned connections could not be saved to {Persist.Path}: {e.Message}; a restart would forget them");
        }
    }

    /// <summary>Re-learns saved connections of the restored workloads (before the ring opens), oldest first; returns how many.</summary>
    private int Relearn(ConnectionList saved, ControlState state)
    {
        var table = _datapath.Connections;
        long now = _datapath.Clock.NowSeconds;
        var wallNow = DateTime.UtcNow;
        var entries = saved.Connections.Where(e => e.Answered && !e.Scan && state.Workloads.ContainsKey(e.Mac))
            .OrderBy(e => e.LastSeen).TakeLast(table.MaxAnswered).ToArray();
        _datapath.OnPacketThread(() =>
        {
            foreach (var e in entries)
                table.Relearn(KeyOf(e), e.Sessions, e.Packets, e.Bytes, e.Dropped,
                    now + (long)Math.Round((e.FirstSeen - wallNow).TotalSeconds), now + (long)Math.Round((e.LastSeen - wallNow).TotalSeconds));
            return 0;
        });
        return entries.Length;
    }

    private static IPAddress Address(ulong high, ulong low, bool v6)
    {
        if (!v6) return new IPAddress(new[] { (byte)(low >> 24), (byte)(low >> 16), (byte)(low >> 8), (byte)low });
        Span<byte> b = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b, high);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b[8..], low);
        return new IPAddress(b);
    }

    private void ClearConnections(MacFilterRequest m, Request r)
    {
        var macs = Registered(m.Macs, Key.Macs, r).ToArray();
        r.Effects.Add(_ =>
        {
            int n = _datapath.OnPacketThread(() => macs.Length == 0 ? _datapath.Connections.Clear(0) : macs.Sum(m => _datapath.Connections.Clear(m)));
            _log.Info($"{Command.ClearConnections}: forgot {n} connection entries");
        });
    }

    /// <summary>NeuVector's DP_POLICY_FQDN_MAX_ENTRIES: most names kept.</summary>
    public const int MaxFqdns = 2048;

    // ctrl_cfg_set_fqdn: the addresses a name stands for now (replacing what it stood for). Kept and reported, and
    // counted in DEVICE_COUNTER's PolicyDomains/PolicyDomainIPs; rules naming an fqdn are still refused (docs/datapath.md).
    private static void SetFqdn(SetFqdnRequest m, Request r)
    {
        var f = r.State.Fqdns;
        if (!f.ContainsKey(m.Name) && f.Count >= MaxFqdns)
            throw new CommandException($"already {MaxFqdns} names (NeuVector's limit); delete some with {Command.DeleteFqdn} first");
        var addresses = m.Addresses.Distinct().ToArray();
        f[m.Name] = new FqdnEntry(m.Name.ToLowerInvariant(), addresses, m.VirtualHost ?? false);
        r.Notes.Add($"{Command.SetFqdn}: {m.Name.ToLowerInvariant()} = {(addresses.Length == 0 ? "no address" : string.Join(", ", addresses.Select(a => a.ToString())))}"
            + (m.VirtualHost == true ? " (virtual host)" : "") + " (kept and reported)");
    }

    private static void DeleteFqdn(DeleteFqdnRequest m, Request r)
    {
        var removed = m.Names.Where(n => r.State.Fqdns.Remove(n)).ToList();
        var missing = m.Names.Except(removed, StringComparer.OrdinalIgnoreCase).ToList();
        r.Notes.Add($"{Command.DeleteFqdn}: {(removed.Count == 0 ? "nothing" : string.Join(", ", removed))} removed"
            + (missing.Count > 0 ? $" (not known: {string.Join(", ", missing)})" : ""));
    }
}
