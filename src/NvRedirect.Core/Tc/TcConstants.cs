namespace NvRedirect.Core.Tc;

/// <summary>
/// Traffic-control constants (linux/rtnetlink.h, linux/pkt_sched.h, linux/pkt_cls.h, linux/tc_act/*.h) of kernel 6.18's UAPI headers. Attribute numbers are per nest: a TCA_U32_* value only means something inside TCA_OPTIONS
/// of a u32 filter.
/// </summary>
public static class Tca
{
    // top level of RTM_*QDISC / RTM_*TFILTER
    public const ushort TCA_KIND = 1, TCA_OPTIONS = 2, TCA_STATS = 3, TCA_XSTATS = 4, TCA_STATS2 = 7, TCA_CHAIN = 11;

    // handles (MAJ:MIN = MAJ << 16 | MIN)
    /// <summary>"ffff:" - the ingress qdisc's handle, and the parent tc uses for `parent ffff:` filters.</summary>
    public const uint IngressHandle = 0xffff0000;
    /// <summary>TC_H_INGRESS (= TC_H_CLSACT): the parent of an ingress or clsact qdisc.</summary>
    public const uint TC_H_INGRESS = 0xfffffff1;
    /// <summary>
    /// TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS) = ffff:fff2: the parent tc uses for `tc filter ... ingress`. A clsact
    /// qdisc needs it; the ingress qdisc accepts it as well as ffff: (verified, docs/kernel-interfaces.md, "Handles and tcmsg").
    /// </summary>
    public const uint ClsactIngressParent = 0xfffffff2;
    /// <summary>TC_H_ROOT: the parent of a root (egress) qdisc.</summary>
    public const uint TC_H_ROOT = 0xffffffff;

    // u32 classifier options
    public const ushort TCA_U32_CLASSID = 1, TCA_U32_HASH = 2, TCA_U32_LINK = 3, TCA_U32_DIVISOR = 4, TCA_U32_SEL = 5,
        TCA_U32_POLICE = 6, TCA_U32_ACT = 7, TCA_U32_INDEV = 8, TCA_U32_PCNT = 9, TCA_U32_MARK = 10, TCA_U32_FLAGS = 11;
    /// <summary>tc_u32_sel.flags bit: the node executes its actions/classid instead of only linking on.</summary>
    public const byte TC_U32_TERMINAL = 1;
    /// <summary>Largest number of keys tc packs into one selector.</summary>
    public const int U32MaxKeys = 128;

    // bpf classifier options
    public const ushort TCA_BPF_ACT = 1, TCA_BPF_CLASSID = 3, TCA_BPF_FD = 6, TCA_BPF_NAME = 7, TCA_BPF_FLAGS = 8,
        TCA_BPF_FLAGS_GEN = 9, TCA_BPF_TAG = 10, TCA_BPF_ID = 11;
    public const uint TCA_BPF_FLAG_ACT_DIRECT = 1;

    // TCA_CLS_FLAGS_* (TCA_U32_FLAGS, TCA_BPF_FLAGS_GEN)
    public const uint TCA_CLS_FLAGS_SKIP_HW = 1, TCA_CLS_FLAGS_SKIP_SW = 2, TCA_CLS_FLAGS_IN_HW = 4, TCA_CLS_FLAGS_NOT_IN_HW = 8;

    // one action inside an action list (the list's nests are numbered 1..n = execution order)
    public const ushort TCA_ACT_KIND = 1, TCA_ACT_OPTIONS = 2, TCA_ACT_INDEX = 3, TCA_ACT_STATS = 4, TCA_ACT_PAD = 5,
        TCA_ACT_COOKIE = 6, TCA_ACT_FLAGS = 7, TCA_ACT_HW_STATS = 8, TCA_ACT_USED_HW_STATS = 9, TCA_ACT_IN_HW_COUNT = 10;
    /// <summary>TCA_ACT_MAX_PRIO: most actions in one list.</summary>
    public const int MaxActions = 32;
    /// <summary>TC_COOKIE_MAX_SIZE: most bytes in an action cookie.</summary>
    public const int MaxCookieBytes = 16;

    // gnet stats inside TCA_ACT_STATS / TCA_STATS2
    public const ushort TCA_STATS_BASIC = 1, TCA_STATS_RATE_EST = 2, TCA_STATS_QUEUE = 3, TCA_STATS_APP = 4,
        TCA_STATS_RATE_EST64 = 5, TCA_STATS_PAD = 6, TCA_STATS_BASIC_HW = 7, TCA_STATS_PKT64 = 8;

    // act_mirred
    public const ushort TCA_MIRRED_TM = 1, TCA_MIRRED_PARMS = 2;
    public const int TCA_EGRESS_REDIR = 1, TCA_EGRESS_MIRROR = 2, TCA_INGRESS_REDIR = 3, TCA_INGRESS_MIRROR = 4;

    // act_pedit
    public const ushort TCA_PEDIT_TM = 1, TCA_PEDIT_PARMS = 2, TCA_PEDIT_PARMS_EX = 4, TCA_PEDIT_KEYS_EX = 5, TCA_PEDIT_KEY_EX = 6;
    public const ushort TCA_PEDIT_KEY_EX_HTYPE = 1, TCA_PEDIT_KEY_EX_CMD = 2;

    // struct sizes (x86_64)
    public const int TcMsgSize = 20, TcGenSize = 20, U32SelSize = 16, U32KeySize = 16, PeditSelSize = 24, PeditKeySize = 24,
        MirredSize = 28, TcfTSize = 32;

    /// <summary>Kernel clock ticks per second in tcf_t timestamps (USER_HZ; jiffies_to_clock_t).</summary>
    public const int UserHz = 100;
}
