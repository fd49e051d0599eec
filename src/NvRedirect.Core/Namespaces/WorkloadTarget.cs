using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.Json;
namespace NvRedirect.Core.Namespaces;

/// <summary>
/// A workload's network namespace as users name it: a process id, a namespace path, or a podman/docker container.
/// The one resolver of the module (interception targets, and <see cref="NamespaceTarget"/> for probes): every target
/// ends as a namespace path whose nsfs inode is its identity (a pid may be reused, an inode of a live namespace may not).
/// Errors: a target that does not exist is a <see cref="NamespaceTargetNotFoundException"/>; one that cannot be a
/// target (a pid of 0, a relative path, a file that is no network namespace) an <see cref="ArgumentException"/>.
/// </summary>
/// <param name="NetnsPath">The file to open: /proc/PID/ns/net, /run/netns/NAME, /run/docker/netns/ID or another bind mount.</param>
/// <param name="NetnsInode">The namespace's nsfs inode when it was resolved.</param>
/// <param name="ProcessId">A process in the namespace, when known.</param>
/// <param name="Runtime">podman or docker when the target was a container, else null.</param>
/// <param name="ContainerName">The container's name, when known.</param>
/// <param name="ContainerId">The container's id, when known.</param>
public sealed record WorkloadTarget(string NetnsPath, ulong NetnsInode, int? ProcessId, string? Runtime, string? ContainerName, string? ContainerId)
{
    /// <summary>The runtimes asked for a container name, in this order.</summary>
    public static readonly string[] Runtimes = ["podman", "docker"];

    /// <summary>How the target reads in messages: the container, else the process, else the path.</summary>
    public string Display => ContainerName != null ? $"{Runtime} container '{ContainerName}'"
        : ProcessId is int pid ? $"process {pid}" : $"network namespace {NetnsPath}";

    /// <summary>The namespace of a running process.</summary>
    public static WorkloadTarget FromProcessId(int pid)
    {
        if (pid <= 0) throw new ArgumentException($"{pid} is not a process id: give the pid of any process of the container (podman inspect --format '{{{{.State.Pid}}}}' NAME).", "ProcessId");
        var path = $"/proc/{pid}/ns/net";
        var inode = NetworkNamespace.NsfsInode(path)
            ?? throw new NamespaceTargetNotFoundException($"There is no process {pid} (or its network namespace cannot be read): give the pid of a running process of the container.");
        return new WorkloadTarget(path, inode, pid, null, null, null);
    }

    /// <summary>A namespace pinned at a path (nsfs file); the pid of a process in it is looked up in /proc.</summary>
    public static WorkloadTarget FromNetnsPath(string path)
    {
        if (string.IsNullOrEmpty(path) || path[0] != '/')
            throw new ArgumentException($"'{path}' is not an absolute path: give /proc/PID/ns/net, /run/netns/NAME, /run/docker/netns/ID or another bind mount of a network namespace.", "NetnsPath");
        if (!File.Exists(path))
            throw new NamespaceTargetNotFoundException($"There is no namespace file '{path}': give /proc/PID/ns/net of a running process, a /run/netns entry or another bind mount of one.");
        var inode = NetworkNamespace.NsfsInode(path)
            ?? throw new ArgumentException($"'{path}' is not a network namespace (not an nsfs file): give /proc/PID/ns/net of a running process, a /run/netns entry or another bind mount of one.", "NetnsPath");
        return new WorkloadTarget(path, inode, FindProcess(inode), null, null, null);
    }

    /// <summary>
    /// A container by name or id, through the first runtime that knows it: `podman inspect --type container` when podman
    /// is installed, then `docker inspect --type container`. The pid comes from .State.Pid, the name from .Name, the id
    /// from .Id; the namespace is that pid's /proc/PID/ns/net.
    /// </summary>
    public static WorkloadTarget FromContainer(string nameOrId)
    {
        if (string.IsNullOrWhiteSpace(nameOrId) || nameOrId.StartsWith('-'))
            throw new ArgumentException($"'{nameOrId}' is not a container name or id.", "Container");
        var refusals = new List<string>();
        foreach (var runtime in Runtimes)
        {
            var exe = FindExecutable(runtime);
            if (exe == null) { refusals.Add($"{runtime} is not installed"); continue; }
            var (code, stdout, stderr) = Run(exe, ["inspect", "--type", "container", "--", nameOrId]);
            if (code != 0) { refusals.Add($"{runtime}: {FirstLine(stderr)}"); continue; }
            using var doc = JsonDocument.Parse(stdout);
            var c = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement[0] : doc.RootElement;
            string id = c.TryGetProperty("Id", out var i) ? i.GetString() ?? "" : "";
            string name = (c.TryGetProperty("Name", out var n) ? n.GetString() ?? "" : "").TrimStart('/');
            int pid = c.TryGetProperty("State", out var s) && s.TryGetProperty("Pid", out var p) ? p.GetInt32() : 0;
            if (pid <= 0)
                throw new ArgumentException($"{runtime} container '{name}' is not running (its State.Pid is {pid}): start it first.", "Container");
            var t = FromProcessId(pid);
            return t with { Runtime = runtime, ContainerName = name, ContainerId = id };
        }
        throw new NamespaceTargetNotFoundException($"No container runtime knows a container '{nameOrId}' ({string.Join("; ", refusals)}). Give its name or id as `podman ps` or `docker ps` shows it, or use -ProcessId/-NetnsPath.");
    }

    /// <summary>The running containers' names, as each installed runtime lists them (`ps --format {{.Names}}`), for completion.</summary>
    public static List<(string Runtime, string Name)> RunningContainers()
    {
        var result = new List<(string, string)>();
        foreach (var runtime in Runtimes)
        {
            if (FindExecutable(runtime) is not { } exe) continue;
            var (code, stdout, _) = Run(exe, ["ps", "--format", "{{.Names}}"]);
            if (code != 0) continue;
            foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                foreach (var name in line.Split(',', StringSplitOptions.RemoveEmptyEntries)) result.Add((runtime, name));
        }
        return result;
    }

    /// <summary>A process whose network namespace has this inode (the lowest pid), or null.</summary>
    public static int? FindProcess(ulong inode)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(d => d!.All(char.IsAsciiDigit)).Select(d => int.Parse(d!)).Order())
            if (NetworkNamespace.NsfsInode($"/proc/{dir}/ns/net") == inode) return dir;
        return null;
    }

    /// <summary>Whether the namespace still exists under <see cref="NetnsPath"/> or through <see cref="ProcessId"/>; the path that reaches it, or null.</summary>
    public string? Locate()
    {
        if (NetworkNamespace.NsfsInode(NetnsPath) == NetnsInode) return NetnsPath;
        if (ProcessId is int pid && NetworkNamespace.NsfsInode($"/proc/{pid}/ns/net") == NetnsInode) return $"/proc/{pid}/ns/net";
        return FindProcess(NetnsInode) is int other ? $"/proc/{other}/ns/net" : null;
    }

    // only the system's own folders, never PATH: a root tool does not run whatever podman a user put first in PATH
    private static readonly string[] SystemFolders = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

    private static string? FindExecutable(string name) => SystemFolders.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    private static (int Code, string Stdout, string Stderr) Run(string exe, string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {exe}");
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            return (-1, "", $"{Path.GetFileName(exe)} inspect did not answer within 30 s");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string FirstLine(string text)
    {
        var line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "no message";
        return line.StartsWith("Error: ", StringComparison.Ordinal) ? line[7..] : line;
    }
}
