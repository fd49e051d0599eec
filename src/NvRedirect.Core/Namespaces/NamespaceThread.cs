using System;
using System.Runtime.ExceptionServices;
using System.Threading;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Namespaces;

/// <summary>
/// Runs a short piece of work inside another network namespace on a dedicated OS thread, never on the caller's.
/// setns(CLONE_NEWNET) changes only the calling thread, and a socket keeps the namespace it was created in, so
/// the work is "open a socket, return it"; the socket is then used from any thread. The thread switches back
/// before it ends; if switching back fails the thread simply ends, so no thread is ever left in a foreign namespace.
/// See docs/design.md, "Threads and namespaces".
/// </summary>
public static class NamespaceThread
{
    /// <summary>Runs <paramref name="work"/> with the thread switched into the namespace pinned at <paramref name="namespacePath"/>.</summary>
    public static T RunIn<T>(string namespacePath, Func<T> work)
    {
        return RunOnDedicatedThread(() =>
        {
            int target = Native.open(namespacePath, Native.O_RDONLY | Native.O_CLOEXEC, 0);
            if (target < 0) throw SyscallException.FromLastError($"open network namespace {namespacePath}");
            using var targetFd = new SafeFd(target);
            using var saved = OpenOwnNamespace();
            if (Native.setns(targetFd.Fd, Native.CLONE_NEWNET) < 0)
                throw SyscallException.FromLastError($"enter network namespace {namespacePath}");
            try { return work(); }
            finally
            {
                if (Native.setns(saved.Fd, Native.CLONE_NEWNET) < 0)
                    Environment.FailFast("NvRedirect: a namespace worker thread could not switch back; its thread is unusable.");
            }
        });
    }

    /// <summary>An fd of the calling thread's own network namespace (not the main thread's).</summary>
    public static SafeFd OpenOwnNamespace()
    {
        int fd = Native.open("/proc/thread-self/ns/net", Native.O_RDONLY | Native.O_CLOEXEC, 0);
        if (fd < 0) throw SyscallException.FromLastError("open /proc/thread-self/ns/net");
        return new SafeFd(fd);
    }

    /// <summary>Runs <paramref name="work"/> on a fresh OS thread and rethrows its exception on the caller.</summary>
    public static T RunOnDedicatedThread<T>(Func<T> work)
    {
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try { result = work(); }
            catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
        }, maxStackSize: 256 * 1024)
        { IsBackground = true, Name = "nvredirect-netns" };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }
}
