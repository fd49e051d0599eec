using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using NvRedirect.Core.Datapath;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Cmdlets;

/// <summary>Completes workload MACs with those registered with the datapath on -ControlSocket (default: the running datapath's).</summary>
public sealed class DpWorkloadMacCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var prefix = (wordToComplete ?? "").Trim('\'', '"');
        var socket = fakeBoundParameters?["ControlSocket"] as string;
        try
        {
            using var client = DpClient.Open(string.IsNullOrEmpty(socket) ? DpCmdlet.DefaultSocket() : socket, TimeSpan.FromSeconds(1));
            return client.State().Workloads
                .Where(w => w.Mac.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                .OrderBy(w => w.Mac, StringComparer.Ordinal)
                .Select(w => new CompletionResult(w.Mac, w.Mac, CompletionResultType.ParameterValue, $"{w.Mac} ({w.Mode}, {(w.Tap ? "tap" : "inline")})"))
                .ToList();
        }
        catch (Exception) { return []; } // completion must never throw at the prompt
    }
}

/// <summary>Completes a rule's protocol with the names New-DpRule knows.</summary>
public sealed class DpProtocolCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var prefix = (wordToComplete ?? "").Trim('\'', '"');
        return new[] { "Any", "TCP", "UDP", "ICMP", "ICMPv6" }.Where(p => p.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .Select(p => new CompletionResult(p, p, CompletionResultType.ParameterValue, p));
    }
}

/// <summary>What the policy cmdlets share: finding workloads and their policies, and sending a policy in its chunks.</summary>
public abstract class DpPolicyCmdlet : DpCmdlet
{
    /// <summary>A client of the datapath on <paramref name="socket"/> (an absolute path).</summary>
    protected DpClient OpenClient(string socket) => DpClient.Open(socket, TimeSpan.FromSeconds(TimeoutSeconds));

    /// <summary>The workload registered under <paramref name="text"/> (its MAC or an alias); ItemNotFoundException when none is.</summary>
    protected static DpWorkload Resolve(DatapathInfo state, string text, string socket)
    {
        var mac = FormatMac(text, "MAC");
        return state.FindWorkload(mac)
            ?? throw new ItemNotFoundException($"{mac} is not registered with the datapath at {socket}; register it with Add-DpMac, or list the workloads with Get-Datapath.");
    }

    /// <summary>
    /// The real MACs of <paramref name="requested"/> (MACs or aliases), each unknown one reported as NotFound: null when
    /// nothing was requested (= every workload), an empty list when none of them is registered.
    /// </summary>
    protected List<string>? ResolveAll(DpClient client, string[]? requested, string socket)
    {
        if (requested is not { Length: > 0 }) return null;
        var state = client.State(requested.Select(m => FormatMac(m, "MAC")).ToList());
        var macs = new List<string>();
        foreach (var m in requested) Try(m, () => macs.Add(Resolve(state, m, socket).Mac));
        return macs.Distinct().ToList();
    }

    /// <summary>
    /// Which rules go to which workload: all of <paramref name="rules"/> to each of <paramref name="macs"/>, or, without
    /// MACs, each rule to the workload its Mac names. Workloads are resolved (an alias and its MAC are one workload);
    /// unknown MACs and rules naming no workload are reported, the rest goes on.
    /// </summary>
    protected List<(DpWorkload Workload, List<DpRule> Rules)> RulesPerWorkload(DatapathInfo state, string socket, string[]? macs, List<DpRule> rules)
    {
        var targets = new List<(DpWorkload Workload, List<DpRule> Rules)>();
        void Target(string text, IEnumerable<DpRule> given) => Try(text, () =>
        {
            var w = Resolve(state, text, socket);
            var entry = targets.FirstOrDefault(t => t.Workload.Mac == w.Mac);
            if (entry.Workload == null) targets.Add((w, given.ToList()));
            else entry.Rules.AddRange(given);
        });
        if (macs != null) foreach (var m in macs) Target(m, rules);
        else
        {
            foreach (var r in rules.Where(r => string.IsNullOrEmpty(r.Mac)))
                WriteFailure(new ArgumentException($"Rule {r} names no workload: give -Mac, or build it with New-DpRule -Mac."), r);
            foreach (var g in rules.Where(r => !string.IsNullOrEmpty(r.Mac)).GroupBy(r => r.Mac!, StringComparer.OrdinalIgnoreCase)) Target(g.Key, g);
        }
        return targets;
    }

    /// <summary>
    /// Runs <paramref name="action"/> for each of <paramref name="macs"/> with its workload and current policy, read
    /// through one policy editor of the datapath at -ControlSocket; a failure is reported for its workload and the
    /// others go on.
    /// </summary>
    protected void ForEachWorkload(IEnumerable<string> macs, Action<DpPolicyEditor, DpWorkload, DpPolicy, string> action)
    {
        var socket = SocketPath;
        Try(socket, () =>
        {
            using var client = OpenClient(socket);
            var list = macs.ToList();
            // only these workloads are read (an unparsable MAC is reported below, by Resolve)
            List<string>? wanted = [];
            foreach (var m in list)
            {
                try { wanted.Add(FormatMac(m, "MAC")); }
                catch (ArgumentException) { wanted = null; break; }
            }
            var editor = DpPolicyEditor.Read(client, wanted);
            foreach (var m in list)
                Try(m, () =>
                {
                    var w = Resolve(editor.State, m, socket);
                    action(editor, w, editor.PolicyOf(w.Mac), socket);
                });
        });
    }

    /// <summary>Writes <paramref name="change"/> when ShouldProcess agrees (<paramref name="what"/> says what it does); with <paramref name="passThru"/>, outputs the policy afterwards.</summary>
    protected void WriteChange(DpPolicyEditor editor, DpPolicyChange change, string what, bool passThru)
    {
        if (!ShouldProcess($"{change.Mac} at {editor.Client.ControlSocket}", what)) return;
        editor.Write(change);
        if (passThru) WriteObject(editor.ReadAgain(change.Mac));
    }
}

/// <summary>
/// <para type="synopsis">Builds a policy rule from text: source, destination, port, protocol, action and direction. Changes nothing.</para>
/// <para type="description">A rule is matched against a session as the datapath sees it, client to server: Source is the client, Destination the server, Port the server's port (ICMP sessions have port 0, which -Port any covers), -Direction Ingress means the workload is the server, Egress that it is the client. Addresses are IPv4 (a.b.c.d, a CIDR such as 10.10.10.0/24, a range FIRST-LAST, or any / *) or IPv6 (fd00::5, a prefix such as fd00::/64, a range fd00::1-fd00::9); a rule is all IPv4 or all IPv6, and any on the other side of an IPv6 address means every IPv6 address, while any on both sides covers both families; ports are N, FIRST-LAST or any / *; the protocol is Any (TCP, UDP and ICMP or ICMPv6), TCP, UDP, ICMP, ICMPv6 (ping6; IPv6 rules) or a number. The rule goes to a workload with Set-DpPolicy or Add-DpPolicyRule; -Mac names the workload it is meant for, so rules for several workloads can go down one pipeline. Id 0 (the default) gets the next free id when the rule is sent. Bad text is reported as NewDpRuleInvalidArgument with what is wrong.</para>
/// </summary>
/// <example><code>New-DpRule -Source 10.10.10.0/24 -Port 8000-8100 -Protocol TCP | Add-DpPolicyRule -Mac 1a:27:f3:87:3a:27 -ControlSocket $dp.ControlSocket</code><para>Allows TCP sessions from 10.10.10.0/24 to ports 8000-8100 of the workload, in addition to its rules.</para></example>
/// <example><code>New-DpRule -Id 10 -Destination 192.0.2.1 -Port 53 -Protocol UDP -Direction Egress -Action Deny</code><para>Builds rule 10: the workload may not send DNS queries to 192.0.2.1.</para></example>
/// <example><code>Get-DpPolicy | Select-Object -ExpandProperty Rules | Export-Clixml rules.xml; Import-Clixml rules.xml | New-DpRule | Set-DpPolicy</code><para>Saves every workload's rules and, later (say after the datapath was restarted and the workloads registered again), gives them back: the saved rules bind to New-DpRule by property name (their Mac included), and Set-DpPolicy sends each workload its own. The default actions are set again with Set-DpWorkloadMode.</para></example>
/// <example><code>Import-Csv rules.csv | New-DpRule | Set-DpPolicy -Mac 1a:27:f3:87:3a:27 -DefaultAction Deny</code><para>Builds one rule per CSV row (columns Source, Destination, Port, Protocol, Action, Direction bind by name) and makes them the workload's whole policy, blocking everything else.</para></example>
[Cmdlet(VerbsCommon.New, "DpRule")]
[OutputType(typeof(DpRule))]
public sealed class NewDpRuleCommand : NvCmdlet
{
    /// <summary><para type="description">The rule's id (reported with every connection it decides); 0, the default, gets the next free id when the rule is sent.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public uint Id { get; set; }

    /// <summary><para type="description">The client addresses: a.b.c.d or an IPv6 address (fd00::1), NETWORK/PREFIX, FIRST-LAST, or any (default).</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    public string Source { get; set; } = "any";

    /// <summary><para type="description">The server addresses: a.b.c.d or an IPv6 address (fd00::1), NETWORK/PREFIX, FIRST-LAST, or any (default).</para></summary>
    [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
    public string Destination { get; set; } = "any";

    /// <summary><para type="description">The server ports: N, FIRST-LAST, or any (default; ICMP sessions have port 0).</para></summary>
    [Parameter(Position = 2, ValueFromPipelineByPropertyName = true)]
    public string Port { get; set; } = "any";

    /// <summary><para type="description">Any (default: TCP, UDP and ICMP), TCP, UDP, ICMP, ICMPv6 (for IPv6 addresses), or an IP protocol number.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(DpProtocolCompleter))]
    public string Protocol { get; set; } = "Any";

    /// <summary><para type="description">What the rule does: Allow (default), Deny (block), Violate (pass and report), Learn, Open, or CheckVh/CheckNbe/CheckApp (which nvr-dp treats as Allow).</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public DpPolicyAction Action { get; set; } = DpPolicyAction.Allow;

    /// <summary><para type="description">Ingress (default): sessions opened towards the workload. Egress: sessions the workload opens.</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateSet("Ingress", "Egress")]
    public DpDirection Direction { get; set; } = DpDirection.Ingress;

    /// <summary><para type="description">The workload the rule is meant for (Set-DpPolicy and Add-DpPolicyRule group rules by it when they get no -Mac).</para></summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    [AllowNull, AllowEmptyString]
    public string? Mac { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try($"{Source} -> {Destination}:{Port}", () =>
        {
            var mac = string.IsNullOrEmpty(Mac) ? null : NvRedirect.Core.Model.Parse.Mac(NvRedirect.Core.Model.Parse.Mac(Mac, "MAC"));
            WriteObject(DpRule.Parse(Source, Destination, Port, Protocol, Action, Direction, Id, mac));
        });
    }
}

/// <summary>
/// <para type="synopsis">Replaces the policy of workloads: their rules, default action and direction (ctrl_cfg_policy).</para>
/// <para type="description">The rules, in the order given, become each workload's whole rule list (the datapath matches them first to last; a session no rule matches gets the default action). Rules from the pipeline are collected and sent once the pipeline ends: with -Mac they go to every workload named, without it each rule goes to the workload in its Mac property (rules from Get-DpPolicy, ConvertTo-DpRule or New-DpRule -Mac have one). Without -Rule the current rules are kept, so `Set-DpPolicy -Mac M -DefaultAction Deny` changes only the default. -DefaultAction and -Direction keep the current policy's values when omitted (a workload without a policy: Open and Both). Rules with id 0 get the next free ids; two rules with the same id are refused. The request is ADD for a workload without a policy and MODIFY otherwise, one datagram when it fits in 8120 bytes, else chunks flagged START, middle and END as NeuVector's agent sends them; the datapath swaps the new policy in at END and re-evaluates the workload's sessions on their next packet. A MAC the datapath does not know is reported as SetDpPolicyNotFound; a refused policy as SetDpPolicyRejected with the datapath's reason.</para>
/// </summary>
/// <example><code>Get-DpConnection -Mac 1a:27:f3:87:3a:27 -Learned | ConvertTo-DpRule | Set-DpPolicy</code><para>Turns what the workload did in Discover mode into allow rules and makes them its policy (its mode is kept).</para></example>
/// <example><code>Set-DpPolicy -Mac 1a:27:f3:87:3a:27 -Rule (New-DpRule -Source 10.10.10.66 -Port 5201 -Protocol TCP) -DefaultAction Deny -Direction Both -PassThru</code><para>Lets only 10.10.10.66 reach TCP port 5201 of the workload and blocks every other session both ways; returns the policy as the datapath then reports it.</para></example>
/// <example><code>Set-DpPolicy -Mac 1a:27:f3:87:3a:27 -Rule @()</code><para>Removes every rule, keeping the default action: the workload's mode alone decides.</para></example>
/// <example><code>Get-DpPolicy -ControlSocket $dp.ControlSocket | Where-Object Mode -eq Monitor | Set-DpPolicy -DefaultAction Deny</code><para>Policies from Get-DpPolicy name their workloads: every workload in Monitor mode gets the default Deny, its rules kept.</para></example>
[Cmdlet(VerbsCommon.Set, "DpPolicy", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "Rules")]
[OutputType(typeof(DpPolicy))]
public sealed class SetDpPolicyCommand : DpPolicyCmdlet
{
    /// <summary><para type="description">The workloads (MAC or alias) whose policy is replaced; absent: each rule's own Mac.</para></summary>
    [Parameter(Position = 0, ParameterSetName = "Rules")]
    [ArgumentCompleter(typeof(DpWorkloadMacCompleter))]
    public string[]? Mac { get; set; }

    /// <summary><para type="description">The rules, in matching order (from New-DpRule, ConvertTo-DpRule, or a policy's Rules); from the pipeline they are collected first. Absent: the current rules are kept.</para></summary>
    [Parameter(Position = 1, ValueFromPipeline = true, ParameterSetName = "Rules")]
    [AllowEmptyCollection]
    public DpRule[]? Rule { get; set; }

    /// <summary><para type="description">Policies (from Get-DpPolicy) whose workloads get the new default action or direction; their current rules are kept.</para></summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = "Policy")]
    public DpPolicy[] InputObject { get; set; } = [];

    /// <summary><para type="description">What happens to sessions no rule matches: Learn (Discover), Violate (Monitor), Deny (Protect), Open, Allow... Absent: the current default (Open without a policy).</para></summary>
    [Parameter]
    public DpPolicyAction? DefaultAction { get; set; }

    /// <summary><para type="description">Which sessions are policed: Ingress, Egress or Both. Absent: the current direction (Both without a policy).</para></summary>
    [Parameter]
    public DpDirection? Direction { get; set; }

    /// <summary><para type="description">Return each policy as the datapath then reports it.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    private readonly List<(string Socket, DpRule Rule)> _rules = [];
    private readonly List<(string Socket, string Mac)> _policies = [];
    private readonly List<string> _sockets = [];
    private bool _ruleGiven;

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        if (ParameterSetName == "Policy")
        {
            // each policy names its workload and its datapath
            foreach (var p in InputObject)
            {
                if (p == null) continue;
                var at = string.IsNullOrEmpty(p.ControlSocket) ? SocketPath : p.ControlSocket;
                if (!_sockets.Contains(at)) _sockets.Add(at);
                _policies.Add((at, p.Mac));
            }
            return;
        }
        var socket = SocketPath;
        if (!_sockets.Contains(socket)) _sockets.Add(socket);
        if (Rule == null) return;
        _ruleGiven = true;
        foreach (var r in Rule) if (r != null) _rules.Add((socket, r));
    }

    /// <inheritdoc/>
    protected override void EndProcessing()
    {
        foreach (var socket in _sockets)
        {
            var rules = _rules.Where(x => x.Socket == socket).Select(x => x.Rule).ToList();
            var macs = ParameterSetName == "Policy" ? _policies.Where(x => x.Socket == socket).Select(x => x.Mac).ToArray() : Mac;
            if (macs == null && !_ruleGiven)
            {
                WriteFailure(new ArgumentException("Give -Mac (the workloads whose policy to set), -Rule, or both."), socket);
                continue;
            }
            using var client = Open(socket);
            if (client == null) continue;
            DpPolicyEditor? editor = null;
            Try(socket, () => editor = DpPolicyEditor.Read(client));
            if (editor == null) continue;
            // which rules go to which workload (resolved, so an alias and the MAC are one workload)
            foreach (var (w, given) in RulesPerWorkload(editor.State, socket, macs, rules))
                Try(w.Mac, () =>
                {
                    var change = DpPolicyEditor.Replace(editor.PolicyOf(w.Mac), _ruleGiven ? given : null, DefaultAction, Direction);
                    WriteChange(editor, change, $"Set policy: {change.Summary}", PassThru);
                });
        }
    }

    private DpClient? Open(string socket)
    {
        DpClient? client = null;
        Try(socket, () => client = OpenClient(socket));
        return client;
    }
}

/// <summary>
/// <para type="synopsis">Shows the policy of registered workloads: mode, default action, direction, version and rules (nvr_get_policy).</para>
/// <para type="description">One policy per workload, in the datapath's order; without -Mac, every registered workload's. A workload without a policy shows Mode None, default action Open, version 0 and no rules (all its sessions are open). The mode is read from the default action: Learn is Discover, Violate is Monitor, Deny is Protect, anything else Custom. The rules come in matching order with every field, so they can be sent back unchanged (`(Get-DpPolicy M).Rules | Set-DpPolicy`). Workloads from Get-Datapath bind by property name. A MAC the datapath does not know is reported as GetDpPolicyNotFound.</para>
/// </summary>
/// <example><code>Get-DpPolicy -ControlSocket $dp.ControlSocket</code><para>Shows the mode and rule count of every workload of the datapath in $dp.</para></example>
/// <example><code>(Get-DpPolicy 1a:27:f3:87:3a:27).Rules</code><para>Lists the workload's rules as a table: id, direction, protocol, source, destination, port and action.</para></example>
[Cmdlet(VerbsCommon.Get, "DpPolicy")]
[OutputType(typeof(DpPolicy))]
public sealed class GetDpPolicyCommand : DpPolicyCmdlet
{
    /// <summary><para type="description">The workloads (MAC or alias); absent: every registered workload. A workload or policy object binds its Mac here.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    [ArgumentCompleter(typeof(DpWorkloadMacCompleter))]
    public string[]? Mac { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var socket = SocketPath;
        Try(socket, () =>
        {
            using var client = OpenClient(socket);
            var editor = DpPolicyEditor.Read(client);
            if (Mac == null || Mac.Length == 0)
            {
                foreach (var w in editor.State.Workloads) WriteObject(editor.PolicyOf(w.Mac));
                return;
            }
            foreach (var m in Mac) Try(m, () => WriteObject(editor.PolicyOf(Resolve(editor.State, m, socket).Mac)));
        });
    }
}

/// <summary>
/// <para type="synopsis">Removes the policy of workloads (ctrl_cfg_policy DELETE): every session of theirs is open again.</para>
/// <para type="description">The workload keeps its registration and its wire mode (tap or inline) but has no rules and no default action any more: Mode None. A workload that has no policy is left as it is (said with -Verbose). Workloads and policies bind by property name. A MAC the datapath does not know is reported as RemoveDpPolicyNotFound.</para>
/// </summary>
/// <example><code>Remove-DpPolicy -Mac 1a:27:f3:87:3a:27</code><para>Removes the workload's policy: blocked sessions pass again on their next packet.</para></example>
/// <example><code>Get-DpPolicy -ControlSocket $dp.ControlSocket | Where-Object Mode -eq Protect | Remove-DpPolicy -WhatIf</code><para>Shows which workloads in Protect mode would lose their policy.</para></example>
[Cmdlet(VerbsCommon.Remove, "DpPolicy", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(DpPolicy))]
public sealed class RemoveDpPolicyCommand : DpPolicyCmdlet
{
    /// <summary><para type="description">The workloads (MAC or alias); a workload or policy object binds its Mac here.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    [ArgumentCompleter(typeof(DpWorkloadMacCompleter))]
    public string[] Mac { get; set; } = [];

    /// <summary><para type="description">Return each removed policy as it was.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        ForEachWorkload(Mac, (editor, w, current, socket) =>
        {
            if (!current.HasPolicy) { WriteVerbose($"{w.Mac} at {socket} has no policy."); return; }
            if (!ShouldProcess($"{w.Mac} at {socket}", $"Remove policy ({current.Mode}, {current.Rules.Length} rules)")) return;
            editor.Write(DpPolicyEditor.Delete(current));
            if (PassThru) WriteObject(current);
        });
    }
}

/// <summary>
/// <para type="synopsis">Adds rules to the policy of workloads, keeping the other rules, the default action and the direction.</para>
/// <para type="description">Each rule is appended to the end of the workload's rule list (so it is matched after the existing ones), except that a rule with the id of an existing rule replaces that rule in place. Rules with id 0 get the next free ids. Rules from the pipeline are collected and sent once the pipeline ends, one policy change per workload: with -Mac they go to every workload named, without it to the workload in each rule's Mac. A workload without a policy gets one (default action Open, both directions, Mode Custom); switch its mode with Set-DpWorkloadMode. A MAC the datapath does not know is reported as AddDpPolicyRuleNotFound.</para>
/// </summary>
/// <example><code>New-DpRule -Source 10.10.10.0/24 -Port 8000-8100 -Protocol TCP | Add-DpPolicyRule -Mac 1a:27:f3:87:3a:27 -ControlSocket $dp.ControlSocket</code><para>Also allows TCP from 10.10.10.0/24 to ports 8000-8100 of the workload.</para></example>
/// <example><code>Add-DpPolicyRule 1a:27:f3:87:3a:27 (New-DpRule -Id 3 -Source 10.10.10.66 -Protocol ICMP -Action Deny) -PassThru</code><para>Replaces rule 3 (or appends it): pings from 10.10.10.66 are blocked; returns the policy afterwards.</para></example>
[Cmdlet(VerbsCommon.Add, "DpPolicyRule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DpPolicy))]
public sealed class AddDpPolicyRuleCommand : DpPolicyCmdlet
{
    /// <summary><para type="description">The workloads (MAC or alias); absent: each rule's own Mac.</para></summary>
    [Parameter(Position = 0)]
    [ArgumentCompleter(typeof(DpWorkloadMacCompleter))]
    public string[]? Mac { get; set; }

    /// <summary><para type="description">The rules to add (from New-DpRule or ConvertTo-DpRule); from the pipeline they are collected first.</para></summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true)]
    public DpRule[] Rule { get; set; } = [];

    /// <summary><para type="description">Return each policy as the datapath then reports it.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    private readonly List<(string Socket, DpRule Rule)> _rules = [];

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var socket = SocketPath;
        foreach (var r in Rule) if (r != null) _rules.Add((socket, r));
    }

    /// <inheritdoc/>
    protected override void EndProcessing()
    {
        foreach (var group in _rules.GroupBy(x => x.Socket))
        {
            var socket = group.Key;
            Try(socket, () =>
            {
                using var client = OpenClient(socket);
                var editor = DpPolicyEditor.Read(client);
                foreach (var (w, given) in RulesPerWorkload(editor.State, socket, Mac, group.Select(x => x.Rule).ToList()))
                    Try(w.Mac, () =>
                    {
                        var change = DpPolicyEditor.AddRules(editor.PolicyOf(w.Mac), given);
                        WriteChange(editor, change, $"Add {given.Count} rule{(given.Count == 1 ? "" : "s")} (policy: {change.Summary})", PassThru);
                    });
            });
        }
    }
}

/// <summary>
/// <para type="synopsis">Removes rules, by id, from the policy of a workload, keeping the other rules, the default action and the direction.</para>
/// <para type="description">Rules from Get-DpPolicy bind by property name (Mac, Id, ControlSocket), so `(Get-DpPolicy M).Rules | Where-Object Port -eq 80 | Remove-DpPolicyRule` removes the rules for port 80; they are collected and removed in one policy change per workload once the pipeline ends. An id that is not in the policy is reported as RemoveDpPolicyRuleNotFound and the others are still removed. Sessions that only a removed rule allowed get the default action on their next packet.</para>
/// </summary>
/// <example><code>Remove-DpPolicyRule -Mac 1a:27:f3:87:3a:27 -Id 3, 4</code><para>Removes rules 3 and 4 from the workload's policy.</para></example>
/// <example><code>(Get-DpPolicy 1a:27:f3:87:3a:27).Rules | Where-Object Action -eq Deny | Remove-DpPolicyRule -WhatIf</code><para>Shows which deny rules would be removed.</para></example>
[Cmdlet(VerbsCommon.Remove, "DpPolicyRule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(DpPolicy))]
public sealed class RemoveDpPolicyRuleCommand : DpPolicyCmdlet
{
    /// <summary><para type="description">The workload (MAC or alias); a rule or policy object binds its Mac here.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    [ArgumentCompleter(typeof(DpWorkloadMacCompleter))]
    public string Mac { get; set; } = "";

    /// <summary><para type="description">The ids of the rules to remove; a rule object binds its Id here.</para></summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, uint.MaxValue)]
    public uint[] Id { get; set; } = [];

    /// <summary><para type="description">Return each policy as the datapath then reports it.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    private readonly List<(string Socket, string Mac, uint Id)> _ids = [];

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var socket = SocketPath;
        foreach (var id in Id) _ids.Add((socket, Mac, id));
    }

    /// <inheritdoc/>
    protected override void EndProcessing()
    {
        foreach (var group in _ids.GroupBy(x => x.Socket))
        {
            var socket = group.Key;
            Try(socket, () =>
            {
                using var client = OpenClient(socket);
                var editor = DpPolicyEditor.Read(client);
                var targets = new List<(DpWorkload Workload, List<uint> Ids)>();
                foreach (var byMac in group.GroupBy(x => x.Mac, StringComparer.OrdinalIgnoreCase))
                    Try(byMac.Key, () =>
                    {
                        var w = Resolve(editor.State, byMac.Key, socket);
                        var entry = targets.FirstOrDefault(t => t.Workload.Mac == w.Mac);
                        if (entry.Workload == null) targets.Add((w, byMac.Select(x => x.Id).ToList()));
                        else entry.Ids.AddRange(byMac.Select(x => x.Id));
                    });
                foreach (var (w, ids) in targets)
                {
                    Try(w.Mac, () =>
                    {
                        var current = editor.PolicyOf(w.Mac);
                        var change = DpPolicyEditor.RemoveRules(current, ids, out var removed, out var absent);
                        foreach (var missing in absent)
                            WriteFailure(new ItemNotFoundException($"The policy of {w.Mac} at {socket} has no rule {missing}{(current.HasPolicy ? $"; its rules are {(current.Rules.Length == 0 ? "none" : string.Join(", ", current.Rules.Select(r => r.Id)))}" : " (it has no policy)")}."), missing);
                        if (change != null) WriteChange(editor, change, $"Remove rule{(removed.Count == 1 ? "" : "s")} {string.Join(", ", removed)}", PassThru);
                    });
                }
            });
        }
    }
}

/// <summary>
/// <para type="synopsis">Switches workloads to Discover, Monitor or Protect mode, with their wire mode (inline or tap), in one request.</para>
/// <para type="description">As NeuVector's agent expresses a mode: the workload's policy is sent again with the mode's default action (Discover Learn: everything passes and is recorded for learning; Monitor Violate: everything passes, what no rule allows is recorded as a violation; Protect Deny: what no rule allows is blocked, TCP sessions reset), its rules and direction unchanged (Both without a policy). The datagram that makes the policy take effect also carries ctrl_cfg_mac with the wire mode, so the datapath applies both or neither. -Wire Inline (the default) sends the frames on after the verdict; NvRedirect's interception leaves the workload no other path, so Tap cuts its traffic. -Wire Tap with Protect is refused: a tapped workload blocks nothing. Workloads from Get-Datapath bind by property name. Existing sessions are re-evaluated on their next packet. Protect blocks at once what no rule allows, ping included, on a datapath with the strict semantics (Start-Datapath's default); on one running NeuVector dp's semantics (started by hand, or with -AgentCompatible) ping passes until the agent's ICMP toggle and addresses not yet named in ctrl_cfg_policy_addr get dp's grace period, and the command warns once per datapath.</para>
/// </summary>
/// <example><code>Get-Datapath -ControlSocket $dp.ControlSocket | Select-Object -ExpandProperty Workloads | Set-DpWorkloadMode -Mode Protect</code><para>Puts every workload of the datapath in Protect mode, inline: only what their rules allow passes.</para></example>
/// <example><code>Set-DpWorkloadMode -Mac 1a:27:f3:87:3a:27 -Mode Discover -PassThru</code><para>Lets everything pass and records it (Get-DpConnection -Learned lists it); returns the workload with its new mode.</para></example>
[Cmdlet(VerbsCommon.Set, "DpWorkloadMode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(DpWorkload))]
public sealed class SetDpWorkloadModeCommand : DpPolicyCmdlet
{
    /// <summary><para type="description">The workloads (MAC or alias); a workload, interception or policy object binds its Mac or WorkloadMac here.</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    [ArgumentCompleter(typeof(DpWorkloadMacCompleter))]
    public string[] Mac { get; set; } = [];

    /// <summary><para type="description">Discover (default action Learn), Monitor (Violate) or Protect (Deny).</para></summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateSet("Discover", "Monitor", "Protect")]
    public DpWorkloadMode Mode { get; set; }

    /// <summary><para type="description">Inline (default): frames are sent on after the verdict. Tap: inspected only, nothing is sent on (refused with Protect).</para></summary>
    [Parameter]
    public DpWireMode Wire { get; set; } = DpWireMode.Inline;

    /// <summary><para type="description">Return each workload as the datapath then reports it.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void BeginProcessing()
    {
        try { DpPolicyEditor.CheckMode(Mode, Wire); }
        catch (ArgumentException e) { ThrowTerminatingError(ToErrorRecord(e, Wire)); }
    }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        ForEachWorkload(Mac, (editor, w, current, socket) =>
        {
            var change = DpPolicyEditor.SwitchMode(current, Mode, Wire);
            if (!ShouldProcess($"{w.Mac} at {socket}", $"Switch to {Mode} ({Wire.ToString().ToLowerInvariant()}, default {change.DefaultAction}, {current.Rules.Length} rules)")) return;
            var after = editor.Write(change);
            // Protect means "blocked now" only with the strict semantics: say so once when the datapath runs dp's
            if (Mode == DpWorkloadMode.Protect && !after.Strict && _warned.Add(socket))
                WriteWarning($"The datapath at {socket} runs NeuVector dp's semantics (started by hand or with -AgentCompatible): "
                    + (after.EnableIcmpPolicy ? "" : "ping passes until ctrl_enable_icmp_policy is sent, ")
                    + "addresses not named in ctrl_cfg_policy_addr get a grace period, and inbound UDP to a port outside the workload's listening table is taken as an answer. "
                    + "For Protect to block whatever no rule allows at once, send {\"nvr_cfg_strict\": {\"strict\": true}} and {\"ctrl_enable_icmp_policy\": {\"enable_icmp_policy\": true}} (Send-DpMessage), or start it with Start-Datapath.");
            if (PassThru && after.FindWorkload(w.Mac) is { } updated) WriteObject(updated);
        });
    }

    private readonly HashSet<string> _warned = new(StringComparer.Ordinal);
}

/// <summary>
/// <para type="synopsis">Lists the connections the datapath has seen per workload, with the verdict each got (nvr_list_connection).</para>
/// <para type="description">One entry per workload, direction, client, server, server port, protocol and verdict (rule id and action), with the sessions, packets and bytes it counts, the packets withheld (Deny) and when it was first and last seen. A connection whose verdict changed (say Learn in Discover, then Deny in Protect) has an entry for each. -Learned keeps the entries allowed for learning (action Learn: what a workload in Discover mode did), -Violation those reported as violations (Violate or Deny), -Blocked those blocked (Deny); given together, an entry that fits any of them is kept. Rule id 0 means the policy's default action decided. Answered says the server answered (a learned entry: a full table evicts never-answered entries first). A client that opens more than 32 new connections to a workload within a minute that are not answered is scanning: its further never-answered attempts fold into one entry with Scan set, ServerPort 0 and Attempts counting them (shown as port "scan"; -Learned leaves these out). Workloads from Get-Datapath bind by property name; a MAC the datapath does not know is reported as GetDpConnectionNotFound.</para>
/// </summary>
/// <example><code>Get-DpConnection -Mac 1a:27:f3:87:3a:27 -Learned | ConvertTo-DpRule | Set-DpPolicy</code><para>Makes what the workload did in Discover mode its allowed rules.</para></example>
/// <example><code>Get-DpConnection -Blocked -ControlSocket $dp.ControlSocket | Format-Table Mac, Client, Server, ServerPort, DroppedPackets</code><para>Shows what was blocked, and how many packets each block withheld.</para></example>
[Cmdlet(VerbsCommon.Get, "DpConnection")]
[OutputType(typeof(DpConnection))]
public sealed class GetDpConnectionCommand : DpPolicyCmdlet
{
    /// <summary><para type="description">The workloads (MAC or alias); absent: every workload. A workload or policy object binds its Mac here.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    [ArgumentCompleter(typeof(DpWorkloadMacCompleter))]
    public string[]? Mac { get; set; }

    /// <summary><para type="description">Keep the entries with action Learn (not scan summaries).</para></summary>
    [Parameter] public SwitchParameter Learned { get; set; }

    /// <summary><para type="description">Keep the entries with action Violate or Deny.</para></summary>
    [Parameter] public SwitchParameter Violation { get; set; }

    /// <summary><para type="description">Keep the entries with action Deny.</para></summary>
    [Parameter] public SwitchParameter Blocked { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var socket = SocketPath;
        Try(socket, () =>
        {
            using var client = OpenClient(socket);
            var macs = ResolveAll(client, Mac, socket);
            if (macs is { Count: 0 }) return;
            var connections = client.Connections(macs, out long capacity, out long evicted);
            WriteVerbose($"{connections.Count} connection entries (table capacity {capacity}, {evicted} evicted)");
            bool filter = Learned || Violation || Blocked;
            foreach (var c in connections.OrderBy(c => c.Mac, StringComparer.Ordinal).ThenBy(c => c.FirstSeen)) // grouped per workload, oldest first
                if (!filter || (Learned && c.Action == DpPolicyAction.Learn && !c.Scan) || (Violation && c.Action is DpPolicyAction.Violate or DpPolicyAction.Deny)
                    || (Blocked && c.Action == DpPolicyAction.Deny))
                    WriteObject(c);
        });
    }
}

/// <summary>
/// <para type="synopsis">Forgets the connection entries of workloads, or of every workload (nvr_clear_connection).</para>
/// <para type="description">Only the record of what was seen is cleared: sessions, policies and verdicts stay as they are, and connections that go on are recorded again from their next session. Useful before a Discover run, so Get-DpConnection -Learned lists only what happened since. Workloads bind by property name; a MAC the datapath does not know is reported as ClearDpConnectionNotFound.</para>
/// </summary>
/// <example><code>Clear-DpConnection -ControlSocket $dp.ControlSocket</code><para>Forgets every connection entry of the datapath in $dp.</para></example>
/// <example><code>Clear-DpConnection -Mac 1a:27:f3:87:3a:27 -PassThru | Measure-Object</code><para>Forgets the workload's entries and counts how many there were.</para></example>
[Cmdlet(VerbsCommon.Clear, "DpConnection", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(DpConnection))]
public sealed class ClearDpConnectionCommand : DpPolicyCmdlet
{
    /// <summary><para type="description">The workloads (MAC or alias); absent: every workload. A workload or policy object binds its Mac here.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    [ArgumentCompleter(typeof(DpWorkloadMacCompleter))]
    public string[]? Mac { get; set; }

    /// <summary><para type="description">Return the entries as they were just before they were cleared.</para></summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var socket = SocketPath;
        Try(socket, () =>
        {
            using var client = OpenClient(socket);
            var macs = ResolveAll(client, Mac, socket);
            if (macs is { Count: 0 }) return;
            if (!ShouldProcess($"the datapath at {socket}", macs == null ? "Forget every connection entry" : $"Forget the connection entries of {string.Join(", ", macs)}")) return;
            var before = PassThru ? client.Connections(macs, out _, out _) : null;
            client.Apply(DpRequests.ClearConnections(macs));
            if (before != null) foreach (var c in before) WriteObject(c);
        });
    }
}

/// <summary>
/// <para type="synopsis">Turns connections from Get-DpConnection into policy rules, one per distinct conversation. Changes nothing.</para>
/// <para type="description">Each distinct workload, direction, client, server, server port and protocol gives one rule (entries that differ only in their verdict give one): Source is the client, Destination the server, Port the server port (for ICMP: any port), the protocol and direction those of the connection, the action -Action (Allow by default), id 0 (numbered when sent). The rule keeps the connection's workload (Mac) and control socket, so it can go straight to Set-DpPolicy or Add-DpPolicyRule. The rules come out once the input ends, in the order their connections came. -CollapsePorts joins rules of the same workload, direction, client, server and protocol whose ports are adjacent (8080, 8081, 8082) into one port-range rule. More rules than -WarningThreshold (100) draws a warning: that many usually means a scan or ephemeral ports were learned, not a policy (look at Get-DpConnection's Answered and Scan, or use -CollapsePorts). IPv6 connections give IPv6 rules (ICMPv6 for ping6); scan summaries (Scan) are skipped with a warning: they stand for ports nobody answered on, not for a conversation.</para>
/// </summary>
/// <example><code>Get-DpConnection -Mac 1a:27:f3:87:3a:27 -Learned | ConvertTo-DpRule | Set-DpPolicy</code><para>Makes what the workload did in Discover mode its policy's rules.</para></example>
/// <example><code>Get-DpConnection -Violation | ConvertTo-DpRule | Add-DpPolicyRule -WhatIf</code><para>Shows which allow rules would be added for the violations seen so far.</para></example>
/// <example><code>Get-DpConnection -Learned | Where-Object Answered | ConvertTo-DpRule -CollapsePorts</code><para>Rules only for connections whose server answered, adjacent ports joined into ranges.</para></example>
[Cmdlet(VerbsData.ConvertTo, "DpRule")]
[OutputType(typeof(DpRule))]
public sealed class ConvertToDpRuleCommand : NvCmdlet
{
    /// <summary><para type="description">The connections (from Get-DpConnection).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    public DpConnection[] Connection { get; set; } = [];

    /// <summary><para type="description">The rules' action: Allow (default), Deny, Violate...</para></summary>
    [Parameter]
    public DpPolicyAction Action { get; set; } = DpPolicyAction.Allow;

    /// <summary><para type="description">Join rules of the same workload, direction, client, server and protocol whose ports are adjacent into one port-range rule.</para></summary>
    [Parameter]
    public SwitchParameter CollapsePorts { get; set; }

    /// <summary><para type="description">Warn when more rules than this come out (default 100; 0: never warn).</para></summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int WarningThreshold { get; set; } = DefaultWarningThreshold;

    /// <summary>More rules than this draw a warning unless -WarningThreshold says otherwise.</summary>
    public const int DefaultWarningThreshold = 100;

    private readonly HashSet<(string, string, DpDirection, string, string, ushort, byte)> _seen = [];
    private readonly List<DpRule> _rules = [];
    private int _scans;

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        foreach (var c in Connection)
        {
            if (c == null) continue;
            if (c.Scan) { _scans++; continue; }
            if (!_seen.Add((c.ControlSocket, c.Mac, c.Direction, c.Client.ToString(), c.Server.ToString(), c.ServerPort, c.Protocol))) continue;
            bool icmp = c.Protocol is 1 or 58;
            _rules.Add(new DpRule
            {
                ControlSocket = string.IsNullOrEmpty(c.ControlSocket) ? null : c.ControlSocket,
                Mac = string.IsNullOrEmpty(c.Mac) ? null : c.Mac,
                SourceFrom = c.Client, SourceTo = c.Client, DestinationFrom = c.Server, DestinationTo = c.Server,
                PortFrom = icmp ? (ushort)0 : c.ServerPort, PortTo = icmp ? ushort.MaxValue : c.ServerPort,
                Protocol = c.Protocol, Action = Action, Direction = c.Direction,
            });
        }
    }

    /// <inheritdoc/>
    protected override void EndProcessing()
    {
        if (_scans > 0) WriteWarning($"Skipped {_scans} scan summar{(_scans == 1 ? "y" : "ies")}: they stand for ports nobody answered on, not for a conversation.");
        var rules = CollapsePorts ? Collapse(_rules) : _rules;
        if (WarningThreshold > 0 && rules.Count > WarningThreshold)
            WriteWarning($"{rules.Count} rules (more than {WarningThreshold}): that many usually means a scan or ephemeral ports were learned, not a policy. "
                + "Keep the connections whose server answered (Where-Object Answered), join adjacent ports with -CollapsePorts, or review them before Set-DpPolicy.");
        foreach (var r in rules) WriteObject(r);
    }

    /// <summary>Joins rules that differ only in adjacent (or overlapping) port ranges; a joined rule takes the place of the first rule of its run.</summary>
    public static List<DpRule> Collapse(IReadOnlyList<DpRule> rules)
    {
        var result = new List<(int At, DpRule Rule)>(rules.Count);
        foreach (var group in rules.Select((r, i) => (At: i, Rule: r))
            .GroupBy(x => (x.Rule.ControlSocket, x.Rule.Mac, x.Rule.Direction, x.Rule.SourceFrom, x.Rule.SourceTo, x.Rule.DestinationFrom, x.Rule.DestinationTo, x.Rule.Protocol, x.Rule.Action)))
        {
            (int At, DpRule Rule)? run = null;
            foreach (var x in group.OrderBy(x => x.Rule.PortFrom).ThenBy(x => x.Rule.PortTo))
            {
                if (run is { } r && x.Rule.PortFrom <= r.Rule.PortTo + 1)
                {
                    run = (Math.Min(r.At, x.At), x.Rule.PortTo > r.Rule.PortTo ? Copy(r.Rule, r.Rule.PortFrom, x.Rule.PortTo) : r.Rule);
                    continue;
                }
                if (run is { } done) result.Add(done);
                run = x;
            }
            if (run is { } last) result.Add(last);
        }
        return result.OrderBy(x => x.At).Select(x => x.Rule).ToList();

        static DpRule Copy(DpRule r, ushort from, ushort to) => new()
        {
            ControlSocket = r.ControlSocket, Mac = r.Mac, Id = r.Id, SourceFrom = r.SourceFrom, SourceTo = r.SourceTo,
            DestinationFrom = r.DestinationFrom, DestinationTo = r.DestinationTo, PortFrom = from, PortTo = to,
            Protocol = r.Protocol, Action = r.Action, Direction = r.Direction,
        };
    }
}
