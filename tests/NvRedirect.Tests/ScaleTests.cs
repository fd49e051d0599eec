using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Links;
using NvRedirect.Core.Netlink;
using NvRedirect.Datapath.Control;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// Issue 17: every per-workload operation costs the same number of kernel round trips and datapath datagrams (and
/// reads the same number of workloads back) whether the enforcer holds a few workloads or many. Counted with the
/// core's per-thread counters (<see cref="NetlinkSocket"/>, <see cref="DpClient"/>, <see cref="LinkQuery"/>), never timed.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ScaleTests
{
    private static byte[] Mac(int i) => [0x02, 0x5c, 0x00, 0x00, (byte)(i >> 8), (byte)i];

    private readonly record struct Cost(long Requests, long Dumps);

    private static Cost Count(Action work)
    {
        long r = NetlinkSocket.RequestsSent, d = NetlinkSocket.DumpsSent;
        work();
        return new Cost(NetlinkSocket.RequestsSent - r, NetlinkSocket.DumpsSent - d);
    }

    /// <summary>An agent namespace with vbr/vth and, per workload i, its entry port vxI and inner port viI (each a veth whose peer stays here).</summary>
    private static TestNamespace Enforcer(int workloads)
    {
        var ns = TestNamespace.Create("scale");
        try
        {
            var h = ns.Handle;
            h.CreateVeth("vbr", "vth", null);
            foreach (var n in new[] { "vbr", "vth" }) h.SetUp(h.GetLink(n), true);
            for (int i = 0; i < workloads; i++) AddPorts(ns, i);
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    private static void AddPorts(TestNamespace ns, int i)
    {
        var h = ns.Handle;
        h.CreateVeth($"vx{i}", $"hx{i}", null);
        h.CreateVeth($"vi{i}", $"ci{i}", null);
        foreach (var n in new[] { $"vx{i}", $"hx{i}", $"vi{i}", $"ci{i}" }) h.SetUp(h.GetLink(n), true);
    }

    private static InterceptionRequest Request(TestNamespace ns, int i)
        => new() { Namespace = ns.Name, EntryLink = $"vx{i}", InnerLink = $"vi{i}", MonitorLink = "vbr", WorkloadMac = Mac(i), KeepOffloads = true };

    [RootFact]
    public void Finding_and_removing_one_workload_costs_the_same_with_3_or_12_workloads()
    {
        using var small = Enforcer(3);
        using var large = Enforcer(12);
        foreach (var (ns, n) in new[] { (small, 3), (large, 12) })
        {
            var allocator = new InterceptionAllocator();
            for (int i = 0; i < n; i++) Interception.Add(Request(ns, i), allocator);
        }

        InterceptionInfo? foundSmall = null, foundLarge = null;
        var findSmall = Count(() => foundSmall = Interception.Find(small.Name, Mac(1)));
        var findLarge = Count(() => foundLarge = Interception.Find(large.Name, Mac(1)));
        Assert.Equal(8, foundSmall!.Rules.Count);
        Assert.Equal(8, foundLarge!.Rules.Count);
        Assert.Equal(2, foundLarge.FastPathRules.Count); // the fast path is on where the kernel has it, as here
        Assert.Equal("vx1", foundLarge.EntryLink);
        Assert.Equal("vi1", foundLarge.InnerLink);
        Assert.Equal("vth", foundLarge.DatapathLink);
        // the entry port carries the index: the key by MAC and where the rest is
        var altNames = large.Handle.GetLink("vx1").AltNames;
        Assert.Contains("nvr-ic-025c00000001", altNames);
        Assert.Contains($"nvr-ic-025c00000001-{foundLarge.ToWorkloadPriority}-{foundLarge.FromWorkloadPriority}-{large.Handle.GetLink("vi1").Index}-{large.Handle.GetLink("vbr").Index}", altNames);
        // the index leads straight to the workload: no listing of every device
        Assert.Equal(findSmall, findLarge);
        Assert.True(findLarge.Dumps <= 5, $"finding one workload took {findLarge.Dumps} dumps");

        // what Find returns is what the listing shows
        var listed = Interception.List(large.Name).Single(i => i.WorkloadMac == foundLarge.WorkloadMac);
        Assert.Equal(listed.Rules.Select(r => (r.Role, r.LinkName, r.Priority)).Order(), foundLarge.Rules.Select(r => (r.Role, r.LinkName, r.Priority)).Order());
        Assert.Equal((listed.UcMac, listed.ToWorkloadPriority, listed.FromWorkloadPriority, listed.DatapathLink),
            (foundLarge.UcMac, foundLarge.ToWorkloadPriority, foundLarge.FromWorkloadPriority, foundLarge.DatapathLink));

        List<InterceptionRule>? removedSmall = null, removedLarge = null;
        var removeSmall = Count(() => removedSmall = Interception.Remove(foundSmall));
        var removeLarge = Count(() => removedLarge = Interception.Remove(foundLarge));
        Assert.Equal(8 + foundSmall.FastPathRules.Count, removedSmall!.Count); // the steering rules and the fast path's programs
        Assert.Equal(8 + foundLarge.FastPathRules.Count, removedLarge!.Count);
        Assert.Equal(removeSmall, removeLarge);
        Assert.DoesNotContain(Interception.List(large.Name), i => i.WorkloadMac == foundLarge.WorkloadMac);
        Assert.Equal(11, Interception.List(large.Name).Count);
        // the index went with the rules: the entry port has no alternative name left, and the MAC is not found
        Assert.Empty(large.Handle.GetLink("vx1").AltNames);
        Assert.Null(Interception.Find(large.Name, Mac(1)));
        Assert.False(File.Exists(foundLarge.FastPathMap), "the fast path's map went with it");
    }

    [RootFact]
    public void A_pipeline_of_interceptions_allocates_without_reading_every_workload_back()
    {
        using var ns = Enforcer(10);
        var allocator = new InterceptionAllocator();
        var costs = new List<Cost>();
        for (int i = 0; i < 10; i++)
        {
            int at = i;
            costs.Add(Count(() => Interception.Add(Request(ns, at), allocator)));
        }
        // the first reads the monitor port; every later one costs what the second did
        Assert.All(costs.Skip(2), c => Assert.Equal(costs[1], c));
        var listed = Interception.List(ns.Name);
        Assert.Equal(10, listed.Count);
        Assert.Equal(20, listed.SelectMany(i => new[] { i.ToWorkloadPriority, i.FromWorkloadPriority }).Distinct().Count());
        Assert.Equal(10, listed.Select(i => i.UcMac).Distinct().Count());

        // a filter someone else put at the pref the allocator would choose next is seen, and the next free one taken
        AddPorts(ns, 10);
        var entry = ns.Handle.GetLink("vx10");
        var tc = new NvRedirect.Core.Tc.TrafficControl(ns.Handle);
        var vbr = ns.Handle.GetLink("vbr");
        tc.AddFilter(new NvRedirect.Core.Tc.U32Filter
        {
            LinkIndex = vbr.Index, Priority = Interception.PriorityFor(entry.Index), Protocol = 0x88b6,
            Selector = NvRedirect.Core.Tc.U32Selector.MatchAll, Actions = [NvRedirect.Core.Tc.MirredAction.EgressMirror(vbr.Index)],
        });
        var added = Interception.Add(Request(ns, 10), allocator);
        Assert.NotEqual(Interception.PriorityFor(entry.Index), added.ToWorkloadPriority);
        Assert.Single(tc.ListFilters(vbr.Index, Interception.PriorityFor(entry.Index)));
    }

    [RootFact]
    public void Listing_dumps_each_device_once_and_looks_nothing_up_per_workload()
    {
        using var small = Enforcer(3);
        using var large = Enforcer(12);
        foreach (var (ns, n) in new[] { (small, 3), (large, 12) })
        {
            var allocator = new InterceptionAllocator();
            for (int i = 0; i < n; i++) Interception.Add(Request(ns, i), allocator);
        }
        List<InterceptionInfo>? a = null, b = null;
        var listSmall = Count(() => a = Interception.List(small.Name));
        var listLarge = Count(() => b = Interception.List(large.Name));
        Assert.Equal(3, a!.Count);
        Assert.Equal(12, b!.Count);
        Assert.All(b, i => Assert.Equal(8, i.Rules.Count));
        Assert.All(b, i => Assert.Equal("vth", i.DatapathLink));
        // ingress devices: vbr and two per workload; plus one link dump and one qdisc dump (which names its devices with one more)
        Assert.Equal(1 + 2 * 12 + 3, listLarge.Dumps);
        // no request beyond the dumps grows with the workloads
        Assert.Equal(listSmall.Requests - listSmall.Dumps, listLarge.Requests - listLarge.Dumps);
    }

    [RootFact]
    public void Link_queries_of_a_pipeline_ask_for_namespace_ids_once()
    {
        using var a = TestNamespace.Create("scale-ids");
        using var b = TestNamespace.Create("scale-ids");
        a.Handle.CreateVeth("p0", "q0", b.Name);
        using var query = new LinkQuery();
        long before = LinkQuery.NamespaceIdQueries;
        var first = query.Links(a.Name).Single(l => l.Name == "p0");
        Assert.Equal(b.Name, first.PeerNamespace);
        Assert.Equal("q0", first.PeerName);
        long asked = LinkQuery.NamespaceIdQueries - before;
        Assert.True(asked > 0);
        for (int item = 0; item < 5; item++)
        {
            query.ForgetNamespaceIds(); // what a cmdlet does between pipeline items
            Assert.Equal(b.Name, query.Links(a.Name).Single(l => l.Name == "p0").PeerNamespace);
        }
        Assert.Equal(asked, LinkQuery.NamespaceIdQueries - before);

        // a namespace replaced under the same name is asked about again, not trusted
        NvRedirect.Core.Namespaces.NetworkNamespace.Delete(b.Name);
        NvRedirect.Core.Namespaces.NetworkNamespace.Create(b.Name);
        a.Handle.CreateVeth("p1", "q1", b.Name);
        query.ForgetNamespaceIds();
        var second = query.Links(a.Name).Single(l => l.Name == "p1");
        Assert.Equal(b.Name, second.PeerNamespace);
        Assert.Equal("q1", second.PeerName);
        Assert.True(LinkQuery.NamespaceIdQueries - before > asked);
    }

    /// <summary>The datapath side, against the daemon's control socket and server in process (as <see cref="DpClientSocketTests"/>).</summary>
    [Fact]
    public void Datapath_changes_cost_the_same_datagrams_and_read_one_workload_back_with_2_or_60_workloads()
    {
        var costs = new List<(long Datagrams, long Read)[]>();
        foreach (int registered in new[] { 2, 60 })
        {
            var dir = Directory.CreateTempSubdirectory("nvr-scale-").FullName;
            var rig = new DatapathControlTests.Rig();
            var socket = ControlSocket.Bind(Path.Combine(dir, "dp.sock"), rig.Log);
            var stop = new SafeFd(Tmds.Linux.LibC.eventfd(0, 0));
            var server = new ControlServer(socket, rig.Controller, rig.Log);
            var thread = new Thread(() => server.Run(stop)) { IsBackground = true };
            thread.Start();
            try
            {
                rig.SendSeed();
                using var client = DpClient.Open(socket.Path);
                for (int i = 0; i < registered; i++)
                    client.Apply(DpRequests.AddMac("vth", NvRedirect.Core.Model.Parse.Mac(Mac(i)), $"4e:65:75:56:01:{i:x2}", $"ff:ff:ff:00:01:{i:x2}", null, false));
                var mac = NvRedirect.Core.Model.Parse.Mac(Mac(500));
                var steps = new (long, long)[4];
                (long, long) Measure(Action work)
                {
                    long d = DpClient.DatagramsSent, w = DpClient.WorkloadsRead;
                    work();
                    return (DpClient.DatagramsSent - d, DpClient.WorkloadsRead - w);
                }
                // register, as Add-DpMac -PassThru does: the acknowledgement carries this workload only
                steps[0] = Measure(() => Assert.NotNull(client.Apply(DpRequests.AddMac("vth", mac, "4e:65:75:56:05:00", "ff:ff:ff:00:05:00", null, false), [mac]).FindWorkload(mac)));
                // change mode, as Set-DpWorkloadMode does: read this workload's policy, write the change
                steps[1] = Measure(() =>
                {
                    var editor = DpPolicyEditor.Read(client, [mac]);
                    var w = editor.State.FindWorkload(mac)!;
                    var after = editor.Write(DpPolicyEditor.SwitchMode(editor.PolicyOf(w.Mac), DpWorkloadMode.Protect, DpWireMode.Inline));
                    Assert.Equal("Protect", after.FindWorkload(mac)!.Mode.ToString());
                });
                // change policy: one rule more
                steps[2] = Measure(() =>
                {
                    var editor = DpPolicyEditor.Read(client, [mac]);
                    editor.Write(DpPolicyEditor.AddRules(editor.PolicyOf(mac), [DpRule.Parse("192.0.2.0/24", null, "80", "TCP")]));
                });
                // deregister, as Remove-DpMac does
                steps[3] = Measure(() =>
                {
                    Assert.NotNull(client.State([mac]).FindWorkload(mac));
                    client.Apply(DpRequests.DeleteMac(mac));
                });
                Assert.Equal(registered, client.State().Workloads.Length - 1); // the seed's workload, and ours
                // at most the workload itself, once per exchange (state, policy, acknowledgement)
                Assert.All(steps, s => Assert.True(s.Item2 <= 3, $"an operation read {s.Item2} workloads back"));
                costs.Add(steps);
            }
            finally
            {
                unsafe { ulong v = 1; Tmds.Linux.LibC.write(stop.Fd, &v, 8); }
                thread.Join();
                socket.Dispose();
                stop.Dispose();
                Directory.Delete(dir, recursive: true);
            }
        }
        Assert.Equal(costs[0], costs[1]);
    }
}
