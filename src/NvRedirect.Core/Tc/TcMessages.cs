using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Tc;

/// <summary>
/// Request encoders for qdiscs and filters (RTM_*QDISC, RTM_*TFILTER; docs/kernel-interfaces.md, "tc"). Each produces the
/// bytes tc (iproute2 6.1) sends for the same command, sequence number aside: attribute order, which nests carry
/// NLA_F_NESTED (only TCA_ACT_OPTIONS and pedit's KEYS_EX) and NUL-terminated kinds included. Tests compare them with
/// the captures in tests/NvRedirect.Tests/Golden and with live `tc` under strace.
/// </summary>
public static class TcMessages
{
    private const ushort ReplaceFlags = Rtnl.NLM_F_REQUEST | Rtnl.NLM_F_ACK | Rtnl.NLM_F_CREATE | Rtnl.NLM_F_REPLACE; // 0x0505

    // ------------------------------------------------------------------ qdiscs

    /// <summary>`tc qdisc add dev D ingress` (0x0605; EEXIST when present) or, with <paramref name="replace"/>,
    /// `tc qdisc replace dev D ingress` (0x0505; succeeds when present and keeps its filters).</summary>
    public static NetlinkWriter NewQdisc(Qdisc qdisc, bool replace)
    {
        ThrowIfNoLink(qdisc.LinkIndex);
        var w = new NetlinkWriter(Rtnl.RTM_NEWQDISC, replace ? ReplaceFlags : Rtnl.CreateFlags);
        TcLayouts.WriteTcMsg(w, new TcMsg(qdisc.LinkIndex, qdisc.Handle, qdisc.Parent, 0));
        return w.AttrString(Tca.TCA_KIND, qdisc.Kind);
    }

    /// <summary>`tc qdisc del dev D ingress` (its filters go with it).</summary>
    public static NetlinkWriter DeleteQdisc(Qdisc qdisc)
    {
        ThrowIfNoLink(qdisc.LinkIndex);
        var w = new NetlinkWriter(Rtnl.RTM_DELQDISC, Rtnl.ChangeFlags);
        TcLayouts.WriteTcMsg(w, new TcMsg(qdisc.LinkIndex, qdisc.Handle, qdisc.Parent, 0));
        return w.AttrString(Tca.TCA_KIND, qdisc.Kind);
    }

    /// <summary>RTM_GETQDISC for one qdisc of one device, by handle and parent (no dump): its RTM_NEWQDISC, or ENOENT/EINVAL.</summary>
    public static NetlinkWriter GetQdisc(int linkIndex, uint handle, uint parent)
    {
        ThrowIfNoLink(linkIndex);
        // NLM_F_ECHO: kernels before 6.3 only broadcast the answer to a get unless echo is asked for; the ACK ends the exchange either way
        return TcLayouts.WriteTcMsg(new NetlinkWriter(Rtnl.RTM_GETQDISC, Rtnl.NLM_F_REQUEST | Rtnl.NLM_F_ACK | 0x8), new TcMsg(linkIndex, handle, parent, 0));
    }

    /// <summary>`tc qdisc show [dev D]`: a dump of the namespace's qdiscs (tc filters by device itself; so do we).</summary>
    public static NetlinkWriter DumpQdiscs(int linkIndex = 0)
        => TcLayouts.WriteTcMsg(new NetlinkWriter(Rtnl.RTM_GETQDISC, Rtnl.DumpFlags), new TcMsg(linkIndex, 0, 0, 0));

    // ------------------------------------------------------------------ filters

    /// <summary>
    /// `tc filter add dev D [parent P] pref N protocol X u32 match ... action ...` (0x0605): [TCA_CHAIN],
    /// TCA_KIND "u32", TCA_OPTIONS { [TCA_U32_CLASSID], TCA_U32_ACT { 1 {...}, 2 {...} }, TCA_U32_SEL }.
    /// Decoded-only properties (handle, hash table, flags, counters, action indexes) are not sent, so a decoded
    /// filter encodes to the request that created it.
    /// </summary>
    public static NetlinkWriter AddFilter(U32Filter filter)
    {
        ThrowIfNoLink(filter.LinkIndex);
        var w = FilterHeader(Rtnl.RTM_NEWTFILTER, Rtnl.CreateFlags, filter, filter.Protocol);
        if (filter.Chain != 0) w.AttrU32(Tca.TCA_CHAIN, filter.Chain); // tc puts the chain before the kind
        w.AttrString(Tca.TCA_KIND, filter.Kind);
        int options = w.BeginNest(Tca.TCA_OPTIONS);
        if (filter.ClassId is uint classId) w.AttrU32(Tca.TCA_U32_CLASSID, classId);
        if (filter.Actions.Count > 0) WriteActions(w, Tca.TCA_U32_ACT, filter.Actions);
        w.Attr(Tca.TCA_U32_SEL, TcLayouts.U32Selector(filter.Selector));
        w.EndNest(options);
        return w;
    }

    /// <summary>
    /// `tc filter add dev D pref N protocol X bpf [da] ...` (0x0605): [TCA_CHAIN], TCA_KIND "bpf", TCA_OPTIONS { TCA_BPF_FD,
    /// [TCA_BPF_NAME], TCA_BPF_FLAGS }. <paramref name="programFd"/> is a BPF program fd of this process, open while
    /// the request is sent; the filter keeps its own reference to the program afterwards.
    /// </summary>
    public static NetlinkWriter AddFilter(BpfFilter filter, int programFd)
    {
        ThrowIfNoLink(filter.LinkIndex);
        if (programFd < 0) throw new ArgumentOutOfRangeException(nameof(programFd), "A bpf filter needs an open program fd.");
        var w = FilterHeader(Rtnl.RTM_NEWTFILTER, Rtnl.CreateFlags, filter, filter.Protocol);
        if (filter.Chain != 0) w.AttrU32(Tca.TCA_CHAIN, filter.Chain); // tc puts the chain before the kind
        w.AttrString(Tca.TCA_KIND, filter.Kind);
        int options = w.BeginNest(Tca.TCA_OPTIONS);
        if (filter.ClassId is uint classId) w.AttrU32(Tca.TCA_BPF_CLASSID, classId);
        w.AttrU32(Tca.TCA_BPF_FD, (uint)programFd);
        if (!string.IsNullOrEmpty(filter.Name)) w.AttrString(Tca.TCA_BPF_NAME, filter.Name);
        if (filter.DirectAction) w.AttrU32(Tca.TCA_BPF_FLAGS, Tca.TCA_BPF_FLAG_ACT_DIRECT);
        if (filter.Actions.Count > 0) WriteActions(w, Tca.TCA_BPF_ACT, filter.Actions);
        w.EndNest(options);
        return w;
    }

    /// <summary>
    /// `tc filter del dev D parent P pref N [protocol X KIND]` (0x0005): removes the whole priority (every node of
    /// it). With <paramref name="kind"/> the request carries TCA_KIND as tc does when a kind is named.
    /// </summary>
    public static NetlinkWriter DeleteFilter(int linkIndex, ushort priority, ushort protocol = 0, string? kind = null,
        uint parent = Tca.IngressHandle, uint handle = 0)
    {
        ThrowIfNoLink(linkIndex);
        var w = new NetlinkWriter(Rtnl.RTM_DELTFILTER, Rtnl.ChangeFlags);
        TcLayouts.WriteTcMsg(w, new TcMsg(linkIndex, handle, parent, TcMsg.FilterInfo(priority, protocol)));
        if (kind != null) w.AttrString(Tca.TCA_KIND, kind);
        return w;
    }

    /// <summary>`tc filter show dev D parent P [pref N]`: a dump (the kernel honours a non-zero pref/protocol).</summary>
    public static NetlinkWriter DumpFilters(int linkIndex, uint parent = Tca.IngressHandle, ushort priority = 0, ushort protocol = 0)
    {
        ThrowIfNoLink(linkIndex);
        return TcLayouts.WriteTcMsg(new NetlinkWriter(Rtnl.RTM_GETTFILTER, Rtnl.DumpFlags),
            new TcMsg(linkIndex, 0, parent, TcMsg.FilterInfo(priority, protocol)));
    }

    private static NetlinkWriter FilterHeader(ushort type, ushort flags, TcFilter filter, ushort protocol)
        => TcLayouts.WriteTcMsg(new NetlinkWriter(type, flags),
            new TcMsg(filter.LinkIndex, 0, filter.Parent, TcMsg.FilterInfo(filter.Priority, protocol)));

    private static void ThrowIfNoLink(int linkIndex)
    {
        if (linkIndex <= 0) throw new ArgumentOutOfRangeException(nameof(linkIndex), linkIndex, "A tc object needs the ifindex of its device (> 0).");
    }

    // ------------------------------------------------------------------ action lists

    /// <summary>
    /// An action list as tc writes it: one nest per action numbered 1..n (the execution order), each with
    /// TCA_ACT_KIND, TCA_ACT_OPTIONS|NLA_F_NESTED and, when set, TCA_ACT_COOKIE after the options.
    /// </summary>
    internal static void WriteActions(NetlinkWriter w, ushort listType, IReadOnlyList<TcAction> actions)
    {
        if (actions.Count > Tca.MaxActions)
            throw new ArgumentException($"A filter holds at most {Tca.MaxActions} actions, not {actions.Count}.", nameof(actions));
        int list = w.BeginNest(listType);
        for (int i = 0; i < actions.Count; i++)
        {
            var action = actions[i];
            int order = w.BeginNest((ushort)(i + 1));
            w.AttrString(Tca.TCA_ACT_KIND, action.Kind);
            int options = w.BeginNest(Tca.TCA_ACT_OPTIONS | Rtnl.NLA_F_NESTED);
            switch (action)
            {
                case MirredAction m:
                    if (m.TargetIndex <= 0)
                        throw new ArgumentException($"The mirred action {i + 1} has no target ifindex{(m.TargetName != null ? $" (device '{m.TargetName}' was not resolved)" : "")}.", nameof(actions));
                    w.Attr(Tca.TCA_MIRRED_PARMS, TcLayouts.Mirred(m));
                    break;
                case PeditAction p when p.IsExtended:
                    // `pedit ex`: the same selector under PARMS_EX, then each key's header type and command
                    w.Attr(Tca.TCA_PEDIT_PARMS_EX, TcLayouts.Pedit(p));
                    int keysEx = w.BeginNest(Tca.TCA_PEDIT_KEYS_EX | Rtnl.NLA_F_NESTED);
                    foreach (var key in p.Keys)
                    {
                        int keyEx = w.BeginNest(Tca.TCA_PEDIT_KEY_EX | Rtnl.NLA_F_NESTED);
                        w.AttrU16(Tca.TCA_PEDIT_KEY_EX_HTYPE, (ushort)key.HeaderType);
                        w.AttrU16(Tca.TCA_PEDIT_KEY_EX_CMD, (ushort)key.Command);
                        w.EndNest(keyEx);
                    }
                    w.EndNest(keysEx);
                    break;
                case PeditAction p:
                    w.Attr(Tca.TCA_PEDIT_PARMS, TcLayouts.Pedit(p));
                    break;
                case UnknownAction u:
                    w.Raw(u.Options);
                    break;
                default:
                    throw new ArgumentException($"Cannot encode a {action.GetType().Name} ({action.Kind}) action.", nameof(actions));
            }
            w.EndNest(options);
            if (action.Cookie is { } cookie)
            {
                if (cookie.Length is 0 or > Tca.MaxCookieBytes)
                    throw new ArgumentException($"An action cookie holds 1 to {Tca.MaxCookieBytes} bytes, not {cookie.Length}.", nameof(actions));
                w.Attr(Tca.TCA_ACT_COOKIE, cookie);
            }
            w.EndNest(order);
        }
        w.EndNest(list);
    }

    /// <summary>The request bytes of a filter with the sequence number zeroed: equal bytes = the same rule.</summary>
    public static byte[] Fingerprint(U32Filter filter) => AddFilter(filter).ToArray(0);
}
