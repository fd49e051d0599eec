using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Protocol;

namespace NvRedirect.Core.Configuration;

/// <summary>
/// An enforcer's desired state as a document (docs/configuration.md): its namespace, its datapath's settings, and the
/// protected workloads (taken-over containers) with each one's mode and policy rules. Parsed from and written as JSON;
/// <see cref="Configurator"/> compares it with what runs and converges.
/// </summary>
public sealed class EnforcerConfiguration
{
    /// <summary>The enforcer namespace the workloads are taken over into (default nvr-enforcer).</summary>
    public string Namespace { get; init; } = ContainerTakeover.DefaultEnforcer;
    /// <summary>The datapath serving the enforcer.</summary>
    public DatapathSettings Datapath { get; init; } = new();
    /// <summary>Whether taken-over workloads of the namespace that the document does not list are given back (default true: the document is the whole truth).</summary>
    public bool RemoveUnlisted { get; init; } = true;
    /// <summary>The workloads, in the order they are converged.</summary>
    public IReadOnlyList<WorkloadConfiguration> Workloads { get; init; } = [];

    /// <summary>The document's fields (docs/configuration.schema.json lists the same; xunit compares them).</summary>
    internal static readonly string[] Fields = ["$schema", "namespace", "datapath", "removeUnlisted", "workloads"];
    /// <summary>The datapath object's fields.</summary>
    internal static readonly string[] DatapathFields = ["controlSocket", "logPath", "sessionCapacity", "connectionCapacity", "supervised"];

    /// <summary>The document as indented JSON with the field names docs/configuration.md gives (settings left open are left out).</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("namespace", Namespace);
            w.WriteStartObject("datapath");
            if (Datapath.ControlSocket != null) w.WriteString("controlSocket", Datapath.ControlSocket);
            if (Datapath.LogPath != null) w.WriteString("logPath", Datapath.LogPath);
            if (Datapath.SessionCapacity is int s) w.WriteNumber("sessionCapacity", s);
            if (Datapath.ConnectionCapacity is int c) w.WriteNumber("connectionCapacity", c);
            w.WriteBoolean("supervised", Datapath.Supervised);
            w.WriteEndObject();
            w.WriteBoolean("removeUnlisted", RemoveUnlisted);
            w.WriteStartArray("workloads");
            foreach (var wl in Workloads) wl.Write(w);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Namespace}: {Workloads.Count} workload{(Workloads.Count == 1 ? "" : "s")}";

    /// <summary>
    /// Parses a document. Every mistake is an <see cref="ArgumentException"/> naming where it is (e.g. workloads[1].mode)
    /// and what to write instead; unknown fields are refused, so a misspelt one never passes silently.
    /// </summary>
    public static EnforcerConfiguration Parse(string json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new ArgumentException($"The configuration is not valid JSON: {e.Message}"); }
        using (doc)
        {
            var root = doc.RootElement;
            var r = new Reader("configuration");
            r.Object(root, Fields);
            var ns = r.String(root, "namespace") ?? ContainerTakeover.DefaultEnforcer;
            if (ns.Length == 0) throw r.Error("namespace", "is empty: name the enforcer namespace (default nvr-enforcer); the root namespace cannot be an enforcer");
            try { Namespaces.NetworkNamespace.ThrowIfInvalid(ns); }
            catch (ArgumentException e) { throw r.Error("namespace", $"'{ns}' is not a namespace name: {e.Message}"); }
            var dp = new DatapathSettings();
            if (root.TryGetProperty("datapath", out var d) && d.ValueKind != JsonValueKind.Null)
            {
                var dr = r.Child("datapath");
                dr.Object(d, DatapathFields);
                var socket = dr.String(d, "controlSocket");
                if (socket != null && !socket.StartsWith('/')) throw dr.Error("controlSocket", $"'{socket}' is not an absolute path");
                var log = dr.String(d, "logPath");
                if (log != null && !log.StartsWith('/')) throw dr.Error("logPath", $"'{log}' is not an absolute path");
                dp = new DatapathSettings
                {
                    ControlSocket = socket, LogPath = log,
                    SessionCapacity = dr.Int(d, "sessionCapacity", 1, 16777216), ConnectionCapacity = dr.Int(d, "connectionCapacity", 1, 4194304),
                    Supervised = dr.Bool(d, "supervised") ?? true,
                };
            }
            var workloads = new List<WorkloadConfiguration>();
            if (root.TryGetProperty("workloads", out var ws) && ws.ValueKind != JsonValueKind.Null)
            {
                if (ws.ValueKind != JsonValueKind.Array) throw r.Error("workloads", "must be a list of workloads");
                int i = 0;
                foreach (var we in ws.EnumerateArray()) workloads.Add(WorkloadConfiguration.Read(r.Child($"workloads[{i++}]"), we));
            }
            for (int a = 0; a < workloads.Count; a++)
                for (int b = a + 1; b < workloads.Count; b++)
                    if (workloads[a].Identity == workloads[b].Identity &&
                        (workloads[a].Interfaces == null || workloads[b].Interfaces == null || workloads[a].Interfaces!.Intersect(workloads[b].Interfaces!).Any()))
                        throw new ArgumentException($"configuration.workloads[{a}] and [{b}] both name {workloads[a].Display}: list each workload once (or split it by interfaces that do not overlap).");
            return new EnforcerConfiguration { Namespace = ns, Datapath = dp, RemoveUnlisted = r.Bool(root, "removeUnlisted") ?? true, Workloads = workloads };
        }
    }

    /// <summary>Reads fields with errors that say where (a JSON path) and what was wrong.</summary>
    internal sealed class Reader(string path)
    {
        public string Path => path;
        public Reader Child(string name) => new($"{path}.{name}");
        public ArgumentException Error(string field, string what) => new($"{path}.{field} {what}.");

        public void Object(JsonElement e, string[] allowed)
        {
            if (e.ValueKind != JsonValueKind.Object) throw new ArgumentException($"{path} must be a JSON object.");
            foreach (var p in e.EnumerateObject())
                if (!allowed.Contains(p.Name, StringComparer.Ordinal))
                    throw new ArgumentException($"{path} has an unknown field '{p.Name}': the fields are {string.Join(", ", allowed.Where(a => a[0] != '$'))} (names are case-sensitive).");
        }

        public string? String(JsonElement e, string name)
        {
            if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind == JsonValueKind.Number) return v.GetRawText(); // a port written as 80
            if (v.ValueKind != JsonValueKind.String) throw Error(name, "must be a string");
            return v.GetString();
        }

        public int? Int(JsonElement e, string name, int min, int max)
        {
            if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind == JsonValueKind.String && int.TryParse(v.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out int s)) return Check(s);
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long n)) throw Error(name, $"must be a whole number from {min} to {max}");
            return Check(n);
            int Check(long x) => x >= min && x <= max ? (int)x : throw Error(name, $"is {x}: it must be from {min} to {max}");
        }

        public bool? Bool(JsonElement e, string name)
        {
            if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            return v.ValueKind switch
            {
                JsonValueKind.True => true, JsonValueKind.False => false,
                _ => throw Error(name, "must be true or false"),
            };
        }

        public T? Enum<T>(JsonElement e, string name, string[] names) where T : struct, System.Enum
        {
            var s = String(e, name);
            if (s == null) return null;
            if (!names.Contains(s, StringComparer.OrdinalIgnoreCase) || !System.Enum.TryParse<T>(s, true, out var v))
                throw Error(name, $"is '{s}': write one of {string.Join(", ", names)}");
            return v;
        }
    }
}

/// <summary>The enforcer's datapath: used when it has to be started; the control socket also names the one that must run.</summary>
public sealed class DatapathSettings
{
    /// <summary>The control socket (default /run/nvredirect/dp-NAMESPACE.sock, or the one a running datapath of the namespace serves).</summary>
    public string? ControlSocket { get; init; }
    /// <summary>The daemon's log file (default /var/log/nvr-dp.log); applied when it is started.</summary>
    public string? LogPath { get; init; }
    /// <summary>The session table's size; applied when it is started.</summary>
    public int? SessionCapacity { get; init; }
    /// <summary>The connection table's size; applied when it is started.</summary>
    public int? ConnectionCapacity { get; init; }
    /// <summary>Whether nvr-dp runs under its supervisor (default true); applied when it is started.</summary>
    public bool Supervised { get; init; } = true;
}

/// <summary>Whether a workload is to be protected (taken over) or given back.</summary>
public enum WorkloadState
{
    /// <summary>Taken over, with its mode and rules.</summary>
    Present,
    /// <summary>Given back (not taken over).</summary>
    Absent,
}

/// <summary>One workload of the document: a container named as the interception cmdlets name it, its mode and rules.</summary>
public sealed class WorkloadConfiguration
{
    /// <summary>A podman or docker container name or id (as -Container).</summary>
    public string? Container { get; init; }
    /// <summary>A process of the container (as -ProcessId).</summary>
    public int? ProcessId { get; init; }
    /// <summary>The container's network namespace file (as -NetnsPath).</summary>
    public string? NetnsPath { get; init; }
    /// <summary>Only these interfaces (as -Interface); null: every Ethernet interface of the container.</summary>
    public IReadOnlyList<string>? Interfaces { get; init; }
    /// <summary>The mode: None (registered, no policy: everything passes), Discover, Monitor, Protect, or Custom (with <see cref="DefaultAction"/>).</summary>
    public DpWorkloadMode Mode { get; init; } = DpWorkloadMode.None;
    /// <summary>The default action of a Custom mode (null otherwise).</summary>
    public DpPolicyAction? DefaultAction { get; init; }
    /// <summary>The policy rules, in matching order, numbered (ids 1.. for those without one).</summary>
    public IReadOnlyList<DpRule> Rules { get; init; } = [];
    /// <summary>Present (taken over) or Absent (given back).</summary>
    public WorkloadState State { get; init; } = WorkloadState.Present;

    /// <summary>How the document names the workload: "container web", "pid 42" or "netnsPath /run/netns/x".</summary>
    public string Identity => Container != null ? $"container {Container}" : ProcessId is int p ? $"pid {p}" : $"netnsPath {NetnsPath}";
    /// <summary>The workload as messages name it.</summary>
    public string Display => Container != null ? $"container '{Container}'" : ProcessId is int p ? $"process {p}" : $"network namespace {NetnsPath}";
    /// <summary>The default action the policy must have, or null for no policy (Mode None).</summary>
    public DpPolicyAction? PolicyDefault => Mode switch
    {
        DpWorkloadMode.None => null,
        DpWorkloadMode.Custom => DefaultAction,
        _ => DpPolicy.DefaultActionOf(Mode),
    };

    /// <summary>The mode and rules as lines ("mode protect", "rule 1: ingress tcp any -> any:80 allow"), for plans and diffs.</summary>
    public string PolicyText => Configurator.PolicyText(PolicyDefault, Rules);

    /// <inheritdoc/>
    public override string ToString() => $"{Display} {Mode}";

    /// <summary>A workload's fields.</summary>
    internal static readonly string[] Fields = ["container", "pid", "netnsPath", "interfaces", "mode", "defaultAction", "rules", "state"];
    /// <summary>A rule's fields.</summary>
    internal static readonly string[] RuleFields = ["id", "direction", "protocol", "source", "destination", "port", "action"];
    internal static readonly string[] ModeNames = ["none", "discover", "monitor", "protect", "custom"];
    internal static readonly string[] ActionNames = System.Enum.GetNames<DpPolicyAction>().Select(n => n.ToLowerInvariant()).ToArray();

    internal static WorkloadConfiguration Read(EnforcerConfiguration.Reader r, JsonElement e)
    {
        r.Object(e, Fields);
        var container = r.String(e, "container");
        var pid = r.Int(e, "pid", 1, int.MaxValue);
        var path = r.String(e, "netnsPath");
        int named = (container != null ? 1 : 0) + (pid != null ? 1 : 0) + (path != null ? 1 : 0);
        if (named != 1)
            throw new ArgumentException($"{r.Path} must name its workload exactly one way: container (a podman or docker name or id), pid (a process of the container) or netnsPath (its namespace file){(named > 1 ? ", not several" : "")}.");
        if (container != null && (container.Trim().Length == 0 || container.StartsWith('-'))) throw r.Error("container", $"'{container}' is not a container name or id");
        if (path != null && !path.StartsWith('/')) throw r.Error("netnsPath", $"'{path}' is not an absolute path (/proc/PID/ns/net, /run/netns/NAME...)");
        List<string>? interfaces = null;
        if (e.TryGetProperty("interfaces", out var ie) && ie.ValueKind != JsonValueKind.Null)
        {
            if (ie.ValueKind != JsonValueKind.Array || ie.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(x.GetString())))
                throw r.Error("interfaces", "must be a list of interface names, e.g. [\"eth0\"]");
            interfaces = ie.EnumerateArray().Select(x => x.GetString()!).Distinct().ToList();
            if (interfaces.Count == 0) throw r.Error("interfaces", "is empty: leave it out for every Ethernet interface of the container");
        }
        var state = r.Enum<WorkloadState>(e, "state", ["present", "absent"]) ?? WorkloadState.Present;
        var mode = r.Enum<DpWorkloadMode>(e, "mode", ModeNames) ?? DpWorkloadMode.None;
        var defact = r.Enum<DpPolicyAction>(e, "defaultAction", ActionNames);
        if (mode == DpWorkloadMode.Custom && defact == null) throw r.Error("mode", "is custom: give the policy's defaultAction too (one of " + string.Join(", ", ActionNames) + ")");
        if (mode != DpWorkloadMode.Custom && defact != null) throw r.Error("defaultAction", $"is given with mode {mode.ToString().ToLowerInvariant()}, whose default action is fixed: leave it out, or use mode custom");
        var rules = new List<DpRule>();
        if (e.TryGetProperty("rules", out var re) && re.ValueKind != JsonValueKind.Null)
        {
            if (re.ValueKind != JsonValueKind.Array) throw r.Error("rules", "must be a list of rules");
            int i = 0;
            foreach (var x in re.EnumerateArray()) rules.Add(ReadRule(r.Child($"rules[{i++}]"), x));
        }
        if (mode == DpWorkloadMode.None && rules.Count > 0)
            throw r.Error("rules", "are given with mode none (no policy, everything passes), where no rule applies: give the mode (discover, monitor or protect) the rules belong to");
        List<DpRule> numbered;
        try { numbered = DpPolicyEditor.NumberRules(rules); }
        catch (ArgumentException ex) { throw new ArgumentException($"{r.Path}.rules: {ex.Message}"); }
        return new WorkloadConfiguration
        {
            Container = container, ProcessId = pid, NetnsPath = path, Interfaces = interfaces, Mode = mode, DefaultAction = defact,
            Rules = numbered, State = state,
        };
    }

    private static DpRule ReadRule(EnforcerConfiguration.Reader r, JsonElement e)
    {
        r.Object(e, RuleFields);
        var id = r.Int(e, "id", 0, int.MaxValue) ?? 0;
        var direction = r.Enum<DpDirection>(e, "direction", ["ingress", "egress"]) ?? DpDirection.Ingress;
        var action = r.Enum<DpPolicyAction>(e, "action", ActionNames) ?? DpPolicyAction.Allow;
        try { return DpRule.Parse(r.String(e, "source"), r.String(e, "destination"), r.String(e, "port"), r.String(e, "protocol"), action, direction, (uint)id); }
        catch (ArgumentException ex) { throw new ArgumentException($"{r.Path}: {ex.Message}"); }
    }

    internal void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        if (Container != null) w.WriteString("container", Container);
        else if (ProcessId is int p) w.WriteNumber("pid", p);
        else w.WriteString("netnsPath", NetnsPath);
        if (Interfaces != null)
        {
            w.WriteStartArray("interfaces");
            foreach (var i in Interfaces) w.WriteStringValue(i);
            w.WriteEndArray();
        }
        if (State == WorkloadState.Absent) w.WriteString("state", "absent");
        else
        {
            w.WriteString("mode", Mode.ToString().ToLowerInvariant());
            if (DefaultAction is { } a) w.WriteString("defaultAction", a.ToString().ToLowerInvariant());
            w.WriteStartArray("rules");
            foreach (var rule in Rules) WriteRule(w, rule);
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    internal static void WriteRule(Utf8JsonWriter w, DpRule r)
    {
        w.WriteStartObject();
        w.WriteNumber("id", r.Id);
        w.WriteString("direction", r.Direction.ToString().ToLowerInvariant());
        w.WriteString("protocol", r.ProtocolName.ToLowerInvariant());
        w.WriteString("source", r.Source);
        w.WriteString("destination", r.Destination);
        w.WriteString("port", r.Port);
        w.WriteString("action", r.Action.ToString().ToLowerInvariant());
        w.WriteEndObject();
    }
}
