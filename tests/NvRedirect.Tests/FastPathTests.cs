using System;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using NvRedirect.Core.Bpf;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Tc;
using Xunit;

namespace NvRedirect.Tests;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class BpfMapTests
{
    [Fact]
    public void Map_fd_load_is_ld_imm64_with_pseudo_map_fd_in_two_slots()
    {
        // BPF_LD | BPF_IMM | BPF_DW (0x18), src = BPF_PSEUDO_MAP_FD (1), dst r1, imm = fd; the second slot holds the upper half (0)
        var bytes = new BpfAssembler().LoadMapFd(Reg.R1, 7).ToBytes();
        Assert.Equal(Convert.FromHexString("1811000007000000" + "0000000000000000"), bytes);
    }

    [Fact]
    public void Atomic_add_and_register_stores_encode_as_the_uapi_says()
    {
        var bytes = new BpfAssembler().AtomicAdd64(Reg.R7, 8, Reg.R1).StoreU64(Reg.R7, 16, Reg.R0).StoreU8(Reg.R10, -12, Reg.R1)
            .StoreU8(Reg.R10, -11, 1).LoadU64(Reg.R2, Reg.R7, 0).ToBytes();
        Assert.Equal(Convert.FromHexString("db17080000000000" + "7b07100000000000" + "731af4ff00000000" + "720af5ff01000000" + "7972000000000000"), bytes);
    }

    [Fact]
    public void Flow_key_is_addresses_and_ports_as_on_the_wire_then_protocol_and_direction()
    {
        var key = new byte[FastPathFlow.KeySize];
        FastPathFlow.WriteKey(key, 0xc0000201, 0xc0000202, 40000, 80, 6, FastPathDirection.FromWorkload);
        Assert.Equal(Convert.FromHexString("c0000201" + "c0000202" + "9c40" + "0050" + "06" + "01" + "0000"), key);
    }

    [RootFact]
    public void Hash_map_updates_looks_up_walks_and_deletes()
    {
        using var map = BpfMap.CreateHash(4, 8, 16, "xut_map");
        Assert.True(map.Id > 0);
        Span<byte> value = stackalloc byte[8];
        Assert.False(map.TryLookup([1, 0, 0, 0], value));
        map.Update([1, 0, 0, 0], BitConverter.GetBytes(11L));
        map.Update([2, 0, 0, 0], BitConverter.GetBytes(22L), BpfUpdate.NoExist);
        Assert.True(map.TryLookup([2, 0, 0, 0], value));
        Assert.Equal(22L, BitConverter.ToInt64(value));
        var e = Assert.Throws<NetlinkException>(() => map.Update([2, 0, 0, 0], BitConverter.GetBytes(0L), BpfUpdate.NoExist));
        Assert.Equal(17, e.Errno);
        Assert.Throws<NetlinkException>(() => map.Update([3, 0, 0, 0], BitConverter.GetBytes(0L), BpfUpdate.Exist));

        var seen = new System.Collections.Generic.List<byte>();
        var key = new byte[4];
        var next = new byte[4];
        for (bool more = map.TryGetNextKey(default, next); more; more = map.TryGetNextKey(key, next))
        {
            seen.Add(next[0]);
            next.CopyTo(key, 0);
        }
        Assert.Equal(new byte[] { 1, 2 }, seen.Order().ToArray());

        Assert.True(map.Delete([1, 0, 0, 0]));
        Assert.False(map.Delete([1, 0, 0, 0]));
        Assert.Equal(1, map.Clear());
        Assert.False(map.TryGetNextKey(default, next));
        Assert.Throws<ArgumentException>(() => map.Update([1, 0, 0], BitConverter.GetBytes(0L)));
    }

    [RootFact]
    public void Pinned_map_is_the_same_map_from_its_path_and_unpinning_forgets_it()
    {
        using var netns = TestNamespace.Create("pin"); // a real one: maps of namespaces that are gone are swept
        var ns = netns.Name;
        byte[] mac = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
        try
        {
            using var created = FastPathMap.CreateOrOpen(ns, mac);
            var key = new byte[FastPathFlow.KeySize];
            FastPathFlow.WriteKey(key, 0xc0000201, 0xc0000202, 1, 2, 17, FastPathDirection.ToWorkload);
            created.Update(key, new byte[FastPathFlow.ValueSize]);
            Assert.Equal(FastPathMap.Root + "/" + ns + "/02005e100001", FastPathMap.PathFor(ns, mac));
            Assert.Equal(System.IO.UnixFileMode.UserRead | System.IO.UnixFileMode.UserWrite | System.IO.UnixFileMode.UserExecute, System.IO.File.GetUnixFileMode(FastPathMap.DirectoryFor(ns)));
            using (var opened = FastPathMap.Open(ns, mac)!)
            {
                Assert.Equal(created.Id, opened.Id);
                Assert.True(opened.TryLookup(key, new byte[FastPathFlow.ValueSize]));
            }
            using (var again = FastPathMap.CreateOrOpen(ns, mac)) Assert.Equal(created.Id, again.Id);
            Assert.Equal(1, FastPathMap.ClearAll(ns));
            created.Update(key, new byte[FastPathFlow.ValueSize]);
            Assert.True(FastPathMap.Remove(ns, mac));
            // emptied before it was unpinned: a holder of the old map sees no published flow
            Assert.False(created.TryLookup(key, new byte[FastPathFlow.ValueSize]));
            Assert.Null(FastPathMap.Open(ns, mac));
            Assert.False(FastPathMap.Remove(ns, mac));
        }
        finally
        {
            FastPathMap.Remove(ns, mac);
            if (System.IO.Directory.Exists(FastPathMap.DirectoryFor(ns))) System.IO.Directory.Delete(FastPathMap.DirectoryFor(ns));
        }
    }

    [RootFact]
    public void Maps_of_a_namespace_that_is_gone_are_swept()
    {
        byte[] mac = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02];
        string ns;
        using (var netns = TestNamespace.Create("gone"))
        {
            ns = netns.Name;
            FastPathMap.CreateOrOpen(ns, mac).Dispose();
            Assert.True(System.IO.File.Exists(FastPathMap.PathFor(ns, mac)));
        }
        Assert.True(FastPathMap.SweepGoneNamespaces() >= 1);
        Assert.False(System.IO.Directory.Exists(FastPathMap.DirectoryFor(ns)));
    }

    [Fact]
    public void Namespace_names_that_would_leave_the_directory_are_refused()
    {
        Assert.Throws<ArgumentException>(() => FastPathMap.DirectoryFor("../etc"));
        Assert.Throws<ArgumentException>(() => FastPathMap.DirectoryFor(".."));
        Assert.Equal(FastPathMap.Root + "/-", FastPathMap.DirectoryFor(""));
        Assert.Equal(FastPathMap.Root + "/%2Fproc%2F1%2Fns%2Fnet", FastPathMap.DirectoryFor("/proc/1/ns/net"));
    }
}

public class FastPathProgramTests
{
    private static readonly byte[] Workload = Convert.FromHexString("1a27f3873a27");

    // The entry-port program for workload 1a:27:f3:87:3a:27, redirecting to ifindex 9, map fd 5; accepted by the verifier
    // of kernel 6.18 (docs/datapath.md, "The kernel fast path", explains it instruction by instruction).
    private const string EntryListing =
        "bf16000000000000 b702000000000000 bfa3000000000000 07030000ceffffff b704000026000000 850000001a000000 " +
        "55003b0000000000 69a1ceff00000000 560139001a270000 61a1d0ff00000000 56013700f3873a27 69a1daff00000000 " +
        "5601350008000000 71a1dcff00000000 5601330045000000 69a1e2ff00000000 450131003fff0000 71a1e5ff00000000 " +
        "15011b0011000000 15010c0001000000 55012d0006000000 bf61000000000000 b70200002f000000 bfa3000000000000 " +
        "07030000f8ffffff b704000001000000 850000001a000000 5500260000000000 71a1f8ff00000000 4501240007000000 " +
        "b701000006000000 05000e0000000000 bf61000000000000 b702000022000000 bfa3000000000000 07030000f8ffffff " +
        "b704000006000000 850000001a000000 55001b0000000000 71a1f8ff00000000 1501010008000000 5501180000000000 " +
        "69a1fcff00000000 6b1af0ff00000000 6b1af2ff00000000 b701000001000000 731af4ff00000000 720af5ff00000000 " +
        "6a0af6ff00000000 1811000005000000 0000000000000000 bfa2000000000000 07020000e8ffffff 8500000001000000 " +
        "15000b0000000000 bf07000000000000 b701000001000000 db17000000000000 6161000000000000 db17080000000000 " +
        "8500000005000000 7b07100000000000 b701000009000000 b702000000000000 8500000017000000 9500000000000000 " +
        "b7000000ffffffff 9500000000000000";

    private static byte[] Hex(string s) => Convert.FromHexString(string.Concat(s.Where(c => !char.IsWhiteSpace(c))));

    [Fact]
    public void Entry_program_matches_the_verified_listing()
    {
        var program = new FastPathProgram(FastPathDirection.ToWorkload, Workload, 9, 5).Assemble();
        Assert.Equal(Hex(EntryListing), program);
    }

    [Fact]
    public void Inner_program_differs_only_in_the_mac_it_compares_the_direction_and_the_target()
    {
        var program = new FastPathProgram(FastPathDirection.FromWorkload, Workload, 4, 5).Assemble();
        var expected = Hex(EntryListing);
        void Put(int insn, string hex) => Hex(hex).CopyTo(expected, insn * 8);
        // 7-10: the source MAC (u32 at frame 6 = fp-44, u16 at frame 10 = fp-40); 47: direction 1; 62: target 4
        Put(7, "61a1d4ff00000000"); Put(8, "560139001a27f387"); Put(9, "69a1d8ff00000000"); Put(10, "560137003a270000");
        Put(47, "720af5ff01000000"); Put(62, "b701000004000000");
        Assert.Equal(expected, program);
    }

    [Fact]
    public void Peer_variant_calls_bpf_redirect_peer_instead()
    {
        var expected = Hex(EntryListing);
        Hex("850000009b000000").CopyTo(expected, 64 * 8); // helper 155
        Assert.Equal(expected, new FastPathProgram(FastPathDirection.ToWorkload, Workload, 9, 5, ToPeer: true).Assemble());
    }

    [RootTheory]
    [InlineData(FastPathDirection.ToWorkload, false)]
    [InlineData(FastPathDirection.FromWorkload, false)]
    [InlineData(FastPathDirection.ToWorkload, true)]
    public void Kernel_verifier_accepts_the_program_with_a_real_map(FastPathDirection direction, bool toPeer)
    {
        using var map = BpfMap.CreateHash(FastPathFlow.KeySize, FastPathFlow.ValueSize, 16, "xut_fastpath");
        using var fd = BpfProgram.LoadSchedCls(new FastPathProgram(direction, Workload, 1, map.Fd, toPeer).Assemble(), "xut_fastpath");
        Assert.False(fd.IsInvalid);
    }

    [RootFact]
    public void Program_with_a_closed_map_fd_is_refused_with_the_reason()
    {
        var e = Assert.ThrowsAny<NetlinkException>(() => BpfProgram.LoadSchedCls(new FastPathProgram(FastPathDirection.ToWorkload, Workload, 1, 999).Assemble()));
        Assert.Contains("fd 999", e.Message);
    }

    [RootFact]
    public void Probe_says_this_kernel_supports_the_fast_path()
    {
        var (supported, reason) = FastPathFilters.Probe();
        Assert.True(supported, reason);
        Assert.True(FastPathFilters.PeerSupported, "kernel 6.18 has bpf_redirect_peer");
    }
}

/// <summary>
/// The programs on real ports: client namespace (c0) - agent namespace (vex | vin) - workload namespace (w0), with
/// only the fast path on vex and vin (no steering): a datagram crosses exactly when its flow is published, and the
/// map counts it.
/// </summary>
public class FastPathForwardingTests
{
    private const string ClientIp = "192.0.2.1", WorkloadIp = "192.0.2.2";

    private sealed class Topology : IDisposable
    {
        public readonly TestNamespace Client = TestNamespace.Create("fpc"), Agent = TestNamespace.Create("fpa"), Workload = TestNamespace.Create("fpw");
        public byte[] WorkloadMac = [];
        public byte[] ClientMac = [];

        public Topology()
        {
            try
            {
                Ip.Run("link", "add", "c0", "netns", Client.Name, "type", "veth", "peer", "name", "vex", "netns", Agent.Name);
                Ip.Run("link", "add", "w0", "netns", Workload.Name, "type", "veth", "peer", "name", "vin", "netns", Agent.Name);
                foreach (var (ns, link, ip) in new[] { (Client, "c0", ClientIp), (Workload, "w0", WorkloadIp) })
                {
                    Ip.Run("-n", ns.Name, "addr", "add", ip + "/24", "dev", link);
                    Ip.Run("-n", ns.Name, "link", "set", link, "up");
                }
                foreach (var link in new[] { "vex", "vin" }) Ip.Run("-n", Agent.Name, "link", "set", link, "up");
                ClientMac = Client.Handle.GetLink("c0").Address;
                WorkloadMac = Workload.Handle.GetLink("w0").Address;
                // no ARP crosses the fast path: the neighbours are static
                Ip.Run("-n", Client.Name, "neigh", "add", WorkloadIp, "lladdr", NvRedirect.Core.Model.Parse.Mac(WorkloadMac), "dev", "c0", "nud", "permanent");
                Ip.Run("-n", Workload.Name, "neigh", "add", ClientIp, "lladdr", NvRedirect.Core.Model.Parse.Mac(ClientMac), "dev", "w0", "nud", "permanent");
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public Socket Udp(TestNamespace ns, string ip, int port) => NamespaceThread.RunIn(NetworkNamespace.PathOf(ns.Name), () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(IPAddress.Parse(ip), port));
            s.ReceiveTimeout = 300;
            return s;
        });

        public void Dispose()
        {
            Client.Dispose();
            Agent.Dispose();
            Workload.Dispose();
        }
    }

    private static bool Receives(Socket from, Socket to, string toIp, int toPort, byte[] payload)
    {
        from.SendTo(payload, new IPEndPoint(IPAddress.Parse(toIp), toPort));
        var buffer = new byte[2048];
        try { return to.Receive(buffer) == payload.Length; }
        catch (SocketException) { return false; }
    }

    [RootTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Published_flow_crosses_both_ways_and_is_counted_unpublished_does_not(bool toPeer)
    {
        using var t = new Topology();
        using var map = BpfMap.CreateHash(FastPathFlow.KeySize, FastPathFlow.ValueSize, 64, "xut_fastpath");
        var h = t.Agent.Handle;
        var tc = new TrafficControl(h);
        var vex = h.GetLink("vex");
        var vin = h.GetLink("vin");
        foreach (var (link, direction, target) in new[] { (vex, FastPathDirection.ToWorkload, vin.Index), (vin, FastPathDirection.FromWorkload, vex.Index) })
        {
            tc.EnsureIngressQdisc(link.Index);
            using var fd = BpfProgram.LoadSchedCls(new FastPathProgram(direction, t.WorkloadMac, target, map.Fd, toPeer).Assemble(), "xut_fastpath");
            h.Socket.Execute(TcMessages.AddFilter(new BpfFilter { LinkIndex = link.Index, Priority = 10000, Protocol = TcProtocol.IPv4, Name = "xut-fastpath" }, fd.Fd), "attach");
        }
        using var client = t.Udp(t.Client, ClientIp, 40000);
        using var server = t.Udp(t.Workload, WorkloadIp, 5353);
        var payload = new byte[100];

        Assert.False(Receives(client, server, WorkloadIp, 5353, payload)); // not published: nothing forwards on vex

        var inKey = new byte[FastPathFlow.KeySize];
        var outKey = new byte[FastPathFlow.KeySize];
        FastPathFlow.WriteKey(inKey, 0xc0000201, 0xc0000202, 40000, 5353, 17, FastPathDirection.ToWorkload);
        FastPathFlow.WriteKey(outKey, 0xc0000202, 0xc0000201, 5353, 40000, 17, FastPathDirection.FromWorkload);
        map.Update(inKey, new byte[FastPathFlow.ValueSize]);
        Assert.True(Receives(client, server, WorkloadIp, 5353, payload));   // published one way: the requests cross...
        Assert.True(Receives(client, server, WorkloadIp, 5353, payload));
        Assert.False(Receives(server, client, ClientIp, 40000, payload));  // ...the answers do not
        map.Update(outKey, new byte[FastPathFlow.ValueSize]);
        Assert.True(Receives(server, client, ClientIp, 40000, payload));

        var value = new byte[FastPathFlow.ValueSize];
        Assert.True(map.TryLookup(inKey, value));
        var (packets, bytes, last) = FastPathFlow.ReadValue(value);
        Assert.Equal(2UL, packets);                       // the two that crossed (not the one sent before the publish)
        Assert.Equal(2UL * (14 + 20 + 8 + 100), bytes);   // whole frames
        ulong now = (ulong)(System.Diagnostics.Stopwatch.GetTimestamp() * (1_000_000_000.0 / System.Diagnostics.Stopwatch.Frequency));
        Assert.InRange(last, now - 10_000_000_000UL, now);
        Assert.True(map.TryLookup(outKey, value));
        Assert.Equal(1UL, FastPathFlow.ReadValue(value).Packets);

        // revoked: the next datagram does not cross
        Assert.True(map.Delete(inKey));
        Assert.False(Receives(client, server, WorkloadIp, 5353, payload));
        // another port of the same hosts was never published
        using var other = t.Udp(t.Client, ClientIp, 40001);
        map.Update(inKey, new byte[FastPathFlow.ValueSize]);
        Assert.False(Receives(other, server, WorkloadIp, 5353, payload));
    }
}

public class FastPathRevocationTests
{
    private static Datapath.Engine.Workload W(ulong mac) => new("vth", mac, 0x4e6575560000UL | (mac & 0xffff), 0, 0, [], [], new Datapath.Engine.WorkloadState());

    [Fact]
    public void A_configuration_change_revokes_exactly_the_workloads_it_touches()
    {
        var a = W(0x020000000001); var b = W(0x020000000002); var c = W(0x020000000003);
        var before = new Datapath.Engine.WorkloadTable([a, b, c]);
        // b gets another policy object (a policy or mode change), c is deleted, a is untouched
        var after = new Datapath.Engine.WorkloadTable([a, b.WithPolicy(null)]);
        Assert.Equal(new ulong[] { 0x020000000002, 0x020000000003 }, Datapath.Control.Controller.RevokedBy(before, after, [], false).Order().ToArray());
        // a tap switch alone revokes its workload
        Assert.Equal(new ulong[] { 0x020000000001 }, Datapath.Control.Controller.RevokedBy(before, before, [0x020000000001], false).ToArray());
        // a settings change (internal nets, ICMP policing, ...) revokes everything: 0
        Assert.Equal(new ulong[] { 0 }, Datapath.Control.Controller.RevokedBy(before, before, [], true).ToArray());
        Assert.Empty(Datapath.Control.Controller.RevokedBy(before, before, [], false));
    }
}
