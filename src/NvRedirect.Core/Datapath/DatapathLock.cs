using System;
using System.Globalization;
using System.IO;
using System.Text;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using static Tmds.Linux.LibC;

namespace NvRedirect.Core.Datapath;

/// <summary>
/// Where nvr-dp keeps what only root may touch: /run/nvredirect, a root-owned 0700 directory holding the default
/// control sockets (one per datapath, named after its namespace), each daemon's pid lock, its state file and the
/// clients' reply sockets. /run is root's and not world-writable, so nobody else can create, squat or reach anything here.
/// </summary>
public static unsafe class DatapathPaths
{
    /// <summary>The private directory.</summary>
    public const string Directory = "/run/nvredirect";
    /// <summary>Where client reply sockets are bound: this prefix, the process id, a random suffix.</summary>
    public const string ClientPrefix = Directory + "/client.";

    /// <summary>The default control socket of the datapath for namespace <paramref name="ns"/> ("" = the root namespace).</summary>
    public static string DefaultSocket(string ns) => ns.Length == 0 ? Directory + "/dp.sock" : $"{Directory}/dp-{ns}.sock";

    /// <summary>The pid lock of the daemon serving <paramref name="socketPath"/> (an absolute path): next to a socket in the
    /// private directory, else the socket's path escaped into a file name there.</summary>
    public static string LockFile(string socketPath) => Companion(socketPath, ".pid");

    /// <summary>The state file of the daemon serving <paramref name="socketPath"/>.</summary>
    public static string StateFile(string socketPath) => Companion(socketPath, ".state");

    private static string Companion(string socketPath, string suffix)
    {
        if (Path.GetDirectoryName(socketPath) == Directory) return socketPath + suffix;
        // "%2F..." never collides with a socket's own name there (those are dp*.sock or client.*)
        return Directory + "/" + socketPath.Replace("%", "%25", StringComparison.Ordinal).Replace("/", "%2F", StringComparison.Ordinal) + suffix;
    }

    /// <summary>
    /// Creates the directory (mode 0700, atomically by mkdir) or checks the one there: a real directory, owned by root,
    /// with no access for group or others (a root-owned one with a wider mode is narrowed). Throws with the reason otherwise.
    /// </summary>
    public static void Ensure()
    {
        if (Native.mkdir(Directory, 0x1c0) < 0 && Native.LastErrno != EEXIST)
        {
            int errno = Native.LastErrno;
            throw new SyscallException(errno, errno == EACCES || errno == EPERM
                ? $"create {Directory} (only root can run or reach nvr-dp)" : $"create {Directory}");
        }
        Tmds.Linux.stat st;
        fixed (byte* p = Encoding.UTF8.GetBytes(Directory + "\0"))
            if (lstat(p, &st) < 0) throw SyscallException.FromLastError($"examine {Directory}");
        if (!S_ISDIR(st.st_mode)) throw new UnsafeDirectoryException($"{Directory} is not a directory (a symbolic link or a file?); remove it so nvr-dp can create its private directory");
        if (st.st_uid != 0) throw new UnsafeDirectoryException($"{Directory} is owned by uid {st.st_uid}, not root; remove it so nvr-dp can create its private directory");
        if (((uint)st.st_mode & 0x3f) != 0)
            fixed (byte* p = Encoding.UTF8.GetBytes(Directory + "\0"))
                if (chmod(p, (Tmds.Linux.mode_t)0x1c0) < 0) throw SyscallException.FromLastError($"restrict {Directory} to mode 0700");
    }
}

/// <summary>The private directory is not safe to use.</summary>
public sealed class UnsafeDirectoryException(string message) : Exception(message);

/// <summary>
/// A daemon's claim on its control socket: an flock'd pid file (<see cref="DatapathPaths.LockFile"/>), held for the
/// daemon's life and released by the kernel when it dies, however it dies. It records the pid and the socket's inode, so
/// a successor knows whether the socket file it finds is the one its dead predecessor bound. Whether a live nvr-dp
/// owns a socket is decided by this lock, never by who answers on the socket.
/// </summary>
public sealed class DatapathLock : IDisposable
{
    private readonly SafeFd _fd;
    private bool _disposed;

    /// <summary>The lock file.</summary>
    public string Path { get; }
    /// <summary>What the previous holder recorded (its pid, the device and inode of the socket it bound), if anything.</summary>
    public (int Pid, ulong Device, ulong Inode)? Previous { get; }

    private DatapathLock(SafeFd fd, string path, (int, ulong, ulong)? previous) { _fd = fd; Path = path; Previous = previous; }

    /// <summary>Takes the lock for <paramref name="socketPath"/>; null when a live process holds it (<paramref name="owner"/> its recorded pid).</summary>
    public static DatapathLock? TryAcquire(string socketPath, out int? owner)
    {
        DatapathPaths.Ensure();
        string path = DatapathPaths.LockFile(socketPath);
        owner = null;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            int raw = Native.open(path, 2 /* O_RDWR */ | Native.O_CREAT | Native.O_CLOEXEC | 0x20000 /* O_NOFOLLOW */, 0x180);
            if (raw < 0) throw SyscallException.FromLastError($"open the lock {path}");
            var fd = new SafeFd(raw);
            if (Native.flock(fd.Fd, Native.LOCK_EX | LockNonBlocking) < 0)
            {
                int errno = Native.LastErrno;
                owner = Read(fd)?.Pid;
                fd.Dispose();
                if (errno == EWOULDBLOCK) return null;
                throw new SyscallException(errno, $"lock {path}");
            }
            // the holder before us may have removed the file between our open and flock: then our lock is on a dead inode
            if (SameFile(fd, path)) return new DatapathLock(fd, path, Read(fd));
            fd.Dispose();
        }
        throw new IOException($"the lock {path} keeps being replaced while taking it");
    }

    /// <summary>The pid of the live process holding the lock for <paramref name="socketPath"/>, or null when nobody holds it.</summary>
    public static int? Owner(string socketPath)
    {
        string path = DatapathPaths.LockFile(socketPath);
        int raw = Native.open(path, Native.O_RDONLY | Native.O_CLOEXEC | 0x20000, 0);
        if (raw < 0) return null;
        using var fd = new SafeFd(raw);
        if (Native.flock(fd.Fd, LockShared | LockNonBlocking) == 0) return null;
        return Native.LastErrno == EWOULDBLOCK ? Read(fd)?.Pid ?? 0 : null;
    }

    /// <summary>Records this process and the socket it bound.</summary>
    public unsafe void Record(ulong device, ulong inode)
    {
        var text = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId} {device} {inode}\n"));
        ftruncate(_fd.Fd, 0);
        fixed (byte* t = text) if (pwrite(_fd.Fd, t, text.Length, 0) != text.Length) throw SyscallException.FromLastError($"write {Path}");
    }

    private const int LockShared = 1, LockNonBlocking = 4;

    private static unsafe (int Pid, ulong Device, ulong Inode)? Read(SafeFd fd)
    {
        byte* b = stackalloc byte[128];
        long n = pread(fd.Fd, b, 127, 0);
        if (n <= 0) return null;
        var parts = Encoding.ASCII.GetString(b, (int)n).Trim().Split(' ');
        return parts.Length == 3 && int.TryParse(parts[0], CultureInfo.InvariantCulture, out int pid)
            && ulong.TryParse(parts[1], CultureInfo.InvariantCulture, out ulong dev) && ulong.TryParse(parts[2], CultureInfo.InvariantCulture, out ulong ino)
            ? (pid, dev, ino) : null;
    }

    private static unsafe bool SameFile(SafeFd fd, string path)
    {
        Tmds.Linux.stat a, b;
        if (fstat(fd.Fd, &a) < 0) return false;
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
            if (lstat(p, &b) < 0) return false;
        return a.st_ino == b.st_ino && a.st_dev == b.st_dev;
    }

    /// <summary>Removes the lock file and lets go of the lock.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (SameFile(_fd, Path)) Native.unlink(Path); // removed while held: a successor re-checks the inode after its flock
        _fd.Dispose();
    }
}
