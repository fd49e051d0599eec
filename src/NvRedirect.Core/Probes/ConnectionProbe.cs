using System;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NvRedirect.Core.Namespaces;

namespace NvRedirect.Core.Probes;

/// <summary>
/// Sends one probe (TCP, UDP or ICMP echo) from a namespace and reports what happened. Each socket is created on a
/// dedicated thread switched into the namespace (a socket belongs for ever to the namespace its creating thread
/// was in; docs/design.md, "Threads and namespaces") and then used from the caller's thread; every socket is closed
/// before the probe returns, except the TCP connection a caller asks to keep open.
/// ICMP uses a raw socket (root or CAP_NET_RAW, which NvRedirect needs anyway): "ping sockets" (SOCK_DGRAM ICMP) would
/// need net.ipv4.ping_group_range to include our group in the target namespace, and a fresh namespace's range is
/// empty ("1 0"), so using them would mean changing a sysctl of the user's namespace.
/// </summary>
public static class ConnectionProbe
{
    private const int TcpQuickAck = 12; // TCP_QUICKACK (linux/tcp.h)

    /// <summary>Sends one probe; <paramref name="keepOpen"/> (TCP) keeps a connection that opened in the result's Connection.</summary>
    public static ProbeResult Send(NamespaceTarget from, ProbeRequest request, int sequence, bool keepOpen, CancellationToken cancel)
    {
        request.Validate();
        if (keepOpen && request.Protocol != ProbeProtocol.TCP)
            throw new ArgumentException("-KeepOpen is for TCP (only a TCP connection stays open).", nameof(keepOpen));
        return request.Protocol switch
        {
            ProbeProtocol.TCP => Tcp(from, request, sequence, keepOpen, cancel),
            ProbeProtocol.UDP => Udp(from, request, sequence, cancel),
            _ => Icmp(from, request, sequence, cancel),
        };
    }

    /// <summary>The bytes an echo probe sends (recognisable in a capture, different per probe).</summary>
    internal static byte[] Payload(ProbeProtocol protocol, int sequence) => Encoding.ASCII.GetBytes($"nvredirect {protocol} probe {sequence} {RandomNumberGenerator.GetHexString(8, true)}\n");

    /// <summary>A socket created inside the namespace, bound to the source when one is given.</summary>
    internal static Socket Open(NamespaceTarget ns, AddressFamily family, SocketType type, ProtocolType protocol, IPAddress? source)
    {
        var socket = ns.RunIn(() => new Socket(family, type, protocol));
        if (source == null) return socket;
        try { socket.Bind(new IPEndPoint(source, 0)); }
        catch (SocketException e)
        {
            socket.Dispose();
            if (e.SocketErrorCode == SocketError.AddressNotAvailable)
                throw new ArgumentException($"The source {source} is not an address of {ns}; give one of its addresses (Get-AgentAddress) or leave -Source out.", "Source", e);
            throw;
        }
        return socket;
    }

    private static ProbeResult Tcp(NamespaceTarget from, ProbeRequest r, int sequence, bool keepOpen, CancellationToken cancel)
    {
        var socket = Open(from, r.Destination.AddressFamily, SocketType.Stream, ProtocolType.Tcp, r.Source);
        bool kept = false;
        try
        {
            var clock = Stopwatch.StartNew();
            var failure = Wait(socket.ConnectAsync(new IPEndPoint(r.Destination, r.Port), Deadline(r.Timeout, cancel, out var cts)).AsTask(), cts, cancel);
            if (failure is { } f)
                return Result(from, r, sequence, socket, f.Outcome, f.Errno, null, false);
            double milliseconds = clock.Elapsed.TotalMilliseconds; // the handshake
            string? detail = null;
            var connection = new HeldConnection(socket, from.Display, r.Destination, r.Port);
            if (r.ExpectEcho)
            {
                var echo = connection.RoundTrip(Payload(ProbeProtocol.TCP, sequence), true, r.Timeout, cancel);
                if (echo.Outcome != ProbeOutcome.Connected)
                    return Result(from, r, sequence, socket, echo.Outcome, echo.Errno, null, echo.Outcome == ProbeOutcome.Reset);
                milliseconds = echo.Milliseconds ?? milliseconds; // with an echo: its round trip
                detail = echo.Errno;
            }
            kept = keepOpen;
            if (kept) connection.Register();
            return Result(from, r, sequence, socket, ProbeOutcome.Connected, detail, milliseconds, false, kept ? connection : null);
        }
        finally { if (!kept) socket.Dispose(); }
    }

    private static ProbeResult Udp(NamespaceTarget from, ProbeRequest r, int sequence, CancellationToken cancel)
    {
        using var socket = Open(from, r.Destination.AddressFamily, SocketType.Dgram, ProtocolType.Udp, r.Source);
        // IP_RECVERR / IPV6_RECVERR: without it a connected UDP socket reports only "fatal" ICMP errors (port
        // unreachable), not host or net unreachable from a router (linux/net/ipv4/udp.c, __udp4_lib_err)
        bool v6 = r.Destination.AddressFamily == AddressFamily.InterNetworkV6;
        socket.SetRawSocketOption(v6 ? 41 : 0, v6 ? 25 : 11, BitConverter.GetBytes(1));
        try { socket.Connect(new IPEndPoint(r.Destination, r.Port)); }
        catch (SocketException e) when (ProbeErrors.Classify(e.SocketErrorCode) is { } f)
        {
            return Result(from, r, sequence, socket, f.Outcome, f.Errno, null, false);
        }
        var payload = Payload(ProbeProtocol.UDP, sequence);
        var clock = Stopwatch.StartNew();
        var buffer = new byte[65536];
        try
        {
            socket.Send(payload);
            while (true)
            {
                var token = Deadline(r.Timeout - clock.Elapsed, cancel, out var cts);
                using (cts)
                {
                    int n;
                    try { n = socket.ReceiveAsync(buffer, SocketFlags.None, token).AsTask().GetAwaiter().GetResult(); }
                    catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                    {
                        return Result(from, r, sequence, socket, r.ExpectEcho ? ProbeOutcome.TimedOut : ProbeOutcome.NotRefused, null, null, false);
                    }
                    if (!r.ExpectEcho || buffer.AsSpan(0, n).SequenceEqual(payload))
                        return Result(from, r, sequence, socket, ProbeOutcome.Answered, null, clock.Elapsed.TotalMilliseconds, false);
                }
            }
        }
        catch (SocketException e) when (ProbeErrors.Classify(e.SocketErrorCode) is { } f)
        {
            return Result(from, r, sequence, socket, f.Outcome, f.Errno, null, false);
        }
    }

    private static ProbeResult Icmp(NamespaceTarget from, ProbeRequest r, int sequence, CancellationToken cancel)
    {
        bool v6 = r.Destination.AddressFamily == AddressFamily.InterNetworkV6;
        using var socket = Open(from, r.Destination.AddressFamily, SocketType.Raw, v6 ? ProtocolType.IcmpV6 : ProtocolType.Icmp, r.Source);
        var source = r.Source ?? ChosenSource(from, r.Destination);
        ushort id = (ushort)RandomNumberGenerator.GetInt32(1, 65536), seq = (ushort)sequence;
        var request = IcmpEcho.BuildRequest(v6, id, seq, Payload(ProbeProtocol.ICMP, sequence));
        var clock = Stopwatch.StartNew();
        var buffer = new byte[65536];
        try
        {
            socket.SendTo(request, new IPEndPoint(r.Destination, 0));
            while (true)
            {
                var token = Deadline(r.Timeout - clock.Elapsed, cancel, out var cts);
                using (cts)
                {
                    SocketReceiveFromResult got;
                    try { got = socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, 0), token).AsTask().GetAwaiter().GetResult(); }
                    catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                    {
                        return Result(from, r, sequence, null, ProbeOutcome.TimedOut, null, null, false, source: source);
                    }
                    var sender = ((IPEndPoint)got.RemoteEndPoint).Address;
                    var (answer, code) = IcmpEcho.Match(v6, buffer.AsSpan(0, got.ReceivedBytes), sender, r.Destination, id, seq);
                    if (answer == IcmpEchoAnswer.Reply)
                        return Result(from, r, sequence, null, ProbeOutcome.Answered, null, clock.Elapsed.TotalMilliseconds, false, source: source);
                    if (answer != IcmpEchoAnswer.Unrelated)
                        return Result(from, r, sequence, null, ProbeOutcome.Unreachable, IcmpEcho.Describe(v6, answer, code, sender), null, false, source: source);
                }
            }
        }
        catch (SocketException e) when (ProbeErrors.Classify(e.SocketErrorCode) is { } f)
        {
            return Result(from, r, sequence, null, f.Outcome, f.Errno, null, false, source: source);
        }
    }

    // the address the kernel would send from (a connected UDP socket sends nothing), null when there is no route
    private static IPAddress? ChosenSource(NamespaceTarget from, IPAddress destination)
    {
        try
        {
            using var s = Open(from, destination.AddressFamily, SocketType.Dgram, ProtocolType.Udp, null);
            s.Connect(new IPEndPoint(destination, 9));
            return ((IPEndPoint)s.LocalEndPoint!).Address;
        }
        catch (SocketException) { return null; }
    }

    /// <summary>A token that ends after <paramref name="timeout"/> or with <paramref name="cancel"/>; dispose the source.</summary>
    internal static CancellationToken Deadline(TimeSpan timeout, CancellationToken cancel, out CancellationTokenSource cts)
    {
        cts = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        cts.CancelAfter(timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero);
        return cts.Token;
    }

    /// <summary>Waits for a socket operation; null when it completed, else the outcome its error or its timeout means.</summary>
    internal static (ProbeOutcome Outcome, string? Errno)? Wait(Task operation, CancellationTokenSource cts, CancellationToken cancel)
    {
        using (cts)
        {
            try { operation.GetAwaiter().GetResult(); return null; }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested) { return (ProbeOutcome.TimedOut, null); }
            catch (SocketException e) when (ProbeErrors.Classify(e.SocketErrorCode) is { } f) { return (f.Outcome, f.Errno); }
        }
    }

    /// <summary>Acknowledges received data now rather than after the delayed-ACK timer, so an idle connection sends nothing more.</summary>
    internal static void QuickAck(Socket socket)
    {
        try { socket.SetRawSocketOption((int)SocketOptionLevel.Tcp, TcpQuickAck, BitConverter.GetBytes(1)); }
        catch (SocketException) { } // a connection that is gone has nothing to acknowledge
    }

    private static ProbeResult Result(NamespaceTarget from, ProbeRequest r, int sequence, Socket? socket, ProbeOutcome outcome, string? errno,
        double? milliseconds, bool resetAfterOpen, HeldConnection? connection = null, IPAddress? source = null)
    {
        var local = socket == null ? null : LocalOf(socket);
        return new ProbeResult
        {
            Namespace = from.Display, Protocol = r.Protocol, Source = local?.Address ?? source ?? r.Source, SourcePort = local?.Port ?? 0,
            Destination = r.Destination, Port = r.Port, Outcome = outcome, ResetAfterOpen = resetAfterOpen, RoundTripMilliseconds = milliseconds,
            Sequence = sequence, Detail = errno, Connection = connection,
        };
    }

    internal static IPEndPoint? LocalOf(Socket socket)
    {
        try { return socket.LocalEndPoint is IPEndPoint { Port: > 0 } ep && !ep.Address.Equals(IPAddress.Any) && !ep.Address.Equals(IPAddress.IPv6Any) ? ep : null; }
        catch (ObjectDisposedException) { return null; }
        catch (SocketException) { return null; }
    }
}
