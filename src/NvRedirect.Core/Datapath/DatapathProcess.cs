using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Protocol;
using static Tmds.Linux.LibC;

namespace NvRedirect.Core.Datapath;

/// <summary>What <see cref="DatapathProcess.Start"/> starts.</summary>
public sealed record DatapathStartRequest
{
    /// <summary>Namespace for the service ports ("" = the namespace the daemon runs in, the caller's).</summary>
    public string Namespace { get; init; } = "";
    /// <summary>Control socket (an absolute path); null = the namespace's default in nvr-dp's private directory (<see cref="DatapathPaths.DefaultSocket"/>).</summary>
    public string? ControlSocket { get; init; }
    /// <summary>--control-group: a group (name or id) whose members may command the daemon besides root (null: root only).</summary>
    public string? ControlGroup { get; init; }
    /// <summary>Log file; null = nvr-dp's default for a background daemon (/var/log/nvr-dp.log).</summary>
    public string? LogPath { get; init; }
    /// <summary>Session table size; null = nvr-dp's default.</summary>
    public int? Sessions { get; init; }
    /// <summary>--connections: the connection table's size (null: nvr-dp's default).</summary>
    public int? Connections { get; init; }
    /// <summary>--metrics: the loopback ADDRESS:PORT to serve GET /metrics on (null: no listener; checked by <see cref="DpMetrics.ParseEndpoint"/>).</summary>
    public string? Metrics { get; init; }
    /// <summary>Run it under nvr-dp's supervisor (--supervise), which restarts it when it dies (default).</summary>
    public bool Supervise { get; init; } = true;
    /// <summary>--strict: Protect blocks whatever no rule allows, ping included, at once (default); false: NeuVector dp's
    /// semantics for a NeuVector agent (docs/datapath.md, "Semantics: NeuVector's dp or strict").</summary>
    public bool Strict { get; init; } = true;
    /// <summary>How long to wait for the daemon to serve its socket.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// nvr-dp as a process: started in its own background mode (it detaches into a new session and returns once it
/// serves its socket, so it outlives the caller), found through /proc and its control socket, stopped with SIGTERM.
/// </summary>
public static class DatapathProcess
{
    /// <summary>The daemon's file name next to the module's assembly.</summary>
    public const string DaemonFileName = "nvr-dp.dll";

    /// <summary>Where the daemon is: next to this assembly (the module's bin/).</summary>
    public static string DaemonPath => Path.Combine(Path.GetDirectoryName(typeof(DatapathProcess).Assembly.Location) ?? ".", DaemonFileName);

    /// <summary>
    /// The dotnet host: this process's own executable when it is dotnet (pwsh as a .NET tool), else DOTNET_ROOT,
    /// else the PATH, else the usual install folders.
    /// </summary>
    public static string FindDotnet()
    {
        var self = Environment.ProcessPath;
        if (self != null && Path.GetFileName(self) == "dotnet") return self;
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root) candidates.Add(Path.Combine(root, "dotnet"));
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            candidates.Add(Path.Combine(dir, "dotnet"));
        candidates.AddRange(["/usr/share/dotnet/dotnet", "/usr/lib/dotnet/dotnet", "/usr/local/share/dotnet/dotnet", "/opt/dotnet/dotnet"]);
        if (self != null && Path.GetDirectoryName(self) is { } selfDir) candidates.Add(Path.Combine(selfDir, "dotnet"));
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new DatapathNotInstalledException("cannot find the dotnet host to run nvr-dp: put dotnet on the PATH or set DOTNET_ROOT");
    }

    /// <summary>Starts a daemon and returns it as it describes itself once it answers.</summary>
    public static DatapathInfo Start(DatapathStartRequest r)
    {
        if (r.Namespace.Length > 0)
        {
            NetworkNamespace.ThrowIfInvalid(r.Namespace);
            if (!NetworkNamespace.Exists(r.Namespace)) throw new NamespaceNotFoundException(r.Namespace);
        }
        string socket = r.ControlSocket ?? DatapathPaths.DefaultSocket(r.Namespace);
        // the pid lock, not an answer on the socket, says whether a live nvr-dp serves it (anyone can answer a keep-alive)
        if (DatapathLock.Owner(socket) is int owner)
        {
            string who = $" (pid {owner})";
            try
            {
                using var probe = DpClient.Open(socket, TimeSpan.FromSeconds(2));
                var s = probe.State();
                if (s.Pid == owner) who = $" (pid {s.Pid}, {(s.Namespace.Length == 0 ? "its own namespace" : $"namespace '{s.Namespace}'")})";
            }
            catch (DatapathException) { }
            throw new DatapathAlreadyRunningException(
                $"another datapath{who} is already serving {socket}; stop it with Stop-Datapath, or give this one another -ControlSocket");
        }
        string daemon = DaemonPath;
        if (!File.Exists(daemon)) throw new DatapathNotInstalledException($"the datapath daemon {daemon} is missing: build the module (build.ps1 Build)");

        var psi = new ProcessStartInfo(FindDotnet())
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
            WorkingDirectory = "/", // the daemon outlives us: it must not pin the caller's directory
        };
        psi.ArgumentList.Add(daemon);
        if (r.Supervise) psi.ArgumentList.Add("--supervise");
        if (r.Strict) psi.ArgumentList.Add("--strict");
        if (r.Namespace.Length > 0) { psi.ArgumentList.Add("--netns"); psi.ArgumentList.Add(r.Namespace); }
        psi.ArgumentList.Add("--socket");
        psi.ArgumentList.Add(socket);
        if (r.ControlGroup != null) { psi.ArgumentList.Add("--control-group"); psi.ArgumentList.Add(r.ControlGroup); }
        if (r.LogPath != null) { psi.ArgumentList.Add("--log"); psi.ArgumentList.Add(r.LogPath); }
        if (r.Sessions is int n) { psi.ArgumentList.Add("--sessions"); psi.ArgumentList.Add(n.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
        if (r.Connections is int c) { psi.ArgumentList.Add("--connections"); psi.ArgumentList.Add(c.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
        if (r.Metrics != null) { psi.ArgumentList.Add("--metrics"); psi.ArgumentList.Add(DpMetrics.ParseEndpoint(r.Metrics).ToString()); }

        // nvr-dp without --foreground starts a detached copy of itself (new session, stdio on /dev/null) and exits 0
        // once that copy serves the socket, or non-zero with the reason on stderr
        using var starter = Process.Start(psi) ?? throw new DatapathStartException("could not start dotnet for nvr-dp");
        starter.StandardInput.Close();
        var stdout = starter.StandardOutput.ReadToEndAsync();
        var stderr = starter.StandardError.ReadToEndAsync();
        if (!starter.WaitForExit(r.Timeout))
        {
            try { starter.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new DatapathStartException($"nvr-dp did not report that it serves {socket} within {r.Timeout.TotalSeconds:0} s");
        }
        starter.WaitForExit();
        if (starter.ExitCode != 0)
        {
            var reason = Reason(stderr.Result + stdout.Result);
            if (reason.Contains("another datapath daemon is serving", StringComparison.Ordinal))
                throw new DatapathAlreadyRunningException($"another datapath is already serving {socket} (nvr-dp: {reason}); stop it with Stop-Datapath, or give this one another -ControlSocket");
            throw new DatapathStartException($"nvr-dp could not start (exit code {starter.ExitCode}): {(reason.Length == 0 ? "no message" : reason)}");
        }

        using var client = DpClient.Open(socket);
        var deadline = Stopwatch.StartNew();
        while (!client.KeepAlive())
        {
            if (deadline.Elapsed > r.Timeout) throw new DatapathStartException($"nvr-dp started but does not answer on {socket}");
            Thread.Sleep(100);
        }
        return client.Query();
    }

    // What nvr-dp printed when it could not start, without its log lines' timestamps: the ERROR lines and its own
    // "nvr-dp: ..." lines (the usage text left out).
    private static string Reason(string output)
    {
        var reasons = new List<string>();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var log = System.Text.RegularExpressions.Regex.Match(line, @"^\S+ nvr-dp\[\d+\] (INFO|WARN|ERROR) (.*)$");
            if (log.Success) { if (log.Groups[1].Value == "ERROR") reasons.Add(log.Groups[2].Value); }
            else if (line.StartsWith("nvr-dp: ", StringComparison.Ordinal)) reasons.Add(line[8..]);
            else if (!line.StartsWith("usage:", StringComparison.Ordinal) && !line.StartsWith("--", StringComparison.Ordinal)) reasons.Add(line);
        }
        return string.Join("; ", reasons.Distinct());
    }

    /// <summary>nvr-dp processes by their command lines in /proc: pid and the control socket each was given.</summary>
    public static List<(int Pid, string ControlSocket)> Processes()
    {
        var found = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (!int.TryParse(name, out int pid)) continue;
            if (DaemonArguments(pid) is not { } args) continue;
            string? socket = null, ns = "";
            for (int i = 0; i + 1 < args.Count; i++)
            {
                if (args[i] == "--socket") socket = args[i + 1];
                if (args[i] == "--netns") ns = args[i + 1];
            }
            socket ??= DatapathPaths.DefaultSocket(ns);
            if (!socket.StartsWith('/'))
            {
                try { socket = Path.GetFullPath(Path.Combine(new DirectoryInfo($"/proc/{pid}/cwd").LinkTarget ?? "/", socket)); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            }
            found.Add((pid, socket));
        }
        return found;
    }

    /// <summary>
    /// The pid of the nvr-dp process started for <paramref name="controlSocket"/>, found by its command line (for a
    /// daemon that does not answer). A background start's starter has the same command line while it waits for its
    /// child: the parent of another candidate is left out.
    /// </summary>
    public static int? FindPid(string controlSocket)
    {
        var candidates = Processes().Where(p => p.ControlSocket == controlSocket).Select(p => p.Pid).Where(IsAlive).ToList();
        var parents = candidates.Select(ParentOf).ToHashSet();
        var daemons = candidates.Where(p => !parents.Contains(p)).ToList();
        return daemons.Count > 0 ? daemons[0] : null;
    }

    private static int ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException) { return 0; }
    }

    // the arguments after nvr-dp.dll, or null when the process is not nvr-dp (or is gone)
    private static List<string>? DaemonArguments(int pid)
    {
        byte[] raw;
        try { raw = File.ReadAllBytes($"/proc/{pid}/cmdline"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        var args = Encoding.UTF8.GetString(raw).Split('\0');
        int at = Array.FindIndex(args, a => Path.GetFileName(a) == DaemonFileName);
        return at < 0 ? null : args.Skip(at + 1).Where(a => a.Length > 0).ToList();
    }

    /// <summary>The nvr-dp --supervise process that runs <paramref name="pid"/>, if one does.</summary>
    public static int? SupervisorOf(int pid)
    {
        int parent = ParentOf(pid);
        return parent > 1 && IsAlive(parent) && DaemonArguments(parent) is { } args && args.Contains("--supervise") ? parent : null;
    }

    /// <summary>Whether <paramref name="pid"/> is a running nvr-dp (not gone, not a zombie).</summary>
    public static bool IsRunningDaemon(int pid) => IsAlive(pid) && DaemonArguments(pid) != null;

    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] != 'Z' && stat[close + 2] != 'X';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Every datapath that answers on the socket of an nvr-dp process, ordered by pid.</summary>
    public static List<DatapathInfo> Find(TimeSpan timeout)
    {
        var result = new List<DatapathInfo>();
        foreach (var socket in Processes().Select(p => p.ControlSocket).Distinct(StringComparer.Ordinal))
        {
            try
            {
                using var client = DpClient.Open(socket, timeout);
                result.Add(client.Query());
            }
            catch (DatapathException) { } // starting, stopping, or not ours to read: not a running datapath
            catch (NetlinkException) { }
        }
        return result.OrderBy(d => d.Pid).ToList();
    }

    /// <summary>
    /// Stops the daemon: SIGTERM (SIGKILL with <paramref name="force"/>), then waits until the process is gone and its
    /// socket removed. After a SIGKILL the socket the daemon could not remove is removed here when nothing answers on it.
    /// </summary>
    public static void Stop(int pid, string controlSocket, TimeSpan timeout, bool force)
    {
        if (!IsRunningDaemon(pid))
        {
            if (!IsAlive(pid)) throw new DatapathStopException($"the datapath on {controlSocket} reported pid {pid}, which is gone");
            throw new DatapathStopException($"pid {pid} is not an nvr-dp process; refusing to signal it");
        }
        // a supervisor would start a killed daemon again: it goes first (SIGTERM needs no such care: the daemon exits 0,
        // and a supervisor ends with a daemon that stopped cleanly)
        int? supervisor = SupervisorOf(pid);
        var daemonArgs = DaemonArguments(pid) ?? [];
        int netnsAt = daemonArgs.IndexOf("--netns");
        string ns = netnsAt >= 0 && netnsAt + 1 < daemonArgs.Count ? daemonArgs[netnsAt + 1] : "";
        if (force && supervisor is int sup && kill(sup, SIGKILL) < 0 && Native.LastErrno != ESRCH)
            throw SyscallException.FromLastError($"kill nvr-dp's supervisor (pid {sup})");
        if (kill(pid, force ? SIGKILL : SIGTERM) < 0 && Native.LastErrno != ESRCH)
            throw SyscallException.FromLastError($"signal nvr-dp (pid {pid})");
        var clock = Stopwatch.StartNew();
        while (IsAlive(pid))
        {
            if (clock.Elapsed > timeout)
                throw new DatapathStopException(force
                    ? $"nvr-dp (pid {pid}) did not exit within {timeout.TotalSeconds:0} s of SIGKILL"
                    : $"nvr-dp (pid {pid}) did not stop within {timeout.TotalSeconds:0} s of SIGTERM; Stop-Datapath -Force kills it");
            Thread.Sleep(50);
        }
        while (supervisor is int s && IsAlive(s) && clock.Elapsed < timeout) Thread.Sleep(50);
        if (!force) return;
        // a killed daemon cannot forget its configuration itself: a deliberate kill does it here (a crash keeps it)
        Forget(controlSocket);
        // nor empty its fast-path maps (docs/datapath.md, "The kernel fast path"): what it published stops forwarding
        Bpf.FastPathMap.ClearAll(ns);
        // The leader turns zombie before its other threads have closed the shared file table, so the socket can stay
        // bound for a moment after IsAlive says the daemon is gone: retry until it is stale (or gone).
        var settle = Stopwatch.StartNew();
        while (!RemoveStaleSocket(controlSocket) && IsSocket(controlSocket) && settle.Elapsed < TimeSpan.FromSeconds(3))
            Thread.Sleep(50);
    }

    /// <summary>Removes the saved configuration and pid lock of <paramref name="controlSocket"/> when no live nvr-dp holds the lock.</summary>
    public static void Forget(string controlSocket)
    {
        using var held = DatapathLock.TryAcquire(controlSocket, out _);
        if (held == null) return; // a daemon (a restarted one) owns them
        File.Delete(DatapathPaths.StateFile(controlSocket));
    } // disposing the lock removes its file

    /// <summary>Removes a control socket file that nothing is bound to (what a killed daemon leaves); true when it did.</summary>
    public static bool RemoveStaleSocket(string path)
    {
        if (!IsSocket(path)) return false; // never a symlink, a regular file or a missing path
        if (DatapathLock.Owner(path) != null) return false; // a live nvr-dp holds it
        using (var client = DpClient.Open(path, TimeSpan.FromSeconds(1)))
            if (client.Probe() != DpProbe.Stale) return false;
        return Native.unlink(path) == 0;
    }

    private static unsafe bool IsSocket(string path)
    {
        Tmds.Linux.stat st;
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
            if (lstat(p, &st) < 0) return false;
        return S_ISSOCK(st.st_mode);
    }
}
