using System;
using System.Text.Json;

namespace NvRedirect.Core.Protocol;

/// <summary>
/// One rule of a workload's policy as ctrl_cfg_policy carries it and nvr_get_policy reports it: IPv4 addresses (host
/// order) and ports as inclusive ranges. The session is seen from client to server: Source is the client, Destination
/// the server, the port the server's; <see cref="Ingress"/> says the rule is for sessions towards the workload (the
/// workload is the server). Protocol 0 matches TCP, UDP and ICMP (ICMPv6 for IPv6 sessions).
/// <para>nvr-dp's IPv6 extension (docs/datapath.md, "IPv6"): a rule whose sip, sipr, dip and dipr are IPv6 text is an
/// IPv6 rule (<see cref="IPv6"/>); its addresses are the 128-bit ones and the 32-bit fields stay 0. IPv4 rules are
/// written and read exactly as NeuVector's; an IPv4 rule that covers every address on both sides matches IPv6 sessions too.</para>
/// </summary>
public readonly record struct PolicyRule(
    uint Id, uint SourceFrom, uint SourceTo, uint DestinationFrom, uint DestinationTo,
    ushort PortFrom, ushort PortTo, byte Protocol, DpPolicyAction Action, bool Ingress)
{
    /// <summary>An IPv6 rule: <see cref="Source6From"/> and its siblings hold the addresses.</summary>
    public bool IPv6 { get; init; }
    /// <summary>An IPv6 rule's client addresses, first to last.</summary>
    public UInt128 Source6From { get; init; }
    /// <summary>See <see cref="Source6From"/>.</summary>
    public UInt128 Source6To { get; init; }
    /// <summary>An IPv6 rule's server addresses, first to last.</summary>
    public UInt128 Destination6From { get; init; }
    /// <summary>See <see cref="Destination6From"/>.</summary>
    public UInt128 Destination6To { get; init; }

    /// <summary>An IPv6 rule.</summary>
    public static PolicyRule ForIPv6(uint id, UInt128 sourceFrom, UInt128 sourceTo, UInt128 destinationFrom, UInt128 destinationTo,
        ushort portFrom, ushort portTo, byte protocol, DpPolicyAction action, bool ingress)
        => new(id, 0, 0, 0, 0, portFrom, portTo, protocol, action, ingress)
        { IPv6 = true, Source6From = sourceFrom, Source6To = sourceTo, Destination6From = destinationFrom, Destination6To = destinationTo };

    /// <summary>An IPv4 rule whose client and server ranges both cover every address: it matches sessions of both families.</summary>
    public bool IsAnyAddress => !IPv6 && SourceFrom == 0 && SourceTo == uint.MaxValue && DestinationFrom == 0 && DestinationTo == uint.MaxValue;

    /// <summary>Whether an IPv6 rule's ranges (or an <see cref="IsAnyAddress"/> rule's) hold the IPv6 session.</summary>
    public bool Matches6(UInt128 client, UInt128 server, ushort port)
        => port >= PortFrom && port <= PortTo
           && (IsAnyAddress || (IPv6 && client >= Source6From && client <= Source6To && server >= Destination6From && server <= Destination6To));

    /// <summary>A single address, port and protocol: goes to the daemon's exact-match index (IPv4 rules only).</summary>
    public bool IsExact => !IPv6 && SourceFrom == SourceTo && DestinationFrom == DestinationTo && PortFrom == PortTo && Protocol != 0;

    /// <summary>Whether the rule's ranges hold the session.</summary>
    public bool Matches(uint client, uint server, ushort port)
        => client >= SourceFrom && client <= SourceTo && server >= DestinationFrom && server <= DestinationTo
           && port >= PortFrom && port <= PortTo;

    /// <summary>The rule's one writer: every field, in ctrl_cfg_policy's names (so rules read from nvr_get_policy go back unchanged).</summary>
    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteNumber(Key.Id, Id);
        if (IPv6)
        {
            w.WriteString(Key.SourceIp, Fields.FormatIPv6(Source6From));
            w.WriteString(Key.SourceIpTo, Fields.FormatIPv6(Source6To));
            w.WriteString(Key.DestinationIp, Fields.FormatIPv6(Destination6From));
            w.WriteString(Key.DestinationIpTo, Fields.FormatIPv6(Destination6To));
        }
        else
        {
            w.WriteString(Key.SourceIp, Fields.FormatIPv4(SourceFrom));
            w.WriteString(Key.SourceIpTo, Fields.FormatIPv4(SourceTo));
            w.WriteString(Key.DestinationIp, Fields.FormatIPv4(DestinationFrom));
            w.WriteString(Key.DestinationIpTo, Fields.FormatIPv4(DestinationTo));
        }
        w.WriteNumber(Key.Port, PortFrom);
        w.WriteNumber(Key.PortTo, PortTo);
        w.WriteNumber(Key.Protocol, Protocol);
        w.WriteNumber(Key.Action, (byte)Action);
        w.WriteBoolean(Key.Ingress, Ingress);
        w.WriteEndObject();
    }

    /// <summary>
    /// The rule's one reader (strict, <see cref="Fields"/>): sipr, dipr and portr default to sip, dip and port; a range
    /// that ends before it starts, an fqdn rule, a rule mixing IPv4 and IPv6 addresses and a mistyped field are refused. NeuVector's application sub-rules
    /// ("apps") are checked and counted in <paramref name="applicationSubRules"/> (nvr-dp applies none of them).
    /// </summary>
    public static PolicyRule Read(JsonElement o, out int applicationSubRules)
    {
        o = Fields.Object(o);
        if (Fields.OptionalString(o, Key.Fqdn) is { Length: > 0 }) throw new CommandException("rules with \"fqdn\" are not supported by nvr-dp");
        Fields.OptionalBool(o, Key.VirtualHost);
        uint id = Fields.UInt(o, Key.Id);
        applicationSubRules = 0;
        if (Fields.OptionalArray(o, Key.Apps) is { } apps)
            foreach (var a in apps)
            {
                var app = Fields.Object(a);
                Fields.UInt(app, Key.RuleId);
                Fields.UInt(app, Key.App);
                Fields.UInt(app, Key.Action, PolicyActions.Max);
                applicationSubRules++;
            }
        // addresses of either family, read as 128-bit numbers (IPv4 in the low 32 bits); all four must be of one family
        bool v6 = Fields.Address(o, Key.SourceIp, out uint first4, out UInt128 first6);
        UInt128 sip = v6 ? first6 : first4;
        UInt128 Address(string key)
        {
            bool family = Fields.Address(o, key, out uint a4, out UInt128 a6);
            if (family != v6)
                throw new CommandException($"rule {id}: \"{key}\" is {(family ? "IPv6" : "IPv4")} but \"{Key.SourceIp}\" is {(v6 ? "IPv6" : "IPv4")}: a rule's addresses are all IPv4 or all IPv6");
            return family ? a6 : a4;
        }
        string Text(UInt128 a) => v6 ? Fields.FormatIPv6(a) : Fields.FormatIPv4((uint)a);
        UInt128 dip = Address(Key.DestinationIp);
        UInt128 sipr = Fields.Has(o, Key.SourceIpTo) ? Address(Key.SourceIpTo) : sip;
        UInt128 dipr = Fields.Has(o, Key.DestinationIpTo) ? Address(Key.DestinationIpTo) : dip;
        ushort port = (ushort)Fields.UInt(o, Key.Port, ushort.MaxValue);
        ushort portr = (ushort)(Fields.OptionalUInt(o, Key.PortTo, ushort.MaxValue) ?? port);
        byte proto = (byte)Fields.UInt(o, Key.Protocol, byte.MaxValue);
        var action = (DpPolicyAction)Fields.UInt(o, Key.Action, PolicyActions.Max);
        bool ingress = Fields.OptionalBool(o, Key.Ingress) ?? throw new CommandException($"rule {id}: \"{Key.Ingress}\" is missing (true or false)");
        if (sipr < sip) throw new CommandException($"rule {id}: \"{Key.SourceIpTo}\" {Text(sipr)} is below \"{Key.SourceIp}\" {Text(sip)}");
        if (dipr < dip) throw new CommandException($"rule {id}: \"{Key.DestinationIpTo}\" {Text(dipr)} is below \"{Key.DestinationIp}\" {Text(dip)}");
        if (portr < port) throw new CommandException($"rule {id}: \"{Key.PortTo}\" {portr} is below \"{Key.Port}\" {port}");
        return v6 ? ForIPv6(id, sip, sipr, dip, dipr, port, portr, proto, action, ingress)
            : new PolicyRule(id, (uint)sip, (uint)sipr, (uint)dip, (uint)dipr, port, portr, proto, action, ingress);
    }
}

/// <summary>One controller-sourced listening port (ctrl_cfg_mac "apps"): kept for reporting, not used for forwarding.</summary>
public readonly record struct AppPort(ushort Port, byte IpProtocol, uint Application, uint Server)
{
    /// <summary>Writes {port, ip_proto, app, server}.</summary>
    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteNumber(Key.Port, Port);
        w.WriteNumber(Key.IpProtocol, IpProtocol);
        w.WriteNumber(Key.App, Application);
        w.WriteNumber(Key.Server, Server);
        w.WriteEndObject();
    }

    /// <summary>Reads {port, ip_proto, app, server} (all required).</summary>
    public static AppPort Read(JsonElement e)
    {
        var a = Fields.Object(e);
        return new AppPort((ushort)Fields.UInt(a, Key.Port, ushort.MaxValue), (byte)Fields.UInt(a, Key.IpProtocol, byte.MaxValue),
            Fields.UInt(a, Key.App), Fields.UInt(a, Key.Server));
    }
}

/// <summary>One ctrl_cfg_internal_net entry (host order): NeuVector tests (ip &amp; mask) == Ip, so Ip should be the network address.</summary>
public readonly record struct InternalSubnet(uint Ip, uint Mask, string? IpType)
{
    /// <summary>Writes {ip, mask[, iptype]}.</summary>
    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString(Key.Ip, Fields.FormatIPv4(Ip));
        w.WriteString(Key.Mask, Fields.FormatIPv4(Mask));
        if (IpType != null) w.WriteString(Key.IpType, IpType);
        w.WriteEndObject();
    }

    /// <summary>Reads {ip, mask[, iptype]}.</summary>
    public static InternalSubnet Read(JsonElement e)
    {
        var o = Fields.Object(e);
        return new InternalSubnet(Fields.IPv4(o, Key.Ip), Fields.IPv4(o, Key.Mask), Fields.OptionalString(o, Key.IpType));
    }
}
