using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Text.Json;
using NvRedirect.Core.Protocol;

namespace NvRedirect.Core.Datapath;

/// <summary>
/// Turns the datapath's replies, read by the protocol's readers (<see cref="Replies"/>, <see cref="JsonReplies"/>), into
/// the objects the cmdlets show. Bytes in, objects out: no sockets.
/// </summary>
public static class DpReplyReader
{
    /// <summary>Reads DPMsgHdr and checks that its Length is the datagram's length, as NeuVector's agent does.</summary>
    public static (byte Kind, bool More) Header(ReadOnlySpan<byte> datagram)
    {
        try { return Replies.Header(datagram); }
        catch (ReplyFormatException e) { throw new DatapathProtocolException(e.Message); }
    }

    /// <summary>KEEP_ALIVE: the sequence number it answers.</summary>
    public static uint KeepAlive(ReadOnlySpan<byte> datagram)
    {
        try { return Replies.ReadKeepAlive(datagram); }
        catch (ReplyFormatException e) { throw new DatapathProtocolException(e.Message); }
    }

    /// <summary>SESSION_COUNT: five u32.</summary>
    public static DpSessionCount SessionCount(ReadOnlySpan<byte> datagram, string controlSocket)
    {
        SessionCounts c;
        try { c = Replies.ReadSessionCount(datagram); }
        catch (ReplyFormatException e) { throw new DatapathProtocolException(e.Message); }
        return new DpSessionCount { ControlSocket = controlSocket, Total = c.Total, Tcp = c.Tcp, Udp = c.Udp, Icmp = c.Icmp, Other = c.Other };
    }

    /// <summary>DEVICE_COUNTER: the leading 27 u64 counters and the policy counts dp fills after the parser arrays.</summary>
    public static DpDeviceCounters DeviceCounters(ReadOnlySpan<byte> datagram, string controlSocket)
    {
        try { return new(controlSocket, Replies.ReadDeviceCounters(datagram), StatsReplies.ReadDevicePolicyCounts(datagram)); }
        catch (ReplyFormatException e) { throw new DatapathProtocolException(e.Message); }
    }

    /// <summary>MAC_STATS or DEVICE_STATS (<paramref name="kind"/>), read with the protocol's reader; <paramref name="mac"/> null for the device.</summary>
    public static DpTrafficStatistic Statistic(ReadOnlySpan<byte> datagram, byte kind, string controlSocket, string? mac)
    {
        TrafficStats s;
        try { s = StatsReplies.ReadStats(datagram, kind); }
        catch (ReplyFormatException e) { throw new DatapathProtocolException(e.Message); }
        DpStatisticWindow W(StatsWindow w, uint slots) => new()
        {
            Seconds = slots * s.Interval, SessionsIn = w.SessionIn, SessionsOut = w.SessionOut, PacketsIn = w.PacketIn, PacketsOut = w.PacketOut,
            BytesIn = w.ByteIn, BytesOut = w.ByteOut,
        };
        return new DpTrafficStatistic
        {
            ControlSocket = controlSocket, Mac = mac, Interval = s.Interval, SessionsIn = s.SessionIn, SessionsOut = s.SessionOut,
            CurrentSessionsIn = s.SessionCurIn, CurrentSessionsOut = s.SessionCurOut, PacketsIn = s.PacketIn, PacketsOut = s.PacketOut,
            BytesIn = s.ByteIn, BytesOut = s.ByteOut, Last = W(s.Last, 1), LastMinute = W(s.Last12, 12), LastFiveMinutes = W(s.Last60, (uint)StatsLayout.Slots),
        };
    }

    /// <summary>One METER_LIST datagram: its meters, and whether more datagrams follow.</summary>
    public static List<DpMeter> Meters(ReadOnlySpan<byte> datagram, string controlSocket, out bool more)
    {
        try
        {
            return StatsReplies.ReadMeterList(datagram, out more).Select(m => new DpMeter
            {
                ControlSocket = controlSocket, Mac = Fields.FormatMac(m.EndpointMac), PeerAddress = Peer(m.PeerIP), MeterId = m.MeterId, Flags = m.Flags,
                Span = m.Span, Count = m.Count, LastCount = m.LastCount, Idle = m.Idle, UpperLimit = m.UpperLimit, LowerLimit = m.LowerLimit,
            }).ToList();
        }
        catch (ReplyFormatException e) { throw new DatapathProtocolException(e.Message); }
    }

    // dp's 16-byte peer address: an IPv4 peer in its first four bytes, the rest zero
    private static IPAddress Peer(byte[] ip) => ip.Skip(4).All(b => b == 0) ? new IPAddress(ip[..4]) : new IPAddress(ip);

    /// <summary>One SESSION_LIST datagram: its sessions, and whether more datagrams follow (false for the terminator).</summary>
    public static List<DpSession> SessionList(ReadOnlySpan<byte> datagram, string controlSocket, out bool more)
    {
        try { return Replies.ReadSessionList(datagram, out more).Select(s => Session(s, controlSocket)).ToList(); }
        catch (ReplyFormatException e) { throw new DatapathProtocolException(e.Message); }
    }

    /// <summary>One DPMsgSession (140 bytes).</summary>
    public static DpSession Session(ReadOnlySpan<byte> span, string controlSocket)
    {
        try { return Session(Replies.ReadSession(span), controlSocket); }
        catch (ReplyFormatException e) { throw new DatapathProtocolException(e.Message); }
    }

    private static DpSession Session(SessionEntry s, string controlSocket)
    {
        byte proto = s.Protocol;
        return new DpSession
        {
            ControlSocket = controlSocket,
            Id = s.Id,
            EndpointMac = Fields.FormatMac(s.EndpointMac),
            Family = s.IPv6 ? "IPv6" : "IPv4",
            ProtocolNumber = proto,
            Protocol = proto switch { 6 => "TCP", 17 => "UDP", 1 => "ICMP", 58 => "ICMPv6", _ => proto.ToString(CultureInfo.InvariantCulture) },
            ClientMac = Fields.FormatMac(s.ClientMac),
            ServerMac = Fields.FormatMac(s.ServerMac),
            ClientAddress = new IPAddress(s.ClientIP).ToString(),
            ServerAddress = new IPAddress(s.ServerIP).ToString(),
            PolicyId = s.PolicyId,
            PolicyAction = s.PolicyAction,
            ClientPort = s.ClientPort,
            ServerPort = s.ServerPort,
            IcmpType = s.IsIcmp ? (byte)(s.IcmpTypeCode >> 8) : null,
            IcmpCode = s.IsIcmp ? (byte)s.IcmpTypeCode : null,
            ClientPackets = s.ClientPackets,
            ServerPackets = s.ServerPackets,
            ClientBytes = s.ClientBytes,
            ServerBytes = s.ServerBytes,
            ClientState = proto == 6 ? TcpStates.Name(s.ClientState) : "",
            ServerState = proto == 6 ? TcpStates.Name(s.ServerState) : "",
            IdleSeconds = s.Idle,
            AgeSeconds = s.Age,
            LifeSeconds = s.Life,
            Ingress = (s.Flags & DpWire.SessionFlagIngress) != 0,
            Tap = (s.Flags & DpWire.SessionFlagTap) != 0,
            MidStream = (s.Flags & DpWire.SessionFlagMidStream) != 0,
            Grace = (s.Flags & DpWire.SessionFlagTmpOpen) != 0,
        };
    }

    /// <summary>
    /// The replies of <see cref="DpRequests.Query"/> (session count, device counters, then the state in one or more
    /// datagrams) read into one <see cref="DatapathInfo"/>, as <see cref="DpClient.Query"/> returns it; nvr-dp uses it
    /// to describe itself for its metrics listener.
    /// </summary>
    public static DatapathInfo Query(IReadOnlyList<byte[]> replies, string controlSocket)
    {
        if (replies.Count < 3) throw new DatapathProtocolException($"a query needs 3 or more reply datagrams, got {replies.Count}");
        var count = SessionCount(replies[0], controlSocket);
        var counters = DeviceCounters(replies[1], controlSocket);
        return State(JoinState(replies.Skip(2)), out _, out _).With(count, counters);
    }

    /// <summary>Joins the bodies of a STATE reply's datagrams (More=1 until the last).</summary>
    public static byte[] JoinState(IEnumerable<byte[]> datagrams) => Join(datagrams, MessageKind.State, "state");

    /// <summary>
    /// Joins the bodies of one of nvr-dp's chunked JSON replies (<see cref="MessageKind.State"/>, <see cref="MessageKind.Policy"/>,
    /// <see cref="MessageKind.Connections"/>): every datagram of <paramref name="kind"/>, More=1 on all but the last.
    /// </summary>
    public static byte[] Join(IEnumerable<byte[]> datagrams, byte kind, string what)
    {
        try { return Replies.Join(datagrams, kind, what); }
        catch (ReplyFormatException e) { throw new DatapathProtocolException(e.Message); }
    }

    // what the protocol's JSON readers throw on a reply that is not what nvr-dp sends
    private static bool Unreadable(Exception e)
        => e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException or CommandException or ReplyFormatException;

    /// <summary>Reads the reply to nvr_get_policy (kind 201, joined): one policy per workload that has one.</summary>
    public static List<DpPolicy> Policies(ReadOnlySpan<byte> json, string controlSocket)
    {
        try
        {
            return JsonReplies.ReadPolicies(json).Select(p =>
            {
                string mac = Fields.FormatMac(p.Mac);
                return new DpPolicy
                {
                    ControlSocket = controlSocket,
                    Mac = mac,
                    HasPolicy = true,
                    Version = p.Version,
                    DefaultAction = p.DefaultAction,
                    Direction = p.Direction,
                    Rules = p.Rules.Select(r => DpRule.FromWire(r, mac, controlSocket)).ToArray(),
                };
            }).ToList();
        }
        catch (Exception e) when (Unreadable(e))
        {
            throw new DatapathProtocolException($"the datapath's policy reply is not what nvr-dp sends: {e.Message}");
        }
    }

    /// <summary>One rule as ctrl_cfg_policy and nvr_get_policy write it (sipr, dipr and portr default to sip, dip and port).</summary>
    public static DpRule Rule(JsonElement r, string? mac, string? controlSocket) => DpRule.FromWire(PolicyRule.Read(r, out _), mac, controlSocket);

    /// <summary>Reads the reply to nvr_list_connection (kind 202, joined): the entries, the table's capacity and how many entries it evicted.</summary>
    public static List<DpConnection> Connections(ReadOnlySpan<byte> json, string controlSocket, out long capacity, out long evicted)
    {
        try
        {
            var list = JsonReplies.ReadConnections(json);
            capacity = list.Capacity;
            evicted = list.Evicted;
            return list.Connections.Select(x => new DpConnection
            {
                ControlSocket = controlSocket,
                Mac = Fields.FormatMac(x.Mac),
                Direction = x.Ingress ? DpDirection.Ingress : DpDirection.Egress,
                Client = x.Client,
                Server = x.Server,
                ServerPort = x.ServerPort,
                Protocol = x.Protocol,
                RuleId = x.RuleId,
                Action = x.Action,
                Sessions = x.Sessions,
                Packets = x.Packets,
                Bytes = x.Bytes,
                DroppedPackets = x.Dropped,
                FirstSeen = x.FirstSeen,
                LastSeen = x.LastSeen,
                Answered = x.Answered,
                Scan = x.Scan,
                Attempts = x.Attempts,
            }).ToList();
        }
        catch (Exception e) when (Unreadable(e))
        {
            throw new DatapathProtocolException($"the datapath's connection reply is not what nvr-dp sends: {e.Message}");
        }
    }

    /// <summary>
    /// Reads nvr-dp's state JSON (nvr_get_state) into a <see cref="DatapathInfo"/>, and the outcome of the sender's
    /// previous request (<paramref name="accepted"/> null when the state does not say).
    /// </summary>
    public static DatapathInfo State(ReadOnlySpan<byte> json, out bool? accepted, out string? error)
    {
        StateReport s;
        try { s = JsonReplies.ReadState(json); }
        catch (Exception e) when (Unreadable(e))
        {
            throw new DatapathProtocolException($"the datapath's state reply is not what nvr-dp sends: {e.Message}");
        }
        accepted = s.YourLastRequest?.Accepted;
        error = s.YourLastRequest?.Error;
        string socket = s.Daemon.Socket;
        return new DatapathInfo
        {
            Pid = s.Daemon.Pid,
            Version = s.Daemon.Version,
            Namespace = s.Daemon.Namespace,
            ControlSocket = socket,
            LogPath = s.Daemon.Log,
            SessionCapacity = s.Daemon.SessionCapacity,
            StartTime = s.Daemon.Started,
            Supervised = s.Daemon.Supervised, Restarts = s.Daemon.Restarts, LastExit = s.Daemon.LastExit,
            StateFile = s.Daemon.StateFile, StateProblem = s.Daemon.StateProblem,
            ServicePorts = s.ServicePort is { } port ? [port] : [],
            Workloads = s.Workloads.Select(w => Workload(w, socket)).ToArray(),
            InternalNetworks = s.InternalNets.Select(InternalNetwork).ToArray(),
            InternalNetworksPending = s.InternalNetsPending,
            PolicyAddresses = s.PolicyAddresses.Select(Fields.FormatIPv4).ToArray(),
            PolicyPending = s.PolicyPending is { } pp ? $"{pp.Rules} rules for {string.Join(", ", pp.Macs.Select(Fields.FormatMac))}" : null,
            DeniedPackets = s.PolicyCounters.DeniedPackets,
            DeniedSessions = s.PolicyCounters.DeniedSessions,
            BlockedSessions = s.PolicyCounters.BlockedSessions,
            ResetsSent = s.PolicyCounters.ResetsSent,
            Reevaluations = s.PolicyCounters.Reevaluations,
            XffEnabled = s.XffEnabled,
            DisableNetPolicy = s.DisableNetPolicy,
            DetectUnmanagedWorkloads = s.DetectUnmanagedWorkloads,
            EnableIcmpPolicy = s.EnableIcmpPolicy,
            StrictGroupMode = s.StrictGroupMode,
            Strict = s.Strict,
            GraceOpened = s.PolicyCounters.GraceOpened,
            DebugCategories = s.Debug,
            RequestsAccepted = s.Requests.Accepted,
            RequestsRejected = s.Requests.Rejected,
            LastRejection = s.Requests.LastRejection,
            Tables = s.Tables is { } t ? [Table("Sessions", t.Sessions), Table("Connections", t.Connections)] : [],
        };
    }

    private static DpTable Table(string name, TableFigures t) => new()
    {
        Name = name, Capacity = t.Capacity, Count = t.Count, Learned = t.Learned, Scans = t.Scans,
        Evicted = t.Evicted, LearnedEvicted = t.LearnedEvicted, Summarised = t.Summarised,
    };

    private static string? MacOrNull(ulong mac) => mac == 0 ? null : Fields.FormatMac(mac);

    private static DpWorkload Workload(WorkloadEntry w, string socket) => new()
    {
        ControlSocket = socket,
        DefaultAction = w.Policy?.DefaultAction,
        PolicyDirection = w.Policy?.Direction,
        PolicyVersion = w.Policy?.Version ?? 0,
        RuleCount = w.Policy?.Rules ?? 0,
        Mac = Fields.FormatMac(w.Mac),
        Interface = w.Interface,
        UcMac = MacOrNull(w.UnicastMac),
        BcMac = MacOrNull(w.BroadcastMac),
        ProxyMac = MacOrNull(w.ProxyMac),
        ProxyAddresses = w.ProxyAddresses.Select(Fields.FormatIPv4).ToArray(),
        Tap = w.Tap,
        Apps = w.Apps.Select(a => $"{a.Port}/{a.IpProtocol} app={a.Application} server={a.Server}").ToArray(),
        PacketsIn = w.PacketsIn,
        PacketsOut = w.PacketsOut,
        BytesIn = w.BytesIn,
        BytesOut = w.BytesOut,
        SessionsIn = w.SessionsIn,
        SessionsOut = w.SessionsOut,
    };

    // ADDRESS/PREFIX when the mask is a prefix, ADDRESS/MASK otherwise; " devip" (the iptype) appended when given
    private static string InternalNetwork(InternalSubnet n)
    {
        string ip = Fields.FormatIPv4(n.Ip), mask = Fields.FormatIPv4(n.Mask);
        string text = DpRequests.PrefixOf(mask) is int prefix ? $"{ip}/{prefix}" : $"{ip}/{mask}";
        return n.IpType is { Length: > 0 } type ? $"{text} {type}" : text;
    }
}
