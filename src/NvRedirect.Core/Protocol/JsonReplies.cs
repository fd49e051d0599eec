using System;
using System.Buffers;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Text.Json;

namespace NvRedirect.Core.Protocol;

/// <summary>One workload's policy in nvr_get_policy's reply.</summary>
public sealed record PolicyEntry(ulong Mac, uint Version, DpPolicyAction DefaultAction, DpDirection Direction, PolicyRule[] Rules);

/// <summary>One entry of nvr_list_connection's reply (addresses IPv4 or IPv6; times UTC, to the millisecond).</summary>
public sealed record ConnectionEntry(ulong Mac, bool Ingress, IPAddress Client, IPAddress Server, ushort ServerPort, byte Protocol,
    uint RuleId, DpPolicyAction Action, long Sessions, long Packets, long Bytes, long Dropped, DateTime FirstSeen, DateTime LastSeen,
    bool Answered = false, bool Scan = false, long Attempts = 0);

/// <summary>nvr_list_connection's reply: the entries, the table's capacity and how many entries it evicted.</summary>
public sealed record ConnectionList(ConnectionEntry[] Connections, long Capacity, long Evicted);

/// <summary>nvr_get_state's "daemon": who it is.</summary>
public sealed record DaemonEntry(int Pid, string Version, string Namespace, string Socket, string? Log, int SessionCapacity, DateTime Started)
{
    /// <summary>Whether a supervisor restarts it when it dies, how often it did, and why the last one died (null: never).</summary>
    public bool Supervised { get; init; }
    public int Restarts { get; init; }
    public string? LastExit { get; init; }
    /// <summary>Where its configuration is saved, and why a saved one was refused at start (null: none was).</summary>
    public string? StateFile { get; init; }
    public string? StateProblem { get; init; }
}

/// <summary>A workload's policy in the state: version, default action, direction and how many rules.</summary>
public sealed record PolicySummary(uint Version, DpPolicyAction DefaultAction, DpDirection Direction, int Rules);

/// <summary>One workload in the state (MACs 0 when absent).</summary>
public sealed record WorkloadEntry(ulong Mac, string Interface, ulong UnicastMac, ulong BroadcastMac, ulong ProxyMac, uint[] ProxyAddresses,
    bool Tap, AppPort[] Apps, long PacketsIn, long PacketsOut, long BytesIn, long BytesOut, long SessionsIn, long SessionsOut, PolicySummary? Policy);

/// <summary>A chunked policy started and not finished: its workloads and the rules so far.</summary>
public sealed record PendingPolicyEntry(ulong[] Macs, int Rules);

/// <summary>The policy counters since the daemon started.</summary>
public sealed record PolicyCounters(long DeniedPackets, long DeniedSessions, long BlockedSessions, long ResetsSent, long Reevaluations)
{
    /// <summary>Decisions the unknown-peer grace period turned from the default DENY/VIOLATE into OPEN (dp's semantics only).</summary>
    public long GraceOpened { get; init; }
}

/// <summary>
/// One of the daemon's tables in the state: how full, what it evicted (LearnedEvicted: learned connections or live
/// sessions among them) and, for connections, the learned and scan entries and the attempts summarised in scans.
/// </summary>
public sealed record TableFigures(long Capacity, long Count, long Learned, long Scans, long Evicted, long LearnedEvicted, long Summarised);

/// <summary>nvr_get_state's "tables": the session and the connection table.</summary>
public sealed record TablesReport(TableFigures Sessions, TableFigures Connections);

/// <summary>Requests applied and rejected since the daemon started, and why the last rejected one was.</summary>
public sealed record RequestCounters(long Accepted, long Rejected, string? LastRejection);

/// <summary>Whether the sender's previous datagram was applied, and why not (or what failed while applying it).</summary>
public sealed record LastRequest(bool Accepted, string? Error);

/// <summary>nvr_get_state's reply: the daemon's configuration, identity and counters.</summary>
public sealed record StateReport(DaemonEntry Daemon, string? ServicePort, WorkloadEntry[] Workloads, InternalSubnet[] InternalNets,
    int? InternalNetsPending, bool XffEnabled, bool DisableNetPolicy, bool DetectUnmanagedWorkloads, bool EnableIcmpPolicy,
    bool StrictGroupMode, string[] Debug, uint[] PolicyAddresses, PendingPolicyEntry? PolicyPending, PolicyCounters PolicyCounters,
    RequestCounters Requests, LastRequest? YourLastRequest, TablesReport? Tables = null, AgentState? Agent = null)
{
    /// <summary>nvr_cfg_strict: the strict semantics (true) or NeuVector dp's (false).</summary>
    public bool Strict { get; init; }
}

/// <summary>A name ctrl_cfg_set_fqdn bound to addresses.</summary>
public sealed record FqdnEntry(string Name, IPAddress[] Addresses, bool VirtualHost);

/// <summary>A ctrl_add_tap_port nvr-dp keeps (and opens nothing for).</summary>
public sealed record TapPortEntry(string NetNs, string Interface, ulong EndpointMac);

/// <summary>How many times a command was accepted without effect.</summary>
public sealed record NoEffectEntry(string Command, long Count);

/// <summary>Connection reports to the agent's socket: where, whether a listener was found, datagrams and records sent, failures.</summary>
public sealed record ReportCounters(string? Socket, bool Listening, long Datagrams, long Records, long Failures, string? LastFailure);

/// <summary>
/// What nvr_get_state says about the rest of the agent's messages: special IP networks, FQDN names, namespace-boundary
/// switches and tap ports kept, the commands accepted without effect (each with a count), and the connection reports.
/// </summary>
public sealed record AgentState(InternalSubnet[] SpecialNets, FqdnEntry[] Fqdns, ulong[] NbeMacs, TapPortEntry[] TapPorts, NoEffectEntry[] NoEffect,
    ReportCounters Reports);

/// <summary>
/// nvr-dp's JSON replies (kinds 200-202), each with its one writer (the daemon) and its one reader (the module). The text
/// travels in datagrams cut by <see cref="Replies.Json"/>. Readers accept what older daemons leave out (a workload's
/// policy, policy_addr, policy_pending, policy_counters, your_last_request, tables, a connection's answered, scan and
/// attempts) and throw JsonException,
/// KeyNotFoundException, InvalidOperationException, FormatException or <see cref="CommandException"/> on anything else.
/// </summary>
public static class JsonReplies
{
    private const string TimeFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";

    private static byte[] Write(int capacity, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(capacity);
        using (var w = new Utf8JsonWriter(buffer)) body(w);
        return buffer.WrittenSpan.ToArray();
    }

    private static string Time(DateTime t) => t.ToString(TimeFormat, CultureInfo.InvariantCulture);

    private static DateTime ReadTime(JsonElement e)
        => DateTime.Parse(e.GetString() ?? "", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);

    private static ulong ReadMac(JsonElement e) => Fields.ParseMac(e.GetString() ?? "") ?? throw new FormatException($"'{e.GetString()}' is not a MAC address");

    private static ulong ReadOptionalMac(JsonElement o, string key) => OptionalString(o, key) is { Length: > 0 } s
        ? Fields.ParseMac(s) ?? throw new FormatException($"'{s}' is not a MAC address") : 0;

    private static uint ReadIPv4(JsonElement e) => Fields.ParseIPv4(e.GetString() ?? "") ?? throw new FormatException($"'{e.GetString()}' is not an IPv4 address");

    private static string? OptionalString(JsonElement o, string name)
        => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static void WriteOptional(Utf8JsonWriter w, string key, string? value) { if (value == null) w.WriteNull(key); else w.WriteString(key, value); }

    private static void WriteMac(Utf8JsonWriter w, string key, ulong mac) { if (mac == 0) w.WriteNull(key); else w.WriteString(key, Fields.FormatMac(mac)); }

    private static DpPolicyAction ReadAction(JsonElement e)
    {
        byte v = e.GetByte();
        return v <= PolicyActions.Max ? (DpPolicyAction)v : throw new FormatException($"{v} is not a policy action (0-7)");
    }

    private static DpDirection ReadDirection(JsonElement e)
    {
        byte v = e.GetByte();
        return v is >= 1 and <= 3 ? (DpDirection)v : throw new FormatException($"{v} is not a policy direction (1-3)");
    }

    /// <summary>nvr_get_policy's reply: {"policies": [{mac, version, defact, dir, rules}]}.</summary>
    public static byte[] WritePolicies(IEnumerable<PolicyEntry> policies) => Write(4096, w =>
    {
        w.WriteStartObject();
        w.WriteStartArray(Key.Policies);
        foreach (var p in policies)
        {
            w.WriteStartObject();
            w.WriteString(Key.Mac, Fields.FormatMac(p.Mac));
            w.WriteNumber(Key.Version, p.Version);
            w.WriteNumber(Key.DefaultAction, (byte)p.DefaultAction);
            w.WriteNumber(Key.Direction, (byte)p.Direction);
            w.WriteStartArray(Key.Rules);
            foreach (var rule in p.Rules) rule.Write(w);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    });

    /// <summary>The reader of <see cref="WritePolicies"/>.</summary>
    public static List<PolicyEntry> ReadPolicies(ReadOnlySpan<byte> json)
    {
        using var doc = JsonDocument.Parse(json.ToArray());
        return doc.RootElement.GetProperty(Key.Policies).EnumerateArray().Select(p => new PolicyEntry(
            ReadMac(p.GetProperty(Key.Mac)), p.GetProperty(Key.Version).GetUInt32(), ReadAction(p.GetProperty(Key.DefaultAction)),
            ReadDirection(p.GetProperty(Key.Direction)),
            p.GetProperty(Key.Rules).EnumerateArray().Select(r => PolicyRule.Read(r, out _)).ToArray())).ToList();
    }

    /// <summary>nvr_list_connection's reply: {"connections": [...], "capacity": N, "evicted": N}.</summary>
    public static byte[] WriteConnections(ConnectionList list) => Write(4096, w =>
    {
        w.WriteStartObject();
        w.WriteStartArray(Key.Connections);
        foreach (var c in list.Connections)
        {
            w.WriteStartObject();
            w.WriteString(Key.Mac, Fields.FormatMac(c.Mac));
            w.WriteBoolean(Key.Ingress, c.Ingress);
            w.WriteString(Key.Client, c.Client.ToString());
            w.WriteString(Key.Server, c.Server.ToString());
            w.WriteNumber(Key.ServerPort, c.ServerPort);
            w.WriteNumber(Key.Protocol, c.Protocol);
            w.WriteNumber(Key.ConnectionRuleId, c.RuleId);
            w.WriteNumber(Key.Action, (byte)c.Action);
            w.WriteNumber(Key.Sessions, c.Sessions);
            w.WriteNumber(Key.Packets, c.Packets);
            w.WriteNumber(Key.Bytes, c.Bytes);
            w.WriteNumber(Key.Dropped, c.Dropped);
            w.WriteString(Key.FirstSeen, Time(c.FirstSeen));
            w.WriteString(Key.LastSeen, Time(c.LastSeen));
            w.WriteBoolean(Key.Answered, c.Answered);
            w.WriteBoolean(Key.Scan, c.Scan);
            w.WriteNumber(Key.Attempts, c.Attempts);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNumber(Key.Capacity, list.Capacity);
        w.WriteNumber(Key.Evicted, list.Evicted);
        w.WriteEndObject();
    });

    /// <summary>The reader of <see cref="WriteConnections"/> (capacity and evicted 0 when absent).</summary>
    public static ConnectionList ReadConnections(ReadOnlySpan<byte> json)
    {
        using var doc = JsonDocument.Parse(json.ToArray());
        var r = doc.RootElement;
        long capacity = r.TryGetProperty(Key.Capacity, out var c) ? c.GetInt64() : 0;
        long evicted = r.TryGetProperty(Key.Evicted, out var e) ? e.GetInt64() : 0;
        var entries = r.GetProperty(Key.Connections).EnumerateArray().Select(x => new ConnectionEntry(
            ReadMac(x.GetProperty(Key.Mac)), x.GetProperty(Key.Ingress).GetBoolean(),
            IPAddress.Parse(x.GetProperty(Key.Client).GetString() ?? ""), IPAddress.Parse(x.GetProperty(Key.Server).GetString() ?? ""),
            x.GetProperty(Key.ServerPort).GetUInt16(), x.GetProperty(Key.Protocol).GetByte(), x.GetProperty(Key.ConnectionRuleId).GetUInt32(),
            ReadAction(x.GetProperty(Key.Action)), x.GetProperty(Key.Sessions).GetInt64(), x.GetProperty(Key.Packets).GetInt64(),
            x.GetProperty(Key.Bytes).GetInt64(), x.GetProperty(Key.Dropped).GetInt64(),
            ReadTime(x.GetProperty(Key.FirstSeen)), ReadTime(x.GetProperty(Key.LastSeen)),
            x.TryGetProperty(Key.Answered, out var a) && a.GetBoolean(), x.TryGetProperty(Key.Scan, out var sc) && sc.GetBoolean(),
            x.TryGetProperty(Key.Attempts, out var n) ? n.GetInt64() : 0)).ToArray();
        return new ConnectionList(entries, capacity, evicted);
    }

    /// <summary>nvr_get_state's reply.</summary>
    public static byte[] WriteState(StateReport s) => Write(1024, w =>
    {
        w.WriteStartObject();
        var d = s.Daemon;
        w.WriteStartObject(Key.Daemon);
        w.WriteNumber(Key.Pid, d.Pid);
        w.WriteString(Key.Version, d.Version);
        w.WriteString(Key.Namespace, d.Namespace);
        w.WriteString(Key.Socket, d.Socket);
        WriteOptional(w, Key.Log, d.Log);
        w.WriteNumber(Key.SessionCapacity, d.SessionCapacity);
        w.WriteString(Key.Started, Time(d.Started));
        w.WriteBoolean(Key.Supervised, d.Supervised);
        w.WriteNumber(Key.Restarts, d.Restarts);
        WriteOptional(w, Key.LastExit, d.LastExit);
        WriteOptional(w, Key.StateFile, d.StateFile);
        WriteOptional(w, Key.StateProblem, d.StateProblem);
        w.WriteEndObject();
        WriteOptional(w, Key.ServicePort, s.ServicePort);
        w.WriteStartArray(Key.Workloads);
        foreach (var wl in s.Workloads)
        {
            w.WriteStartObject();
            w.WriteString(Key.Mac, Fields.FormatMac(wl.Mac));
            w.WriteString(Key.Interface, wl.Interface);
            WriteMac(w, Key.UnicastMac, wl.UnicastMac);
            WriteMac(w, Key.BroadcastMac, wl.BroadcastMac);
            WriteMac(w, Key.ProxyMac, wl.ProxyMac);
            w.WriteStartArray(Key.ProxyAddresses);
            foreach (var ip in wl.ProxyAddresses) w.WriteStringValue(Fields.FormatIPv4(ip));
            w.WriteEndArray();
            w.WriteBoolean(Key.Tap, wl.Tap);
            w.WriteStartArray(Key.Apps);
            foreach (var a in wl.Apps) a.Write(w);
            w.WriteEndArray();
            w.WriteNumber(Key.PacketsIn, wl.PacketsIn);
            w.WriteNumber(Key.PacketsOut, wl.PacketsOut);
            w.WriteNumber(Key.BytesIn, wl.BytesIn);
            w.WriteNumber(Key.BytesOut, wl.BytesOut);
            w.WriteNumber(Key.SessionsIn, wl.SessionsIn);
            w.WriteNumber(Key.SessionsOut, wl.SessionsOut);
            if (wl.Policy is not { } policy) w.WriteNull(Key.Policy);
            else
            {
                w.WriteStartObject(Key.Policy);
                w.WriteNumber(Key.Version, policy.Version);
                w.WriteNumber(Key.DefaultAction, (byte)policy.DefaultAction);
                w.WriteNumber(Key.Direction, (byte)policy.Direction);
                w.WriteNumber(Key.Rules, policy.Rules);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray(Key.InternalNets);
        foreach (var n in s.InternalNets) n.Write(w);
        w.WriteEndArray();
        if (s.InternalNetsPending is int pending) w.WriteNumber(Key.InternalNetsPending, pending); else w.WriteNull(Key.InternalNetsPending);
        w.WriteBoolean(Key.XffEnabled, s.XffEnabled);
        w.WriteBoolean(Key.DisableNetPolicy, s.DisableNetPolicy);
        w.WriteBoolean(Key.DetectUnmanagedWorkloads, s.DetectUnmanagedWorkloads);
        w.WriteBoolean(Key.EnableIcmpPolicy, s.EnableIcmpPolicy);
        w.WriteBoolean(Key.StrictGroupMode, s.StrictGroupMode);
        w.WriteBoolean(Key.Strict, s.Strict);
        w.WriteStartArray(Key.Debug);
        foreach (var c in s.Debug) w.WriteStringValue(c);
        w.WriteEndArray();
        w.WriteStartArray(Key.PolicyAddresses);
        foreach (var a in s.PolicyAddresses) w.WriteStringValue(Fields.FormatIPv4(a));
        w.WriteEndArray();
        if (s.PolicyPending is not { } pp) w.WriteNull(Key.PolicyPending);
        else
        {
            w.WriteStartObject(Key.PolicyPending);
            Fields.WriteMacs(w, Key.Macs, pp.Macs);
            w.WriteNumber(Key.Rules, pp.Rules);
            w.WriteEndObject();
        }
        var pc = s.PolicyCounters;
        w.WriteStartObject(Key.PolicyCounters);
        w.WriteNumber(Key.DeniedPackets, pc.DeniedPackets);
        w.WriteNumber(Key.DeniedSessions, pc.DeniedSessions);
        w.WriteNumber(Key.BlockedSessions, pc.BlockedSessions);
        w.WriteNumber(Key.ResetsSent, pc.ResetsSent);
        w.WriteNumber(Key.Reevaluations, pc.Reevaluations);
        w.WriteNumber(Key.GraceOpened, pc.GraceOpened);
        w.WriteEndObject();
        if (s.Tables is { } tables)
        {
            w.WriteStartObject(Key.Tables);
            WriteTable(w, Key.Sessions, tables.Sessions);
            WriteTable(w, Key.Connections, tables.Connections);
            w.WriteEndObject();
        }
        w.WriteStartObject(Key.Requests);
        w.WriteNumber(Key.Accepted, s.Requests.Accepted);
        w.WriteNumber(Key.Rejected, s.Requests.Rejected);
        WriteOptional(w, Key.LastRejection, s.Requests.LastRejection);
        w.WriteEndObject();
        if (s.YourLastRequest is not { } last) w.WriteNull(Key.YourLastRequest);
        else
        {
            w.WriteStartObject(Key.YourLastRequest);
            w.WriteBoolean(Key.Accepted, last.Accepted);
            WriteOptional(w, Key.Error, last.Error);
            w.WriteEndObject();
        }
        if (s.Agent is { } agent) WriteAgent(w, agent);
        w.WriteEndObject();
    });

    private static void WriteAgent(Utf8JsonWriter w, AgentState a)
    {
        w.WriteStartArray(Key.SpecialNets);
        foreach (var n in a.SpecialNets) n.Write(w);
        w.WriteEndArray();
        w.WriteStartArray(Key.Fqdns);
        foreach (var f in a.Fqdns)
        {
            w.WriteStartObject();
            w.WriteString(Key.FqdnName, f.Name);
            w.WriteStartArray(Key.FqdnIps);
            foreach (var ip in f.Addresses) w.WriteStringValue(ip.ToString());
            w.WriteEndArray();
            w.WriteBoolean(Key.VirtualHost, f.VirtualHost);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        Fields.WriteMacs(w, Key.NbeMacs, a.NbeMacs);
        w.WriteStartArray(Key.TapPorts);
        foreach (var t in a.TapPorts)
        {
            w.WriteStartObject();
            w.WriteString(Key.NetNs, t.NetNs);
            w.WriteString(Key.Interface, t.Interface);
            w.WriteString(Key.EndpointMac, Fields.FormatMac(t.EndpointMac));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartObject(Key.NoEffect);
        foreach (var n in a.NoEffect) w.WriteNumber(n.Command, n.Count);
        w.WriteEndObject();
        var r = a.Reports;
        w.WriteStartObject(Key.Reports);
        WriteOptional(w, Key.Socket, r.Socket);
        w.WriteBoolean(Key.Listening, r.Listening);
        w.WriteNumber(Key.Datagrams, r.Datagrams);
        w.WriteNumber(Key.Records, r.Records);
        w.WriteNumber(Key.Failures, r.Failures);
        WriteOptional(w, Key.LastFailure, r.LastFailure);
        w.WriteEndObject();
    }

    private static AgentState? ReadAgent(JsonElement r)
    {
        if (!r.TryGetProperty(Key.NoEffect, out var noEffect) || noEffect.ValueKind != JsonValueKind.Object) return null; // an older daemon
        var rep = r.GetProperty(Key.Reports);
        return new AgentState(
            r.GetProperty(Key.SpecialNets).EnumerateArray().Select(n => new InternalSubnet(ReadIPv4(n.GetProperty(Key.Ip)), ReadIPv4(n.GetProperty(Key.Mask)),
                OptionalString(n, Key.IpType))).ToArray(),
            r.GetProperty(Key.Fqdns).EnumerateArray().Select(f => new FqdnEntry(f.GetProperty(Key.FqdnName).GetString() ?? "",
                f.GetProperty(Key.FqdnIps).EnumerateArray().Select(ip => IPAddress.Parse(ip.GetString() ?? "")).ToArray(),
                f.GetProperty(Key.VirtualHost).GetBoolean())).ToArray(),
            r.GetProperty(Key.NbeMacs).EnumerateArray().Select(ReadMac).ToArray(),
            r.GetProperty(Key.TapPorts).EnumerateArray().Select(t => new TapPortEntry(t.GetProperty(Key.NetNs).GetString() ?? "",
                t.GetProperty(Key.Interface).GetString() ?? "", ReadMac(t.GetProperty(Key.EndpointMac)))).ToArray(),
            noEffect.EnumerateObject().Select(p => new NoEffectEntry(p.Name, p.Value.GetInt64())).ToArray(),
            new ReportCounters(OptionalString(rep, Key.Socket), rep.GetProperty(Key.Listening).GetBoolean(), rep.GetProperty(Key.Datagrams).GetInt64(),
                rep.GetProperty(Key.Records).GetInt64(), rep.GetProperty(Key.Failures).GetInt64(), OptionalString(rep, Key.LastFailure)));
    }

    /// <summary>The reader of <see cref="WriteState"/>.</summary>
    public static StateReport ReadState(ReadOnlySpan<byte> json)
    {
        using var doc = JsonDocument.Parse(json.ToArray());
        var r = doc.RootElement;
        var d = r.GetProperty(Key.Daemon);
        var daemon = new DaemonEntry(d.GetProperty(Key.Pid).GetInt32(), d.GetProperty(Key.Version).GetString() ?? "",
            d.GetProperty(Key.Namespace).GetString() ?? "", d.GetProperty(Key.Socket).GetString() ?? "", OptionalString(d, Key.Log),
            d.GetProperty(Key.SessionCapacity).GetInt32(), ReadTime(d.GetProperty(Key.Started)))
        {
            Supervised = d.TryGetProperty(Key.Supervised, out var sv) && sv.ValueKind == JsonValueKind.True,
            Restarts = d.TryGetProperty(Key.Restarts, out var rs) && rs.ValueKind == JsonValueKind.Number ? rs.GetInt32() : 0,
            LastExit = OptionalString(d, Key.LastExit), StateFile = OptionalString(d, Key.StateFile), StateProblem = OptionalString(d, Key.StateProblem),
        };
        LastRequest? last = r.TryGetProperty(Key.YourLastRequest, out var l) && l.ValueKind == JsonValueKind.Object
            ? new LastRequest(l.GetProperty(Key.Accepted).GetBoolean(), OptionalString(l, Key.Error)) : null;
        var requests = r.GetProperty(Key.Requests);
        long Counter(string name) => r.TryGetProperty(Key.PolicyCounters, out var c) && c.TryGetProperty(name, out var v) ? v.GetInt64() : 0;
        return new StateReport(
            daemon,
            OptionalString(r, Key.ServicePort),
            r.GetProperty(Key.Workloads).EnumerateArray().Select(ReadWorkload).ToArray(),
            r.GetProperty(Key.InternalNets).EnumerateArray().Select(n => new InternalSubnet(ReadIPv4(n.GetProperty(Key.Ip)), ReadIPv4(n.GetProperty(Key.Mask)),
                OptionalString(n, Key.IpType))).ToArray(),
            r.GetProperty(Key.InternalNetsPending) is { ValueKind: JsonValueKind.Number } p ? p.GetInt32() : null,
            r.GetProperty(Key.XffEnabled).GetBoolean(), r.GetProperty(Key.DisableNetPolicy).GetBoolean(),
            r.GetProperty(Key.DetectUnmanagedWorkloads).GetBoolean(), r.GetProperty(Key.EnableIcmpPolicy).GetBoolean(),
            r.GetProperty(Key.StrictGroupMode).GetBoolean(),
            r.GetProperty(Key.Debug).EnumerateArray().Select(x => x.GetString() ?? "").ToArray(),
            r.TryGetProperty(Key.PolicyAddresses, out var pa) && pa.ValueKind == JsonValueKind.Array ? pa.EnumerateArray().Select(ReadIPv4).ToArray() : [],
            r.TryGetProperty(Key.PolicyPending, out var pp) && pp.ValueKind == JsonValueKind.Object
                ? new PendingPolicyEntry(pp.GetProperty(Key.Macs).EnumerateArray().Select(ReadMac).ToArray(), pp.GetProperty(Key.Rules).GetInt32()) : null,
            new PolicyCounters(Counter(Key.DeniedPackets), Counter(Key.DeniedSessions), Counter(Key.BlockedSessions), Counter(Key.ResetsSent),
                Counter(Key.Reevaluations)) { GraceOpened = Counter(Key.GraceOpened) },
            new RequestCounters(requests.GetProperty(Key.Accepted).GetInt64(), requests.GetProperty(Key.Rejected).GetInt64(),
                OptionalString(requests, Key.LastRejection)),
            last,
            r.TryGetProperty(Key.Tables, out var t) && t.ValueKind == JsonValueKind.Object
                ? new TablesReport(ReadTable(t.GetProperty(Key.Sessions)), ReadTable(t.GetProperty(Key.Connections))) : null,
            ReadAgent(r)) { Strict = r.TryGetProperty(Key.Strict, out var strict) && strict.ValueKind == JsonValueKind.True };
    }

    private static void WriteTable(Utf8JsonWriter w, string key, TableFigures t)
    {
        w.WriteStartObject(key);
        w.WriteNumber(Key.Capacity, t.Capacity);
        w.WriteNumber(Key.Count, t.Count);
        w.WriteNumber(Key.Learned, t.Learned);
        w.WriteNumber(Key.Scans, t.Scans);
        w.WriteNumber(Key.Evicted, t.Evicted);
        w.WriteNumber(Key.LearnedEvicted, t.LearnedEvicted);
        w.WriteNumber(Key.Summarised, t.Summarised);
        w.WriteEndObject();
    }

    private static TableFigures ReadTable(JsonElement t)
    {
        long N(string name) => t.TryGetProperty(name, out var v) ? v.GetInt64() : 0;
        return new TableFigures(N(Key.Capacity), N(Key.Count), N(Key.Learned), N(Key.Scans), N(Key.Evicted), N(Key.LearnedEvicted), N(Key.Summarised));
    }

    private static WorkloadEntry ReadWorkload(JsonElement w)
    {
        // "policy": null, or absent from a daemon older than policies
        PolicySummary? policy = w.TryGetProperty(Key.Policy, out var p) && p.ValueKind == JsonValueKind.Object
            ? new PolicySummary(p.GetProperty(Key.Version).GetUInt32(), ReadAction(p.GetProperty(Key.DefaultAction)),
                ReadDirection(p.GetProperty(Key.Direction)), p.GetProperty(Key.Rules).GetInt32())
            : null;
        return new WorkloadEntry(
            ReadMac(w.GetProperty(Key.Mac)), w.GetProperty(Key.Interface).GetString() ?? "",
            ReadOptionalMac(w, Key.UnicastMac), ReadOptionalMac(w, Key.BroadcastMac), ReadOptionalMac(w, Key.ProxyMac),
            w.GetProperty(Key.ProxyAddresses).EnumerateArray().Select(ReadIPv4).ToArray(),
            w.GetProperty(Key.Tap).GetBoolean(),
            w.GetProperty(Key.Apps).EnumerateArray().Select(a => new AppPort(a.GetProperty(Key.Port).GetUInt16(), a.GetProperty(Key.IpProtocol).GetByte(),
                a.GetProperty(Key.App).GetUInt32(), a.GetProperty(Key.Server).GetUInt32())).ToArray(),
            w.GetProperty(Key.PacketsIn).GetInt64(), w.GetProperty(Key.PacketsOut).GetInt64(), w.GetProperty(Key.BytesIn).GetInt64(),
            w.GetProperty(Key.BytesOut).GetInt64(), w.GetProperty(Key.SessionsIn).GetInt64(), w.GetProperty(Key.SessionsOut).GetInt64(),
            policy);
    }
}
