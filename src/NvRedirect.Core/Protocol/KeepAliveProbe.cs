using System;
using System.Diagnostics;
using System.Text;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Core.Protocol;

/// <summary>
/// The one keep-alive probe of a control socket path, used by the daemon before it binds a path (is another daemon
/// there?) and by the module (is a datapath there? is the socket stale?). It sends ctrl_keep_alive from an autobound
/// socket (an abstract name: it leaves no file) without blocking and waits for the answer with the same sequence number.
/// The judgement:
/// <list type="bullet">
/// <item>ENOENT or ENOTDIR: <see cref="DpProbe.Missing"/> (no such path);</item>
/// <item>ECONNREFUSED: <see cref="DpProbe.Stale"/> (a socket file nothing is bound to: what a killed daemon leaves; the only
/// result that allows removing the path);</item>
/// <item>EAGAIN: <see cref="DpProbe.Silent"/> (something is bound but its queue is full: it is not reading, so it did not
/// answer; it is alive, so its path is never taken over);</item>
/// <item>no answer within the wait: <see cref="DpProbe.Silent"/>; the answer: <see cref="DpProbe.Answered"/>.</item>
/// </list>
/// </summary>
public static unsafe class KeepAliveProbe
{
    private const int AddressSize = 110, PathCapacity = 108;

    /// <summary>Probes <paramref name="path"/>, waiting up to <paramref name="wait"/> for the answer.</summary>
    public static DpProbe Run(string path, TimeSpan wait)
    {
        if (Encoding.UTF8.GetByteCount(path) >= PathCapacity) return DpProbe.Missing; // no socket can be bound there
        int raw = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (raw < 0) throw SyscallException.FromLastError("open a socket to probe the control path");
        using var fd = new SafeFd(raw);
        ushort family = (ushort)AF_UNIX;
        if (bind(fd.Fd, (sockaddr*)&family, 2) < 0) throw SyscallException.FromLastError("autobind the probe socket");
        uint seq = (uint)Random.Shared.Next(1, int.MaxValue);
        var request = Datagram.Of(new KeepAliveRequest(seq));
        byte* addr = stackalloc byte[AddressSize];
        new Span<byte>(addr, AddressSize).Clear();
        *(ushort*)addr = (ushort)AF_UNIX;
        int addrLength = 2 + Encoding.UTF8.GetBytes(path, new Span<byte>(addr + 2, PathCapacity - 1)) + 1;
        fixed (byte* r = request)
            while (sendto(fd.Fd, r, request.Length, MSG_DONTWAIT, (sockaddr*)addr, (uint)addrLength) < 0)
            {
                int errno = Native.LastErrno;
                if (errno == EINTR) continue;
                if (errno == ENOENT || errno == ENOTDIR) return DpProbe.Missing;
                if (errno == ECONNREFUSED) return DpProbe.Stale;
                if (errno == EAGAIN) return DpProbe.Silent;
                throw new SyscallException(errno, $"probe {path}");
            }
        long deadline = Stopwatch.GetTimestamp() + (long)(wait.TotalSeconds * Stopwatch.Frequency);
        var reply = stackalloc byte[64];
        while (true)
        {
            long left = (deadline - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
            if (left <= 0) return DpProbe.Silent;
            var pfd = new pollfd { fd = fd.Fd, events = POLLIN };
            if (Native.poll(&pfd, 1, (int)Math.Min(left, int.MaxValue)) <= 0) continue;
            long n = recv(fd.Fd, reply, 64, MSG_DONTWAIT);
            if (n > 0 && Replies.IsKeepAlive(new ReadOnlySpan<byte>(reply, (int)n), seq)) return DpProbe.Answered;
        }
    }
}
