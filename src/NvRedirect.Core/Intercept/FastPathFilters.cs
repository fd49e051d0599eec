using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using NvRedirect.Core.Bpf;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Tc;

namespace NvRedirect.Core.Intercept;

/// <summary>
/// The fast path of one interception (docs/datapath.md, "The kernel fast path"): the workload's flow map, pinned under
/// /sys/fs/bpf/nvredirect, and one cls_bpf program on the entry and one on the inner port at pref
/// <see cref="FastPathPriority"/>, ahead of the steering rules. Its filters carry the interception's tag (roles
/// "fast-entry", "fast-inner"), so listing and removal find them with the others.
/// </summary>
public static class FastPathFilters
{
    /// <summary>pref of the fast-path programs: below <see cref="Interception.SteerIPv6Priority"/> and <see cref="Interception.SteerPriority"/>, so they run first.</summary>
    public const ushort FastPathPriority = 9999;
    /// <summary>Roles of the two filters.</summary>
    public const string EntryRole = "entry: fast path", InnerRole = "inner: fast path";
    internal const string EntryKey = "fast-entry", InnerKey = "fast-inner";

    /// <summary>Whether this kernel can run the fast path, and if not why (checked by loading a program with a map).</summary>
    public static (bool Supported, string Reason) Probe()
    {
        try
        {
            using var map = BpfMap.CreateHash(FastPathFlow.KeySize, FastPathFlow.ValueSize, 1, "nvr_probe");
            var program = new FastPathProgram(FastPathDirection.ToWorkload, [2, 0, 0, 0, 0, 1], 1, map.Fd).Assemble();
            using var fd = BpfProgram.LoadSchedCls(program, "nvr_fastpath");
            PeerSupported = TryLoad(new FastPathProgram(FastPathDirection.ToWorkload, [2, 0, 0, 0, 0, 1], 1, map.Fd, ToPeer: true).Assemble());
            if (!File.Exists("/proc/filesystems") || !File.ReadLines("/proc/filesystems").Any(l => l.EndsWith("\tbpf", StringComparison.Ordinal)))
                return (false, "the kernel has no bpffs to pin the flow map on");
            return (true, "the kernel loads the fast-path program (cls_bpf, hash maps, bpf_redirect)");
        }
        catch (BpfVerifierException e) { return (false, "the kernel's verifier refuses the fast-path program: " + e.VerifierLog.Split('\n').LastOrDefault(l => l.Length > 0)); }
        catch (NetlinkException e) { return (false, "the kernel cannot run it: " + e.Message); }
    }

    /// <summary>Whether the last <see cref="Probe"/> found bpf_redirect_peer (kernel 5.10 and later).</summary>
    public static bool PeerSupported { get; private set; }

    private static bool TryLoad(byte[] program)
    {
        try { using var fd = BpfProgram.LoadSchedCls(program, "nvr_probe"); return true; }
        catch (NetlinkException) { return false; }
    }

    /// <summary>The bpf filter name of a fast-path program (the interception's tag and ucmac, like its other bpf rules).</summary>
    internal static string NameFor(byte[] tag, byte[] uc, string roleKey, byte[] program)
        => $"{RedirectCookie.Marker}:{Convert.ToHexString(tag).ToLowerInvariant()}:{Convert.ToHexString(uc).ToLowerInvariant()}:{roleKey}:{Convert.ToHexString(SHA256.HashData(program).AsSpan(0, 4)).ToLowerInvariant()}";

    /// <summary>
    /// Creates (or opens) and pins the workload's map and installs the two programs. Idempotent: a program already
    /// there for the same map, ports and MAC stays (a fresh map id changes the name, so it is replaced).
    /// </summary>
    /// <remarks>Each filter is added to <paramref name="rules"/> as soon as it is in, so a caller's rollback sees it.</remarks>
    public static void Install(TrafficControl tc, string ns, LinkRecord entry, LinkRecord inner, byte[] workloadMac, byte[] uc, List<InterceptionRule> rules)
    {
        var tag = Interception.TagFor(workloadMac);
        // two veths: straight to the other port's peer (bpf_redirect_peer), else out of the other port (bpf_redirect)
        bool toPeer = PeerSupported && entry.Kind == "veth" && inner.Kind == "veth";
        using var map = FastPathMap.CreateOrOpen(ns, workloadMac);
        foreach (var (link, direction, target, role, key) in new[]
                 {
                     (entry, FastPathDirection.ToWorkload, inner.Index, EntryRole, EntryKey),
                     (inner, FastPathDirection.FromWorkload, entry.Index, InnerRole, InnerKey),
                 })
        {
            // the name is computed from the program with a placeholder fd: the fd number differs per process, the map does not
            var name = NameFor(tag, uc, key, new FastPathProgram(direction, workloadMac, target, map.Id, toPeer).Assemble());
            var existing = tc.ListFilters(link.Index, FastPathPriority);
            if (existing.Count == 1 && existing[0] is BpfFilter b && b.Name == name)
            {
                rules.Add(new InterceptionRule(role, link.Name, FastPathPriority, "bpf", TcChange.Unchanged, b));
                continue;
            }
            if (existing.Any(f => Interception.TagText(f) != Convert.ToHexString(tag).ToLowerInvariant()))
                throw new InterceptionPriorityInUseException(link.Name, FastPathPriority,
                    $"pref {FastPathPriority} of {tc.Handle.Describe(link.Name)} already holds a filter that is not this workload's: remove it, or add the interception with -FastPath:$false. Nothing was changed.");
            var change = existing.Count == 0 ? TcChange.Added : TcChange.Replaced;
            map.Clear(); // a new program starts from an empty map: nothing published before it counts
            var program = new FastPathProgram(direction, workloadMac, target, map.Fd, toPeer).Assemble();
            using var fd = BpfProgram.LoadSchedCls(program, "nvr_fastpath");
            var filter = new BpfFilter { LinkIndex = link.Index, Priority = FastPathPriority, Protocol = TcProtocol.IPv4, Name = name };
            if (change == TcChange.Replaced) tc.RemoveFilter(link.Index, FastPathPriority);
            tc.Handle.Socket.Execute(TcMessages.AddFilter(filter, fd.Fd), $"attach the fast-path program for '{role}' at pref {FastPathPriority} of {tc.Handle.Describe(link.Name)}");
            rules.Add(new InterceptionRule(role, link.Name, FastPathPriority, "bpf", change,
                tc.ListFilters(link.Index, FastPathPriority).OfType<BpfFilter>().FirstOrDefault()));
        }
    }

    /// <summary>Removes the fast path of a workload from the ports it is on (filters first, then the pinned map).</summary>
    public static void Uninstall(TrafficControl tc, string ns, byte[] workloadMac, IEnumerable<int> links)
    {
        var tag = Convert.ToHexString(Interception.TagFor(workloadMac)).ToLowerInvariant();
        foreach (var index in links)
            foreach (var f in tc.ListFilters(index, FastPathPriority))
                if (Interception.TagText(f) == tag) tc.RemoveFilter(index, FastPathPriority);
        FastPathMap.Remove(ns, workloadMac);
    }

    /// <summary>Whether a filter is a fast-path program.</summary>
    public static bool IsFastPath(TcFilter f) => f is BpfFilter b && b.Name?.Split(':') is { Length: >= 4 } p && p[3] is EntryKey or InnerKey;
}
