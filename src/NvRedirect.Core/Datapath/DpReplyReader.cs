using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Text.Json;
using NvRedirect.Core.Packets;

namespace NvRedirect.Core.Datapath;

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
            PolicyId = U32(SessionLayout.PolicyId),
            PolicyAction = b[SessionLayout.PolicyAction] <= (byte)DpPolicyAction.Deny ? (DpPolicyAction)b[SessionLayout.PolicyAction] : DpPolicyAction.Open,
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
    public static byte[] JoinState(IEnumerable<byte[]> datagrams) => Join(datagrams, MessageKind.State, "state");

    /// <summary>
    /// Joins the bodies of one of nvr-dp's chunked JSON replies (<see cref="MessageKind.State"/>, <see cref="MessageKind.Policy"/>,
    /// <see cref="MessageKind.Connections"/>): every datagram of <paramref name="kind"/>, More=1 on all but the last.
    /// </summary>
    public static byte[] Join(IEnumerable<byte[]> datagrams, byte kind, string what)
    {
        var body = new List<byte>();
        bool ended = false;
        foreach (var d in datagrams)
        {
            var (k, more) = Header(d);
            if (k != kind) throw new DatapathProtocolException($"expected a {what} reply (kind {kind}), got kind {k}");
            if (ended) throw new DatapathProtocolException($"a {what} reply goes on after its last datagram (More=0)");
            body.AddRange(d.AsSpan(DpWire.HeaderSize).ToArray());
            ended = !more;
        }
        if (!ended) throw new DatapathProtocolException($"a {what} reply ends with a datagram that says more follow");
        return body.ToArray();
    }

    /// <summary>Reads the reply to nvr_get_policy (kind 201, joined): one policy per workload that has one.</summary>
    public static List<DpPolicy> Policies(ReadOnlySpan<byte> json, string controlSocket)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            return doc.RootElement.GetProperty("policies").EnumerateArray().Select(p =>
            {
                string mac = p.GetProperty("mac").GetString() ?? "";
                return new DpPolicy
                {
                    ControlSocket = controlSocket,
                    Mac = mac,
                    HasPolicy = true,
                    Version = p.GetProperty("version").GetUInt32(),
                    DefaultAction = Action(p.GetProperty("defact")),
                    Direction = PolicyDirection(p.GetProperty("dir")),
                    Rules = p.GetProperty("rules").EnumerateArray().Select(r => Rule(r, mac, controlSocket)).ToArray(),
                };
            }).ToList();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new DatapathProtocolException($"the datapath's policy reply is not what nvr-dp sends: {e.Message}");
        }
    }

    private static DpTable Table(JsonElement tables, string field, string name)
    {
        var t = tables.GetProperty(field);
        long N(string n) => t.TryGetProperty(n, out var v) ? v.GetInt64() : 0;
        return new DpTable
        {
            Name = name, Capacity = N("capacity"), Count = N("count"), Learned = N("learned"), Scans = N("scans"),
            Evicted = N("evicted"), LearnedEvicted = N("learned_evicted"), Summarised = N("summarised"),
        };
    }

    private static long PolicyCounter(JsonElement state, string name)
        => state.TryGetProperty("policy_counters", out var c) && c.TryGetProperty(name, out var v) ? v.GetInt64() : 0;

    /// <summary>One rule as ctrl_cfg_policy and nvr_get_policy write it (sipr, dipr and portr default to sip, dip and port).</summary>
    public static DpRule Rule(JsonElement r, string? mac, string? controlSocket)
    {
        var sip = Ipv4(r.GetProperty("sip"));
        var dip = Ipv4(r.GetProperty("dip"));
        ushort port = r.GetProperty("port").GetUInt16();
        return new DpRule
        {
            ControlSocket = controlSocket,
            Mac = mac,
            Id = r.GetProperty("id").GetUInt32(),
            SourceFrom = sip,
            SourceTo = r.TryGetProperty("sipr", out var sipr) ? Ipv4(sipr) : sip,
            DestinationFrom = dip,
            DestinationTo = r.TryGetProperty("dipr", out var dipr) ? Ipv4(dipr) : dip,
            PortFrom = port,
            PortTo = r.TryGetProperty("portr", out var portr) ? portr.GetUInt16() : port,
            Protocol = r.GetProperty("proto").GetByte(),
            Action = Action(r.GetProperty("action")),
            Direction = r.GetProperty("ingress").GetBoolean() ? DpDirection.Ingress : DpDirection.Egress,
        };
    }

    /// <summary>Reads the reply to nvr_list_connection (kind 202, joined): the entries, the table's capacity and how many entries it evicted.</summary>
    public static List<DpConnection> Connections(ReadOnlySpan<byte> json, string controlSocket, out long capacity, out long evicted)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var r = doc.RootElement;
            capacity = r.TryGetProperty("capacity", out var c) ? c.GetInt64() : 0;
            evicted = r.TryGetProperty("evicted", out var e) ? e.GetInt64() : 0;
            return r.GetProperty("connections").EnumerateArray().Select(x => new DpConnection
            {
                ControlSocket = controlSocket,
                Mac = x.GetProperty("mac").GetString() ?? "",
                Direction = x.GetProperty("ingress").GetBoolean() ? DpDirection.Ingress : DpDirection.Egress,
                Client = IPAddress.Parse(x.GetProperty("client").GetString() ?? ""),
                Server = IPAddress.Parse(x.GetProperty("server").GetString() ?? ""),
                ServerPort = x.GetProperty("server_port").GetUInt16(),
                Protocol = x.GetProperty("proto").GetByte(),
                RuleId = x.GetProperty("rule_id").GetUInt32(),
                Action = Action(x.GetProperty("action")),
                Sessions = x.GetProperty("sessions").GetInt64(),
                Packets = x.GetProperty("packets").GetInt64(),
                Bytes = x.GetProperty("bytes").GetInt64(),
                DroppedPackets = x.GetProperty("dropped").GetInt64(),
                FirstSeen = Utc(x.GetProperty("first_seen")),
                LastSeen = Utc(x.GetProperty("last_seen")),
                Answered = x.TryGetProperty("answered", out var a) && a.GetBoolean(),
                Scan = x.TryGetProperty("scan", out var s) && s.GetBoolean(),
                Attempts = x.TryGetProperty("attempts", out var n) ? n.GetInt64() : 0,
            }).ToList();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new DatapathProtocolException($"the datapath's connection reply is not what nvr-dp sends: {e.Message}");
        }
    }

    private static DateTime Utc(JsonElement e) => DateTime.Parse(e.GetString() ?? "", CultureInfo.InvariantCulture,
        DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);

    private static IPAddress Ipv4(JsonElement e)
    {
        var text = e.GetString() ?? "";
        return IPAddress.TryParse(text, out var a) && a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? a
            : throw new FormatException($"'{text}' is not an IPv4 address");
    }

    private static DpPolicyAction Action(JsonElement e)
    {
        byte v = e.GetByte();
        return v <= (byte)DpPolicyAction.Deny ? (DpPolicyAction)v : throw new FormatException($"{v} is not a policy action (0-7)");
    }

    private static DpDirection PolicyDirection(JsonElement e)
    {
        byte v = e.GetByte();
        return v is >= 1 and <= 3 ? (DpDirection)v : throw new FormatException($"{v} is not a policy direction (1-3)");
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
                PolicyAddresses = r.TryGetProperty("policy_addr", out var pa) && pa.ValueKind == JsonValueKind.Array
                    ? pa.EnumerateArray().Select(a => a.GetString() ?? "").ToArray() : [],
                PolicyPending = r.TryGetProperty("policy_pending", out var pp) && pp.ValueKind == JsonValueKind.Object
                    ? $"{pp.GetProperty("rules").GetInt32()} rules for {string.Join(", ", pp.GetProperty("macs").EnumerateArray().Select(m => m.GetString()))}" : null,
                DeniedPackets = PolicyCounter(r, "denied_packets"),
                DeniedSessions = PolicyCounter(r, "denied_sessions"),
                BlockedSessions = PolicyCounter(r, "blocked_sessions"),
                ResetsSent = PolicyCounter(r, "resets_sent"),
                XffEnabled = r.GetProperty("xff_enabled").GetBoolean(),
                DisableNetPolicy = r.GetProperty("disable_net_policy").GetBoolean(),
                DetectUnmanagedWorkloads = r.GetProperty("detect_unmanaged_wl").GetBoolean(),
                EnableIcmpPolicy = r.GetProperty("enable_icmp_policy").GetBoolean(),
                StrictGroupMode = r.GetProperty("strict_group_mode").GetBoolean(),
                DebugCategories = r.GetProperty("debug").EnumerateArray().Select(d => d.GetString() ?? "").ToArray(),
                RequestsAccepted = requests.GetProperty("accepted").GetInt64(),
                RequestsRejected = requests.GetProperty("rejected").GetInt64(),
                LastRejection = OptionalString(requests, "last_rejection"),
                Tables = r.TryGetProperty("tables", out var tables) && tables.ValueKind == JsonValueKind.Object
                    ? [Table(tables, "sessions", "Sessions"), Table(tables, "connections", "Connections")] : [],
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new DatapathProtocolException($"the datapath's state reply is not what nvr-dp sends: {e.Message}");
        }
    }

    private static DpWorkload Workload(JsonElement w, string socket)
    {
        // "policy": null, or absent from a daemon older than policies
        bool hasPolicy = w.TryGetProperty("policy", out var policy) && policy.ValueKind == JsonValueKind.Object;
        return new()
        {
            ControlSocket = socket,
            DefaultAction = hasPolicy ? Action(policy.GetProperty("defact")) : null,
            PolicyDirection = hasPolicy ? PolicyDirection(policy.GetProperty("dir")) : null,
            PolicyVersion = hasPolicy ? policy.GetProperty("version").GetUInt32() : 0,
            RuleCount = hasPolicy ? policy.GetProperty("rules").GetInt32() : 0,
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
    }

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
