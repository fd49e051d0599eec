using System;
using System.Diagnostics;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Threading.Tasks;
using NvRedirect.Datapath;
using NvRedirect.Datapath.Engine;
using NvRedirect.Links;
using NvRedirect.Namespaces;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// Real TCP through the datapath. Three namespaces: a host (h0, 192.0.2.1), a container (c0, 192.0.2.2, whose MAC
/// carries the NeuV prefix so plain u32 + mirred can steer without pedit, as in the reference run §6) and a working
/// namespace with vex/vin (the pair ends) and vbr&lt;-&gt;vth. tc sends the container's IPv4 frames to vbr, the engine
/// on vth writes them back, and tc delivers them by which MAC field holds the NeuV address. Offloads stay at the veth
/// defaults, so the host's TCP stack sends 64 KiB GSO frames with partial checksums and the container answers with
/// partial checksums: the big-frame and checksum paths both carry the connection.
/// </summary>
public class DatapathTcpTests
{
    private static void Tc(string ns, string args)
    {
        var psi = new ProcessStartInfo("tc") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-n");
        psi.ArgumentList.Add(ns);
        foreach (var a in args.Split(' ')) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"tc {args}: {err}");
    }

    private static Socket SocketIn(string ns) => NamespaceThread.RunIn(NetworkNamespace.PathOf(ns),
        () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));

    [DatapathRootFact]
    public void Tcp_connects_through_the_datapath_and_delivers_every_byte_only_when_inline()
    {
        string id = Guid.NewGuid().ToString("N")[..6];
        string host = $"nvrdp-h-{id}", container = $"nvrdp-c-{id}", work = $"nvrdp-w-{id}";
        var log = new Logger(null, false, keepInMemory: true);
        PacketEngine? engine = null;
        try
        {
            foreach (var n in new[] { host, container, work }) NetworkNamespace.Create(n);
            using (var w = RouteHandle.Open(work))
            {
                w.CreateVeth("vex", "h0", host);
                w.CreateVeth("vin", "c0", container);
                w.CreateVeth("vbr", "vth", work);
                foreach (var l in new[] { "vex", "vin", "vbr", "vth" }) w.SetUp(w.GetLink(l), true);
            }
            using (var h = RouteHandle.Open(host))
            {
                h.AddAddress(h.GetLink("h0"), IPAddress.Parse("192.0.2.1"), 24);
                h.SetUp(h.GetLink("h0"), true);
            }
            using (var c = RouteHandle.Open(container))
            {
                c.SetMacAddress(c.GetLink("c0"), Convert.FromHexString("4e6575560002"));
                c.AddAddress(c.GetLink("c0"), IPAddress.Parse("192.0.2.2"), 24);
                c.SetUp(c.GetLink("c0"), true);
            }
            foreach (var d in new[] { "vex", "vin", "vbr" }) Tc(work, $"qdisc add dev {d} ingress");
            const string ToContainer = "match u16 0x4e65 0xffff at -14 match u32 0x75560002 0xffffffff at -12";
            const string FromContainer = "match u32 0x4e657556 0xffffffff at -8 match u16 0x0002 0xffff at -4";
            Tc(work, $"filter add dev vex parent ffff: pref 1 protocol ip u32 {ToContainer} action mirred egress redirect dev vbr");
            Tc(work, "filter add dev vex parent ffff: pref 2 protocol all u32 match u8 0 0 action mirred egress redirect dev vin");
            Tc(work, $"filter add dev vin parent ffff: pref 1 protocol ip u32 {FromContainer} action mirred egress redirect dev vbr");
            Tc(work, "filter add dev vin parent ffff: pref 2 protocol all u32 match u8 0 0 action mirred egress redirect dev vex");
            Tc(work, $"filter add dev vbr parent ffff: pref 1 protocol all u32 {FromContainer} action mirred egress redirect dev vex");
            Tc(work, $"filter add dev vbr parent ffff: pref 2 protocol all u32 {ToContainer} action mirred egress redirect dev vin");

            engine = new PacketEngine(4096, DatapathClock.Monotonic, log);
            engine.AttachPort(engine.RealPorts(work)("vth", false));
            var state = new WorkloadState { Tap = true };
            engine.Workloads.Publish(new WorkloadTable([new Workload("vth", 0x020000000002, 0x4e6575560002, 0, 0, [], [], state)]));

            using var listener = SocketIn(container);
            listener.Bind(new IPEndPoint(IPAddress.Parse("192.0.2.2"), 9000));
            listener.Listen(4);

            // tap on: dp inspects but transmits nothing, so the handshake never completes
            using (var tapped = SocketIn(host))
            {
                var attempt = tapped.ConnectAsync(new IPEndPoint(IPAddress.Parse("192.0.2.2"), 9000));
                Assert.False(attempt.Wait(TimeSpan.FromSeconds(3)), "TCP connected although the workload is in tap mode");
                Assert.True(engine.Counters.TapPackets > 0);
                Assert.Equal(0, engine.Counters.ForwardPackets);
            }

            state.Tap = false;
            var data = RandomNumberGenerator.GetBytes(24 << 20);
            var receive = Task.Run(() =>
            {
                using var peer = listener.Accept();
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[1 << 16];
                long total = 0;
                int n;
                while ((n = peer.Receive(buffer)) > 0) { hash.AppendData(buffer, 0, n); total += n; }
                return (total, hash.GetHashAndReset());
            });
            using (var client = SocketIn(host))
            {
                client.Connect(new IPEndPoint(IPAddress.Parse("192.0.2.2"), 9000));
                client.Send(data);
                client.Shutdown(SocketShutdown.Send);
            }
            Assert.True(receive.Wait(TimeSpan.FromSeconds(60)), "the transfer did not finish");
            var (received, digest) = receive.Result;
            Assert.Equal(data.Length, received);
            Assert.Equal(SHA256.HashData(data), digest);

            var counters = engine.Counters;
            Assert.True(counters.LargeFrames > 0, "no GSO frame came through (offloads off on this kernel?)");
            Assert.True(counters.ChecksumsCompleted > 0, "no partial checksum was completed");
            Assert.Equal(0, counters.TxErrors);
            Assert.Equal(0, counters.LostLargeFrames);
            var sessions = engine.OnPacketThread(() => engine.Sessions.Snapshot(engine.Clock.NowSeconds));
            Assert.Contains(sessions, s => s.Protocol == 6 && s.ServerPort == 9000 && (s.Flags & SessionFlags.Ingress) != 0
                && s.ClientPackets > 0 && s.ServerPackets > 0);
        }
        finally
        {
            engine?.Dispose();
            foreach (var n in new[] { host, container, work })
                if (NetworkNamespace.Exists(n)) NetworkNamespace.Delete(n);
        }
    }
}
