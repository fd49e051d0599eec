using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Text.Json;
using NvRedirect.Packets;

namespace NvRedirect.Datapath;

/// <summary>
/// Reads the datapath's binary replies (layouts in <see cref="DpWire"/>, <see cref="SessionLayout"/>,
/// <see cref="DeviceCounterLayout"/>) and nvr-dp's JSON state into objects. Bytes in, objects out: no sockets.
/// </summary>
public static class DpReplyReader
{
    /// <summary>Reads DPMsgHdr and checks that its Length is the datagram's length, as NeuVector's agent does.</summary>
    public static (byte Kind, bool More) Header(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length < DpWire.HeaderSize)
            throw new DatapathProtocolException($"a reply of {datagram.Length} bytes is shorter than its {DpWire.HeaderSize}-byte header");
        int length = BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);
        if (length != datagram.Length)
            throw new DatapathProtocolException($"a reply of kind {datagram[0]} says it is {length} bytes long but is {datagram.Length}");
        return (datagram[0], datagram[1] != 0);
    }

    private static void Expect(ReadOnlySpan<byte> datagram, byte kind, int length, string what)
    {
        var (k, _) = Header(datagram);
        if (k != kind) throw new DatapathProtocolException($"expected a {what} reply (kind {kind}), got kind {k}");
        if (datagram.Length != length) throw new DatapathProtocolException($"a {what} reply must be {length} bytes, got {datagram.Length}");
    }

    /// <summary>KEEP_ALIVE: the sequence number it answers.</summary>
    public static uint KeepAlive(ReadOnlySpan<byte> datagram)
    {
        Expect(datagram, MessageKind.KeepAlive, 8, "keep-alive");
        return BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]);
    }

    /// <summary>SESSION_COUNT: five u32.</summary>
    public static DpSessionCount SessionCount(ReadOnlySpan<byte> datagram, string controlSocket)
    {
        Expect(datagram, MessageKind.SessionCount, 24, "session count");
        var d = datagram.ToArray();
        uint At(int i) => BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(4 + 4 * i));
        return new DpSessionCount { ControlSocket = controlSocket, Total = At(0), Tcp = At(1), Udp = At(2), Icmp = At(3), Other = At(4) };
    }

    /// <summary>DEVICE_COUNTER: the leading 27 u64 counters.</summary>
    public static DpDeviceCounters DeviceCounters(ReadOnlySpan<byte> datagram, string controlSocket)
    {
        Expect(datagram, MessageKind.DeviceCounter, DpWire.HeaderSize + DeviceCounterLayout.Size, "device counter");
        var values = new ulong[(int)DeviceCounter.CurLogCaches + 1];
        for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadUInt64BigEndian(datagram[(DpWire.HeaderSize + 8 * i)..]);
        return new DpDeviceCounters(controlSocket, values);
    }

    /// <summary>One SESSION_LIST datagram: its sessions, and whether more datagrams follow (false for the terminator).</summary>
    public static List<DpSession> SessionList(ReadOnlySpan<byte> datagram, string controlSocket, out bool more)
    {
        var (kind, m) = Header(datagram);
        if (kind != MessageKind.SessionList) throw new DatapathProtocolException($"expected a session list reply (kind {MessageKind.SessionList}), got kind {kind}");
        if (datagram.Length < DpWire.HeaderSize + DpWire.SessionHeaderSize) throw new DatapathProtocolException("a session list reply is shorter than its headers");
        int count = BinaryPrimitives.ReadUInt16BigEndian(datagram[DpWire.HeaderSize..]);
        int expected = DpWire.HeaderSize + DpWire.SessionHeaderSize + count * SessionLayout.Size;
        if (datagram.Length != expected) throw new DatapathProtocolException($"a session list reply with {count} sessions must be {expected} bytes, got {datagram.Length}");
        more = m;
        var list = new List<DpSession>(count);
        for (int i = 0; i < count; i++)
            list.Add(Session(datagram.Slice(DpWire.HeaderSize + DpWire.SessionHeaderSize + i * SessionLayout.Size, SessionLayout.Size), controlSocket));
        return list;
    }

    /// <summary>One DPMsgSession (140 bytes).</summary>
    public static DpSession Session(ReadOnlySpan<byte> span, string controlSocket)
    {
        if (span.Length != SessionLayout.Size) throw new DatapathProtocolException($"a session record must be {SessionLayout.Size} bytes, got {span.Length}");
        var b = span.ToArray();
        ushort U16(int o) => BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(o));
        uint U32(int o) => BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(o));
        string Mac(int o) => FrameParser.FormatMac(FrameParser.ReadMac(b.AsSpan(o)));
        bool v6 = U16(SessionLayout.EtherType) == 0x86dd;
        string Ip(int o) => new IPAddress(b.AsSpan(o, v6 ? 16 : 4)).ToString(); // IPv4 in the first 4 bytes, as ip4_cpy puts it
        byte proto = b[SessionLayout.IPProto];
        bool icmp = proto is 1 or 58;
        ushort flags = U16(SessionLayout.Flags);
        return new DpSession
        {
            ControlSocket = controlSocket,
            Id = U32(SessionLayout.Id),
            EndpointMac = Mac(SessionLayout.EndpointMac),
            Family = v6 ? "IPv6" : "IPv4",
            ProtocolNumber = proto,
            Protocol = proto switch { 6 => "TCP", 17 => "UDP", 1 => "ICMP", 58 => "ICMPv6", _ => proto.ToString(CultureInfo.InvariantCulture) },
            ClientMac = Mac(SessionLayout.ClientMac),
            ServerMac = Mac(SessionLayout.ServerMac),
            ClientAddress = Ip(SessionLayout.ClientIP),
            ServerAddress = Ip(SessionLayout.ServerIP),
            ClientPort = U16(SessionLayout.ClientPort),
            ServerPort = U16(SessionLayout.ServerPort),
            IcmpType = icmp ? b[SessionLayout.IcmpType] : null,
            IcmpCode = icmp ? b[SessionLayout.IcmpCode] : null,
            ClientPackets = U32(SessionLayout.ClientPkts),
            ServerPackets = U32(SessionLayout.ServerPkts),
            ClientBytes = U32(SessionLayout.ClientBytes),
            ServerBytes = U32(SessionLayout.ServerBytes),
            ClientState = proto == 6 ? DpSession.TcpStateName(b[SessionLayout.ClientState]) : "",
            ServerState = proto == 6 ? DpSession.TcpStateName(b[SessionLayout.ServerState]) : "",
            IdleSeconds = U16(SessionLayout.Idle),
            AgeSeconds = U32(SessionLayout.Age),
            LifeSeconds = U16(SessionLayout.Life),
            Ingress = (flags & DpWire.SessionFlagIngress) != 0,
            Tap = (flags & DpWire.SessionFlagTap) != 0,
            MidStream = (flags & DpWire.SessionFlagMidStream) != 0,
        };
    }

    /// <summary>Joins the bodies of a STATE reply's datagrams (More=1 until the last).</summary>
    public static byte[] JoinState(IEnumerable<byte[]> datagrams)
    {
        var body = new List<byte>();
        foreach (var d in datagrams)
        {
            var (kind, _) = Header(d);
            if (kind != MessageKind.State) throw new DatapathProtocolException($"expected a state reply (kind {MessageKind.State}), got kind {kind}");
            body.AddRange(d.AsSpan(DpWire.HeaderSize).ToArray());
        }
        return body.ToArray();
    }

    /// <summary>
    /// Reads nvr-dp's state JSON (nvr_get_state) into a <see cref="DatapathInfo"/>, and the outcome of the sender's
    /// previous request (<paramref name="accepted"/> null when the state does not say).
    /// </summary>
    public static DatapathInfo State(ReadOnlySpan<byte> json, out bool? accepted, out string? error)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var r = doc.RootElement;
            var daemon = r.GetProperty("daemon");
            string socket = daemon.GetProperty("socket").GetString() ?? "";
            accepted = null;
            error = null;
            if (r.TryGetProperty("your_last_request", out var last) && last.ValueKind == JsonValueKind.Object)
            {
                accepted = last.GetProperty("accepted").GetBoolean();
                error = OptionalString(last, "error");
            }
            var requests = r.GetProperty("requests");
            return new DatapathInfo
            {
                Pid = daemon.GetProperty("pid").GetInt32(),
                Version = daemon.GetProperty("version").GetString() ?? "",
                Namespace = daemon.GetProperty("netns").GetString() ?? "",
                ControlSocket = socket,
                LogPath = OptionalString(daemon, "log"),
                SessionCapacity = daemon.GetProperty("sessions_capacity").GetInt32(),
                StartTime = DateTime.Parse(daemon.GetProperty("started").GetString() ?? "", CultureInfo.InvariantCulture,
                    DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal),
                ServicePorts = OptionalString(r, "service_port") is { } port ? [port] : [],
                Workloads = r.GetProperty("workloads").EnumerateArray().Select(w => Workload(w, socket)).ToArray(),
                InternalNetworks = r.GetProperty("internal_nets").EnumerateArray().Select(InternalNetwork).ToArray(),
                InternalNetworksPending = r.GetProperty("internal_nets_pending") is { ValueKind: JsonValueKind.Number } p ? p.GetInt32() : null,
                XffEnabled = r.GetProperty("xff_enabled").GetBoolean(),
                DisableNetPolicy = r.GetProperty("disable_net_policy").GetBoolean(),
                DetectUnmanagedWorkloads = r.GetProperty("detect_unmanaged_wl").GetBoolean(),
                EnableIcmpPolicy = r.GetProperty("enable_icmp_policy").GetBoolean(),
                StrictGroupMode = r.GetProperty("strict_group_mode").GetBoolean(),
                DebugCategories = r.GetProperty("debug").EnumerateArray().Select(d => d.GetString() ?? "").ToArray(),
                RequestsAccepted = requests.GetProperty("accepted").GetInt64(),
                RequestsRejected = requests.GetProperty("rejected").GetInt64(),
                LastRejection = OptionalString(requests, "last_rejection"),
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new DatapathProtocolException($"the datapath's state reply is not what nvr-dp sends: {e.Message}");
        }
    }

    private static DpWorkload Workload(JsonElement w, string socket) => new()
    {
        ControlSocket = socket,
        Mac = w.GetProperty("mac").GetString() ?? "",
        Interface = w.GetProperty("iface").GetString() ?? "",
        UcMac = OptionalString(w, "ucmac"),
        BcMac = OptionalString(w, "bcmac"),
        ProxyMac = OptionalString(w, "pmac"),
        ProxyAddresses = w.GetProperty("pips").EnumerateArray().Select(p => p.GetString() ?? "").ToArray(),
        Tap = w.GetProperty("tap").GetBoolean(),
        Apps = w.GetProperty("apps").EnumerateArray().Select(a =>
            $"{a.GetProperty("port").GetInt32()}/{a.GetProperty("ip_proto").GetInt32()} app={a.GetProperty("app").GetUInt32()} server={a.GetProperty("server").GetUInt32()}").ToArray(),
        PacketsIn = w.GetProperty("packets_in").GetInt64(),
        PacketsOut = w.GetProperty("packets_out").GetInt64(),
        BytesIn = w.GetProperty("bytes_in").GetInt64(),
        BytesOut = w.GetProperty("bytes_out").GetInt64(),
        SessionsIn = w.GetProperty("sessions_in").GetInt64(),
        SessionsOut = w.GetProperty("sessions_out").GetInt64(),
    };

    // ADDRESS/PREFIX when the mask is a prefix, ADDRESS/MASK otherwise; " devip" (the iptype) appended when given
    private static string InternalNetwork(JsonElement n)
    {
        string ip = n.GetProperty("ip").GetString() ?? "", mask = n.GetProperty("mask").GetString() ?? "";
        string text = DpRequests.PrefixOf(mask) is int prefix ? $"{ip}/{prefix}" : $"{ip}/{mask}";
        return OptionalString(n, "iptype") is { Length: > 0 } type ? $"{text} {type}" : text;
    }

    private static string? OptionalString(JsonElement o, string name)
        => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
