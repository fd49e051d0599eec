using System;
using System.Buffers;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Text.Json;
using NvRedirect.Core.Model;
using NvRedirect.Core.Protocol;

namespace NvRedirect.Core.Datapath;

/// <summary>One ctrl_cfg_internal_net entry: an address, a dotted mask, and NeuVector's optional iptype (devip for a device address).</summary>
public readonly record struct DpInternalNetwork(string Ip, string Mask, string? IpType)
{
    /// <summary>
    /// Parses ADDRESS/PREFIX (IPv4). A subnet must be its network address, because the datapath matches
    /// (ip &amp; mask) == Ip and a host address would never match; a device address (iptype devip) keeps its host bits.
    /// </summary>
    public static DpInternalNetwork Parse(string text, string? ipType = null)
    {
        var (address, prefix) = Model.Parse.Cidr(text);
        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"'{text}' is not IPv4: the datapath's internal networks are IPv4 subnets.");
        if (!text.Contains('/')) throw new ArgumentException($"'{text}' has no prefix length: write ADDRESS/PREFIX, e.g. 10.10.10.0/24.");
        uint ip = (uint)IPAddress.NetworkToHostOrder(BitConverter.ToInt32(address.GetAddressBytes()));
        uint mask = prefix == 0 ? 0 : uint.MaxValue << (32 - prefix);
        if (ipType == null && (ip & mask) != ip)
        {
            var network = new IPAddress(BitConverter.GetBytes(IPAddress.HostToNetworkOrder((int)(ip & mask))));
            throw new ArgumentException($"'{text}' is not a network address, so the datapath would never match it; did you mean {network}/{prefix}? (A device address with its host bits goes to -DeviceAddress.)");
        }
        var m = new IPAddress(BitConverter.GetBytes(IPAddress.HostToNetworkOrder((int)mask)));
        return new DpInternalNetwork(address.ToString(), m.ToString(), ipType);
    }

    /// <summary>The entry as the protocol carries it.</summary>
    public InternalSubnet ToWire() => new(Ipv4(Ip, "internal network address"), Ipv4(Mask, "internal network mask"), IpType);

    private static uint Ipv4(string text, string what)
        => Fields.ParseIPv4(text) ?? throw new ArgumentException($"'{text}' is not a dotted-quad IPv4 {what}.");
}

/// <summary>
/// The control requests the module sends, as JSON datagrams in NeuVector's shapes (plus nvr-dp's nvr_* extensions):
/// the cmdlets' types in, the protocol's messages (<see cref="NvRedirect.Core.Protocol"/>) written out. Bytes out, no sockets.
/// </summary>
public static class DpRequests
{
    /// <summary>The agent's limit for one request (maxMsgSize); longer lists are chunked.</summary>
    public const int MaxRequestSize = Datagram.AgentMaxSize;

    private static ulong Mac(string text) => Fields.MacOrThrow(text);
    private static ulong[] Macs(IEnumerable<string> macs) => macs.Select(Mac).ToArray();

    /// <summary>{ctrl_keep_alive: {seq_num: N}}</summary>
    public static byte[] KeepAlive(uint sequence) => Datagram.Of(new KeepAliveRequest(sequence));

    /// <summary>
    /// A keep-alive followed by nvr_get_state in one datagram: sent after a request, its keep-alive marks where that
    /// request's replies end, and the state says whether the request was applied.
    /// </summary>
    public static byte[] Sync(uint sequence) => Datagram.Of(new KeepAliveRequest(sequence), new MacFilterRequest(Command.GetState));

    /// <summary>
    /// As <see cref="Sync(uint)"/>, with the state reporting only the workloads of <paramref name="macs"/> (none for an
    /// empty list): a change is acknowledged without reading every workload back.
    /// </summary>
    public static byte[] Sync(uint sequence, IEnumerable<string>? macs)
        => Datagram.Of(new KeepAliveRequest(sequence), new MacFilterRequest(Command.GetState, macs == null ? null : Macs(macs)));

    /// <summary>Session count, device counters and state in one datagram (three replies, in that order).</summary>
    public static byte[] Query() => Datagram.Of(new EmptyRequest(Command.CountSessions), new EmptyRequest(Command.DeviceCounters),
        new MacFilterRequest(Command.GetState));

    /// <summary>{nvr_get_state: {}}, or {nvr_get_state: {macs: [...]}} to report only those workloads (by MAC or alias).</summary>
    public static byte[] State(IEnumerable<string>? macs = null) => Datagram.Of(new MacFilterRequest(Command.GetState, macs == null ? null : Macs(macs)));
    /// <summary>{ctrl_count_session: {}}</summary>
    public static byte[] CountSessions() => Datagram.Of(new EmptyRequest(Command.CountSessions));
    /// <summary>{ctrl_list_session: {}}</summary>
    public static byte[] ListSessions() => Datagram.Of(new EmptyRequest(Command.ListSessions));
    /// <summary>{ctrl_counter_device: {}}</summary>
    public static byte[] DeviceCounters() => Datagram.Of(new EmptyRequest(Command.DeviceCounters));

    /// <summary>{ctrl_stats_device: {}}</summary>
    public static byte[] DeviceStatistics() => Datagram.Of(new EmptyRequest(Command.DeviceStats));
    /// <summary>{ctrl_stats_macs: {macs: [M]}}: one workload's statistics (dp sums the workloads a request lists).</summary>
    public static byte[] MacStatistics(string mac) => Datagram.Of(new MacStatsRequest([Mac(mac)]));
    /// <summary>{ctrl_list_meter: {}}</summary>
    public static byte[] ListMeters() => Datagram.Of(new EmptyRequest(Command.ListMeters));

    /// <summary>{ctrl_clear_session: {filter_id: ID}} (0 = every session).</summary>
    public static byte[] ClearSession(uint id) => Datagram.Of(new ClearSessionRequest(id));

    /// <summary>{ctrl_add_srvc_port: {iface: I, jumboframe: J}}</summary>
    public static byte[] AddServicePort(string iface, bool jumboFrames) => Datagram.Of(new AddServicePortRequest(iface, jumboFrames));

    /// <summary>ctrl_add_mac, followed in the same datagram by ctrl_cfg_mac when <paramref name="tap"/> is given (both or neither apply).</summary>
    public static byte[] AddMac(string iface, string mac, string? ucmac, string? bcmac, string? oldmac, bool? tap)
    {
        var add = new AddMacRequest(iface, Mac(mac), ucmac == null ? 0 : Mac(ucmac), bcmac == null ? 0 : Mac(bcmac), oldmac == null ? 0 : Mac(oldmac));
        return tap is bool t ? Datagram.Of(add, new ConfigureMacRequest([add.Mac], t)) : Datagram.Of(add);
    }

    /// <summary>{ctrl_cfg_mac: {tap: T, macs: [...]}}</summary>
    public static byte[] ConfigureMac(IEnumerable<string> macs, bool tap) => Datagram.Of(new ConfigureMacRequest(Macs(macs), tap));

    /// <summary>{ctrl_del_mac: {mac: M}}</summary>
    public static byte[] DeleteMac(string mac) => Datagram.Of(new DeleteMacRequest(Mac(mac)));

    /// <summary>
    /// ctrl_cfg_internal_net as the agent sends it: one datagram with flag 3 when the list fits in
    /// <paramref name="maxSize"/> bytes, else chunks flagged 1 (START), 0 (middle) ... 2 (END). An empty list is one
    /// datagram with flag 3 and no entries (it clears the list).
    /// </summary>
    public static List<byte[]> InternalNetworks(IReadOnlyList<DpInternalNetwork> entries, int maxSize = MaxRequestSize)
        => Datagram.InternalNetworks(entries.Select(e => e.ToWire()).ToList(), maxSize, i => $"the internal network entry {entries[i].Ip}");

    /// <summary>
    /// ctrl_cfg_policy_addr (the policy address map: addresses of workloads whose policy was pushed), each address with
    /// mask 255.255.255.255, chunked like <see cref="InternalNetworks"/>.
    /// </summary>
    public static List<byte[]> PolicyAddresses(IReadOnlyList<IPAddress> addresses, int maxSize = MaxRequestSize)
    {
        foreach (var a in addresses)
            if (a.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork) throw new ArgumentException($"{a} is not IPv4: the policy address map holds IPv4 addresses.");
        return Datagram.PolicyAddresses(addresses.Select(RuleText.ToUInt32).ToList(), maxSize, i => $"the policy address {addresses[i]}");
    }

    /// <summary>ctrl_cfg_policy's cmd: CFG_ADD, CFG_MODIFY, CFG_DELETE (NeuVector defs.h; <see cref="PolicyCommand"/>).</summary>
    public const int PolicyAdd = (int)PolicyCommand.Add, PolicyModify = (int)PolicyCommand.Modify, PolicyDelete = (int)PolicyCommand.Delete;

    /// <summary>
    /// ctrl_cfg_policy for <paramref name="macs"/>: one datagram with flag 3 when it fits in <paramref name="maxSize"/>
    /// bytes, else chunks flagged 1 (START), 0 (middle) ... 2 (END), each carrying cmd, defact, dir and mac, the rules
    /// split between them in order. With <paramref name="modeSwitchTap"/>, the last datagram (the one that makes the
    /// policy take effect) starts with ctrl_cfg_mac {tap, macs}, so the wire mode and the policy change together.
    /// </summary>
    public static List<byte[]> Policy(int cmd, IReadOnlyList<string> macs, DpPolicyAction defaultAction, DpDirection direction,
        IReadOnlyList<DpRule> rules, bool? modeSwitchTap = null, int maxSize = MaxRequestSize, uint? expectVersion = null)
    {
        if (cmd is < PolicyAdd or > PolicyDelete) throw new ArgumentException($"{cmd} is not a ctrl_cfg_policy cmd (1 ADD, 2 MODIFY, 3 DELETE).");
        if (direction is < DpDirection.Egress or > DpDirection.Both) throw new ArgumentException($"{(int)direction} is not a policy direction (1-3).");
        var wire = Macs(macs);
        var policy = new PolicyRequest((PolicyCommand)cmd, ChunkFlags.Whole, defaultAction, direction, wire, rules.Select(r => r.ToWire()).ToArray(), expectVersion);
        var modeSwitch = modeSwitchTap is bool tap ? new ConfigureMacRequest(wire, tap) : null;
        return Datagram.Policy(policy, modeSwitch, maxSize, i => $"rule {rules[i].Id}");
    }

    /// <summary>{nvr_get_policy: {macs: [...]}} (no macs: every workload's policy).</summary>
    public static byte[] GetPolicy(IEnumerable<string>? macs = null) => Datagram.Of(new MacFilterRequest(Command.GetPolicy, macs == null ? null : Macs(macs)));
    /// <summary>{nvr_list_connection: {macs: [...]}} (no macs: every workload's connections).</summary>
    public static byte[] ListConnections(IEnumerable<string>? macs = null) => Datagram.Of(new MacFilterRequest(Command.ListConnections, macs == null ? null : Macs(macs)));
    /// <summary>{nvr_clear_connection: {macs: [...]}} (no macs: every workload's connections).</summary>
    public static byte[] ClearConnections(IEnumerable<string>? macs = null) => Datagram.Of(new MacFilterRequest(Command.ClearConnections, macs == null ? null : Macs(macs)));

    /// <summary>The prefix length of a dotted mask, or null when the mask is not contiguous ones.</summary>
    public static int? PrefixOf(string mask)
    {
        if (!IPAddress.TryParse(mask, out var m) || m.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork) return null;
        uint v = (uint)IPAddress.NetworkToHostOrder(BitConverter.ToInt32(m.GetAddressBytes()));
        int prefix = System.Numerics.BitOperations.LeadingZeroCount(~v);
        return prefix == 32 || v << prefix == 0 ? prefix : null;
    }

    /// <summary>The command names of a JSON request object, in order (for messages: which commands it holds); empty when it is not an object.</summary>
    public static IReadOnlyList<string> Commands(ReadOnlySpan<byte> request) => Datagram.Commands(request);
}
