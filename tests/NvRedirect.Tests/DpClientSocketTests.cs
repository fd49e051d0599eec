using System;
using System.IO;
using System.Linq;
using System.Threading;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath.Control;
using NvRedirect.Core.Interop;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>
/// The module's DpClient against the daemon's real control socket and server loop, in process (a temp directory, no
/// namespaces): replies reach the client's own socket, long replies arrive whole, rejections are reported.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DpClientSocketTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nvr-dpclient-").FullName;
    private readonly DatapathControlTests.Rig _rig = new();
    private readonly ControlSocket _socket;
    private readonly SafeFd _stop;
    private readonly Thread _server;

    public DpClientSocketTests()
    {
        _socket = ControlSocket.Bind(Path.Combine(_dir, "dp.sock"), _rig.Log);
        _stop = new SafeFd(Tmds.Linux.LibC.eventfd(0, 0));
        var server = new ControlServer(_socket, _rig.Controller, _rig.Log);
        _server = new Thread(() => server.Run(_stop)) { IsBackground = true };
        _server.Start();
    }

    public void Dispose()
    {
        unsafe { ulong v = 1; Tmds.Linux.LibC.write(_stop.Fd, &v, 8); }
        _server.Join();
        _socket.Dispose();
        _stop.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void A_session_list_longer_than_a_client_queue_arrives_whole()
    {
        _rig.SendSeed();
        const int count = 1000; // 18 datagrams: more than a unix datagram queue holds unread (10), within the rig's 1024 sessions
        for (int i = 0; i < count; i++)
            _rig.Frame(TestFrames.Udp(TestFrames.HostMac, TestFrames.UnicastAlias, TestFrames.ContainerIp, TestFrames.HostIp, (ushort)(10000 + i), 53));
        using var client = DpClient.Open(_socket.Path);
        var sessions = client.ListSessions();
        Assert.Equal(count, sessions.Count);
        Assert.Equal(Enumerable.Range(10000, count).Select(p => (ushort)p), sessions.Select(s => s.ClientPort).Order());
        Assert.Equal((uint)count, client.CountSessions().Udp);
    }

    [Fact]
    public void The_client_socket_is_private_and_removed_afterwards()
    {
        string path;
        using (var client = DpClient.Open(_socket.Path))
        {
            path = client.LocalPath;
            Assert.StartsWith($"{DpClient.ClientPathPrefix}{Environment.ProcessId}.", path);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.True(client.KeepAlive());
        }
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Apply_reports_a_rejection_with_the_daemons_reason_and_Exchange_separates_the_replies()
    {
        using var client = DpClient.Open(_socket.Path);
        var e = Assert.Throws<DatapathRejectedException>(() => client.Apply("""{"ctrl_bogus": {}}"""u8));
        Assert.Contains("ctrl_bogus: unknown command", e.Reason);
        var result = client.Exchange("""{"ctrl_keep_alive": {"seq_num": 9}, "ctrl_count_session": {}}"""u8);
        Assert.True(result.Accepted);
        Assert.Equal(2, result.Replies.Count);
        Assert.Equal(9u, DpReplyReader.KeepAlive(result.Replies[0]));
        Assert.Equal(1, result.State!.RequestsRejected);
    }

    [Fact]
    public void Nothing_bound_to_the_path_is_reported_as_not_responding()
    {
        using var missing = DpClient.Open(Path.Combine(_dir, "none.sock"));
        Assert.Equal(DpProbe.Missing, missing.Probe());
        Assert.Contains("it does not exist", Assert.Throws<DatapathNotRespondingException>(() => missing.Query()).Message);
    }

    [Fact]
    public void A_policy_edit_is_written_in_chunks_and_one_made_from_an_older_version_is_refused()
    {
        _rig.SendSeed();
        using var client = DpClient.Open(_socket.Path);
        const string mac = "1a:27:f3:87:3a:27";
        var first = DpPolicyEditor.Read(client);
        var second = DpPolicyEditor.Read(client); // a second client that read the same version
        var rules = Enumerable.Range(1, 300).Select(i => DpRule.Parse($"10.10.{i / 250}.{i % 250 + 1}", "any", $"{1000 + i}", "tcp")).ToList();
        var change = DpPolicyEditor.Replace(first.PolicyOf(mac), rules, DpPolicyAction.Deny);
        Assert.True(change.Datagrams.Count > 1);
        first.Write(change);
        var now = first.ReadAgain(mac);
        Assert.Equal((DpWorkloadMode.Protect, 300), (now.Mode, now.Rules.Length));
        Assert.Equal(Enumerable.Range(1, 300).Select(i => (uint)i), now.Rules.Select(r => r.Id));

        var stale = DpPolicyEditor.AddRules(second.PolicyOf(mac), [DpRule.Parse("any", "any", "22", "tcp")]);
        var e = Assert.Throws<DatapathRejectedException>(() => second.Write(stale));
        Assert.Contains($"not at version {second.PolicyOf(mac).Version} the change was made from", e.Reason);
        Assert.Equal(300, second.ReadAgain(mac).Rules.Length);
    }
}
