using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath.Engine;

namespace NvRedirect.Datapath.Control;

// The workload commands: ctrl_add_mac, ctrl_del_mac, ctrl_cfg_mac (see Controller.cs for how a datagram is applied).
internal sealed partial class Controller
{
    private static void AddMac(AddMacRequest m, Request r)
    {
        ulong mac = m.Mac, ucmac = m.UnicastMac, bcmac = m.BroadcastMac;
        if (mac == 0 || (mac >> 40 & 1) != 0) throw new CommandException($"\"{Key.Mac}\" {Fields.FormatMac(mac)} is not a unicast address");
        if (ucmac != 0 && (ucmac >> 40 & 1) != 0) throw new CommandException($"\"{Key.UnicastMac}\" {Fields.FormatMac(ucmac)} is not a unicast address");
        // NeuVector finds the endpoint from a MAC entry by pointer arithmetic; ucmac == mac corrupts it (dp/ctrl.c)
        if (ucmac == mac) throw new CommandException($"\"{Key.UnicastMac}\" must differ from \"{Key.Mac}\" ({Fields.FormatMac(mac)})");
        if (bcmac != 0 && (bcmac == mac || bcmac == ucmac)) throw new CommandException($"\"{Key.BroadcastMac}\" {Fields.FormatMac(bcmac)} repeats \"{Key.Mac}\" or \"{Key.UnicastMac}\"");

        var s = r.State;
        Workload? existing = null;
        if (m.OldMac != 0) s.Workloads.TryGetValue(m.OldMac, out existing);
        if (existing == null) s.Workloads.TryGetValue(mac, out existing);
        var workload = new Workload(m.Interface, mac, ucmac, bcmac, m.ProxyMac, m.ProxyAddresses ?? [], existing?.Apps ?? [],
            existing?.State ?? new WorkloadState(), existing?.Policy); // a re-add keeps the policy, as NeuVector carries the endpoint's state over
        foreach (var key in workload.Keys)
            foreach (var other in s.Workloads.Values)
                if (other != existing && other.Keys.Contains(key))
                    throw new CommandException($"{Fields.FormatMac(key)} is already registered to workload {Fields.FormatMac(other.Mac)}");

        bool tap = existing != null ? s.Tap[existing.Mac] : true; // NeuVector: a new endpoint starts in tap mode
        if (existing != null) { s.Workloads.Remove(existing.Mac); s.Tap.Remove(existing.Mac); }
        s.Workloads[mac] = workload;
        s.Tap[mac] = tap;
        s.WorkloadsChanged = true;
        if (ucmac != 0 && ucmac >> 16 != FrameProcessor.NeuVPrefix)
            r.Notes.Add($"{Command.AddMac}: note: ucmac {Fields.FormatMac(ucmac)} lacks the NeuV prefix 4e:65:75:56, so no frame will ever match it");
        r.Notes.Add($"{Command.AddMac}: {(existing == null ? "added" : "updated")} {Fields.FormatMac(mac)}"
            + (existing != null && existing.Mac != mac ? $" (was {Fields.FormatMac(existing.Mac)})" : "")
            + $" ucmac {(ucmac == 0 ? "-" : Fields.FormatMac(ucmac))} bcmac {(bcmac == 0 ? "-" : Fields.FormatMac(bcmac))} on {m.Interface}, tap {(tap ? "on" : "off")}");
    }

    private void DeleteMac(DeleteMacRequest m, Request r)
    {
        ulong mac = m.Mac;
        var s = r.State;
        if (!s.Workloads.Remove(mac)) { r.Notes.Add($"{Command.DeleteMac}: {Fields.FormatMac(mac)} is not registered; nothing to do"); return; }
        s.Tap.Remove(mac);
        s.NbeMacs.Remove(mac);
        s.WorkloadsChanged = true;
        r.Notes.Add($"{Command.DeleteMac}: removed {Fields.FormatMac(mac)}");
        r.Effects.Add(_ =>
        {
            var (n, connections) = _datapath.OnPacketThread(() => (_datapath.Sessions.RemoveEndpoint(mac), _datapath.Connections.Clear(mac)));
            if (n > 0 || connections > 0) _log.Info($"{Command.DeleteMac}: removed {n} sessions and {connections} connection entries of {Fields.FormatMac(mac)}");
        });
    }

    private static void ConfigureMac(ConfigureMacRequest m, Request r)
    {
        var s = r.State;
        var changed = new List<string>();
        var unknown = new List<string>();
        foreach (var mac in m.Macs)
        {
            var w = s.FindByAnyMac(mac);
            if (w == null) { unknown.Add(Fields.FormatMac(mac)); continue; } // NeuVector skips unknown MACs
            if (m.Tap is bool t) s.Tap[w.Mac] = t;
            if (m.Apps is { } apps) { s.Workloads[w.Mac] = w.With(apps: apps); s.WorkloadsChanged = true; }
            changed.Add(Fields.FormatMac(w.Mac));
        }
        r.Notes.Add($"{Command.ConfigureMac}: {(changed.Count == 0 ? "no registered MAC" : string.Join(", ", changed))}"
            + (m.Tap is bool v ? $": tap {(v ? "on" : "off")}" : "") + (m.Apps != null ? $", {m.Apps.Length} app ports" : "")
            + (unknown.Count > 0 ? $" (not registered, skipped: {string.Join(", ", unknown)})" : ""));
    }

    // ctrl_cfg_nbe: namespace-boundary enforcement per workload (unknown MACs skipped, an absent "nbe" changes nothing,
    // as in NeuVector). Kept and reported; nvr-dp's decisions do not depend on it (docs/datapath.md).
    private static void ConfigureNbe(NbeRequest m, Request r)
    {
        var s = r.State;
        var changed = new List<string>();
        var unknown = new List<string>();
        foreach (var mac in m.Macs)
        {
            var w = s.FindByAnyMac(mac);
            if (w == null) { unknown.Add(Fields.FormatMac(mac)); continue; }
            if (m.Nbe == true) s.NbeMacs.Add(w.Mac);
            else if (m.Nbe == false) s.NbeMacs.Remove(w.Mac);
            changed.Add(Fields.FormatMac(w.Mac));
        }
        r.Notes.Add($"{Command.ConfigureNbe}: {(changed.Count == 0 ? "no registered MAC" : string.Join(", ", changed))}"
            + (m.Nbe is bool v ? $": nbe {(v ? "on" : "off")} (kept and reported; no decision depends on it here)" : ": nbe unchanged")
            + (unknown.Count > 0 ? $" (not registered, skipped: {string.Join(", ", unknown)})" : ""));
    }
}
