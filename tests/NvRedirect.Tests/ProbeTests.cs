using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using NvRedirect.Core.Probes;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The probes' pure logic: ICMP echo requests byte for byte as iputils ping sends them, the matching of replies and
/// of ICMP errors captured from a real router (Golden/icmp-echo.hex), the errno-to-outcome table and request checks.
/// </summary>
public class ProbeTests
{
    private static byte[] Golden(string name)
    {
        var line = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Golden", "icmp-echo.hex"))
            .Single(l => l.StartsWith(name + ": ", StringComparison.Ordinal));
        return Convert.FromHexString(line[(name.Length + 2)..]);
    }

    private static (ushort Id, ushort Seq, byte[] Payload) EchoFields(ReadOnlySpan<byte> icmp)
        => (BinaryPrimitives.ReadUInt16BigEndian(icmp[4..]), BinaryPrimitives.ReadUInt16BigEndian(icmp[6..]), icmp[8..].ToArray());

    [Fact]
    public void IPv4_echo_request_equals_pings_bytes_checksum_included()
    {
        var packet = Golden("v4-request");
        var icmp = packet.AsSpan(20);
        var (id, seq, payload) = EchoFields(icmp);
        Assert.Equal(icmp.ToArray(), IcmpEcho.BuildRequest(false, id, seq, payload));
    }

    [Fact]
    public void IPv6_echo_request_equals_pings_bytes_but_leaves_the_checksum_to_the_kernel()
    {
        var icmp = Golden("v6-request").AsSpan(40).ToArray();
        var (id, seq, payload) = EchoFields(icmp);
        var ours = IcmpEcho.BuildRequest(true, id, seq, payload);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(ours.AsSpan(2)));
        icmp[2] = icmp[3] = 0;
        Assert.Equal(icmp, ours);
    }

    [Fact]
    public void IPv4_reply_matches_its_request_only()
    {
        var (id, seq, _) = EchoFields(Golden("v4-request").AsSpan(20));
        var reply = Golden("v4-reply"); // as an IPv4 raw socket receives it: with the IP header
        var server = IPAddress.Parse("10.99.0.2");
        Assert.Equal((IcmpEchoAnswer.Reply, (byte)0), IcmpEcho.Match(false, reply, server, server, id, seq));
        Assert.Equal(IcmpEchoAnswer.Unrelated, IcmpEcho.Match(false, reply, server, server, (ushort)(id + 1), seq).Answer);
        Assert.Equal(IcmpEchoAnswer.Unrelated, IcmpEcho.Match(false, reply, server, server, id, (ushort)(seq + 1)).Answer);
        Assert.Equal(IcmpEchoAnswer.Unrelated, IcmpEcho.Match(false, reply, IPAddress.Parse("10.99.0.3"), server, id, seq).Answer);
        Assert.Equal(IcmpEchoAnswer.Unrelated, IcmpEcho.Match(false, Golden("v4-request"), server, server, id, seq).Answer); // our own request, looped
    }

    [Fact]
    public void IPv6_reply_matches_its_request_only()
    {
        var (id, seq, _) = EchoFields(Golden("v6-request").AsSpan(40));
        var reply = Golden("v6-reply").AsSpan(40).ToArray(); // an ICMPv6 raw socket receives no IP header
        var server = IPAddress.Parse("fd99::2");
        Assert.Equal(IcmpEchoAnswer.Reply, IcmpEcho.Match(true, reply, server, server, id, seq).Answer);
        Assert.Equal(IcmpEchoAnswer.Unrelated, IcmpEcho.Match(true, reply, server, server, (ushort)(id + 1), seq).Answer);
    }

    [Fact]
    public void A_routers_host_unreachable_quoting_the_request_is_Unreachable_with_its_code()
    {
        var (id, seq, _) = EchoFields(Golden("v4-unreach-request").AsSpan(20));
        var error = Golden("v4-unreachable");
        var router = IPAddress.Parse("10.99.0.2");
        var destination = IPAddress.Parse("203.0.113.7");
        var (answer, code) = IcmpEcho.Match(false, error, router, destination, id, seq);
        Assert.Equal(IcmpEchoAnswer.Unreachable, answer);
        Assert.Equal(1, code);
        Assert.Equal("ICMP destination unreachable code 1 (host unreachable) from 10.99.0.2", IcmpEcho.Describe(false, answer, code, router));
        Assert.Equal(IcmpEchoAnswer.Unrelated, IcmpEcho.Match(false, error, router, IPAddress.Parse("203.0.113.8"), id, seq).Answer);
        Assert.Equal(IcmpEchoAnswer.Unrelated, IcmpEcho.Match(false, error, router, destination, id, (ushort)(seq + 1)).Answer);
    }

    [Fact]
    public void An_ICMPv6_no_route_quoting_the_request_is_Unreachable()
    {
        var (id, seq, _) = EchoFields(Golden("v6-unreach-request").AsSpan(40));
        var error = Golden("v6-unreachable").AsSpan(40).ToArray();
        var router = IPAddress.Parse("fd99::2");
        var (answer, code) = IcmpEcho.Match(true, error, router, IPAddress.Parse("2001:db8:2::7"), id, seq);
        Assert.Equal(IcmpEchoAnswer.Unreachable, answer);
        Assert.Equal(0, code);
        Assert.Equal("ICMPv6 destination unreachable code 0 (no route) from fd99::2", IcmpEcho.Describe(true, answer, code, router));
    }

    [Fact]
    public void Truncated_errors_match_only_when_they_still_quote_the_request_never_throw()
    {
        // IPv4: 20 (IP) + 8 (ICMP) + 20 (quoted IP) + 8 (quoted echo) bytes are needed; ICMPv6: 8 + 40 + 8
        var (id, seq, _) = EchoFields(Golden("v4-unreach-request").AsSpan(20));
        var error = Golden("v4-unreachable");
        for (int n = 0; n <= error.Length; n++)
            Assert.Equal(n >= 56 ? IcmpEchoAnswer.Unreachable : IcmpEchoAnswer.Unrelated,
                IcmpEcho.Match(false, error.AsSpan(0, n), IPAddress.Parse("10.99.0.2"), IPAddress.Parse("203.0.113.7"), id, seq).Answer);
        (id, seq, _) = EchoFields(Golden("v6-unreach-request").AsSpan(40));
        var v6 = Golden("v6-unreachable").AsSpan(40).ToArray();
        for (int n = 0; n <= v6.Length; n++)
            Assert.Equal(n >= 56 ? IcmpEchoAnswer.Unreachable : IcmpEchoAnswer.Unrelated,
                IcmpEcho.Match(true, v6.AsSpan(0, n), IPAddress.Parse("fd99::2"), IPAddress.Parse("2001:db8:2::7"), id, seq).Answer);
    }

    [Theory]
    [InlineData(SocketError.ConnectionRefused, ProbeOutcome.Refused, "ECONNREFUSED")]
    [InlineData(SocketError.ConnectionReset, ProbeOutcome.Reset, "ECONNRESET")]
    [InlineData(SocketError.Shutdown, ProbeOutcome.Reset, "EPIPE")]
    [InlineData(SocketError.HostUnreachable, ProbeOutcome.Unreachable, "EHOSTUNREACH")]
    [InlineData(SocketError.NetworkUnreachable, ProbeOutcome.Unreachable, "ENETUNREACH")]
    [InlineData(SocketError.AccessDenied, ProbeOutcome.Unreachable, "EACCES")]
    [InlineData(SocketError.TimedOut, ProbeOutcome.TimedOut, "ETIMEDOUT")]
    public void Socket_errors_read_as_outcomes(SocketError error, ProbeOutcome outcome, string errno)
        => Assert.Equal((outcome, errno), ProbeErrors.Classify(error));

    [Fact]
    public void Errors_that_are_no_outcome_stay_errors()
    {
        Assert.Null(ProbeErrors.Classify(SocketError.AddressNotAvailable));
        Assert.Null(ProbeErrors.Classify(SocketError.InvalidArgument));
    }

    [Theory]
    [InlineData(ProbeProtocol.ICMP, "10.0.0.1", 80, null, false, "no port")]
    [InlineData(ProbeProtocol.TCP, "10.0.0.1", 0, null, false, "needs a port")]
    [InlineData(ProbeProtocol.UDP, "10.0.0.1", 70000, null, false, "needs a port")]
    [InlineData(ProbeProtocol.ICMP, "10.0.0.1", 0, null, true, "-Echo is for TCP and UDP")]
    [InlineData(ProbeProtocol.TCP, "0.0.0.0", 80, null, false, "not a destination")]
    [InlineData(ProbeProtocol.TCP, "10.0.0.1", 80, "fd00::1", false, "different families")]
    public void Bad_requests_name_what_is_wrong(ProbeProtocol protocol, string destination, int port, string? source, bool echo, string message)
    {
        var r = new ProbeRequest(protocol, IPAddress.Parse(destination), port, TimeSpan.FromSeconds(1), source == null ? null : IPAddress.Parse(source), echo);
        var e = Assert.Throws<ArgumentException>(r.Validate);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_good_request_passes()
        => new ProbeRequest(ProbeProtocol.UDP, IPAddress.Parse("fd00::2"), 53, TimeSpan.FromSeconds(1), IPAddress.Parse("fd00::1"), true).Validate();
}
