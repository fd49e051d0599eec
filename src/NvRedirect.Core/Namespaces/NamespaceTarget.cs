using System;
using System.Diagnostics;
using System.IO;
using NvRedirect.Core.Interop;

namespace NvRedirect.Core.Namespaces;

/// <summary>
/// A network namespace named the ways a user holds one: a name under /run/netns, a path to an nsfs file (a bind
/// mount, /proc/PID/ns/net), a process id, or a podman/docker container (its main process). Resolved once to a
/// path; <see cref="RunIn{T}"/> then opens sockets there on a dedicated thread (the root namespace: on the caller's).
/// Kept small and self-contained so the interception cmdlets' container targets can be unified with it later.
/// </summary>
public sealed class NamespaceTarget
{
    /// <summary>How the user named it, for results and messages: "" (root), "NAME", "pid 42", "container web", a path.</summary>
    public string Display { get; }

    /// <summary>The nsfs path to enter, or null for the namespace of this process (the root namespace of the module).</summary>
    public string? Path { get; }

    private NamespaceTarget(string display, string? path) { Display = display; Path = path; }

    /// <summary>The namespace of this process.</summary>
    public static NamespaceTarget Root { get; } = new("", null);

    /// <summary>A namespace under /run/netns ("" or null: the root namespace).</summary>
    public static NamespaceTarget FromName(string? name)
    {
        if (string.IsNullOrEmpty(name)) return Root;
        NetworkNamespace.ThrowIfInvalid(name);
        if (!NetworkNamespace.Exists(name))
            throw new NamespaceTargetNotFoundException(NetworkNamespace.MissingMessage(name) + ".");
        return new(name, NetworkNamespace.PathOf(name));
    }

    /// <summary>An nsfs file: /run/netns/NAME, /proc/PID/ns/net, /var/run/docker/netns/ID or a bind mount of one.</summary>
    public static NamespaceTarget FromPath(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("The namespace path is empty; give an nsfs file such as /run/netns/NAME or /proc/PID/ns/net.", nameof(path));
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full)) throw new NamespaceTargetNotFoundException($"There is no namespace file '{full}'; give an nsfs file such as /run/netns/NAME or /proc/PID/ns/net.");
        if (!NetworkNamespace.IsNamespaceFile(full))
            throw new ArgumentException($"'{full}' is not a network namespace (not an nsfs file); give /run/netns/NAME, /proc/PID/ns/net or a bind mount of one.", nameof(path));
        return new(full, full);
    }

    /// <summary>The network namespace of a running process.</summary>
    public static NamespaceTarget FromProcess(int processId)
    {
        if (processId <= 0) throw new ArgumentException($"Process id {processId} is not valid; give the id of a running process (Get-Process).", nameof(processId));
        var path = $"/proc/{processId}/ns/net";
        if (!File.Exists(path)) throw new NamespaceTargetNotFoundException($"There is no process {processId} (no {path}); give the id of a running process.");
        return new($"pid {processId}", path);
    }

    /// <summary>The network namespace of a running podman or docker container (by name or id): its main process's.</summary>
    public static NamespaceTarget FromContainer(string container)
    {
        if (string.IsNullOrWhiteSpace(container) || container.StartsWith('-'))
            throw new ArgumentException($"'{container}' is not a container name or id.", nameof(container));
        var errors = new System.Collections.Generic.List<string>();
        foreach (var engine in new[] { "podman", "docker" })
        {
            var program = FindProgram(engine);
            if (program == null) continue;
            var (exit, output, error) = Run(program, "inspect", "--format", "{{.State.Pid}}", container);
            if (exit != 0) { errors.Add($"{engine} inspect {container}: {error.Trim()}"); continue; }
            if (!int.TryParse(output.Trim(), out int pid))
                throw new InvalidOperationException($"{engine} inspect {container} gave no process id ('{output.Trim()}').");
            if (pid <= 0) throw new InvalidOperationException($"Container '{container}' is not running ({engine} reports no process); start it first.");
            var target = FromProcess(pid);
            return new($"container {container}", target.Path);
        }
        throw new NamespaceTargetNotFoundException(errors.Count == 0
            ? $"Cannot find container '{container}': neither podman nor docker is installed."
            : $"Cannot find container '{container}': {string.Join("; ", errors)}");
    }

    /// <summary>Runs <paramref name="work"/> in this namespace: on a dedicated thread switched into it, or on the caller's for the root.</summary>
    public T RunIn<T>(Func<T> work) => Path == null ? work() : NamespaceThread.RunIn(Path, work);

    /// <inheritdoc/>
    public override string ToString() => Display.Length == 0 ? "the root namespace" : Display.StartsWith('/') || Display.Contains(' ') ? Display : $"namespace '{Display}'";

    private static string? FindProgram(string name)
    {
        foreach (var dir in new[] { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin" })
        {
            var p = System.IO.Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    private static (int Exit, string Output, string Error) Run(string program, params string[] arguments)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"Cannot start {program}.");
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000)) { p.Kill(true); throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not answer within 30 s."); }
        return (p.ExitCode, output.Result, error.Result);
    }
}

/// <summary>A namespace target (name, path, process, container) that does not exist.</summary>
public sealed class NamespaceTargetNotFoundException(string message) : Exception(message);
