using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Threading;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using Xunit;

// The one fixture family of the xunit suite: the run (its prefix, the root check, the repository's files), a
// namespace per test, one process runner, one polling helper and one reader of the golden captures. Tests that touch
// the kernel are [RootFact] / [RootTheory]; everything they create carries the run's prefix and is removed on dispose,
// and whatever a crashed test left is swept when the run ends.

namespace NvRedirect.Tests;

/// <summary>This run of the suite: the prefix of everything it creates, whether it runs as root, where the repository is.</summary>
public static class TestRun
{
    /// <summary>Every namespace this run creates starts with this: "xut-PID-RAND-", unique to the run and easy to spot.</summary>
    public static readonly string Prefix = $"xut-{Environment.ProcessId}-{Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(2)).ToLowerInvariant()}-";

    /// <summary>Why a test that needs root is skipped without it.</summary>
    public const string NeedsRoot = "needs root: creates network namespaces, links, tc objects and packet sockets";

    /// <summary>Whether the suite runs as root (the one root check every kernel test uses).</summary>
    public static bool IsRoot => Native.geteuid() == 0;

    static TestRun()
    {
        // the guarantee behind every fixture's Dispose: nothing with this run's prefix outlives the run
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Sweep();
    }

    /// <summary>Removes every namespace of this run that is still there; returns their names.</summary>
    public static List<string> Sweep()
    {
        var left = Directory.Exists("/run/netns")
            ? Directory.GetFiles("/run/netns").Select(Path.GetFileName).Where(n => n!.StartsWith(Prefix, StringComparison.Ordinal)).Select(n => n!).ToList()
            : [];
        foreach (var name in left)
            try { NetworkNamespace.Delete(name); } catch (Exception) { /* at exit: nothing left to report to */ }
        return left;
    }

    /// <summary>The worktree root (where NvRedirect.psd1 lives).</summary>
    public static string Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "NvRedirect.psd1"))) return dir.FullName;
            throw new InvalidOperationException("cannot find the repository root (NvRedirect.psd1) above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The built daemon.</summary>
    public static string Daemon => Path.Combine(Root, "bin", "nvr-dp.dll");

    /// <summary>A file of tests/NvRedirect.Tests/Fixtures.</summary>
    public static string Fixture(string name) => Path.Combine(Root, "tests", "NvRedirect.Tests", "Fixtures", name);
}

/// <summary>A fact that needs root (namespaces, links, packet sockets); skipped with the reason otherwise.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    /// <summary>Skips unless <see cref="TestRun.IsRoot"/>.</summary>
    public RootFactAttribute() { if (!TestRun.IsRoot) Skip = TestRun.NeedsRoot; }
}

/// <summary>A theory that needs root; skipped with the reason otherwise.</summary>
public sealed class RootTheoryAttribute : TheoryAttribute
{
    /// <summary>Skips unless <see cref="TestRun.IsRoot"/>.</summary>
    public RootTheoryAttribute() { if (!TestRun.IsRoot) Skip = TestRun.NeedsRoot; }
}

/// <summary>
/// A network namespace owned by one test, named with the run's prefix, the test's purpose and a random suffix, created
/// with <see cref="NetworkNamespace.Create"/> and optionally holding one veth pair (both ends up). Dispose closes the
/// handle (a socket pins its namespace) and removes the namespace; links inside die with it. A failure while it is
/// being set up removes what was made.
/// </summary>
public sealed class TestNamespace : IDisposable
{
    private RouteHandle? _handle;

    /// <summary>The /run/netns name.</summary>
    public string Name { get; }
    /// <summary>The veth pair's ends ("" without a pair).</summary>
    public string A { get; private set; } = "";
    /// <summary>See <see cref="A"/>.</summary>
    public string B { get; private set; } = "";
    /// <summary>ifindex of <see cref="A"/> (0 without a pair).</summary>
    public int IndexA { get; private set; }
    /// <summary>ifindex of <see cref="B"/>.</summary>
    public int IndexB { get; private set; }
    /// <summary>A handle in the namespace, opened on first use and closed on dispose.</summary>
    public RouteHandle Handle => _handle ??= RouteHandle.Open(Name);

    private TestNamespace(string name) => Name = name;

    /// <summary>A fresh, unique name with the run's prefix (not created).</summary>
    public static string NewName(string purpose) => $"{TestRun.Prefix}{purpose}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Creates an empty namespace named after the test's purpose.</summary>
    public static TestNamespace Create(string purpose)
    {
        var ns = new TestNamespace(NewName(purpose));
        NetworkNamespace.Create(ns.Name);
        return ns;
    }

    /// <summary>
    /// Creates a namespace holding the veth pair <paramref name="a"/>/<paramref name="b"/>, both up. With
    /// <paramref name="quiet"/> the pair has IPv6 off (no router solicitations or DAD), so the frames seen are the test's own.
    /// </summary>
    public static TestNamespace WithVeth(string purpose, string a = "va", string b = "vb", bool quiet = false)
    {
        var ns = Create(purpose);
        try
        {
            var h = ns.Handle;
            h.CreateVeth(a, b, ns.Name);
            var la = h.GetLink(a);
            var lb = h.GetLink(b);
            h.SetUp(la, true);
            h.SetUp(lb, true);
            (ns.A, ns.B, ns.IndexA, ns.IndexB) = (a, b, la.Index, lb.Index);
            if (quiet)
                NamespaceThread.RunIn(NetworkNamespace.PathOf(ns.Name), () =>
                {
                    File.WriteAllText($"/proc/sys/net/ipv6/conf/{a}/disable_ipv6", "1");
                    File.WriteAllText($"/proc/sys/net/ipv6/conf/{b}/disable_ipv6", "1");
                    return 0;
                });
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    /// <summary>Sets the MTU of one of its links.</summary>
    public void SetMtu(string link, int mtu) => Handle.SetMtu(Handle.GetLink(link), mtu);

    /// <inheritdoc/>
    public void Dispose()
    {
        _handle?.Dispose();
        _handle = null;
        if (File.Exists(NetworkNamespace.PathOf(Name))) NetworkNamespace.Delete(Name);
    }
}

/// <summary>A process started by <see cref="Tool.Start"/>: its output so far; killed (with its children) on dispose if still running.</summary>
public sealed class ToolProcess : IDisposable
{
    private readonly StringBuilder _output = new();

    /// <summary>The process.</summary>
    public Process Process { get; }

    internal ToolProcess(ProcessStartInfo psi)
    {
        Process = new Process { StartInfo = psi };
        Process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_output) _output.AppendLine(e.Data); };
        Process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_output) _output.AppendLine(e.Data); };
        Process.Start();
        Process.BeginOutputReadLine();
        Process.BeginErrorReadLine();
    }

    /// <summary>Standard output and error so far, interleaved as they came.</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>Waits for the process to end and its output to be read; false when it is still running after <paramref name="timeout"/>.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!Process.WaitForExit(timeout)) return false;
        Process.WaitForExit(); // drains the asynchronous output readers
        return true;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!Process.HasExited) { Process.Kill(entireProcessTree: true); Process.WaitForExit(); }
        Process.Dispose();
    }
}

/// <summary>Runs external programs (ip, tc, strace, python3, the daemon) as independent witnesses: the one process runner.</summary>
public static class Tool
{
    private static ProcessStartInfo Info(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (environment != null) foreach (var (k, v) in environment) psi.Environment[k] = v;
        return psi;
    }

    /// <summary>
    /// Runs a program to its end and returns its exit code and both outputs; a program still running after
    /// <paramref name="timeoutSeconds"/> is killed and the test fails.
    /// </summary>
    public static (int Code, string Out, string Err) Run(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, double timeoutSeconds = 60)
    {
        using var p = Process.Start(Info(program, args, environment)) ?? throw new InvalidOperationException($"could not start {program}");
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            Assert.Fail($"{program} {string.Join(' ', args)} did not finish within {timeoutSeconds} s");
        }
        p.WaitForExit();
        return (p.ExitCode, output.Result, error.Result);
    }

    /// <summary>Runs a program and returns its standard output; the test fails with its standard error when it fails.</summary>
    public static string RunOk(string program, IEnumerable<string> args)
    {
        var list = args.ToList();
        var (code, output, error) = Run(program, list);
        Assert.True(code == 0, $"{program} {string.Join(' ', list)} failed ({code}): {error}");
        return output;
    }

    /// <summary>Starts a long-running program (the daemon) whose output is collected while it runs.</summary>
    public static ToolProcess Start(string program, IEnumerable<string> args) => new(Info(program, args, null));
}

/// <summary>iproute2's `ip` as the independent witness of what the kernel holds.</summary>
public static class Ip
{
    /// <summary>Runs `ip ARGS`; the test fails with ip's stderr when it fails.</summary>
    public static string Run(params string[] args) => Tool.RunOk("ip", args);

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

/// <summary>Bounded polling for asynchronous kernel, thread or process work (linkwatch, teardown, a daemon starting). No timing is asserted.</summary>
public static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> every 20 ms for at most <paramref name="seconds"/>; returns whether it became true.</summary>
    public static bool True(Func<bool> condition, double seconds = 10)
    {
        var deadline = Environment.TickCount64 + (long)(seconds * 1000);
        while (!condition())
        {
            if (Environment.TickCount64 > deadline) return false;
            Thread.Sleep(20);
        }
        return true;
    }
}

/// <summary>One request from an iproute2 capture (format: tests/NvRedirect.Tests/Golden/README.md).</summary>
/// <param name="Number">The n of its "## msg n:" line.</param>
/// <param name="Role">The text after "## role: " (starts with PRIMARY or AUX).</param>
/// <param name="Bytes">The message bytes from its "hex:" line.</param>
public sealed record GoldenMessage(int Number, string Role, byte[] Bytes)
{
    /// <summary>Whether this is the operation's own message.</summary>
    public bool IsPrimary => Role.StartsWith("PRIMARY", StringComparison.Ordinal);
    /// <summary>nlmsg_type.</summary>
    public ushort Type => BitConverter.ToUInt16(Bytes, 4);
    /// <summary>nlmsg_flags.</summary>
    public ushort Flags => BitConverter.ToUInt16(Bytes, 6);
    /// <summary>nlmsg_seq.</summary>
    public uint Seq => GoldenFile.Seq(Bytes);
}

/// <summary>Reads the iproute2 captures copied next to the test assembly (Golden/*.hex): requests, kernel replies, the command line.</summary>
public static partial class GoldenFile
{
    private static string PathOf(string fileName) => Path.Combine(AppContext.BaseDirectory, "Golden", fileName);

    /// <summary>Every request of a capture, in the order iproute2 sent them (each checked against its nlmsg_len).</summary>
    public static List<GoldenMessage> Messages(string fileName)
    {
        var messages = new List<GoldenMessage>();
        int? number = null;
        string? role = null;
        bool reply = false;
        foreach (var raw in File.ReadLines(PathOf(fileName)))
        {
            var line = raw.Trim();
            if (MsgLine().Match(line) is { Success: true } m)
            {
                number = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
                role = null;
                reply = false;
            }
            else if (line.StartsWith("## reply", StringComparison.Ordinal)) reply = true;
            else if (line.StartsWith("## role:", StringComparison.Ordinal))
                role = line["## role:".Length..].Trim();
            else if (line.StartsWith("hex:", StringComparison.Ordinal) && !reply)
            {
                if (number is null || role is null)
                    throw new InvalidDataException($"{fileName}: a hex: line without its ## msg / ## role lines.");
                var bytes = Convert.FromHexString(line["hex:".Length..].Trim());
                if (bytes.Length < 16 || BitConverter.ToUInt32(bytes, 0) != bytes.Length)
                    throw new InvalidDataException($"{fileName} msg {number}: nlmsg_len does not match the {bytes.Length} bytes.");
                messages.Add(new GoldenMessage(number.Value, role, bytes));
                number = null;
                role = null;
            }
        }
        if (messages.Count == 0) throw new InvalidDataException($"{fileName} holds no messages.");
        return messages;
    }

    /// <summary>The bytes of the single message marked "role: PRIMARY".</summary>
    public static byte[] Primary(string fileName)
    {
        var primaries = Messages(fileName).Where(m => m.IsPrimary).ToList();
        if (primaries.Count != 1)
            throw new InvalidDataException($"{fileName} has {primaries.Count} PRIMARY messages; expected exactly one.");
        return primaries[0].Bytes;
    }

    /// <summary>The single message (PRIMARY or AUX) that satisfies <paramref name="match"/>.</summary>
    public static byte[] Single(string fileName, Func<GoldenMessage, bool> match)
        => Messages(fileName).Single(match).Bytes;

    /// <summary>Every kernel message of a *.reply.hex capture, in order (each recvmsg payload split into its messages).</summary>
    public static List<NetlinkMessage> Replies(string fileName)
    {
        var replies = new List<NetlinkMessage>();
        bool reply = false;
        foreach (var raw in File.ReadLines(PathOf(fileName)))
        {
            var line = raw.Trim();
            if (line.StartsWith("## reply", StringComparison.Ordinal)) reply = true;
            else if (line.StartsWith("## msg", StringComparison.Ordinal)) reply = false;
            else if (reply && line.StartsWith("hex:", StringComparison.Ordinal))
                replies.AddRange(NetlinkMessage.Split(Convert.FromHexString(line["hex:".Length..].Trim())));
        }
        return replies;
    }

    /// <summary>The command line a capture was made from (its "# command:" line, without the netns note and exit status).</summary>
    public static string Command(string fileName)
    {
        var line = File.ReadLines(PathOf(fileName)).First(l => l.StartsWith("# command:", StringComparison.Ordinal));
        int start = line.IndexOf("] ", StringComparison.Ordinal) + 2, end = line.LastIndexOf(" (exit", StringComparison.Ordinal);
        return line[start..end];
    }

    /// <summary>nlmsg_seq of a message.</summary>
    public static uint Seq(byte[] message) => BitConverter.ToUInt32(message, 8);

    [GeneratedRegex(@"^## msg (\d+):")]
    private static partial Regex MsgLine();
}

/// <summary>Allocation checks for the per-packet path.</summary>
public static class Allocations
{
    /// <summary>
    /// Runs <paramref name="work"/> up to <paramref name="rounds"/> times and returns the fewest bytes one run
    /// allocated on this thread (0 ends early). The runtime may allocate on the measuring thread while it promotes a
    /// hot loop (tiered compilation, on-stack replacement), once, in whichever round it happens; an allocation per
    /// frame shows in every round (a million frames, at least 24 bytes each), so the minimum still catches it.
    /// </summary>
    public static long Fewest(Action work, int rounds = 3)
    {
        long fewest = long.MaxValue;
        for (int r = 0; r < rounds && fewest != 0; r++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            work();
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return fewest;
    }
}
