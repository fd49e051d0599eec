using System;
using System.Linq;
using System.Text;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Core.Links;

/// <summary>Segmentation and checksum offloads of a link, as the legacy ethtool commands report them.</summary>
public sealed record LinkOffloads(bool TxChecksum, bool Tso, bool Gso, bool Gro);

/// <summary>
/// Offload switches through the SIOCETHTOOL ioctl (legacy ETHTOOL_[GS]{TXCSUM,GSO,GRO}; TSO as ethtool's feature group), as `ethtool -K DEV tx off
/// tso off gso off gro off` does. An inline datapath needs them off on intercepted ports: with transmit checksum
/// offload a veth hands over frames with a partial checksum, and TSO/GSO/GRO build frames larger than the MTU
/// (docs/kernel-interfaces.md, "Offloads"). The ioctl acts on the calling thread's namespace, so it runs on a namespace thread.
/// </summary>
public static unsafe class Ethtool
{
    private const int SiocEthtool = 0x8946;
    private const uint GTxCsum = 0x16, STxCsum = 0x17, GGso = 0x23, SGso = 0x24, GGro = 0x2b, SGro = 0x2c;
    private const uint GStrings = 0x1b, GSsetInfo = 0x37, GFeatures = 0x3a, SFeatures = 0x3b;
    private const int FeatureStringSet = 4;    // ETH_SS_FEATURES: one name per netdev feature bit
    private const int StringLength = 32;       // ETH_GSTRING_LEN

    /// <summary>Reads the four offload flags of <paramref name="link"/> in namespace <paramref name="ns"/> ("" = root).</summary>
    public static LinkOffloads Get(string ns, string link)
        => InNamespace(ns, () => new LinkOffloads(Query(link, GTxCsum), (ReadTso(link).Active) != 0, Query(link, GGso), Query(link, GGro)));

    /// <summary>Switches offloads; null leaves a flag as it is.</summary>
    public static void Set(string ns, string link, bool? txChecksum = null, bool? tso = null, bool? gso = null, bool? gro = null)
        => InNamespace(ns, () =>
        {
            // TSO depends on TX checksumming: switch TSO first when disabling, last when enabling
            if (tso == false) SetTso(link, false);
            if (txChecksum is bool tx) Command(link, STxCsum, tx ? 1u : 0u);
            if (tso == true) SetTso(link, true);
            if (gso is bool g) Command(link, SGso, g ? 1u : 0u);
            if (gro is bool r) Command(link, SGro, r ? 1u : 0u);
            return 0;
        });

    /// <summary>
    /// Every feature the user can switch on <paramref name="link"/>, as the device was asked to have it (ETHTOOL_GFEATURES
    /// "requested", one bit per ETH_SS_FEATURES name): what `ethtool -K` changes and <see cref="SetFeatures"/> puts back.
    /// </summary>
    public static uint[] GetFeatures(string ns, string link)
        => InNamespace(ns, () =>
        {
            var words = (FeatureNames(link).Length + 31) / 32;
            var buffer = ReadFeatureWords(link, words);
            return Enumerable.Range(0, words).Select(w => buffer[2 + 4 * w + 1]).ToArray();
        });

    /// <summary>Asks for exactly <paramref name="requested"/> (from <see cref="GetFeatures"/>, of this or a like device) on every changeable feature.</summary>
    public static void SetFeatures(string ns, string link, uint[] requested)
        => InNamespace(ns, () =>
        {
            var current = ReadFeatureWords(link, requested.Length);
            // struct ethtool_sfeatures { u32 cmd, size; struct { u32 valid, requested; } features[size]; }
            var buffer = new uint[2 + 2 * requested.Length];
            buffer[0] = SFeatures;
            buffer[1] = (uint)requested.Length;
            for (int w = 0; w < requested.Length; w++)
            {
                uint changeable = current[2 + 4 * w] & ~current[2 + 4 * w + 3];
                buffer[2 + 2 * w] = changeable;
                buffer[2 + 2 * w + 1] = requested[w] & changeable;
            }
            fixed (uint* p = buffer) Ioctl(link, p, SFeatures);
            return 0;
        });

    private static uint[] ReadFeatureWords(string link, int words)
    {
        var buffer = new uint[2 + 4 * words];
        buffer[0] = GFeatures;
        buffer[1] = (uint)words;
        fixed (uint* p = buffer) Ioctl(link, p, GFeatures);
        return buffer;
    }

    private static T InNamespace<T>(string ns, Func<T> work)
    {
        if (string.IsNullOrEmpty(ns)) return work();
        if (NetworkNamespace.IsPath(ns)) return NetworkNamespace.NsfsInode(ns) != null ? NamespaceThread.RunIn(ns, work) : throw new NamespacePathException(ns);
        if (!NetworkNamespace.Exists(ns)) throw new NamespaceNotFoundException(ns);
        return NamespaceThread.RunIn(NetworkNamespace.PathOf(ns), work);
    }

    private static bool Query(string link, uint cmd) => Command(link, cmd, 0) != 0;

    private static uint Command(string link, uint cmd, uint data)
    {
        var value = stackalloc uint[2];
        value[0] = cmd;
        value[1] = data;
        Ioctl(link, value, cmd);
        return value[1];
    }

    /// <summary>SIOCETHTOOL on <paramref name="link"/> with <paramref name="data"/> (a struct starting with its ETHTOOL_* command).</summary>
    private static void Ioctl(string link, void* data, uint cmd)
    {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw SyscallException.FromLastError("open a socket for ethtool");
        using var handle = new SafeFd(fd);
        var ifr = stackalloc byte[40]; // struct ifreq: char ifr_name[16]; union { void* ifr_data; ... }
        new Span<byte>(ifr, 40).Clear();
        var name = Encoding.UTF8.GetBytes(link);
        if (name.Length > 15) throw new ArgumentException($"Invalid interface name '{link}'.");
        name.CopyTo(new Span<byte>(ifr, 16));
        *(ulong*)(ifr + 16) = (ulong)data;
        if (ioctl(fd, SiocEthtool, ifr) < 0)
        {
            int errno = Native.LastErrno;
            throw new NetlinkException(errno, $"ethtool command 0x{cmd:x} on link '{link}'");
        }
    }

    // ------------------------------------------------------------------ TSO, the feature group
    // The legacy ETHTOOL_STSO switches only the kernel's NETIF_F_ALL_TSO, which leaves newer TSO bits on (6.18's
    // tx-tcp-accecn-segmentation): `ethtool -k` then still says "tcp-segmentation-offload: on". ethtool's "tso" is the
    // group of every feature named tx-tcp*-segmentation, switched with ETHTOOL_SFEATURES; so is ours.

    private static bool IsTsoFeature(string name)
        => name.StartsWith("tx-tcp", StringComparison.Ordinal) && name.EndsWith("-segmentation", StringComparison.Ordinal);

    /// <summary>The TSO group's feature bits (one bit per ETH_SS_FEATURES string), which of them the device can change, and which are on.</summary>
    private static (uint[] Mask, uint[] Changeable, uint Active) ReadTso(string link)
    {
        var names = FeatureNames(link);
        int words = (names.Length + 31) / 32;
        var mask = new uint[words];
        for (int bit = 0; bit < names.Length; bit++)
            if (IsTsoFeature(names[bit])) mask[bit / 32] |= 1u << (bit % 32);
        // struct ethtool_gfeatures { u32 cmd, size; struct { u32 available, requested, active, never_changed; } features[size]; }
        var buffer = new uint[2 + 4 * words];
        buffer[0] = GFeatures;
        buffer[1] = (uint)words;
        fixed (uint* p = buffer) Ioctl(link, p, GFeatures);
        var changeable = new uint[words];
        uint active = 0;
        for (int w = 0; w < words; w++)
        {
            uint available = buffer[2 + 4 * w], on = buffer[2 + 4 * w + 2], never = buffer[2 + 4 * w + 3];
            changeable[w] = mask[w] & available & ~never;
            active |= mask[w] & on;
        }
        return (mask, changeable, active);
    }

    private static void SetTso(string link, bool on)
    {
        var (_, changeable, _) = ReadTso(link);
        // struct ethtool_sfeatures { u32 cmd, size; struct { u32 valid, requested; } features[size]; } (size must be the kernel's word count)
        var buffer = new uint[2 + 2 * changeable.Length];
        buffer[0] = SFeatures;
        buffer[1] = (uint)changeable.Length;
        for (int w = 0; w < changeable.Length; w++)
        {
            buffer[2 + 2 * w] = changeable[w];
            buffer[2 + 2 * w + 1] = on ? changeable[w] : 0;
        }
        fixed (uint* p = buffer) Ioctl(link, p, SFeatures);
    }

    /// <summary>The kernel's feature names, indexed by feature bit (ETHTOOL_GSSET_INFO, then ETHTOOL_GSTRINGS).</summary>
    private static string[] FeatureNames(string link)
    {
        // struct ethtool_sset_info { u32 cmd, reserved; u64 sset_mask; u32 data[]; }
        var info = stackalloc byte[20];
        new Span<byte>(info, 20).Clear();
        *(uint*)info = GSsetInfo;
        *(ulong*)(info + 8) = 1UL << FeatureStringSet;
        Ioctl(link, info, GSsetInfo);
        if ((*(ulong*)(info + 8) & (1UL << FeatureStringSet)) == 0) return [];
        int count = (int)*(uint*)(info + 16);
        // struct ethtool_gstrings { u32 cmd, string_set, len; u8 data[len * ETH_GSTRING_LEN]; }
        var strings = new byte[12 + count * StringLength];
        fixed (byte* p = strings)
        {
            *(uint*)p = GStrings;
            *(uint*)(p + 4) = FeatureStringSet;
            *(uint*)(p + 8) = (uint)count;
            Ioctl(link, p, GStrings);
        }
        var names = new string[count];
        for (int i = 0; i < count; i++)
        {
            var raw = strings.AsSpan(12 + i * StringLength, StringLength);
            int end = raw.IndexOf((byte)0);
            names[i] = Encoding.ASCII.GetString(end < 0 ? raw : raw[..end]);
        }
        return names;
    }
}
