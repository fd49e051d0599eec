using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using Tmds.Linux;

namespace NvRedirect.Core.Namespaces;

/// <summary>
/// Named network namespaces, compatible with iproute2 both ways: a namespace is pinned by a bind mount of its
/// nsfs file on /run/netns/NAME (docs/kernel-interfaces.md, "Namespaces"), so `ip netns` sees ours and we see theirs.
/// </summary>
public static unsafe class NetworkNamespace
{
    /// <summary>iproute2's NETNS_RUN_DIR.</summary>
    public const string RunDirectory = "/run/netns";

    /// <summary>The pinned path of a named namespace.</summary>
    public static string PathOf(string name) => System.IO.Path.Combine(RunDirectory, name);

    /// <summary>Whether <paramref name="nameOrPath"/> is a namespace path (/proc/PID/ns/net, a bind mount) rather than a /run/netns name.</summary>
    public static bool IsPath(string? nameOrPath) => nameOrPath is { Length: > 0 } && nameOrPath[0] == '/';

    /// <summary>The file to open for a /run/netns name or a namespace path.</summary>
    public static string PathFor(string nameOrPath) => IsPath(nameOrPath) ? nameOrPath : PathOf(nameOrPath);

    /// <summary>The nsfs inode of a network namespace file (its identity), or null when the path is not one.</summary>
    public static ulong? NsfsInode(string path)
    {
        ulong nsfs = DeviceOf("/proc/self/ns/net", out _);
        ulong device = DeviceOf(path, out ulong inode);
        return device != 0 && device == nsfs ? inode : null;
    }

    /// <summary>Why a namespace name is unacceptable, or null when it is fine (iproute2's rules plus no white space).</summary>
    public static string? Validate(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "the name is empty";
        if (name is "." or "..") return $"'{name}' is not a usable file name";
        if (name.Contains('/')) return $"'{name}' contains '/'";
        if (name.Any(char.IsWhiteSpace)) return $"'{name}' contains white space";
        if (name.Any(char.IsControl)) return $"'{name}' contains a control character";
        if (System.Text.Encoding.UTF8.GetByteCount(name) > 255) return $"'{name}' is longer than 255 bytes";
        return null;
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming the problem when the name is invalid.</summary>
    public static void ThrowIfInvalid(string? name)
    {
        var problem = Validate(name);
        if (problem != null)
            throw new ArgumentException($"Invalid network namespace name: {problem}. Use a non-empty name without '/', white space or control characters, at most 255 bytes.", nameof(name));
    }

    /// <summary>Whether /run/netns/NAME exists and holds a live namespace.</summary>
    public static bool Exists(string name) => Validate(name) == null && Describe(name) is { IsMounted: true };

    /// <summary>Creates and pins a new network namespace, like `ip netns add`. Nothing is left behind on failure.</summary>
    public static NamespaceInfo Create(string name)
    {
        ThrowIfInvalid(name);
        EnsureRunDirectory();
        string path = PathOf(name);
        int fd = Native.open(path, Native.O_RDONLY | Native.O_CREAT | Native.O_EXCL | Native.O_CLOEXEC, 0);
        if (fd < 0)
        {
            int errno = Native.LastErrno;
            if (errno == 17) throw new NetlinkException(errno, $"create network namespace '{name}' (it already exists; remove it first or pick another name)");
            throw new NetlinkException(errno, $"create network namespace '{name}' ({path})");
        }
        Native.close(fd);
        try
        {
            NamespaceThread.RunOnDedicatedThread(() =>
            {
                using var saved = NamespaceThread.OpenOwnNamespace();
                if (Native.unshare(Native.CLONE_NEWNET) < 0)
                    throw SyscallException.FromLastError($"create network namespace '{name}' (unshare)");
                try
                {
                    // thread-self: /proc/self/ns/net would be the main thread's namespace
                    if (Native.mount("/proc/thread-self/ns/net", path, "none", Native.MS_BIND, IntPtr.Zero) < 0)
                        throw SyscallException.FromLastError($"pin network namespace '{name}' on {path}");
                }
                finally
                {
                    if (Native.setns(saved.Fd, Native.CLONE_NEWNET) < 0)
                        Environment.FailFast("NvRedirect: could not leave a new namespace.");
                }
                return 0;
            });
        }
        catch
        {
            Native.umount2(path, Native.MNT_DETACH);
            Native.unlink(path);
            throw;
        }
        return Describe(name) ?? throw new InvalidOperationException($"Namespace '{name}' vanished right after creation.");
    }

    /// <summary>Unpins a namespace, like `ip netns del`. The kernel frees it once nothing else holds it.</summary>
    public static void Delete(string name)
    {
        ThrowIfInvalid(name);
        string path = PathOf(name);
        if (!File.Exists(path))
            throw new NetlinkException(2, $"remove network namespace '{name}' (there is no {path})");
        if (Native.umount2(path, Native.MNT_DETACH) < 0 && Native.LastErrno != 22)
            throw SyscallException.FromLastError($"unmount {path}");
        if (Native.unlink(path) < 0)
            throw SyscallException.FromLastError($"remove {path}");
    }

    /// <summary>Every entry of /run/netns, ours and iproute2's alike, sorted by name.</summary>
    public static List<NamespaceInfo> List()
    {
        var result = new List<NamespaceInfo>();
        if (!Directory.Exists(RunDirectory)) return result;
        foreach (var file in Directory.EnumerateFiles(RunDirectory).Order(StringComparer.Ordinal))
        {
            var info = Describe(System.IO.Path.GetFileName(file));
            if (info != null) result.Add(info);
        }
        return result;
    }

    /// <summary>Facts about one named namespace, or null when there is no such entry.</summary>
    public static NamespaceInfo? Describe(string name)
    {
        string path = PathOf(name);
        if (!File.Exists(path)) return null;
        ulong nsfsDevice = DeviceOf("/proc/self/ns/net", out _);
        ulong device = DeviceOf(path, out ulong inode);
        bool mounted = device != 0 && device == nsfsDevice;
        return new NamespaceInfo(name, path, mounted ? inode : 0, mounted);
    }

    /// <summary>The message for a name that denotes no live namespace (one text for every caller).</summary>
    public static string MissingMessage(string name)
        => $"Network namespace '{name}' does not exist (no live /run/netns/{name}); create it with New-AgentNamespace or check the name with Get-AgentNamespace";

    /// <summary>Whether a file is an nsfs file (a namespace: /proc/PID/ns/net or a bind mount of one), by its device.</summary>
    public static bool IsNamespaceFile(string path)
    {
        ulong device = DeviceOf(path, out _);
        return device != 0 && device == DeviceOf("/proc/self/ns/net", out _);
    }

    /// <summary>The nsfs inode of the calling thread's network namespace (what `ls -L /proc/self/ns/net` shows).</summary>
    public static ulong CurrentInode()
    {
        DeviceOf("/proc/thread-self/ns/net", out ulong inode);
        return inode;
    }

    private static ulong DeviceOf(string path, out ulong inode)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        stat st;
        fixed (byte* p = bytes)
        {
            if (LibC.stat(p, &st) < 0) { inode = 0; return 0; }
        }
        inode = (ulong)st.st_ino;
        return (ulong)st.st_dev;
    }

    /// <summary>
    /// Makes /run/netns a shared mount point as iproute2 does, so an unmount in any mount namespace propagates
    /// (docs/kernel-interfaces.md, "Namespaces"); serialised with iproute2 by flock on the directory.
    /// </summary>
    private static void EnsureRunDirectory()
    {
        if (Native.mkdir(RunDirectory, 0x1ed /* 0755 */) < 0 && Native.LastErrno != 17)
            throw SyscallException.FromLastError($"create {RunDirectory}");
        int dir = Native.open(RunDirectory, Native.O_RDONLY | Native.O_DIRECTORY | Native.O_CLOEXEC, 0);
        if (dir < 0) throw SyscallException.FromLastError($"open {RunDirectory}");
        using var dirFd = new SafeFd(dir);
        Native.flock(dir, Native.LOCK_EX);
        try
        {
            bool bound = false;
            while (Native.mount("", RunDirectory, "none", Native.MS_SHARED | Native.MS_REC, IntPtr.Zero) < 0)
            {
                if (Native.LastErrno != 22 || bound)
                    throw SyscallException.FromLastError($"make {RunDirectory} a shared mount");
                if (Native.mount(RunDirectory, RunDirectory, "none", Native.MS_BIND | Native.MS_REC, IntPtr.Zero) < 0)
                    throw SyscallException.FromLastError($"bind-mount {RunDirectory} on itself");
                bound = true;
            }
        }
        finally { Native.flock(dir, Native.LOCK_UN); }
    }
}

/// <summary>One named network namespace.</summary>
/// <param name="Name">The name under /run/netns.</param>
/// <param name="Path">/run/netns/NAME.</param>
/// <param name="Inode">The namespace's nsfs inode (its identity), 0 when not mounted.</param>
/// <param name="IsMounted">False for a stale entry that pins no namespace.</param>
public sealed record NamespaceInfo(string Name, string Path, ulong Inode, bool IsMounted);

/// <summary>A namespace path that is not a network namespace (missing, or not an nsfs file).</summary>
public sealed class NamespacePathException(string path)
        : Netlink.NetlinkException(2, "open network namespace", null, $"'{path}' is not a network namespace: give /proc/PID/ns/net of a running process, a /run/netns entry or another bind mount of one")
{
    /// <summary>The path.</summary>
    public string Path { get; } = path;
}
