using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath.Control;
using NvRedirect.Datapath.Engine;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using static Tmds.Linux.LibC;

namespace NvRedirect.Datapath;

/// <summary>
/// nvr-dp: a NeuVector-compatible datapath daemon. The main thread serves the control socket; a packet thread per
/// service port moves frames. Without --foreground it starts a detached copy of itself and returns once that copy
/// is serving (or prints why it could not start).
/// </summary>
public static class Program
{
    private const string DaemonChildVariable = "NVR_DP_DAEMON_CHILD";
    /// <summary>What a daemon prints on stdout once it serves (to its background starter or its supervisor).</summary>
    internal const string ReadyLine = "nvr-dp: ready";

    /// <summary>Runs the daemon; exit code 0 after a clean shutdown, 1 when it could not start, 2 for bad arguments.</summary>
    public static int Main(string[] args)
    {
        Options options;
        try { options = Options.Parse(args); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"nvr-dp: {e.Message}");
            Console.Error.Write(Options.Usage);
            return 2;
        }
        if (options.Help) { Console.Out.Write(Options.Usage); return 0; }

        bool child = Environment.GetEnvironmentVariable(DaemonChildVariable) == "1";
        if (!options.Foreground && !child) return StartInBackground(args);
        // leave the starter's session: no terminal signals reach the daemon (a supervised one leads a session of its own too)
        if (child || Environment.GetEnvironmentVariable(Supervisor.SupervisedVariable) == "1") setsid();

        Logger log;
        try { log = new Logger(options.LogPath ?? (child ? Options.DefaultBackgroundLog : null), stderr: true); } // a child's stderr reaches the starter until it detaches
        catch (Exception e) { Console.Error.WriteLine($"nvr-dp: cannot open the log: {e.Message}"); return 1; }
        using (log)
        {
            if (options.Supervise) return Supervisor.Run(args, options.LogPath ?? Options.DefaultBackgroundLog, log, child ? Detach : () => { });
            return Serve(options, log, child, options.LogPath ?? (child ? Options.DefaultBackgroundLog : null));
        }
    }

    private static int Serve(Options options, Logger log, bool child, string? logPath)
    {
        if (options.Namespace.Length > 0 && !NetworkNamespace.Exists(options.Namespace))
        {
            log.Error($"network namespace '{options.Namespace}' does not exist ({NetworkNamespace.PathOf(options.Namespace)})");
            return 1;
        }
        bool supervised = Environment.GetEnvironmentVariable(Supervisor.SupervisedVariable) == "1";
        using var datapath = new PacketEngine(options.Sessions, DatapathClock.Monotonic, log, options.Connections);
        using var reporter = options.ReportSocket is { } reportPath ? new ConnectionReporter(datapath, reportPath, options.ReportGroup, log) : null;
        var controller = new Controller(datapath, datapath.RealPorts(options.Namespace), log, options.Strict)
        {
            Reports = reporter,
            Identity = new DaemonIdentity(Environment.ProcessId, typeof(Program).Assembly.GetName().Version?.ToString() ?? "", options.Namespace,
                System.IO.Path.GetFullPath(options.SocketPath), logPath == null ? null : System.IO.Path.GetFullPath(logPath), options.Sessions, DateTime.UtcNow)
            {
                Supervised = supervised,
                Restarts = int.TryParse(Environment.GetEnvironmentVariable(Supervisor.RestartsVariable), out int restarts) ? restarts : 0,
                LastExit = Environment.GetEnvironmentVariable(Supervisor.LastExitVariable),
            },
        };
        ControlSocket socket;
        try { socket = ControlSocket.Bind(options.SocketPath, log, options.ControlGroup); }
        catch (Exception e) when (e is ControlSocketException or NetlinkException or System.IO.IOException)
        {
            log.Error(e.Message);
            return 1;
        }
        using (socket)
        {
            // the kernel fast path: this daemon publishes into its namespace's flow maps; it knows no session yet, so
            // nothing a predecessor published may stay (docs/datapath.md, "The kernel fast path")
            datapath.Sessions.FastPath = new FastPath(options.Namespace) { Connections = datapath.Connections };
            ClearFastPath(options.Namespace, log, "at start");
            // the configuration before any ring opens (the saved service port is opened last, on a complete configuration);
            // only now, holding the socket's lock: a second daemon refused above must not touch the file
            var state = new StateFile(DatapathPaths.StateFile(socket.Path), options.Namespace);
            controller.Persist = state;
            controller.Restore();
            int efd = eventfd(0, EFD_CLOEXEC);
            if (efd < 0) throw SyscallException.FromLastError("create the stop eventfd");
            using var stop = new SafeFd(efd);
            bool stopRequested = false;
            void RequestStop(PosixSignalContext context)
            {
                stopRequested = true;
                context.Cancel = true; // we exit on our own, after removing the socket
                log.Info($"{context.Signal} received, stopping");
                Signal(stop);
            }
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, RequestStop);
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, RequestStop);
            using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, RequestStop);
            // a datapath that forwards nothing must not keep answering keep-alives: stop, so a supervisor restarts it
            bool portFailed = false;
            datapath.PortFailed = (iface, _) =>
            {
                portFailed = true;
                log.Error($"stopping: the packet thread of {iface} failed");
                Signal(stop);
            };

            // the metrics listener reads the datapath through the control thread (the mailbox), off the packet path
            using var mailbox = options.Metrics != null ? new ControlMailbox() : null;
            MetricsListener? metrics = null;
            if (options.Metrics is { } endpoint)
            {
                string socketPath = System.IO.Path.GetFullPath(options.SocketPath);
                try
                {
                    metrics = new MetricsListener(endpoint, () => mailbox!.Invoke(controller.QueryReplies, TimeSpan.FromSeconds(2)) is { } replies
                        ? DpMetrics.Format([DpReplyReader.Query(replies, socketPath)]) : null, log);
                }
                catch (InvalidOperationException e)
                {
                    log.Error(e.Message);
                    return 1;
                }
                metrics.Start();
                log.Info($"serving metrics on http://{MetricsListener.Format(metrics.Endpoint)}/metrics");
            }
            using var metricsListener = metrics;
            log.Info($"nvr-dp {typeof(Program).Assembly.GetName().Version} serving {options.SocketPath}, packet work in "
                + (options.Namespace.Length == 0 ? "its own network namespace" : $"namespace '{options.Namespace}'")
                + $", {options.Sessions} sessions, {options.Connections} connections");
            if (child) Detach();
            else if (supervised) { Console.Out.WriteLine(ReadyLine); Console.Out.Flush(); }
            SystemdNotify.Send("READY=1");
            try
            {
                new ControlServer(socket, controller, log)
                {
                    Tick = () => { reporter?.Tick(); controller.SaveLearned(); },
                    AliveInterval = SystemdNotify.WatchdogInterval, Alive = () => SystemdNotify.Send("WATCHDOG=1"),
                    Mailbox = mailbox,
                }.Run(stop);
                if (portFailed) return 1;
            }
            catch (Exception e)
            {
                log.Error($"control loop failed: {e.Message}");
                return 1;
            }
            finally
            {
                datapath.DetachPort();
                datapath.Sessions.FastPath.Close();
                ClearFastPath(options.Namespace, log, "at stop");
                // a deliberate stop ends the datapath and its configuration; a crash (or a failed port) keeps it for the restart
                if (!portFailed && stopRequested)
                {
                    try { System.IO.File.Delete(state.Path); }
                    catch (Exception e) when (e is System.IO.IOException or UnauthorizedAccessException) { log.Warn($"could not remove {state.Path}: {e.Message}"); }
                }
                log.Info($"stopped ({controller.Summary()}; {controller.Accepted} requests executed, {controller.Rejected} rejected)");
            }
        }
        return 0;
    }

    private static void ClearFastPath(string ns, Logger log, string when)
    {
        try
        {
            int n = NvRedirect.Core.Bpf.FastPathMap.ClearAll(ns);
            if (n > 0) log.Info($"fast path: revoked {n} flow entries {when}");
        }
        catch (Exception e) when (e is NetlinkException or System.IO.IOException or UnauthorizedAccessException or System.IO.InvalidDataException)
        {
            log.Error($"fast path: could not empty the flow maps of namespace '{ns}' {when}: {e.Message}");
        }
    }

    private static unsafe void Signal(SafeFd eventFd)
    {
        ulong one = 1;
        write(eventFd.Fd, &one, 8);
    }

    // Tells the starter we are up, then lets go of its pipes.
    private static unsafe void Detach()
    {
        Console.Out.WriteLine(ReadyLine);
        Console.Out.Flush();
        int devNull = Native.open("/dev/null", 2 /* O_RDWR */, 0);
        if (devNull < 0) return;
        dup2(devNull, 0);
        dup2(devNull, 1);
        dup2(devNull, 2);
        if (devNull > 2) Native.close(devNull);
    }

    private static int StartInBackground(string[] args)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        psi.ArgumentList.Add(typeof(Program).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment[DaemonChildVariable] = "1";
        using var process = Process.Start(psi);
        if (process == null) { Console.Error.WriteLine("nvr-dp: could not start the background process"); return 1; }
        var line = process.StandardOutput.ReadLine();
        if (line == ReadyLine)
        {
            Console.Out.WriteLine($"nvr-dp: running in the background, pid {process.Id}");
            return 0;
        }
        var errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Console.Error.Write(errors);
        return process.ExitCode == 0 ? 1 : process.ExitCode;
    }
}
