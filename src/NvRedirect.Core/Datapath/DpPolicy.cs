using System;
using System.Buffers.Binary;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using NvRedirect.Core.Protocol;

namespace NvRedirect.Core.Datapath;

/// <summary>A workload's mode, read from its policy's default action as NeuVector's agent maps modes to defact.</summary>
public enum DpWorkloadMode
{
    /// <summary>No policy: every session is open.</summary>
    None,
    /// <summary>Default action Learn: everything passes and is reported for learning.</summary>
    Discover,
    /// <summary>Default action Violate: everything passes, what no rule allows is reported as a violation.</summary>
    Monitor,
    /// <summary>Default action Deny: what no rule allows is blocked.</summary>
    Protect,
    /// <summary>A policy with any other default action.</summary>
    Custom,
}

/// <summary>How the datapath handles a workload's frames: inline (sent on after the verdict) or tap (inspected only).</summary>
public enum DpWireMode
{
    /// <summary>Frames are sent on unless the verdict blocks them.</summary>
    Inline,
    /// <summary>Frames are inspected and counted, nothing is sent on.</summary>
    Tap,
}

/// <summary>
/// One policy rule as ctrl_cfg_policy carries it: the session is seen client->server, so Source is the client,
/// Destination the server and Port the server's port; Direction Ingress means the workload is the server.
/// Ranges are inclusive. A rule's addresses are all IPv4 or all IPv6 (nvr-dp's IPv6 extension); a rule whose
/// addresses are both any covers both families.
/// </summary>
public sealed class DpRule
{
    /// <summary>The datapath's control socket, when the rule came from one (binds to -ControlSocket down the pipeline); null otherwise.</summary>
    public string? ControlSocket { get; init; }
    /// <summary>The workload the rule belongs to (its MAC), or null for a rule not yet given to one.</summary>
    public string? Mac { get; init; }
    /// <summary>The rule's id, reported with every connection it decides (0: give it the next free id).</summary>
    public uint Id { get; init; }
    /// <summary>The client addresses the rule covers, first to last.</summary>
    public IPAddress SourceFrom { get; init; } = IPAddress.Any;
    /// <summary>See <see cref="SourceFrom"/>.</summary>
    public IPAddress SourceTo { get; init; } = IPAddress.Broadcast;
    /// <summary>The server addresses the rule covers, first to last.</summary>
    public IPAddress DestinationFrom { get; init; } = IPAddress.Any;
    /// <summary>See <see cref="DestinationFrom"/>.</summary>
    public IPAddress DestinationTo { get; init; } = IPAddress.Broadcast;
    /// <summary>The server ports the rule covers, first to last (ICMP sessions have port 0).</summary>
    public ushort PortFrom { get; init; }
    /// <summary>See <see cref="PortFrom"/>.</summary>
    public ushort PortTo { get; init; } = ushort.MaxValue;
    /// <summary>The IP protocol number; 0 = any of TCP, UDP and ICMP.</summary>
    public byte Protocol { get; init; }
    /// <summary>What the rule does to the sessions it matches.</summary>
    public DpPolicyAction Action { get; init; } = DpPolicyAction.Allow;
    /// <summary>Ingress: sessions towards the workload; Egress: sessions it opens.</summary>
    public DpDirection Direction { get; init; } = DpDirection.Ingress;

    /// <summary>The client addresses as text: any, an address, a CIDR, or FIRST-LAST.</summary>
    public string Source => RuleText.Range(SourceFrom, SourceTo);
    /// <summary>The server addresses as text (see <see cref="Source"/>).</summary>
    public string Destination => RuleText.Range(DestinationFrom, DestinationTo);
    /// <summary>The server ports as text: any, a port, or FIRST-LAST.</summary>
    public string Port => PortFrom == 0 && PortTo == ushort.MaxValue ? "any"
        : PortFrom == PortTo ? PortFrom.ToString(CultureInfo.InvariantCulture) : $"{PortFrom}-{PortTo}";
    /// <summary>The protocol as text: Any, TCP, UDP, ICMP or its number.</summary>
    public string ProtocolName => RuleText.ProtocolName(Protocol);

    /// <summary>The same rule with another id, workload, or control socket.</summary>
    public DpRule With(uint? id = null, string? mac = null, string? controlSocket = null) => new()
    {
        ControlSocket = controlSocket ?? ControlSocket, Mac = mac ?? Mac, Id = id ?? Id,
        SourceFrom = SourceFrom, SourceTo = SourceTo, DestinationFrom = DestinationFrom, DestinationTo = DestinationTo,
        PortFrom = PortFrom, PortTo = PortTo, Protocol = Protocol, Action = Action, Direction = Direction,
    };

    /// <summary>
    /// Builds a rule from its text parts: addresses as a.b.c.d, an IPv6 address, a CIDR, FIRST-LAST or any (*); ports as N,
    /// FIRST-LAST or any (*); protocol as Any, TCP, UDP, ICMP, ICMPv6 or a number. With an IPv6 address on one side, any on
    /// the other is every IPv6 address. Throws an ArgumentException that says what is wrong.
    /// </summary>
    public static DpRule Parse(string? source, string? destination, string? port, string? protocol, DpPolicyAction action = DpPolicyAction.Allow,
        DpDirection direction = DpDirection.Ingress, uint id = 0, string? mac = null)
    {
        if (direction is not (DpDirection.Ingress or DpDirection.Egress))
            throw new ArgumentException($"A rule is either Ingress (towards the workload) or Egress (from it), not {direction}; write two rules for both ways.");
        if (!Enum.IsDefined(action)) throw new ArgumentException($"{(byte)action} is not a policy action (0-7).");
        var (sf, st) = RuleText.ParseRange(source, "source");
        var (df, dt) = RuleText.ParseRange(destination, "destination");
        var (pf, pt) = RuleText.ParsePorts(port);
        byte proto = RuleText.ParseProtocol(protocol);
        if (proto is 1 or 58 && (pf, pt) != (0, ushort.MaxValue))
            throw new ArgumentException($"{RuleText.ProtocolName(proto)} has no ports (the datapath matches ICMP sessions with port 0), so a rule for {RuleText.ProtocolName(proto)} port '{port}' would never match: leave -Port out.");
        bool sourceV6 = sf.AddressFamily == AddressFamily.InterNetworkV6, destinationV6 = df.AddressFamily == AddressFamily.InterNetworkV6;
        if (sourceV6 != destinationV6)
        {
            // any on the IPv4 side stands for every IPv6 address; a specific IPv4 address cannot pair with IPv6
            if (!RuleText.IsAny(sourceV6 ? df : sf, sourceV6 ? dt : st))
                throw new ArgumentException($"The source '{source}' and the destination '{destination}' are of different address families: a rule is all IPv4 or all IPv6 (write two rules, or any on one side).");
            if (sourceV6) (df, dt) = RuleText.AnyIPv6; else (sf, st) = RuleText.AnyIPv6;
        }
        bool v6 = sourceV6 || destinationV6;
        if (v6 && proto == 1)
            throw new ArgumentException("ICMP (1) is IPv4's: for IPv6 addresses write -Protocol ICMPv6 (58), which ping6 uses.");
        if (!v6 && proto == 58 && !(RuleText.IsAny(sf, st) && RuleText.IsAny(df, dt)))
            throw new ArgumentException("ICMPv6 (58) is IPv6's: for IPv4 addresses write -Protocol ICMP (1).");
        return new DpRule
        {
            Mac = mac, Id = id, SourceFrom = sf, SourceTo = st, DestinationFrom = df, DestinationTo = dt, PortFrom = pf, PortTo = pt,
            Protocol = proto, Action = action, Direction = direction,
        };
    }

    /// <summary>The rule as the protocol carries it (a rule goes one way: Ingress or Egress).</summary>
    public PolicyRule ToWire()
    {
        if (Direction is not (DpDirection.Ingress or DpDirection.Egress)) throw new ArgumentException($"Rule {Id} has direction {Direction}: a rule is either Ingress or Egress.");
        IPAddress[] all = [SourceFrom, SourceTo, DestinationFrom, DestinationTo];
        bool ingress = Direction == DpDirection.Ingress;
        if (all.All(a => a.AddressFamily == AddressFamily.InterNetwork))
            return new PolicyRule(Id, RuleText.ToUInt32(SourceFrom), RuleText.ToUInt32(SourceTo), RuleText.ToUInt32(DestinationFrom), RuleText.ToUInt32(DestinationTo),
                PortFrom, PortTo, Protocol, Action, ingress);
        // IPv6 (nvr-dp's extension): a side that is IPv4 any stands for every IPv6 address
        var (sf, st) = Side(SourceFrom, SourceTo);
        var (df, dt) = Side(DestinationFrom, DestinationTo);
        return PolicyRule.ForIPv6(Id, sf, st, df, dt, PortFrom, PortTo, Protocol, Action, ingress);

        (UInt128, UInt128) Side(IPAddress from, IPAddress to)
        {
            if (from.AddressFamily == AddressFamily.InterNetworkV6 && to.AddressFamily == AddressFamily.InterNetworkV6) return (RuleText.ToUInt128(from), RuleText.ToUInt128(to));
            if (RuleText.IsAny(from, to)) return (UInt128.Zero, UInt128.MaxValue);
            throw new ArgumentException($"Rule {Id} mixes IPv4 and IPv6 addresses ({Source} -> {Destination}): a rule is all IPv4 or all IPv6.");
        }
    }

    /// <summary>A rule the protocol carried, for the workload <paramref name="mac"/> of the datapath on <paramref name="controlSocket"/>.</summary>
    public static DpRule FromWire(PolicyRule r, string? mac, string? controlSocket) => new()
    {
        ControlSocket = controlSocket, Mac = mac, Id = r.Id,
        SourceFrom = r.IPv6 ? RuleText.FromUInt128(r.Source6From) : RuleText.FromUInt32(r.SourceFrom),
        SourceTo = r.IPv6 ? RuleText.FromUInt128(r.Source6To) : RuleText.FromUInt32(r.SourceTo),
        DestinationFrom = r.IPv6 ? RuleText.FromUInt128(r.Destination6From) : RuleText.FromUInt32(r.DestinationFrom),
        DestinationTo = r.IPv6 ? RuleText.FromUInt128(r.Destination6To) : RuleText.FromUInt32(r.DestinationTo),
        PortFrom = r.PortFrom, PortTo = r.PortTo, Protocol = r.Protocol, Action = r.Action,
        Direction = r.Ingress ? DpDirection.Ingress : DpDirection.Egress,
    };

    /// <inheritdoc/>
    public override string ToString() => $"{Id} {Direction} {ProtocolName} {Source} -> {Destination}:{Port} {Action}";
}

/// <summary>A workload's policy as the datapath holds it (or, Mode None, the lack of one).</summary>
public sealed class DpPolicy
{
    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>The workload's MAC.</summary>
    public string Mac { get; init; } = "";
    /// <summary>The mode the default action stands for (None without a policy).</summary>
    public DpWorkloadMode Mode => ModeOf(HasPolicy ? DefaultAction : null);
    /// <summary>Whether the workload has a policy at all.</summary>
    public bool HasPolicy { get; init; }
    /// <summary>What happens to sessions no rule matches (Open without a policy).</summary>
    public DpPolicyAction DefaultAction { get; init; }
    /// <summary>Which sessions are policed (dir).</summary>
    public DpDirection Direction { get; init; } = DpDirection.Both;
    /// <summary>The policy's version (each change makes a new one; 0 without a policy).</summary>
    public uint Version { get; init; }
    /// <summary>The rules, in the order they are matched (first match wins).</summary>
    public DpRule[] Rules { get; init; } = [];
    /// <summary>Same as <see cref="Mac"/>: lets a policy bind where a workload MAC is expected.</summary>
    public string WorkloadMac => Mac;

    /// <summary>The mode a default action stands for; null (no policy) is None.</summary>
    public static DpWorkloadMode ModeOf(DpPolicyAction? defaultAction) => defaultAction switch
    {
        null => DpWorkloadMode.None,
        DpPolicyAction.Learn => DpWorkloadMode.Discover,
        DpPolicyAction.Violate => DpWorkloadMode.Monitor,
        DpPolicyAction.Deny => DpWorkloadMode.Protect,
        _ => DpWorkloadMode.Custom,
    };

    /// <summary>The default action a mode is sent as (Discover Learn, Monitor Violate, Protect Deny).</summary>
    public static DpPolicyAction DefaultActionOf(DpWorkloadMode mode) => mode switch
    {
        DpWorkloadMode.Discover => DpPolicyAction.Learn,
        DpWorkloadMode.Monitor => DpPolicyAction.Violate,
        DpWorkloadMode.Protect => DpPolicyAction.Deny,
        _ => throw new ArgumentException($"{mode} is not a mode a workload can be switched to: use Discover, Monitor or Protect."),
    };

    /// <inheritdoc/>
    public override string ToString() => $"{Mac} {Mode}";
}

/// <summary>
/// One entry of the datapath's connection table: the sessions of one workload with the same direction, client, server,
/// server port, protocol and verdict (rule id and action), counted together.
/// </summary>
public sealed class DpConnection
{
    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>The workload's MAC.</summary>
    public string Mac { get; init; } = "";
    /// <summary>Ingress: opened towards the workload; Egress: opened by it.</summary>
    public DpDirection Direction { get; init; }
    /// <summary>The side that opened the sessions.</summary>
    public IPAddress Client { get; init; } = IPAddress.Any;
    /// <summary>The side they were opened towards.</summary>
    public IPAddress Server { get; init; } = IPAddress.Any;
    /// <summary>The server's port (0 for ICMP).</summary>
    public ushort ServerPort { get; init; }
    /// <summary>The IP protocol number.</summary>
    public byte Protocol { get; init; }
    /// <summary>The protocol as text: TCP, UDP, ICMP or its number.</summary>
    public string ProtocolName => RuleText.ProtocolName(Protocol);
    /// <summary>The rule that decided (0: the policy's default action, or no policy).</summary>
    public uint RuleId { get; init; }
    /// <summary>The verdict.</summary>
    public DpPolicyAction Action { get; init; }
    /// <summary>Sessions counted in this entry.</summary>
    public long Sessions { get; init; }
    /// <summary>Packets and bytes of those sessions.</summary>
    public long Packets { get; init; }
    /// <summary>See <see cref="Packets"/>.</summary>
    public long Bytes { get; init; }
    /// <summary>Packets withheld because the verdict was Deny.</summary>
    public long DroppedPackets { get; init; }
    /// <summary>When the first and the last packet were seen (UTC).</summary>
    public DateTime FirstSeen { get; init; }
    /// <summary>See <see cref="FirstSeen"/>.</summary>
    public DateTime LastSeen { get; init; }
    /// <summary>The server answered one of its sessions (a learned entry, kept before never-answered ones when the table is full).</summary>
    public bool Answered { get; init; }
    /// <summary>A scan summary: the client opened more new, unanswered connections to the workload than the datapath keeps one by one
    /// within a minute, and the further never-answered ones were folded into this entry (ServerPort 0; <see cref="Attempts"/> counts them).</summary>
    public bool Scan { get; init; }
    /// <summary>Connection attempts folded into this scan summary (0 for other entries).</summary>
    public long Attempts { get; init; }
    /// <summary>Same as <see cref="Mac"/>.</summary>
    public string WorkloadMac => Mac;

    /// <inheritdoc/>
    public override string ToString() => Scan ? $"{Direction} {ProtocolName} {Client} -> {Server} scan ({Attempts} attempts) {Action}"
        : $"{Direction} {ProtocolName} {Client} -> {Server}:{ServerPort} {Action}";
}

/// <summary>The text forms of rule fields, both ways.</summary>
public static class RuleText
{
    private static readonly IPAddress Any = IPAddress.Any, All = IPAddress.Broadcast;

    /// <summary>An IPv4 address as a number (host order).</summary>
    public static uint ToUInt32(IPAddress a) => BinaryPrimitives.ReadUInt32BigEndian(a.GetAddressBytes());

    /// <summary>A number (host order) as an IPv4 address.</summary>
    public static IPAddress FromUInt32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        return new IPAddress(b);
    }

    /// <summary>An IPv6 address as a 128-bit number.</summary>
    public static UInt128 ToUInt128(IPAddress a) => BinaryPrimitives.ReadUInt128BigEndian(a.GetAddressBytes());

    /// <summary>A 128-bit number as an IPv6 address.</summary>
    public static IPAddress FromUInt128(UInt128 v)
    {
        var b = new byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, v);
        return new IPAddress(b);
    }

    /// <summary>Every IPv6 address, :: to ffff:...:ffff.</summary>
    public static (IPAddress From, IPAddress To) AnyIPv6 => (IPAddress.IPv6Any, FromUInt128(UInt128.MaxValue));

    /// <summary>Whether the range is every address of its family.</summary>
    public static bool IsAny(IPAddress from, IPAddress to) => from.AddressFamily == to.AddressFamily && from.AddressFamily switch
    {
        AddressFamily.InterNetwork => ToUInt32(from) == 0 && ToUInt32(to) == uint.MaxValue,
        AddressFamily.InterNetworkV6 => ToUInt128(from) == UInt128.Zero && ToUInt128(to) == UInt128.MaxValue,
        _ => false,
    };

    // an address of either family as a number, with its width in bits
    private static (UInt128 Value, int Bits) Number(IPAddress a)
        => a.AddressFamily == AddressFamily.InterNetworkV6 ? (ToUInt128(a), 128) : (ToUInt32(a), 32);

    private static IPAddress FromNumber(UInt128 v, int bits) => bits == 128 ? FromUInt128(v) : FromUInt32((uint)v);

    /// <summary>any, an address, a CIDR when the range is one, else FIRST-LAST (IPv4 or IPv6).</summary>
    public static string Range(IPAddress from, IPAddress to)
    {
        if (from.AddressFamily != to.AddressFamily || from.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)) return $"{from}-{to}";
        if (IsAny(from, to)) return "any";
        var (f, bits) = Number(from);
        var (t, _) = Number(to);
        if (f == t) return from.ToString();
        UInt128 span = t - f;
        // a CIDR: the range is 2^n addresses long and starts on a multiple of its length
        if (f <= t && ((span + 1) & span) == 0 && (f & span) == 0)
            return $"{from}/{bits - (int)UInt128.PopCount(span)}";
        return $"{from}-{to}";
    }

    /// <summary>Parses an address range: an IPv4 or IPv6 address, NETWORK/PREFIX, FIRST-LAST, or any (*; also empty; IPv4 0.0.0.0-255.255.255.255).</summary>
    public static (IPAddress From, IPAddress To) ParseRange(string? text, string what)
    {
        var s = (text ?? "").Trim();
        if (s.Length == 0 || s == "*" || s.Equals("any", StringComparison.OrdinalIgnoreCase)) return (Any, All);
        int dash = s.IndexOf('-');
        if (dash >= 0)
        {
            var from = Address(s[..dash], text, what);
            var to = Address(s[(dash + 1)..], text, what);
            if (from.AddressFamily != to.AddressFamily)
                throw new ArgumentException($"The {what} range '{text}' mixes IPv4 and IPv6: write FIRST-LAST with two addresses of one family.");
            if (Number(to).Value < Number(from).Value)
                throw new ArgumentException($"The {what} range '{text}' ends before it starts: write FIRST-LAST with FIRST <= LAST, e.g. 10.10.10.1-10.10.10.9 or fd00::1-fd00::9.");
            return (from, to);
        }
        int slash = s.IndexOf('/');
        if (slash < 0) { var a = Address(s, text, what); return (a, a); }
        var network = Address(s[..slash], text, what);
        var (n, bits) = Number(network);
        if (!int.TryParse(s[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int prefix) || prefix > bits)
            throw new ArgumentException($"The {what} '{text}' has an invalid prefix length: it must be a whole number from 0 to {bits}.");
        UInt128 width = bits == 128 ? UInt128.MaxValue : uint.MaxValue;
        UInt128 host = prefix == bits ? UInt128.Zero : width >> prefix;
        if ((n & host) != 0)
            throw new ArgumentException($"The {what} '{text}' is not a network address: did you mean {FromNumber(n & ~host & width, bits)}/{prefix} (the whole subnet) or {network} (the one address)?");
        return (network, FromNumber(n | host, bits));
    }

    private static IPAddress Address(string part, string? text, string what)
    {
        var p = part.Trim();
        if (p.Contains(':'))
        {
            if (Fields.ParseIPv6(p) is { } v6) return FromUInt128(v6);
            throw new ArgumentException($"The {what} '{text}' is not an IPv6 address, prefix or range: write hex groups such as fd00::1, fd00::/64 or fd00::1-fd00::9 (no zone id, no embedded IPv4).");
        }
        if (!IPAddress.TryParse(p, out var a) || a.AddressFamily != AddressFamily.InterNetwork || p.Count(c => c == '.') != 3)
            throw new ArgumentException($"The {what} '{text}' is not an IPv4 address, CIDR or range: write a.b.c.d, a.b.c.d/PREFIX, FIRST-LAST, an IPv6 address or prefix (fd00::1, fd00::/64) or any.");
        return a;
    }

    /// <summary>Parses ports: N, FIRST-LAST, or any (*; also empty).</summary>
    public static (ushort From, ushort To) ParsePorts(string? text)
    {
        var s = (text ?? "").Trim();
        if (s.Length == 0 || s == "*" || s.Equals("any", StringComparison.OrdinalIgnoreCase)) return (0, ushort.MaxValue);
        int dash = s.IndexOf('-');
        ushort from = PortNumber(dash < 0 ? s : s[..dash], text);
        ushort to = dash < 0 ? from : PortNumber(s[(dash + 1)..], text);
        if (to < from) throw new ArgumentException($"The port range '{text}' ends before it starts: write FIRST-LAST with FIRST <= LAST, e.g. 8000-8100.");
        return (from, to);
    }

    private static ushort PortNumber(string part, string? text)
        => ushort.TryParse(part.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p
            : throw new ArgumentException($"The port '{text}' is not a port or port range: write a number from 0 to 65535, FIRST-LAST (e.g. 8000-8100) or any.");

    /// <summary>Parses a protocol: Any, TCP, UDP, ICMP, ICMPv6 (any case) or a number 0-255.</summary>
    public static byte ParseProtocol(string? text)
    {
        var s = (text ?? "").Trim();
        switch (s.ToUpperInvariant())
        {
            case "" or "ANY" or "*": return 0;
            case "TCP": return 6;
            case "UDP": return 17;
            case "ICMP": return 1;
            case "ICMPV6": return 58;
        }
        return byte.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n
            : throw new ArgumentException($"'{text}' is not a protocol: write Any, TCP, UDP, ICMP, ICMPv6 or a protocol number from 0 to 255.");
    }

    /// <summary>Any, TCP, UDP, ICMP, or the number.</summary>
    public static string ProtocolName(byte protocol) => protocol switch
    {
        0 => "Any", 6 => "TCP", 17 => "UDP", 1 => "ICMP", 58 => "ICMPv6",
        _ => protocol.ToString(CultureInfo.InvariantCulture),
    };
}
