using System;
using System.IO;
using System.Threading;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath;
using NvRedirect.Datapath.Control;
using NvRedirect.Datapath.Engine;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// Who may reach nvr-dp's control socket, with real sockets and real uids (setpriv to nobody): the private directory
/// keeps everyone but root out, and on a socket outside it every datagram's sender credentials are checked.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class ControlSocketAccessTests
{
    private const int Nobody = 65534;
    private readonly Logger _log = new(null, false, keepInMemory: true);
    private readonly string _id = Guid.NewGuid().ToString("N")[..10];

    // A client in python (the system's, which nobody may run): binds an abstract name, connects to the socket, optionally
    // drops to nobody after connecting (a privilege-dropped process holding a connected socket), sends a keep-alive and
    // prints the answer in hex, "timeout" when none came, or "denied" when the kernel refused the connect.
    private const string Client = """
import os, socket, sys
path, drop = sys.argv[1], sys.argv[2] == 'drop'
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\0nvr-test-cred-%d' % os.getpid())
try:
    s.connect(path)
except PermissionError:
    print('denied'); sys.exit(0)
if drop:
    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
s.settimeout(2)
s.send(b'{"ctrl_keep_alive": {"seq_num": 9}}')
try:
    print(s.recv(100).hex())
except socket.timeout:
    print('timeout')
""";

    private static string Send(string path, bool drop, params string[] asUser)
    {
        string[] python = ["/usr/bin/python3", "-c", Client, path, drop ? "drop" : "stay"];
        var (code, output, error) = asUser.Length == 0 ? Tool.Run(python[0], python[1..]) : Tool.Run("setpriv", [.. asUser, .. python]);
        Assert.True(code == 0, $"the client failed: {output}{error}");
        return output.Trim();
    }

    private static readonly string[] AsNobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    private static readonly string KeepAlive9 = Convert.ToHexString(Replies.KeepAlive(9)).ToLowerInvariant();

    private sealed class Served : IDisposable
    {
        private readonly SafeFd _stop;
        private readonly Thread _thread;
        public readonly ControlSocket Socket;
        public readonly ControlServer Server;
        private readonly PacketEngine _engine;

        public Served(string path, Logger log, int? group = null)
        {
            _engine = new PacketEngine(16, new ManualClock(), log);
            Socket = ControlSocket.Bind(path, log, group);
            Server = new ControlServer(Socket, new Controller(_engine, FakeServicePort.Opener([]), log), log);
            _stop = new SafeFd(Tmds.Linux.LibC.eventfd(0, 0));
            _thread = new Thread(() => Server.Run(_stop)) { IsBackground = true };
            _thread.Start();
        }

        public void Dispose()
        {
            unsafe { ulong v = 1; Tmds.Linux.LibC.write(_stop.Fd, &v, 8); }
            _thread.Join();
            _stop.Dispose();
            Socket.Dispose();
            _engine.Dispose();
        }
    }

    [RootFact]
    public void The_default_socket_lives_in_a_root_only_directory_nobody_can_squat_or_reach()
    {
        string path = DatapathPaths.DefaultSocket($"nvr-test-{_id}");
        Assert.Equal($"/run/nvredirect/dp-nvr-test-{_id}.sock", path);
        using (var served = new Served(path, _log))
        {
            var dir = new DirectoryInfo(DatapathPaths.Directory);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, dir.UnixFileMode);
            // .NET's File API takes a shared flock of its own on open, which the daemon's exclusive lock refuses: read it with cat
            Assert.StartsWith($"{Environment.ProcessId} ", Tool.RunOk("cat", [DatapathPaths.LockFile(path)]));
            Assert.Equal(Environment.ProcessId, DatapathLock.Owner(path));

            // nobody can neither put a socket of its own there nor connect to the daemon's
            var (code, output, error) = Tool.Run("setpriv", [.. AsNobody, "/usr/bin/python3", "-c",
                "import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ntry:\n s.bind(sys.argv[1]); print('bound')\nexcept PermissionError: print('denied')",
                DatapathPaths.Directory + $"/dp-squat-{_id}.sock"]);
            Assert.True(code == 0, output + error);
            Assert.Equal("denied", output.Trim());
            Assert.Equal("denied", Send(path, drop: false, AsNobody));
            Assert.Equal(KeepAlive9, Send(path, drop: false)); // root is served

            // a second daemon on the same path is refused by the lock, naming the holder
            var refused = Assert.Throws<ControlSocketException>(() => ControlSocket.Bind(path, _log));
            Assert.Contains($"another datapath daemon is serving {path} (nvr-dp pid {Environment.ProcessId} holds its lock", refused.Message);
        }
        Assert.False(File.Exists(path));
        Assert.False(File.Exists(DatapathPaths.LockFile(path)));
        Assert.Null(DatapathLock.Owner(path));
    }

    [RootFact]
    public void On_a_tmp_socket_a_datagram_from_a_non_root_sender_is_refused_and_logged()
    {
        string path = $"/tmp/nvr-test-cred-{_id}.sock";
        using var served = new Served(path, _log);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal("denied", Send(path, drop: false, AsNobody)); // mode 0600: the kernel refuses nobody's connect

        // a process that connected as root and then dropped to nobody: the kernel vouches for its uid at send time
        Assert.Equal("timeout", Send(path, drop: true));
        Assert.Equal(1, served.Server.Refused);
        Assert.Contains(_log.Lines, l => l.Contains("refused, nothing read") && l.Contains($"uid {Nobody} gid {Nobody}") && l.Contains("only root may command"));
        Assert.Equal(KeepAlive9, Send(path, drop: false)); // root still is served
        Assert.Equal(1, served.Server.Refused);
    }

    [RootFact]
    public void A_control_group_may_command_a_tmp_socket_and_other_groups_may_not()
    {
        string path = $"/tmp/nvr-test-group-{_id}.sock";
        using var served = new Served(path, _log, group: Nobody);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(path));
        Assert.Equal(KeepAlive9, Send(path, drop: false, AsNobody)); // uid nobody, primary group nogroup: admitted
        Assert.Equal("denied", Send(path, drop: false, "--reuid=65534", "--regid=1", "--clear-groups")); // another group: no connect
        Assert.Equal(0, served.Server.Refused);
    }

    [RootFact]
    public void A_socket_someone_else_put_on_the_path_is_never_taken_over()
    {
        string path = $"/tmp/nvr-test-squat-{_id}.sock";
        try
        {
            // nobody squats the path with a socket of its own (and leaves it: nothing is bound to it any more)
            var (code, output, error) = Tool.Run("setpriv", [.. AsNobody, "/usr/bin/python3", "-c",
                "import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])", path]);
            Assert.True(code == 0, output + error);
            var refused = Assert.Throws<ControlSocketException>(() => ControlSocket.Bind(path, _log));
            Assert.Contains($"is a socket of uid {Nobody}, not root's", refused.Message);
            Assert.True(File.Exists(path));
            Assert.Null(DatapathLock.Owner(path)); // the lock was let go again
        }
        finally { File.Delete(path); }
    }

    [RootFact]
    public void A_root_owned_socket_something_else_is_bound_to_is_refused_however_it_answers()
    {
        string path = $"/tmp/nvr-test-fake-{_id}.sock";
        // a fake "daemon" that answers every keep-alive: it holds no lock, so it is not nvr-dp
        using var fake = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        fake.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
        try
        {
            var refused = Assert.Throws<ControlSocketException>(() => ControlSocket.Bind(path, _log));
            Assert.Contains("a process that is not nvr-dp (it holds no lock) is bound to", refused.Message);
            Assert.Null(DatapathLock.Owner(path));
        }
        finally { File.Delete(path); }
    }
}
