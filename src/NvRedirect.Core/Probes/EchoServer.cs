using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using NvRedirect.Core.Namespaces;

namespace NvRedirect.Core.Probes;

/// <summary>What an echo server saw.</summary>
public enum EchoEventKind
{
    /// <summary>A TCP connection was accepted.</summary>
    Accept,
    /// <summary>The client closed its TCP connection (FIN).</summary>
    Close,
    /// <summary>The TCP connection was reset (ECONNRESET or EPIPE).</summary>
    Reset,
    /// <summary>Another socket error ended the TCP connection (Detail says which).</summary>
    Error,
    /// <summary>A UDP datagram arrived (and was sent back).</summary>
    Datagram,
}

/// <summary>One event of an echo server.</summary>
/// <param name="Time">When (UTC).</param>
/// <param name="Kind">Accept, Close, Reset, Error or Datagram.</param>
/// <param name="Protocol">TCP or UDP.</param>
/// <param name="Port">The server's port.</param>
/// <param name="Peer">The client's address.</param>
/// <param name="PeerPort">The client's port.</param>
/// <param name="Detail">The socket error of an Error event.</param>
public sealed record EchoServerEvent(DateTime Time, EchoEventKind Kind, ProbeProtocol Protocol, int Port, IPAddress Peer, int PeerPort, string? Detail = null);

/// <summary>
/// A TCP and UDP echo server inside a namespace, living in this process: every TCP byte and UDP datagram goes back
/// unchanged, and every accept, close, reset and datagram is recorded as an event. Its sockets are created on a
/// dedicated thread inside the namespace; one background thread serves them all until <see cref="Stop"/>, which ends
/// the thread and closes every socket (open connections with a FIN, or with an RST when aborting). Servers are listed
/// in <see cref="Running"/>; <see cref="StopAll"/> stops them all (the module calls it when removed; background
/// threads never keep the process alive, and the kernel closes the sockets when the process ends).
/// </summary>
public sealed class EchoServer
{
    private const int MaxEvents = 10_000;
    private static readonly ConcurrentDictionary<int, EchoServer> Registry = new();
    private static int _lastId;

    private readonly Dictionary<Socket, int> _listeners = new(), _udp = new();
    private readonly Dictionary<Socket, (int Port, IPEndPoint Peer)> _connections = new();
    private readonly List<EchoServerEvent> _events = new();
    private readonly Thread _thread;
    private volatile bool _stopping;
    private long _accepted, _datagrams;

    /// <summary>A number for this server in this process (1, 2...).</summary>
    public int Id { get; }
    /// <summary>The namespace it listens in, as the user named it ("" = root).</summary>
    public string Namespace { get; }
    /// <summary>The address it listens on (:: with IPv4 mapped, that is every address of both families, unless one was given).</summary>
    public IPAddress Address { get; }
    /// <summary>The TCP ports it listens on (a requested 0 shows the port the kernel chose).</summary>
    public int[] TcpPort { get; }
    /// <summary>The UDP ports it answers on.</summary>
    public int[] UdpPort { get; }
    /// <summary>False once stopped.</summary>
    public bool IsRunning => !_stopping;
    /// <summary>TCP connections accepted so far.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);
    /// <summary>UDP datagrams answered so far.</summary>
    public long Datagrams => Interlocked.Read(ref _datagrams);
    /// <summary>TCP connections open now.</summary>
    public int OpenConnections { get { lock (_connections) return _connections.Count; } }
    /// <summary>What it saw, oldest first (the last 10000 events).</summary>
    public IReadOnlyList<EchoServerEvent> Events { get { lock (_events) return _events.ToArray(); } }

    /// <summary>The servers running in this process, oldest first.</summary>
    public static IReadOnlyList<EchoServer> Running => Registry.Values.OrderBy(s => s.Id).ToList();

    /// <summary>Whether <paramref name="id"/> was given to a server of this process (running or stopped).</summary>
    public static bool WasStarted(int id) => id >= 1 && id <= Volatile.Read(ref _lastId);

    /// <summary>Stops every server of this process.</summary>
    public static void StopAll() { foreach (var s in Registry.Values) s.Stop(false); }

    private EchoServer(string ns, IPAddress address, int[] tcp, int[] udp)
    {
        Id = Interlocked.Increment(ref _lastId);
        Namespace = ns;
        Address = address;
        TcpPort = tcp;
        UdpPort = udp;
        _thread = new Thread(Serve, maxStackSize: 256 * 1024) { IsBackground = true, Name = "nvredirect-echo" };
    }

    /// <summary>
    /// Starts a server in a namespace on the given ports (at least one); <paramref name="address"/> null listens on
    /// every address of both families. Nothing is left listening when any port cannot be bound.
    /// </summary>
    public static EchoServer Start(NamespaceTarget ns, IPAddress? address, IReadOnlyList<int> tcpPorts, IReadOnlyList<int> udpPorts)
    {
        if (tcpPorts.Count == 0 && udpPorts.Count == 0) throw new ArgumentException("An echo server needs at least one port: give -TcpPort, -UdpPort or both.");
        foreach (var p in tcpPorts.Concat(udpPorts))
            if (p < 0 || p > 65535) throw new ArgumentException($"Port {p} is out of range (0-65535; 0 lets the kernel choose).");
        var duplicate = tcpPorts.Where(p => p > 0).GroupBy(p => p).Concat(udpPorts.Where(p => p > 0).GroupBy(p => p)).FirstOrDefault(g => g.Count() > 1);
        if (duplicate != null) throw new ArgumentException($"Port {duplicate.Key} is given twice for the same protocol.");

        var sockets = new List<Socket>();
        try
        {
            var (bound, tcp, udp, listeners, datagramSockets) = ns.RunIn(() => Bind(address, tcpPorts, udpPorts, sockets));
            var server = new EchoServer(ns.Display, bound, tcp, udp);
            for (int i = 0; i < listeners.Count; i++) server._listeners[listeners[i]] = tcp[i];
            for (int i = 0; i < datagramSockets.Count; i++) server._udp[datagramSockets[i]] = udp[i];
            Registry[server.Id] = server;
            server._thread.Start();
            return server;
        }
        catch
        {
            foreach (var s in sockets) s.Dispose();
            throw;
        }
    }

    // runs inside the namespace: creates and binds every socket (added to `made` at once, so a failure closes them all)
    private static (IPAddress, int[], int[], List<Socket>, List<Socket>) Bind(IPAddress? address, IReadOnlyList<int> tcpPorts, IReadOnlyList<int> udpPorts, List<Socket> made)
    {
        var bindTo = address ?? (Socket.OSSupportsIPv6 && CanCreateIPv6() ? IPAddress.IPv6Any : IPAddress.Any);
        Socket New(SocketType type, ProtocolType protocol)
        {
            var s = new Socket(bindTo.AddressFamily, type, protocol);
            made.Add(s);
            if (bindTo.Equals(IPAddress.IPv6Any)) s.DualMode = true;
            return s;
        }
        var listeners = new List<Socket>();
        var udp = new List<Socket>();
        var tcp = new int[tcpPorts.Count];
        var udpBound = new int[udpPorts.Count];
        for (int i = 0; i < tcpPorts.Count; i++)
        {
            var s = New(SocketType.Stream, ProtocolType.Tcp);
            // SO_REUSEADDR alone (a restarted server binds at once); .NET's ReuseAddress also sets SO_REUSEPORT, which
            // would let a second server share the port instead of failing
            s.SetRawSocketOption(1 /* SOL_SOCKET */, 2 /* SO_REUSEADDR */, BitConverter.GetBytes(1));
            BindOrExplain(s, bindTo, tcpPorts[i], "TCP");
            s.Listen(64);
            s.Blocking = false;
            tcp[i] = ((IPEndPoint)s.LocalEndPoint!).Port;
            listeners.Add(s);
        }
        for (int i = 0; i < udpPorts.Count; i++)
        {
            var s = New(SocketType.Dgram, ProtocolType.Udp);
            BindOrExplain(s, bindTo, udpPorts[i], "UDP");
            s.Blocking = false;
            udpBound[i] = ((IPEndPoint)s.LocalEndPoint!).Port;
            udp.Add(s);
        }
        return (bindTo, tcp, udpBound, listeners, udp);
    }

    private static bool CanCreateIPv6()
    {
        try { using var s = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp); return true; }
        catch (SocketException) { return false; }
    }

    private static void BindOrExplain(Socket s, IPAddress address, int port, string protocol)
    {
        try { s.Bind(new IPEndPoint(address, port)); }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new PortInUseException($"{protocol} port {port} is in use on {address} in this namespace; stop what listens there (Get-AgentEchoServer) or choose another port.", e);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressNotAvailable)
        {
            throw new ArgumentException($"{address} is not an address of this namespace; give one of its addresses (Get-AgentAddress) or leave -Address out.", e);
        }
    }

    /// <summary>Ends the server: its thread stops, then every socket closes; <paramref name="abort"/> resets open connections (RST) instead of closing them (FIN).</summary>
    public void Stop(bool abort)
    {
        if (!Registry.TryRemove(Id, out _)) return;
        _stopping = true;
        if (_thread.IsAlive && !_thread.Join(TimeSpan.FromSeconds(10)))
            throw new InvalidOperationException($"Echo server {Id} did not stop within 10 s.");
        lock (_connections)
        {
            foreach (var c in _connections.Keys)
            {
                if (abort) c.LingerState = new LingerOption(true, 0); // SO_LINGER 0: close sends an RST
                c.Dispose();
            }
            _connections.Clear();
        }
        foreach (var s in _listeners.Keys.Concat(_udp.Keys)) s.Dispose();
    }

    private void Serve()
    {
        var buffer = new byte[65536];
        var ready = new List<Socket>();
        while (!_stopping)
        {
            ready.Clear();
            ready.AddRange(_listeners.Keys);
            ready.AddRange(_udp.Keys);
            lock (_connections) ready.AddRange(_connections.Keys);
            try { Socket.Select(ready, null, null, 100_000); } // 100 ms: how soon Stop is noticed
            catch (SocketException) { continue; }
            foreach (var s in ready)
            {
                if (_stopping) return;
                if (_listeners.TryGetValue(s, out int port)) Accept(s, port);
                else if (_udp.TryGetValue(s, out port)) Answer(s, port, buffer);
                else Echo(s, buffer);
            }
        }
    }

    private void Accept(Socket listener, int port)
    {
        Socket c;
        try { c = listener.Accept(); }
        catch (SocketException) { return; } // the client gave up between poll and accept
        c.SendTimeout = 1000; // a client that reads nothing never stalls the server for long
        var peer = Unmapped((IPEndPoint)c.RemoteEndPoint!);
        lock (_connections) _connections[c] = (port, peer);
        Interlocked.Increment(ref _accepted);
        Record(EchoEventKind.Accept, ProbeProtocol.TCP, port, peer);
    }

    private void Answer(Socket s, int port, byte[] buffer)
    {
        EndPoint from = new IPEndPoint(s.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        int n;
        try { n = s.ReceiveFrom(buffer, ref from); }
        catch (SocketException) { return; } // nothing there after all, or an ICMP error for an earlier answer
        Interlocked.Increment(ref _datagrams);
        Record(EchoEventKind.Datagram, ProbeProtocol.UDP, port, Unmapped((IPEndPoint)from));
        try { s.SendTo(buffer, 0, n, SocketFlags.None, from); }
        catch (SocketException) { } // the client is gone: nothing to answer
    }

    private void Echo(Socket c, byte[] buffer)
    {
        (int port, IPEndPoint peer) = _connections[c];
        EchoEventKind? end = null;
        string? detail = null;
        try
        {
            int n = c.Receive(buffer);
            if (n == 0) end = EchoEventKind.Close;
            else c.Send(buffer, 0, n, SocketFlags.None);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock) { }
        catch (SocketException e) when (ProbeErrors.Classify(e.SocketErrorCode) is { Outcome: ProbeOutcome.Reset }) { end = EchoEventKind.Reset; }
        catch (SocketException e) { end = EchoEventKind.Error; detail = e.SocketErrorCode.ToString(); }
        if (end is not { } kind) return;
        Record(kind, ProbeProtocol.TCP, port, peer, detail);
        lock (_connections) _connections.Remove(c);
        c.Dispose();
    }

    private void Record(EchoEventKind kind, ProbeProtocol protocol, int port, IPEndPoint peer, string? detail = null)
    {
        lock (_events)
        {
            if (_events.Count == MaxEvents) _events.RemoveAt(0);
            _events.Add(new EchoServerEvent(DateTime.UtcNow, kind, protocol, port, peer.Address, peer.Port, detail));
        }
    }

    private static IPEndPoint Unmapped(IPEndPoint ep) => ep.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(ep.Address.MapToIPv4(), ep.Port) : ep;

    /// <inheritdoc/>
    public override string ToString() => $"echo server {Id} in {(Namespace.Length == 0 ? "the root namespace" : Namespace)}";
}

/// <summary>A port an echo server should listen on is taken.</summary>
public sealed class PortInUseException(string message, Exception inner) : InvalidOperationException(message, inner);
