using System;
using System.Buffers.Binary;
using NvRedirect.Core.Packets;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Engine;

/// <summary>What to do with a frame.</summary>
internal enum FrameVerdict : byte
{
    /// <summary>Write it back unchanged (the workload is inline: tap off).</summary>
    Forward,
    /// <summary>Inspected and accounted, not transmitted (tap on: someone else delivered the original).</summary>
    Tap,
    /// <summary>No NeuV MAC, or a NeuV MAC no workload is registered under: dropped.</summary>
    NoWorkload,
    /// <summary>A workload frame whose headers do not parse: dropped.</summary>
    Malformed,
    /// <summary>Denied by policy (a new session refused, or a session blocked after a policy change): dropped.</summary>
    Deny,
    /// <summary>A TCP session that became denied: dropped, and a RST is to be sent to each end.</summary>
    Reset,
}

/// <summary>What session tracking and policy decided for a packet.</summary>
internal enum PolicyResult : byte { Pass, Drop, Reset }

/// <summary>Datapath-wide counters. Written by the packet thread only; other threads read them (64-bit reads are atomic on x64).</summary>
internal sealed class DatapathCounters
{
    public long RxPackets, RxBytes;
    /// <summary>Frames written back, and frames that could not be (TX ring full, send error).</summary>
    public long TxPackets, TxBytes, TxDropped, TxErrors;
    public long ForwardPackets, TapPackets, NoWorkloadPackets, MalformedPackets;
    public long IPv4Packets, IPv6Packets, TcpPackets, UdpPackets, IcmpPackets, OtherPackets, Fragments;
    /// <summary>Frames larger than a ring slot read whole from the socket, and those lost (no full copy available).</summary>
    public long LargeFrames, LostLargeFrames;
    /// <summary>Frames whose TCP/UDP checksum was completed (TP_STATUS_CSUMNOTREADY).</summary>
    public long ChecksumsCompleted;
    /// <summary>Frames this host sent out the port, skipped.</summary>
    public long OutgoingSkipped;
    /// <summary>Frames the kernel dropped because the RX ring was full (PACKET_STATISTICS tp_drops).</summary>
    public long RingDrops;
    /// <summary>TCP segments that neither matched nor opened a session (RST/FIN of an unknown conversation).</summary>
    public long TcpNoSessionPackets;
    /// <summary>Packets withheld by policy, new sessions refused, sessions blocked after a policy change, and RST pairs sent.</summary>
    public long DeniedPackets, DeniedSessions, BlockedSessions, ResetsSent;
    /// <summary>Sessions decided again because the policy or its settings changed.</summary>
    public long Reevaluations;
    /// <summary>Workload traffic of the whole datapath per 5-second slot (ctrl_stats_device).</summary>
    public readonly TrafficMeter Meter = new();
}

/// <summary>
/// The per-frame decision, free of sockets so it can be tested and benchmarked alone: classify by the NeuV MAC prefix
/// (source = egress from the workload, else destination = ingress), find the workload by the full MAC, parse, count,
/// track the session, and say whether to forward. Allocates nothing.
/// </summary>
internal sealed class FrameProcessor(SessionTable sessions, DatapathCounters counters, ConnectionTable? connections = null)
{
    private const byte TcpRst = 4;

    /// <summary>"NeuV" (4e:65:75:56): the first four bytes of every MAC tc rewrites a steered frame to.</summary>
    public const ulong NeuVPrefix = 0x4e657556;

    /// <summary>The session table (owned by the packet thread).</summary>
    public SessionTable Sessions { get; } = sessions;
    /// <summary>The counters.</summary>
    public DatapathCounters Counters { get; } = counters;
    /// <summary>The connections seen per workload (owned by the packet thread).</summary>
    public ConnectionTable Connections { get; } = connections ?? new ConnectionTable();
    /// <summary>dp's grace period for addresses the agent has not named (dp's semantics only; owned by the packet thread).</summary>
    public UnknownPeerGrace Grace { get; } = new();

    /// <summary>Decides about one frame (<paramref name="wireLength"/> may exceed the span for truncated captures).</summary>
    public FrameVerdict Process(ReadOnlySpan<byte> frame, int wireLength, WorkloadTable workloads, long now, out FrameInfo info)
    {
        var c = Counters;
        c.RxPackets++;
        c.RxBytes += wireLength;
        info = default;
        if (frame.Length < 14) { c.MalformedPackets++; return FrameVerdict.Malformed; }

        ulong destination = FrameParser.ReadMac(frame);
        ulong source = FrameParser.ReadMac(frame[6..]);
        bool ingress;
        Workload? workload;
        if (source >> 16 == NeuVPrefix) { ingress = false; workloads.TryGet(source, out workload); }
        else if (destination >> 16 == NeuVPrefix) { ingress = true; workloads.TryGet(destination, out workload); }
        else { ingress = false; workload = null; }
        if (workload is null) { c.NoWorkloadPackets++; return FrameVerdict.NoWorkload; }

        if (FrameParser.Parse(frame, out info) != FrameError.None) { c.MalformedPackets++; return FrameVerdict.Malformed; }

        var state = workload.State;
        if (ingress) { state.PacketsIn++; state.BytesIn += wireLength; }
        else { state.PacketsOut++; state.BytesOut += wireLength; }
        long slot = TrafficMeter.SlotOf(now);
        state.Meter.Packet(ingress, wireLength, slot);
        c.Meter.Packet(ingress, wireLength, slot);

        var result = info.IpVersion != 0 ? Track(frame, in info, ingress, wireLength, workload, workloads.Settings, now) : PolicyResult.Pass;

        if (state.Tap) { c.TapPackets++; return FrameVerdict.Tap; } // verdicts are computed and recorded, nothing is sent
        if (result != PolicyResult.Pass)
        {
            c.DeniedPackets++;
            return result == PolicyResult.Reset ? FrameVerdict.Reset : FrameVerdict.Deny;
        }
        c.ForwardPackets++;
        return FrameVerdict.Forward;
    }

    private PolicyResult Track(ReadOnlySpan<byte> frame, in FrameInfo info, bool ingress, int wireLength, Workload workload, PolicySettings settings, long now)
    {
        var c = Counters;
        int l3 = info.L3Offset;
        PacketTuple t = default;
        if (info.IpVersion == 4)
        {
            c.IPv4Packets++;
            uint dst = info.DestinationIPv4;
            if (dst == 0xffffffff || dst >> 28 == 0xe) return PolicyResult.Pass; // broadcast / multicast: forwarded, not tracked (as NeuVector)
            const ulong V4Mapped = 0xffff00000000UL;
            t.SourceLow = V4Mapped | info.SourceIPv4;
            t.DestinationLow = V4Mapped | dst;
        }
        else
        {
            c.IPv6Packets++;
            if (frame[l3 + 24] == 0xff) return PolicyResult.Pass; // multicast
            t.IPv6 = true;
            t.SourceHigh = BinaryPrimitives.ReadUInt64BigEndian(frame[(l3 + 8)..]);
            t.SourceLow = BinaryPrimitives.ReadUInt64BigEndian(frame[(l3 + 16)..]);
            t.DestinationHigh = BinaryPrimitives.ReadUInt64BigEndian(frame[(l3 + 24)..]);
            t.DestinationLow = BinaryPrimitives.ReadUInt64BigEndian(frame[(l3 + 32)..]);
        }
        if (info.IsLaterFragment) { c.Fragments++; return PolicyResult.Pass; } // no ports: passes with the conversation, untracked

        t.Protocol = info.Protocol;
        t.Ingress = ingress;
        t.SourceMac = info.SourceMac;
        t.DestinationMac = info.DestinationMac;
        t.Length = wireLength;
        switch (info.Protocol)
        {
            case 6:
                c.TcpPackets++;
                t.SourcePort = info.SourcePort;
                t.DestinationPort = info.DestinationPort;
                t.TcpFlags = info.TcpFlags;
                int ipPayload = info.IpVersion == 4
                    ? BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 2)..]) - (frame[l3] & 0x0f) * 4
                    : BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 4)..]) + 40 - (info.L4Offset - l3); // less any extension headers
                t.PayloadLength = ipPayload - (frame[info.L4Offset + 12] >> 4) * 4;
                break;
            case 17:
                c.UdpPackets++;
                t.SourcePort = info.SourcePort;
                t.DestinationPort = info.DestinationPort;
                break;
            case 1:
            case 58:
                c.IcmpPackets++;
                if (IsIcmpError(info)) return PolicyResult.Pass; // errors belong to another conversation: forwarded, not tracked
                if (info.Protocol == 58 && info.IcmpType is >= 133 and <= 137) return PolicyResult.Pass; // neighbour discovery (RS, RA, NS, NA, redirect): always passes, untracked
                t.SourcePort = t.DestinationPort = info.SourcePort; // echo identifier, equal both ways
                t.IcmpTypeCode = (ushort)(info.IcmpType << 8 | info.IcmpCode);
                break;
            default:
                c.OtherPackets++;
                break;
        }
        return Police(in t, workload, settings, now);
    }

    // The session and policy step (as NeuVector's dp/dpi/dpi_session.c and dpi_policy.c; docs/datapath.md, "Verdicts"): a new session is decided before it exists, and a DENY creates
    // none; an existing one is decided again when its workload's policy or the settings changed since, and one that
    // became denied is blocked (TCP: reset both ways). A TCP packet without SYN and without a session (a connection
    // opened before a restart) opens a mid-stream session: allowed, it goes on; denied, it is reset both ways.
    private PolicyResult Police(in PacketTuple t, Workload workload, PolicySettings settings, long now)
    {
        var c = Counters;
        var policy = workload.Policy;
        ulong stamp = 1UL << 63 | (ulong)settings.Generation << 32 | (policy?.Version ?? 0);
        var key = Sessions.KeyOf(in t);
        int index = Sessions.Find(in key, in t, out bool fromClient);
        if (index < 0)
        {
            if (!SessionTable.Open(in t, out var opening)) { c.TcpNoSessionPackets++; return PolicyResult.Pass; }
            if (t.Protocol == 17 && !settings.Strict) opening.SenderIsClient = UdpSenderIsClient(in t, workload);
            bool sessionIngress = opening.SenderIsClient ? t.Ingress : !t.Ingress;
            var verdict = PolicyVerdict.Open;
            bool tmpOpen = false;
            ConnectionKey ck;
            ck.EndpointMac = workload.Mac;
            ck.Ingress = sessionIngress;
            ck.IPv6 = t.IPv6;
            ck.Protocol = t.Protocol;
            ck.Scan = false;
            if (opening.SenderIsClient) { ck.ClientHigh = t.SourceHigh; ck.ClientLow = t.SourceLow; ck.ServerHigh = t.DestinationHigh; ck.ServerLow = t.DestinationLow; ck.ServerPort = t.DestinationPort; }
            else { ck.ClientHigh = t.DestinationHigh; ck.ClientLow = t.DestinationLow; ck.ServerHigh = t.SourceHigh; ck.ServerLow = t.SourceLow; ck.ServerPort = t.SourcePort; }
            if (t.Protocol is 1 or 58) ck.ServerPort = 0;
            if (t.IPv6)
                verdict = PolicyEngine.Decide6(policy, settings, new UInt128(ck.ClientHigh, ck.ClientLow), new UInt128(ck.ServerHigh, ck.ServerLow), ck.ServerPort, t.Protocol, sessionIngress);
            else
            {
                // dp's grace period is IPv4 only, as dp's policy is (IPv6 is our extension and is decided strictly)
                var decided = PolicyEngine.Decide(policy, settings, (uint)ck.ClientLow, (uint)ck.ServerLow, ck.ServerPort, t.Protocol, sessionIngress);
                verdict = Grace.Apply(decided, policy, settings, (uint)ck.ClientLow, (uint)ck.ServerLow, sessionIngress, now);
                tmpOpen = verdict != decided;
            }
            ck.RuleId = verdict.RuleId;
            ck.Action = verdict.Action;
            if (verdict.Action == DpPolicyAction.Deny)
            {
                // refused: no session, so every retransmission is decided (and counted) again
                c.DeniedSessions++;
                int refused = Connections.Record(in ck, now, out _);
                Connections.Account(refused, t.Length, dropped: true, now);
                // a denied TCP connection met mid-stream (opened before this daemon started: a restart) is reset both
                // ways, as a session that became denied is, rather than left to hang (a new SYN is only dropped)
                if (opening.MidStream && !workload.State.Tap) { c.ResetsSent++; return PolicyResult.Reset; }
                return PolicyResult.Drop;
            }
            index = Sessions.Create(in key, in t, in opening, workload, now);
            ref var n = ref Sessions[index];
            // the workload's side names its registered MAC, the other side the MAC on the wire (as dp: its ep_mac)
            if (sessionIngress) n.ServerMac = workload.Mac; else n.ClientMac = workload.Mac;
            if (tmpOpen) n.Flags |= SessionFlags.TmpOpen;
            long slot = TrafficMeter.SlotOf(now);
            workload.State.Meter.Session(sessionIngress, slot);
            c.Meter.Session(sessionIngress, slot);
            n.PolicyStamp = stamp;
            n.PolicyId = verdict.RuleId;
            n.PolicyAction = verdict.Action;
            int ci = Connections.Record(in ck, now, out _);
            Connections[ci].Sessions++;
            n.Connection = ci;
            n.ConnectionEpoch = Connections[ci].Epoch;
            Connections.Account(ci, t.Length, dropped: false, now);
            return PolicyResult.Pass;
        }

        ref var s = ref Sessions[index];
        var result = PolicyResult.Pass;
        bool verdictChanged = false;
        if (s.PolicyStamp != stamp)
        {
            c.Reevaluations++;
            var verdict = s.IsIPv6
                ? PolicyEngine.Decide6(policy, settings, s.ClientIsLo ? new UInt128(s.LoHigh, s.LoLow) : new UInt128(s.HiHigh, s.HiLow),
                    s.ClientIsLo ? new UInt128(s.HiHigh, s.HiLow) : new UInt128(s.LoHigh, s.LoLow), s.Protocol is 58 ? (ushort)0 : s.ServerPort, s.Protocol, (s.Flags & SessionFlags.Ingress) != 0)
                : PolicyEngine.Decide(policy, settings, s.ClientIPv4, s.ServerIPv4, s.Protocol is 1 ? (ushort)0 : s.ServerPort, s.Protocol, (s.Flags & SessionFlags.Ingress) != 0);
            if (!s.IsIPv6)
            {
                var decided = verdict;
                verdict = Grace.Apply(decided, policy, settings, s.ClientIPv4, s.ServerIPv4, (s.Flags & SessionFlags.Ingress) != 0, now);
                s.Flags = verdict != decided ? s.Flags | SessionFlags.TmpOpen : s.Flags & ~SessionFlags.TmpOpen;
            }
            s.PolicyStamp = stamp;
            verdictChanged = verdict.RuleId != s.PolicyId || verdict.Action != s.PolicyAction;
            s.PolicyId = verdict.RuleId;
            s.PolicyAction = verdict.Action;
            if (verdict.Action == DpPolicyAction.Deny)
            {
                if (!s.Blocked) { s.Blocked = true; c.BlockedSessions++; }
            }
            else { s.Blocked = false; s.ResetSent = false; } // a later policy allowed it again
        }
        if (s.Blocked)
        {
            // a blocked TCP session is reset once, as soon as the workload is inline (NeuVector sends no resets for
            // tapped sessions; one blocked while tapped is reset at its first packet after the switch to inline)
            if (s.Protocol == 6 && !s.ResetSent && !workload.State.Tap) { s.ResetSent = true; result = PolicyResult.Reset; }
            else result = PolicyResult.Drop;
        }
        Sessions.Account(index, in t, fromClient, now);
        // the server answered (a TCP RST is no answer: a closed port's refusal): the connection is learned, and a
        // session folded into its client's scan entry gets an entry of its own
        bool answered = !fromClient && result == PolicyResult.Pass && (t.Protocol != 6 || (t.TcpFlags & TcpRst) == 0);
        bool stale = s.Connection < 0 || !Connections.IsCurrent(s.Connection, s.ConnectionEpoch);
        bool split = answered && !stale && Connections[s.Connection].Key.Scan;
        if (verdictChanged || stale || split)
        {
            ConnectionKey ck;
            ck.EndpointMac = s.EndpointMac;
            ck.Ingress = (s.Flags & SessionFlags.Ingress) != 0;
            ck.IPv6 = s.IsIPv6;
            ck.Scan = false;
            ck.Protocol = s.Protocol;
            if (s.ClientIsLo) { ck.ClientHigh = s.LoHigh; ck.ClientLow = s.LoLow; ck.ServerHigh = s.HiHigh; ck.ServerLow = s.HiLow; }
            else { ck.ClientHigh = s.HiHigh; ck.ClientLow = s.HiLow; ck.ServerHigh = s.LoHigh; ck.ServerLow = s.LoLow; }
            ck.ServerPort = s.Protocol is 1 or 58 ? (ushort)0 : s.ServerPort;
            ck.RuleId = s.PolicyId;
            ck.Action = s.PolicyAction;
            bool created;
            int ci = answered ? Connections.Find(in ck, now, out created) : Connections.Record(in ck, now, out created);
            if (split && Connections.IsCurrent(s.Connection, s.ConnectionEpoch)) // (making room may have evicted the scan entry)
            {
                ref var folded = ref Connections[s.Connection];
                if (folded.Sessions > 0) folded.Sessions--;
                if (folded.Attempts > 0) folded.Attempts--;
            }
            // the session counts in a new entry, and in a fresh one when its old entry was forgotten (cleared, evicted)
            if (verdictChanged || s.Connection < 0 || created || split) Connections[ci].Sessions++;
            s.Connection = ci;
            s.ConnectionEpoch = Connections[ci].Epoch;
        }
        if (answered) Connections.MarkAnswered(s.Connection);
        Connections.Account(s.Connection, t.Length, dropped: result != PolicyResult.Pass, now);
        if (result == PolicyResult.Pass) Sessions.FastPath?.Consider(ref s, in t, workload, now);
        if (result == PolicyResult.Reset)
        {
            Sessions.MarkReset(index, now);
            c.ResetsSent++;
        }
        return result;
    }

    // dp's orientation of a new UDP conversation (dp/dpi/dpi_session.c, dpi_udp_tracker): DHCP and DNS by their
    // well-known server ports; otherwise the workload is the server only when the port on its side is in its listening
    // table (ctrl_cfg_mac "apps"), so an inbound packet to a port not (yet) listed is taken as an answer to the workload
    // (it is the client, the peer's port the server's) and is decided as egress. Strict: the first sender is the client.
    private static bool UdpSenderIsClient(in PacketTuple t, Workload workload)
    {
        if (t.DestinationPort is 67 or 53 or 5353) return true;
        if (t.SourcePort is 67 or 53 or 5353) return false;
        ushort ownPort = t.Ingress ? t.DestinationPort : t.SourcePort;
        bool listening = false;
        var apps = workload.Apps;
        for (int i = 0; i < apps.Length; i++)
            if (apps[i].Port == ownPort && apps[i].IpProtocol == 17) { listening = true; break; }
        // listening: the workload is the server (an inbound sender is the client); else the workload is the client
        return listening == t.Ingress;
    }

    private static bool IsIcmpError(in FrameInfo info)
        => info.Protocol == 1 ? info.IcmpType is 3 or 4 or 5 or 11 or 12 : info.IcmpType is >= 1 and <= 4;
}
