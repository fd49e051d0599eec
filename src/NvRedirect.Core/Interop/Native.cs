using System;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace NvRedirect.Core.Interop;

/// <summary>
/// The few syscalls and constants Tmds.LibC lacks, plus errno helpers. Everything here is a thin,
/// allocation-free wrapper: callers turn failures into exceptions with errno.
/// </summary>
public static unsafe partial class Native
{
    public const int NETLINK_ROUTE = 0;
    public const int SOL_NETLINK = 270;
    public const int NETLINK_EXT_ACK = 11;
    public const int NETLINK_GET_STRICT_CHK = 12;
    public const int NETLINK_CAP_ACK = 10;

    public const int CLONE_NEWNET = 0x40000000;
    public const ulong MS_BIND = 0x1000, MS_REC = 0x4000, MS_SHARED = 0x100000;
    public const int MNT_DETACH = 2;

    /// <summary>errno of the last libc call on this thread (Tmds.LibC sets SetLastError).</summary>
    public static int LastErrno => Marshal.GetLastPInvokeError();

    [LibraryImport("libc.so.6", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mount(string source, string target, string fstype, ulong flags, IntPtr data);

    [LibraryImport("libc.so.6", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int umount2(string target, int flags);

    [LibraryImport("libc.so.6", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags, int mode);

    [LibraryImport("libc.so.6", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int unlink(string path);

    [LibraryImport("libc.so.6", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mkdir(string path, int mode);

    [LibraryImport("libc.so.6", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rmdir(string path);

    [LibraryImport("libc.so.6", SetLastError = true)]
    public static partial int flock(int fd, int operation);

    [LibraryImport("libc.so.6", SetLastError = true)]
    public static partial int setns(int fd, int nstype);

    [LibraryImport("libc.so.6", SetLastError = true)]
    public static partial int unshare(int flags);

    [LibraryImport("libc.so.6", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc.so.6", SetLastError = true)]
    public static partial int geteuid();

    /// <summary>poll(2) with errno captured: Tmds.LibC's poll leaves the last P/Invoke error untouched, so EINTR
    /// after it cannot be told from a stale errno. <paramref name="fds"/> points at Tmds.Linux.pollfd records.</summary>
    [LibraryImport("libc.so.6", SetLastError = true)]
    public static partial int poll(void* fds, ulong nfds, int timeout);

    /// <summary>syscall(2) with three arguments (integer arguments travel in registers, so a fixed signature is safe on x86_64).</summary>
    [LibraryImport("libc.so.6", SetLastError = true)]
    public static partial long syscall(long number, long arg1, long arg2, long arg3);

    /// <summary>bpf(2) on x86_64 (docs/kernel-interfaces.md, "BPF maps").</summary>
    public const int SYS_bpf = 321;

    /// <summary>bpf(2): <paramref name="cmd"/> with an attr block of <paramref name="size"/> bytes; the result (an fd or 0), or -1 with errno.</summary>
    public static long Bpf(int cmd, void* attr, int size) => syscall(SYS_bpf, cmd, (long)attr, size);

    public const int O_RDONLY = 0, O_CLOEXEC = 0x80000, O_CREAT = 0x40, O_EXCL = 0x80, O_DIRECTORY = 0x10000;
    public const int LOCK_EX = 2, LOCK_UN = 8;

    /// <summary>strerror text for an errno value, e.g. "No such device".</summary>
    public static string StrError(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    /// <summary>Symbolic errno name (ENOENT...) for messages; falls back to the number.</summary>
    public static string ErrnoName(int errno) => errno switch
    {
        1 => "EPERM", 2 => "ENOENT", 3 => "ESRCH", 4 => "EINTR", 9 => "EBADF", 12 => "ENOMEM", 13 => "EACCES",
        16 => "EBUSY", 17 => "EEXIST", 19 => "ENODEV", 22 => "EINVAL", 24 => "EMFILE", 28 => "ENOSPC",
        34 => "ERANGE", 36 => "ENAMETOOLONG", 90 => "EMSGSIZE", 93 => "EPROTONOSUPPORT", 95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT", 98 => "EADDRINUSE", 99 => "EADDRNOTAVAIL", 105 => "ENOBUFS", 110 => "ETIMEDOUT",
        _ => "errno " + errno,
    };
}
