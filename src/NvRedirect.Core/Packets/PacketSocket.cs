using System;
using System.Buffers.Binary;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Core.Packets;

/// <summary>What an AF_PACKET socket is set up with before it is bound (see <see cref="PacketSocket.Open"/>).</summary>
public sealed class PacketSocketOptions
{
    /// <summary>
    /// The ethertype (host order) given to socket() and bind(): <see cref="PacketSocket.EthPAll"/> receives every frame
    /// of the interface; 0 receives nothing (a send-only socket, or one bound later with <see cref="PacketSocket.Bind"/>).
    /// </summary>
    public ushort Protocol { get; init; } = PacketSocket.EthPAll;
    /// <summary>Bind to the interface when opened (false: the caller binds later, e.g. once its rings exist).</summary>
    public bool BindNow { get; init; } = true;
    /// <summary>PACKET_VNET_HDR: a virtio_net_hdr precedes each frame sent and received (GSO, partial checksums).</summary>
    public bool VnetHeader { get; init; }
    /// <summary>PACKET_AUXDATA: each frame received comes with its tpacket_auxdata (a VLAN tag the kernel took off).</summary>
    public bool AuxData { get; init; }
    /// <summary>SO_RCVBUFFORCE in bytes (needs CAP_NET_ADMIN); 0 keeps the default.</summary>
    public int ReceiveBuffer { get; init; }
    /// <summary>More set-up before the socket is bound (rings, PACKET_LOSS, ...); runs inside the namespace.</summary>
    public Action<SafeFd>? Configure { get; init; }
}

/// <summary>
/// The one way an AF_PACKET socket is opened: created on a namespace thread (<see cref="NamespaceThread"/>) inside the
/// interface's namespace, which it keeps for good, set up with <see cref="PacketSocketOptions"/>, and bound to the
/// interface by index. Used by capture (<see cref="PacketCapture"/>), nvr-dp's rings and the tests' frame injector.
/// </summary>
public static unsafe class PacketSocket
{
    /// <summary>ETH_P_ALL: every protocol.</summary>
    public const ushort EthPAll = 0x0003;
    /// <summary>SOL_PACKET, the socket option level of packet sockets.</summary>
    public const int SolPacket = 263;
    /// <summary>PACKET_AUXDATA and PACKET_VNET_HDR (linux/if_packet.h).</summary>
    public const int PacketAuxData = 8, PacketVnetHdr = 15;
    /// <summary>sizeof(struct sockaddr_ll).</summary>
    public const int AddressSize = 20;
    /// <summary>Offset of sll_pkttype in sockaddr_ll; value PACKET_OUTGOING marks a frame this host sent.</summary>
    public const int PacketTypeOffset = 10;
    /// <summary>sll_pkttype of a frame this host sent.</summary>
    public const byte PacketOutgoing = 4;

    /// <summary>
    /// Opens an AF_PACKET socket in namespace <paramref name="ns"/> ("" or null: the caller's) for the interface
    /// <paramref name="iface"/> with index <paramref name="ifindex"/> (in that namespace), set up and bound as
    /// <paramref name="options"/> say (default: every frame, bound now). Nothing is left open when a step fails.
    /// </summary>
    public static SafeFd Open(string? ns, string iface, int ifindex, PacketSocketOptions? options = null)
    {
        options ??= new PacketSocketOptions();
        Func<SafeFd> open = () => Create(ns, iface, ifindex, options);
        return string.IsNullOrEmpty(ns) ? open() : NamespaceThread.RunIn(NetworkNamespace.PathOf(ns), open);
    }

    // in the namespace already
    private static SafeFd Create(string? ns, string iface, int ifindex, PacketSocketOptions o)
    {
        int raw = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(o.Protocol));
        if (raw < 0) throw SyscallException.FromLastError($"open an AF_PACKET socket for {iface} in {(string.IsNullOrEmpty(ns) ? "the root namespace" : ns)}");
        var fd = new SafeFd(raw);
        try
        {
            if (o.VnetHeader) SetOption(fd, SolPacket, PacketVnetHdr, 1, "enable PACKET_VNET_HDR");
            if (o.AuxData) SetOption(fd, SolPacket, PacketAuxData, 1, "enable PACKET_AUXDATA");
            if (o.ReceiveBuffer > 0) SetOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, o.ReceiveBuffer, $"size the receive queue of the packet socket on {iface}");
            o.Configure?.Invoke(fd);
            if (o.BindNow) Bind(fd, ifindex, o.Protocol, iface);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Binds <paramref name="fd"/> to the interface with index <paramref name="ifindex"/>, receiving <paramref name="protocol"/> (0: nothing).</summary>
    public static void Bind(SafeFd fd, int ifindex, ushort protocol, string iface)
    {
        byte* addr = stackalloc byte[AddressSize]; // sockaddr_ll
        new Span<byte>(addr, AddressSize).Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(new Span<byte>(addr, 2), (ushort)AF_PACKET);
        BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(addr + 2, 2), protocol);
        BinaryPrimitives.WriteInt32LittleEndian(new Span<byte>(addr + 4, 4), ifindex);
        if (bind(fd.Fd, (sockaddr*)addr, AddressSize) < 0) throw SyscallException.FromLastError($"bind a packet socket to {iface}");
    }

    /// <summary>Sets an int socket option; throws with <paramref name="what"/> when the kernel refuses it.</summary>
    public static void SetOption(SafeFd fd, int level, int option, int value, string what)
    {
        if (!TrySetOption(fd, level, option, value)) throw SyscallException.FromLastError(what);
    }

    /// <summary>Sets an int socket option; false when the kernel refuses it (errno is left for the caller).</summary>
    public static bool TrySetOption(SafeFd fd, int level, int option, int value) => setsockopt(fd.Fd, level, option, &value, 4) == 0;
}
