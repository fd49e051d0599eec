using System;
using System.Buffers;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;

namespace NvRedirect.Core.Protocol;

/// <summary>
/// One command of a request datagram: its name and its one writer. Each message type also has its one reader, a static
/// Read(JsonElement) that is strict as <see cref="Fields"/> (the daemon runs it on what it receives). The module sends
/// these, the daemon reads them; docs/datapath.md lists them.
/// </summary>
public interface IRequestMessage
{
    /// <summary>The command's name (a <see cref="Protocol.Command"/> constant).</summary>
    string Command { get; }
    /// <summary>Writes the argument object.</summary>
    void WriteArguments(Utf8JsonWriter w);
}

/// <summary>{ctrl_keep_alive: {seq_num: N}}: answered with a KEEP_ALIVE reply carrying N.</summary>
public sealed record KeepAliveRequest(uint Sequence) : IRequestMessage
{
    public string Command => Protocol.Command.KeepAlive;
    public void WriteArguments(Utf8JsonWriter w) { w.WriteStartObject(); w.WriteNumber(Key.SequenceNumber, Sequence); w.WriteEndObject(); }
    public static KeepAliveRequest Read(JsonElement args) => new(Fields.UInt(Fields.Object(args), Key.SequenceNumber));
}

/// <summary>A command without arguments: ctrl_count_session, ctrl_list_session, ctrl_counter_device, ctrl_stats_device, ctrl_list_meter, ctrl_refresh_app.</summary>
public sealed record EmptyRequest(string Command) : IRequestMessage
{
    public void WriteArguments(Utf8JsonWriter w) { w.WriteStartObject(); w.WriteEndObject(); }
    public static EmptyRequest Read(string command, JsonElement args) { Fields.Object(args); return new EmptyRequest(command); }
}

/// <summary>{ctrl_add_srvc_port: {iface: I, jumboframe: J}}</summary>
public sealed record AddServicePortRequest(string Interface, bool JumboFrame) : IRequestMessage
{
    public string Command => Protocol.Command.AddServicePort;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString(Key.Interface, Interface);
        w.WriteBoolean(Key.JumboFrame, JumboFrame);
        w.WriteEndObject();
    }
    public static AddServicePortRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        return new(Fields.InterfaceName(o, Key.Interface), Fields.OptionalBool(o, Key.JumboFrame) ?? false);
    }
}

/// <summary>{ctrl_del_srvc_port: {iface: I}}</summary>
public sealed record DeleteServicePortRequest(string Interface) : IRequestMessage
{
    public string Command => Protocol.Command.DeleteServicePort;
    public void WriteArguments(Utf8JsonWriter w) { w.WriteStartObject(); w.WriteString(Key.Interface, Interface); w.WriteEndObject(); }
    public static DeleteServicePortRequest Read(JsonElement args) => new(Fields.InterfaceName(Fields.Object(args), Key.Interface));
}

/// <summary>
/// ctrl_add_mac: a workload's MAC with its aliases (0 = none: not written), and NeuVector's proxy-mesh MAC and addresses.
/// OldMac names the workload being re-added under a new MAC.
/// </summary>
public sealed record AddMacRequest(string Interface, ulong Mac, ulong UnicastMac = 0, ulong BroadcastMac = 0, ulong OldMac = 0,
    ulong ProxyMac = 0, uint[]? ProxyAddresses = null) : IRequestMessage
{
    public string Command => Protocol.Command.AddMac;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString(Key.Interface, Interface);
        w.WriteString(Key.Mac, Fields.FormatMac(Mac));
        WriteMac(w, Key.UnicastMac, UnicastMac);
        WriteMac(w, Key.BroadcastMac, BroadcastMac);
        WriteMac(w, Key.OldMac, OldMac);
        WriteMac(w, Key.ProxyMac, ProxyMac);
        if (ProxyAddresses is { } pips)
        {
            w.WriteStartArray(Key.ProxyAddresses);
            foreach (var ip in pips) { w.WriteStartObject(); w.WriteString(Key.Ip, Fields.FormatIPv4(ip)); w.WriteEndObject(); }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }
    private static void WriteMac(Utf8JsonWriter w, string key, ulong mac) { if (mac != 0) w.WriteString(key, Fields.FormatMac(mac)); }
    public static AddMacRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        string iface = Fields.String(o, Key.Interface);
        ulong mac = Fields.Mac(o, Key.Mac), ucmac = Fields.OptionalMac(o, Key.UnicastMac), bcmac = Fields.OptionalMac(o, Key.BroadcastMac),
            oldmac = Fields.OptionalMac(o, Key.OldMac), pmac = Fields.OptionalMac(o, Key.ProxyMac);
        uint[]? pips = Fields.OptionalArray(o, Key.ProxyAddresses) is { } list ? list.Select(i => Fields.IPv4(Fields.Object(i), Key.Ip)).ToArray() : null;
        return new(iface, mac, ucmac, bcmac, oldmac, pmac, pips);
    }
}

/// <summary>{ctrl_del_mac: {mac: M}} (iface is read and not used, as in NeuVector).</summary>
public sealed record DeleteMacRequest(ulong Mac, string? Interface = null) : IRequestMessage
{
    public string Command => Protocol.Command.DeleteMac;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        if (Interface != null) w.WriteString(Key.Interface, Interface);
        w.WriteString(Key.Mac, Fields.FormatMac(Mac));
        w.WriteEndObject();
    }
    public static DeleteMacRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        var iface = Fields.OptionalString(o, Key.Interface);
        return new(Fields.Mac(o, Key.Mac), iface);
    }
}

/// <summary>{ctrl_cfg_mac: {macs: [...], tap: T, apps: [...]}}: the tap switch and application ports of workloads (null: unchanged).</summary>
public sealed record ConfigureMacRequest(ulong[] Macs, bool? Tap, AppPort[]? Apps = null) : IRequestMessage
{
    public string Command => Protocol.Command.ConfigureMac;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        if (Tap is bool tap) w.WriteBoolean(Key.Tap, tap);
        Fields.WriteMacs(w, Key.Macs, Macs);
        if (Apps is { } apps)
        {
            w.WriteStartArray(Key.Apps);
            foreach (var a in apps) a.Write(w);
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }
    public static ConfigureMacRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        var macs = Fields.Macs(o, Key.Macs) ?? throw new CommandException($"\"{Key.Macs}\" is missing (an array is required)");
        bool? tap = Fields.OptionalBool(o, Key.Tap);
        AppPort[]? apps = Fields.OptionalArray(o, Key.Apps) is { } list ? list.Select(AppPort.Read).ToArray() : null;
        return new(macs, tap, apps);
    }
}

/// <summary>{ctrl_clear_session: {filter_id: ID}} (0 = every session).</summary>
public sealed record ClearSessionRequest(uint Id) : IRequestMessage
{
    public string Command => Protocol.Command.ClearSession;
    public void WriteArguments(Utf8JsonWriter w) { w.WriteStartObject(); w.WriteNumber(Key.FilterId, Id); w.WriteEndObject(); }
    public static ClearSessionRequest Read(JsonElement args) => new(Fields.UInt(Fields.Object(args), Key.FilterId));
}

/// <summary>One of the global switches: ctrl_sys_conf (xff_enabled), ctrl_disable_net_policy, ctrl_detect_unmanaged_wl,
/// ctrl_enable_icmp_policy, ctrl_strict_group_mode, and nvr-dp's nvr_cfg_strict. An absent value is false, as in NeuVector.</summary>
public sealed record ToggleRequest(string Command, bool On) : IRequestMessage
{
    /// <summary>Each switch's command and the key of its value.</summary>
    public static readonly IReadOnlyDictionary<string, string> Switches = new Dictionary<string, string>
    {
        [Protocol.Command.SystemConfig] = Key.XffEnabled,
        [Protocol.Command.DisableNetPolicy] = Key.DisableNetPolicy,
        [Protocol.Command.DetectUnmanagedWorkloads] = Key.DetectUnmanagedWorkloads,
        [Protocol.Command.EnableIcmpPolicy] = Key.EnableIcmpPolicy,
        [Protocol.Command.StrictGroupMode] = Key.StrictGroupMode,
        [Protocol.Command.ConfigureStrict] = Key.Strict,
    };
    /// <summary>The key of the value.</summary>
    public string Field => Switches[Command];
    public void WriteArguments(Utf8JsonWriter w) { w.WriteStartObject(); w.WriteBoolean(Field, On); w.WriteEndObject(); }
    public static ToggleRequest Read(string command, JsonElement args)
        => new(command, Fields.OptionalBool(Fields.Object(args), Switches[command]) ?? false);
}

/// <summary>{ctrl_set_debug: {categories: [...]}} (names from <see cref="DebugCategory.Names"/>).</summary>
public sealed record SetDebugRequest(string[] Categories) : IRequestMessage
{
    public string Command => Protocol.Command.SetDebug;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteStartArray(Key.Categories);
        foreach (var c in Categories) w.WriteStringValue(c);
        w.WriteEndArray();
        w.WriteEndObject();
    }
    public static SetDebugRequest Read(JsonElement args)
    {
        var names = new List<string>();
        foreach (var item in Fields.Array(Fields.Object(args), Key.Categories))
        {
            if (item.ValueKind != JsonValueKind.String) throw new CommandException($"\"{Key.Categories}\" must hold strings, got {Fields.Describe(item)}");
            var name = item.GetString()!;
            if (!DebugCategory.Names.Contains(name))
                throw new CommandException($"unknown debug category \"{Fields.Clip(name)}\" (known: {string.Join(", ", DebugCategory.Names)})");
            names.Add(name);
        }
        return new(names.ToArray());
    }
}

/// <summary>
/// One datagram of ctrl_cfg_internal_net: a chunk of the internal subnets (<see cref="ChunkFlags"/>; one datagram with
/// Whole and no entries clears the list).
/// </summary>
public sealed record InternalNetRequest(ChunkFlags Flag, InternalSubnet[] Subnets) : IRequestMessage
{
    public string Command => Protocol.Command.ConfigureInternalNet;
    public void WriteArguments(Utf8JsonWriter w) => WriteChunk(w, Flag, Subnets.Select(s => Datagram.Element(s.Write)).ToList());
    internal static void WriteChunk(Utf8JsonWriter w, ChunkFlags flag, IReadOnlyList<byte[]> items)
    {
        w.WriteStartObject();
        w.WriteNumber(Key.Flag, (uint)flag);
        Datagram.RawArray(w, Key.Subnets, items);
        w.WriteEndObject();
    }
    public static InternalNetRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        var flag = (ChunkFlags)Fields.UInt(o, Key.Flag, (uint)ChunkFlags.Whole);
        return new(flag, Fields.Array(o, Key.Subnets).Select(InternalSubnet.Read).ToArray());
    }
}

/// <summary>One datagram of ctrl_cfg_policy_addr: a chunk of the policy address map (each address with mask 255.255.255.255).</summary>
public sealed record PolicyAddressRequest(ChunkFlags Flag, uint[] Addresses) : IRequestMessage
{
    public string Command => Protocol.Command.ConfigurePolicyAddresses;
    public void WriteArguments(Utf8JsonWriter w) => WriteChunk(w, Flag, Addresses.Select(a => Datagram.Element(e => WriteElement(e, a))).ToList());
    internal static void WriteElement(Utf8JsonWriter w, uint address)
    {
        w.WriteStartObject();
        w.WriteString(Key.Ip, Fields.FormatIPv4(address));
        w.WriteString(Key.Mask, Fields.FormatIPv4(uint.MaxValue));
        w.WriteEndObject();
    }
    internal static void WriteChunk(Utf8JsonWriter w, ChunkFlags flag, IReadOnlyList<byte[]> items)
    {
        w.WriteStartObject();
        w.WriteNumber(Key.Flag, (uint)flag);
        Datagram.RawArray(w, Key.Subnets, items);
        w.WriteEndObject();
    }
    public static PolicyAddressRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        var flag = (ChunkFlags)Fields.UInt(o, Key.Flag, (uint)ChunkFlags.Whole);
        var addresses = new List<uint>();
        foreach (var item in Fields.Array(o, Key.Subnets))
        {
            var e = Fields.Object(item);
            addresses.Add(Fields.IPv4(e, Key.Ip));
            if (Fields.Has(e, Key.Mask)) Fields.IPv4(e, Key.Mask); // NeuVector compares the address alone
        }
        return new(flag, addresses.ToArray());
    }
}

/// <summary>
/// One datagram of ctrl_cfg_policy: cmd, the chunk flag, the default action and direction (absent from a DELETE: null),
/// the workloads' MACs and a chunk of the rules in order. ExpectVersion is nvr-dp's extension: the change is refused
/// when the policy is no longer at that version (0 = none).
/// </summary>
public sealed record PolicyRequest(PolicyCommand Cmd, ChunkFlags Flag, DpPolicyAction? DefaultAction, DpDirection? Direction,
    ulong[] Macs, PolicyRule[] Rules, uint? ExpectVersion = null) : IRequestMessage
{
    public string Command => Protocol.Command.ConfigurePolicy;
    public void WriteArguments(Utf8JsonWriter w) => WriteChunk(w, Flag, Rules.Select(r => Datagram.Element(r.Write)).ToList());
    internal void WriteChunk(Utf8JsonWriter w, ChunkFlags flag, IReadOnlyList<byte[]> rules)
    {
        w.WriteStartObject();
        w.WriteNumber(Key.PolicyCommand, (uint)Cmd);
        w.WriteNumber(Key.Flag, (uint)flag);
        if (DefaultAction is { } defact) w.WriteNumber(Key.DefaultAction, (byte)defact);
        if (Direction is { } dir) w.WriteNumber(Key.Direction, (byte)dir);
        if (ExpectVersion is uint v) w.WriteNumber(Key.ExpectVersion, v);
        Fields.WriteMacs(w, Key.Mac, Macs);
        Datagram.RawArray(w, Key.Rules, rules);
        w.WriteEndObject();
    }

    /// <summary>
    /// The rules that carried NeuVector's application sub-rules, as (rule id, how many): read and checked, never applied
    /// (nvr-dp identifies no applications), never written.
    /// </summary>
    public (uint RuleId, int Count)[] ApplicationSubRules { get; init; } = [];

    public static PolicyRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        uint cmd = Fields.UInt(o, Key.PolicyCommand, (uint)PolicyCommand.Delete);
        if (cmd < (uint)PolicyCommand.Add) throw new CommandException($"\"{Key.PolicyCommand}\" {cmd} is not 1 (add), 2 (modify) or 3 (delete)");
        var flag = (ChunkFlags)Fields.UInt(o, Key.Flag, (uint)ChunkFlags.Whole);
        bool delete = cmd == (uint)PolicyCommand.Delete;
        var defact = Fields.OptionalUInt(o, Key.DefaultAction, PolicyActions.Max) is uint a ? (DpPolicyAction)a
            : delete ? (DpPolicyAction?)null : throw new CommandException($"\"{Key.DefaultAction}\" is missing (the default action, 0-7)");
        var dir = Fields.OptionalUInt(o, Key.Direction, (uint)DpDirection.Both) is uint d ? (DpDirection)d
            : delete ? (DpDirection?)null : throw new CommandException($"\"{Key.Direction}\" is missing (1 egress, 2 ingress, 3 both)");
        if (!delete && dir == 0) throw new CommandException($"\"{Key.Direction}\" 0 polices no direction: send 1 (egress), 2 (ingress) or 3 (both)");
        uint? expect = Fields.OptionalUInt(o, Key.ExpectVersion);
        var macs = Fields.Macs(o, Key.Mac) ?? [];
        var rules = new List<PolicyRule>();
        var applicationSubRules = new List<(uint, int)>();
        if (Fields.OptionalArray(o, Key.Rules) is { } list)
            foreach (var item in list)
            {
                var rule = PolicyRule.Read(item, out int apps);
                if (apps > 0) applicationSubRules.Add((rule.Id, apps));
                rules.Add(rule);
            }
        return new((PolicyCommand)cmd, flag, defact, dir, macs, rules.ToArray(), expect) { ApplicationSubRules = applicationSubRules.ToArray() };
    }
}

/// <summary>nvr_get_policy, nvr_list_connection, nvr_clear_connection or nvr_get_state: {macs: [...]} (null: every workload; for nvr_get_state an empty list reports no workload, only the rest of the state).</summary>
public sealed record MacFilterRequest(string Command, ulong[]? Macs = null) : IRequestMessage
{
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        if (Macs != null) Fields.WriteMacs(w, Key.Macs, Macs);
        w.WriteEndObject();
    }
    public static MacFilterRequest Read(string command, JsonElement args) => new(command, Fields.Macs(Fields.Object(args), Key.Macs));
}

/// <summary>Request datagrams: one JSON object whose keys are the commands, run in order; long lists split in chunks.</summary>
public static class Datagram
{
    /// <summary>The agent's limit for one request (maxMsgSize); longer lists are chunked.</summary>
    public const int AgentMaxSize = 8120;

    /// <summary>One datagram holding <paramref name="commands"/> in order.</summary>
    public static byte[] Of(params IRequestMessage[] commands) => Write(w =>
    {
        foreach (var c in commands)
        {
            w.WritePropertyName(c.Command);
            c.WriteArguments(w);
        }
    });

    internal static byte[] Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    // one JSON value on its own, to be spliced into a chunk with WriteRawValue
    internal static byte[] Element(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var w = new Utf8JsonWriter(buffer)) write(w);
        return buffer.WrittenSpan.ToArray();
    }

    internal static void RawArray(Utf8JsonWriter w, string name, IReadOnlyList<byte[]> items)
    {
        w.WriteStartArray(name);
        foreach (var item in items) w.WriteRawValue(item, skipInputValidation: true);
        w.WriteEndArray();
    }

    /// <summary>ctrl_cfg_internal_net for the whole list, chunked (see <see cref="Chunked"/>).</summary>
    public static List<byte[]> InternalNetworks(IReadOnlyList<InternalSubnet> subnets, int maxSize, Func<int, string> name)
        => Chunked(subnets.Select(s => Element(s.Write)).ToList(), (flag, items) => Write(w =>
        {
            w.WritePropertyName(Command.ConfigureInternalNet);
            InternalNetRequest.WriteChunk(w, flag, items);
        }), maxSize, name);

    /// <summary>ctrl_cfg_policy_addr for the whole list, chunked.</summary>
    public static List<byte[]> PolicyAddresses(IReadOnlyList<uint> addresses, int maxSize, Func<int, string> name)
        => Chunked(addresses.Select(a => Element(w => PolicyAddressRequest.WriteElement(w, a))).ToList(), (flag, items) => Write(w =>
        {
            w.WritePropertyName(Command.ConfigurePolicyAddresses);
            PolicyAddressRequest.WriteChunk(w, flag, items);
        }), maxSize, name);

    /// <summary>
    /// ctrl_cfg_policy for <paramref name="policy"/>'s rules, chunked; with <paramref name="last"/>, the last datagram (the one
    /// that makes the policy take effect) starts with that command (the agent's mode switch: ctrl_cfg_mac), so both change together.
    /// </summary>
    public static List<byte[]> Policy(PolicyRequest policy, IRequestMessage? last, int maxSize, Func<int, string> name)
        => Chunked(policy.Rules.Select(r => Element(r.Write)).ToList(), (flag, items) => Write(w =>
        {
            if (last != null && (flag & ChunkFlags.End) != 0) { w.WritePropertyName(last.Command); last.WriteArguments(w); }
            w.WritePropertyName(Command.ConfigurePolicy);
            policy.WriteChunk(w, flag, items);
        }), maxSize, name);

    /// <summary>
    /// Splits a list over datagrams of at most <paramref name="maxSize"/> bytes as the agent does: one datagram flagged
    /// Whole when all fits, else Start, Middle ... End. <paramref name="write"/> makes a datagram of a flag and items
    /// (already serialized); the END datagram may be larger than the others (it may carry more), so it is measured as
    /// such. A datagram is the envelope plus the items plus a comma between each two.
    /// </summary>
    public static List<byte[]> Chunked(IReadOnlyList<byte[]> items, Func<ChunkFlags, IReadOnlyList<byte[]>, byte[]> write, int maxSize, Func<int, string> name)
    {
        int middleEnvelope = write(ChunkFlags.Middle, []).Length, lastEnvelope = write(ChunkFlags.End, []).Length;
        int Size(int envelope, int from, int count)
        {
            int size = envelope + Math.Max(0, count - 1);
            for (int i = from; i < from + count; i++) size += items[i].Length;
            return size;
        }
        var bounds = new List<(int From, int Count)>();
        int next = 0;
        while (true)
        {
            int left = items.Count - next;
            if (Size(lastEnvelope, next, left) <= maxSize) { bounds.Add((next, left)); break; }
            int take = 0;
            while (take < left && Size(middleEnvelope, next, take + 1) <= maxSize) take++;
            if (take == left) take--; // all would fit but for what the last datagram carries: leave one for it
            if (take == 0) throw new ArgumentException($"{name(next)} does not fit in a request of {maxSize} bytes.");
            bounds.Add((next, take));
            next += take;
        }
        var result = new List<byte[]>(bounds.Count);
        for (int i = 0; i < bounds.Count; i++)
        {
            var flag = (i == 0 ? ChunkFlags.Start : ChunkFlags.Middle) | (i == bounds.Count - 1 ? ChunkFlags.End : ChunkFlags.Middle);
            var datagram = write(flag, items.Skip(bounds[i].From).Take(bounds[i].Count).ToList());
            if (datagram.Length > maxSize) throw new InvalidOperationException($"a chunk of {datagram.Length} bytes came out larger than the {maxSize} it was measured at");
            result.Add(datagram);
        }
        return result;
    }

    /// <summary>
    /// Reads the arguments of <paramref name="command"/> with its message's reader (what a datagram's command becomes);
    /// throws <see cref="CommandException"/> for a command the protocol does not have.
    /// </summary>
    public static IRequestMessage Read(string command, JsonElement args) => command switch
    {
        Command.KeepAlive => KeepAliveRequest.Read(args),
        Command.CountSessions or Command.ListSessions or Command.DeviceCounters => EmptyRequest.Read(command, args),
        Command.GetState => MacFilterRequest.Read(command, args),
        Command.AddServicePort => AddServicePortRequest.Read(args),
        Command.DeleteServicePort => DeleteServicePortRequest.Read(args),
        Command.AddMac => AddMacRequest.Read(args),
        Command.DeleteMac => DeleteMacRequest.Read(args),
        Command.ConfigureMac => ConfigureMacRequest.Read(args),
        Command.ClearSession => ClearSessionRequest.Read(args),
        Command.SystemConfig or Command.DisableNetPolicy or Command.DetectUnmanagedWorkloads or Command.EnableIcmpPolicy
            or Command.StrictGroupMode or Command.ConfigureStrict => ToggleRequest.Read(command, args),
        Command.SetDebug => SetDebugRequest.Read(args),
        Command.ConfigureInternalNet => InternalNetRequest.Read(args),
        Command.ConfigurePolicyAddresses => PolicyAddressRequest.Read(args),
        Command.ConfigurePolicy => PolicyRequest.Read(args),
        Command.GetPolicy or Command.ListConnections or Command.ClearConnections => MacFilterRequest.Read(command, args),
        Command.AddTapPort or Command.DeleteTapPort => TapPortRequest.Read(command, args),
        Command.AddNfqPort or Command.DeleteNfqPort => NfqPortRequest.Read(command, args),
        Command.AddPortPair or Command.DeletePortPair => PortPairRequest.Read(command, args),
        Command.ConfigureSpecialIpNet => SpecialIpNetRequest.Read(args),
        Command.ConfigureNbe => NbeRequest.Read(args),
        Command.SetFqdn => SetFqdnRequest.Read(args),
        Command.DeleteFqdn => DeleteFqdnRequest.Read(args),
        Command.ConfigureDlp or Command.BuildDlp or Command.ConfigureDlpMac or Command.BuildDlpMac => DlpRequest.Read(command, args),
        Command.RefreshApp or Command.DeviceStats or Command.ListMeters => EmptyRequest.Read(command, args),
        Command.MacStats => MacStatsRequest.Read(args),
        _ => throw new CommandException("unknown command (not supported by this nvr-dp)"),
    };

    /// <summary>The command names of a JSON request object, in order (for messages: which commands it holds); empty when it is not an object.</summary>
    public static IReadOnlyList<string> Commands(ReadOnlySpan<byte> request)
    {
        try
        {
            using var doc = JsonDocument.Parse(request.ToArray());
            return doc.RootElement.ValueKind == JsonValueKind.Object ? doc.RootElement.EnumerateObject().Select(p => p.Name).ToList() : [];
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException) { return []; } // not JSON, or not UTF-8
    }
}
