using System;
using NvRedirect.Core.Bpf;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Tc;
using Xunit;

namespace NvRedirect.Tests.Tc;

/// <summary>Prefs and ucmacs are allocated against what a monitor port holds, read back from the filters' own bytes.</summary>
public class InterceptionAllocationTests
{
    private const int Vex = 5, Vin = 7, Vbr = 9;
    private static readonly byte[] M1 = Convert.FromHexString("1a27f3873a27"), U1 = Convert.FromHexString("4e65755600b4");
    private static readonly byte[] M2 = Convert.FromHexString("1a27f3873a28");

    /// <summary>The two return rules of a workload as the kernel would dump them: encoded, then decoded.</summary>
    private static TcFilter[] ReturnRules(byte[] m, byte[] u, ushort to, ushort from)
    {
        var cookie = RedirectCookie.Create(Interception.TagFor(m));
        TcFilter RoundTrip(MacRule r) => TcDecoder.ParseFilter(new NetlinkMessage(TcMessages.AddFilter(r.ToU32Filter(cookie)).ToArray(1)))!;
        return
        [
            RoundTrip(new MacRule(Vbr, to, TcProtocol.All, MacField.Destination, u, false, MacField.Destination, m, MirredAction.EgressMirror(Vin))),
            RoundTrip(new MacRule(Vbr, from, TcProtocol.All, MacField.Source, u, false, MacField.Source, m, MirredAction.EgressMirror(Vex))),
        ];
    }

    [Fact]
    public void Usage_reads_prefs_owners_and_ucmac_from_u32_return_rules()
    {
        var usage = InterceptionUsage.Of(ReturnRules(M1, U1, 5, 172));
        Assert.Equal("1a:27:f3:87:3a:27", usage.Priorities[5]);
        Assert.Equal("1a:27:f3:87:3a:27", usage.Priorities[172]);
        Assert.Equal("1a:27:f3:87:3a:27", usage.UcMacs["4e:65:75:56:00:b4"]);
        Assert.Single(usage.UcMacs);
    }

    [Fact]
    public void Second_workload_gets_free_prefs_and_ucmac_next_to_the_derived_ones()
    {
        var usage = InterceptionUsage.Of(ReturnRules(M1, U1, 5, 172));
        // derived values that collide with the first workload's (its ifindex-derived prefs, its ucmac) move to the next free
        Assert.Equal(6, usage.ChoosePriority(null, 5, "1a:27:f3:87:3a:28", "monitor: to workload", null, "vbr", "ToWorkloadPriority"));
        Assert.Equal(173, usage.ChoosePriority(null, 172, "1a:27:f3:87:3a:28", "monitor: to host side", 6, "vbr", "FromWorkloadPriority"));
        Assert.Equal(7, usage.ChoosePriority(null, 6, "1a:27:f3:87:3a:28", "monitor: to host side", 6, "vbr", "FromWorkloadPriority"));
        Assert.Equal("4e65755600b5", Convert.ToHexString(usage.ChooseUcMac(null, U1, "1a:27:f3:87:3a:28")).ToLowerInvariant());
        // free derived values are kept as NeuVector derives them
        Assert.Equal(40, usage.ChoosePriority(null, 40, "1a:27:f3:87:3a:28", "monitor: to workload", null, "vbr", "ToWorkloadPriority"));
    }

    [Fact]
    public void The_same_workload_keeps_what_it_has()
    {
        var usage = InterceptionUsage.Of(ReturnRules(M1, U1, 5, 172));
        Assert.Equal(5, usage.ChoosePriority(null, 30, "1a:27:f3:87:3a:27", "monitor: to workload", null, "vbr", "ToWorkloadPriority"));
        Assert.Equal(172, usage.ChoosePriority(null, 31, "1a:27:f3:87:3a:27", "monitor: to host side", 5, "vbr", "FromWorkloadPriority"));
        Assert.Equal(5, usage.ChoosePriority(5, 30, "1a:27:f3:87:3a:27", "monitor: to workload", null, "vbr", "ToWorkloadPriority"));
        Assert.Equal(U1, usage.ChooseUcMac(null, Convert.FromHexString("4e6575560001"), "1a:27:f3:87:3a:27"));
        Assert.Equal(U1, usage.ChooseUcMac(U1, Convert.FromHexString("4e6575560001"), "1a:27:f3:87:3a:27"));
    }

    [Fact]
    public void Explicit_values_of_another_workload_are_refused_naming_it()
    {
        var usage = InterceptionUsage.Of(ReturnRules(M1, U1, 5, 172));
        var p = Assert.Throws<InterceptionPriorityInUseException>(() => usage.ChoosePriority(172, 5, "1a:27:f3:87:3a:28", "monitor: to workload", null, "vbr", "ToWorkloadPriority"));
        Assert.Equal(172, p.Priority);
        Assert.Contains("workload 1a:27:f3:87:3a:27", p.Message);
        Assert.Contains("-ToWorkloadPriority", p.Message);
        var u = Assert.Throws<InterceptionUcMacInUseException>(() => usage.ChooseUcMac(U1, U1, "1a:27:f3:87:3a:28"));
        Assert.Equal("1a:27:f3:87:3a:27", u.OtherWorkloadMac);
        Assert.Contains("Remove-WorkloadInterception -WorkloadMac 1a:27:f3:87:3a:27", u.Message);
        Assert.Contains("Nothing was changed", u.Message);
    }

    [Fact]
    public void A_foreign_filter_holds_its_pref()
    {
        var foreign = new U32Filter { LinkIndex = Vbr, Priority = 5, Selector = U32Selector.MatchAll, Actions = [MirredAction.EgressMirror(Vin)] };
        var usage = InterceptionUsage.Of([foreign]);
        Assert.Null(usage.Priorities[5]);
        Assert.Equal(6, usage.ChoosePriority(null, 5, "1a:27:f3:87:3a:28", "monitor: to workload", null, "vbr", "ToWorkloadPriority"));
        var e = Assert.Throws<InterceptionPriorityInUseException>(() => usage.ChoosePriority(5, 5, "1a:27:f3:87:3a:28", "monitor: to workload", null, "vbr", "ToWorkloadPriority"));
        Assert.Contains("someone else", e.Message);
    }
}
