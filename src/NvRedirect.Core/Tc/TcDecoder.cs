using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Tc;

/// <summary>
/// Decoders for qdisc and filter messages (kernel dump replies, and requests too: a request has the same layout).
/// A u32 priority is dumped as three kinds of RTM_NEWTFILTER (docs/kernel-interfaces.md, "Dumps"): the priority itself
/// (handle 0, no options), its hash table (handle 800:, TCA_U32_DIVISOR) and one message per node (handle 800::800,
/// TCA_U32_SEL, actions...). They are folded into one <see cref="U32Filter"/> per node; bpf priorities likewise
/// into one <see cref="BpfFilter"/> per program.
/// </summary>
public static class TcDecoder
{
    /// <summary>Decodes one RTM_NEWQDISC.</summary>
    public static Qdisc ParseQdisc(NetlinkMessage msg)
    {
        var p = msg.Payload;
        var tcm = TcLayouts.ReadTcMsg(p);
        string kind = "";
        foreach (var a in new NetlinkAttributes(p[Tca.TcMsgSize..]))
            if (a.Type == Tca.TCA_KIND) kind = a.String;
        return new Qdisc { LinkIndex = tcm.IfIndex, Kind = kind, Handle = tcm.Handle, Parent = tcm.Parent, RefCount = tcm.Info };
    }

    /// <summary>Every qdisc in a dump (messages of other types are skipped).</summary>
    public static List<Qdisc> ParseQdiscs(IEnumerable<NetlinkMessage> messages)
        => messages.Where(m => m.Type == Rtnl.RTM_NEWQDISC).Select(ParseQdisc).ToList();

    /// <summary>The filters of a dump, one object per u32 node / bpf program, in dump order.</summary>
    public static List<TcFilter> ParseFilters(IEnumerable<NetlinkMessage> messages)
    {
        var filters = new List<TcFilter>();
        foreach (var m in messages)
            if (m.Type == Rtnl.RTM_NEWTFILTER && ParseFilter(m) is { } f) filters.Add(f);
        return filters;
    }

    /// <summary>
    /// One filter message: the node or program it describes, or null for the entries that only announce a priority
    /// or a u32 hash table.
    /// </summary>
    public static TcFilter? ParseFilter(NetlinkMessage msg)
    {
        var p = msg.Payload;
        var tcm = TcLayouts.ReadTcMsg(p);
        string kind = "";
        uint chain = 0;
        bool hasOptions = false;
        ReadOnlySpan<byte> options = default;
        foreach (var a in new NetlinkAttributes(p[Tca.TcMsgSize..]))
        {
            switch (a.Type)
            {
                case Tca.TCA_KIND: kind = a.String; break;
                case Tca.TCA_CHAIN: chain = a.U32; break;
                case Tca.TCA_OPTIONS: options = a.Value; hasOptions = true; break;
            }
        }
        return kind switch
        {
            "u32" => hasOptions ? ParseU32(tcm, chain, options) : null,
            "bpf" => hasOptions ? ParseBpf(tcm, chain, options) : null,
            _ => tcm.Handle == 0 ? null : Identified(new GenericFilter(kind), tcm, chain),
        };
    }

    private static U32Filter? ParseU32(TcMsg tcm, uint chain, ReadOnlySpan<byte> options)
    {
        U32Selector? selector = null;
        List<TcAction> actions = [];
        uint? classId = null;
        uint hashTable = 0, flags = 0;
        (ulong Lookups, ulong Hits)? counters = null;
        foreach (var a in new NetlinkAttributes(options))
        {
            switch (a.Type)
            {
                case Tca.TCA_U32_SEL: selector = TcLayouts.ReadU32Selector(a.Value); break;
                case Tca.TCA_U32_ACT: actions = ParseActions(a.Value); break;
                case Tca.TCA_U32_CLASSID: classId = a.U32; break;
                case Tca.TCA_U32_HASH: hashTable = a.U32; break;
                case Tca.TCA_U32_FLAGS: flags = a.U32; break;
                case Tca.TCA_U32_PCNT: counters = TcLayouts.ReadU32Counters(a.Value); break;
            }
        }
        if (selector == null) return null; // the hash-table entry (TCA_U32_DIVISOR only)
        return Identified(new U32Filter
        {
            Selector = selector,
            Actions = actions,
            ClassId = classId,
            HashTable = hashTable,
            Flags = flags,
            Lookups = counters?.Lookups,
            Hits = counters?.Hits,
        }, tcm, chain);
    }

    private static BpfFilter ParseBpf(TcMsg tcm, uint chain, ReadOnlySpan<byte> options)
    {
        string? name = null;
        uint id = 0, flags = 0, flagsGen = 0;
        uint? classId = null;
        byte[] tag = [];
        List<TcAction> actions = [];
        foreach (var a in new NetlinkAttributes(options))
        {
            switch (a.Type)
            {
                case Tca.TCA_BPF_NAME: name = a.String; break;
                case Tca.TCA_BPF_ID: id = a.U32; break;
                case Tca.TCA_BPF_TAG: tag = a.Value.ToArray(); break;
                case Tca.TCA_BPF_FLAGS: flags = a.U32; break;
                case Tca.TCA_BPF_FLAGS_GEN: flagsGen = a.U32; break;
                case Tca.TCA_BPF_CLASSID: classId = a.U32; break;
                case Tca.TCA_BPF_ACT: actions = ParseActions(a.Value); break;
            }
        }
        return Identified(new BpfFilter
        {
            Name = name,
            ProgramId = id,
            Tag = tag,
            DirectAction = (flags & Tca.TCA_BPF_FLAG_ACT_DIRECT) != 0,
            GenericFlags = flagsGen,
            ClassId = classId,
            Actions = actions,
        }, tcm, chain);
    }

    /// <summary>The filter with the identity every kind shares: device, parent, pref, protocol, chain, handle.</summary>
    private static T Identified<T>(T filter, TcMsg tcm, uint chain) where T : TcFilter
        => (T)(filter with { LinkIndex = tcm.IfIndex, Parent = tcm.Parent, Priority = tcm.Priority, Protocol = tcm.Protocol, Chain = chain, Handle = tcm.Handle });

    /// <summary>An action list (TCA_U32_ACT, TCA_BPF_ACT): nests numbered by execution order.</summary>
    public static List<TcAction> ParseActions(ReadOnlySpan<byte> list)
    {
        var ordered = new List<(int Order, TcAction Action)>();
        foreach (var nest in new NetlinkAttributes(list))
            ordered.Add((nest.Type, ParseAction(nest.Value)));
        return ordered.OrderBy(o => o.Order).Select(o => o.Action).ToList();
    }

    private static TcAction ParseAction(ReadOnlySpan<byte> nest)
    {
        string kind = "";
        ReadOnlySpan<byte> options = default;
        byte[]? cookie = null;
        TcStatistics? stats = null;
        foreach (var a in new NetlinkAttributes(nest))
        {
            switch (a.Type)
            {
                case Tca.TCA_ACT_KIND: kind = a.String; break;
                case Tca.TCA_ACT_OPTIONS: options = a.Value; break;
                case Tca.TCA_ACT_COOKIE: cookie = a.Value.ToArray(); break;
                case Tca.TCA_ACT_STATS: stats = TcLayouts.ReadStatistics(a.Value); break;
            }
        }
        TcAction action = kind switch
        {
            "mirred" => ParseMirred(options),
            "pedit" => ParsePedit(options),
            _ => ParseUnknown(kind, options),
        };
        return action with { Cookie = cookie, Statistics = stats };
    }

    private static TcAction ParseMirred(ReadOnlySpan<byte> options)
    {
        (TcLayouts.TcGen Gen, int EAction, int IfIndex)? parms = null;
        (TimeSpan Installed, TimeSpan LastUsed)? times = null;
        foreach (var a in new NetlinkAttributes(options))
        {
            if (a.Type == Tca.TCA_MIRRED_PARMS) parms = TcLayouts.ReadMirred(a.Value);
            else if (a.Type == Tca.TCA_MIRRED_TM) times = TcLayouts.ReadTimes(a.Value);
        }
        if (parms is not { } p) throw new InvalidOperationException("A mirred action without TCA_MIRRED_PARMS.");
        var (direction, mode) = MirredAction.FromEAction(p.EAction)
            ?? throw new InvalidOperationException($"A mirred action with an unknown eaction {p.EAction}.");
        return new MirredAction
        {
            Direction = direction, Mode = mode, TargetIndex = p.IfIndex, Control = p.Gen.Action,
            Index = p.Gen.Index, RefCount = p.Gen.RefCount, BindCount = p.Gen.BindCount,
            Installed = times?.Installed, LastUsed = times?.LastUsed,
        };
    }

    private static TcAction ParsePedit(ReadOnlySpan<byte> options)
    {
        (TcLayouts.TcGen Gen, byte Flags, List<PeditPackedKey> Keys)? parms = null;
        (TimeSpan Installed, TimeSpan LastUsed)? times = null;
        var extended = new List<(PeditHeaderType Type, PeditCommand Command)>();
        foreach (var a in new NetlinkAttributes(options))
        {
            switch (a.Type)
            {
                // legacy requests and dumps: PARMS; `pedit ex` (and dumps of it): PARMS_EX + KEYS_EX
                case Tca.TCA_PEDIT_PARMS:
                case Tca.TCA_PEDIT_PARMS_EX:
                    parms = TcLayouts.ReadPedit(a.Value);
                    break;
                case Tca.TCA_PEDIT_TM:
                    times = TcLayouts.ReadTimes(a.Value);
                    break;
                case Tca.TCA_PEDIT_KEYS_EX:
                    foreach (var keyEx in a.Nested)
                    {
                        if (keyEx.Type != Tca.TCA_PEDIT_KEY_EX) continue;
                        ushort type = 0, command = 0;
                        foreach (var f in keyEx.Nested)
                        {
                            if (f.Type == Tca.TCA_PEDIT_KEY_EX_HTYPE) type = f.U16;
                            else if (f.Type == Tca.TCA_PEDIT_KEY_EX_CMD) command = f.U16;
                        }
                        extended.Add(((PeditHeaderType)type, (PeditCommand)command));
                    }
                    break;
            }
        }
        if (parms is not { } p) throw new InvalidOperationException("A pedit action without TCA_PEDIT_PARMS.");
        var keys = p.Keys;
        for (int i = 0; i < keys.Count && i < extended.Count; i++)
            keys[i] = keys[i] with { HeaderType = extended[i].Type, Command = extended[i].Command };
        return new PeditAction
        {
            Keys = keys, Flags = p.Flags, Control = p.Gen.Action,
            Index = p.Gen.Index, RefCount = p.Gen.RefCount, BindCount = p.Gen.BindCount,
            Installed = times?.Installed, LastUsed = times?.LastUsed,
        };
    }

    private static TcAction ParseUnknown(string kind, ReadOnlySpan<byte> options)
    {
        // Nearly every action's PARMS attribute (type 2) starts with tc_gen; use it for the control word and index.
        foreach (var a in new NetlinkAttributes(options))
        {
            if (a.Type == 2 && a.Value.Length >= Tca.TcGenSize)
            {
                var gen = TcLayouts.ReadGen(a.Value);
                return new UnknownAction(kind, options.ToArray(), gen.Action) { Index = gen.Index, RefCount = gen.RefCount, BindCount = gen.BindCount };
            }
        }
        return new UnknownAction(kind, options.ToArray(), TcActionControl.Pipe);
    }
}
