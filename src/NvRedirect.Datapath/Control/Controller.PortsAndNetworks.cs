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

    // The global switches: DisableNetPolicy and EnableIcmpPolicy steer policy (a change republishes the settings); the
    // others are kept and reported.
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
            case Command.StrictGroupMode: s.StrictGroupMode = m.On; break;
        }
        r.Notes.Add($"{m.Command}: {m.Field} {(m.On ? "on" : "off")}");
    }

    private static void SetDebug(SetDebugRequest m, Request r)
    {
        r.State.DebugCategories = m.Categories;
        r.Notes.Add($"{Command.SetDebug}: {(m.Categories.Length == 0 ? "none" : string.Join(", ", m.Categories))}");
    }
}
