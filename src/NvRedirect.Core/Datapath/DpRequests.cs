using System;
using System.Buffers;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Text.Json;
using NvRedirect.Core.Model;

namespace NvRedirect.Core.Datapath;

/// <summary>One ctrl_cfg_internal_net entry: an address, a dotted mask, and NeuVector's optional iptype ("devip" for a device address).</summary>
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
}

/// <summary>
/// The control requests the module sends, as JSON datagrams in NeuVector's shapes (plus nvr-dp's nvr_get_state).
/// Bytes out, no sockets.
/// </summary>
public static class DpRequests
{
    /// <summary>The agent's limit for one request (maxMsgSize); longer lists are chunked.</summary>
    public const int MaxRequestSize = 8120;

    private static byte[] Write(Action<Utf8JsonWriter> body)
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

    private static void Empty(Utf8JsonWriter w, string command)
    {
        w.WriteStartObject(command);
        w.WriteEndObject();
    }

    /// <summary>{"ctrl_keep_alive": {"seq_num": N}}</summary>
    public static byte[] KeepAlive(uint sequence) => Write(w =>
    {
        w.WriteStartObject("ctrl_keep_alive");
        w.WriteNumber("seq_num", sequence);
        w.WriteEndObject();
    });

    /// <summary>
    /// A keep-alive followed by nvr_get_state in one datagram: sent after a request, its keep-alive marks where that
    /// request's replies end, and the state says whether the request was applied.
    /// </summary>
    public static byte[] Sync(uint sequence) => Write(w =>
    {
        w.WriteStartObject("ctrl_keep_alive");
        w.WriteNumber("seq_num", sequence);
        w.WriteEndObject();
        Empty(w, "nvr_get_state");
    });

    /// <summary>Session count, device counters and state in one datagram (three replies, in that order).</summary>
    public static byte[] Query() => Write(w =>
    {
        Empty(w, "ctrl_count_session");
        Empty(w, "ctrl_counter_device");
        Empty(w, "nvr_get_state");
    });

    /// <summary>{"nvr_get_state": {}}</summary>
    public static byte[] State() => Write(w => Empty(w, "nvr_get_state"));
    /// <summary>{"ctrl_count_session": {}}</summary>
    public static byte[] CountSessions() => Write(w => Empty(w, "ctrl_count_session"));
    /// <summary>{"ctrl_list_session": {}}</summary>
    public static byte[] ListSessions() => Write(w => Empty(w, "ctrl_list_session"));
    /// <summary>{"ctrl_counter_device": {}}</summary>
    public static byte[] DeviceCounters() => Write(w => Empty(w, "ctrl_counter_device"));

    /// <summary>{"ctrl_clear_session": {"filter_id": ID}} (0 = every session).</summary>
    public static byte[] ClearSession(uint id) => Write(w =>
    {
        w.WriteStartObject("ctrl_clear_session");
        w.WriteNumber("filter_id", id);
        w.WriteEndObject();
    });

    /// <summary>{"ctrl_add_srvc_port": {"iface": I, "jumboframe": J}}</summary>
    public static byte[] AddServicePort(string iface, bool jumboFrames) => Write(w =>
    {
        w.WriteStartObject("ctrl_add_srvc_port");
        w.WriteString("iface", iface);
        w.WriteBoolean("jumboframe", jumboFrames);
        w.WriteEndObject();
    });

    /// <summary>ctrl_add_mac, followed in the same datagram by ctrl_cfg_mac when <paramref name="tap"/> is given (both or neither apply).</summary>
    public static byte[] AddMac(string iface, string mac, string? ucmac, string? bcmac, string? oldmac, bool? tap) => Write(w =>
    {
        w.WriteStartObject("ctrl_add_mac");
        w.WriteString("iface", iface);
        w.WriteString("mac", mac);
        if (ucmac != null) w.WriteString("ucmac", ucmac);
        if (bcmac != null) w.WriteString("bcmac", bcmac);
        if (oldmac != null) w.WriteString("oldmac", oldmac);
        w.WriteEndObject();
        if (tap is bool t) ConfigureMac(w, [mac], t);
    });

    /// <summary>{"ctrl_cfg_mac": {"tap": T, "macs": [...]}}</summary>
    public static byte[] ConfigureMac(IEnumerable<string> macs, bool tap) => Write(w => ConfigureMac(w, macs, tap));

    private static void ConfigureMac(Utf8JsonWriter w, IEnumerable<string> macs, bool tap)
    {
        w.WriteStartObject("ctrl_cfg_mac");
        w.WriteBoolean("tap", tap);
        w.WriteStartArray("macs");
        foreach (var m in macs) w.WriteStringValue(m);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>{"ctrl_del_mac": {"mac": M}}</summary>
    public static byte[] DeleteMac(string mac) => Write(w =>
    {
        w.WriteStartObject("ctrl_del_mac");
        w.WriteString("mac", mac);
        w.WriteEndObject();
    });

    /// <summary>
    /// ctrl_cfg_internal_net as the agent sends it: one datagram with flag 3 when the list fits in
    /// <paramref name="maxSize"/> bytes, else chunks flagged 1 (START), 0 (middle) ... 2 (END). An empty list is one
    /// datagram with flag 3 and no entries (it clears the list).
    /// </summary>
    public static List<byte[]> InternalNetworks(IReadOnlyList<DpInternalNetwork> entries, int maxSize = MaxRequestSize)
        => Chunked(entries.Select(e => Element(w =>
            {
                w.WriteStartObject();
                w.WriteString("ip", e.Ip);
                w.WriteString("mask", e.Mask);
                if (e.IpType != null) w.WriteString("iptype", e.IpType);
                w.WriteEndObject();
            })).ToList(), (flag, items) => Write(w =>
            {
                w.WriteStartObject("ctrl_cfg_internal_net");
                w.WriteNumber("flag", flag);
                RawArray(w, "subnet_addr", items);
                w.WriteEndObject();
            }), maxSize, i => $"the internal network entry {entries[i].Ip}");

    /// <summary>
    /// ctrl_cfg_policy_addr (the policy address map: addresses of workloads whose policy was pushed), each address with
    /// mask 255.255.255.255, chunked like <see cref="InternalNetworks"/>.
    /// </summary>
    public static List<byte[]> PolicyAddresses(IReadOnlyList<IPAddress> addresses, int maxSize = MaxRequestSize)
        => Chunked(addresses.Select(a => Element(w =>
            {
                w.WriteStartObject();
                w.WriteString("ip", a.ToString());
                w.WriteString("mask", "255.255.255.255");
                w.WriteEndObject();
            })).ToList(), (flag, items) => Write(w =>
            {
                w.WriteStartObject("ctrl_cfg_policy_addr");
                w.WriteNumber("flag", flag);
                RawArray(w, "subnet_addr", items);
                w.WriteEndObject();
            }), maxSize, i => $"the policy address {addresses[i]}");

    /// <summary>ctrl_cfg_policy's cmd: CFG_ADD, CFG_MODIFY, CFG_DELETE (NeuVector defs.h).</summary>
    public const int PolicyAdd = 1, PolicyModify = 2, PolicyDelete = 3;

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
        return Chunked(rules.Select(r => Element(w => PolicyRule(w, r))).ToList(), (flag, items) => Write(w =>
        {
            if (modeSwitchTap is bool tap && (flag & 2) != 0) ConfigureMac(w, macs, tap);
            w.WriteStartObject("ctrl_cfg_policy");
            w.WriteNumber("cmd", cmd);
            w.WriteNumber("flag", flag);
            w.WriteNumber("defact", (int)defaultAction);
            w.WriteNumber("dir", (int)direction);
            if (expectVersion is uint v) w.WriteNumber("nvr_expect_version", v); // our extension: refused if the policy changed since it was read
            w.WriteStartArray("mac");
            foreach (var m in macs) w.WriteStringValue(m);
            w.WriteEndArray();
            RawArray(w, "rules", items);
            w.WriteEndObject();
        }), maxSize, i => $"rule {rules[i].Id}");
    }

    /// <summary>One rule with every field, in ctrl_cfg_policy's names (the shape nvr_get_policy reports, so rules go back unchanged).</summary>
    public static void PolicyRule(Utf8JsonWriter w, DpRule r)
    {
        if (r.Direction is not (DpDirection.Ingress or DpDirection.Egress)) throw new ArgumentException($"Rule {r.Id} has direction {r.Direction}: a rule is either Ingress or Egress.");
        w.WriteStartObject();
        w.WriteNumber("id", r.Id);
        w.WriteString("sip", r.SourceFrom.ToString());
        w.WriteString("sipr", r.SourceTo.ToString());
        w.WriteString("dip", r.DestinationFrom.ToString());
        w.WriteString("dipr", r.DestinationTo.ToString());
        w.WriteNumber("port", r.PortFrom);
        w.WriteNumber("portr", r.PortTo);
        w.WriteNumber("proto", r.Protocol);
        w.WriteNumber("action", (int)r.Action);
        w.WriteBoolean("ingress", r.Direction == DpDirection.Ingress);
        w.WriteEndObject();
    }

    /// <summary>{"nvr_get_policy": {"macs": [...]}} (no macs: every workload's policy).</summary>
    public static byte[] GetPolicy(IEnumerable<string>? macs = null) => Write(w => MacFilter(w, "nvr_get_policy", macs));
    /// <summary>{"nvr_list_connection": {"macs": [...]}} (no macs: every workload's connections).</summary>
    public static byte[] ListConnections(IEnumerable<string>? macs = null) => Write(w => MacFilter(w, "nvr_list_connection", macs));
    /// <summary>{"nvr_clear_connection": {"macs": [...]}} (no macs: every workload's connections).</summary>
    public static byte[] ClearConnections(IEnumerable<string>? macs = null) => Write(w => MacFilter(w, "nvr_clear_connection", macs));

    private static void MacFilter(Utf8JsonWriter w, string command, IEnumerable<string>? macs)
    {
        w.WriteStartObject(command);
        if (macs != null)
        {
            w.WriteStartArray("macs");
            foreach (var m in macs) w.WriteStringValue(m);
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    // one JSON value on its own, to be spliced into a chunk with WriteRawValue
    private static byte[] Element(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var w = new Utf8JsonWriter(buffer)) write(w);
        return buffer.WrittenSpan.ToArray();
    }

    private static void RawArray(Utf8JsonWriter w, string name, IReadOnlyList<byte[]> items)
    {
        w.WriteStartArray(name);
        foreach (var item in items) w.WriteRawValue(item, skipInputValidation: true);
        w.WriteEndArray();
    }

    /// <summary>
    /// Splits a list over datagrams of at most <paramref name="maxSize"/> bytes as the agent does: one datagram with
    /// flag 3 when all fits, else flag 1 (START), 0 (middle) ... 2 (END). <paramref name="write"/> makes a datagram of
    /// a flag and items (already serialized); the END datagram may be larger than the others (it may carry more), so
    /// it is measured as such. A datagram is the envelope plus the items plus a comma between each two.
    /// </summary>
    private static List<byte[]> Chunked(IReadOnlyList<byte[]> items, Func<int, IReadOnlyList<byte[]>, byte[]> write, int maxSize, Func<int, string> name)
    {
        int middleEnvelope = write(0, []).Length, lastEnvelope = write(2, []).Length;
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
            int flag = (i == 0 ? 1 : 0) | (i == bounds.Count - 1 ? 2 : 0);
            var datagram = write(flag, items.Skip(bounds[i].From).Take(bounds[i].Count).ToList());
            if (datagram.Length > maxSize) throw new InvalidOperationException($"a chunk of {datagram.Length} bytes came out larger than the {maxSize} it was measured at");
            result.Add(datagram);
        }
        return result;
    }

    /// <summary>The prefix length of a dotted mask, or null when the mask is not contiguous ones.</summary>
    public static int? PrefixOf(string mask)
    {
        if (!IPAddress.TryParse(mask, out var m) || m.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork) return null;
        uint v = (uint)IPAddress.NetworkToHostOrder(BitConverter.ToInt32(m.GetAddressBytes()));
        int prefix = System.Numerics.BitOperations.LeadingZeroCount(~v);
        return prefix == 32 || v << prefix == 0 ? prefix : null;
    }

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
