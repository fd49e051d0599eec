using System;
using System.Buffers.Binary;
using System.Text;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using Tmds.Linux;
using static Tmds.Linux.LibC;

using NvRedirect.Core.Datapath;

namespace NvRedirect.Datapath.Control;

/// <summary>The control socket cannot be taken: another daemon serves it, or the path is not ours to replace.</summary>
internal sealed class ControlSocketException(string message) : Exception(message);

/// <summary>
/// dp's command socket: AF_UNIX SOCK_DGRAM bound to a filesystem path (namespace-independent), mode 0600 (0660 with a
/// control group). The daemon first takes the path's pid lock (<see cref="DatapathLock"/>): a live daemon holds it, so
/// failing to take it means another nvr-dp serves the path (refused). With the lock, an existing path is examined: a
/// symlink, a non-socket or a socket not owned by root is never touched; a root-owned socket is replaced when it is the
/// one the dead predecessor recorded (same inode) or nothing is bound to it; a socket something else is bound to is
/// refused. No keep-alive decides anything (anyone can answer one). Every datagram carries its sender's credentials
/// (SO_PASSCRED): only root and the control group may command the daemon. Replies go to each request's own sender
/// address, with the exact address length recvfrom reported (abstract names included).
/// </summary>
internal sealed unsafe class ControlSocket : IDisposable
{
    /// <summary>sizeof(struct sockaddr_un).</summary>
    public const int AddressSize = 110;
    private const int PathCapacity = 108;
    private const int SO_PASSCRED = 16, SCM_CREDENTIALS = 2;

    private readonly SafeFd _fd;
    private readonly DatapathLock _lock;
    private readonly ulong _device, _inode;
    private bool _disposed;

    /// <summary>The bound path.</summary>
    public string Path { get; }
    /// <summary>The socket descriptor (poll it for POLLIN).</summary>
    public int Fd => _fd.Fd;
    /// <summary>The group besides root whose members may send commands (null: root only).</summary>
    public int? ControlGroup { get; }

    private ControlSocket(SafeFd fd, DatapathLock held, string path, ulong device, ulong inode, int? group)
    {
        _fd = fd; _lock = held; Path = path; _device = device; _inode = inode; ControlGroup = group;
    }

    /// <summary>Binds <paramref name="path"/> after making sure no live daemon owns it; <paramref name="group"/> may send commands besides root.</summary>
    public static ControlSocket Bind(string path, Logger log, int? group = null)
    {
        path = System.IO.Path.GetFullPath(path);
        if (Encoding.UTF8.GetByteCount(path) >= PathCapacity) throw new ControlSocketException($"control socket path {path} is longer than {PathCapacity - 1} bytes");
        DatapathLock? held;
        int? owner;
        try { held = DatapathLock.TryAcquire(path, out owner); }
        catch (Exception e) when (e is UnsafeDirectoryException or System.IO.IOException) { throw new ControlSocketException(e.Message); }
        if (held == null)
            throw new ControlSocketException($"another datapath daemon is serving {path} (nvr-dp pid {owner?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"} holds its lock {DatapathPaths.LockFile(path)})");
        try { return BindLocked(path, log, group, held); }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    private static ControlSocket BindLocked(string path, Logger log, int? group, DatapathLock held)
    {
        if (Inspect(path) is { } st)
        {
            if (S_ISLNK(st.st_mode)) throw new ControlSocketException($"{path} is a symbolic link; refusing to use or replace it");
            if (!S_ISSOCK(st.st_mode)) throw new ControlSocketException($"{path} exists and is not a socket; refusing to replace it");
            if (st.st_uid != 0) throw new ControlSocketException($"{path} is a socket of uid {st.st_uid}, not root's: someone else put it there; refusing to use or replace it (remove it if you know whose it is)");
            string why;
            if (held.Previous is { } p && p.Device == (ulong)st.st_dev && p.Inode == (ulong)st.st_ino) why = $"left by nvr-dp pid {p.Pid}, which is gone";
            else if (Connectable(path) == ECONNREFUSED) why = "nobody is bound to it";
            else throw new ControlSocketException($"a process that is not nvr-dp (it holds no lock) is bound to {path}; refusing to take it over");
            log.Info($"replacing stale control socket {path} ({why})");
            if (UnlinkPath(path) < 0 && Native.LastErrno != ENOENT) throw SyscallException.FromLastError($"remove stale socket {path}");
        }

        int raw = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (raw < 0) throw SyscallException.FromLastError("open the control socket");
        var fd = new SafeFd(raw);
        try
        {
            // the socket inode's mode is what bind() gives the path (minus umask): 0600 from the first instant
            if (fchmod(fd.Fd, (mode_t)0x180) < 0) throw SyscallException.FromLastError("set the control socket's mode");
            int on = 1;
            if (setsockopt(fd.Fd, SOL_SOCKET, SO_PASSCRED, &on, 4) < 0) throw SyscallException.FromLastError("ask for the senders' credentials (SO_PASSCRED)");
            byte* addr = stackalloc byte[AddressSize];
            int addrLength = FillAddress(addr, path);
            if (bind(fd.Fd, (sockaddr*)addr, (uint)addrLength) < 0)
            {
                int errno = Native.LastErrno;
                if (errno == EADDRINUSE) throw new ControlSocketException($"{path} was created by someone else while nvr-dp was starting; refusing to replace it");
                throw new SyscallException(errno, $"bind the control socket {path}");
            }
            var bound = Inspect(path) ?? throw new ControlSocketException($"{path} vanished right after bind");
            if (((uint)bound.st_mode & 0x1ff) != 0x180 && ChmodPath(path, 0x180) < 0)
                throw SyscallException.FromLastError($"restrict {path} to mode 0600");
            if (group is int g)
            {
                // the group may connect (write permission on the socket file); its datagrams pass the credentials check
                fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
                    if (lchown(p, 0, (uint)g) < 0) throw SyscallException.FromLastError($"give {path} to group {g}");
                if (ChmodPath(path, 0x1b0) < 0) throw SyscallException.FromLastError($"open {path} to group {g} (mode 0660)");
            }
            held.Record((ulong)bound.st_dev, (ulong)bound.st_ino);
            int size = 1 << 20;
            setsockopt(fd.Fd, SOL_SOCKET, SO_RCVBUF, &size, 4);
            // replies are sent blocking, at most this long each: a long session list outruns the client's receive
            // queue (10 datagrams by default), and a client that stops reading must not stall the control thread
            long* timeout = stackalloc long[2]; // struct timeval
            timeout[0] = ReplyTimeoutSeconds;
            timeout[1] = 0;
            setsockopt(fd.Fd, SOL_SOCKET, SO_SNDTIMEO, timeout, 16);
            return new ControlSocket(fd, held, path, (ulong)bound.st_dev, (ulong)bound.st_ino, group);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Receives one datagram into <paramref name="buffer"/>; returns its true length (may exceed the buffer: the rest
    /// was cut), or -1 when nothing was waiting. The sender's address lands in <paramref name="sender"/>, the sender's
    /// credentials (as the kernel vouches for them) in <paramref name="credentials"/>.
    /// </summary>
    public int Receive(Span<byte> buffer, Span<byte> sender, out int senderLength, out SenderCredentials credentials)
    {
        credentials = SenderCredentials.Unknown;
        const int ControlSize = 64; // CMSG_SPACE(sizeof(struct ucred)) = 32
        byte* control = stackalloc byte[ControlSize];
        long n;
        msghdr msg;
        iovec iov = default;
        fixed (byte* b = buffer) fixed (byte* a = sender)
        {
            iov.iov_base = b;
            iov.iov_len = (size_t)buffer.Length;
            msg = new msghdr
            {
                msg_name = a, msg_namelen = (socklen_t)Math.Min(sender.Length, AddressSize), msg_iov = &iov, msg_iovlen = 1,
                msg_control = control, msg_controllen = (socklen_t)ControlSize,
            };
            n = recvmsg(_fd.Fd, &msg, MSG_TRUNC | MSG_DONTWAIT);
        }
        senderLength = (int)msg.msg_namelen;
        if (n < 0)
        {
            int errno = Native.LastErrno;
            if (errno == EAGAIN || errno == EINTR) return -1;
            throw new SyscallException(errno, "receive a control request");
        }
        // struct cmsghdr { size_t len; int level; int type; } then struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        long used = (uint)msg.msg_controllen;
        for (long at = 0; at + 16 <= used;)
        {
            long len = *(long*)(control + at);
            int level = *(int*)(control + at + 8), type = *(int*)(control + at + 12);
            if (len < 16) break;
            if (level == SOL_SOCKET && type == SCM_CREDENTIALS && len >= 16 + 12)
                credentials = new SenderCredentials(*(int*)(control + at + 16), *(uint*)(control + at + 20), *(uint*)(control + at + 24));
            at += (len + 7) & ~7L;
        }
        return (int)n;
    }

    /// <summary>Whether <paramref name="credentials"/> may command this daemon: root, or a member (by primary group) of <see cref="ControlGroup"/>.</summary>
    public bool Admits(SenderCredentials credentials)
        => credentials.Known && (credentials.Uid == 0 || (ControlGroup is int g && credentials.Gid == (uint)g));

    /// <summary>How long one reply may wait for room in the client's receive queue.</summary>
    public const int ReplyTimeoutSeconds = 2;

    /// <summary>
    /// Sends <paramref name="data"/> to <paramref name="address"/>, waiting up to <see cref="ReplyTimeoutSeconds"/> while
    /// the client's queue is full; returns 0 or errno (EAGAIN when the client did not read in time).
    /// </summary>
    public int SendTo(ReadOnlySpan<byte> data, ReadOnlySpan<byte> address)
    {
        fixed (byte* d = data) fixed (byte* a = address)
            while (true)
            {
                if (sendto(_fd.Fd, d, data.Length, 0, (sockaddr*)a, (uint)address.Length) >= 0) return 0;
                int errno = Native.LastErrno;
                if (errno != EINTR) return errno;
            }
    }

    /// <summary>A sender address as text: the path, "@name" for an abstract one, or "(unbound)".</summary>
    public static string DescribeAddress(ReadOnlySpan<byte> address)
    {
        if (address.Length <= 2) return "(unbound)";
        var path = address[2..];
        if (path[0] == 0) return "@" + Encoding.UTF8.GetString(path[1..]).Replace('\0', '@');
        int end = path.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? path : path[..end]);
    }

    private static int FillAddress(byte* addr, string path)
    {
        new Span<byte>(addr, AddressSize).Clear();
        *(ushort*)addr = (ushort)AF_UNIX;
        int n = Encoding.UTF8.GetBytes(path, new Span<byte>(addr + 2, PathCapacity - 1));
        return 2 + n + 1;
    }

    private static stat? Inspect(string path)
    {
        stat st;
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
            if (lstat(p, &st) < 0)
            {
                if (Native.LastErrno == ENOENT) return null;
                throw SyscallException.FromLastError($"examine {path}");
            }
        return st;
    }

    private static int UnlinkPath(string path) => Native.unlink(path);

    // connect() from a fresh socket: 0 when something is bound to the path, else errno (ECONNREFUSED: nobody is)
    private static int Connectable(string path)
    {
        int raw = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (raw < 0) throw SyscallException.FromLastError("open a socket to examine the control path");
        using var fd = new SafeFd(raw);
        byte* addr = stackalloc byte[AddressSize];
        int length = FillAddress(addr, path);
        return connect(fd.Fd, (sockaddr*)addr, (uint)length) == 0 ? 0 : Native.LastErrno;
    }

    private static int ChmodPath(string path, uint mode)
    {
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0")) return chmod(p, (mode_t)mode);
    }

    /// <summary>Closes the socket and removes its path, unless the path now names another socket.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _fd.Dispose();
        var st = Inspect(Path);
        if (st is { } s && S_ISSOCK(s.st_mode) && (ulong)s.st_ino == _inode && (ulong)s.st_dev == _device) UnlinkPath(Path);
        _lock.Dispose();
    }
}

/// <summary>A control datagram's sender as the kernel reports it (SCM_CREDENTIALS).</summary>
internal readonly record struct SenderCredentials(int Pid, uint Uid, uint Gid)
{
    public static readonly SenderCredentials Unknown = new(-1, uint.MaxValue, uint.MaxValue);
    public bool Known => Pid >= 0;
    public override string ToString() => Known ? $"pid {Pid} uid {Uid} gid {Gid}" : "unknown sender (no credentials)";
}
