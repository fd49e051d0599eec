using System;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Threading.Tasks;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>
/// The one keep-alive probe's judgement, against real unix datagram sockets at paths of this test's own (no root needed):
/// missing path, stale socket file, a socket that answers, one that stays silent, and one whose queue is full (EAGAIN).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class KeepAliveProbeTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromMilliseconds(300);

    private static string NewPath() => Path.Combine(Path.GetTempPath(), $"nvt-probe-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..12]}.sock");

    private static Socket Bound(string path)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        s.Bind(new UnixDomainSocketEndPoint(path));
        return s;
    }

    [Fact]
    public void A_missing_path_is_Missing_and_a_socket_nothing_is_bound_to_is_Stale()
    {
        var path = NewPath();
        Assert.Equal(DpProbe.Missing, KeepAliveProbe.Run(path, Wait));
        Assert.Equal(DpProbe.Missing, KeepAliveProbe.Run(path + "/below-a-socket", Wait));
        try
        {
            DatapathControlSocketTests.BindAndClose(path); // the file stays, nothing is bound to it: what a killed daemon leaves
            Assert.True(File.Exists(path));
            Assert.Equal(DpProbe.Stale, KeepAliveProbe.Run(path, Wait));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public async Task A_socket_that_answers_is_Answered_and_one_that_does_not_is_Silent()
    {
        var path = NewPath();
        try
        {
            using var server = Bound(path);
            Assert.Equal(DpProbe.Silent, KeepAliveProbe.Run(path, Wait)); // bound, reads nothing
            var answering = Task.Run(() =>
            {
                var buffer = new byte[512];
                EndPoint from = new UnixDomainSocketEndPoint("/");
                while (true)
                {
                    int n = server.ReceiveFrom(buffer, ref from);
                    using var doc = JsonDocument.Parse(buffer.AsMemory(0, n));
                    foreach (var c in doc.RootElement.EnumerateObject())
                        if (Datagram.Read(c.Name, c.Value) is KeepAliveRequest k)
                        {
                            // the silent probe's request is first in the queue; its sender is gone by now
                            try { server.SendTo(Replies.KeepAlive(k.Sequence), from); return; }
                            catch (SocketException) { }
                        }
                }
            });
            Assert.Equal(DpProbe.Answered, KeepAliveProbe.Run(path, TimeSpan.FromSeconds(5)));
            await answering.WaitAsync(TimeSpan.FromSeconds(5));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void A_socket_whose_queue_is_full_is_Silent_never_Stale()
    {
        var path = NewPath();
        try
        {
            using var server = Bound(path);
            using var filler = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
            filler.Connect(new UnixDomainSocketEndPoint(path));
            int sent = 0;
            try { while (sent < 100_000) { filler.Send(new byte[64]); sent++; } }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock) { }
            Assert.InRange(sent, 1, 99_999); // the queue filled up: the next datagram gets EAGAIN
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Assert.Equal(DpProbe.Silent, KeepAliveProbe.Run(path, TimeSpan.FromSeconds(30)));
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the probe waited {clock.Elapsed} instead of judging the full queue at once");
        }
        finally { File.Delete(path); }
    }
}
