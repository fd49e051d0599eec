using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Bpf;

/// <summary>Which port a fast-path program sits on, and so which way its packets go (the key's direction byte).</summary>
public enum FastPathDirection : byte
{
    /// <summary>On the entry port (vex): frames to the workload (destination MAC = the workload's), redirected to the inner port.</summary>
    ToWorkload = 0,
    /// <summary>On the inner port (vin): frames from the workload (source MAC = the workload's), redirected to the entry port.</summary>
    FromWorkload = 1,
}

/// <summary>
/// The one definition of a fast-path flow key and value (docs/datapath.md, "The kernel fast path"). Key, 16 bytes:
/// IPv4 source and destination as on the wire (4 + 4), source and destination port as on the wire (2 + 2), IP protocol
/// (1), <see cref="FastPathDirection"/> (1), zero (2). Value, 24 bytes, written by the program: packets u64, bytes u64,
/// last-seen u64 (CLOCK_MONOTONIC nanoseconds, bpf_ktime_get_ns), host byte order.
/// </summary>
public static class FastPathFlow
{
    /// <summary>Key size.</summary>
    public const int KeySize = 16;
    /// <summary>Value size.</summary>
    public const int ValueSize = 24;
    /// <summary>Offsets in the value.</summary>
    public const int PacketsOffset = 0, BytesOffset = 8, LastSeenOffset = 16;

    /// <summary>Writes a key; addresses and ports are host-order numbers (written big-endian, as on the wire).</summary>
    public static void WriteKey(Span<byte> key, uint source, uint destination, ushort sourcePort, ushort destinationPort, byte protocol, FastPathDirection direction)
    {
        BinaryPrimitives.WriteUInt32BigEndian(key, source);
        BinaryPrimitives.WriteUInt32BigEndian(key[4..], destination);
        BinaryPrimitives.WriteUInt16BigEndian(key[8..], sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(key[10..], destinationPort);
        key[12] = protocol;
        key[13] = (byte)direction;
        key[14] = key[15] = 0;
    }

    /// <summary>Reads a value: packets, bytes, last-seen nanoseconds.</summary>
    public static (ulong Packets, ulong Bytes, ulong LastSeenNs) ReadValue(ReadOnlySpan<byte> value)
        => (BinaryPrimitives.ReadUInt64LittleEndian(value), BinaryPrimitives.ReadUInt64LittleEndian(value[BytesOffset..]), BinaryPrimitives.ReadUInt64LittleEndian(value[LastSeenOffset..]));
}

/// <summary>One published flow as read from a map: its key and what the program counted.</summary>
public sealed record FastPathFlowEntry(System.Net.IPAddress Source, System.Net.IPAddress Destination, ushort SourcePort, ushort DestinationPort,
    byte Protocol, FastPathDirection Direction, ulong Packets, ulong Bytes, ulong LastSeenNs);

/// <summary>
/// The fast-path cls_bpf program of one port of one workload (docs/datapath.md, "The kernel fast path"; assembled by
/// <see cref="Assemble"/>, no compiler): parse Ethernet/IPv4 (no options, no fragment)/TCP (no SYN, FIN or RST),
/// UDP or ICMP echo (request or reply; the identifier in both port fields), require the workload's MAC where the steering rule requires it, look the flow up in the workload's map, and for
/// a published flow count it (packets, bytes, last seen) and bpf_redirect it to the other port unchanged: the
/// steering's rewrite to the ucmac and the monitor port's rewrite back cancel out, so the frame leaves exactly as the
/// datapath path would have delivered it. Anything else returns TC_ACT_UNSPEC: the steering rules after it run.
/// </summary>
/// <remarks>
/// With <paramref name="ToPeer"/> (both ports veth), bpf_redirect_peer hands the frame straight to the other port's
/// peer (the workload's interface, or the host side's), into its namespace's ingress, instead of transmitting it on the
/// other port: one queueing step less per packet, and the frame arrives the same.
/// </remarks>
public sealed record FastPathProgram(FastPathDirection Direction, byte[] WorkloadMac, int TargetIfIndex, int MapFd, bool ToPeer = false)
{
    private const int TcActUnspec = -1;
    // frame byte 0 sits at fp-50 so that the IPv4 addresses (frame 26, 30) land 4-aligned at fp-24 and fp-20: the key
    // is built in place, fp-24..fp-9 = saddr, daddr, sport, dport (loaded), protocol, direction, 0 (stored)
    private const short Frame = -50, Key = -24, TcpFlags = -8, Icmp = -8;
    private const int Loaded = 38;           // Ethernet 14 + IPv4 20 + the two ports
    private const int TcpFlagsAt = 47;       // 14 + 20 + 13
    private const int IcmpAt = 34;           // type, code, checksum, identifier

    private static short At(int frameOffset) => (short)(Frame + frameOffset);

    /// <summary>Assembles the program (the map fd is embedded: load it while the map fd is open).</summary>
    public byte[] Assemble()
    {
        if (WorkloadMac is not { Length: 6 }) throw new ArgumentException("The workload MAC must be 6 bytes.", nameof(WorkloadMac));
        var m = WorkloadMac;
        var a = new BpfAssembler();
        a.Mov(Reg.R6, Reg.R1)
         .Mov(Reg.R2, 0).Mov(Reg.R3, Reg.R10).Add(Reg.R3, Frame).Mov(Reg.R4, Loaded)
         .Call(BpfAssembler.HelperSkbLoadBytes)
         .JumpIfNotEqual64(Reg.R0, 0, "pass");
        // the MAC the steering rule of this port matches: destination on the entry port, source on the inner port
        if (Direction == FastPathDirection.ToWorkload)
            a.LoadU16(Reg.R1, Reg.R10, At(0)).JumpIfNotEqual32(Reg.R1, Le16(m, 0), "pass")
             .LoadU32(Reg.R1, Reg.R10, At(2)).JumpIfNotEqual32(Reg.R1, Le32(m, 2), "pass");
        else
            a.LoadU32(Reg.R1, Reg.R10, At(6)).JumpIfNotEqual32(Reg.R1, Le32(m, 0), "pass")
             .LoadU16(Reg.R1, Reg.R10, At(10)).JumpIfNotEqual32(Reg.R1, Le16(m, 4), "pass");
        a.LoadU16(Reg.R1, Reg.R10, At(12)).JumpIfNotEqual32(Reg.R1, 0x0008, "pass")        // EtherType IPv4 (no VLAN tag)
         .LoadU8(Reg.R1, Reg.R10, At(14)).JumpIfNotEqual32(Reg.R1, 0x45, "pass")            // version 4, no options
         .LoadU16(Reg.R1, Reg.R10, At(20)).JumpIfAnySet(Reg.R1, 0xff3f, "pass")             // MF or an offset: a fragment
         .LoadU8(Reg.R1, Reg.R10, At(23))
         .JumpIfEqual64(Reg.R1, 17, "key")
         .JumpIfEqual64(Reg.R1, 1, "icmp")
         .JumpIfNotEqual64(Reg.R1, 6, "pass")
         .Mov(Reg.R1, Reg.R6).Mov(Reg.R2, TcpFlagsAt).Mov(Reg.R3, Reg.R10).Add(Reg.R3, TcpFlags).Mov(Reg.R4, 1)
         .Call(BpfAssembler.HelperSkbLoadBytes)
         .JumpIfNotEqual64(Reg.R0, 0, "pass")
         .LoadU8(Reg.R1, Reg.R10, TcpFlags).JumpIfAnySet(Reg.R1, 0x07, "pass")              // FIN, SYN, RST: the datapath's
         .Mov(Reg.R1, 6)
         .Jump("key")
         // ICMP echo request or reply: both ports of the key are the echo identifier (the datapath's session key)
         .Label("icmp")
         .Mov(Reg.R1, Reg.R6).Mov(Reg.R2, IcmpAt).Mov(Reg.R3, Reg.R10).Add(Reg.R3, Icmp).Mov(Reg.R4, 6)
         .Call(BpfAssembler.HelperSkbLoadBytes)
         .JumpIfNotEqual64(Reg.R0, 0, "pass")
         .LoadU8(Reg.R1, Reg.R10, Icmp).JumpIfEqual64(Reg.R1, 8, "echo")
         .JumpIfNotEqual64(Reg.R1, 0, "pass")
         .Label("echo")
         .LoadU16(Reg.R1, Reg.R10, Icmp + 4).StoreU16(Reg.R10, Key + 8, Reg.R1).StoreU16(Reg.R10, Key + 10, Reg.R1)
         .Mov(Reg.R1, 1)
         .Label("key")
         .StoreU8(Reg.R10, Key + 12, Reg.R1).StoreU8(Reg.R10, Key + 13, (int)Direction).StoreU16(Reg.R10, Key + 14, 0)
         .LoadMapFd(Reg.R1, MapFd).Mov(Reg.R2, Reg.R10).Add(Reg.R2, Key)
         .Call(BpfAssembler.HelperMapLookupElem)
         .JumpIfEqual64(Reg.R0, 0, "pass")
         .Mov(Reg.R7, Reg.R0)
         .Mov(Reg.R1, 1).AtomicAdd64(Reg.R7, FastPathFlow.PacketsOffset, Reg.R1)
         .LoadU32(Reg.R1, Reg.R6, 0).AtomicAdd64(Reg.R7, FastPathFlow.BytesOffset, Reg.R1)  // __sk_buff.len
         .Call(BpfAssembler.HelperKtimeGetNs).StoreU64(Reg.R7, FastPathFlow.LastSeenOffset, Reg.R0)
         .Mov(Reg.R1, TargetIfIndex).Mov(Reg.R2, 0).Call(ToPeer ? BpfAssembler.HelperRedirectPeer : BpfAssembler.HelperRedirect).Exit() // r0 = TC_ACT_REDIRECT
         .Label("pass").Mov(Reg.R0, TcActUnspec).Exit();
        return a.ToBytes();
    }

    private static int Le32(byte[] mac, int at) => BinaryPrimitives.ReadInt32LittleEndian(mac.AsSpan(at, 4));
    private static int Le16(byte[] mac, int at) => BinaryPrimitives.ReadUInt16LittleEndian(mac.AsSpan(at, 2));
}

/// <summary>
/// Where a workload's fast-path map is pinned, and its creation: /sys/fs/bpf/nvredirect/NS/MAC (NS = the agent
/// namespace, "-" for the root namespace; MAC as 12 hex digits). The directories are root's, mode 0700; bpffs is
/// mounted on /sys/fs/bpf when nothing is. The module creates and pins the map with the interception and unpins it
/// when the interception goes; nvr-dp opens it when the workload is registered (docs/datapath.md, "The kernel fast path").
/// </summary>
public static class FastPathMap
{
    /// <summary>The bpffs mount point.</summary>
    public const string BpfFs = "/sys/fs/bpf";
    /// <summary>NvRedirect's directory on it.</summary>
    public const string Root = BpfFs + "/nvredirect";
    /// <summary>Flows per workload (each direction is one entry).</summary>
    public const int Capacity = 16384;
    private const uint BpfFsMagic = 0xcafe4a11;

    /// <summary>
    /// The directory of one agent namespace's maps: its /run/netns name, "-" for the root namespace, a namespace path
    /// (/proc/PID/ns/net, a bind mount) with '%' and '/' escaped as %25 and %2F.
    /// </summary>
    public static string DirectoryFor(string ns)
    {
        if (ns.StartsWith('/')) return Root + "/" + ns.Replace("%", "%25").Replace("/", "%2F");
        if (ns.Length > 0 && (ns is "." or ".." || ns.Contains('/') || ns.Any(char.IsControl)))
            throw new ArgumentException($"'{ns}' is not a namespace name.", nameof(ns));
        return Root + "/" + (ns.Length == 0 ? "-" : ns);
    }

    /// <summary>The pin path of a workload's map.</summary>
    public static string PathFor(string ns, ReadOnlySpan<byte> workloadMac) => DirectoryFor(ns) + "/" + Convert.ToHexString(workloadMac).ToLowerInvariant();

    /// <summary>Whether bpffs is mounted on /sys/fs/bpf.</summary>
    public static bool IsBpfFsMounted()
    {
        foreach (var line in File.ReadLines("/proc/self/mounts"))
        {
            var f = line.Split(' ');
            if (f.Length > 2 && f[1] == BpfFs && f[2] == "bpf") return true;
        }
        return false;
    }

    /// <summary>Mounts bpffs on /sys/fs/bpf unless it is there, and makes NS's directory (root's, 0700, checked).</summary>
    public static string EnsureDirectory(string ns)
    {
        if (!IsBpfFsMounted() && Native.mount("bpf", BpfFs, "bpf", 0, IntPtr.Zero) != 0)
            throw new NetlinkException(Native.LastErrno, $"mount bpffs on {BpfFs} (for the fast path's maps)");
        var dir = DirectoryFor(ns);
        SweepGoneNamespaces();
        foreach (var d in new[] { Root, dir })
        {
            if (Native.mkdir(d, 0x1c0) != 0 && Native.LastErrno != 17) throw new NetlinkException(Native.LastErrno, $"create {d}");
            if (!IsPrivateDirectory(d))
                throw new InvalidDataException($"{d} is not a directory only root may use (a symlink, another owner, or a mode other than 0700): remove it and try again.");
        }
        return dir;
    }

    private static unsafe bool IsPrivateDirectory(string path)
    {
        Tmds.Linux.stat st;
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(path + "\0"))
            if (Tmds.Linux.LibC.lstat(p, &st) < 0) return false;
        return ((uint)st.st_mode & 0xf000) == 0x4000 && st.st_uid == 0 && ((uint)st.st_mode & 0x1ff) == 0x1c0;
    }

    /// <summary>Creates and pins the workload's map, or opens the one pinned already (same layout required).</summary>
    public static BpfMap CreateOrOpen(string ns, ReadOnlySpan<byte> workloadMac)
    {
        EnsureDirectory(ns);
        var path = PathFor(ns, workloadMac);
        if (BpfMap.OpenPinned(path) is { } existing)
        {
            if (existing.KeySize == FastPathFlow.KeySize && existing.ValueSize == FastPathFlow.ValueSize) return existing;
            existing.Dispose();
            throw new InvalidDataException($"{path} is a BPF map of another layout ({existing.KeySize}-byte keys, {existing.ValueSize}-byte values): remove it (rm {path}) and try again.");
        }
        var map = BpfMap.CreateHash(FastPathFlow.KeySize, FastPathFlow.ValueSize, Capacity, "nvr_fastpath");
        try { map.Pin(path); }
        catch { map.Dispose(); throw; }
        return map;
    }

    /// <summary>Opens a workload's pinned map; null when it has none (no fast path).</summary>
    public static BpfMap? Open(string ns, ReadOnlySpan<byte> workloadMac)
    {
        var path = PathFor(ns, workloadMac);
        return File.Exists(path) ? BpfMap.OpenPinned(path) : null;
    }

    /// <summary>The flows published in a workload's map with what the kernel counted for them (empty when it has no map).</summary>
    public static List<FastPathFlowEntry> Entries(string ns, byte[] workloadMac)
    {
        var list = new List<FastPathFlowEntry>();
        using var map = Open(ns, workloadMac);
        if (map == null) return list;
        var key = new byte[FastPathFlow.KeySize];
        var next = new byte[FastPathFlow.KeySize];
        var value = new byte[FastPathFlow.ValueSize];
        for (bool more = map.TryGetNextKey(default, next); more; more = map.TryGetNextKey(key, next))
        {
            next.CopyTo(key, 0);
            if (!map.TryLookup(key, value)) continue;
            var (packets, bytes, seen) = FastPathFlow.ReadValue(value);
            list.Add(new FastPathFlowEntry(new System.Net.IPAddress(key.AsSpan(0, 4)), new System.Net.IPAddress(key.AsSpan(4, 4)),
                BinaryPrimitives.ReadUInt16BigEndian(key.AsSpan(8)), BinaryPrimitives.ReadUInt16BigEndian(key.AsSpan(10)), key[12],
                (FastPathDirection)key[13], packets, bytes, seen));
        }
        return list;
    }

    /// <summary>Empties and unpins a workload's map (the filters using it must be gone first); false when none was pinned.</summary>
    public static bool Remove(string ns, ReadOnlySpan<byte> workloadMac)
    {
        var path = PathFor(ns, workloadMac);
        using (var map = BpfMap.OpenPinned(path))
        {
            if (map == null) return false;
            map.Clear(); // a daemon still holding the map keeps nothing it could mistake for published flows
        }
        if (Native.unlink(path) != 0 && Native.LastErrno != 2) throw new NetlinkException(Native.LastErrno, $"unpin {path}");
        return true;
    }

    /// <summary>Empties every map of an agent namespace (a datapath stopped or died); returns how many flows were revoked.</summary>
    public static int ClearAll(string ns)
    {
        var dir = DirectoryFor(ns);
        if (!Directory.Exists(dir)) return 0;
        int n = 0;
        foreach (var path in Directory.GetFiles(dir))
            using (var map = BpfMap.OpenPinned(path))
                if (map is { KeySize: FastPathFlow.KeySize, ValueSize: FastPathFlow.ValueSize }) n += map.Clear();
        return n;
    }

    /// <summary>
    /// Unpins the maps of /run/netns namespaces that are gone (deleted with their interceptions still in place: the
    /// filters went with the links, the pins would stay); returns the directories removed.
    /// </summary>
    public static int SweepGoneNamespaces()
    {
        if (!Directory.Exists(Root)) return 0;
        int n = 0;
        foreach (var dir in Directory.GetDirectories(Root))
        {
            var name = Path.GetFileName(dir);
            if (name == "-" || name.StartsWith('%') || File.Exists("/run/netns/" + name)) continue;
            foreach (var path in Directory.GetFiles(dir))
            {
                try { using var map = BpfMap.OpenPinned(path); map?.Clear(); }
                catch (NetlinkException) { /* not a map of ours: unpinned all the same */ }
                Native.unlink(path);
            }
            if (Native.rmdir(dir) == 0) n++;
        }
        return n;
    }
}
