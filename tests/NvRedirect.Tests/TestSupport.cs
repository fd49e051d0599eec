using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using NvRedirect.Core.Namespaces;

namespace NvRedirect.Tests;

/// <summary>
/// A network namespace owned by one test: a unique name (prefix "xut-", so leftovers are easy to spot), created
/// with <see cref="NetworkNamespace.Create"/>, removed in Dispose. Links inside it die with it.
/// </summary>
public sealed class TestNamespace : IDisposable
{
    /// <summary>Every name this suite generates starts with this.</summary>
    public const string Prefix = "xut-";

    /// <summary>The /run/netns name.</summary>
    public string Name { get; }

    private TestNamespace(string name) => Name = name;

    /// <summary>A fresh, unique name (not created).</summary>
    public static string NewName(string purpose) => $"{Prefix}{purpose}-{Guid.NewGuid().ToString("N")[..10]}";

    /// <summary>Creates a namespace named after the test's purpose plus a random suffix.</summary>
    public static TestNamespace Create(string purpose)
    {
        var ns = new TestNamespace(NewName(purpose));
        NetworkNamespace.Create(ns.Name);
        return ns;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (File.Exists(NetworkNamespace.PathOf(Name))) NetworkNamespace.Delete(Name);
    }
}

/// <summary>Runs iproute2 as the independent witness of what the kernel holds.</summary>
public static class Ip
{
    /// <summary>Runs `ip ARGS`; throws with ip's stderr when it fails.</summary>
    public static string Run(params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start ip");
        var stderrTask = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        var stderr = stderrTask.Result;
        if (p.ExitCode != 0) throw new InvalidOperationException($"ip {string.Join(' ', args)} failed ({p.ExitCode}): {stderr}");
        return stdout;
    }

    /// <summary>Runs `ip -j ARGS` and parses the JSON array it prints.</summary>
    public static JsonElement[] Json(params string[] args)
    {
        var text = Run(["-j", .. args]);
        using var doc = JsonDocument.Parse(string.IsNullOrWhiteSpace(text) ? "[]" : text);
        return doc.RootElement.EnumerateArray().Select(e => e.Clone()).ToArray();
    }

    /// <summary>The names `ip netns list` prints.</summary>
    public static string[] NamespaceNames()
        => Run("netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).ToArray();

    /// <summary>A string property, or null when absent.</summary>
    public static string? Str(this JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.GetString() : null;

    /// <summary>The flags array as strings.</summary>
    public static string[] Flags(this JsonElement e) => e.GetProperty("flags").EnumerateArray().Select(f => f.GetString()!).ToArray();
}

/// <summary>Bounded polling for asynchronous kernel work (linkwatch, namespace teardown). No timing is asserted.</summary>
public static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> every 50 ms for at most <paramref name="seconds"/>; returns whether it became true.</summary>
    public static bool True(Func<bool> condition, double seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            if (condition()) return true;
            if (DateTime.UtcNow > deadline) return false;
            Thread.Sleep(50);
        }
    }
}
