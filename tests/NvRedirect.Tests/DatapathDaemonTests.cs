using System;
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

/// <summary>The control socket's safety rules, in process (a temp directory, no root needed).</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class DatapathControlSocketTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nvr-dp-sock-").FullName;
    private readonly Logger _log = new(null, false, keepInMemory: true);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_socket_is_created_with_mode_0600_and_removed_on_dispose()
    {
        var path = Path.Combine(_dir, "dp.sock");
        using (var socket = ControlSocket.Bind(path, _log))
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.False(File.Exists(path));
    }

    [Fact]
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

    [Fact]
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

    [Fact]
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
    private static Process Start(string ns, string socket, string? log, out StringBuilder output)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { DatapathRepo.Daemon, "--netns", ns, "--socket", socket, "--foreground" }) psi.ArgumentList.Add(a);
        if (log != null) { psi.ArgumentList.Add("--log"); psi.ArgumentList.Add(log); }
        var text = new StringBuilder();
        var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (text) text.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (text) text.AppendLine(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        output = text;
        return p;
    }

    // the seed's script as the seed has it, its fixed /tmp/dp_listen.sock pointed at the test's socket by run_seed_client.py
    private static (int Code, string Output) RunSeedScript(string socketPath)
    {
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(DatapathRepo.Fixture("run_seed_client.py"));
        psi.ArgumentList.Add(DatapathRepo.Fixture("dp_seed_client.py"));
        psi.Environment["DP_SERVER_PATH"] = socketPath;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(60000), "python3 did not finish");
        return (p.ExitCode, output + err.Result);
    }

    [DatapathRootFact]
    public void The_daemon_serves_the_seeds_messages_forwards_refuses_a_second_instance_and_cleans_up_on_SIGTERM()
    {
        Assert.True(File.Exists(DatapathRepo.Daemon), $"build first: {DatapathRepo.Daemon} is missing");
        using var ns = new DatapathTestNamespace("daemon", "vbr", "vth");
        string id = Guid.NewGuid().ToString("N")[..10];
        string socketPath = $"/tmp/nvr-test-{id}.sock", logPath = $"/tmp/nvr-test-{id}.log";
        Process? daemon = null, second = null;
        try
        {
            daemon = Start(ns.Name, socketPath, logPath, out var output);
            Assert.True(DatapathEventually.True(() => File.Exists(socketPath) || daemon.HasExited, 60000), "the daemon did not create its socket");
            Assert.False(daemon.HasExited, $"the daemon exited: {output}");
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

            second = Start(ns.Name, socketPath, null, out var secondOutput);
            Assert.True(second.WaitForExit(60000), "the second daemon did not exit");
            second.WaitForExit();
            Assert.Equal(1, second.ExitCode);
            Assert.Contains("another datapath daemon is serving", secondOutput.ToString());
            Assert.True(File.Exists(socketPath));

            Assert.Equal(0, Tmds.Linux.LibC.kill(daemon.Id, Tmds.Linux.LibC.SIGTERM));
            Assert.True(daemon.WaitForExit(30000), "the daemon did not stop on SIGTERM");
            daemon.WaitForExit();
            Assert.Equal(0, daemon.ExitCode);
            Assert.False(File.Exists(socketPath));
            var log = File.ReadAllText(logPath);
            Assert.Contains("SIGTERM received", log);
            Assert.Contains("ctrl_cfg_mac: 1a:27:f3:87:3a:27: tap off", log);
            Assert.Contains("stopped (service port vth, 1 workloads (1 inline)", log);
        }
        finally
        {
            foreach (var p in new[] { daemon, second })
            {
                if (p == null) continue;
                if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(); }
                p.Dispose();
            }
            if (File.Exists(logPath)) File.Delete(logPath);
            if (File.Exists(socketPath)) File.Delete(socketPath);
        }
    }

    [DatapathRootFact]
    public void A_missing_namespace_or_bad_arguments_stop_the_daemon_with_a_message()
    {
        string socketPath = $"/tmp/nvr-test-{Guid.NewGuid().ToString("N")[..10]}.sock";
        using (var p = Start("nvrdp-no-such-ns-" + Guid.NewGuid().ToString("N")[..6], socketPath, null, out var output))
        {
            Assert.True(p.WaitForExit(60000));
            p.WaitForExit();
            Assert.Equal(1, p.ExitCode);
            Assert.Contains("does not exist", output.ToString());
        }
        Assert.False(File.Exists(socketPath));

        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(DatapathRepo.Daemon);
        psi.ArgumentList.Add("--bogus");
        using var bad = Process.Start(psi)!;
        var err = bad.StandardError.ReadToEnd();
        Assert.True(bad.WaitForExit(60000));
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("unknown argument --bogus", err);
    }
}
