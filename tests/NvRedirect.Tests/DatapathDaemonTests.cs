using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath;
using NvRedirect.Datapath.Control;
using NvRedirect.Datapath.Engine;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>A unix datagram client bound to a unique abstract name (so replies can reach it and no file is left).</summary>
internal sealed class DatapathClient : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly string _server;

    public DatapathClient(string server, bool bind = true)
    {
        _server = server;
        if (bind) _socket.Bind(new UnixDomainSocketEndPoint("\0nvr-test-client-" + Guid.NewGuid().ToString("N")));
        _socket.ReceiveTimeout = 10000;
    }

    public void Send(string json) => _socket.SendTo(Encoding.UTF8.GetBytes(json), new UnixDomainSocketEndPoint(_server));

    public byte[] Receive()
    {
        var buffer = new byte[9000];
        int n = _socket.Receive(buffer);
        return buffer.AsSpan(0, n).ToArray();
    }

    public byte[] KeepAlive(uint seq)
    {
        Send($"{{\"ctrl_keep_alive\": {{\"seq_num\": {seq}}}}}");
        return Receive();
    }

    public void Dispose() => _socket.Dispose();
}

/// <summary>The control socket's safety rules, in process (a temp directory; the pid lock lives in root's /run/nvredirect).</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class DatapathControlSocketTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nvr-dp-sock-").FullName;
    private readonly Logger _log = new(null, false, keepInMemory: true);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [RootFact]
    public void The_socket_is_created_with_mode_0600_and_removed_on_dispose()
    {
        var path = Path.Combine(_dir, "dp.sock");
        using (var socket = ControlSocket.Bind(path, _log))
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.False(File.Exists(path));
    }

    [RootFact]
    public void A_regular_file_or_a_symlink_is_never_taken_over()
    {
        var file = Path.Combine(_dir, "file.sock");
        File.WriteAllText(file, "keep me");
        Assert.Contains("is not a socket", Assert.Throws<ControlSocketException>(() => ControlSocket.Bind(file, _log)).Message);
        Assert.Equal("keep me", File.ReadAllText(file));

        var link = Path.Combine(_dir, "link.sock");
        File.CreateSymbolicLink(link, Path.Combine(_dir, "elsewhere.sock"));
        Assert.Contains("symbolic link", Assert.Throws<ControlSocketException>(() => ControlSocket.Bind(link, _log)).Message);
        Assert.NotNull(new FileInfo(link).LinkTarget);
        Assert.False(File.Exists(Path.Combine(_dir, "elsewhere.sock")));
    }

    [RootFact]
    public void A_stale_socket_file_is_replaced()
    {
        var path = Path.Combine(_dir, "stale.sock");
        BindAndClose(path);
        Assert.True(File.Exists(path)); // closing a bound socket leaves its file (what a crashed daemon leaves)

        using var socket = ControlSocket.Bind(path, _log);
        Assert.Contains(_log.Lines, l => l.Contains("replacing stale control socket"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    // raw syscalls: .NET's Socket removes the file of a socket it bound when disposed
    internal static unsafe void BindAndClose(string path)
    {
        int fd = Tmds.Linux.LibC.socket(Tmds.Linux.LibC.AF_UNIX, Tmds.Linux.LibC.SOCK_DGRAM, 0);
        Assert.True(fd >= 0);
        byte* addr = stackalloc byte[110];
        new Span<byte>(addr, 110).Clear();
        *(ushort*)addr = (ushort)Tmds.Linux.LibC.AF_UNIX;
        int n = Encoding.UTF8.GetBytes(path, new Span<byte>(addr + 2, 107));
        Assert.Equal(0, Tmds.Linux.LibC.bind(fd, (Tmds.Linux.sockaddr*)addr, (uint)(2 + n + 1)));
        Native.close(fd);
    }

    [RootFact]
    public void A_live_daemon_is_refused_and_replies_go_to_each_sender()
    {
        var path = Path.Combine(_dir, "live.sock");
        using var engine = new PacketEngine(16, new ManualClock(), _log);
        var controller = new Controller(engine, FakeServicePort.Opener([]), _log);
        using var socket = ControlSocket.Bind(path, _log);
        var server = new ControlServer(socket, controller, _log);
        int efd = Tmds.Linux.LibC.eventfd(0, 0);
        using var stop = new SafeFd(efd);
        var thread = new Thread(() => server.Run(stop)) { IsBackground = true };
        thread.Start();
        try
        {
            var refused = Assert.Throws<ControlSocketException>(() => ControlSocket.Bind(path, _log));
            Assert.Contains("another datapath daemon is serving", refused.Message);
            Assert.True(File.Exists(path));

            using var one = new DatapathClient(path);
            using var two = new DatapathClient(path);
            one.Send("""{"ctrl_keep_alive": {"seq_num": 1}}""");
            two.Send("""{"ctrl_keep_alive": {"seq_num": 2}}""");
            Assert.Equal(Replies.KeepAlive(2), two.Receive());
            Assert.Equal(Replies.KeepAlive(1), one.Receive());

            using var unbound = new DatapathClient(path, bind: false);
            unbound.Send("""{"ctrl_keep_alive": {"seq_num": 3}}""");
            Assert.Equal(Replies.KeepAlive(4), one.KeepAlive(4)); // handled in order: the unbound one came first
            Assert.Contains(_log.Lines, l => l.Contains("not bound to an address"));
        }
        finally
        {
            unsafe { ulong v = 1; Tmds.Linux.LibC.write(stop.Fd, &v, 8); }
            thread.Join();
        }
    }
}

/// <summary>nvr-dp as a real process in a namespace, driven by the seed's own Python client.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class DatapathDaemonTests
{
    private static ToolProcess Start(string ns, string socket, string? log)
        => Tool.Start("dotnet", [TestRun.Daemon, "--netns", ns, "--socket", socket, "--foreground", .. log != null ? new[] { "--log", log } : []]);

    // the seed's script as the seed has it, its fixed /tmp/dp_listen.sock pointed at the test's socket by run_seed_client.py
    private static (int Code, string Output) RunSeedScript(string socketPath)
    {
        var (code, output, error) = Tool.Run("python3", [TestRun.Fixture("run_seed_client.py"), TestRun.Fixture("dp_seed_client.py")],
            new Dictionary<string, string> { ["DP_SERVER_PATH"] = socketPath });
        return (code, output + error);
    }

    [RootFact]
    public void The_daemon_serves_the_seeds_messages_forwards_refuses_a_second_instance_and_cleans_up_on_SIGTERM()
    {
        Assert.True(File.Exists(TestRun.Daemon), $"build first: {TestRun.Daemon} is missing");
        using var ns = TestNamespace.WithVeth("daemon", "vbr", "vth", quiet: true);
        string id = Guid.NewGuid().ToString("N")[..10];
        string socketPath = $"/tmp/nvr-test-{id}.sock", logPath = $"/tmp/nvr-test-{id}.log";
        ToolProcess? daemon = null, second = null;
        try
        {
            daemon = Start(ns.Name, socketPath, logPath);
            Assert.True(Eventually.True(() => File.Exists(socketPath) || daemon.Process.HasExited, 60), "the daemon did not create its socket");
            Assert.False(daemon.Process.HasExited, $"the daemon exited: {daemon.Output}");
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socketPath));

            var (code, text) = RunSeedScript(socketPath);
            Assert.True(code == 0, text);

            using (var client = new DatapathClient(socketPath))
            {
                // answered after the four datagrams before it were executed
                Assert.Equal(Convert.FromHexString("0a0000080000004d"), client.KeepAlive(77));

                using var vbr = RawPacketSocket.Open(ns.Name, "vbr");
                var frames = Enumerable.Range(0, 50).Select(i => TestFrames.Icmp(TestFrames.HostMac, TestFrames.UnicastAlias,
                    TestFrames.ContainerIp, TestFrames.HostIp, 8, 0x77, (ushort)i, "NVR-DAEMON")).ToList();
                foreach (var f in frames) vbr.Send(f);
                var back = vbr.ReceiveUntil(got => got.Count(f => f.AsSpan().IndexOf("NVR-DAEMON"u8) >= 0) >= frames.Count, TimeSpan.FromSeconds(10))
                    .Where(f => f.AsSpan().IndexOf("NVR-DAEMON"u8) >= 0).ToList();
                Assert.Equal(frames, back);

                client.Send("""{"ctrl_count_session": {}}""");
                Assert.Equal(Replies.SessionCount(1, 0, 0, 1, 0), client.Receive());
            }

            second = Start(ns.Name, socketPath, null);
            Assert.True(second.WaitForExit(TimeSpan.FromSeconds(60)), "the second daemon did not exit");
            Assert.Equal(1, second.Process.ExitCode);
            Assert.Contains("another datapath daemon is serving", second.Output);
            Assert.True(File.Exists(socketPath));

            Assert.Equal(0, Tmds.Linux.LibC.kill(daemon.Process.Id, Tmds.Linux.LibC.SIGTERM));
            Assert.True(daemon.WaitForExit(TimeSpan.FromSeconds(30)), "the daemon did not stop on SIGTERM");
            Assert.Equal(0, daemon.Process.ExitCode);
            Assert.False(File.Exists(socketPath));
            var log = File.ReadAllText(logPath);
            Assert.Contains("SIGTERM received", log);
            Assert.Contains("ctrl_cfg_mac: 1a:27:f3:87:3a:27: tap off", log);
            Assert.Contains("stopped (service port vth, 1 workloads (1 inline)", log);
        }
        finally
        {
            daemon?.Dispose();
            second?.Dispose();
            if (File.Exists(logPath)) File.Delete(logPath);
            if (File.Exists(socketPath)) File.Delete(socketPath);
        }
    }

    [RootFact]
    public void The_daemon_sends_connection_reports_to_the_agents_socket_every_6_seconds()
    {
        using var ns = TestNamespace.WithVeth("reports", "vbr", "vth", quiet: true);
        string id = Guid.NewGuid().ToString("N")[..10];
        string socketPath = $"/tmp/nvr-test-{id}.sock", reportPath = $"/tmp/nvr-test-{id}-ctrl.sock";
        using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(reportPath)); // root's, as the agent's is
        listener.ReceiveTimeout = 15000;
        ToolProcess? daemon = null;
        try
        {
            daemon = Tool.Start("dotnet", [TestRun.Daemon, "--netns", ns.Name, "--socket", socketPath, "--foreground", "--report-socket", reportPath]);
            Assert.True(Eventually.True(() => File.Exists(socketPath) || daemon.Process.HasExited, 60), "the daemon did not create its socket");
            var (code, text) = RunSeedScript(socketPath);
            Assert.True(code == 0, text);
            using var vbr = RawPacketSocket.Open(ns.Name, "vbr");
            using var client = new DatapathClient(socketPath);
            long PacketsOut()
            {
                client.Send("""{"nvr_get_state": {}}""");
                return JsonReplies.ReadState(Replies.Join([client.Receive()], MessageKind.State, "state")).Workloads.Single().PacketsOut;
            }
            // pings from the workload, until the service port has seen some (its ring opens just after the seed's messages)
            var frame = TestFrames.Icmp(TestFrames.HostMac, TestFrames.UnicastAlias, TestFrames.ContainerIp, TestFrames.HostIp, 8, 0x78, 1, "NVR-REPORT");
            long seen = 0;
            Assert.True(Eventually.True(() => { vbr.Send(frame); Thread.Sleep(100); return (seen = PacketsOut()) > 0; }, 10), "the datapath saw none of the pings");

            var started = Stopwatch.StartNew();
            var buffer = new byte[DpWire.MaxMessageSize];
            if (!listener.Poll(TimeSpan.FromSeconds(15), SelectMode.SelectRead))
            {
                using var asker = new DatapathClient(socketPath);
                asker.Send("""{"nvr_get_state": {}, "nvr_list_connection": {}}""");
                Assert.Fail($"no report in 15 s; state: {Encoding.UTF8.GetString(asker.Receive().AsSpan(4))}; connections: {Encoding.UTF8.GetString(asker.Receive().AsSpan(4))}; daemon: {daemon.Output}");
            }
            int n = listener.Receive(buffer);
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(6 + 2), $"the report came after {started.Elapsed}");
            var record = Assert.Single(StatsReplies.ReadConnections(buffer.AsSpan(0, n)));
            // a report tick may have fallen between two pings: what the next report adds belongs to the same connection
            long bytes = record.Bytes;
            while (listener.Poll(TimeSpan.FromSeconds(7), SelectMode.SelectRead))
            {
                var more = Assert.Single(StatsReplies.ReadConnections(buffer.AsSpan(0, listener.Receive(buffer))));
                Assert.Equal((record.Protocol, record.ServerPort, 0u), (more.Protocol, more.ServerPort, more.Sessions));
                bytes += more.Bytes;
            }
            Assert.Equal((TestFrames.ContainerMac, (byte)1, (ushort)0, (uint)1, DpPolicyAction.Open, (uint)0, (ushort)0),
                (record.EndpointMac, record.Protocol, record.ServerPort, record.Sessions, record.PolicyAction, record.PolicyId, record.Flags));
            Assert.Equal(new byte[] { 10, 10, 10, 88 }, record.ClientIP); // the workload pinged: it is the client
            Assert.Equal(new byte[] { 10, 10, 10, 66 }, record.ServerIP);
            Assert.Equal(seen * frame.Length, bytes);
            Assert.InRange(record.LastSeenAt, (uint)DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 15, (uint)DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);

            client.Send("""{"nvr_get_state": {}}""");
            var reports = JsonReplies.ReadState(Replies.Join([client.Receive()], MessageKind.State, "state")).Agent!.Reports;
            Assert.Equal((reportPath, true, 0L), (reports.Socket, reports.Listening, reports.Failures));
            Assert.InRange(reports.Datagrams, 1, 2);

            Assert.Equal(0, Tmds.Linux.LibC.kill(daemon.Process.Id, Tmds.Linux.LibC.SIGTERM));
            Assert.True(daemon.WaitForExit(TimeSpan.FromSeconds(30)), "the daemon did not stop on SIGTERM");
        }
        finally
        {
            daemon?.Dispose();
            if (File.Exists(socketPath)) File.Delete(socketPath);
            File.Delete(reportPath);
        }
    }

    [RootFact]
    public void A_missing_namespace_or_bad_arguments_stop_the_daemon_with_a_message()
    {
        string socketPath = $"/tmp/nvr-test-{Guid.NewGuid().ToString("N")[..10]}.sock";
        using (var p = Start(TestNamespace.NewName("no-such-ns"), socketPath, null))
        {
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)));
            Assert.Equal(1, p.Process.ExitCode);
            Assert.Contains("does not exist", p.Output);
        }
        Assert.False(File.Exists(socketPath));

        var (code, _, err) = Tool.Run("dotnet", [TestRun.Daemon, "--bogus"]);
        Assert.Equal(2, code);
        Assert.Contains("unknown argument --bogus", err);
    }
}
