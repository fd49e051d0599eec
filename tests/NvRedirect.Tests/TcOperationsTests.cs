using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json;
using NvRedirect.Core.Links;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Tc;
using Xunit;

namespace NvRedirect.Tests.Tc;

/// <summary>
/// TrafficControl against the real kernel, each test in its own namespace (veth va/vb), with `tc` as the
/// independent witness of what the kernel holds.
/// </summary>
public class TcOperationsTests
{
    private const ushort RTM_NEWTFILTER = 44, RTM_DELTFILTER = 45;

    private static U32Filter MacFilter(int link, int target, ushort pref = 10) => new()
    {
        LinkIndex = link,
        Priority = pref,
        Protocol = TcProtocol.IPv4,
        Selector = U32Selector.FromMatches(U32Match.U8(0, 1, -14), U32Match.U16(0x1a27, 0xffff, -14), U32Match.U32(0xf3873a27, 0xffffffff, -12)),
        Actions = [MirredAction.EgressMirror(target)],
    };

    private static U32Filter CatchAll(int link, int target, ushort pref) => new()
    {
        LinkIndex = link, Priority = pref, Selector = U32Selector.MatchAll, Actions = [MirredAction.EgressMirror(target)],
    };

    private static U32Filter PeditFilter(int link, int target, ushort pref) => MacFilter(link, target, pref) with
    {
        Actions = [PeditAction.Munge([PeditKey.U16(-14, 0x4e65), PeditKey.U32(-12, 0x755600b4)], TcActionControl.Pipe), MirredAction.EgressMirror(target)],
    };

    [RootFact]
    public void Ensuring_the_ingress_qdisc_twice_keeps_its_filters()
    {
        using var s = TestNamespace.WithVeth("ensure");
        var tc = new TrafficControl(s.Handle);
        Assert.Equal(TcChange.Added, tc.EnsureIngressQdisc(s.IndexA));
        Assert.Equal(TcChange.Added, tc.AddFilter(CatchAll(s.IndexA, s.IndexB, 10002)).Change);
        Assert.Equal(TcChange.Unchanged, tc.EnsureIngressQdisc(s.IndexA));
        Assert.Single(tc.ListFilters(s.IndexA));
        Assert.Single(s.NodeJson("va"));
        var q = Assert.Single(tc.ListQdiscs(s.IndexA), q => q.IsIngress);
        Assert.Equal("va", q.LinkName);
        Assert.Contains("qdisc ingress ffff:", s.TcOk("qdisc", "show", "dev", "va"));
    }

    [RootFact]
    public void Mirred_filters_read_back_as_tc_shows_them()
    {
        using var s = TestNamespace.WithVeth("list");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        var sent = new List<byte[]>();
        s.Handle.Socket.RequestSent = b => { if (BitConverter.ToUInt16(b, 4) == RTM_NEWTFILTER) sent.Add(b); };
        var wanted = new[]
        {
            MacFilter(s.IndexA, s.IndexB, 10) with { Actions = [MirredAction.EgressMirror(s.IndexB) with { Cookie = [0x4e, 0x56, 0x01] }] },
            CatchAll(s.IndexA, s.IndexB, 20) with { Actions = [MirredAction.EgressRedirect(s.IndexB)] },
            new U32Filter
            {
                LinkIndex = s.IndexA, Priority = 30, Protocol = TcProtocol.IPv6,
                Selector = U32Selector.FromMatches(U32Match.U8(0x3a, 0xff, 6), U32Match.U16(0x1234, 0xffff, -3)),
                Actions = [new MirredAction { Direction = MirredDirection.Ingress, TargetName = "vb", Control = TcActionControl.Ok }],
            },
        };
        foreach (var f in wanted) Assert.Equal(TcChange.Added, tc.AddFilter(f).Change);
        s.Handle.Socket.RequestSent = null;

        var listed = tc.ListFilters(s.IndexA).Cast<U32Filter>().ToList();
        var nodes = s.NodeJson("va");
        Assert.Equal(3, listed.Count);
        Assert.Equal(nodes.Count, listed.Count);
        for (int i = 0; i < listed.Count; i++)
        {
            var ours = listed[i];
            var theirs = nodes[i];
            var options = theirs.GetProperty("options");
            Assert.Equal(theirs.GetProperty("pref").GetInt32(), ours.Priority);
            Assert.Equal(theirs.GetProperty("protocol").GetString(), ours.ProtocolName);
            Assert.Equal(options.GetProperty("fh").GetString(), ours.HandleText);
            Assert.Equal("va", ours.LinkName);
            // tc prints one "match" property per key (repeated keys in one JSON object)
            var tcKeys = options.EnumerateObject().Where(p => p.Name == "match").Select(p => new U32Key(
                uint.Parse(p.Value.GetProperty("mask").GetString()!, NumberStyles.HexNumber),
                uint.Parse(p.Value.GetProperty("value").GetString()!, NumberStyles.HexNumber),
                p.Value.GetProperty("off").GetInt32())).ToArray();
            Assert.Equal(tcKeys, ours.Keys.ToArray());
            var tcAction = Assert.Single(options.GetProperty("actions").EnumerateArray().ToArray());
            var m = Assert.IsType<MirredAction>(Assert.Single(ours.Actions));
            Assert.Equal("mirred", tcAction.GetProperty("kind").GetString());
            Assert.Equal(tcAction.GetProperty("mirred_action").GetString(), m.Mode.ToString().ToLowerInvariant());
            Assert.Equal(tcAction.GetProperty("direction").GetString(), m.Direction.ToString().ToLowerInvariant());
            Assert.Equal(tcAction.GetProperty("to_dev").GetString(), m.TargetName);
            Assert.Equal(s.IndexB, m.TargetIndex);
            Assert.Equal(tcAction.GetProperty("control_action").GetProperty("type").GetString(), TcAction.ControlName(m.EffectiveControl));
            Assert.Equal(tcAction.TryGetProperty("cookie", out var c) ? c.GetString() : null,
                m.Cookie is null ? null : Convert.ToHexString(m.Cookie).ToLowerInvariant());
            Assert.Equal(tcAction.GetProperty("index").GetUInt32(), m.Index);
            // counters move (IPv6 router solicitations of the new veths hit the catch-all): tc read them later
            Assert.InRange(m.Statistics!.Packets, 0UL, (ulong)tcAction.GetProperty("stats").GetProperty("packets").GetInt64());
            // what the kernel reports encodes to exactly the request that created it
            TcBytes.Equal(sent[i], TcMessages.AddFilter(ours).ToArray(GoldenFile.Seq(sent[i])), $"read-back of pref {ours.Priority}");
        }
    }

    [RootFact]
    public void Adding_the_same_filter_twice_leaves_one_node_and_reports_Unchanged()
    {
        using var s = TestNamespace.WithVeth("idem");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        var first = tc.AddFilter(MacFilter(s.IndexA, s.IndexB));
        Assert.Equal(TcChange.Added, first.Change);

        var sent = new List<ushort>();
        s.Handle.Socket.RequestSent = b => sent.Add(BitConverter.ToUInt16(b, 4));
        var second = tc.AddFilter(MacFilter(s.IndexA, s.IndexB));
        s.Handle.Socket.RequestSent = null;
        Assert.Equal(TcChange.Unchanged, second.Change);
        Assert.DoesNotContain(RTM_NEWTFILTER, sent);
        Assert.Equal(first.Filter.Handle, second.Filter.Handle);
        Assert.Single(s.NodeJson("va"));

        // a different filter at the same pref replaces it (tc would have appended a second node)
        var other = MacFilter(s.IndexA, s.IndexB) with { Selector = U32Selector.FromMatches(U32Match.U16(0x4e65, 0xffff, -14)) };
        var third = tc.AddFilter(other);
        Assert.Equal(TcChange.Replaced, third.Change);
        var node = Assert.Single(s.NodeJson("va"));
        var match = node.GetProperty("options").GetProperty("match");
        Assert.Equal("4e65", match.GetProperty("value").GetString());
        Assert.Equal(new U32Key(0x0000ffff, 0x00004e65, -16), Assert.Single(third.Filter.Keys));
    }

    [RootFact]
    public void Duplicate_nodes_left_by_tc_are_collapsed_into_one()
    {
        using var s = TestNamespace.WithVeth("dupl");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        string[] add = ["filter", "add", "dev", "va", "pref", "10002", "parent", "ffff:", "protocol", "all", "u32", "match", "u8", "0", "0", "action", "mirred", "egress", "mirror", "dev", "vb"];
        s.TcOk(add);
        s.TcOk(add); // the kernel appends 800::801
        Assert.Equal(2, s.NodeJson("va").Count);
        Assert.Equal(TcChange.Replaced, tc.AddFilter(CatchAll(s.IndexA, s.IndexB, 10002)).Change);
        Assert.Single(s.NodeJson("va"));
    }

    /// <summary>This machine's kernel has no act_pedit (docs/kernel-interfaces.md, "The development machine's kernel"); on a kernel with it this test fails by design.</summary>
    [RootFact]
    public void Pedit_filter_gives_a_clear_error_and_leaves_the_filter_list_unchanged()
    {
        using var s = TestNamespace.WithVeth("pedit");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        tc.AddFilter(CatchAll(s.IndexA, s.IndexB, 10002));
        tc.AddFilter(MacFilter(s.IndexA, s.IndexB, 5));
        string before = s.TcOk("filter", "show", "dev", "va", "ingress");

        var e = Assert.Throws<TcActionUnavailableException>(() => tc.AddFilter(PeditFilter(s.IndexA, s.IndexB, 10001)));
        Assert.Contains("act_pedit", e.Message);
        Assert.Contains(TrafficControl.MissingActionModuleText, e.Message);
        Assert.Contains("Bpf backend", e.Message);
        Assert.Contains("Nothing was installed", e.Message);
        Assert.Equal(2, e.Errno); // ENOENT
        Assert.Equal(["act_pedit"], e.ModuleNames.ToArray());
        Assert.Equal(before, s.TcOk("filter", "show", "dev", "va", "ingress"));
        Assert.Empty(tc.ListFilters(s.IndexA, 10001));
    }

    /// <summary>
    /// Either kernel: here (no act_pedit) the refusal installs nothing; on a kernel with act_pedit (verified under
    /// tests/stock-kernel/run.sh, Debian 12's kernel in user-mode-linux) the seed's pedit filter is added once, reads back with
    /// its munges, and a second add is Unchanged.
    /// </summary>
    [RootFact]
    public void Pedit_filter_is_added_once_or_refused_whole_depending_on_the_kernel()
    {
        using var s = TestNamespace.WithVeth("pedit2");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        var wanted = PeditFilter(s.IndexA, s.IndexB, 10001);
        TcFilterResult first;
        try { first = tc.AddFilter(wanted); }
        catch (TcActionUnavailableException e)
        {
            Assert.Contains("Nothing was installed", e.Message);
            Assert.Empty(tc.ListFilters(s.IndexA));
            Assert.Empty(s.NodeJson("va"));
            return;
        }
        Assert.Equal(TcChange.Added, first.Change);
        var pedit = Assert.IsType<PeditAction>(first.Filter.Actions[0]);
        Assert.Equal(new[] { PeditKey.U16(-14, 0x4e65), PeditKey.U32(-12, 0x755600b4) }, pedit.Munges!.ToArray());
        Assert.Equal(TcChange.Unchanged, tc.AddFilter(wanted).Change);
        var node = Assert.Single(s.NodeJson("va"));
        Assert.Equal("pedit", node.GetProperty("options").GetProperty("actions")[0].GetProperty("kind").GetString());
    }

    /// <summary>Needs this machine's kernel without act_pedit, like the test above.</summary>
    [RootFact]
    public void Pedit_filter_refused_at_an_occupied_pref_puts_the_previous_filter_back()
    {
        using var s = TestNamespace.WithVeth("restore");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        var previous = tc.AddFilter(MacFilter(s.IndexA, s.IndexB, 5)).Filter;

        var e = Assert.Throws<TcActionUnavailableException>(() => tc.AddFilter(PeditFilter(s.IndexA, s.IndexB, 5)));
        Assert.Contains("restored", e.Message);
        var now = Assert.IsType<U32Filter>(Assert.Single(tc.ListFilters(s.IndexA)));
        Assert.Equal(TcMessages.Fingerprint(previous), TcMessages.Fingerprint(now));
        Assert.Single(s.NodeJson("va"));
    }

    [RootFact]
    public void Removing_one_pref_leaves_the_others()
    {
        using var s = TestNamespace.WithVeth("remove");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        foreach (ushort pref in new ushort[] { 10, 20, 30 }) tc.AddFilter(CatchAll(s.IndexA, s.IndexB, pref));

        var sent = new List<byte[]>();
        s.Handle.Socket.RequestSent = b => { if (BitConverter.ToUInt16(b, 4) == RTM_DELTFILTER) sent.Add(b); };
        Assert.Equal(TcChange.Removed, tc.RemoveFilter(s.IndexA, 20));
        s.Handle.Socket.RequestSent = null;
        TcBytes.Equal(TcMessages.DeleteFilter(s.IndexA, 20).ToArray(GoldenFile.Seq(sent[0])), Assert.Single(sent), "delete request");

        Assert.Equal(new[] { 10, 30 }, s.NodeJson("va").Select(n => n.GetProperty("pref").GetInt32()).ToArray());
        Assert.Equal(new[] { 10, 30 }, tc.ListFilters(s.IndexA).Select(f => (int)f.Priority).ToArray());
        Assert.Equal(TcChange.Absent, tc.RemoveFilter(s.IndexA, 20));
    }

    [RootFact]
    public void Removing_the_ingress_qdisc_takes_its_filters_and_is_idempotent()
    {
        using var s = TestNamespace.WithVeth("rmq");
        var tc = new TrafficControl(s.Handle);
        Assert.Equal(TcChange.Absent, tc.RemoveIngressQdisc(s.IndexA));
        tc.EnsureIngressQdisc(s.IndexA);
        tc.AddFilter(CatchAll(s.IndexA, s.IndexB, 7));
        Assert.Equal(TcChange.Removed, tc.RemoveIngressQdisc(s.IndexA));
        Assert.Equal(TcChange.Absent, tc.RemoveIngressQdisc(s.IndexA));
        Assert.DoesNotContain(tc.ListQdiscs(s.IndexA), q => q.IsIngress);
        Assert.Empty(tc.ListFilters(s.IndexA));
        Assert.Equal(TcChange.Absent, tc.RemoveFilter(s.IndexA, 7));
        Assert.DoesNotContain("ingress", s.TcOk("qdisc", "show", "dev", "va"));
    }

    [RootFact]
    public void Mirred_targets_are_resolved_by_name_in_the_namespace()
    {
        using var s = TestNamespace.WithVeth("names");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        var byName = CatchAll(s.IndexA, 0, 3) with { Actions = [new MirredAction { TargetName = "vb" }] };
        var result = tc.AddFilter(byName);
        var m = (MirredAction)Assert.Single(result.Filter.Actions);
        Assert.Equal((s.IndexB, "vb"), (m.TargetIndex, m.TargetName));
        // the same filter given by ifindex is the same rule
        Assert.Equal(TcChange.Unchanged, tc.AddFilter(CatchAll(s.IndexA, s.IndexB, 3)).Change);
        Assert.Throws<LinkNotFoundException>(() => tc.AddFilter(CatchAll(s.IndexA, 0, 4) with { Actions = [new MirredAction { TargetName = "nosuch0" }] }));
        Assert.Throws<ArgumentException>(() => tc.AddFilter(CatchAll(s.IndexA, 999, 4)));
        Assert.Throws<ArgumentException>(() => tc.AddFilter(CatchAll(s.IndexA, s.IndexB, 0)));
        Assert.Single(tc.ListFilters(s.IndexA));
    }

    [RootFact]
    public void A_mirred_filter_whose_target_vanished_is_replaced_not_kept()
    {
        using var s = TestNamespace.WithVeth("gone");
        var tc = new TrafficControl(s.Handle);
        tc.EnsureIngressQdisc(s.IndexA);
        s.Handle.CreateVeth("vc", "vd", s.Name);
        int vc = s.Handle.GetLink("vc").Index;
        tc.AddFilter(CatchAll(s.IndexA, vc, 9));
        s.Handle.Delete(s.Handle.GetLink("vc"));
        // the kernel keeps the action but reports target ifindex 0 now
        var stale = (MirredAction)((U32Filter)Assert.Single(tc.ListFilters(s.IndexA))).Actions[0];
        Assert.Equal(0, stale.TargetIndex);
        Assert.Equal(TcChange.Replaced, tc.AddFilter(CatchAll(s.IndexA, s.IndexB, 9)).Change);
        Assert.Equal(s.IndexB, ((MirredAction)((U32Filter)Assert.Single(tc.ListFilters(s.IndexA))).Actions[0]).TargetIndex);
    }

    [RootFact]
    public void Ensuring_ingress_where_a_clsact_qdisc_sits_reports_the_kernels_reason()
    {
        using var s = TestNamespace.WithVeth("clsact");
        s.TcOk("qdisc", "add", "dev", "va", "clsact");
        var tc = new TrafficControl(s.Handle);
        var e = Assert.ThrowsAny<NetlinkException>(() => tc.EnsureIngressQdisc(s.IndexA));
        Assert.Equal(22, e.Errno); // EINVAL "Invalid qdisc name: must match existing qdisc."
        Assert.Contains("ingress qdisc on link 'va'", e.Message);
        Assert.Contains("clsact", s.TcOk("qdisc", "show", "dev", "va"));
    }

    [RootFact]
    public void Adding_a_filter_without_qdisc_reports_the_kernels_reason()
    {
        using var s = TestNamespace.WithVeth("noq");
        var tc = new TrafficControl(s.Handle);
        Assert.Empty(tc.ListFilters(s.IndexA));
        var e = Assert.ThrowsAny<NetlinkException>(() => tc.AddFilter(CatchAll(s.IndexA, s.IndexB, 3)));
        Assert.Contains("pref 3", e.Message);
        Assert.False(string.IsNullOrEmpty(e.KernelMessage));
    }
}
