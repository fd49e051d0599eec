using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Core.Packets;

/// <summary>One captured frame.</summary>
public sealed class CapturedFrame
{
    /// <summary>When it was received.</summary>
    public DateTime Time { get; init; }
    /// <summary>In (to this host) or Out (sent by this host on the interface).</summary>
    public string Direction { get; init; } = "";
    /// <summary>The frame bytes (truncated to the snap length).</summary>
    public byte[] Bytes { get; init; } = [];
    /// <summary>The frame's length on the wire.</summary>
    public int WireLength { get; init; }
}

/// <summary>
/// An AF_PACKET socket (ETH_P_ALL) bound to one interface of one namespace. The socket is created on a namespace
/// thread (it then belongs to that namespace for good) and read from the caller's thread.
/// </summary>
public sealed unsafe class PacketCapture : IDisposable
{
    private const uint IffUp = 1;
    private readonly SafeFd _fd;

    /// <summary>The namespace ("" = root).</summary>
    public string Namespace { get; }
    /// <summary>The interface.</summary>
    public string Interface { get; }

    private PacketCapture(SafeFd fd, string ns, string iface) { _fd = fd; Namespace = ns; Interface = iface; }

    /// <summary>Opens a capture on <paramref name="iface"/> in namespace <paramref name="ns"/>.</summary>
    public static PacketCapture Open(string? ns, string iface)
    {
        ns ??= "";
        int ifindex;
        using (var handle = RouteHandle.Open(ns))
        {
            var link = handle.GetLink(iface);
            // a socket bound to a down link reports ENETDOWN on its first read; say so up front, with the way out
            if ((link.Flags & IffUp) == 0) throw new SyscallException(ENETDOWN, $"capture on {handle.Describe(iface)}: it is down, so nothing crosses it; bring it up first (Set-AgentLink -Up)");
            ifindex = link.Index;
        }
        var socketFd = PacketSocket.Open(ns, iface, ifindex);
        return new PacketCapture(socketFd, ns, iface);
    }

    /// <summary>Reads up to <paramref name="count"/> frames or until <paramref name="timeout"/> passes.</summary>
    public List<CapturedFrame> Read(int count, TimeSpan timeout, Func<bool>? stopRequested = null, int snapLength = 65535)
    {
        var frames = new List<CapturedFrame>();
        var buffer = new byte[snapLength];
        var sw = Stopwatch.StartNew();
        while (frames.Count < count)
        {
            var left = timeout - sw.Elapsed;
            if (left <= TimeSpan.Zero || (stopRequested?.Invoke() ?? false)) break;
            var pfd = new pollfd { fd = _fd.Fd, events = POLLIN };
            int wait = (int)Math.Min(left.TotalMilliseconds + 1, 200); // wake up regularly for Ctrl+C
            int r = Native.poll(&pfd, 1, wait); // Native.poll records errno (Tmds.LibC's does not)
            if (r < 0) { if (Interrupted()) continue; throw SyscallException.FromLastError("wait for frames"); }
            if (r == 0) continue;
            var from = new byte[PacketSocket.AddressSize];
            uint fromLen = PacketSocket.AddressSize;
            long n;
            fixed (byte* b = buffer) fixed (byte* f = from)
                n = recvfrom(_fd.Fd, b, buffer.Length, MSG_TRUNC, (sockaddr*)f, (socklen_t*)&fromLen);
            if (n < 0)
            {
                if (Interrupted()) continue;
                int errno = Native.LastErrno;
                throw new SyscallException(errno, errno == ENETDOWN
                    ? $"capture on link '{Interface}' in {(Namespace.Length == 0 ? "the root namespace" : $"namespace '{Namespace}'")}: the link went down; bring it up again (Set-AgentLink -Up)"
                    : "receive a frame");
            }
            int captured = (int)Math.Min(n, buffer.Length);
            frames.Add(new CapturedFrame
            {
                Time = DateTime.Now,
                Direction = from[PacketSocket.PacketTypeOffset] == PacketSocket.PacketOutgoing ? "Out" : "In",
                Bytes = buffer.AsSpan(0, captured).ToArray(),
                WireLength = (int)n,
            });
        }
        return frames;
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for a frame on any of <paramref name="captures"/> and returns it with the
    /// capture it came from, or null on timeout or stop. Captures on several interfaces thus see the same moment.
    /// </summary>
    public static (PacketCapture Capture, CapturedFrame Frame)? ReadAny(IReadOnlyList<PacketCapture> captures, TimeSpan timeout, Func<bool>? stopRequested = null, int snapLength = 65535)
    {
        var fds = new pollfd[captures.Count];
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var left = timeout - sw.Elapsed;
            if (left <= TimeSpan.Zero || (stopRequested?.Invoke() ?? false)) return null;
            for (int i = 0; i < fds.Length; i++) fds[i] = new pollfd { fd = captures[i]._fd.Fd, events = POLLIN };
            int r;
            fixed (pollfd* p = fds) r = Native.poll(p, (ulong)fds.Length, (int)Math.Min(left.TotalMilliseconds + 1, 200));
            if (r < 0) { if (Interrupted()) continue; throw SyscallException.FromLastError("wait for frames"); }
            for (int i = 0; i < fds.Length; i++)
                if ((fds[i].revents & (POLLIN | POLLERR)) != 0) // POLLERR: the link went down, and Read says so
                    foreach (var f in captures[i].Read(1, TimeSpan.FromMilliseconds(1), null, snapLength))
                        return (captures[i], f);
        }
    }

    // A signal (SIGCHLD when a child process ends) interrupts poll/recvfrom with EINTR.
    private static bool Interrupted() => Native.LastErrno == 4 /* EINTR */;

    /// <inheritdoc/>
    public void Dispose() => _fd.Dispose();
}

/// <summary>Writes classic pcap files (LINKTYPE_ETHERNET) that tcpdump and Wireshark read.</summary>
public static class PcapWriter
{
    /// <summary>Writes <paramref name="frames"/> to <paramref name="path"/>.</summary>
    public static void Write(string path, IEnumerable<CapturedFrame> frames, int snapLength = 65535)
    {
        using var stream = File.Create(path);
        Span<byte> header = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0xa1b2c3d4);   // microsecond timestamps
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], (uint)snapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], 1);      // LINKTYPE_ETHERNET
        stream.Write(header);
        Span<byte> record = stackalloc byte[16];
        foreach (var f in frames)
        {
            long micros = (f.Time.ToUniversalTime() - DateTime.UnixEpoch).Ticks / 10;
            BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)(micros / 1_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(record[4..], (uint)(micros % 1_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(record[8..], (uint)f.Bytes.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(record[12..], (uint)f.WireLength);
            stream.Write(record);
            stream.Write(f.Bytes);
        }
    }
}

/// <summary>A captured frame as a pipeline object.</summary>
public sealed class AgentPacket
{
    /// <summary>Receive time (local).</summary>
    public DateTime Time { get; init; }
    /// <summary>Namespace of the interface ("" = root).</summary>
    public string Namespace { get; init; } = "";
    /// <summary>Interface the frame was seen on.</summary>
    public string Interface { get; init; } = "";
    /// <summary>In or Out.</summary>
    public string Direction { get; init; } = "";
    /// <summary>Source MAC.</summary>
    public string SourceMac { get; init; } = "";
    /// <summary>Destination MAC.</summary>
    public string DestinationMac { get; init; } = "";
    /// <summary>Ethertype, e.g. 0x0800.</summary>
    public string EtherType { get; init; } = "";
    /// <summary>802.1Q VLAN id or null.</summary>
    public int? VlanId { get; init; }
    /// <summary>Source IP, when the frame carries IP.</summary>
    public IPAddress? SourceIP { get; init; }
    /// <summary>Destination IP.</summary>
    public IPAddress? DestinationIP { get; init; }
    /// <summary>TCP, UDP, ICMP, ICMPv6, ARP, IPv4 (other), IPv6 (other) or the ethertype.</summary>
    public string Protocol { get; init; } = "";
    /// <summary>Source port (TCP/UDP).</summary>
    public int? SourcePort { get; init; }
    /// <summary>Destination port (TCP/UDP).</summary>
    public int? DestinationPort { get; init; }
    /// <summary>Length on the wire.</summary>
    public int Length { get; init; }
    /// <summary>A one-line, tcpdump -e style summary.</summary>
    public string Summary { get; init; } = "";
    /// <summary>The raw frame.</summary>
    public byte[] Bytes { get; init; } = [];

    /// <summary>Builds the object from a captured frame.</summary>
    public static AgentPacket From(CapturedFrame f, string ns, string iface)
    {
        var err = FrameParser.Parse(f.Bytes, out var info);
        var span = f.Bytes.AsSpan();
        IPAddress? src = null, dst = null;
        string proto;
        if (err == FrameError.None && info.IpVersion == 4)
        {
            src = new IPAddress(span.Slice(info.L3Offset + 12, 4));
            dst = new IPAddress(span.Slice(info.L3Offset + 16, 4));
        }
        else if (err == FrameError.None && info.IpVersion == 6)
        {
            src = new IPAddress(span.Slice(info.L3Offset + 8, 16));
            dst = new IPAddress(span.Slice(info.L3Offset + 24, 16));
        }
        proto = info.IpVersion == 0
            ? info.EtherType switch { FrameParser.EtherTypeArp => "ARP", _ => $"0x{info.EtherType:x4}" }
            : info.Protocol switch { 6 => "TCP", 17 => "UDP", 1 => "ICMP", 58 => "ICMPv6", _ => info.IpVersion == 4 ? $"IPv4/{info.Protocol}" : $"IPv6/{info.Protocol}" };
        bool ports = info.L4Offset > 0 && info.Protocol is 6 or 17;
        string l3 = err != FrameError.None ? $"malformed ({err})" : proto switch
        {
            "TCP" or "UDP" => $"{src}.{info.SourcePort} > {dst}.{info.DestinationPort}: {proto}{(proto == "TCP" ? " " + TcpFlags(info.TcpFlags) : "")}",
            "ICMP" or "ICMPv6" => $"{src} > {dst}: {proto} {IcmpText(info)}",
            "ARP" => ArpText(span[info.L3Offset..]),
            _ => src != null ? $"{src} > {dst}: {proto}" : proto,
        };
        var summary = $"{f.Time:HH:mm:ss.ffffff} {iface} {f.Direction,-3} {FrameParser.FormatMac(info.SourceMac)} > {FrameParser.FormatMac(info.DestinationMac)}, ethertype 0x{info.EtherType:x4}, length {f.WireLength}: {l3}";
        return new AgentPacket
        {
            Time = f.Time, Namespace = ns, Interface = iface, Direction = f.Direction,
            SourceMac = FrameParser.FormatMac(info.SourceMac), DestinationMac = FrameParser.FormatMac(info.DestinationMac),
            EtherType = $"0x{info.EtherType:x4}", VlanId = info.VlanId >= 0 ? info.VlanId : null,
            SourceIP = src, DestinationIP = dst, Protocol = proto,
            SourcePort = ports ? info.SourcePort : null, DestinationPort = ports ? info.DestinationPort : null,
            Length = f.WireLength, Summary = summary, Bytes = f.Bytes,
        };
    }

    private static string TcpFlags(byte f)
    {
        var s = "";
        if ((f & 2) != 0) s += "S"; if ((f & 1) != 0) s += "F"; if ((f & 4) != 0) s += "R"; if ((f & 8) != 0) s += "P"; if ((f & 16) != 0) s += ".";
        return $"Flags [{s}]";
    }

    private static string IcmpText(FrameInfo i) => (i.Protocol, i.IcmpType) switch
    {
        (1, 8) or (58, 128) => $"echo request, id {i.SourcePort}",
        (1, 0) or (58, 129) => $"echo reply, id {i.SourcePort}",
        (1, 3) => $"unreachable, code {i.IcmpCode}",
        _ => $"type {i.IcmpType}, code {i.IcmpCode}",
    };

    private static string ArpText(ReadOnlySpan<byte> arp)
    {
        if (arp.Length < 28) return "ARP, truncated";
        int op = BinaryPrimitives.ReadUInt16BigEndian(arp[6..]);
        var spa = new IPAddress(arp.Slice(14, 4));
        var tpa = new IPAddress(arp.Slice(24, 4));
        return op == 1 ? $"ARP, Request who-has {tpa} tell {spa}" : op == 2 ? $"ARP, Reply {spa} is-at {FrameParser.FormatMac(FrameParser.ReadMac(arp[8..]))}" : $"ARP, op {op}";
    }
}
