using System;
using System.Collections.Concurrent;
using System.Threading;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using static Tmds.Linux.LibC;

namespace NvRedirect.Datapath.Control;

/// <summary>
/// Hands work from another thread to the control thread, which owns the configuration: the other thread queues a
/// function and waits (bounded) for its result; the control loop polls <see cref="Fd"/> (an eventfd) and runs what is
/// queued between datagrams. The waiting thread never touches the control state itself.
/// </summary>
internal sealed unsafe class ControlMailbox : IDisposable
{
    private readonly SafeFd _event;
    private readonly ConcurrentQueue<Action> _work = new();

    public ControlMailbox()
    {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) throw SyscallException.FromLastError("create the control mailbox's eventfd");
        _event = new SafeFd(fd);
    }

    /// <summary>The eventfd the control loop polls.</summary>
    public int Fd => _event.Fd;

    /// <summary>Runs <paramref name="work"/> on the control thread and returns its result; null when it did not run within <paramref name="timeout"/>.</summary>
    public T? Invoke<T>(Func<T> work, TimeSpan timeout) where T : class
    {
        T? result = null;
        Exception? failure = null;
        var done = new ManualResetEventSlim(); // not disposed: a late item may still set it after the caller gave up
        int abandoned = 0;
        _work.Enqueue(() =>
        {
            if (Volatile.Read(ref abandoned) != 0) return; // the caller gave up: do not do work nobody reads
            try { result = work(); }
            catch (Exception e) { failure = e; }
            finally { done.Set(); }
        });
        ulong one = 1;
        write(_event.Fd, &one, 8);
        if (!done.Wait(timeout))
        {
            Volatile.Write(ref abandoned, 1);
            return null;
        }
        if (failure != null) throw new InvalidOperationException(failure.Message, failure);
        return result;
    }

    /// <summary>Runs what is queued (on the control thread).</summary>
    public void RunPending(Logger log)
    {
        ulong count;
        read(_event.Fd, &count, 8);
        while (_work.TryDequeue(out var item))
        {
            try { item(); }
            catch (Exception e) { log.Error($"work handed to the control thread failed: {e.Message}"); }
        }
    }

    public void Dispose() => _event.Dispose();
}
