using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Threading.Tasks;
using NvRedirect.Core.Datapath;
using NvRedirect.Datapath;
using NvRedirect.Datapath.Engine;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Tests.Tc;
using Xunit;

using NvRedirect.Core.Protocol;

namespace NvRedirect.Tests;

/// <summary>
/// Real TCP through the datapath. Three namespaces: a host (h0, 192.0.2.1), a container (c0, 192.0.2.2, whose MAC
/// carries the NeuV prefix so plain u32 + mirred can steer without pedit) and a working
/// namespace with vex/vin (the pair ends) and vbr&lt;-&gt;vth. tc sends the container's IPv4 frames to vbr, the engine
/// on vth writes them back, and tc delivers them by which MAC field holds the NeuV address. Offloads stay at the veth
/// defaults, so the host's TCP stack sends 64 KiB GSO frames with partial checksums and the container answers with
/// partial checksums: the big-frame and checksum paths both carry the connection.
/// </summary>
public class DatapathTcpTests
{
    private static void Tc(TestNamespace ns, string args) => ns.TcOk(args.Split(' '));

    private static Socket SocketIn(string ns) => NamespaceThread.RunIn(NetworkNamespace.PathOf(ns),
        () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));

    // host h0 192.0.2.1 <-> vex | work (vbr<->vth, tc steering by the container's NeuV MAC) | vin <-> c0 192.0.2.2 container
    private static void Build(TestNamespace host, TestNamespace container, TestNamespace work)
    {
        var w = work.Handle;
        w.CreateVeth("vex", "h0", host.Name);
        w.CreateVeth("vin", "c0", container.Name);
        w.CreateVeth("vbr", "vth", work.Name);
        foreach (var l in new[] { "vex", "vin", "vbr", "vth" }) w.SetUp(w.GetLink(l), true);
        var h = host.Handle;
        h.AddAddress(h.GetLink("h0"), IPAddress.Parse("192.0.2.1"), 24);
        h.SetUp(h.GetLink("h0"), true);
        var c = container.Handle;
        c.SetMacAddress(c.GetLink("c0"), Convert.FromHexString("4e6575560002"));
        c.AddAddress(c.GetLink("c0"), IPAddress.Parse("192.0.2.2"), 24);
        c.SetUp(c.GetLink("c0"), true);
        foreach (var d in new[] { "vex", "vin", "vbr" }) Tc(work, $"qdisc add dev {d} ingress");
        const string ToContainer = "match u16 0x4e65 0xffff at -14 match u32 0x75560002 0xffffffff at -12";
        const string FromContainer = "match u32 0x4e657556 0xffffffff at -8 match u16 0x0002 0xffff at -4";
        Tc(work, $"filter add dev vex parent ffff: pref 1 protocol ip u32 {ToContainer} action mirred egress redirect dev vbr");
        Tc(work, "filter add dev vex parent ffff: pref 2 protocol all u32 match u8 0 0 action mirred egress redirect dev vin");
        Tc(work, $"filter add dev vin parent ffff: pref 1 protocol ip u32 {FromContainer} action mirred egress redirect dev vbr");
        Tc(work, "filter add dev vin parent ffff: pref 2 protocol all u32 match u8 0 0 action mirred egress redirect dev vex");
        Tc(work, $"filter add dev vbr parent ffff: pref 1 protocol all u32 {FromContainer} action mirred egress redirect dev vex");
        Tc(work, $"filter add dev vbr parent ffff: pref 2 protocol all u32 {ToContainer} action mirred egress redirect dev vin");
    }

    // the three namespaces with unique names, steering in place, and a packet engine on vth; all removed on Dispose
    private sealed class Topology : IDisposable
    {
        private readonly List<TestNamespace> _namespaces = [];
        public readonly string Host, Container, Work;
        public readonly PacketEngine Engine;

        public Topology()
        {
            try
            {
                foreach (var purpose in new[] { "host", "container", "work" }) _namespaces.Add(TestNamespace.Create(purpose));
                (Host, Container, Work) = (_namespaces[0].Name, _namespaces[1].Name, _namespaces[2].Name);
                Build(_namespaces[0], _namespaces[1], _namespaces[2]);
                Engine = new PacketEngine(4096, DatapathClock.Monotonic, new Logger(null, false, keepInMemory: true));
                Engine.AttachPort(Engine.RealPorts(Work)("vth", false));
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            Engine?.Dispose();
            foreach (var ns in _namespaces) ns.Dispose();
        }
    }

    [RootFact]
    public void Tcp_connects_through_the_datapath_and_delivers_every_byte_only_when_inline()
    {
        using var rig = new Topology();
        var (host, container, engine) = (rig.Host, rig.Container, rig.Engine);
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

    /// <summary>
    /// Policy on real TCP: a connection that passed under a Learn default is reset when the policy turns to Deny (both
    /// ends see ECONNRESET, neither hangs), a new connection is refused (its SYNs dropped), and an allow rule for the
    /// port lets new connections through again.
    /// </summary>
    [RootFact]
    public void A_policy_change_resets_an_open_connection_at_both_ends_and_refuses_new_ones_until_allowed()
    {
        using var rig = new Topology();
        var (host, container, engine) = (rig.Host, rig.Container, rig.Engine);
        var state = new WorkloadState { Tap = false };
        Workload With(Policy p) => new("vth", 0x020000000002, 0x4e6575560002, 0, 0, [], [], state, p);
        engine.Workloads.Publish(new WorkloadTable([With(new Policy(1, DpPolicyAction.Learn, DpDirection.Both, []))]));

        using var listener = SocketIn(container);
        listener.Bind(new IPEndPoint(IPAddress.Parse("192.0.2.2"), 9000));
        listener.Listen(4);
        using var client = SocketIn(host);
        client.ReceiveTimeout = 5000;
        client.Connect(new IPEndPoint(IPAddress.Parse("192.0.2.2"), 9000));
        using var server = listener.Accept();
        server.ReceiveTimeout = 5000;
        var buffer = new byte[4096];
        client.Send("hello"u8);
        Assert.Equal(5, server.Receive(buffer));
        server.Send("world"u8);
        Assert.Equal(5, client.Receive(buffer));

        engine.Workloads.Publish(new WorkloadTable([With(new Policy(2, DpPolicyAction.Deny, DpDirection.Both, []))]));
        // the next segment (this send, or a late ACK of the client's) is dropped and both ends are reset: the client
        // sees ECONNRESET on the send or on the receive after it, never a hang (ReceiveTimeout would say "TimedOut")
        var clientError = Assert.Throws<SocketException>(() => { client.Send("more"u8); client.Receive(buffer); });
        Assert.Equal(SocketError.ConnectionReset, clientError.SocketErrorCode);
        var serverError = Assert.Throws<SocketException>(() => server.Receive(buffer));
        Assert.Equal(SocketError.ConnectionReset, serverError.SocketErrorCode);
        Assert.Equal(1, engine.Counters.ResetsSent);

        using (var refused = SocketIn(host))
        {
            var attempt = refused.ConnectAsync(new IPEndPoint(IPAddress.Parse("192.0.2.2"), 9000));
            Assert.False(attempt.Wait(TimeSpan.FromSeconds(3)), "a new connection passed a Deny policy");
            Assert.True(engine.Counters.DeniedSessions > 0);
        }

        uint hostIp = 0xc0000201, containerIp = 0xc0000202;
        var allow = new PolicyRule(7, hostIp, hostIp, containerIp, containerIp, 9000, 9000, 6, DpPolicyAction.Allow, Ingress: true);
        engine.Workloads.Publish(new WorkloadTable([With(new Policy(3, DpPolicyAction.Deny, DpDirection.Both, [allow]))]));
        using var again = SocketIn(host);
        again.ReceiveTimeout = 5000;
        again.Connect(new IPEndPoint(IPAddress.Parse("192.0.2.2"), 9000));
        using var accepted = listener.Accept();
        again.Send("again"u8);
        accepted.ReceiveTimeout = 5000;
        Assert.Equal(5, accepted.Receive(buffer));
        var sessions = engine.OnPacketThread(() => engine.Sessions.Snapshot(engine.Clock.NowSeconds));
        Assert.Contains(sessions, s => s.PolicyId == 7 && s.PolicyAction == DpPolicyAction.Allow && !s.Blocked);
    }
}
