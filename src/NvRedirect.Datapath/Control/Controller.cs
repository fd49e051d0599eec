using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.Json;
using NvRedirect.Datapath.Engine;
using System.Threading;

using NvRedirect.Core.Datapath;

namespace NvRedirect.Datapath.Control;

/// <summary>
/// Executes control datagrams: one JSON object whose keys are commands, run in order. The whole datagram is
/// validated first by applying it to a copy of the state (a service port is even opened then); if any command is
/// bad, nothing is applied, every reason is logged, and a port opened for it is closed again. Otherwise the copy
/// becomes the state, the workload table is republished, and the side effects (port start/stop, session removal,
/// replies) run in command order. Pure with respect to sockets: bytes in, reply datagrams out.
/// </summary>
internal sealed class Controller
{
    /// <summary>Largest request accepted (NeuVector's receive buffer; the agent keeps requests under 8120 bytes).</summary>
    public const int MaxRequestSize = 8192;

    /// <summary>ctrl_set_debug category names NeuVector knows.</summary>
    public static readonly string[] DebugCategoryNames =
        ["none", "all", "int", "error", "ctrl", "packet", "session", "timer", "tcp", "parser", "log", "ddos", "policy", "dlp"];

    private static readonly JsonDocumentOptions JsonOptions = new() { MaxDepth = 16 };

    private readonly PacketEngine _datapath;
    private readonly ServicePortOpener _openPort;
    private readonly Logger _log;

    /// <summary>The configuration in force.</summary>
    public ControlState State { get; private set; } = new();
    /// <summary>Requests executed and requests rejected so far.</summary>
    public long Accepted { get; private set; }
    public long Rejected { get; private set; }
    /// <summary>Why the last rejected request was rejected (null when none was).</summary>
    public string? LastRejection { get; private set; }
    /// <summary>Who this daemon is, for nvr_get_state.</summary>
    public DaemonIdentity Identity { get; init; } = DaemonIdentity.OfThisProcess();

    // the outcome of the datagram being handled, and of each recent sender's previous datagram (for nvr_get_state)
    private RequestOutcome _outcome = RequestOutcome.Success;
    private RequestOutcome? _previousOfSender;
    private string? _sender;
    private readonly RecentOutcomes _outcomes = new(256);

    /// <summary>Controls <paramref name="datapath"/>; service ports come from <paramref name="openPort"/>.</summary>
    public Controller(PacketEngine datapath, ServicePortOpener openPort, Logger log)
    {
        _datapath = datapath;
        _openPort = openPort;
        _log = log;
    }

    private sealed class Request
    {
        public required ControlState State;
        /// <summary>The bound address of the client that sent the datagram (null: unbound).</summary>
        public string? Sender;
        public readonly List<Action<List<byte[]>>> Effects = [];
        public readonly List<IDisposable> Prepared = [];
        public readonly List<string> Errors = [];
        public readonly List<string> Notes = [];
    }

    /// <summary>
    /// Executes one datagram and returns the reply datagrams (usually none: only queries answer).
    /// <paramref name="sender"/> names a bound client; its outcome is kept for its next nvr_get_state.
    /// </summary>
    public List<byte[]> Handle(ReadOnlySpan<byte> datagram, string? sender = null)
    {
        _previousOfSender = sender == null ? null : _outcomes.Find(sender);
        _sender = sender;
        _outcome = RequestOutcome.Success;
        var replies = Execute(datagram);
        if (sender != null) _outcomes.Remember(sender, _outcome);
        return replies;
    }

    private List<byte[]> Execute(ReadOnlySpan<byte> datagram)
    {
        var replies = new List<byte[]>();
        if (datagram.Length > MaxRequestSize)
            return Reject(replies, $"request of {datagram.Length} bytes exceeds the {MaxRequestSize}-byte limit");
        if (!System.Text.Unicode.Utf8.IsValid(datagram)) return Reject(replies, "the request is not valid UTF-8");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(datagram.ToArray(), JsonOptions); }
        catch (JsonException e) { return Reject(replies, $"malformed JSON: {e.Message}"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return Reject(replies, $"a request must be a JSON object whose keys are commands, got {Fields.Describe(root)}");

            var request = new Request { State = State.Clone(), Sender = _sender };
            int commands = 0;
            foreach (var command in root.EnumerateObject())
            {
                commands++;
                try { Apply(command.Name, command.Value, request); }
                catch (CommandException e) { request.Errors.Add($"{command.Name}: {e.Message}"); }
                catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
                {
                    request.Errors.Add($"{command.Name}: unreadable argument ({e.Message})");
                }
            }
            if (commands == 0) { _log.Warn("empty request {} ignored"); return replies; }
            if (request.Errors.Count > 0)
            {
                foreach (var p in request.Prepared) p.Dispose();
                return Reject(replies, string.Join("; ", request.Errors));
            }
            Commit(request, replies);
        }
        return replies;
    }

    /// <summary>Rejects a datagram that was longer than <see cref="MaxRequestSize"/> (only its length is known).</summary>
    public List<byte[]> RejectOversized(int length, string sender, bool bound = false)
    {
        var replies = Reject([], $"request of {length} bytes from {sender} exceeds the {MaxRequestSize}-byte limit");
        if (bound) _outcomes.Remember(sender, _outcome);
        return replies;
    }

    private List<byte[]> Reject(List<byte[]> replies, string reason)
    {
        Rejected++;
        LastRejection = reason.Length > 2000 ? reason[..2000] + "..." : reason;
        _outcome = new RequestOutcome(false, LastRejection);
        _log.Error($"request rejected, nothing applied: {reason}");
        return replies;
    }

    private void Commit(Request request, List<byte[]> replies)
    {
        Accepted++;
        var state = request.State;
        foreach (var w in state.Workloads.Values) w.State.Tap = state.Tap[w.Mac]; // before publishing: a new MAC starts with its tap setting
        if (state.SettingsChanged) state.SettingsGeneration++;
        if (state.WorkloadsChanged || state.SettingsChanged) _datapath.Workloads.Publish(new WorkloadTable(state.Workloads.Values, state.Settings()));
        state.WorkloadsChanged = false;
        state.SettingsChanged = false;
        State = state;
        foreach (var note in request.Notes) _log.Info(note);
        foreach (var effect in request.Effects)
        {
            try { effect(replies); }
            catch (Exception e)
            {
                _log.Error($"applying a command failed: {e.Message}");
                _outcome = new RequestOutcome(true, (_outcome.Error == null ? "" : _outcome.Error + "; ") + $"applying a command failed: {e.Message}");
            }
        }
    }

    private void Apply(string name, JsonElement value, Request r)
    {
        switch (name)
        {
            case "ctrl_keep_alive": KeepAlive(Fields.Object(value), r); break;
            case "ctrl_add_srvc_port": AddServicePort(Fields.Object(value), r); break;
            case "ctrl_del_srvc_port": DeleteServicePort(Fields.Object(value), r); break;
            case "ctrl_add_mac": AddMac(Fields.Object(value), r); break;
            case "ctrl_del_mac": DeleteMac(Fields.Object(value), r); break;
            case "ctrl_cfg_mac": ConfigureMac(Fields.Object(value), r); break;
            case "ctrl_cfg_internal_net": ConfigureInternalNet(Fields.Object(value), r); break;
            case "ctrl_count_session": Fields.Object(value); r.Effects.Add(CountSessions); break;
            case "ctrl_list_session": Fields.Object(value); r.Effects.Add(ListSessions); break;
            case "ctrl_clear_session": ClearSession(Fields.Object(value), r); break;
            case "ctrl_counter_device": Fields.Object(value); r.Effects.Add(DeviceCounters); break;
            case "ctrl_sys_conf": r.State.XffEnabled = Toggle(value, "xff_enabled", name, r); break;
            case "ctrl_disable_net_policy":
                bool disable = Toggle(value, "disable_net_policy", name, r);
                r.State.SettingsChanged |= disable != r.State.DisableNetPolicy;
                r.State.DisableNetPolicy = disable;
                break;
            case "ctrl_detect_unmanaged_wl": r.State.DetectUnmanagedWorkloads = Toggle(value, "detect_unmanaged_wl", name, r); break;
            case "ctrl_enable_icmp_policy":
                bool icmp = Toggle(value, "enable_icmp_policy", name, r);
                r.State.SettingsChanged |= icmp != r.State.EnableIcmpPolicy;
                r.State.EnableIcmpPolicy = icmp;
                break;
            case "ctrl_strict_group_mode": r.State.StrictGroupMode = Toggle(value, "strict_group_mode", name, r); break;
            case "ctrl_set_debug": SetDebug(Fields.Object(value), r); break;
            case "ctrl_cfg_policy": ConfigurePolicy(Fields.Object(value), r); break;
            case "ctrl_cfg_policy_addr": ConfigurePolicyAddresses(Fields.Object(value), r); break;
            case "nvr_get_state": Fields.Object(value); GetState(r); break;
            case "nvr_get_policy": GetPolicy(Fields.Object(value), r); break;
            case "nvr_list_connection": ListConnections(Fields.Object(value), r); break;
            case "nvr_clear_connection": ClearConnections(Fields.Object(value), r); break;
            default: throw new CommandException("unknown command (not supported by this nvr-dp)");
        }
    }

    private static void KeepAlive(JsonElement o, Request r)
    {
        uint seq = Fields.UInt(o, "seq_num");
        r.Effects.Add(replies => replies.Add(Replies.KeepAlive(seq)));
    }

    private void AddServicePort(JsonElement o, Request r)
    {
        string iface = InterfaceName(o);
        bool jumbo = Fields.OptionalBool(o, "jumboframe") ?? false;
        if (r.State.ServicePort == iface) { r.Notes.Add($"ctrl_add_srvc_port: already serving {iface}"); return; }
        if (r.State.ServicePort != null)
            throw new CommandException($"already serving {r.State.ServicePort}; send ctrl_del_srvc_port for it first");
        IServicePort port;
        try { port = _openPort(iface, jumbo); }
        catch (Exception e) { throw new CommandException($"cannot open service port {iface}: {e.Message}"); }
        r.Prepared.Add(port);
        r.State.ServicePort = iface;
        r.Notes.Add($"ctrl_add_srvc_port: serving {iface}{(jumbo ? " (jumbo frames)" : "")}");
        r.Effects.Add(_ => _datapath.AttachPort(port));
    }

    private void DeleteServicePort(JsonElement o, Request r)
    {
        string iface = InterfaceName(o);
        if (r.State.ServicePort == null) { r.Notes.Add($"ctrl_del_srvc_port: no service port open, {iface} ignored"); return; }
        if (r.State.ServicePort != iface) throw new CommandException($"the service port is {r.State.ServicePort}, not {iface}");
        r.State.ServicePort = null;
        r.Notes.Add($"ctrl_del_srvc_port: closed {iface}");
        r.Effects.Add(_ => _datapath.DetachPort());
    }

    private static string InterfaceName(JsonElement o)
    {
        string iface = Fields.String(o, "iface");
        if (iface.Length is 0 or > 15 || iface is "." or ".." || iface.Any(ch => ch == '/' || ch == ':' || char.IsWhiteSpace(ch) || char.IsControl(ch)))
            throw new CommandException($"\"iface\" is not an interface name: \"{Fields.Clip(iface)}\"");
        return iface;
    }

    private static void AddMac(JsonElement o, Request r)
    {
        string iface = Fields.String(o, "iface");
        ulong mac = Fields.Mac(o, "mac");
        ulong ucmac = Fields.OptionalMac(o, "ucmac");
        ulong bcmac = Fields.OptionalMac(o, "bcmac");
        ulong oldmac = Fields.OptionalMac(o, "oldmac");
        ulong pmac = Fields.OptionalMac(o, "pmac");
        var pips = new List<uint>();
        if (Fields.OptionalArray(o, "pips") is { } list)
            foreach (var item in list) pips.Add(Fields.IPv4(Fields.Object(item), "ip"));

        if (mac == 0 || (mac >> 40 & 1) != 0) throw new CommandException($"\"mac\" {Fields.FormatMac(mac)} is not a unicast address");
        if (ucmac != 0 && (ucmac >> 40 & 1) != 0) throw new CommandException($"\"ucmac\" {Fields.FormatMac(ucmac)} is not a unicast address");
        // NeuVector finds the endpoint from a MAC entry by pointer arithmetic; ucmac == mac corrupts it (reference §1.2)
        if (ucmac == mac) throw new CommandException($"\"ucmac\" must differ from \"mac\" ({Fields.FormatMac(mac)})");
        if (bcmac != 0 && (bcmac == mac || bcmac == ucmac)) throw new CommandException($"\"bcmac\" {Fields.FormatMac(bcmac)} repeats \"mac\" or \"ucmac\"");

        var s = r.State;
        Workload? existing = null;
        if (oldmac != 0) s.Workloads.TryGetValue(oldmac, out existing);
        if (existing == null) s.Workloads.TryGetValue(mac, out existing);
        var workload = new Workload(iface, mac, ucmac, bcmac, pmac, pips.ToArray(), existing?.Apps ?? [], existing?.State ?? new WorkloadState(),
            existing?.Policy); // a re-add keeps the policy, as NeuVector carries the endpoint's state over
        foreach (var key in workload.Keys)
            foreach (var other in s.Workloads.Values)
                if (other != existing && other.Keys.Contains(key))
                    throw new CommandException($"{Fields.FormatMac(key)} is already registered to workload {Fields.FormatMac(other.Mac)}");

        bool tap = existing != null ? s.Tap[existing.Mac] : true; // NeuVector: a new endpoint starts in tap mode
        if (existing != null) { s.Workloads.Remove(existing.Mac); s.Tap.Remove(existing.Mac); }
        s.Workloads[mac] = workload;
        s.Tap[mac] = tap;
        s.WorkloadsChanged = true;
        if (ucmac != 0 && ucmac >> 16 != FrameProcessor.NeuVPrefix)
            r.Notes.Add($"ctrl_add_mac: note: ucmac {Fields.FormatMac(ucmac)} lacks the NeuV prefix 4e:65:75:56, so no frame will ever match it");
        r.Notes.Add($"ctrl_add_mac: {(existing == null ? "added" : "updated")} {Fields.FormatMac(mac)}"
            + (existing != null && existing.Mac != mac ? $" (was {Fields.FormatMac(existing.Mac)})" : "")
            + $" ucmac {(ucmac == 0 ? "-" : Fields.FormatMac(ucmac))} bcmac {(bcmac == 0 ? "-" : Fields.FormatMac(bcmac))} on {iface}, tap {(tap ? "on" : "off")}");
    }

    private void DeleteMac(JsonElement o, Request r)
    {
        Fields.OptionalString(o, "iface");
        ulong mac = Fields.Mac(o, "mac");
        var s = r.State;
        if (!s.Workloads.Remove(mac)) { r.Notes.Add($"ctrl_del_mac: {Fields.FormatMac(mac)} is not registered; nothing to do"); return; }
        s.Tap.Remove(mac);
        s.WorkloadsChanged = true;
        r.Notes.Add($"ctrl_del_mac: removed {Fields.FormatMac(mac)}");
        r.Effects.Add(_ =>
        {
            var (n, connections) = _datapath.OnPacketThread(() => (_datapath.Sessions.RemoveEndpoint(mac), _datapath.Connections.Clear(mac)));
            if (n > 0 || connections > 0) _log.Info($"ctrl_del_mac: removed {n} sessions and {connections} connection entries of {Fields.FormatMac(mac)}");
        });
    }

    private static void ConfigureMac(JsonElement o, Request r)
    {
        var macs = new List<ulong>();
        foreach (var item in Fields.Array(o, "macs"))
        {
            if (item.ValueKind != JsonValueKind.String) throw new CommandException($"\"macs\" must hold MAC strings, got {Fields.Describe(item)}");
            macs.Add(Fields.ParseMac(item.GetString()!) ?? throw new CommandException($"\"macs\" holds something that is not a MAC address: \"{Fields.Clip(item.GetString()!)}\""));
        }
        bool? tap = Fields.OptionalBool(o, "tap");
        AppPort[]? apps = null;
        if (Fields.OptionalArray(o, "apps") is { } list)
        {
            var parsed = new List<AppPort>();
            foreach (var item in list)
            {
                var a = Fields.Object(item);
                parsed.Add(new AppPort((ushort)Fields.UInt(a, "port", ushort.MaxValue), (byte)Fields.UInt(a, "ip_proto", byte.MaxValue),
                    Fields.UInt(a, "app"), Fields.UInt(a, "server")));
            }
            apps = parsed.ToArray();
        }
        var s = r.State;
        var changed = new List<string>();
        var unknown = new List<string>();
        foreach (var mac in macs)
        {
            var w = s.FindByAnyMac(mac);
            if (w == null) { unknown.Add(Fields.FormatMac(mac)); continue; } // NeuVector skips unknown MACs
            if (tap is bool t) s.Tap[w.Mac] = t;
            if (apps != null) { s.Workloads[w.Mac] = w.With(apps: apps); s.WorkloadsChanged = true; }
            changed.Add(Fields.FormatMac(w.Mac));
        }
        r.Notes.Add($"ctrl_cfg_mac: {(changed.Count == 0 ? "no registered MAC" : string.Join(", ", changed))}"
            + (tap is bool v ? $": tap {(v ? "on" : "off")}" : "") + (apps != null ? $", {apps.Length} app ports" : "")
            + (unknown.Count > 0 ? $" (not registered, skipped: {string.Join(", ", unknown)})" : ""));
    }

    private static void ConfigureInternalNet(JsonElement o, Request r)
    {
        uint flag = Fields.UInt(o, "flag", 3);
        var chunk = new List<InternalSubnet>();
        foreach (var item in Fields.Array(o, "subnet_addr"))
        {
            var e = Fields.Object(item);
            chunk.Add(new InternalSubnet(Fields.IPv4(e, "ip"), Fields.IPv4(e, "mask"), Fields.OptionalString(e, "iptype")));
        }
        var s = r.State;
        foreach (var n in chunk.Where(n => (n.Ip & n.Mask) != n.Ip))
            r.Notes.Add($"ctrl_cfg_internal_net: note: {Fields.FormatIPv4(n.Ip)} is not the network address of mask {Fields.FormatIPv4(n.Mask)}; (ip & mask) == ip never holds for it");
        var pending = s.PendingInternalNets;
        if (Assemble("ctrl_cfg_internal_net", flag, chunk, ref pending, r) is not { } list) { s.PendingInternalNets = pending; return; }
        s.PendingInternalNets = null;
        s.InternalNets = list.ToArray();
        s.SettingsChanged = true;
        r.Notes.Add($"ctrl_cfg_internal_net: {s.InternalNets.Length} internal subnets in force");
    }

    // A list sent in chunks (NeuVector's flag: 1 START, 2 END, 3 both, 0 middle): a START begins it (dropping an
    // unfinished one), a continuation without a START is refused, and at END the whole list is returned (else null).
    private static List<T>? Assemble<T>(string command, uint flag, List<T> chunk, ref List<T>? pending, Request r)
    {
        const uint Start = 1, End = 2;
        if ((flag & Start) != 0)
        {
            if (pending != null) r.Notes.Add($"{command}: a new START drops {pending.Count} pending entries of an unfinished list");
            pending = chunk;
        }
        else if (pending == null) throw new CommandException($"flag {flag} continues a list, but no list was started (flag 1)");
        else pending.AddRange(chunk);
        if ((flag & End) != 0) return pending;
        r.Notes.Add($"{command}: {chunk.Count} entries pending ({pending.Count} so far)");
        return null;
    }

    // ctrl_cfg_policy (reference §1.2): rules of one or more workloads, in chunks START (1) ... END (2), or one
    // message (3). At END the policy is built with a new version and replaces the listed workloads' policies; DELETE
    // removes them. Stricter than NeuVector: unregistered MACs, empty ranges and features nvr-dp lacks are refused.
    private static void ConfigurePolicy(JsonElement o, Request r)
    {
        const uint Start = 1, End = 2, Add = 1, Delete = 3;
        uint cmd = Fields.UInt(o, "cmd", 3);
        if (cmd is < Add or > Delete) throw new CommandException($"\"cmd\" {cmd} is not 1 (add), 2 (modify) or 3 (delete)");
        uint flag = Fields.UInt(o, "flag", 3);
        byte defact = (byte)(Fields.OptionalUInt(o, "defact", PolicyAction.Deny) ?? (cmd == Delete ? 0u : throw new CommandException("\"defact\" is missing (the default action, 0-7)")));
        byte dir = (byte)(Fields.OptionalUInt(o, "dir", PolicyDirection.Both) ?? (cmd == Delete ? 0u : throw new CommandException("\"dir\" is missing (1 egress, 2 ingress, 3 both)")));
        if (cmd != Delete && dir == 0) throw new CommandException("\"dir\" 0 polices no direction: send 1 (egress), 2 (ingress) or 3 (both)");
        var s = r.State;
        var macs = RegisteredMacs(o, "mac", r);
        var rules = new List<PolicyRule>();
        if (Fields.OptionalArray(o, "rules") is { } ruleList)
            foreach (var item in ruleList) rules.Add(Rule(Fields.Object(item), r));

        if ((flag & Start) != 0)
        {
            if (macs.Count == 0) throw new CommandException("\"mac\" lists no workload");
            if (s.PendingPolicy != null) r.Notes.Add($"ctrl_cfg_policy: a new START drops {s.PendingPolicy.Rules.Count} pending rules of an unfinished policy");
            s.PendingPolicy = new PendingPolicy
            {
                Command = cmd, DefaultAction = defact, Direction = dir, Macs = macs.ToArray(), Rules = rules, Sender = r.Sender,
                ExpectedVersion = Fields.OptionalUInt(o, "nvr_expect_version"),
            };
        }
        else if (s.PendingPolicy is not { } started) throw new CommandException($"flag {flag} continues a policy, but none was started (flag 1)");
        else
        {
            // a chunk belongs to the policy its START began: same client, same command, default, direction and workloads
            if (started.Sender != r.Sender)
                throw new CommandException($"flag {flag} continues the chunked policy another client started ({started.Sender ?? "an unbound client"}); send a START of your own");
            if (cmd != started.Command || defact != started.DefaultAction || dir != started.Direction
                || (macs.Count > 0 && !macs.ToHashSet().SetEquals(started.Macs)))
                throw new CommandException($"flag {flag} continues a policy started with cmd {started.Command}, defact {started.DefaultAction}, dir {started.Direction} for {string.Join(", ", started.Macs.Select(Fields.FormatMac))}, but says otherwise");
            started.Rules.AddRange(rules);
        }

        if ((flag & End) == 0)
        {
            r.Notes.Add($"ctrl_cfg_policy: {rules.Count} rules pending ({s.PendingPolicy.Rules.Count} so far)");
            return;
        }
        var pending = s.PendingPolicy;
        s.PendingPolicy = null;
        uint version = ++s.PolicyVersion;
        var policy = pending.Command == Delete ? null : new Policy(version, pending.DefaultAction, pending.Direction, pending.Rules);
        foreach (var mac in pending.Macs)
        {
            if (!s.Workloads.TryGetValue(mac, out var w))
                throw new CommandException($"{Fields.FormatMac(mac)} was removed before the policy's END chunk");
            // our extension: a client that read the policy before changing it says which version it read, so two
            // clients editing the same policy cannot silently undo each other's change
            uint current = w.Policy?.Version ?? 0;
            if (pending.ExpectedVersion is uint expected && expected != current)
                throw new CommandException($"the policy of {Fields.FormatMac(mac)} is at version {current}, not at version {expected} the change was made from: " +
                    "another client changed it meanwhile; read it again and repeat the change");
            s.Workloads[mac] = w.WithPolicy(policy);
        }
        s.WorkloadsChanged = true;
        string targets = string.Join(", ", pending.Macs.Select(Fields.FormatMac));
        r.Notes.Add(policy == null
            ? $"ctrl_cfg_policy: policy of {targets} deleted (everything open)"
            : $"ctrl_cfg_policy: version {version} for {targets}: {policy.Rules.Length} rules, default {PolicyAction.Names[policy.DefaultAction]}, dir {policy.Direction}");
    }

    private static PolicyRule Rule(JsonElement o, Request r)
    {
        if (Fields.OptionalString(o, "fqdn") is { Length: > 0 }) throw new CommandException("rules with \"fqdn\" are not supported by nvr-dp");
        Fields.OptionalBool(o, "vhost");
        uint id = Fields.UInt(o, "id");
        if (Fields.OptionalArray(o, "apps") is { } apps && apps.Any())
        {
            // NeuVector's agent sends application rules as CHECK_APP with per-application sub-rules; nvr-dp identifies
            // no applications, so the rule acts by its own action (CHECK_APP: allow) and the sub-rules are not applied
            foreach (var a in apps)
            {
                var app = Fields.Object(a);
                Fields.UInt(app, "rid");
                Fields.UInt(app, "app");
                Fields.UInt(app, "action", PolicyAction.Deny);
            }
            r.Notes.Add($"ctrl_cfg_policy: rule {id}: its {apps.Count()} application sub-rules are not applied (nvr-dp identifies no applications); the rule acts by its action");
        }
        uint sip = Fields.IPv4(o, "sip"), dip = Fields.IPv4(o, "dip");
        uint sipr = Fields.Has(o, "sipr") ? Fields.IPv4(o, "sipr") : sip;
        uint dipr = Fields.Has(o, "dipr") ? Fields.IPv4(o, "dipr") : dip;
        ushort port = (ushort)Fields.UInt(o, "port", ushort.MaxValue);
        ushort portr = (ushort)(Fields.OptionalUInt(o, "portr", ushort.MaxValue) ?? port);
        byte proto = (byte)Fields.UInt(o, "proto", byte.MaxValue);
        byte action = (byte)Fields.UInt(o, "action", PolicyAction.Deny);
        bool ingress = Fields.OptionalBool(o, "ingress") ?? throw new CommandException($"rule {id}: \"ingress\" is missing (true or false)");
        if (sipr < sip) throw new CommandException($"rule {id}: \"sipr\" {Fields.FormatIPv4(sipr)} is below \"sip\" {Fields.FormatIPv4(sip)}");
        if (dipr < dip) throw new CommandException($"rule {id}: \"dipr\" {Fields.FormatIPv4(dipr)} is below \"dip\" {Fields.FormatIPv4(dip)}");
        if (portr < port) throw new CommandException($"rule {id}: \"portr\" {portr} is below \"port\" {port}");
        return new PolicyRule(id, sip, sipr, dip, dipr, port, portr, proto, action, ingress);
    }

    private static void ConfigurePolicyAddresses(JsonElement o, Request r)
    {
        uint flag = Fields.UInt(o, "flag", 3);
        var chunk = new List<uint>();
        foreach (var item in Fields.Array(o, "subnet_addr"))
        {
            var e = Fields.Object(item);
            chunk.Add(Fields.IPv4(e, "ip"));
            if (Fields.Has(e, "mask")) Fields.IPv4(e, "mask"); // NeuVector compares the address alone
        }
        var s = r.State;
        var pending = s.PendingPolicyAddresses;
        if (Assemble("ctrl_cfg_policy_addr", flag, chunk, ref pending, r) is not { } list) { s.PendingPolicyAddresses = pending; return; }
        s.PendingPolicyAddresses = null;
        s.PolicyAddresses = list.Distinct().ToArray();
        r.Notes.Add($"ctrl_cfg_policy_addr: {s.PolicyAddresses.Length} policy addresses (kept for reporting; nvr-dp has no unknown-address grace period)");
    }

    private static ulong[] MacFilter(JsonElement o, Request r) => RegisteredMacs(o, "macs", r).ToArray();

    // The real MACs of the workloads an optional array of MAC strings names (each a MAC or alias of a registered
    // workload; anything else refuses the request), without repeats.
    private static List<ulong> RegisteredMacs(JsonElement o, string name, Request r)
    {
        var macs = new List<ulong>();
        if (Fields.OptionalArray(o, name) is { } list)
            foreach (var item in list)
            {
                if (item.ValueKind != JsonValueKind.String) throw new CommandException($"\"{name}\" must hold MAC strings, got {Fields.Describe(item)}");
                ulong mac = Fields.ParseMac(item.GetString()!) ?? throw new CommandException($"\"{name}\" holds something that is not a MAC address: \"{Fields.Clip(item.GetString()!)}\"");
                var w = r.State.FindByAnyMac(mac) ?? throw new CommandException($"{Fields.FormatMac(mac)} is not a registered workload (ctrl_add_mac it first)");
                if (!macs.Contains(w.Mac)) macs.Add(w.Mac);
            }
        return macs;
    }

    private void GetPolicy(JsonElement o, Request r)
    {
        var macs = MacFilter(o, r);
        r.Effects.Add(replies =>
        {
            var buffer = new System.Buffers.ArrayBufferWriter<byte>(4096);
            using (var w = new Utf8JsonWriter(buffer))
            {
                w.WriteStartObject();
                w.WriteStartArray("policies");
                foreach (var wl in State.Workloads.Values.OrderBy(x => x.Mac))
                {
                    if (wl.Policy is not { } p || (macs.Length > 0 && !macs.Contains(wl.Mac))) continue;
                    w.WriteStartObject();
                    w.WriteString("mac", Fields.FormatMac(wl.Mac));
                    w.WriteNumber("version", p.Version);
                    w.WriteNumber("defact", p.DefaultAction);
                    w.WriteNumber("dir", p.Direction);
                    w.WriteStartArray("rules");
                    foreach (var rule in p.Rules)
                    {
                        w.WriteStartObject();
                        w.WriteNumber("id", rule.Id);
                        w.WriteString("sip", Fields.FormatIPv4(rule.SourceFrom));
                        w.WriteString("sipr", Fields.FormatIPv4(rule.SourceTo));
                        w.WriteString("dip", Fields.FormatIPv4(rule.DestinationFrom));
                        w.WriteString("dipr", Fields.FormatIPv4(rule.DestinationTo));
                        w.WriteNumber("port", rule.PortFrom);
                        w.WriteNumber("portr", rule.PortTo);
                        w.WriteNumber("proto", rule.Protocol);
                        w.WriteNumber("action", rule.Action);
                        w.WriteBoolean("ingress", rule.Ingress);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            replies.AddRange(Replies.Json(MessageKind.Policy, buffer.WrittenSpan));
        });
    }

    private void ListConnections(JsonElement o, Request r)
    {
        var macs = MacFilter(o, r);
        r.Effects.Add(replies =>
        {
            var (list, capacity, evicted, now) = _datapath.OnPacketThread(() =>
                (_datapath.Connections.Snapshot(), _datapath.Connections.Capacity, _datapath.Connections.Evicted, _datapath.Clock.NowSeconds));
            var wallNow = DateTime.UtcNow;
            var buffer = new System.Buffers.ArrayBufferWriter<byte>(4096);
            using (var w = new Utf8JsonWriter(buffer))
            {
                w.WriteStartObject();
                w.WriteStartArray("connections");
                foreach (var c in list)
                {
                    var k = c.Key;
                    if (macs.Length > 0 && !macs.Contains(k.EndpointMac)) continue;
                    w.WriteStartObject();
                    w.WriteString("mac", Fields.FormatMac(k.EndpointMac));
                    w.WriteBoolean("ingress", k.Ingress);
                    w.WriteString("client", FormatAddress(k.ClientHigh, k.ClientLow, k.IPv6));
                    w.WriteString("server", FormatAddress(k.ServerHigh, k.ServerLow, k.IPv6));
                    w.WriteNumber("server_port", k.ServerPort);
                    w.WriteNumber("proto", k.Protocol);
                    w.WriteNumber("rule_id", k.RuleId);
                    w.WriteNumber("action", k.Action);
                    w.WriteNumber("sessions", c.Sessions);
                    w.WriteNumber("packets", c.Packets);
                    w.WriteNumber("bytes", c.Bytes);
                    w.WriteNumber("dropped", c.Dropped);
                    w.WriteString("first_seen", Wall(wallNow, now, c.FirstSeen));
                    w.WriteString("last_seen", Wall(wallNow, now, c.LastSeen));
                    w.WriteBoolean("answered", c.Answered);
                    w.WriteBoolean("scan", k.Scan);
                    w.WriteNumber("attempts", c.Attempts);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteNumber("capacity", capacity);
                w.WriteNumber("evicted", evicted);
                w.WriteEndObject();
            }
            replies.AddRange(Replies.Json(MessageKind.Connections, buffer.WrittenSpan));
        });
    }

    private static string Wall(DateTime wallNow, long now, long then)
        => wallNow.AddSeconds(then - now).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);

    private static string FormatAddress(ulong high, ulong low, bool v6)
    {
        if (!v6) return Fields.FormatIPv4((uint)low);
        Span<byte> b = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b, high);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b[8..], low);
        return new System.Net.IPAddress(b).ToString();
    }

    private void ClearConnections(JsonElement o, Request r)
    {
        var macs = MacFilter(o, r);
        r.Effects.Add(_ =>
        {
            int n = _datapath.OnPacketThread(() => macs.Length == 0 ? _datapath.Connections.Clear(0) : macs.Sum(m => _datapath.Connections.Clear(m)));
            _log.Info($"nvr_clear_connection: forgot {n} connection entries");
        });
    }

    private void CountSessions(List<byte[]> replies)
    {
        var (total, tcp, udp, icmp, other) = _datapath.OnPacketThread(() =>
        {
            var t = _datapath.Sessions;
            return (t.Count, t.CurrentTcp, t.CurrentUdp, t.CurrentIcmp, t.CurrentOther);
        });
        replies.Add(Replies.SessionCount((uint)total, (uint)tcp, (uint)udp, (uint)icmp, (uint)other));
    }

    private void DeviceCounters(List<byte[]> replies)
    {
        var values = _datapath.OnPacketThread(() =>
        {
            var c = _datapath.Counters;
            var t = _datapath.Sessions;
            var v = new ulong[(int)DeviceCounter.CurLogCaches + 1];
            v[(int)DeviceCounter.RXPackets] = (ulong)c.RxPackets;
            v[(int)DeviceCounter.RXDropPackets] = (ulong)(c.RingDrops + c.LostLargeFrames);
            v[(int)DeviceCounter.TXPackets] = (ulong)c.TxPackets;
            v[(int)DeviceCounter.TXDropPackets] = (ulong)(c.TxDropped + c.TxErrors);
            v[(int)DeviceCounter.ErrorPackets] = (ulong)c.MalformedPackets;
            v[(int)DeviceCounter.NoWorkloadPackets] = (ulong)c.NoWorkloadPackets;
            v[(int)DeviceCounter.IPv4Packets] = (ulong)c.IPv4Packets;
            v[(int)DeviceCounter.IPv6Packets] = (ulong)c.IPv6Packets;
            v[(int)DeviceCounter.TCPPackets] = (ulong)c.TcpPackets;
            v[(int)DeviceCounter.TCPNoSessionPackets] = (ulong)c.TcpNoSessionPackets;
            v[(int)DeviceCounter.UDPPackets] = (ulong)c.UdpPackets;
            v[(int)DeviceCounter.ICMPPackets] = (ulong)c.IcmpPackets;
            v[(int)DeviceCounter.OtherPackets] = (ulong)c.OtherPackets;
            v[(int)DeviceCounter.Fragments] = (ulong)c.Fragments;
            v[(int)DeviceCounter.TotalSessions] = (ulong)t.Created;
            v[(int)DeviceCounter.TCPSessions] = (ulong)t.CreatedTcp;
            v[(int)DeviceCounter.UDPSessions] = (ulong)t.CreatedUdp;
            v[(int)DeviceCounter.ICMPSessions] = (ulong)t.CreatedIcmp;
            v[(int)DeviceCounter.IPSessions] = (ulong)t.CreatedOther;
            return v;
        });
        replies.Add(Replies.DeviceCounters(values));
    }

    private void ListSessions(List<byte[]> replies)
    {
        var sessions = _datapath.OnPacketThread(() => _datapath.Sessions.Snapshot(_datapath.Clock.NowSeconds));
        replies.AddRange(Replies.SessionList(sessions));
    }

    private void ClearSession(JsonElement o, Request r)
    {
        uint id = Fields.UInt(o, "filter_id");
        r.Effects.Add(_ =>
        {
            int n = _datapath.OnPacketThread(() => _datapath.Sessions.Clear(id));
            _log.Info(id == 0 ? $"ctrl_clear_session: removed all {n} sessions" : $"ctrl_clear_session: session {id} {(n > 0 ? "removed" : "not found")}");
        });
    }

    private static bool Toggle(JsonElement value, string field, string command, Request r)
    {
        bool on = Fields.OptionalBool(Fields.Object(value), field) ?? false; // absent means false, as in NeuVector
        r.Notes.Add($"{command}: {field} {(on ? "on" : "off")}");
        return on;
    }

    private static void SetDebug(JsonElement o, Request r)
    {
        var names = new List<string>();
        foreach (var item in Fields.Array(o, "categories"))
        {
            if (item.ValueKind != JsonValueKind.String) throw new CommandException($"\"categories\" must hold strings, got {Fields.Describe(item)}");
            var name = item.GetString()!;
            if (!DebugCategoryNames.Contains(name))
                throw new CommandException($"unknown debug category \"{Fields.Clip(name)}\" (known: {string.Join(", ", DebugCategoryNames)})");
            names.Add(name);
        }
        r.State.DebugCategories = names.ToArray();
        r.Notes.Add($"ctrl_set_debug: {(names.Count == 0 ? "none" : string.Join(", ", names))}");
    }

    // nvr-dp's extension: the configuration, identity and request counters as JSON, and the outcome of the sender's
    // previous datagram (so a client can tell whether what it sent was applied). Built when the effects run, after
    // the earlier commands of the same datagram.
    private void GetState(Request r)
    {
        var previous = _previousOfSender;
        r.Effects.Add(replies => replies.AddRange(Replies.State(StateJson(previous))));
    }

    private byte[] StateJson(RequestOutcome? previous)
    {
        var s = State;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartObject("daemon");
            w.WriteNumber("pid", Identity.Pid);
            w.WriteString("version", Identity.Version);
            w.WriteString("netns", Identity.Namespace);
            w.WriteString("socket", Identity.SocketPath);
            if (Identity.LogPath == null) w.WriteNull("log"); else w.WriteString("log", Identity.LogPath);
            w.WriteNumber("sessions_capacity", Identity.SessionCapacity);
            w.WriteString("started", Identity.Started.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture));
            w.WriteEndObject();
            if (s.ServicePort == null) w.WriteNull("service_port"); else w.WriteString("service_port", s.ServicePort);
            w.WriteStartArray("workloads");
            foreach (var wl in s.Workloads.Values.OrderBy(x => x.Mac))
            {
                w.WriteStartObject();
                w.WriteString("mac", Fields.FormatMac(wl.Mac));
                w.WriteString("iface", wl.Interface);
                WriteMac(w, "ucmac", wl.UnicastAlias);
                WriteMac(w, "bcmac", wl.BroadcastAlias);
                WriteMac(w, "pmac", wl.ProxyMeshMac);
                w.WriteStartArray("pips");
                foreach (var ip in wl.ProxyMeshIPs) w.WriteStringValue(Fields.FormatIPv4(ip));
                w.WriteEndArray();
                w.WriteBoolean("tap", s.Tap.TryGetValue(wl.Mac, out var tap) && tap);
                w.WriteStartArray("apps");
                foreach (var a in wl.Apps)
                {
                    w.WriteStartObject();
                    w.WriteNumber("port", a.Port);
                    w.WriteNumber("ip_proto", a.IpProtocol);
                    w.WriteNumber("app", a.Application);
                    w.WriteNumber("server", a.Server);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                var c = wl.State; // written by the packet thread: a recent snapshot, each value whole (64-bit reads)
                w.WriteNumber("packets_in", Volatile.Read(ref c.PacketsIn));
                w.WriteNumber("packets_out", Volatile.Read(ref c.PacketsOut));
                w.WriteNumber("bytes_in", Volatile.Read(ref c.BytesIn));
                w.WriteNumber("bytes_out", Volatile.Read(ref c.BytesOut));
                w.WriteNumber("sessions_in", Volatile.Read(ref c.SessionsIn));
                w.WriteNumber("sessions_out", Volatile.Read(ref c.SessionsOut));
                if (wl.Policy is not { } policy) w.WriteNull("policy");
                else
                {
                    w.WriteStartObject("policy");
                    w.WriteNumber("version", policy.Version);
                    w.WriteNumber("defact", policy.DefaultAction);
                    w.WriteNumber("dir", policy.Direction);
                    w.WriteNumber("rules", policy.Rules.Length);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("internal_nets");
            foreach (var n in s.InternalNets)
            {
                w.WriteStartObject();
                w.WriteString("ip", Fields.FormatIPv4(n.Ip));
                w.WriteString("mask", Fields.FormatIPv4(n.Mask));
                if (n.IpType != null) w.WriteString("iptype", n.IpType);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (s.PendingInternalNets == null) w.WriteNull("internal_nets_pending"); else w.WriteNumber("internal_nets_pending", s.PendingInternalNets.Count);
            w.WriteBoolean("xff_enabled", s.XffEnabled);
            w.WriteBoolean("disable_net_policy", s.DisableNetPolicy);
            w.WriteBoolean("detect_unmanaged_wl", s.DetectUnmanagedWorkloads);
            w.WriteBoolean("enable_icmp_policy", s.EnableIcmpPolicy);
            w.WriteBoolean("strict_group_mode", s.StrictGroupMode);
            w.WriteStartArray("debug");
            foreach (var d in s.DebugCategories) w.WriteStringValue(d);
            w.WriteEndArray();
            w.WriteStartArray("policy_addr");
            foreach (var a in s.PolicyAddresses) w.WriteStringValue(Fields.FormatIPv4(a));
            w.WriteEndArray();
            if (s.PendingPolicy is not { } pp) w.WriteNull("policy_pending");
            else
            {
                w.WriteStartObject("policy_pending");
                w.WriteStartArray("macs");
                foreach (var m in pp.Macs) w.WriteStringValue(Fields.FormatMac(m));
                w.WriteEndArray();
                w.WriteNumber("rules", pp.Rules.Count);
                w.WriteEndObject();
            }
            var dc = _datapath.Counters;
            w.WriteStartObject("policy_counters");
            w.WriteNumber("denied_packets", Volatile.Read(ref dc.DeniedPackets));
            w.WriteNumber("denied_sessions", Volatile.Read(ref dc.DeniedSessions));
            w.WriteNumber("blocked_sessions", Volatile.Read(ref dc.BlockedSessions));
            w.WriteNumber("resets_sent", Volatile.Read(ref dc.ResetsSent));
            w.WriteNumber("reevaluations", Volatile.Read(ref dc.Reevaluations));
            w.WriteEndObject();
            _datapath.OnPacketThread(() => TableUsage.Of(_datapath)).Write(w);
            w.WriteStartObject("requests");
            w.WriteNumber("accepted", Accepted);
            w.WriteNumber("rejected", Rejected);
            if (LastRejection == null) w.WriteNull("last_rejection"); else w.WriteString("last_rejection", LastRejection);
            w.WriteEndObject();
            if (previous is not { } p) w.WriteNull("your_last_request");
            else
            {
                w.WriteStartObject("your_last_request");
                w.WriteBoolean("accepted", p.Accepted);
                if (p.Error == null) w.WriteNull("error"); else w.WriteString("error", p.Error);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteMac(Utf8JsonWriter w, string name, ulong mac)
    {
        if (mac == 0) w.WriteNull(name); else w.WriteString(name, Fields.FormatMac(mac));
    }

    /// <summary>A one-line summary of the configuration, for the log.</summary>
    public string Summary()
    {
        var s = State;
        var b = new StringBuilder();
        b.Append($"service port {s.ServicePort ?? "none"}, {s.Workloads.Count} workloads ({s.Tap.Count(t => !t.Value)} inline), ");
        b.Append($"{s.InternalNets.Length} internal subnets");
        return b.ToString();
    }
}

/// <summary>Whether a request was applied, and why not (or what failed while applying it).</summary>
internal readonly record struct RequestOutcome(bool Accepted, string? Error)
{
    public static readonly RequestOutcome Success = new(true, null);
}

/// <summary>The outcome of each recent bound sender's last datagram; the oldest sender is forgotten beyond the capacity.</summary>
internal sealed class RecentOutcomes(int capacity)
{
    private readonly Dictionary<string, RequestOutcome> _bySender = [];
    private readonly Queue<string> _order = new();

    public RequestOutcome? Find(string sender) => _bySender.TryGetValue(sender, out var o) ? o : null;

    public void Remember(string sender, RequestOutcome outcome)
    {
        if (!_bySender.ContainsKey(sender))
        {
            _order.Enqueue(sender);
            while (_order.Count > capacity) _bySender.Remove(_order.Dequeue());
        }
        _bySender[sender] = outcome;
    }
}

/// <summary>What nvr_get_state reports about the daemon itself.</summary>
internal sealed record DaemonIdentity(int Pid, string Version, string Namespace, string SocketPath, string? LogPath, int SessionCapacity, DateTime Started)
{
    /// <summary>Defaults for a controller that is not a daemon (tests).</summary>
    public static DaemonIdentity OfThisProcess() => new(Environment.ProcessId, typeof(Controller).Assembly.GetName().Version?.ToString() ?? "",
        "", DpWire.DefaultControlSocket, null, 0, DateTime.UtcNow);
}
