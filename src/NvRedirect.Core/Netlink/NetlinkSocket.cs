using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using NvRedirect.Core.Interop;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Core.Netlink;

/// <summary>
/// A NETLINK_ROUTE socket in one network namespace (the namespace of the thread that created it, forever).
/// Requests are serialised per socket; the socket may be used from any thread.
/// Extended ACK is on, so kernel error text reaches <see cref="NetlinkException.KernelMessage"/>.
/// </summary>
public sealed unsafe class NetlinkSocket : IDisposable
{
    private const int ReceiveBufferSize = 256 * 1024;
    private const int DumpRetries = 5;
    private readonly SafeFd _fd;
    private readonly object _gate = new();
    private readonly byte[] _receive = new byte[ReceiveBufferSize];
    private uint _seq;

    /// <summary>Requests (dumps included) and dumps this thread sent on any socket (tests count them per operation).</summary>
    [ThreadStatic] internal static long RequestsSent, DumpsSent;

    /// <summary>Observer of every request sent (tests use it to compare bytes with iproute2's captures).</summary>
    public Action<byte[]>? RequestSent { get; set; }

    private NetlinkSocket(SafeFd fd)
    {
        _fd = fd;
        _seq = (uint)Environment.TickCount;
    }

    /// <summary>Opens a socket in the calling thread's current network namespace.</summary>
    public static NetlinkSocket OpenInCurrentNamespace()
    {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, Native.NETLINK_ROUTE);
        if (fd < 0) throw SyscallException.FromLastError("open a NETLINK_ROUTE socket");
        var handle = new SafeFd(fd);
        try
        {
            int one = 1;
            // extack: the kernel's text for every error; CAP_ACK: errors echo only the request header
            SetOption(fd, Native.NETLINK_EXT_ACK, one, required: true);
            SetOption(fd, Native.NETLINK_CAP_ACK, one, required: false);
            int rcv = 1 << 20;
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(int));
            var addr = new byte[12];
            BinaryPrimitives.WriteUInt16LittleEndian(addr, 16 /* AF_NETLINK */);
            fixed (byte* p = addr)
                if (bind(fd, (sockaddr*)p, 12) < 0) throw SyscallException.FromLastError("bind a NETLINK_ROUTE socket");
            // strict checking makes the kernel honour dump filters (ifindex in RTM_GETADDR) as iproute2 expects
            SetOption(fd, Native.NETLINK_GET_STRICT_CHK, one, required: false);
            return new NetlinkSocket(handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static void SetOption(int fd, int option, int value, bool required)
    {
        if (setsockopt(fd, Native.SOL_NETLINK, option, &value, sizeof(int)) < 0 && required)
            throw SyscallException.FromLastError($"set netlink socket option {option}");
    }

    /// <summary>Sends a request that expects an ACK; throws <see cref="NetlinkException"/> on a negative one.</summary>
    public void Execute(NetlinkWriter request, string operation) => Exchange(request, operation, dump: false);

    /// <summary>Sends a non-dump request and returns the kernel's data replies (e.g. RTM_GETLINK by name).</summary>
    public List<NetlinkMessage> Query(NetlinkWriter request, string operation) => Exchange(request, operation, dump: false);

    /// <summary>Runs a dump to NLMSG_DONE, retrying the whole dump when the kernel flags it interrupted.</summary>
    public List<NetlinkMessage> Dump(NetlinkWriter request, string operation)
    {
        for (int attempt = 1; ; attempt++)
        {
            var result = Exchange(request, operation, dump: true, out bool interrupted);
            if (!interrupted) return result;
            if (attempt == DumpRetries)
                throw new NetlinkException(4, operation + $" (the dump was interrupted by concurrent changes {DumpRetries} times in a row)");
        }
    }

    private List<NetlinkMessage> Exchange(NetlinkWriter request, string operation, bool dump)
        => Exchange(request, operation, dump, out _);

    private List<NetlinkMessage> Exchange(NetlinkWriter request, string operation, bool dump, out bool interrupted)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_fd.IsClosed, this);
            uint seq = unchecked(++_seq);
            var bytes = request.ToArray(seq);
            RequestSent?.Invoke(bytes);
            RequestsSent++;
            if (dump) DumpsSent++;
            bool wantsAck = (BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(6)) & Rtnl.NLM_F_ACK) != 0;
            fixed (byte* p = bytes)
            {
                long sent = send(_fd.Fd, p, bytes.Length, 0);
                if (sent < 0) throw SyscallException.FromLastError(operation + " (send)");
            }
            interrupted = false;
            var replies = new List<NetlinkMessage>();
            while (true)
            {
                long n;
                fixed (byte* p = _receive)
                {
                    do n = recv(_fd.Fd, p, _receive.Length, 0);
                    while (n < 0 && Native.LastErrno == EINTR);
                }
                if (n < 0) throw SyscallException.FromLastError(operation + " (receive)");
                foreach (var msg in NetlinkMessage.Split(_receive.AsSpan(0, (int)n)))
                {
                    if (msg.Seq != seq) continue; // a late reply to an earlier request
                    if ((msg.Flags & Rtnl.NLM_F_DUMP_INTR) != 0) interrupted = true;
                    switch (msg.Type)
                    {
                        case Rtnl.NLMSG_DONE:
                            CheckDoneError(msg, operation);
                            return replies;
                        case Rtnl.NLMSG_ERROR:
                            ThrowIfError(msg, operation);
                            return replies; // a positive ACK ends a request
                        default:
                            replies.Add(msg);
                            if (!dump && !wantsAck) return replies;
                            break;
                    }
                }
            }
        }
    }

    private static void CheckDoneError(NetlinkMessage msg, string operation)
    {
        // A dump that fails midway ends with DONE carrying a negative errno (and maybe extack).
        if (msg.Payload.Length >= 4)
        {
            int err = BinaryPrimitives.ReadInt32LittleEndian(msg.Payload);
            if (err < 0) throw new NetlinkException(-err, operation, ExtAck(msg.Payload[4..]));
        }
    }

    /// <summary>Throws when an NLMSG_ERROR carries a negative errno.</summary>
    internal static void ThrowIfError(NetlinkMessage msg, string operation)
    {
        var payload = msg.Payload;
        if (payload.Length < 4) throw new NetlinkException(71, operation + " (truncated netlink error)");
        int err = BinaryPrimitives.ReadInt32LittleEndian(payload);
        if (err == 0) return;
        throw new NetlinkException(-err, operation, ErrorText(msg));
    }

    /// <summary>Extracts NLMSGERR_ATTR_MSG from an NLMSG_ERROR message.</summary>
    public static string? ErrorText(NetlinkMessage msg)
    {
        if ((msg.Flags & Rtnl.NLM_F_ACK_TLVS) == 0) return null;
        var payload = msg.Payload;
        if (payload.Length < 20) return null;
        // error (4) + the echoed request: its header only when CAPPED, else the whole request
        int echoed = (msg.Flags & Rtnl.NLM_F_CAPPED) != 0 ? 16 : (int)BinaryPrimitives.ReadUInt32LittleEndian(payload[4..]);
        int tlvStart = 4 + NetlinkWriter.Pad(echoed);
        return tlvStart <= payload.Length ? ExtAck(payload[tlvStart..]) : null;
    }

    private static string? ExtAck(ReadOnlySpan<byte> tlvs)
    {
        foreach (var a in new NetlinkAttributes(tlvs))
            if (a.Type == Rtnl.NLMSGERR_ATTR_MSG) return a.String.TrimEnd();
        return null;
    }

    /// <inheritdoc/>
    public void Dispose() => _fd.Dispose();
}
