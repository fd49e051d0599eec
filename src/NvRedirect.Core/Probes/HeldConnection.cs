using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Threading;

namespace NvRedirect.Core.Probes;

/// <summary>
/// A TCP connection a probe kept open, so that a later probe on it shows what a change did to connections that were
/// already open (a Protect-mode switch resets them). Every open one is listed in <see cref="Open"/> until closed;
/// <see cref="CloseAll"/> closes them all (the module calls it when it is removed).
/// </summary>
public sealed class HeldConnection : IDisposable
{
    private static readonly ConcurrentDictionary<int, HeldConnection> Registry = new();
    private static int _lastId;
    private readonly Socket _socket;
    private int _probes = 1;

    internal HeldConnection(Socket socket, string ns, IPAddress destination, int port)
    {
        _socket = socket;
        Namespace = ns;
        RemoteAddress = destination;
        RemotePort = port;
        var local = ConnectionProbe.LocalOf(socket);
        LocalAddress = local?.Address;
        LocalPort = local?.Port ?? 0;
    }

    /// <summary>A number for this connection in this process (1, 2...).</summary>
    public int Id { get; private set; }
    /// <summary>The namespace the connection was opened from ("" = root).</summary>
    public string Namespace { get; }
    // named as Get-NetTCPConnection names them, and unlike a probe's Destination/Port, so that piping a connection
    // binds Test-AgentConnection's -Connection and never starts a new probe to the same address
    /// <summary>The connection's own address.</summary>
    public IPAddress? LocalAddress { get; }
    /// <summary>The connection's own port.</summary>
    public int LocalPort { get; }
    /// <summary>The server's address.</summary>
    public IPAddress RemoteAddress { get; }
    /// <summary>The server's port.</summary>
    public int RemotePort { get; }
    /// <summary>False once closed: by Disconnect-AgentConnection, by the module's removal, or when a probe found it reset or closed.</summary>
    public bool IsOpen { get; private set; } = true;
    /// <summary>The outcome of the last probe on it (Connected, Reset, Closed, TimedOut).</summary>
    public ProbeOutcome LastOutcome { get; private set; } = ProbeOutcome.Connected;

    /// <summary>The connections open now, oldest first.</summary>
    public static IReadOnlyList<HeldConnection> Open => Registry.Values.OrderBy(c => c.Id).ToList();

    /// <summary>Closes every held connection.</summary>
    public static void CloseAll() { foreach (var c in Registry.Values) c.Dispose(); }

    internal void Register()
    {
        Id = Interlocked.Increment(ref _lastId);
        Registry[Id] = this;
    }

    /// <summary>
    /// Sends bytes on the open connection and reports what came of it: with <paramref name="expectEcho"/> the same bytes
    /// must come back (Connected), else any answer or <paramref name="timeout"/> of silence counts as still Connected;
    /// an RST gives Reset (ResetAfterOpen), a FIN Closed.
    /// </summary>
    public ProbeResult Probe(bool expectEcho, TimeSpan timeout, CancellationToken cancel)
    {
        if (!IsOpen) throw new InvalidOperationException($"Connection {Id} to {RemoteAddress}:{RemotePort} is closed already; open a new one with Test-AgentConnection -KeepOpen.");
        int sequence = Interlocked.Increment(ref _probes);
        var (outcome, errno, ms) = RoundTrip(ConnectionProbe.Payload(ProbeProtocol.TCP, sequence), expectEcho, timeout, cancel);
        LastOutcome = outcome;
        if (outcome is ProbeOutcome.Reset or ProbeOutcome.Closed) Dispose(); // nothing more can travel on it
        return new ProbeResult
        {
            Namespace = Namespace, Protocol = ProbeProtocol.TCP, Source = LocalAddress, SourcePort = LocalPort, Destination = RemoteAddress, Port = RemotePort,
            Outcome = outcome, ResetAfterOpen = outcome == ProbeOutcome.Reset, RoundTripMilliseconds = ms, Sequence = sequence, Detail = errno,
            Connection = this,
        };
    }

    /// <summary>One send and what came back; the same logic for the first echo of a probe and later probes on a held connection.</summary>
    internal (ProbeOutcome Outcome, string? Errno, double? Milliseconds) RoundTrip(byte[] payload, bool expectEcho, TimeSpan timeout, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            _socket.Send(payload);
            var buffer = new byte[Math.Max(payload.Length, 4096)];
            int got = 0;
            while (true)
            {
                var token = ConnectionProbe.Deadline(timeout - clock.Elapsed, cancel, out var cts);
                int n;
                using (cts)
                {
                    try { n = _socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, token).AsTask().GetAwaiter().GetResult(); }
                    catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                    {
                        return expectEcho ? (ProbeOutcome.TimedOut, null, null) : (ProbeOutcome.Connected, "no answer; still open", null);
                    }
                }
                if (n == 0) return (ProbeOutcome.Closed, "FIN", null);
                got += n;
                if (!expectEcho || got >= payload.Length)
                {
                    ConnectionProbe.QuickAck(_socket);
                    if (expectEcho && !buffer.AsSpan(0, payload.Length).SequenceEqual(payload))
                        return (ProbeOutcome.Connected, "the answer differs from what was sent", clock.Elapsed.TotalMilliseconds);
                    return (ProbeOutcome.Connected, null, clock.Elapsed.TotalMilliseconds);
                }
            }
        }
        catch (SocketException e) when (ProbeErrors.Classify(e.SocketErrorCode) is { } f)
        {
            return (f.Outcome, f.Errno, null);
        }
    }

    /// <summary>Closes the connection (a FIN; an RST when unread data is pending).</summary>
    public void Dispose()
    {
        IsOpen = false;
        Registry.TryRemove(Id, out _);
        _socket.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"TCP {LocalAddress}:{LocalPort} -> {RemoteAddress}:{RemotePort} ({(IsOpen ? "open" : "closed")})";
}
