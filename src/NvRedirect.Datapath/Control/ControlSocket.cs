using System;
using System.Buffers.Binary;
using System.Text;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using Tmds.Linux;
using static Tmds.Linux.LibC;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Control;

/// <summary>The control socket cannot be taken: another daemon serves it, or the path is not ours to replace.</summary>
internal sealed class ControlSocketException(string message) : Exception(message);

/// <summary>
/// dp's command socket: AF_UNIX SOCK_DGRAM bound to a filesystem path (namespace-independent), mode 0600. Before
/// binding, an existing path is examined: a symlink or a non-socket is never touched; a socket that answers a
/// keep-alive belongs to a running daemon (refused); a socket nobody is bound to is stale and replaced. Replies go to
/// each request's own sender address, with the exact address length recvfrom reported (abstract names included).
/// </summary>
internal sealed unsafe class ControlSocket : IDisposable
{
    /// <summary>sizeof(struct sockaddr_un).</summary>
    public const int AddressSize = 110;
    private const int PathCapacity = 108;

    private readonly SafeFd _fd;
    private readonly ulong _device, _inode;
    private bool _disposed;

    /// <summary>The bound path.</summary>
    public string Path { get; }
    /// <summary>The socket descriptor (poll it for POLLIN).</summary>
    public int Fd => _fd.Fd;

    private ControlSocket(SafeFd fd, string path, ulong device, ulong inode) { _fd = fd; Path = path; _device = device; _inode = inode; }

    /// <summary>Binds <paramref name="path"/> after making sure no live daemon owns it.</summary>
    public static ControlSocket Bind(string path, Logger log)
    {
        if (Encoding.UTF8.GetByteCount(path) >= PathCapacity) throw new ControlSocketException($"control socket path {path} is longer than {PathCapacity - 1} bytes");
        var existing = Inspect(path);
        if (existing is { } st)
        {
            if (S_ISLNK(st.st_mode)) throw new ControlSocketException($"{path} is a symbolic link; refusing to use or replace it");
            if (!S_ISSOCK(st.st_mode)) throw new ControlSocketException($"{path} exists and is not a socket; refusing to replace it");
            switch (KeepAliveProbe.Run(path, TimeSpan.FromSeconds(1)))
            {
                case DpProbe.Answered: throw new ControlSocketException($"another datapath daemon is serving {path} (it answered a keep-alive)");
                case DpProbe.Silent: throw new ControlSocketException($"a process is bound to {path} but did not answer a keep-alive; refusing to take it over");
                case DpProbe.Stale or DpProbe.Missing: // Missing: it went away since we looked
                    log.Info($"replacing stale control socket {path} (nobody is bound to it)");
                    if (UnlinkPath(path) < 0 && Native.LastErrno != ENOENT) throw SyscallException.FromLastError($"remove stale socket {path}");
                    break;
            }
        }

        int raw = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (raw < 0) throw SyscallException.FromLastError("open the control socket");
        var fd = new SafeFd(raw);
        try
        {
            // the socket inode's mode is what bind() gives the path (minus umask): 0600 from the first instant
            if (fchmod(fd.Fd, (mode_t)0x180) < 0) throw SyscallException.FromLastError("set the control socket's mode");
            byte* addr = stackalloc byte[AddressSize];
            int addrLength = FillAddress(addr, path);
            if (bind(fd.Fd, (sockaddr*)addr, (uint)addrLength) < 0)
            {
                int errno = Native.LastErrno;
                if (errno == EADDRINUSE) throw new ControlSocketException($"{path} was created by someone else while starting; another daemon is starting?");
                throw new SyscallException(errno, $"bind the control socket {path}");
            }
            var bound = Inspect(path) ?? throw new ControlSocketException($"{path} vanished right after bind");
            if (((uint)bound.st_mode & 0x1ff) != 0x180 && ChmodPath(path, 0x180) < 0)
                throw SyscallException.FromLastError($"restrict {path} to mode 0600");
            int size = 1 << 20;
            setsockopt(fd.Fd, SOL_SOCKET, SO_RCVBUF, &size, 4);
            // replies are sent blocking, at most this long each: a long session list outruns the client's receive
            // queue (10 datagrams by default), and a client that stops reading must not stall the control thread
            long* timeout = stackalloc long[2]; // struct timeval
            timeout[0] = ReplyTimeoutSeconds;
            timeout[1] = 0;
            setsockopt(fd.Fd, SOL_SOCKET, SO_SNDTIMEO, timeout, 16);
            return new ControlSocket(fd, path, (ulong)bound.st_dev, (ulong)bound.st_ino);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Receives one datagram into <paramref name="buffer"/>; returns its true length (may exceed the buffer: the rest
    /// was cut), or -1 when nothing was waiting. The sender's address lands in <paramref name="sender"/>.
    /// </summary>
    public int Receive(Span<byte> buffer, Span<byte> sender, out int senderLength)
    {
        uint length = (uint)Math.Min(sender.Length, AddressSize);
        long n;
        fixed (byte* b = buffer) fixed (byte* a = sender)
            n = recvfrom(_fd.Fd, b, buffer.Length, MSG_TRUNC | MSG_DONTWAIT, (sockaddr*)a, (socklen_t*)&length);
        senderLength = (int)length;
        if (n >= 0) return (int)n;
        int errno = Native.LastErrno;
        if (errno == EAGAIN || errno == EINTR) return -1;
        throw new SyscallException(errno, "receive a control request");
    }

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
    }
}
