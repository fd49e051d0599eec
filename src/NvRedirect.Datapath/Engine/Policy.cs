using System;
using System.Collections.Frozen;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Engine;

/// <summary>The outcome of a policy lookup: the rule that decided (0 = the default action or a built-in) and its action.</summary>
internal readonly record struct PolicyVerdict(uint RuleId, DpPolicyAction Action)
{
    /// <summary>No policy applies: everything passes.</summary>
    public static readonly PolicyVerdict Open = new(0, DpPolicyAction.Open);
    /// <summary>The built-in rule that allows ICMP when ICMP is not policed (NeuVector adds it with id 0).</summary>
    public static readonly PolicyVerdict IcmpAllowed = new(0, DpPolicyAction.Allow);
}

/// <summary>
/// A workload's policy as one ctrl_cfg_policy ADD/MODIFY built it: immutable, with a version that changes with every
/// build (sessions remember the version they were decided under and are decided again when it changed). Lookups are
/// first match in rule order and allocate nothing: single-address rules sit in a hash by (client, server, port,
/// protocol, direction); the others in per-direction, per-protocol lists in rule order, scanned only up to the
/// position of an exact hit.
/// </summary>
internal sealed class Policy
{
    private const int Tcp = 0, Udp = 1, Icmp = 2;

    private readonly FrozenDictionary<ExactKey, int> _exact;
    // [direction * 3 + protocol bucket] -> positions of range rules in rule order
    private readonly int[][] _ranges = new int[6][];
    // [direction] -> positions of the rules that can match IPv6 sessions (IPv6 rules and any-address IPv4 rules) in rule order
    private readonly int[][] _rules6 = new int[2][];

    /// <summary>Version of this build (unique across the daemon's life).</summary>
    public uint Version { get; }
    /// <summary>The action when no rule matches.</summary>
    public DpPolicyAction DefaultAction { get; }
    /// <summary>Which sessions the policy polices (direction bits).</summary>
    public DpDirection Direction { get; }
    /// <summary>The rules in order.</summary>
    public PolicyRule[] Rules { get; }

    private readonly record struct ExactKey(uint Client, uint Server, ushort Port, byte Protocol, bool Ingress);

    /// <summary>Builds a policy (rules are kept in the given order; the first match wins).</summary>
    public Policy(uint version, DpPolicyAction defaultAction, DpDirection direction, IReadOnlyList<PolicyRule> rules)
    {
        Version = version;
        DefaultAction = defaultAction;
        Direction = direction;
        Rules = rules.ToArray();
        var exact = new Dictionary<ExactKey, int>();
        var ranges = Enumerable.Range(0, 6).Select(_ => new List<int>()).ToArray();
        var rules6 = new[] { new List<int>(), new List<int>() };
        for (int i = 0; i < Rules.Length; i++)
        {
            var r = Rules[i];
            if (r.IPv6 || r.IsAnyAddress) rules6[r.Ingress ? 1 : 0].Add(i);
            if (r.IPv6) continue; // never an IPv4 session's
            if (r.IsExact)
            {
                exact.TryAdd(new ExactKey(r.SourceFrom, r.DestinationFrom, r.PortFrom, r.Protocol, r.Ingress), i); // the first such rule wins
                continue;
            }
            int d = r.Ingress ? 3 : 0;
            switch (r.Protocol)
            {
                case 0: ranges[d + Tcp].Add(i); ranges[d + Udp].Add(i); ranges[d + Icmp].Add(i); break;
                case 6: ranges[d + Tcp].Add(i); break;
                case 17: ranges[d + Udp].Add(i); break;
                case 1: ranges[d + Icmp].Add(i); break;
                // other protocols are never policed, so their rules can never match
            }
        }
        _exact = exact.ToFrozenDictionary();
        for (int i = 0; i < 6; i++) _ranges[i] = ranges[i].ToArray();
        for (int i = 0; i < 2; i++) _rules6[i] = rules6[i].ToArray();
    }

    /// <summary>
    /// The first rule matching an IPv6 session (ICMPv6: port 0), or -1: IPv6 rules and IPv4 rules for any address on
    /// both sides, in rule order. Protocol 0 covers TCP, UDP and ICMPv6 (ICMPv6 only with <paramref name="icmpPolicy"/>);
    /// any other protocol is matched by its number only.
    /// </summary>
    public int Match6(UInt128 client, UInt128 server, ushort port, byte protocol, bool ingress, bool icmpPolicy)
    {
        var list = _rules6[ingress ? 1 : 0];
        bool anyCovers = protocol is 6 or 17 || (protocol == 58 && icmpPolicy);
        for (int i = 0; i < list.Length; i++)
        {
            ref readonly var r = ref Rules[list[i]];
            if (r.Protocol != protocol && !(r.Protocol == 0 && anyCovers)) continue;
            if (r.Matches6(client, server, port)) return list[i];
        }
        return -1;
    }

    /// <summary>
    /// The first rule matching a session from <paramref name="client"/> to <paramref name="server"/>:<paramref name="port"/>
    /// (ICMP: port 0), or -1. <paramref name="icmpPolicy"/> false: rules for any protocol do not apply to ICMP.
    /// </summary>
    public int Match(uint client, uint server, ushort port, byte protocol, bool ingress, bool icmpPolicy)
    {
        int bucket = protocol switch { 6 => Tcp, 17 => Udp, 1 => Icmp, _ => -1 };
        if (bucket < 0) return -1;
        int best = _exact.TryGetValue(new ExactKey(client, server, port, protocol, ingress), out int e) ? e : int.MaxValue;
        var list = _ranges[(ingress ? 3 : 0) + bucket];
        for (int i = 0; i < list.Length; i++)
        {
            int position = list[i];
            if (position >= best) break;
            ref readonly var r = ref Rules[position];
            if (!icmpPolicy && bucket == Icmp && r.Protocol == 0) continue;
            if (r.Matches(client, server, port)) return position;
        }
        return best == int.MaxValue ? -1 : best;
    }
}

/// <summary>
/// The datapath-wide settings policy decisions depend on, published with the workload table: the global toggles and
/// the internal subnets. <see cref="Generation"/> changes whenever any of them does, so sessions are decided again.
/// </summary>
internal sealed class PolicySettings(uint generation, bool disableNetPolicy, bool icmpPolicy, (uint Ip, uint Mask)[] internalNets,
    bool strict = true, uint[]? policyAddresses = null, bool strictGroupMode = false)
{
    /// <summary>The engine used alone (tests, before the first commit): policy on, ICMP policed, strict, no internal
    /// subnets (every address internal). The controller publishes its own (dp's defaults unless --strict; docs/datapath.md).</summary>
    public static readonly PolicySettings Default = new(0, false, true, []);

    public uint Generation { get; } = generation;
    /// <summary>ctrl_disable_net_policy: everything is OPEN.</summary>
    public bool DisableNetPolicy { get; } = disableNetPolicy;
    /// <summary>ctrl_enable_icmp_policy (nvr-dp's default is on; see docs/datapath.md).</summary>
    public bool IcmpPolicy { get; } = icmpPolicy;
    /// <summary>ctrl_cfg_internal_net; empty = every address is internal (as NeuVector).</summary>
    public (uint Ip, uint Mask)[] InternalNets { get; } = internalNets;

    /// <summary>nvr_cfg_strict: no grace period for unknown peers, and an inbound UDP packet's sender is always the
    /// client. Off: NeuVector dp's semantics (<see cref="UnknownPeerGrace"/>, UDP orientation by the listening ports).</summary>
    public bool Strict { get; } = strict;
    /// <summary>ctrl_cfg_policy_addr: the addresses the agent's policy names, sorted (a peer outside them gets the grace period).</summary>
    public uint[] PolicyAddresses { get; } = policyAddresses is null ? [] : [.. policyAddresses.Order()];
    /// <summary>ctrl_strict_group_mode: with a DENY/VIOLATE default, internal peers get no grace period (as dp).</summary>
    public bool StrictGroupMode { get; } = strictGroupMode;

    /// <summary>Whether ctrl_cfg_policy_addr named <paramref name="ip"/> (allocates nothing).</summary>
    public bool IsPolicyAddress(uint ip) => Array.BinarySearch(PolicyAddresses, ip) >= 0;

    /// <summary>Whether <paramref name="ip"/> is internal: no subnets configured, or (ip &amp; mask) == subnet.</summary>
    public bool IsInternal(uint ip)
    {
        var nets = InternalNets;
        if (nets.Length == 0) return true;
        for (int i = 0; i < nets.Length; i++)
            if ((ip & nets[i].Mask) == nets[i].Ip) return true;
        return false;
    }
}

/// <summary>
/// The decision for a session (NeuVector dp/dpi/dpi_policy.c, with nvr-dp's choices; docs/datapath.md "Policy"): no policy or policy disabled -> OPEN;
/// link-local peers -> OPEN; a direction the policy does not cover ("dir") with an internal peer -> OPEN; otherwise the
/// first matching rule, for an external peer also the rules written for "any external" (peer address 0.0.0.0) with the
/// earlier rule winning, else the default action. ICMP not policed -> the built-in allow. The unknown-IP grace period (dp's semantics) is applied to the result by <see cref="UnknownPeerGrace"/>.
/// </summary>
internal static class PolicyEngine
{
    /// <summary>Decides a session of a workload with <paramref name="policy"/> (null = none).</summary>
    public static PolicyVerdict Decide(Policy? policy, PolicySettings settings, uint client, uint server, ushort port, byte protocol, bool ingress)
    {
        if (policy is null || settings.DisableNetPolicy) return PolicyVerdict.Open;
        if (protocol is not (6 or 17 or 1)) return PolicyVerdict.Open;
        uint peer = ingress ? client : server;
        if (peer >> 16 == 0xa9fe) return PolicyVerdict.Open; // 169.254/16, link-local
        bool internalPeer = settings.IsInternal(peer);
        var needed = ingress ? DpDirection.Ingress : DpDirection.Egress;
        if (internalPeer && (policy.Direction & needed) == 0) return PolicyVerdict.Open;
        if (protocol == 1) port = 0;

        int position = policy.Match(client, server, port, protocol, ingress, settings.IcmpPolicy);
        if (!internalPeer)
        {
            int external = ingress ? policy.Match(0, server, port, protocol, ingress, settings.IcmpPolicy)
                                   : policy.Match(client, 0, port, protocol, ingress, settings.IcmpPolicy);
            if (external >= 0 && (position < 0 || external < position)) position = external;
        }
        if (position >= 0)
        {
            ref readonly var r = ref policy.Rules[position];
            return new PolicyVerdict(r.Id, r.Action);
        }
        if (protocol == 1 && !settings.IcmpPolicy) return PolicyVerdict.IcmpAllowed;
        return new PolicyVerdict(0, policy.DefaultAction);
    }

    /// <summary>
    /// Decides an IPv6 session (nvr-dp's extension, docs/datapath.md "IPv6"): no policy or policy disabled -> OPEN;
    /// a link-local peer (fe80::/10) -> OPEN; the peer is internal (the internal subnets are IPv4), so a direction the
    /// policy does not cover -> OPEN; otherwise the first matching rule, else the default action. ICMPv6 not policed ->
    /// the built-in allow. Unlike IPv4 (NeuVector polices TCP, UDP and ICMP only), every other IPv6 protocol is
    /// decided too (rules for its number, else the default action): what nvr-dp cannot look into is not let past
    /// Protect. Neighbour discovery never gets here (the frame processor passes it).
    /// </summary>
    public static PolicyVerdict Decide6(Policy? policy, PolicySettings settings, UInt128 client, UInt128 server, ushort port, byte protocol, bool ingress)
    {
        if (policy is null || settings.DisableNetPolicy) return PolicyVerdict.Open;
        UInt128 peer = ingress ? client : server;
        if (peer >> 118 == 0x3fa) return PolicyVerdict.Open; // fe80::/10, link-local
        var needed = ingress ? DpDirection.Ingress : DpDirection.Egress;
        if ((policy.Direction & needed) == 0) return PolicyVerdict.Open;
        if (protocol == 58) port = 0;
        int position = policy.Match6(client, server, port, protocol, ingress, settings.IcmpPolicy);
        if (position >= 0)
        {
            ref readonly var r = ref policy.Rules[position];
            return new PolicyVerdict(r.Id, r.Action);
        }
        if (protocol == 58 && !settings.IcmpPolicy) return PolicyVerdict.IcmpAllowed;
        return new PolicyVerdict(0, policy.DefaultAction);
    }
}
