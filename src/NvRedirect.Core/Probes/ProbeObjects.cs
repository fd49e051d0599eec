using System;
using System.Net;
using System.Net.Sockets;

namespace NvRedirect.Core.Probes;

/// <summary>What a probe sends.</summary>
public enum ProbeProtocol
{
    /// <summary>A TCP connection (handshake, optionally a round trip through an echo).</summary>
    TCP,
    /// <summary>One UDP datagram on a connected socket (so an ICMP port unreachable comes back as ECONNREFUSED).</summary>
    UDP,
    /// <summary>One ICMP or ICMPv6 echo request.</summary>
    ICMP,
}

/// <summary>What happened to one probe. Connected, Answered and NotRefused are successes.</summary>
public enum ProbeOutcome
{
    /// <summary>TCP: the handshake completed (and with an expected echo, the echo came back).</summary>
    Connected,
    /// <summary>UDP or ICMP: a reply came back (with an expected echo: the same bytes).</summary>
    Answered,
    /// <summary>UDP without an expected echo: nothing came back and nothing refused the datagram within the timeout.</summary>
    NotRefused,
    /// <summary>TCP: an RST answered the SYN; UDP: an ICMP port unreachable came back (ECONNREFUSED).</summary>
    Refused,
    /// <summary>TCP: the connection was open and then reset (ECONNRESET or EPIPE).</summary>
    Reset,
    /// <summary>TCP: the peer closed the open connection (FIN) before the echo came back.</summary>
    Closed,
    /// <summary>Nothing came back within the timeout (a silent drop).</summary>
    TimedOut,
    /// <summary>No route, no neighbour, or an ICMP destination unreachable came back (ENETUNREACH, EHOSTUNREACH, EACCES).</summary>
    Unreachable,
}

/// <summary>One probe's result: from where to where, over what, what happened and how long it took.</summary>
public sealed class ProbeResult
{
    /// <summary>The namespace the probe was sent from, as the user named it ("" = the root namespace).</summary>
    public string Namespace { get; init; } = "";
    /// <summary>TCP, UDP or ICMP.</summary>
    public ProbeProtocol Protocol { get; init; }
    /// <summary>The probe's own address (the kernel's choice unless a source was given); null when not known.</summary>
    public IPAddress? Source { get; init; }
    /// <summary>The probe's own port (TCP, UDP); 0 for ICMP or when no socket was bound.</summary>
    public int SourcePort { get; init; }
    /// <summary>Where the probe went.</summary>
    public IPAddress Destination { get; init; } = IPAddress.None;
    /// <summary>The destination port (TCP, UDP); 0 for ICMP.</summary>
    public int Port { get; init; }
    /// <summary>What happened.</summary>
    public ProbeOutcome Outcome { get; init; }
    /// <summary>Connected, Answered or NotRefused.</summary>
    public bool Succeeded => Outcome is ProbeOutcome.Connected or ProbeOutcome.Answered or ProbeOutcome.NotRefused;
    /// <summary>TCP: the connection was open (handshake done) and was then reset.</summary>
    public bool ResetAfterOpen { get; init; }
    /// <summary>From sending to the answer (the handshake; with an echo the echo's round trip; ICMP the reply), null when none came.</summary>
    public double? RoundTripMilliseconds { get; init; }
    /// <summary>1 for the first probe of a command, 2 for the second...</summary>
    public int Sequence { get; init; }
    /// <summary>The errno or ICMP message behind the outcome (ECONNREFUSED, "ICMP destination unreachable code 1"...), null on success.</summary>
    public string? Detail { get; init; }
    /// <summary>The TCP connection kept open by -KeepOpen (probe it again, then Disconnect-AgentConnection), else null.</summary>
    public HeldConnection? Connection { get; init; }

    /// <inheritdoc/>
    public override string ToString() => $"{Protocol} {Destination}{(Port > 0 ? ":" + Port : "")} {Outcome}";
}

/// <summary>What to probe.</summary>
/// <param name="Protocol">TCP, UDP or ICMP.</param>
/// <param name="Destination">The address to probe.</param>
/// <param name="Port">The destination port (TCP, UDP; 1-65535), 0 for ICMP.</param>
/// <param name="Timeout">How long to wait for each answer.</param>
/// <param name="Source">A local address to send from, or null for the kernel's choice.</param>
/// <param name="ExpectEcho">TCP/UDP: the other end echoes (an echo server): send bytes and require the same bytes back.</param>
public sealed record ProbeRequest(ProbeProtocol Protocol, IPAddress Destination, int Port, TimeSpan Timeout, IPAddress? Source = null, bool ExpectEcho = false)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming what is wrong with the request.</summary>
    public void Validate()
    {
        if (Protocol == ProbeProtocol.ICMP && Port != 0)
            throw new ArgumentException($"An ICMP echo has no port (got {Port}); leave -Port out or probe TCP or UDP.", nameof(Port));
        if (Protocol != ProbeProtocol.ICMP && (Port < 1 || Port > 65535))
            throw new ArgumentException($"A {Protocol} probe needs a port from 1 to 65535 (got {Port}).", nameof(Port));
        if (Protocol == ProbeProtocol.ICMP && ExpectEcho)
            throw new ArgumentException("-Echo is for TCP and UDP (an ICMP echo reply always carries the request's bytes).", nameof(ExpectEcho));
        if (Timeout <= TimeSpan.Zero) throw new ArgumentException($"The timeout must be positive (got {Timeout}).", nameof(Timeout));
        if (Destination.Equals(IPAddress.Any) || Destination.Equals(IPAddress.IPv6Any))
            throw new ArgumentException($"{Destination} is not a destination; give the address to probe.", nameof(Destination));
        if (Source != null && Source.AddressFamily != Destination.AddressFamily)
            throw new ArgumentException($"The source {Source} and the destination {Destination} are of different families; give an {(Destination.AddressFamily == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} source.", nameof(Source));
    }
}

/// <summary>How socket errors read as probe outcomes (the kernel's errno, as .NET reports it).</summary>
public static class ProbeErrors
{
    /// <summary>The outcome and errno name a socket error means, or null for an error that is no outcome (a failure of the probe itself).</summary>
    public static (ProbeOutcome Outcome, string Errno)? Classify(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => (ProbeOutcome.Refused, "ECONNREFUSED"),
        SocketError.ConnectionReset => (ProbeOutcome.Reset, "ECONNRESET"),
        SocketError.Shutdown => (ProbeOutcome.Reset, "EPIPE"),
        SocketError.ConnectionAborted => (ProbeOutcome.Reset, "ECONNABORTED"),
        SocketError.TimedOut => (ProbeOutcome.TimedOut, "ETIMEDOUT"),
        SocketError.HostUnreachable => (ProbeOutcome.Unreachable, "EHOSTUNREACH"),
        SocketError.NetworkUnreachable => (ProbeOutcome.Unreachable, "ENETUNREACH"),
        SocketError.NetworkDown => (ProbeOutcome.Unreachable, "ENETDOWN"),
        SocketError.HostDown => (ProbeOutcome.Unreachable, "EHOSTDOWN"),
        SocketError.AccessDenied => (ProbeOutcome.Unreachable, "EACCES"), // a prohibit route, an ICMP administratively prohibited
        _ => null,
    };
}
