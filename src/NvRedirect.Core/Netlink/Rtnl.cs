namespace NvRedirect.Core.Netlink;

/// <summary>rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h).</summary>
public static class Rtnl
{
    // message types
    public const ushort NLMSG_NOOP = 1, NLMSG_ERROR = 2, NLMSG_DONE = 3;
    public const ushort RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_GETLINK = 18;
    public const ushort RTM_NEWADDR = 20, RTM_DELADDR = 21, RTM_GETADDR = 22;
    public const ushort RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;
    public const ushort RTM_NEWNEIGH = 28, RTM_DELNEIGH = 29, RTM_GETNEIGH = 30;
    public const ushort RTM_NEWQDISC = 36, RTM_DELQDISC = 37, RTM_GETQDISC = 38;
    public const ushort RTM_NEWTFILTER = 44, RTM_DELTFILTER = 45, RTM_GETTFILTER = 46;

    // header flags
    public const ushort NLM_F_REQUEST = 0x1, NLM_F_MULTI = 0x2, NLM_F_ACK = 0x4, NLM_F_DUMP_INTR = 0x10;
    public const ushort NLM_F_REPLACE = 0x100, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;
    public const ushort NLM_F_DUMP = 0x300;
    public const ushort NLM_F_CAPPED = 0x100, NLM_F_ACK_TLVS = 0x200;
    /// <summary>Flags iproute2 uses for every "add": REQUEST|ACK|EXCL|CREATE (0x0605).</summary>
    public const ushort CreateFlags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;
    /// <summary>Flags for modify and delete: REQUEST|ACK (0x0005).</summary>
    public const ushort ChangeFlags = NLM_F_REQUEST | NLM_F_ACK;
    /// <summary>Flags for dumps: REQUEST|DUMP (0x0301).</summary>
    public const ushort DumpFlags = NLM_F_REQUEST | NLM_F_DUMP;

    public const ushort NLMSGERR_ATTR_MSG = 1, NLMSGERR_ATTR_OFFS = 2;
    public const ushort NLA_F_NESTED = 0x8000, NLA_F_NET_BYTEORDER = 0x4000, NLA_TYPE_MASK = 0x3fff;

    // IFLA_*
    public const ushort IFLA_ADDRESS = 1, IFLA_BROADCAST = 2, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_LINK = 5,
        IFLA_QDISC = 6, IFLA_MASTER = 10, IFLA_TXQLEN = 13, IFLA_OPERSTATE = 16, IFLA_LINKINFO = 18,
        IFLA_IFALIAS = 20, IFLA_NET_NS_PID = 19, IFLA_NET_NS_FD = 28, IFLA_EXT_MASK = 29, IFLA_LINK_NETNSID = 37, IFLA_NEW_IFINDEX = 49;
    public const ushort IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2;
    public const ushort VETH_INFO_PEER = 1;
    public const uint RTEXT_FILTER_VF = 1, RTEXT_FILTER_SKIP_STATS = 8;

    // IFA_*
    public const ushort IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_LABEL = 3, IFA_BROADCAST = 4, IFA_CACHEINFO = 6, IFA_FLAGS = 8;
    /// <summary>ifa_flags bits the kernel sets itself (tentative, dad failed, deprecated, permanent) rather than takes from a request.</summary>
    public const uint IFA_F_TENTATIVE = 0x40, IFA_F_DADFAILED = 0x08, IFA_F_DEPRECATED = 0x20, IFA_F_PERMANENT = 0x80;

    // RTA_* (rtmsg attributes)
    public const ushort RTA_DST = 1, RTA_SRC = 2, RTA_IIF = 3, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PRIORITY = 6,
        RTA_PREFSRC = 7, RTA_METRICS = 8, RTA_MULTIPATH = 9, RTA_CACHEINFO = 12, RTA_TABLE = 15, RTA_PREF = 20, RTA_EXPIRES = 23;
    /// <summary>rtm_protocol of routes the kernel made itself (connected prefixes, local addresses, link-local).</summary>
    public const byte RTPROT_KERNEL = 2;
    /// <summary>rtm_flags a request may carry (RTNH_F_ONLINK); the rest (LINKDOWN, DEAD, CLONED...) are the kernel's to report.</summary>
    public const uint RTNH_F_ONLINK = 0x4;

    // NDA_* (ndmsg attributes) and neighbour states
    public const ushort NDA_DST = 1, NDA_LLADDR = 2;
    public const ushort NUD_PERMANENT = 0x80, NUD_NOARP = 0x40;

    // interface flags
    public const uint IFF_UP = 0x1, IFF_BROADCAST = 0x2, IFF_LOOPBACK = 0x8, IFF_RUNNING = 0x40,
        IFF_NOARP = 0x80, IFF_PROMISC = 0x100, IFF_MULTICAST = 0x1000, IFF_LOWER_UP = 0x10000;

    public const byte AF_UNSPEC = 0, AF_INET = 2, AF_INET6 = 10, AF_PACKET = 17;

    /// <summary>Largest interface name, NUL excluded (IFNAMSIZ - 1).</summary>
    public const int MaxInterfaceNameBytes = 15;
}
