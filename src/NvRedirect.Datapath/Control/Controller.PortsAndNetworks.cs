using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath.Engine;

namespace NvRedirect.Datapath.Control;

// The service port, the internal networks, the global switches and debug categories (see Controller.cs for how a
// datagram is applied), and the assembler of lists sent in chunks.
internal sealed partial class Controller
{
    private void AddServicePort(AddServicePortRequest m, Request r)
    {
        string iface = m.Interface;
        if (r.State.ServicePort == iface) { r.Notes.Add($"{Command.AddServicePort}: already serving {iface}"); return; }
        if (r.State.ServicePort != null)
            throw new CommandException($"already serving {r.State.ServicePort}; send {Command.DeleteServicePort} for it first");
        IServicePort port;
        try { port = _openPort(iface, m.JumboFrame); }
        catch (Exception e) { throw new CommandException($"cannot open service port {iface}: {e.Message}"); }
        r.Prepared.Add(port);
        r.State.ServicePort = iface;
        r.State.ServicePortJumbo = m.JumboFrame;
        r.Notes.Add($"{Command.AddServicePort}: serving {iface}{(m.JumboFrame ? " (jumbo frames)" : "")}");
        r.Effects.Add(_ => _datapath.AttachPort(port));
    }

    private void DeleteServicePort(DeleteServicePortRequest m, Request r)
    {
        string iface = m.Interface;
        if (r.State.ServicePort == null) { r.Notes.Add($"{Command.DeleteServicePort}: no service port open, {iface} ignored"); return; }
        if (r.State.ServicePort != iface) throw new CommandException($"the service port is {r.State.ServicePort}, not {iface}");
        r.State.ServicePort = null;
        r.Notes.Add($"{Command.DeleteServicePort}: closed {iface}");
        r.Effects.Add(_ => _datapath.DetachPort());
    }

    private static void ConfigureInternalNet(InternalNetRequest m, Request r)
    {
        var s = r.State;
        foreach (var n in m.Subnets.Where(n => (n.Ip & n.Mask) != n.Ip))
            r.Notes.Add($"{Command.ConfigureInternalNet}: note: {Fields.FormatIPv4(n.Ip)} is not the network address of mask {Fields.FormatIPv4(n.Mask)}; (ip & mask) == ip never holds for it");
        var pending = s.PendingInternalNets;
        if (Assemble(Command.ConfigureInternalNet, m.Flag, [.. m.Subnets], ref pending, r) is not { } list) { s.PendingInternalNets = pending; return; }
        s.PendingInternalNets = null;
        s.InternalNets = list.ToArray();
        s.SettingsChanged = true;
        r.Notes.Add($"{Command.ConfigureInternalNet}: {s.InternalNets.Length} internal subnets in force");
    }

    // A list sent in chunks (ChunkFlags: Start, End, both, neither in the middle): a START begins it (dropping an
    // unfinished one), a continuation without a START is refused, and at END the whole list is returned (else null).
    private static List<T>? Assemble<T>(string command, ChunkFlags flag, List<T> chunk, ref List<T>? pending, Request r)
    {
        if ((flag & ChunkFlags.Start) != 0)
        {
            if (pending != null) r.Notes.Add($"{command}: a new START drops {pending.Count} pending entries of an unfinished list");
            pending = chunk;
        }
        else if (pending == null) throw new CommandException($"flag {(uint)flag} continues a list, but no list was started (flag 1)");
        else pending.AddRange(chunk);
        if ((flag & ChunkFlags.End) != 0) return pending;
        r.Notes.Add($"{command}: {chunk.Count} entries pending ({pending.Count} so far)");
        return null;
    }

    // The global switches: DisableNetPolicy, EnableIcmpPolicy, StrictGroupMode and nvr-dp's Strict steer policy (a change
    // republishes the settings, so open sessions are decided again); the others are kept and reported.
    private static void Toggle(ToggleRequest m, Request r)
    {
        var s = r.State;
        switch (m.Command)
        {
            case Command.SystemConfig: s.XffEnabled = m.On; break;
            case Command.DisableNetPolicy:
                s.SettingsChanged |= m.On != s.DisableNetPolicy;
                s.DisableNetPolicy = m.On;
                break;
            case Command.DetectUnmanagedWorkloads: s.DetectUnmanagedWorkloads = m.On; break;
            case Command.EnableIcmpPolicy:
                s.SettingsChanged |= m.On != s.EnableIcmpPolicy;
                s.EnableIcmpPolicy = m.On;
                break;
            case Command.StrictGroupMode:
                s.SettingsChanged |= m.On != s.StrictGroupMode;
                s.StrictGroupMode = m.On;
                break;
            case Command.ConfigureStrict:
                s.SettingsChanged |= m.On != s.Strict;
                s.Strict = m.On;
                break;
        }
        r.Notes.Add($"{m.Command}: {m.Field} {(m.On ? "on" : "off")}");
    }

    private static void SetDebug(SetDebugRequest m, Request r)
    {
        r.State.DebugCategories = m.Categories;
        r.Notes.Add($"{Command.SetDebug}: {(m.Categories.Length == 0 ? "none" : string.Join(", ", m.Categories))}");
    }

    // ctrl_add_tap_port / ctrl_del_tap_port: NeuVector sniffs the container's own interface through them in Discover and
    // Monitor. nvr-dp sees those workloads' traffic through the service port (tc mirrors it there), so it opens nothing;
    // it keeps the ports for nvr_get_state and counts the command as without effect.
    private static void TapPort(TapPortRequest m, Request r)
    {
        var ports = r.State.TapPorts;
        var key = (m.NetNs, m.Interface);
        if (m.Add)
        {
            if (r.State.FindByAnyMac(m.EndpointMac) == null)
                r.Notes.Add($"{m.Command}: note: epmac {Fields.FormatMac(m.EndpointMac)} is not a registered workload (yet)");
            ports[key] = m.EndpointMac; // a re-add updates the MAC, as in NeuVector
        }
        else if (!ports.Remove(key)) r.Notes.Add($"{m.Command}: no tap port {m.Interface} in {m.NetNs}; nothing to do");
        NoEffect(m.Command, $"nvr-dp opens no tap ports ({m.Interface} in {m.NetNs}{(m.Add ? $", workload {Fields.FormatMac(m.EndpointMac)}" : "")})", r);
    }

    // ctrl_add_port_pair / ctrl_del_port_pair: NeuVector's "no tc" wiring (dp bridges vex and vin itself). nvr-dp works
    // with tc steering only. A quarantine asked this way is not enforced: said in the log.
    private static void PortPair(PortPairRequest m, Request r)
    {
        if (m.Quarantine == true)
            r.Notes.Add($"{m.Command}: warning: quarantine of {Fields.FormatMac(m.EndpointMac)} asked through a port pair is NOT enforced by nvr-dp (quarantine through tc: remove the pair's filters)");
        NoEffect(m.Command, $"nvr-dp bridges no port pairs ({m.VexInterface} / {m.VinInterface})", r);
    }

    // ctrl_cfg_specip_net: typed special networks (host, service, tunnel, device, unmanaged-workload, external IPs), in
    // chunks like ctrl_cfg_internal_net. Kept and reported; no policy decision uses them yet (docs/datapath.md).
    private static void ConfigureSpecialIpNet(SpecialIpNetRequest m, Request r)
    {
        var s = r.State;
        foreach (var n in m.Subnets.Where(n => SpecialIpType.Canonical(n.IpType) == "none"))
            r.Notes.Add($"{Command.ConfigureSpecialIpNet}: note: iptype \"{n.IpType}\" of {Fields.FormatIPv4(n.Ip)} is none of {string.Join(", ", SpecialIpType.Names)}; kept as none");
        var pending = s.PendingSpecialNets;
        var chunk = m.Subnets.Select(n => n with { IpType = SpecialIpType.Canonical(n.IpType) }).ToList();
        if (Assemble(Command.ConfigureSpecialIpNet, m.Flag, chunk, ref pending, r) is not { } list) { s.PendingSpecialNets = pending; return; }
        s.PendingSpecialNets = null;
        s.SpecialNets = list.ToArray();
        r.Notes.Add($"{Command.ConfigureSpecialIpNet}: {s.SpecialNets.Length} special networks kept (reported; not used in policy decisions)");
    }
}
