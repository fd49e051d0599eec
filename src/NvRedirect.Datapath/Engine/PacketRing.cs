using System;
using System.Buffers.Binary;
using System.Threading;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Packets;
using NvRedirect.Core.Netlink;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Datapath.Engine;

/// <summary>The kernel's TPACKET_V2 ABI (linux/if_packet.h), x86-64 layout.</summary>
internal static class TPacket
{
    public const int PacketRxRing = 5, PacketStatistics = 6, PacketCopyThresh = 7, PacketVersion = 10, PacketTxRing = 13,
        PacketLoss = 14, PacketIgnoreOutgoing = 23;
    public const int TPacketV2 = 1;

    // tp_status, RX side
    public const uint StatusKernel = 0, StatusUser = 1, StatusCopy = 2, StatusLosing = 4, StatusCsumNotReady = 8,
        StatusVlanValid = 0x10, StatusVlanTpidValid = 0x40;
    // tp_status, TX side
    public const uint StatusAvailable = 0, StatusSendRequest = 1, StatusSending = 2, StatusWrongFormat = 4;

    // struct tpacket2_hdr { u32 tp_status, tp_len, tp_snaplen; u16 tp_mac, tp_net; u32 tp_sec, tp_nsec;
    //                       u16 tp_vlan_tci, tp_vlan_tpid; u8 tp_padding[4]; }  = 32 bytes, then sockaddr_ll (20)
    public const int OffStatus = 0, OffLen = 4, OffSnapLen = 8, OffMac = 12, OffVlanTci = 24, OffVlanTpid = 26;
    public const int HeaderLength = 32;
    /// <summary>sll_pkttype of the sockaddr_ll that follows the header.</summary>
    public const int OffPacketType = HeaderLength + 10;
    /// <summary>TX data offset: TPACKET2_HDRLEN (52) - sizeof(sockaddr_ll) (20), without PACKET_TX_HAS_OFF.</summary>
    public const int TxDataOffset = 32;
    /// <summary>Where RX data can start at the earliest: TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - ETH_HLEN.</summary>
    public const int RxMacOffset = 80 - 14;
}

/// <summary>Ring geometry (slots are powers of two, blocks a page multiple).</summary>
internal readonly record struct RingGeometry(int FrameSize, int BlockSize, int RxFrames, int TxFrames)
{
    /// <summary>Slots big enough for a full frame of <paramref name="mtu"/> (+VLAN tag) after the kernel's header.</summary>
    public static RingGeometry ForMtu(int mtu, int rxFrames = 4096, int txFrames = 2048)
    {
        int frame = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(2048, mtu + 18 + TPacket.RxMacOffset));
        int block = Math.Max(frame, Math.Max(Environment.SystemPageSize, 16384));
        return new RingGeometry(frame, block, RoundToBlock(rxFrames, frame, block), RoundToBlock(txFrames, frame, block));
    }

    private static int RoundToBlock(int frames, int frame, int block)
    {
        int perBlock = block / frame;
        return Math.Max(perBlock, (frames + perBlock - 1) / perBlock * perBlock);
    }
}

/// <summary>
/// An AF_PACKET socket bound to one interface with mmap'd TPACKET_V2 RX and TX rings (per-frame slots: V3's block
/// timeout adds latency inline), plus a ring-less side socket for frames larger than a slot. Both are created on a
/// thread switched into the interface's namespace and keep that namespace. Slot access is for one thread at a time.
/// </summary>
internal sealed unsafe class PacketRing : IDisposable
{
    private readonly SafeFd _fd, _sideFd;
    private byte* _map;
    private readonly nuint _mapLength;
    private readonly byte* _rx, _tx;
    private readonly int _frameSize, _rxMask, _txMask;
    private int _rxIndex, _txIndex;

    /// <summary>Interface name, index and MTU.</summary>
    public string Interface { get; }
    public int InterfaceIndex { get; }
    public int Mtu { get; }
    /// <summary>The geometry in use.</summary>
    public RingGeometry Geometry { get; }
    /// <summary>The ring socket (poll it for POLLIN).</summary>
    public int Fd => _fd.Fd;
    /// <summary>Largest frame a TX slot takes.</summary>
    public int TxSlotCapacity => _frameSize - TPacket.TxDataOffset;
    /// <summary>TX slots filled since the last <see cref="Kick"/>.</summary>
    public int TxPending { get; private set; }

    private PacketRing(SafeFd fd, SafeFd sideFd, byte* map, nuint mapLength, RingGeometry g, string iface, int ifindex, int mtu)
    {
        _fd = fd; _sideFd = sideFd; _map = map; _mapLength = mapLength; Geometry = g;
        _frameSize = g.FrameSize;
        _rx = map;
        _tx = map + (long)g.FrameSize * g.RxFrames;
        _rxMask = g.RxFrames - 1;
        _txMask = g.TxFrames - 1;
        Interface = iface; InterfaceIndex = ifindex; Mtu = mtu;
    }

    /// <summary>Opens the rings on <paramref name="iface"/> in namespace <paramref name="ns"/> ("" = the process's own).</summary>
    public static PacketRing Open(string ns, string iface, bool jumbo)
    {
        LinkRecord link;
        using (var handle = RouteHandle.Open(ns)) link = handle.GetLink(iface);
        var g = RingGeometry.ForMtu(Math.Max(link.Mtu, jumbo ? 9216 : 0));
        if (!System.Numerics.BitOperations.IsPow2(g.RxFrames) || !System.Numerics.BitOperations.IsPow2(g.TxFrames))
            throw new InvalidOperationException("ring frame counts must be powers of two");
        var fd = OpenRingSocket(ns, iface, link.Index, g);
        SafeFd side;
        try { side = OpenSideSocket(ns, iface, link.Index); }
        catch
        {
            fd.Dispose();
            throw;
        }
        try
        {
            nuint length = (nuint)((long)g.FrameSize * (g.RxFrames + g.TxFrames));
            void* map = mmap(null, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.Fd, 0);
            if (map == (void*)-1) throw SyscallException.FromLastError($"map the packet rings of {iface}");
            var ring = new PacketRing(fd, side, (byte*)map, length, g, iface, link.Index, link.Mtu);
            ring.Bind(link.Index); // last: frames start arriving only once the rings exist
            return ring;
        }
        catch
        {
            fd.Dispose();
            side.Dispose();
            throw;
        }
    }

    // protocol 0: receive nothing until bound to the one interface (ETH_P_ALL here would see every interface); bound
    // once the rings exist
    private static SafeFd OpenRingSocket(string ns, string iface, int ifindex, RingGeometry g) => PacketSocket.Open(ns, iface, ifindex, new PacketSocketOptions
    {
        Protocol = 0,
        BindNow = false,
        ReceiveBuffer = 8 << 20, // room for full copies of frames over a slot
        Configure = fd =>
        {
            PacketSocket.SetOption(fd, PacketSocket.SolPacket, TPacket.PacketVersion, TPacket.TPacketV2, "select TPACKET_V2");
            PacketSocket.SetOption(fd, PacketSocket.SolPacket, TPacket.PacketLoss, 1, "set PACKET_LOSS");           // skip bad TX frames instead of stalling
            PacketSocket.SetOption(fd, PacketSocket.SolPacket, TPacket.PacketCopyThresh, 1, "set PACKET_COPY_THRESH"); // queue a full copy of frames over a slot
            // frames this host transmits on the port (ARP, router solicitations, ...) are not ours to forward;
            // our own transmissions are never looped back to the sending socket anyway
            if (!PacketSocket.TrySetOption(fd, PacketSocket.SolPacket, TPacket.PacketIgnoreOutgoing, 1)) { /* pre-4.20 kernel: sll_pkttype is checked per frame too */ }
            SetRing(fd, TPacket.PacketRxRing, g.BlockSize, g.FrameSize, g.RxFrames, iface, "RX");
            SetRing(fd, TPacket.PacketTxRing, g.BlockSize, g.FrameSize, g.TxFrames, iface, "TX");
        },
    });

    // protocol 0: send-only; a virtio_net_hdr before each frame lets a frame above the MTU go out as GSO with a partial checksum
    private static SafeFd OpenSideSocket(string ns, string iface, int ifindex)
        => PacketSocket.Open(ns, iface, ifindex, new PacketSocketOptions { Protocol = 0, VnetHeader = true });

    private void Bind(int ifindex) => PacketSocket.Bind(_fd, ifindex, PacketSocket.EthPAll, Interface);

    private static void SetRing(SafeFd fd, int option, int blockSize, int frameSize, int frames, string iface, string which)
    {
        uint* req = stackalloc uint[4]; // struct tpacket_req
        req[0] = (uint)blockSize;
        req[1] = (uint)((long)frames * frameSize / blockSize);
        req[2] = (uint)frameSize;
        req[3] = (uint)frames;
        if (setsockopt(fd.Fd, PacketSocket.SolPacket, option, req, 16) < 0)
            throw SyscallException.FromLastError($"set up the {which} ring of {iface} ({frames} slots of {frameSize} bytes)");
    }

    // --- RX ---

    /// <summary>The next filled RX slot's header, or null when the kernel has handed over nothing new.</summary>
    public byte* PeekRx()
    {
        byte* slot = _rx + (long)_rxIndex * _frameSize;
        return (Volatile.Read(ref *(uint*)slot) & TPacket.StatusUser) != 0 ? slot : null;
    }

    /// <summary>Gives the current RX slot back to the kernel and moves on.</summary>
    public void ReleaseRx(byte* slot)
    {
        Volatile.Write(ref *(uint*)slot, TPacket.StatusKernel);
        _rxIndex = (_rxIndex + 1) & _rxMask;
    }

    /// <summary>Reads the full copy of an over-sized frame the kernel queued beside the ring (TP_STATUS_COPY). Returns the true length, or -1.</summary>
    public int ReceiveFull(Span<byte> buffer)
    {
        fixed (byte* b = buffer)
        {
            long n = recv(_fd.Fd, b, buffer.Length, MSG_TRUNC | MSG_DONTWAIT);
            return n < 0 ? -1 : (int)n;
        }
    }

    // --- TX ---

    /// <summary>The data area of the next free TX slot, or null when the ring is full.</summary>
    public byte* ReserveTx(out bool hadError)
    {
        byte* slot = _tx + (long)_txIndex * _frameSize;
        uint status = Volatile.Read(ref *(uint*)slot);
        hadError = status == TPacket.StatusWrongFormat;
        if ((status & (TPacket.StatusSendRequest | TPacket.StatusSending)) != 0) return null;
        return slot + TPacket.TxDataOffset;
    }

    /// <summary>Hands the reserved slot (with <paramref name="length"/> bytes written) to the kernel.</summary>
    public void CommitTx(int length)
    {
        byte* slot = _tx + (long)_txIndex * _frameSize;
        *(uint*)(slot + TPacket.OffLen) = (uint)length;
        Volatile.Write(ref *(uint*)slot, TPacket.StatusSendRequest);
        _txIndex = (_txIndex + 1) & _txMask;
        TxPending++;
    }

    /// <summary>Asks the kernel to transmit the committed slots (send(fd, NULL, 0) without waiting). Returns errno or 0.</summary>
    public int Kick()
    {
        TxPending = 0;
        long r = send(_fd.Fd, null, 0, MSG_DONTWAIT);
        if (r >= 0) return 0;
        int errno = Native.LastErrno;
        return errno == EAGAIN || errno == ENOBUFS ? 0 : errno;
    }

    /// <summary>Sends <paramref name="packet"/> (a virtio_net_hdr followed by the frame) on the side socket. Returns errno or 0.</summary>
    public int SendLarge(ReadOnlySpan<byte> packet)
    {
        fixed (byte* p = packet)
            return send(_sideFd.Fd, p, packet.Length, MSG_DONTWAIT) < 0 ? Native.LastErrno : 0;
    }

    /// <summary>Kernel ring statistics since the last call (PACKET_STATISTICS resets them): frames seen, frames dropped for want of a slot.</summary>
    public (uint Packets, uint Drops) ReadStatistics()
    {
        uint* stats = stackalloc uint[2];
        uint len = 8;
        if (getsockopt(_fd.Fd, PacketSocket.SolPacket, TPacket.PacketStatistics, stats, (socklen_t*)&len) < 0) return (0, 0);
        return (stats[0], stats[1]);
    }

    /// <summary>Reads and clears a pending socket error (ENETDOWN when the interface went down).</summary>
    public int TakeSocketError()
    {
        int err = 0;
        uint len = 4;
        getsockopt(_fd.Fd, SOL_SOCKET, SO_ERROR, &err, (socklen_t*)&len);
        return err;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_map != null)
        {
            munmap(_map, (size_t)_mapLength);
            _map = null;
        }
        _fd.Dispose();
        _sideFd.Dispose();
    }
}
