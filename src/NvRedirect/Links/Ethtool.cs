using System;
using System.Text;
using NvRedirect.Interop;
using NvRedirect.Namespaces;
using NvRedirect.Netlink;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Links;

/// <summary>Segmentation and checksum offloads of a link, as the legacy ethtool commands report them.</summary>
public sealed record LinkOffloads(bool TxChecksum, bool Tso, bool Gso, bool Gro);

/// <summary>
/// Offload switches through the SIOCETHTOOL ioctl (legacy ETHTOOL_[GS]{TXCSUM,TSO,GSO,GRO}), as `ethtool -K DEV tx off
/// tso off gso off gro off` does. An inline datapath needs them off on intercepted ports: with transmit checksum
/// offload a veth hands over frames with a partial checksum, and TSO/GSO/GRO build frames larger than the MTU
/// (kernel-facts.md). The ioctl acts on the calling thread's namespace, so it runs on a namespace thread.
/// </summary>
public static unsafe class Ethtool
{
    private const int SiocEthtool = 0x8946;
    private const uint GTxCsum = 0x16, STxCsum = 0x17, GTso = 0x1e, STso = 0x1f, GGso = 0x23, SGso = 0x24, GGro = 0x2b, SGro = 0x2c;

    /// <summary>Reads the four offload flags of <paramref name="link"/> in namespace <paramref name="ns"/> ("" = root).</summary>
    public static LinkOffloads Get(string ns, string link)
        => InNamespace(ns, () => new LinkOffloads(Query(link, GTxCsum), Query(link, GTso), Query(link, GGso), Query(link, GGro)));

    /// <summary>Switches offloads; null leaves a flag as it is.</summary>
    public static void Set(string ns, string link, bool? txChecksum = null, bool? tso = null, bool? gso = null, bool? gro = null)
        => InNamespace(ns, () =>
        {
            // TSO depends on TX checksumming: switch TSO first when disabling, last when enabling
            if (tso == false) Command(link, STso, 0);
            if (txChecksum is bool tx) Command(link, STxCsum, tx ? 1u : 0u);
            if (tso == true) Command(link, STso, 1);
            if (gso is bool g) Command(link, SGso, g ? 1u : 0u);
            if (gro is bool r) Command(link, SGro, r ? 1u : 0u);
            return 0;
        });

    private static T InNamespace<T>(string ns, Func<T> work)
    {
        if (string.IsNullOrEmpty(ns)) return work();
        if (!NetworkNamespace.Exists(ns)) throw new NamespaceNotFoundException(ns);
        return NamespaceThread.RunIn(NetworkNamespace.PathOf(ns), work);
    }

    private static bool Query(string link, uint cmd) => Command(link, cmd, 0) != 0;

    private static uint Command(string link, uint cmd, uint data)
    {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw SyscallException.FromLastError("open a socket for ethtool");
        using var handle = new SafeFd(fd);
        var value = stackalloc uint[2];
        value[0] = cmd;
        value[1] = data;
        var ifr = stackalloc byte[40]; // struct ifreq: char ifr_name[16]; union { void* ifr_data; ... }
        new Span<byte>(ifr, 40).Clear();
        var name = Encoding.UTF8.GetBytes(link);
        if (name.Length > 15) throw new ArgumentException($"Invalid interface name '{link}'.");
        name.CopyTo(new Span<byte>(ifr, 16));
        *(ulong*)(ifr + 16) = (ulong)value;
        if (ioctl(fd, SiocEthtool, ifr) < 0)
        {
            int errno = Native.LastErrno;
            throw new NetlinkException(errno, $"ethtool command 0x{cmd:x} on link '{link}'");
        }
        return value[1];
    }
}
