using System;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Datapath.Control;

/// <summary>
/// The control thread's loop: wait for requests (or the stop signal), execute each datagram, and send its replies
/// to the address that sent it (not to a remembered "last client", so concurrent clients each get their own answers).
/// </summary>
internal sealed unsafe class ControlServer(ControlSocket socket, Controller controller, Logger log)
{
    private readonly byte[] _buffer = new byte[Controller.MaxRequestSize + 1];
    private readonly byte[] _sender = new byte[ControlSocket.AddressSize];

    /// <summary>NeuVector's control loop period: the tick (connection reports) runs this often.</summary>
    public const int TickMilliseconds = 2000;
    /// <summary>Run every <see cref="TickMilliseconds"/> on this thread (null: no timer).</summary>
    public Action? Tick { get; init; }

    /// <summary>Datagrams refused because their sender is neither root nor in the control group.</summary>
    public long Refused { get; private set; }

    /// <summary>How often <see cref="Alive"/> runs (null: never): a watchdog ping from the control loop itself, so a hung loop stops pinging.</summary>
    public TimeSpan? AliveInterval { get; init; }
    /// <summary>Runs at least every <see cref="AliveInterval"/> while the loop serves (systemd's WATCHDOG=1).</summary>
    public Action? Alive { get; init; }

    /// <summary>Work other threads hand to this one (the metrics listener's snapshots); null: none.</summary>
    public ControlMailbox? Mailbox { get; init; }

    /// <summary>Serves until <paramref name="stop"/> (an eventfd) becomes readable.</summary>
    public void Run(SafeFd stop)
    {
        var pfds = stackalloc pollfd[3];
        // two timers on this one thread: the watchdog ping (Alive) and the report tick (Tick); poll waits for the nearer
        long aliveEvery = AliveInterval is { } every ? (long)Math.Max(1, every.TotalMilliseconds) : -1;
        long nextAlive = Environment.TickCount64 + Math.Max(0, aliveEvery);
        long nextTick = Environment.TickCount64 + TickMilliseconds;
        while (true)
        {
            long now = Environment.TickCount64;
            if (aliveEvery > 0 && now >= nextAlive)
            {
                Alive?.Invoke();
                nextAlive = now + aliveEvery;
            }
            if (Tick != null && now >= nextTick)
            {
                nextTick = now + TickMilliseconds;
                try { Tick(); }
                catch (Exception e) { log.Error($"the control thread's timer failed: {e.Message}"); }
            }
            long deadline = Math.Min(aliveEvery > 0 ? nextAlive : long.MaxValue, Tick != null ? nextTick : long.MaxValue);
            int wait = deadline == long.MaxValue ? -1 : (int)Math.Clamp(deadline - Environment.TickCount64, 0, int.MaxValue);
            pfds[0] = new pollfd { fd = socket.Fd, events = POLLIN };
            pfds[1] = new pollfd { fd = stop.Fd, events = POLLIN };
            pfds[2] = new pollfd { fd = Mailbox?.Fd ?? -1, events = POLLIN }; // poll ignores a negative fd
            int r = Native.poll(pfds, 3, wait);
            if (r < 0)
            {
                if (Native.LastErrno == EINTR) continue;
                throw SyscallException.FromLastError("wait for control requests");
            }
            if ((pfds[1].revents & POLLIN) != 0) return;
            if ((pfds[0].revents & POLLIN) != 0) Drain();
            if ((pfds[2].revents & POLLIN) != 0) Mailbox!.RunPending(log);
        }
    }

    /// <summary>Handles every datagram waiting on the socket.</summary>
    public void Drain()
    {
        int length;
        while ((length = socket.Receive(_buffer, _sender, out int senderLength, out var credentials)) >= 0)
        {
            var sender = _sender.AsSpan(0, senderLength);
            if (!socket.Admits(credentials))
            {
                Refused++;
                log.Warn($"control datagram of {length} bytes from {credentials} ({ControlSocket.DescribeAddress(sender)}) refused, nothing read: only root"
                    + (socket.ControlGroup is int g ? $" and group {g}" : "") + " may command this datapath");
                continue;
            }
            bool bound = senderLength > 2;
            var replies = length > Controller.MaxRequestSize
                ? controller.RejectOversized(length, ControlSocket.DescribeAddress(sender), bound)
                : controller.Handle(_buffer.AsSpan(0, length), bound ? ControlSocket.DescribeAddress(sender) : null);
            if (replies.Count == 0) continue;
            if (senderLength <= 2)
            {
                log.Warn($"{replies.Count} reply datagram(s) dropped: the client socket is not bound to an address (bind it to a path or an abstract name to get replies)");
                continue;
            }
            foreach (var reply in replies)
            {
                int errno = socket.SendTo(reply, sender);
                if (errno != 0)
                {
                    log.Warn($"reply to {ControlSocket.DescribeAddress(sender)} failed: {Native.ErrnoName(errno)} ({Native.StrError(errno)})");
                    break;
                }
            }
        }
    }
}
