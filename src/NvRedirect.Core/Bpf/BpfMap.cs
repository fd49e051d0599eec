using System;
using System.IO;
using System.Text;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Bpf;

/// <summary>How <see cref="BpfMap.Update"/> treats an existing key (BPF_ANY, BPF_NOEXIST, BPF_EXIST).</summary>
public enum BpfUpdate
{
    /// <summary>Create or replace.</summary>
    Any = 0,
    /// <summary>Create only (EEXIST when present).</summary>
    NoExist = 1,
    /// <summary>Replace only (ENOENT when absent).</summary>
    Exist = 2,
}

/// <summary>
/// A BPF hash map through bpf(2) (docs/kernel-interfaces.md, "BPF maps"): create, pin to and open from bpffs, and the
/// element commands. Keys and values are fixed-size byte spans of the sizes the map was created with; every element
/// call is allocation-free, so the datapath's packet thread may use it.
/// </summary>
public sealed unsafe class BpfMap : IDisposable
{
    private const int MapCreate = 0, MapLookupElem = 1, MapUpdateElem = 2, MapDeleteElem = 3, MapGetNextKey = 4, ObjPin = 6, ObjGet = 7, ObjGetInfoByFd = 15;
    private const int MapTypeHash = 1;
    private const int NoPrealloc = 1;      // BPF_F_NO_PREALLOC: entries are allocated by updates (user space), not up front
    private const int CreateAttrSize = 72, ElemAttrSize = 32, ObjAttrSize = 16, InfoAttrSize = 16, InfoSize = 80;
    private const int Enoent = 2;

    private readonly SafeFd _fd;

    private BpfMap(SafeFd fd, int keySize, int valueSize, int maxEntries)
    {
        _fd = fd;
        Id = Info(fd.Fd, "a BPF map").Id;
        KeySize = keySize;
        ValueSize = valueSize;
        MaxEntries = maxEntries;
    }

    /// <summary>The map's fd (for BPF_LD_IMM64 with BPF_PSEUDO_MAP_FD while a program is loaded).</summary>
    public int Fd => _fd.Fd;
    /// <summary>The kernel's id of the map (the same for every fd of it, unlike the fd).</summary>
    public int Id { get; }
    /// <summary>Key size in bytes.</summary>
    public int KeySize { get; }
    /// <summary>Value size in bytes.</summary>
    public int ValueSize { get; }
    /// <summary>Capacity.</summary>
    public int MaxEntries { get; }

    /// <summary>Creates a hash map (BPF_MAP_CREATE, BPF_MAP_TYPE_HASH, entries allocated on update).</summary>
    public static BpfMap CreateHash(int keySize, int valueSize, int maxEntries, string name)
    {
        if (keySize <= 0 || valueSize <= 0 || maxEntries <= 0) throw new ArgumentOutOfRangeException(nameof(maxEntries), "A BPF map needs a positive key size, value size and capacity.");
        var attr = stackalloc byte[CreateAttrSize];
        new Span<byte>(attr, CreateAttrSize).Clear();
        *(int*)(attr + 0) = MapTypeHash;
        *(int*)(attr + 4) = keySize;
        *(int*)(attr + 8) = valueSize;
        *(int*)(attr + 12) = maxEntries;
        *(int*)(attr + 16) = NoPrealloc;
        var nameBytes = Encoding.ASCII.GetBytes(name);
        for (int i = 0; i < Math.Min(15, nameBytes.Length); i++) attr[28 + i] = nameBytes[i];
        long fd = Native.Bpf(MapCreate, attr, CreateAttrSize);
        if (fd < 0) throw new NetlinkException(Native.LastErrno, $"create the BPF hash map '{name}' (bpf BPF_MAP_CREATE)");
        return new BpfMap(new SafeFd((int)fd), keySize, valueSize, maxEntries);
    }

    /// <summary>Opens a map pinned at <paramref name="path"/> (BPF_OBJ_GET); null when nothing is pinned there.</summary>
    public static BpfMap? OpenPinned(string path)
    {
        var attr = stackalloc byte[ObjAttrSize];
        new Span<byte>(attr, ObjAttrSize).Clear();
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        long fd;
        fixed (byte* p = bytes)
        {
            *(ulong*)attr = (ulong)p;
            fd = Native.Bpf(ObjGet, attr, ObjAttrSize);
        }
        if (fd < 0)
        {
            int errno = Native.LastErrno;
            if (errno == Enoent) return null;
            throw new NetlinkException(errno, $"open the pinned BPF map {path} (bpf BPF_OBJ_GET)");
        }
        var handle = new SafeFd((int)fd);
        try
        {
            var (type, _, key, value, max) = Info(handle.Fd, path);
            if (type != MapTypeHash) throw new InvalidDataException($"{path} is a BPF object of map type {type}, not a hash map: it is not one NvRedirect pinned.");
            return new BpfMap(handle, key, value, max);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static (int Type, int Id, int KeySize, int ValueSize, int MaxEntries) Info(int fd, string what)
    {
        var info = stackalloc byte[InfoSize];
        new Span<byte>(info, InfoSize).Clear();
        var attr = stackalloc byte[InfoAttrSize];
        new Span<byte>(attr, InfoAttrSize).Clear();
        *(int*)(attr + 0) = fd;
        *(int*)(attr + 4) = InfoSize;
        *(ulong*)(attr + 8) = (ulong)info;
        if (Native.Bpf(ObjGetInfoByFd, attr, InfoAttrSize) < 0)
            throw new NetlinkException(Native.LastErrno, $"read what {what} is (bpf BPF_OBJ_GET_INFO_BY_FD)");
        // struct bpf_map_info: type, id, key_size, value_size, max_entries, map_flags, name[16], ...
        return (*(int*)(info + 0), *(int*)(info + 4), *(int*)(info + 8), *(int*)(info + 12), *(int*)(info + 16));
    }

    /// <summary>Pins the map at <paramref name="path"/> on a bpffs mount (BPF_OBJ_PIN); EEXIST when something is pinned there.</summary>
    public void Pin(string path)
    {
        var attr = stackalloc byte[ObjAttrSize];
        new Span<byte>(attr, ObjAttrSize).Clear();
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
        {
            *(ulong*)attr = (ulong)p;
            *(int*)(attr + 8) = Fd;
            if (Native.Bpf(ObjPin, attr, ObjAttrSize) < 0)
                throw new NetlinkException(Native.LastErrno, $"pin the BPF map at {path} (bpf BPF_OBJ_PIN)");
        }
    }

    private long Elem(int cmd, ReadOnlySpan<byte> key, Span<byte> valueOrNext, ulong flags)
    {
        var attr = stackalloc byte[ElemAttrSize];
        fixed (byte* k = key, v = valueOrNext)
        {
            *(int*)(attr + 0) = Fd;
            *(int*)(attr + 4) = 0;
            *(ulong*)(attr + 8) = (ulong)k;
            *(ulong*)(attr + 16) = (ulong)v;
            *(ulong*)(attr + 24) = flags;
            return Native.Bpf(cmd, attr, ElemAttrSize);
        }
    }

    private void CheckKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize) throw new ArgumentException($"This BPF map's keys are {KeySize} bytes, not {key.Length}.", nameof(key));
    }

    private void CheckValue(ReadOnlySpan<byte> value)
    {
        if (value.Length != ValueSize) throw new ArgumentException($"This BPF map's values are {ValueSize} bytes, not {value.Length}.", nameof(value));
    }

    /// <summary>Creates or replaces an element (BPF_MAP_UPDATE_ELEM).</summary>
    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, BpfUpdate mode = BpfUpdate.Any)
    {
        CheckKey(key);
        CheckValue(value);
        fixed (byte* v = value)
            if (Elem(MapUpdateElem, key, new Span<byte>(v, value.Length), (ulong)mode) < 0)
                throw new NetlinkException(Native.LastErrno, "update an element of a BPF map (bpf BPF_MAP_UPDATE_ELEM)");
    }

    /// <summary>Like <see cref="Update"/> without throwing: 0, or the errno (EEXIST for <see cref="BpfUpdate.NoExist"/> on a present key). Allocates nothing.</summary>
    public int TryUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, BpfUpdate mode)
    {
        if (key.Length != KeySize || value.Length != ValueSize) return 22;
        fixed (byte* v = value)
            return Elem(MapUpdateElem, key, new Span<byte>(v, value.Length), (ulong)mode) < 0 ? Native.LastErrno : 0;
    }

    /// <summary>
    /// The id of the map pinned at <paramref name="pathZ"/> (UTF-8, NUL-terminated), or -1 when nothing is pinned there
    /// or it cannot be read: a holder checks whether its map is still the pinned one. Allocates nothing.
    /// </summary>
    public static int PinnedId(ReadOnlySpan<byte> pathZ)
    {
        var attr = stackalloc byte[ObjAttrSize];
        new Span<byte>(attr, ObjAttrSize).Clear();
        long fd;
        fixed (byte* p = pathZ)
        {
            *(ulong*)attr = (ulong)p;
            fd = Native.Bpf(ObjGet, attr, ObjAttrSize);
        }
        if (fd < 0) return -1;
        var info = stackalloc byte[InfoSize];
        new Span<byte>(info, InfoSize).Clear();
        var infoAttr = stackalloc byte[InfoAttrSize];
        *(int*)(infoAttr + 0) = (int)fd;
        *(int*)(infoAttr + 4) = InfoSize;
        *(ulong*)(infoAttr + 8) = (ulong)info;
        int id = Native.Bpf(ObjGetInfoByFd, infoAttr, InfoAttrSize) < 0 ? -1 : *(int*)(info + 4);
        Native.close((int)fd);
        return id;
    }

    /// <summary>Reads an element into <paramref name="value"/>; false when the key is absent (BPF_MAP_LOOKUP_ELEM).</summary>
    public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckKey(key);
        CheckValue(value);
        if (Elem(MapLookupElem, key, value, 0) >= 0) return true;
        int errno = Native.LastErrno;
        if (errno == Enoent) return false;
        throw new NetlinkException(errno, "look up an element of a BPF map (bpf BPF_MAP_LOOKUP_ELEM)");
    }

    /// <summary>Deletes an element; false when it was not there (BPF_MAP_DELETE_ELEM).</summary>
    public bool Delete(ReadOnlySpan<byte> key)
    {
        CheckKey(key);
        if (Elem(MapDeleteElem, key, default, 0) >= 0) return true;
        int errno = Native.LastErrno;
        if (errno == Enoent) return false;
        throw new NetlinkException(errno, "delete an element of a BPF map (bpf BPF_MAP_DELETE_ELEM)");
    }

    /// <summary>
    /// The key after <paramref name="key"/> in the map's order into <paramref name="next"/>; an empty <paramref name="key"/>
    /// asks for the first. False at the end (BPF_MAP_GET_NEXT_KEY). A key deleted meanwhile restarts at the first.
    /// </summary>
    public bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> next)
    {
        if (!key.IsEmpty) CheckKey(key);
        if (next.Length != KeySize) throw new ArgumentException($"This BPF map's keys are {KeySize} bytes, not {next.Length}.", nameof(next));
        if (Elem(MapGetNextKey, key, next, 0) >= 0) return true;
        int errno = Native.LastErrno;
        if (errno == Enoent) return false;
        throw new NetlinkException(errno, "walk the keys of a BPF map (bpf BPF_MAP_GET_NEXT_KEY)");
    }

    /// <summary>Deletes every element; returns how many were deleted.</summary>
    public int Clear()
    {
        Span<byte> key = stackalloc byte[KeySize];
        int n = 0;
        // always ask for the first key: deleting the current one would restart the walk anyway
        while (TryGetNextKey(default, key))
            if (Delete(key)) n++;
        return n;
    }

    /// <summary>Closes this process's reference (a pin or a program keeps the map alive).</summary>
    public void Dispose() => _fd.Dispose();
}
