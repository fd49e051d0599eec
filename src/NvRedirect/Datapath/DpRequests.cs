using System;
using System.Buffers;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Text.Json;
using NvRedirect.Model;

namespace NvRedirect.Datapath;

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
    {
        var chunks = new List<List<DpInternalNetwork>> { new() };
        foreach (var e in entries)
        {
            var current = chunks[^1];
            current.Add(e);
            if (current.Count > 1 && InternalNetChunk(current, 0).Length > maxSize)
            {
                current.RemoveAt(current.Count - 1);
                chunks.Add([e]);
            }
            if (InternalNetChunk(chunks[^1], 0).Length > maxSize) throw new ArgumentException($"the internal network entry {e.Ip} does not fit in a request");
        }
        var result = new List<byte[]>();
        for (int i = 0; i < chunks.Count; i++)
        {
            int flag = (i == 0 ? 1 : 0) | (i == chunks.Count - 1 ? 2 : 0);
            result.Add(InternalNetChunk(chunks[i], flag));
        }
        return result;
    }

    private static byte[] InternalNetChunk(List<DpInternalNetwork> entries, int flag) => Write(w =>
    {
        w.WriteStartObject("ctrl_cfg_internal_net");
        w.WriteNumber("flag", flag);
        w.WriteStartArray("subnet_addr");
        foreach (var e in entries)
        {
            w.WriteStartObject();
            w.WriteString("ip", e.Ip);
            w.WriteString("mask", e.Mask);
            if (e.IpType != null) w.WriteString("iptype", e.IpType);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    });

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
