using System;
using System.Diagnostics;
using System.IO;
using NvRedirect.Core.Interop;

namespace NvRedirect.Core.Namespaces;

/// <summary>
/// A network namespace named the ways a user holds one: a name under /run/netns, a path to an nsfs file (a bind
/// mount, /proc/PID/ns/net), a process id, or a podman/docker container (its main process). Resolved once to a
/// path; <see cref="RunIn{T}"/> then opens sockets there on a dedicated thread (the root namespace: on the caller's).
/// Paths, processes and containers are resolved by <see cref="WorkloadTarget"/>, the interception cmdlets' resolver.
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
        return new(full, WorkloadTarget.FromNetnsPath(full).NetnsPath);
    }

    /// <summary>The network namespace of a running process.</summary>
    public static NamespaceTarget FromProcess(int processId) => new($"pid {processId}", WorkloadTarget.FromProcessId(processId).NetnsPath);

    /// <summary>The network namespace of a running podman or docker container (by name or id): its main process's (<see cref="WorkloadTarget.FromContainer"/>).</summary>
    public static NamespaceTarget FromContainer(string container)
    {
        var t = WorkloadTarget.FromContainer(container);
        return new($"container {t.ContainerName ?? container}", t.NetnsPath);
    }

    /// <summary>Runs <paramref name="work"/> in this namespace: on a dedicated thread switched into it, or on the caller's for the root.</summary>
    public T RunIn<T>(Func<T> work) => Path == null ? work() : NamespaceThread.RunIn(Path, work);

    /// <inheritdoc/>
    public override string ToString() => Display.Length == 0 ? "the root namespace" : Display.StartsWith('/') || Display.Contains(' ') ? Display : $"namespace '{Display}'";
}

/// <summary>A namespace target (name, path, process, container) that does not exist.</summary>
public sealed class NamespaceTargetNotFoundException(string message) : Exception(message);
