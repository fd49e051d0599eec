using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;

namespace NvRedirect.Cmdlets;

/// <summary>
/// <para type="synopsis">Adds an IPv4 or IPv6 address to a link, like `ip addr add ADDR/PREFIX dev DEV`.</para>
/// <para type="description">Sends what iproute2 sends (local = address, no broadcast). The kernel adds the prefix route itself. An address already present is an error.</para>
/// <para type="description">Each address of -Address is added and returned on its own, so one that fails does not stop the others. Link objects from Get-AgentLink bind by Name and Namespace; -Address binds by property name too.</para>
/// </summary>
/// <example><code>Add-AgentAddress eth0 10.10.10.88/24 -Namespace container-ns</code><para>Gives eth0 in container-ns the address 10.10.10.88 on the network 10.10.10.0/24 and returns the new address.</para></example>
/// <example><code>Get-AgentLink eth0 -Namespace container-ns | Add-AgentAddress -Address 10.10.10.89/24, 2001:db8::89/64</code><para>Adds an IPv4 and an IPv6 address to the link piped in.</para></example>
/// <example><code>Import-Csv workloads.csv | Add-AgentAddress</code><para>Adds the address of every row (columns LinkName, Namespace, Address) to its link: a topology's addresses in one pipeline.</para></example>
/// <example><code>Get-AgentAddress eth0 -Namespace ctr1 -Family IPv4 | Add-AgentAddress -Namespace ctr2</code><para>Copies eth0's IPv4 addresses in ctr1 to eth0 in ctr2 (piped back into ctr1 they would each fail with AlreadyExists).</para></example>
[Cmdlet(VerbsCommon.Add, "AgentAddress", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(AgentAddress))]
public sealed class AddAgentAddressCommand : LinkCmdletBase
{
    /// <summary><para type="description">The link (a link object binds here through its LinkName property).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Interface")]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string LinkName { get; set; } = "";

    /// <summary><para type="description">Address(es) with prefix length, e.g. 10.10.10.88/24 or 2001:db8::1/64; a bare address gets /32 or /128. Binds by property name, so objects with LinkName (or Interface), Namespace and Address (Import-Csv rows) add one address per link in one pipeline. Address objects from Get-AgentAddress bind too (LinkName, Namespace, Address): piped back into the same namespace each is already there and reported as AlreadyExists; with -Namespace they are copied to the same-named links of another namespace.</para></summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    public string[] Address { get; set; } = [];

    /// <summary><para type="description">The link's namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        foreach (var text in Address)
        {
            Try(text, () =>
            {
                var (ip, prefix) = Parse.Cidr(text);
                var handle = Query.Handle(ns);
                var link = handle.GetLink(LinkName);
                if (!ShouldProcess($"{LinkName} in {Where(ns)}", $"Add address {ip}/{prefix}")) return;
                handle.AddAddress(link, ip, prefix);
                var added = handle.DumpAddresses().FirstOrDefault(a => a.Index == link.Index && a.Address.Equals(ip) && a.PrefixLength == prefix);
                if (added != null) WriteObject(LinkQuery.ToAddress(ns, added, link.Name));
            });
        }
        Reset();
    }
}

/// <summary>
/// <para type="synopsis">Lists addresses in a namespace, like `ip addr show`.</para>
/// <para type="description">Reads every address of -Namespace (the root namespace by default) and returns one object per address with its link, family, prefix length and scope. -LinkName narrows the list to some links and -Family to one address family. Link objects from Get-AgentLink bind by Name and Namespace.</para>
/// </summary>
/// <example><code>Get-AgentAddress -Namespace container-ns -Family IPv4</code><para>Lists the IPv4 addresses of every link in container-ns.</para></example>
/// <example><code>Get-AgentLink -Namespace agent-ns -Kind veth | Get-AgentAddress</code><para>Lists the addresses of the veth links in agent-ns.</para></example>
[Cmdlet(VerbsCommon.Get, "AgentAddress")]
[OutputType(typeof(AgentAddress))]
public sealed class GetAgentAddressCommand : LinkCmdletBase
{
    /// <summary><para type="description">Only addresses of these links: names or wildcard patterns (a link object binds here through its LinkName property). A name without wildcards that matches no link is reported as an error.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Interface")]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    [SupportsWildcards]
    public string[]? LinkName { get; set; }

    /// <summary><para type="description">The namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <summary><para type="description">Only IPv4 or only IPv6 addresses; both when absent.</para></summary>
    [Parameter]
    [ValidateSet("IPv4", "IPv6")]
    public string? Family { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        Try(ns, () =>
        {
            var all = Query.Addresses(ns).Where(a => Family == null || a.Family == Family);
            if (LinkName is { Length: > 0 })
            {
                var links = Query.Handle(ns).DumpLinks().Select(l => l.Name);
                foreach (var p in LinkName.Where(p => !WildcardPattern.ContainsWildcardCharacters(p) && !links.Contains(p)))
                    WriteFailure(new LinkNotFoundException(p, ns), p);
                var patterns = LinkName.Select(p => WildcardPattern.Get(p, WildcardOptions.None)).ToList();
                all = all.Where(a => patterns.Any(p => p.IsMatch(a.LinkName)));
            }
            WriteObject(all, enumerateCollection: true);
        });
        Reset();
    }
}

/// <summary>
/// <para type="synopsis">Removes an address from a link, like `ip addr del ADDR/PREFIX dev DEV`.</para>
/// <para type="description">The address must match one on the link including its prefix length, as Get-AgentAddress shows it (a bare address means /32 or /128); an address that is not on the link is an error. Address objects from Get-AgentAddress bind by LinkName, Address and Namespace.</para>
/// </summary>
/// <example><code>Remove-AgentAddress eth0 10.10.10.88/24 -Namespace container-ns</code><para>Removes 10.10.10.88/24 from eth0 in container-ns.</para></example>
/// <example><code>Get-AgentAddress eth0 -Namespace container-ns | Remove-AgentAddress</code><para>Removes every address of eth0 in container-ns.</para></example>
[Cmdlet(VerbsCommon.Remove, "AgentAddress", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveAgentAddressCommand : LinkCmdletBase
{
    private readonly List<(string Namespace, int Index, System.Net.IPAddress Address, int PrefixLength)> _removed = new();

    /// <summary><para type="description">The link holding the address (an address object's LinkName binds here).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(LinkNameCompleter))]
    public string LinkName { get; set; } = "";

    /// <summary><para type="description">Address(es) with prefix length, as shown by Get-AgentAddress.</para></summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    public string[] Address { get; set; } = [];

    /// <summary><para type="description">The namespace; the root namespace when absent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString, AllowNull]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string? Namespace { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var ns = Namespace ?? "";
        foreach (var text in Address)
        {
            Try(text, () =>
            {
                var (ip, prefix) = Parse.Cidr(text);
                var handle = Query.Handle(ns);
                var link = handle.GetLink(LinkName);
                if (!handle.DumpAddresses().Any(a => a.Index == link.Index && a.Address.Equals(ip) && a.PrefixLength == prefix))
                {
                    // removing a primary IPv4 address makes the kernel drop the secondaries of its subnet too
                    if (_removed.Any(r => r.Namespace == ns && r.Index == link.Index && Parse.InSubnet(ip, r.Address, r.PrefixLength) && r.PrefixLength == prefix))
                    {
                        WriteVerbose($"{ip}/{prefix} on {LinkName} is already gone: the kernel removed it with the primary address of its subnet.");
                        return;
                    }
                    throw new AddressNotFoundException(ip, prefix, handle.Describe(LinkName));
                }
                if (!ShouldProcess($"{LinkName} in {Where(ns)}", $"Remove address {ip}/{prefix}")) return;
                handle.DeleteAddress(link, ip, prefix);
                _removed.Add((ns, link.Index, ip, prefix));
            });
        }
        Reset();
    }
}
