using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using static Tmds.Linux.LibC;

namespace NvRedirect.Datapath;

/// <summary>
/// nvr-dp --supervise: runs the daemon as a child (nvr-dp --foreground, same arguments) and starts it again when it dies
/// without being asked to stop: at once for the first crashes, then with a back-off doubling from 0.5 s to 30 s while
/// it keeps crashing (more than <see cref="FreeRestarts"/> within <see cref="CrashWindow"/>). Each death is logged with
/// its reason (exit code or signal, and the child's last error line), and the child is told (environment) how often it
/// was restarted and why the last one died, which it reports in nvr_get_state (Get-Datapath). The child restores its
/// saved configuration itself. A child that exits 0 (stopped by SIGTERM) or 2 (bad arguments) ends the supervisor;
/// SIGTERM to the supervisor is passed on to the child. Under systemd use the unit instead (systemd supervises).
/// </summary>
internal static class Supervisor
{
    public const string SupervisedVariable = "NVR_DP_SUPERVISED", RestartsVariable = "NVR_DP_RESTARTS", LastExitVariable = "NVR_DP_LAST_EXIT";
    public const int FreeRestarts = 3;
    public static readonly TimeSpan CrashWindow = TimeSpan.FromSeconds(60), MaxDelay = TimeSpan.FromSeconds(30);

    /// <summary>The delay before restart number <paramref name="recentCrashes"/> (crashes within the window, this one included).</summary>
    public static TimeSpan Delay(int recentCrashes)
        => recentCrashes <= FreeRestarts ? TimeSpan.Zero
            : TimeSpan.FromMilliseconds(Math.Min(MaxDelay.TotalMilliseconds, 500 * Math.Pow(2, recentCrashes - FreeRestarts - 1)));

    /// <summary>
    /// Supervises until the child stops for good. <paramref name="detach"/> runs once the first child serves (a background
    /// start's "ready" line); a first child that fails to start ends the supervisor with its exit code and its stderr.
    /// </summary>
    public static int Run(string[] args, string logPath, Logger log, Action detach)
    {
        var workerArgs = args.Where(a => a != "--supervise").ToList();
        if (!workerArgs.Contains("--foreground")) workerArgs.Add("--foreground");
        if (!workerArgs.Contains("--log")) { workerArgs.Add("--log"); workerArgs.Add(logPath); }

        using var stop = new ManualResetEventSlim();
        Process? current = null;
        void RequestStop(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Set();
            var p = current;
            if (p != null) try { kill(p.Id, SIGTERM); } catch (InvalidOperationException) { }
        }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, RequestStop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, RequestStop);
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, RequestStop);

        int restarts = 0;
        string? lastExit = null;
        bool detached = false;
        var crashes = new Queue<DateTime>();
        while (true)
        {
            var psi = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false, WorkingDirectory = "/",
            };
            psi.ArgumentList.Add(typeof(Program).Assembly.Location);
            foreach (var a in workerArgs) psi.ArgumentList.Add(a);
            psi.Environment.Remove("NVR_DP_DAEMON_CHILD");
            psi.Environment[SupervisedVariable] = "1";
            psi.Environment[RestartsVariable] = restarts.ToString(CultureInfo.InvariantCulture);
            if (lastExit != null) psi.Environment[LastExitVariable] = lastExit;

            using var ready = new ManualResetEventSlim();
            var errors = new List<string>();
            string? lastError = null;
            using var worker = new Process { StartInfo = psi };
            worker.OutputDataReceived += (_, e) => { if (e.Data == Program.ReadyLine) ready.Set(); };
            worker.ErrorDataReceived += (_, e) =>
            {
                if (e.Data == null) return;
                lock (errors)
                {
                    if (!detached) errors.Add(e.Data);
                    if (e.Data.Contains(" ERROR ", StringComparison.Ordinal)) lastError = e.Data[(e.Data.IndexOf(" ERROR ", StringComparison.Ordinal) + 7)..];
                }
            };
            if (!worker.Start()) { log.Error("supervisor: could not start nvr-dp"); return 1; }
            worker.StandardInput.Close();
            worker.BeginOutputReadLine();
            worker.BeginErrorReadLine();
            current = worker;
            if (stop.IsSet) kill(worker.Id, SIGTERM);
            if (restarts > 0) log.Info($"supervisor: restarted nvr-dp as pid {worker.Id} (restart {restarts})");

            if (!detached)
            {
                while (!ready.Wait(50) && !worker.HasExited) { }
                if (!ready.IsSet)
                {
                    worker.WaitForExit();
                    lock (errors) foreach (var line in errors) Console.Error.WriteLine(line);
                    return worker.ExitCode == 0 ? 1 : worker.ExitCode;
                }
                log.Info($"supervisor: nvr-dp runs as pid {worker.Id}; it is restarted when it dies");
                detached = true;
                detach();
            }

            worker.WaitForExit();
            current = null;
            int code = worker.ExitCode;
            ClearFastPath(workerArgs, log);
            if (stop.IsSet || code == 0 || code == 2)
            {
                log.Info($"supervisor: nvr-dp (pid {worker.Id}) exited with {Describe(code)}; not restarting it, supervisor stops");
                return stop.IsSet ? 0 : code;
            }
            var now = DateTime.UtcNow;
            crashes.Enqueue(now);
            while (crashes.Count > 0 && now - crashes.Peek() > CrashWindow) crashes.Dequeue();
            var delay = Delay(crashes.Count);
            string? error;
            lock (errors) error = lastError;
            lastExit = $"{Describe(code)} at {now:yyyy-MM-ddTHH:mm:ss.fffZ}" + (error != null ? $" (last error: {error})" : "");
            restarts++;
            log.Error($"supervisor: nvr-dp (pid {worker.Id}) died: {lastExit}; restart {restarts}"
                + (delay == TimeSpan.Zero ? " now" : $" in {delay.TotalSeconds:0.#} s ({crashes.Count} crashes within {CrashWindow.TotalSeconds:0} s: backing off)"));
            if (delay > TimeSpan.Zero && stop.Wait(delay)) return 0;
            if (stop.IsSet) return 0;
        }
    }

    // The flows a dead daemon published must not outlive it (docs/datapath.md, "The kernel fast path"): however it
    // ended, its namespace's fast-path maps are emptied before it is restarted (or the supervisor stops).
    private static void ClearFastPath(List<string> workerArgs, Logger log)
    {
        int at = workerArgs.IndexOf("--netns");
        string ns = at >= 0 && at + 1 < workerArgs.Count ? workerArgs[at + 1] : "";
        try
        {
            int n = NvRedirect.Core.Bpf.FastPathMap.ClearAll(ns);
            if (n > 0) log.Info($"supervisor: revoked {n} fast-path flow entries of the dead nvr-dp");
        }
        catch (Exception e) { log.Error($"supervisor: could not empty the fast-path maps of namespace '{ns}': {e.Message}"); }
    }

    /// <summary>An exit status as text: "exit code N" or "signal SIGKILL" (.NET reports a signal as 128 + its number).</summary>
    public static string Describe(int code) => code > 128 && code < 128 + 65
        ? "signal " + ((code - 128) switch { 6 => "SIGABRT", 9 => "SIGKILL", 11 => "SIGSEGV", 15 => "SIGTERM", 2 => "SIGINT", 1 => "SIGHUP", 7 => "SIGBUS", 4 => "SIGILL", var n => n.ToString(CultureInfo.InvariantCulture) })
        : $"exit code {code}";
}
