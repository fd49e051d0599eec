using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath.Engine;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Packets;
using Tmds.Linux;
using Xunit;
using static Tmds.Linux.LibC;

namespace NvRedirect.Tests;

/// <summary>Synthetic Ethernet frames with correct IPv4 and TCP/UDP/ICMP checksums.</summary>
internal static class TestFrames
{
    public const ulong ContainerMac = 0x1a27f3873a27, UnicastAlias = 0x4e65755600b4, BroadcastAlias = 0xffffff0000b4;
    public const ulong HostMac = 0x06829c025491;
    public const uint HostIp = 0x0a0a0a42, ContainerIp = 0x0a0a0a58; // 10.10.10.66, 10.10.10.88

    public static byte[] Tcp(ulong dst, ulong src, uint srcIp, uint dstIp, ushort sport, ushort dport, byte flags, int payload = 0, uint seq = 1, uint ack = 0)
        => Ip(dst, src, srcIp, dstIp, 6, TcpSegment(sport, dport, flags, payload, seq, ack));

    /// <summary>A TCP segment without options (checksum left 0 for the IP builders to fill), payload 'abc...'; IPv4 and IPv6 frames share it.</summary>
    public static byte[] TcpSegment(ushort sport, ushort dport, byte flags, int payload, uint seq, uint ack)
    {
        var l4 = new byte[20 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(8), ack);
        l4[12] = 0x50;
        l4[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(14), 0xffff);
        for (int i = 0; i < payload; i++) l4[20 + i] = (byte)('a' + i % 26);
        return l4;
    }

    public static byte[] Udp(ulong dst, ulong src, uint srcIp, uint dstIp, ushort sport, ushort dport, int payload = 8)
    {
        var l4 = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)l4.Length);
        return Ip(dst, src, srcIp, dstIp, 17, l4);
    }

    public static byte[] Icmp(ulong dst, ulong src, uint srcIp, uint dstIp, byte type, ushort id, ushort sequence = 1, string marker = "")
    {
        var l4 = new byte[8 + 48];
        l4[0] = type;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(6), sequence);
        System.Text.Encoding.ASCII.GetBytes(marker).CopyTo(l4.AsSpan(8));
        BinaryPrimitives.WriteUInt16LittleEndian(l4.AsSpan(2), (ushort)~Checksum.Fold(Checksum.Accumulate(l4, 0)));
        return Ip(dst, src, srcIp, dstIp, 1, l4);
    }

    public static byte[] Ip(ulong dst, ulong src, uint srcIp, uint dstIp, byte protocol, byte[] l4)
    {
        var f = new byte[14 + 20 + l4.Length];
        WriteMac(f, dst);
        WriteMac(f.AsSpan(6), src);
        f[12] = 0x08;
        var ip = f.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + l4.Length));
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = protocol;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], srcIp);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], dstIp);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.IPv4HeaderChecksum(ip[..20]));
        l4.CopyTo(f.AsSpan(34));
        if (protocol is 6 or 17) Checksum.CompleteTransportChecksum(f, 14);
        return f;
    }

    public static void WriteMac(Span<byte> b, ulong mac)
    {
        BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)(mac >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(b[2..], (uint)mac);
    }

    /// <summary>An 802.1Q-tagged copy of <paramref name="frame"/>.</summary>
    public static byte[] Tagged(byte[] frame, ushort vlan)
    {
        var t = new byte[frame.Length + 4];
        frame.AsSpan(0, 12).CopyTo(t);
        t[12] = 0x81;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), vlan);
        frame.AsSpan(12).CopyTo(t.AsSpan(16));
        return t;
    }
}

/// <summary>A service port that opens nothing: knows some interface names, records what happens to it.</summary>
internal sealed class FakeServicePort(string iface) : IServicePort
{
    public string Interface { get; } = iface;
    public bool Started { get; private set; }
    public bool Disposed { get; private set; }
    public void Start() => Started = true;
    public T Invoke<T>(Func<T> work) => work();
    public void Dispose() => Disposed = true;

    /// <summary>An opener that knows <paramref name="names"/> and fails like the real one for any other name.</summary>
    public static ServicePortOpener Opener(List<FakeServicePort> opened, params string[] names) => (name, jumbo) =>
    {
        if (Array.IndexOf(names, name) < 0) throw new LinkNotFoundException(name, "test");
        var port = new FakeServicePort(name);
        opened.Add(port);
        return port;
    };
}

/// <summary>
/// A raw AF_PACKET socket on one interface of a namespace for injecting and reading frames. With a virtio_net_hdr
/// (PACKET_VNET_HDR) it can send frames with a partial checksum or as GSO, the way the kernel's own TCP stack does.
/// </summary>
internal sealed unsafe class RawPacketSocket : IDisposable
{
    private readonly SafeFd _fd;
    private readonly bool _vnet;

    private RawPacketSocket(SafeFd fd, bool vnet) { _fd = fd; _vnet = vnet; }

    public static RawPacketSocket Open(string ns, string iface, bool vnetHeader = false)
    {
        int ifindex;
        using (var h = RouteHandle.Open(ns)) ifindex = h.GetLink(iface).Index;
        // PACKET_AUXDATA: to restore VLAN tags
        var fd = PacketSocket.Open(ns, iface, ifindex, new PacketSocketOptions { VnetHeader = vnetHeader, AuxData = true, ReceiveBuffer = 16 << 20 });
        return new RawPacketSocket(fd, vnetHeader);
    }

    /// <summary>Sends a frame (prefixed with <paramref name="vnetHeader"/>, 10 bytes, when the socket has one).</summary>
    public void Send(byte[] frame, byte[]? vnetHeader = null)
    {
        var data = _vnet ? [.. vnetHeader ?? new byte[10], .. frame] : frame;
        fixed (byte* p = data)
            if (send(_fd.Fd, p, data.Length, 0) < 0) throw SyscallException.FromLastError("inject a frame");
    }

    /// <summary>
    /// Receives incoming frames until <paramref name="until"/> says stop or nothing arrives for <paramref name="quiet"/>.
    /// A VLAN tag the kernel took off into metadata (PACKET_AUXDATA) is put back, as libpcap does.
    /// </summary>
    public List<byte[]> ReceiveUntil(Func<List<byte[]>, bool> until, TimeSpan quiet)
    {
        var frames = new List<byte[]>();
        var buffer = new byte[70000];
        var from = stackalloc byte[PacketSocket.AddressSize];
        var control = stackalloc byte[64];
        while (!until(frames))
        {
            var pfd = new pollfd { fd = _fd.Fd, events = POLLIN };
            if (Native.poll(&pfd, 1, (int)quiet.TotalMilliseconds) <= 0) break;
            long n;
            fixed (byte* b = buffer)
            {
                var iov = new iovec { iov_base = b, iov_len = buffer.Length };
                var msg = new msghdr { msg_name = from, msg_namelen = PacketSocket.AddressSize, msg_iov = &iov, msg_iovlen = 1, msg_control = control, msg_controllen = 64 };
                n = recvmsg(_fd.Fd, &msg, MSG_DONTWAIT);
                if (n < 0 || from[PacketSocket.PacketTypeOffset] == PacketSocket.PacketOutgoing) continue; // our own injections
                int skip = _vnet ? 10 : 0;
                var frame = buffer.AsSpan(skip, (int)n - skip).ToArray();
                // struct cmsghdr { size_t len; int level; int type; } + struct tpacket_auxdata
                if ((uint)msg.msg_controllen >= 16 + 20 && *(int*)(control + 8) == PacketSocket.SolPacket && *(int*)(control + 12) == PacketSocket.PacketAuxData)
                {
                    uint status = *(uint*)(control + 16);
                    ushort tci = *(ushort*)(control + 16 + 16), tpid = *(ushort*)(control + 16 + 18);
                    if ((status & 0x10) != 0) // TP_STATUS_VLAN_VALID
                        frame = [.. frame.AsSpan(0, 12), (byte)(((status & 0x40) != 0 ? tpid : 0x8100) >> 8), (byte)((status & 0x40) != 0 ? tpid : 0x8100),
                            (byte)(tci >> 8), (byte)tci, .. frame.AsSpan(12)];
                }
                frames.Add(frame);
            }
        }
        return frames;
    }

    public void Dispose() => _fd.Dispose();
}
