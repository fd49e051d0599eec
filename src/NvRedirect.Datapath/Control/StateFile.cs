using System;
using System.Buffers;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Protocol;
using static Tmds.Linux.LibC;

namespace NvRedirect.Datapath.Control;

/// <summary>
/// The committed configuration on disk, so a restarted nvr-dp comes back as it was. The file is JSON:
/// <c>{"nvr_state": 1, "namespace": NS, "datagrams": [D, ...]}</c> where each D is a control datagram written by the
/// protocol's own writers (ctrl_add_mac, ctrl_cfg_mac, ctrl_cfg_policy, ctrl_cfg_internal_net, ctrl_cfg_policy_addr, the
/// switches, ctrl_set_debug, the agent's ctrl_cfg_specip_net, ctrl_cfg_nbe, ctrl_cfg_set_fqdn and ctrl_add_tap_port, and
/// ctrl_add_srvc_port last): restoring is executing them, through the same validation as
/// any request, all of them on one copy of the state, so a file is applied whole or not at all. Next to them,
/// <c>"connections"</c> holds the learned (answered) connection entries in nvr_list_connection's reply layout (the
/// protocol's <see cref="JsonReplies.WriteConnections"/>), at most the connection table's answered share, so a restart
/// does not forget what Discover learned; they are re-learned before the ring opens.
/// It is written atomically (a temp file, fsync, rename, fsync of the directory) after every datagram that changed the
/// configuration, before that datagram's replies are sent. It lives in nvr-dp's private directory (root's, 0700).
/// </summary>
internal sealed unsafe class StateFile(string path, string ns)
{
    /// <summary>The format written and the only one read.</summary>
    public const int FormatVersion = 1;
    private const string FormatKey = "nvr_state", NamespaceKey = "namespace", DatagramsKey = "datagrams", ConnectionsKey = "connections";

    private byte[]? _written;

    /// <summary>The file.</summary>
    public string Path { get; } = path;
    /// <summary>The namespace the daemon serves (a file written for another is foreign).</summary>
    public string Namespace { get; } = ns;
    /// <summary>Writes done, and the time the last one took.</summary>
    public long Writes { get; private set; }
    public TimeSpan LastWriteTime { get; private set; }

    /// <summary>The datagrams that recreate <paramref name="s"/> on an empty datapath.</summary>
    public static List<byte[]> Datagrams(ControlState s)
    {
        var list = new List<byte[]>();
        foreach (var w in s.Workloads.Values.OrderBy(w => w.Mac))
        {
            list.Add(Datagram.Of(new AddMacRequest(w.Interface, w.Mac, w.UnicastAlias, w.BroadcastAlias, 0, w.ProxyMeshMac, w.ProxyMeshIPs.Length == 0 ? null : w.ProxyMeshIPs),
                new ConfigureMacRequest([w.Mac], s.Tap.TryGetValue(w.Mac, out bool tap) && tap, w.Apps.Length == 0 ? null : w.Apps)));
            if (w.Policy is { } p)
                list.Add(Datagram.Of(new PolicyRequest(PolicyCommand.Add, ChunkFlags.Whole, p.DefaultAction, p.Direction, [w.Mac], p.Rules)));
        }
        list.Add(Datagram.Of(new InternalNetRequest(ChunkFlags.Whole, s.InternalNets), new PolicyAddressRequest(ChunkFlags.Whole, s.PolicyAddresses),
            new ToggleRequest(Command.SystemConfig, s.XffEnabled), new ToggleRequest(Command.DisableNetPolicy, s.DisableNetPolicy),
            new ToggleRequest(Command.DetectUnmanagedWorkloads, s.DetectUnmanagedWorkloads), new ToggleRequest(Command.EnableIcmpPolicy, s.EnableIcmpPolicy),
            new ToggleRequest(Command.StrictGroupMode, s.StrictGroupMode), new ToggleRequest(Command.ConfigureStrict, s.Strict), new SetDebugRequest(s.DebugCategories)));
        // the agent's state (kept and reported): special networks, namespace-boundary enforcement (after the workloads it
        // names), names and their addresses, tap ports; each through its own request
        if (s.SpecialNets.Length > 0) list.Add(Datagram.Of(new SpecialIpNetRequest(ChunkFlags.Whole, s.SpecialNets)));
        if (s.NbeMacs.Count > 0) list.Add(Datagram.Of(new NbeRequest([.. s.NbeMacs.Order()], true)));
        foreach (var f in s.Fqdns.Values.OrderBy(f => f.Name, StringComparer.OrdinalIgnoreCase))
            list.Add(Datagram.Of(new SetFqdnRequest(f.Name, f.Addresses, f.VirtualHost ? true : null)));
        foreach (var t in s.TapPorts.OrderBy(t => t.Key.NetNs, StringComparer.Ordinal).ThenBy(t => t.Key.Interface, StringComparer.Ordinal))
            list.Add(Datagram.Of(new TapPortRequest(Command.AddTapPort, t.Key.NetNs, t.Key.Interface, t.Value)));
        if (s.ServicePort is { } port) list.Add(Datagram.Of(new AddServicePortRequest(port, s.ServicePortJumbo))); // last: the ring opens on a complete configuration
        return list;
    }

    /// <summary>The file's bytes for <paramref name="s"/> and the learned connections <paramref name="learned"/> (none when null).</summary>
    public byte[] Serialize(ControlState s, ConnectionList? learned = null)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteNumber(FormatKey, FormatVersion);
            w.WriteString(NamespaceKey, Namespace);
            w.WriteStartArray(DatagramsKey);
            foreach (var d in Datagrams(s)) w.WriteRawValue(d, skipInputValidation: true);
            w.WriteEndArray();
            if (learned is { Connections.Length: > 0 })
            {
                w.WritePropertyName(ConnectionsKey);
                w.WriteRawValue(JsonReplies.WriteConnections(learned), skipInputValidation: true);
            }
            w.WriteEndObject();
        }
        buffer.Write("\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Writes <paramref name="s"/> (and <paramref name="learned"/>) durably unless the file already holds them; true when it wrote.</summary>
    public bool Save(ControlState s, ConnectionList? learned = null)
    {
        var bytes = Serialize(s, learned);
        if (_written != null && bytes.AsSpan().SequenceEqual(_written)) return false;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        WriteAtomically(Path, bytes);
        _written = bytes;
        Writes++;
        LastWriteTime = clock.Elapsed;
        return true;
    }

    /// <summary>Remembers what the file holds (after a restore) so an unchanged configuration is not written again.</summary>
    public void Loaded(ControlState s, ConnectionList? learned = null) => _written = Serialize(s, learned);

    /// <summary>
    /// Reads the file: null when there is none; otherwise its datagrams, or throws <see cref="InvalidDataException"/>
    /// naming what is wrong (not JSON, another format, another namespace, no datagram list).
    /// </summary>
    public List<byte[]>? Read() => Read(out _);

    /// <summary>As <see cref="Read()"/>, and the learned connections saved with the configuration (null: none).</summary>
    public List<byte[]>? Read(out ConnectionList? learned)
    {
        learned = null;
        byte[] bytes;
        try { bytes = File.ReadAllBytes(Path); }
        catch (FileNotFoundException) { return null; }
        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 32 }); }
        catch (JsonException e) { throw new InvalidDataException($"it is not JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(FormatKey, out var format) || format.ValueKind != JsonValueKind.Number)
                throw new InvalidDataException($"it is not an nvr-dp state file (no \"{FormatKey}\")");
            if (!format.TryGetInt32(out int version) || version != FormatVersion)
                throw new InvalidDataException($"it is in format {format.GetRawText()}, this nvr-dp reads format {FormatVersion}");
            if (!root.TryGetProperty(NamespaceKey, out var n) || n.ValueKind != JsonValueKind.String || n.GetString() != Namespace)
                throw new InvalidDataException($"it was written for {(n.ValueKind == JsonValueKind.String ? $"namespace '{n.GetString()}'" : "no namespace")}, this datapath serves {(Namespace.Length == 0 ? "its own namespace" : $"namespace '{Namespace}'")}");
            if (!root.TryGetProperty(DatagramsKey, out var list) || list.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"it has no \"{DatagramsKey}\" list");
            var datagrams = new List<byte[]>();
            foreach (var d in list.EnumerateArray())
            {
                if (d.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"\"{DatagramsKey}\" holds {Fields.Describe(d)}, not a datagram object");
                datagrams.Add(System.Text.Encoding.UTF8.GetBytes(d.GetRawText()));
            }
            if (root.TryGetProperty(ConnectionsKey, out var connections))
            {
                try { learned = JsonReplies.ReadConnections(System.Text.Encoding.UTF8.GetBytes(connections.GetRawText())); }
                catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException or JsonException or ArgumentException)
                {
                    throw new InvalidDataException($"its \"{ConnectionsKey}\" are unreadable ({e.Message})");
                }
            }
            return datagrams;
        }
    }

    /// <summary>Moves a refused file aside (PATH.refused-TIMESTAMP) so it is kept for inspection and not read again; returns the new name.</summary>
    public string SetAside()
    {
        string aside = $"{Path}.refused-{DateTime.UtcNow:yyyyMMddTHHmmssfff}";
        File.Move(Path, aside);
        return aside;
    }

    // temp file next to the target, written and fsync'd, renamed over the target, and the directory fsync'd: after a
    // crash the file is the old one or the new one, never a mix
    private static void WriteAtomically(string path, byte[] bytes)
    {
        string temp = path + ".tmp";
        int raw = Native.open(temp, 1 /* O_WRONLY */ | Native.O_CREAT | 0x200 /* O_TRUNC */ | Native.O_CLOEXEC | 0x20000 /* O_NOFOLLOW */, 0x180);
        if (raw < 0) throw SyscallException.FromLastError($"create {temp}");
        using (var file = new SafeFd(raw))
        {
            fixed (byte* b = bytes)
                for (int done = 0; done < bytes.Length;)
                {
                    long n = write(file.Fd, b + done, bytes.Length - done);
                    if (n < 0 && Native.LastErrno == EINTR) continue;
                    if (n <= 0) throw SyscallException.FromLastError($"write {temp}");
                    done += (int)n;
                }
            if (fsync(file.Fd) < 0) throw SyscallException.FromLastError($"fsync {temp}");
        }
        File.Move(temp, path, overwrite: true);
        int dir = Native.open(System.IO.Path.GetDirectoryName(path) ?? "/", Native.O_RDONLY | Native.O_DIRECTORY | Native.O_CLOEXEC, 0);
        if (dir < 0) throw SyscallException.FromLastError($"open the directory of {path}");
        using var fd = new SafeFd(dir);
        if (fsync(fd.Fd) < 0) throw SyscallException.FromLastError($"fsync the directory of {path}");
    }
}
