using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Bpf;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Tc;

namespace NvRedirect.Cmdlets;

/// <summary>
/// <para type="synopsis">Adds a u32 filter with its actions to a device's ingress, like `tc filter add dev DEV pref N parent ffff: protocol P u32 match ... action ...`, idempotently.</para>
/// <para type="description">Three ways to say what the filter is. As tc text: -Match takes tc's u32 matches ('u8 0 1 at -14', 'u16 0x1a27 0xffff at -14', 'u32 0xf3873a27 0xffffffff at -12'; none means match everything, tc's `match u8 0 0`) and -Action the actions in order, one per element, in tc's syntax ('pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe', 'mirred egress mirror dev vbr'); the request is byte for byte the one tc sends for the same words. Typed, for the common case: -DestinationMac or -SourceMac (and -UnicastOnly) to compare, -RewriteDestinationMac or -RewriteSourceMac to rewrite, -MirrorTo or -RedirectTo (with -ToIngress) for the target; it sends exactly what the equivalent tc text sends. As an object read back by Get-RedirectFilter (-InputObject, or piped): the same request as the one that created it.</para>
/// <para type="description">The pref is the filter's identity. When the pref already holds exactly this filter nothing is sent and Change is Unchanged (tc itself would append a duplicate); when it holds something else, that is replaced (Change = Replaced, and restored if the kernel then refuses the new filter); otherwise Change is Added. A filter NvRedirect did not install is only replaced with -Force.</para>
/// <para type="description">Every action carries a 16-byte cookie ("nvredir1" and 8 bytes of -Tag) that marks the filter as NvRedirect's, so that Remove-RedirectFilter and Remove-AgentQdisc never remove anybody else's filters. -NoCookie sends tc's exact bytes instead (the filter is then not recognised as NvRedirect's). On a kernel without act_pedit a pedit filter is refused whole: the error names the module, quotes the kernel and gives the ways out, and the device's filters are as they were.</para>
/// </summary>
/// <example>
/// <code>
/// Add-AgentQdisc vex -Namespace agent-ns
/// Add-RedirectFilter vex -Namespace agent-ns -Priority 10002 -Action 'mirred egress mirror dev vin'
/// </code>
/// <para>The seed's catch-all on vex (`tc filter add dev vex pref 10002 parent ffff: protocol all u32 match u8 0 0 action mirred egress mirror dev vin`): every frame entering vex is copied out of vin.</para>
/// </example>
/// <example>
/// <code>
/// Add-RedirectFilter vex -Namespace agent-ns -Priority 10001 -Protocol ip `
///     -Match 'u8 0 1 at -14', 'u16 0x1a27 0xffff at -14', 'u32 0xf3873a27 0xffffffff at -12' `
///     -Action 'pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe', 'mirred egress mirror dev vbr'
/// </code>
/// <para>The seed's steering filter on vex in tc's own words: unicast IPv4 to 1a:27:f3:87:3a:27 gets its destination MAC rewritten to 4e:65:75:56:00:b4 and is copied to vbr. Needs act_pedit in the kernel.</para>
/// </example>
/// <example>
/// <code>
/// Add-RedirectFilter vex -Namespace agent-ns -Priority 10001 -Protocol ip -UnicastOnly `
///     -DestinationMac 1a:27:f3:87:3a:27 -RewriteDestinationMac 4e:65:75:56:00:b4 -MirrorTo vbr
/// </code>
/// <para>The same filter, typed; the kernel receives the same bytes.</para>
/// </example>
/// <example>
/// <code>
/// $saved = Get-RedirectFilter -Namespace agent-ns -Owned
/// $saved | Remove-RedirectFilter
/// $saved | Add-RedirectFilter
/// </code>
/// <para>Removes NvRedirect's filters in agent-ns and installs them again from the objects read back: each is sent with the request that created it.</para>
/// </example>
[Cmdlet(VerbsCommon.Add, "RedirectFilter", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, DefaultParameterSetName = TextSet)]
[OutputType(typeof(RedirectFilter))]
public sealed class AddRedirectFilterCommand : TcCmdletBase
{
    private const string TextSet = "Text", TypedSet = "Typed", ObjectSet = "Object";

    /// <summary><para type="description">The device whose ingress gets the filter (a link object binds here through its LinkName property); it needs an ingress qdisc (Add-AgentQdisc).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = TextSet)]
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = TypedSet)]
    [Alias("Interface")]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string LinkName { get; set; } = "";

    /// <summary><para type="description">The device's namespace; the root namespace when absent. Mirred targets are devices of the same namespace.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = TextSet)]
    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = TypedSet)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">The pref (1-65535): lower prefs are tried first, and the pref is what identifies the filter for replacing and removing it.</para></summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = TextSet)]
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = TypedSet)]
    [Alias("Pref")]
    [ValidateRange(1, 65535)]
    public int Priority { get; set; }

    /// <summary><para type="description">The ethernet protocol the filter applies to: ip, ipv6, arp, all (the default, as in tc) or a number such as 0x0800.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = TextSet)]
    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = TypedSet)]
    public string Protocol { get; set; } = "all";

    /// <summary><para type="description">u32 matches in tc's syntax, all of which must hold: 'u8|u16|u32 VALUE MASK [at OFFSET]', offsets from the network header (-14 = destination MAC, -8 = source MAC). Matches on the same 32-bit word are merged as tc merges them. None means match everything.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = TextSet)]
    public string[]? Match { get; set; }

    /// <summary><para type="description">The actions in execution order, one per element, in tc's syntax: 'pedit munge offset OFFSET u8|u16|u32 set VALUE ... [CONTROL]' and 'mirred egress|ingress mirror|redirect dev DEVICE [CONTROL]' (CONTROL: pipe, pass, drop, continue, reclassify).</para></summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = TextSet)]
    public string[] Action { get; set; } = [];

    /// <summary><para type="description">Typed form: match frames whose destination MAC is this one.</para></summary>
    [Parameter(ParameterSetName = TypedSet)]
    public string? DestinationMac { get; set; }

    /// <summary><para type="description">Typed form: match frames whose source MAC is this one.</para></summary>
    [Parameter(ParameterSetName = TypedSet)]
    public string? SourceMac { get; set; }

    /// <summary><para type="description">Typed form: match only frames to a unicast destination (tc's `match u8 0 1 at -14`).</para></summary>
    [Parameter(ParameterSetName = TypedSet)]
    public SwitchParameter UnicastOnly { get; set; }

    /// <summary><para type="description">Typed form: rewrite the destination MAC to this one (a pedit action with control pipe, before the mirred action). Needs -DestinationMac or -SourceMac.</para></summary>
    [Parameter(ParameterSetName = TypedSet)]
    public string? RewriteDestinationMac { get; set; }

    /// <summary><para type="description">Typed form: rewrite the source MAC to this one (a pedit action with control pipe, before the mirred action). Needs -DestinationMac or -SourceMac.</para></summary>
    [Parameter(ParameterSetName = TypedSet)]
    public string? RewriteSourceMac { get; set; }

    /// <summary><para type="description">Typed form: copy matching frames to this device (mirred mirror); the original frame goes on.</para></summary>
    [Parameter(ParameterSetName = TypedSet)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string? MirrorTo { get; set; }

    /// <summary><para type="description">Typed form: send matching frames to this device instead (mirred redirect).</para></summary>
    [Parameter(ParameterSetName = TypedSet)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string? RedirectTo { get; set; }

    /// <summary><para type="description">Typed form: hand the frames to the target device's receive path (mirred ingress) instead of transmitting them out of it (egress).</para></summary>
    [Parameter(ParameterSetName = TypedSet)]
    public SwitchParameter ToIngress { get; set; }

    /// <summary><para type="description">A filter read back by Get-RedirectFilter, added again (to its own device and namespace) with the request that created it, cookie included.</para></summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = ObjectSet)]
    public RedirectFilter? InputObject { get; set; }

    /// <summary><para type="description">A tag stored in the actions' cookie, shown by Get-RedirectFilter and usable with its -Tag: up to 8 UTF-8 bytes are stored as they are, a longer tag as the first 8 bytes of its SHA-256 (shown in hex).</para></summary>
    [Parameter(ParameterSetName = TextSet)]
    [Parameter(ParameterSetName = TypedSet)]
    public string? Tag { get; set; }

    /// <summary><para type="description">Send no cookie: exactly tc's bytes. The filter is then not recognised as NvRedirect's (removing it needs -Force).</para></summary>
    [Parameter(ParameterSetName = TextSet)]
    [Parameter(ParameterSetName = TypedSet)]
    public SwitchParameter NoCookie { get; set; }

    /// <summary><para type="description">Replace whatever the pref holds even when NvRedirect did not install it.</para></summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <inheritdoc/>
    protected override void BeginProcessing()
    {
        if (ParameterSetName != TypedSet) return;
        string? problem = null;
        if ((MirrorTo == null) == (RedirectTo == null))
            problem = "Give the target device with either -MirrorTo or -RedirectTo (one of them).";
        else if (DestinationMac != null && SourceMac != null)
            problem = "Compare one MAC: give -DestinationMac or -SourceMac, not both (for more matches use -Match).";
        else if (RewriteDestinationMac != null && RewriteSourceMac != null)
            problem = "Rewrite one MAC: give -RewriteDestinationMac or -RewriteSourceMac, not both (for more munges use -Action).";
        if (problem != null)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException(problem), ErrorPrefix + "InvalidTypedForm", ErrorCategory.InvalidArgument, null));
    }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        if (ParameterSetName == ObjectSet)
        {
            var input = InputObject!;
            Try(input, () =>
            {
                if (input.Filter is not U32Filter read)
                    throw new ArgumentException($"Only u32 filters can be added again; the {input.Kind} filter at pref {input.Priority} of {input.LinkName} cannot.");
                Install(input.Namespace, input.LinkName, RedirectFilterBuilder.ForReAdd(read));
            });
            return;
        }
        Try(LinkName, () =>
        {
            var protocol = TcProtocol.Parse(Protocol);
            var filter = ParameterSetName == TypedSet
                ? RedirectFilterBuilder.FromTyped((ushort)Priority, protocol,
                    DestinationMac != null ? MacField.Destination : SourceMac != null ? MacField.Source : null,
                    Mac(DestinationMac ?? SourceMac, DestinationMac != null ? "-DestinationMac" : "-SourceMac"), UnicastOnly,
                    RewriteDestinationMac != null ? MacField.Destination : RewriteSourceMac != null ? MacField.Source : null,
                    Mac(RewriteDestinationMac ?? RewriteSourceMac, RewriteDestinationMac != null ? "-RewriteDestinationMac" : "-RewriteSourceMac"),
                    new MirredAction
                    {
                        TargetName = MirrorTo ?? RedirectTo,
                        Mode = MirrorTo != null ? MirredMode.Mirror : MirredMode.Redirect,
                        Direction = ToIngress ? MirredDirection.Ingress : MirredDirection.Egress,
                    })
                : RedirectFilterBuilder.FromText((ushort)Priority, protocol, Match, Action);
            Install(Namespace ?? "", LinkName, RedirectFilterBuilder.WithCookie(filter, NoCookie ? null : RedirectCookie.ForTag(Tag)));
        });
    }

    private static byte[]? Mac(string? text, string parameter) => text == null ? null : Parse.Mac(text, $"MAC address for {parameter}");

    private void Install(string ns, string linkName, U32Filter filter)
    {
        var tc = Tc(ns);
        var link = tc.Handle.GetLink(linkName);
        filter = filter with { LinkIndex = link.Index, LinkName = link.Name };
        var description = $"Add u32 filter pref {filter.Priority} protocol {filter.ProtocolName}: " +
                          $"{string.Join(", ", TcText.DescribeMatches(filter.Selector))} -> {string.Join(", ", filter.Actions.Select(TcText.Describe))}";
        if (!ShouldProcess($"{link.Name} in {Where(ns)}", description)) return;
        var result = tc.AddFilter(filter, Force ? null : RedirectCookie.IsOurs);
        WriteObject(RedirectFilter.From(ns, result.Filter, result.Change));
    }
}

/// <summary>
/// <para type="synopsis">Lists the ingress filters of a namespace's devices, like `tc -s filter show dev DEV ingress`, as objects.</para>
/// <para type="description">Returns one object per u32 node (tc's three dump entries per pref folded into one) or bpf program: device, pref, protocol, handle, readable matches and actions (pedit keys decoded back to offset, size and value; mirred targets by name), the packet and byte counters, and whether NvRedirect installed it (IsOwned, from the actions' cookie). Without -LinkName every device with an ingress qdisc is listed.</para>
/// <para type="description">The objects pipe into Remove-RedirectFilter (by LinkName, Priority and Namespace) and into Add-RedirectFilter, which adds them again with the same request.</para>
/// </summary>
/// <example><code>Get-RedirectFilter -Namespace agent-ns</code><para>Lists every ingress filter in agent-ns with its matches, actions and counters.</para></example>
/// <example><code>Get-RedirectFilter vex -Namespace agent-ns -Owned | Remove-RedirectFilter</code><para>Removes the filters NvRedirect installed on vex; filters other tools installed there stay.</para></example>
/// <example><code>Get-RedirectFilter -Namespace agent-ns | Where-Object Packets -gt 0 | Format-Table LinkName, Priority, Packets, Actions</code><para>Shows which filters have seen traffic.</para></example>
[Cmdlet(VerbsCommon.Get, "RedirectFilter")]
[OutputType(typeof(RedirectFilter))]
public sealed class GetRedirectFilterCommand : TcCmdletBase
{
    /// <summary><para type="description">Only filters of these devices: names or wildcard patterns (a link object binds here through its LinkName property). A name without wildcards that matches no device is reported as an error.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Interface")]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    [SupportsWildcards]
    public string[]? LinkName { get; set; }

    /// <summary><para type="description">The namespace to list (a namespace object binds here); the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Only filters at these prefs.</para></summary>
    [Parameter]
    [Alias("Pref")]
    [ValidateRange(1, 65535)]
    public int[]? Priority { get; set; }

    /// <summary><para type="description">Only filters NvRedirect installed (every action carries its cookie).</para></summary>
    [Parameter]
    public SwitchParameter Owned { get; set; }

    /// <summary><para type="description">Only filters NvRedirect installed with this -Tag.</para></summary>
    [Parameter]
    public string? Tag { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(ns, () =>
        {
            var tc = Tc(ns);
            var all = tc.Handle.DumpLinks();
            var names = all.ToDictionary(l => l.Index, l => l.Name);
            var links = Select(all, l => l.Name, LinkName, n => new LinkNotFoundException(n, ns));
            var withIngress = tc.ListQdiscs().Where(q => q.IsIngress).Select(q => q.LinkIndex).ToHashSet();
            var tag = Tag != null ? RedirectCookie.TagText(RedirectCookie.ForTag(Tag)) : null;
            foreach (var link in links.Where(l => withIngress.Contains(l.Index)).OrderBy(l => l.Index))
            {
                foreach (var filter in tc.ListFilters(link.Index, names: names))
                {
                    if (Priority is { Length: > 0 } && !Priority.Contains(filter.Priority)) continue;
                    if (Owned && !RedirectCookie.IsOurs(filter)) continue;
                    if (tag != null && RedirectCookie.TagText(filter) != tag) continue;
                    WriteObject(RedirectFilter.From(ns, filter));
                }
            }
        });
    }
}

/// <summary>
/// <para type="synopsis">Removes the filters at a pref of a device's ingress, like `tc filter del dev DEV parent ffff: pref N`.</para>
/// <para type="description">Removes every filter at the pref (tc removes by pref). Filters NvRedirect did not install (their actions carry no NvRedirect cookie) are refused unless -Force is given, so cleaning up never removes another tool's filters. A pref that holds nothing is an error, except for filters already removed earlier in the same pipeline. Filter objects from Get-RedirectFilter bind by LinkName, Priority and Namespace.</para>
/// </summary>
/// <example><code>Remove-RedirectFilter vex 10001 -Namespace agent-ns</code><para>Removes the steering filter at pref 10001 of vex; the catch-all at pref 10002 stays.</para></example>
/// <example><code>Get-RedirectFilter -Namespace agent-ns -Owned | Remove-RedirectFilter</code><para>Removes every filter NvRedirect installed in agent-ns and nothing else.</para></example>
[Cmdlet(VerbsCommon.Remove, "RedirectFilter", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveRedirectFilterCommand : TcCmdletBase
{
    private readonly HashSet<(string Namespace, int LinkIndex, int Priority)> _removed = new();

    /// <summary><para type="description">The device (a filter or link object binds here through its LinkName property).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Interface")]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string LinkName { get; set; } = "";

    /// <summary><para type="description">The pref whose filters go.</para></summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [Alias("Pref")]
    [ValidateRange(1, 65535)]
    public int Priority { get; set; }

    /// <summary><para type="description">The device's namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Remove the filters even when NvRedirect did not install them.</para></summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(LinkName, () =>
        {
            var tc = Tc(ns);
            var link = tc.Handle.GetLink(LinkName);
            var pref = (ushort)Priority;
            var present = tc.HasIngressQdisc(link.Index) ? tc.ListFilters(link.Index, pref) : [];
            if (present.Count == 0)
            {
                if (_removed.Contains((ns, link.Index, pref)))
                {
                    WriteVerbose($"Pref {pref} of {tc.Handle.Describe(link.Name)} is already gone: it was removed earlier in this pipeline.");
                    return;
                }
                throw new FilterNotFoundException(pref, tc.Handle.Describe(link.Name));
            }
            if (!Force && present.FirstOrDefault(f => !RedirectCookie.IsOurs(f)) is { } foreign)
                throw new FilterNotOwnedException(foreign, tc.Handle.Describe(link.Name), "removed");
            var what = string.Join("; ", present.Select(f => f is U32Filter u ? string.Join(", ", u.Actions.Select(TcText.Describe)) : f.Kind));
            if (!ShouldProcess($"{link.Name} in {Where(ns)}", $"Remove the filter(s) at pref {pref} ({what})")) return;
            tc.RemoveFilter(link.Index, pref);
            _removed.Add((ns, link.Index, pref));
        });
    }
}
