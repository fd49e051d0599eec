using System;
using System.IO;
using System.Linq;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Threading;
using NvRedirect.Cmdlets;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// What a caller without capabilities gets: clean EPERM errors and nothing left behind. Capabilities are dropped
/// on one dedicated thread only (capset acts on the calling thread); that thread ends with the test.
/// </summary>
public unsafe partial class NotRootTests
{
    private const long SYS_capset = 126; // x86_64
    private const uint LINUX_CAPABILITY_VERSION_3 = 0x20080522;

    [LibraryImport("libc.so.6", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, void* header, void* data);

    /// <summary>Empties the effective, permitted and inheritable sets of the calling thread (pid 0 = this thread).</summary>
    private static void DropAllCapabilitiesOfThisThread()
    {
        uint* header = stackalloc uint[2] { LINUX_CAPABILITY_VERSION_3, 0 };
        uint* data = stackalloc uint[6]; // two {effective, permitted, inheritable} structs, all zero
        for (int i = 0; i < 6; i++) data[i] = 0;
        if (Syscall(SYS_capset, header, data) != 0)
            throw new InvalidOperationException($"capset failed: errno {Marshal.GetLastPInvokeError()}");
        var capEff = File.ReadLines("/proc/thread-self/status").Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        Assert.Equal("0000000000000000", capEff["CapEff:".Length..].Trim());
    }

    /// <summary>Runs <paramref name="work"/> on a new OS thread that is discarded afterwards (never a pool thread).</summary>
    private static void OnThrowawayThread(Action work)
    {
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try { work(); }
            catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
        }) { IsBackground = true, Name = "xunit-no-capabilities" };
        thread.Start();
        thread.Join();
        failure?.Throw();
    }

    [RootFact]
    public void Creating_a_namespace_without_capabilities_fails_with_EPERM_and_leaves_nothing()
    {
        string name = TestNamespace.NewName("noperm");
        NetlinkException? error = null;
        try
        {
            OnThrowawayThread(() =>
            {
                DropAllCapabilitiesOfThisThread();
                error = Assert.ThrowsAny<NetlinkException>(() => NetworkNamespace.Create(name));
            });
            Assert.Equal(1, error!.Errno);
            Assert.False(File.Exists(NetworkNamespace.PathOf(name)));
            Assert.False(NetworkNamespace.Exists(name));
            Assert.DoesNotContain(name, Ip.NamespaceNames());
        }
        finally
        {
            // only if the test failed: never leave our namespace behind
            if (File.Exists(NetworkNamespace.PathOf(name))) NetworkNamespace.Delete(name);
        }
    }

    [RootFact]
    public void Creating_a_veth_without_capabilities_fails_with_EPERM_and_leaves_nothing()
    {
        using var ns = TestNamespace.Create("noperm");
        NetlinkException? error = null;
        OnThrowawayThread(() =>
        {
            // enter the test namespace while still privileged, so the unprivileged socket lives there (never in root)
            using (var fd = RouteHandle.OpenNamespaceFd(ns.Name))
                if (Native.setns(fd.Fd, Native.CLONE_NEWNET) != 0) throw SyscallException.FromLastError("setns");
            DropAllCapabilitiesOfThisThread();
            using var h = RouteHandle.Open("");
            error = Assert.ThrowsAny<NetlinkException>(() => h.CreateVeth("xp0", "xp1", null));
            // the thread ends here, inside the test namespace and without capabilities: it is never reused
        });

        Assert.Equal(1, error!.Errno);
        Assert.StartsWith("create veth pair xp0/xp1", error.Operation); // refused by the kernel, not by a lookup before it
        using var root = RouteHandle.Open(ns.Name);
        Assert.Null(root.FindLink("xp0"));
        Assert.Null(root.FindLink("xp1"));
        Assert.Equal(["lo"], Ip.Json("-n", ns.Name, "link", "show").Select(l => l.Str("ifname")));
    }

    [Fact]
    public void Errno_EPERM_is_classified_as_PermissionDenied()
    {
        Assert.Equal("PermissionDenied", NvCmdlet.Classify(new NetlinkException(1, "create veth pair")).Condition);
        Assert.Equal("PermissionDenied", NvCmdlet.Classify(new SyscallException(1, "make /run/netns a shared mount")).Condition);
    }
}
