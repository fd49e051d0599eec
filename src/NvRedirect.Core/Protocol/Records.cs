using System.Text.Json;

namespace NvRedirect.Core.Protocol;

/// <summary>
/// One rule of a workload's policy as ctrl_cfg_policy carries it and nvr_get_policy reports it: IPv4 addresses (host
/// order) and ports as inclusive ranges. The session is seen from client to server: Source is the client, Destination
/// the server, the port the server's; <see cref="Ingress"/> says the rule is for sessions towards the workload (the
/// workload is the server). Protocol 0 matches TCP, UDP and ICMP.
/// </summary>
public readonly record struct PolicyRule(
    uint Id, uint SourceFrom, uint SourceTo, uint DestinationFrom, uint DestinationTo,
    ushort PortFrom, ushort PortTo, byte Protocol, DpPolicyAction Action, bool Ingress)
{
    /// <summary>A single address, port and protocol: goes to the daemon's exact-match index.</summary>
    public bool IsExact => SourceFrom == SourceTo && DestinationFrom == DestinationTo && PortFrom == PortTo && Protocol != 0;

    /// <summary>Whether the rule's ranges hold the session.</summary>
    public bool Matches(uint client, uint server, ushort port)
        => client >= SourceFrom && client <= SourceTo && server >= DestinationFrom && server <= DestinationTo
           && port >= PortFrom && port <= PortTo;

    /// <summary>The rule's one writer: every field, in ctrl_cfg_policy's names (so rules read from nvr_get_policy go back unchanged).</summary>
    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteNumber(Key.Id, Id);
        w.WriteString(Key.SourceIp, Fields.FormatIPv4(SourceFrom));
        w.WriteString(Key.SourceIpTo, Fields.FormatIPv4(SourceTo));
        w.WriteString(Key.DestinationIp, Fields.FormatIPv4(DestinationFrom));
        w.WriteString(Key.DestinationIpTo, Fields.FormatIPv4(DestinationTo));
        w.WriteNumber(Key.Port, PortFrom);
        w.WriteNumber(Key.PortTo, PortTo);
        w.WriteNumber(Key.Protocol, Protocol);
        w.WriteNumber(Key.Action, (byte)Action);
        w.WriteBoolean(Key.Ingress, Ingress);
        w.WriteEndObject();
    }

    /// <summary>
    /// The rule's one reader (strict, <see cref="Fields"/>): sipr, dipr and portr default to sip, dip and port; a range
    /// that ends before it starts, an fqdn rule and a mistyped field are refused. NeuVector's application sub-rules
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
        uint sip = Fields.IPv4(o, Key.SourceIp), dip = Fields.IPv4(o, Key.DestinationIp);
        uint sipr = Fields.Has(o, Key.SourceIpTo) ? Fields.IPv4(o, Key.SourceIpTo) : sip;
        uint dipr = Fields.Has(o, Key.DestinationIpTo) ? Fields.IPv4(o, Key.DestinationIpTo) : dip;
        ushort port = (ushort)Fields.UInt(o, Key.Port, ushort.MaxValue);
        ushort portr = (ushort)(Fields.OptionalUInt(o, Key.PortTo, ushort.MaxValue) ?? port);
        byte proto = (byte)Fields.UInt(o, Key.Protocol, byte.MaxValue);
        var action = (DpPolicyAction)Fields.UInt(o, Key.Action, PolicyActions.Max);
        bool ingress = Fields.OptionalBool(o, Key.Ingress) ?? throw new CommandException($"rule {id}: \"{Key.Ingress}\" is missing (true or false)");
        if (sipr < sip) throw new CommandException($"rule {id}: \"{Key.SourceIpTo}\" {Fields.FormatIPv4(sipr)} is below \"{Key.SourceIp}\" {Fields.FormatIPv4(sip)}");
        if (dipr < dip) throw new CommandException($"rule {id}: \"{Key.DestinationIpTo}\" {Fields.FormatIPv4(dipr)} is below \"{Key.DestinationIp}\" {Fields.FormatIPv4(dip)}");
        if (portr < port) throw new CommandException($"rule {id}: \"{Key.PortTo}\" {portr} is below \"{Key.Port}\" {port}");
        return new PolicyRule(id, sip, sipr, dip, dipr, port, portr, proto, action, ingress);
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
