using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace NvRedirect.Core.Protocol;

// The rest of what NeuVector's agent sends (agent/dp/dp_apis.go): ports nvr-dp does not open (tap, NFQUEUE, port
// pairs), special IP networks, namespace-boundary enforcement, FQDN addresses, the app refresh, DLP/WAF, and the
// statistics queries. Each is read as strictly as the others (Fields); docs/datapath.md says what each does here.

/// <summary>
/// ctrl_add_tap_port {netns, iface, epmac} / ctrl_del_tap_port {netns, iface}: a port dp would open in the container's
/// namespace (netns: the agent's /proc/PID/ns/net) to sniff the workload's own interface. EndpointMac is 0 on a delete.
/// </summary>
public sealed record TapPortRequest(string Command, string NetNs, string Interface, ulong EndpointMac) : IRequestMessage
{
    public bool Add => Command == Protocol.Command.AddTapPort;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString(Key.NetNs, NetNs);
        w.WriteString(Key.Interface, Interface);
        if (Add) w.WriteString(Key.EndpointMac, Fields.FormatMac(EndpointMac));
        w.WriteEndObject();
    }
    public static TapPortRequest Read(string command, JsonElement args)
    {
        var o = Fields.Object(args);
        string netns = Fields.NonEmptyString(o, Key.NetNs), iface = Fields.InterfaceName(o, Key.Interface);
        ulong mac = command == Protocol.Command.AddTapPort ? Fields.Mac(o, Key.EndpointMac) : 0;
        return new(command, netns, iface, mac);
    }
}

/// <summary>
/// ctrl_add_nfq_port {netns, iface, qnum, epmac, jumboframe?} / ctrl_del_nfq_port {netns, iface}: NeuVector's NFQUEUE
/// port (queue number 0-65535). EndpointMac is 0 and JumboFrame null on a delete.
/// </summary>
public sealed record NfqPortRequest(string Command, string NetNs, string Interface, ushort QueueNumber = 0, ulong EndpointMac = 0, bool? JumboFrame = null)
    : IRequestMessage
{
    public bool Add => Command == Protocol.Command.AddNfqPort;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString(Key.NetNs, NetNs);
        w.WriteString(Key.Interface, Interface);
        if (Add)
        {
            w.WriteNumber(Key.QueueNumber, QueueNumber);
            w.WriteString(Key.EndpointMac, Fields.FormatMac(EndpointMac));
            if (JumboFrame is bool j) w.WriteBoolean(Key.JumboFrame, j);
        }
        w.WriteEndObject();
    }
    public static NfqPortRequest Read(string command, JsonElement args)
    {
        var o = Fields.Object(args);
        string netns = Fields.NonEmptyString(o, Key.NetNs), iface = Fields.InterfaceName(o, Key.Interface);
        if (command != Protocol.Command.AddNfqPort) return new(command, netns, iface);
        return new(command, netns, iface, (ushort)Fields.UInt(o, Key.QueueNumber, ushort.MaxValue), Fields.Mac(o, Key.EndpointMac),
            Fields.OptionalBool(o, Key.JumboFrame));
    }
}

/// <summary>
/// ctrl_add_port_pair {vex_iface, vin_iface, epmac, quar?} / ctrl_del_port_pair {vex_iface, vin_iface}: NeuVector's
/// "no tc" wiring, where dp bridges both veth ends itself. EndpointMac is 0 and Quarantine null on a delete.
/// </summary>
public sealed record PortPairRequest(string Command, string VexInterface, string VinInterface, ulong EndpointMac = 0, bool? Quarantine = null) : IRequestMessage
{
    public bool Add => Command == Protocol.Command.AddPortPair;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString(Key.VexInterface, VexInterface);
        w.WriteString(Key.VinInterface, VinInterface);
        if (Add)
        {
            w.WriteString(Key.EndpointMac, Fields.FormatMac(EndpointMac));
            if (Quarantine is bool q) w.WriteBoolean(Key.Quarantine, q);
        }
        w.WriteEndObject();
    }
    public static PortPairRequest Read(string command, JsonElement args)
    {
        var o = Fields.Object(args);
        string vex = Fields.InterfaceName(o, Key.VexInterface), vin = Fields.InterfaceName(o, Key.VinInterface);
        if (command != Protocol.Command.AddPortPair) return new(command, vex, vin);
        return new(command, vex, vin, Fields.Mac(o, Key.EndpointMac), Fields.OptionalBool(o, Key.Quarantine));
    }
}

/// <summary>The iptype values of ctrl_cfg_specip_net (NeuVector dp/apis.h; compared without case, anything else is "none").</summary>
public static class SpecialIpType
{
    /// <summary>Every type NeuVector knows.</summary>
    public static readonly string[] Names = ["tunnelip", "svcip", "hostip", "devip", "uwlip", "extip"];
    /// <summary>The type's canonical (lower-case) name, or "none".</summary>
    public static string Canonical(string? type)
        => type is null ? "none" : Names.FirstOrDefault(n => string.Equals(n, type, StringComparison.OrdinalIgnoreCase)) ?? "none";
}

/// <summary>
/// One datagram of ctrl_cfg_specip_net: a chunk of the special IP networks ({ip, mask, iptype}; <see cref="ChunkFlags"/>),
/// each typed (<see cref="SpecialIpType"/>).
/// </summary>
public sealed record SpecialIpNetRequest(ChunkFlags Flag, InternalSubnet[] Subnets) : IRequestMessage
{
    public string Command => Protocol.Command.ConfigureSpecialIpNet;
    public void WriteArguments(Utf8JsonWriter w) => InternalNetRequest.WriteChunk(w, Flag, Subnets.Select(s => Datagram.Element(s.Write)).ToList());
    public static SpecialIpNetRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        var flag = (ChunkFlags)Fields.UInt(o, Key.Flag, (uint)ChunkFlags.Whole);
        var subnets = Fields.Array(o, Key.Subnets).Select(e =>
        {
            var s = InternalSubnet.Read(e);
            return s.IpType is null ? throw new CommandException($"\"{Key.IpType}\" is missing (one of {string.Join(", ", SpecialIpType.Names)})") : s;
        }).ToArray();
        return new(flag, subnets);
    }
}

/// <summary>ctrl_cfg_nbe {macs, nbe?}: the namespace-boundary enforcement switch of workloads (null: unchanged).</summary>
public sealed record NbeRequest(ulong[] Macs, bool? Nbe) : IRequestMessage
{
    public string Command => Protocol.Command.ConfigureNbe;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        Fields.WriteMacs(w, Key.Macs, Macs);
        if (Nbe is bool n) w.WriteBoolean(Key.Nbe, n);
        w.WriteEndObject();
    }
    public static NbeRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        var macs = Fields.Macs(o, Key.Macs) ?? throw new CommandException($"\"{Key.Macs}\" is missing (an array is required)");
        if (macs.Length == 0) throw new CommandException($"\"{Key.Macs}\" lists no workload"); // dp: "Missing mac address"
        return new(macs, Fields.OptionalBool(o, Key.Nbe));
    }
}

/// <summary>
/// ctrl_cfg_set_fqdn {fqdn_name, fqdn_ips, vhost?}: the addresses a name stands for now (IPv4 or IPv6 text; null reads as
/// none, as Go's empty slice is sent). Names are at most 255 bytes (NeuVector's DP_POLICY_FQDN_NAME_MAX_LEN - 1).
/// </summary>
public sealed record SetFqdnRequest(string Name, IPAddress[] Addresses, bool? VirtualHost = null) : IRequestMessage
{
    /// <summary>Longest name NeuVector keeps.</summary>
    public const int MaxNameLength = 255;
    public string Command => Protocol.Command.SetFqdn;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString(Key.FqdnName, Name);
        w.WriteStartArray(Key.FqdnIps);
        foreach (var a in Addresses) w.WriteStringValue(a.ToString());
        w.WriteEndArray();
        if (VirtualHost is bool v) w.WriteBoolean(Key.VirtualHost, v);
        w.WriteEndObject();
    }
    public static SetFqdnRequest Read(JsonElement args)
    {
        var o = Fields.Object(args);
        string name = Fields.FqdnName(Fields.NonEmptyString(o, Key.FqdnName), Key.FqdnName);
        var addresses = new List<IPAddress>();
        foreach (var item in Fields.OptionalArray(o, Key.FqdnIps) is { } ips ? ips : Enumerable.Empty<JsonElement>())
        {
            if (item.ValueKind != JsonValueKind.String || !IPAddress.TryParse(item.GetString()!, out var ip)
                || ip.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
                || (ip.AddressFamily == AddressFamily.InterNetwork && Fields.ParseIPv4(item.GetString()!) is null))
                throw new CommandException($"\"{Key.FqdnIps}\" holds something that is not an IPv4 or IPv6 address: {Fields.Describe(item)}");
            addresses.Add(ip);
        }
        return new(name, addresses.ToArray(), Fields.OptionalBool(o, Key.VirtualHost));
    }
}

/// <summary>ctrl_cfg_del_fqdn {names}: names no rule refers to any more.</summary>
public sealed record DeleteFqdnRequest(string[] Names) : IRequestMessage
{
    public string Command => Protocol.Command.DeleteFqdn;
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteStartArray(Key.Names);
        foreach (var n in Names) w.WriteStringValue(n);
        w.WriteEndArray();
        w.WriteEndObject();
    }
    public static DeleteFqdnRequest Read(JsonElement args)
    {
        var names = new List<string>();
        foreach (var item in Fields.Array(Fields.Object(args), Key.Names))
        {
            if (item.ValueKind != JsonValueKind.String || item.GetString() is not { Length: > 0 } name)
                throw new CommandException($"\"{Key.Names}\" must hold names, got {Fields.Describe(item)}");
            names.Add(Fields.FqdnName(name, Key.Names));
        }
        return new(names.ToArray());
    }
}

/// <summary>One MAC list of a DLP message (its key: mac, delmac, addmac or oldmac).</summary>
public sealed record MacList(string Key, ulong[] Macs);

/// <summary>
/// ctrl_cfg_dlp, ctrl_bld_dlp, ctrl_cfg_dlpmac, ctrl_bld_dlpmac: NeuVector's DLP/WAF configuration. nvr-dp inspects no
/// payloads; it reads the flag and the MAC lists strictly (so a malformed message is still refused) and ignores the
/// rule sets. Written back, a message carries only those.
/// </summary>
public sealed record DlpRequest(string Command, ChunkFlags? Flag, MacList[] MacLists) : IRequestMessage
{
    /// <summary>The MAC-list keys each DLP command carries.</summary>
    public static IReadOnlyList<string> ListKeys(string command) => command switch
    {
        Protocol.Command.ConfigureDlp => [Key.Mac],
        Protocol.Command.BuildDlp => [Key.Mac, Key.DeleteMacs],
        Protocol.Command.ConfigureDlpMac => [Key.DeleteMacs],
        Protocol.Command.BuildDlpMac => [Key.OldMac, Key.AddMacs, Key.DeleteMacs],
        _ => throw new ArgumentException($"{command} is not a DLP command"),
    };
    public void WriteArguments(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        if (Flag is ChunkFlags f) w.WriteNumber(Key.Flag, (uint)f);
        foreach (var list in MacLists) Fields.WriteMacs(w, list.Key, list.Macs);
        w.WriteEndObject();
    }
    public static DlpRequest Read(string command, JsonElement args)
    {
        var o = Fields.Object(args);
        var flag = Fields.OptionalUInt(o, Key.Flag, (uint)ChunkFlags.Whole) is uint f ? (ChunkFlags)f : (ChunkFlags?)null;
        var lists = ListKeys(command).Select(k => Fields.Macs(o, k) is { } macs ? new MacList(k, macs) : null).OfType<MacList>().ToArray();
        return new(command, flag, lists);
    }
}

/// <summary>ctrl_stats_macs {macs}: the summed traffic statistics of workloads (MACs nobody registered are skipped, as in NeuVector).</summary>
public sealed record MacStatsRequest(ulong[] Macs) : IRequestMessage
{
    public string Command => Protocol.Command.MacStats;
    public void WriteArguments(Utf8JsonWriter w) { w.WriteStartObject(); Fields.WriteMacs(w, Key.Macs, Macs); w.WriteEndObject(); }
    public static MacStatsRequest Read(JsonElement args)
        => new(Fields.Macs(Fields.Object(args), Key.Macs) ?? throw new CommandException($"\"{Key.Macs}\" is missing (an array is required)"));
}
