using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// NeuVector dp's grace period for addresses its agent has not named yet (dp/dpi/dpi_policy.c, TMP_OPEN): when a
/// session would get the policy's DENY or VIOLATE default only because no rule matched, and the address that decides
/// it is not in ctrl_cfg_policy_addr, it is let through (OPEN, rule 0). The agent pushes rules and addresses of
/// workloads on other hosts late; the grace keeps their first connections from being refused meanwhile.
/// <para>
/// Per (client, server) pair (the peer zeroed when it is external): the first time opens a window of
/// <see cref="Window"/> seconds under the current policy version; inside it, with the same version, every decision
/// passes. A decision after the window, or under another policy version, opens a new window while tries are left
/// (<see cref="Tries"/>; <see cref="ExternalTries"/> for external peers); then the default stands. A pair not seen for
/// <see cref="Idle"/> seconds is forgotten (and would get a fresh grace). Sessions opened in grace stay open until a
/// policy, policy-address or settings change decides them again: naming the address in ctrl_cfg_policy_addr cuts the
/// grace short, for new and open sessions alike.
/// </para>
/// Only in dp's semantics (<see cref="PolicySettings.Strict"/> off). Preallocated, 4-way set associative; a full set
/// forgets its least recently used pair. Owned by the packet thread; allocates nothing.
/// </summary>
internal sealed class UnknownPeerGrace
{
    /// <summary>dp's POLICY_DESC_VER_CHG_MAX, UNKNOWN_IP_TRY_COUNT, EXT_IP_TRY_COUNT and UNKNOWN_IP_CACHE_TIMEOUT.</summary>
    public const int Window = 60, Tries = 10, ExternalTries = 2, Idle = 600;
    private const int Ways = 4;

    private struct Entry
    {
        public ulong Pair;
        public uint Version;
        public long Start, LastHit;
        public byte TriesLeft;
        public bool InUse;
    }

    private readonly Entry[] _entries;
    private readonly int _setMask;

    /// <summary>Decisions opened by the grace period, and denied after it was used up.</summary>
    public long Granted, Exhausted;

    /// <summary>A table of about <paramref name="capacity"/> pairs (rounded up to a power of two, at least 64).</summary>
    public UnknownPeerGrace(int capacity = 4096)
    {
        int sets = 16;
        while (sets * Ways < capacity) sets <<= 1;
        _entries = new Entry[sets * Ways];
        _setMask = sets - 1;
    }

    /// <summary>
    /// <paramref name="verdict"/>, or OPEN when it is the policy's DENY/VIOLATE default for a session whose deciding
    /// address the agent has not named and the pair still has grace (as dp's _dpi_policy_chk_unknown_ip).
    /// </summary>
    public PolicyVerdict Apply(PolicyVerdict verdict, Policy? policy, PolicySettings settings, uint client, uint server, bool ingress, long now)
    {
        if (settings.Strict || policy is null || verdict.RuleId != 0 || verdict.Action != policy.DefaultAction
            || verdict.Action is not (DpPolicyAction.Deny or DpPolicyAction.Violate)) return verdict;
        uint peer = ingress ? client : server, own = ingress ? server : client;
        bool external = !settings.IsInternal(peer);
        if (external)
        {
            // an external peer is never named: the workload's own address decides, and the pair is kept without the peer
            if (settings.IsPolicyAddress(own)) return verdict;
            if (ingress) client = 0; else server = 0;
        }
        else if (settings.StrictGroupMode || settings.IsPolicyAddress(peer)) return verdict;
        if (!TryOpen((ulong)client << 32 | server, policy.Version, external, now)) { Exhausted++; return verdict; }
        Granted++;
        return PolicyVerdict.Open;
    }

    private bool TryOpen(ulong pair, uint version, bool external, long now)
    {
        ulong h = pair * 0x9E3779B97F4A7C15UL;
        int first = (int)(h >> 40 & (ulong)_setMask) * Ways, victim = first;
        long oldest = long.MaxValue;
        for (int i = first; i < first + Ways; i++)
        {
            ref var e = ref _entries[i];
            bool live = e.InUse && now - e.LastHit < Idle;
            if (live && e.Pair == pair)
            {
                if (e.Version == version && now - e.Start < Window) { e.LastHit = now; return true; }
                if (e.TriesLeft == 0) return false; // used up: the default stands (the pair is forgotten Idle after its last grace)
                e.TriesLeft--;
                e.Version = version;
                e.Start = e.LastHit = now;
                return true;
            }
            long age = live ? e.LastHit : long.MinValue; // a free or forgotten slot first, else the least recently used
            if (age < oldest) { oldest = age; victim = i; }
        }
        ref var n = ref _entries[victim];
        n.InUse = true;
        n.Pair = pair;
        n.Version = version;
        n.Start = n.LastHit = now;
        n.TriesLeft = (byte)(external ? ExternalTries : Tries);
        return true;
    }
}
