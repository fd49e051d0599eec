using System;
using System.Net;
using NvRedirect.Core.Model;
using NvRedirect.Core.Namespaces;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>Input checks that run before anything reaches the kernel.</summary>
public class ValidationTests
{
    [Theory]
    [InlineData("02:00:00:00:00:01", new byte[] { 2, 0, 0, 0, 0, 1 })]
    [InlineData("1A:27:F3:87:3A:27", new byte[] { 0x1a, 0x27, 0xf3, 0x87, 0x3a, 0x27 })]
    [InlineData("1a-27-f3-87-3a-27", new byte[] { 0x1a, 0x27, 0xf3, 0x87, 0x3a, 0x27 })]
    [InlineData("2:0:0:0:0:1", new byte[] { 2, 0, 0, 0, 0, 1 })]
    [InlineData(" ff:ff:ff:ff:ff:ff ", new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff })]
    public void Mac_accepts_six_hex_bytes(string text, byte[] expected)
    {
        Assert.Equal(expected, Parse.Mac(text));
        Assert.Equal(expected, Parse.Mac(Parse.Mac(expected))); // formatting round-trips
    }

    [Theory]
    [InlineData("")]
    [InlineData("02:00:00:00:00")]          // five bytes
    [InlineData("02:00:00:00:00:00:00")]    // seven bytes
    [InlineData("02:00:00:00:00:001")]      // three digits
    [InlineData("02::00:00:00:00")]         // empty byte
    [InlineData("g2:00:00:00:00:01")]       // not hex
    [InlineData("0200.0000.0001")]          // Cisco notation
    [InlineData("020000000001")]            // no separators
    [InlineData("02:00:00:00:00:+1")]
    public void Mac_rejects_anything_else(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => Parse.Mac(text));
        Assert.Contains("six hexadecimal bytes", e.Message);
    }

    [Fact]
    public void Mac_formats_lower_case_with_colons()
        => Assert.Equal("1a:27:f3:87:3a:07", Parse.Mac(new byte[] { 0x1a, 0x27, 0xf3, 0x87, 0x3a, 0x07 }));

    [Theory]
    [InlineData("10.10.10.88/24", "10.10.10.88", 24)]
    [InlineData("10.10.10.88", "10.10.10.88", 32)]
    [InlineData("192.0.2.1/32", "192.0.2.1", 32)]
    [InlineData("0.0.0.0/0", "0.0.0.0", 0)]
    [InlineData(" 10.10.10.1/8 ", "10.10.10.1", 8)]
    [InlineData("2001:db8::1/64", "2001:db8::1", 64)]
    [InlineData("2001:db8::1", "2001:db8::1", 128)]
    [InlineData("fe80::1/10", "fe80::1", 10)]
    [InlineData("::/0", "::", 0)]
    [InlineData("::ffff:10.10.10.1/128", "::ffff:10.10.10.1", 128)]
    public void Cidr_accepts_addresses_with_valid_prefixes(string text, string address, int prefix)
    {
        var (a, p) = Parse.Cidr(text);
        Assert.Equal(IPAddress.Parse(address), a);
        Assert.Equal(prefix, p);
    }

    [Theory]
    [InlineData("10.10.10.88/33")]
    [InlineData("2001:db8::1/129")]
    [InlineData("10.10.10.88/-1")]
    [InlineData("10.10.10.88/+24")]
    [InlineData("10.10.10.88/")]
    [InlineData("10.10.10.88/2 4")]
    [InlineData("10.10.10.88/24/1")]
    [InlineData("10.10.10.88/x")]
    public void Cidr_rejects_bad_prefixes(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => Parse.Cidr(text));
        Assert.Contains("prefix length", e.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("/24")]
    [InlineData("10.10.10/24")]        // IPAddress would read this as 10.10.0.10
    [InlineData("10/8")]               // ... and this as 0.0.0.10
    [InlineData("10.10.10.256/24")]
    [InlineData("10.10.10.1.1")]
    [InlineData("fe80::1%eth0/64")]    // a zone is not part of an interface address
    [InlineData("2001:db8:::1/64")]
    [InlineData("host.example/24")]
    public void Cidr_rejects_bad_addresses(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => Parse.Cidr(text));
        Assert.Contains("not a valid IP address", e.Message);
    }

    [Theory]
    [InlineData("eth0")]
    [InlineData("a")]
    [InlineData("vex-peer")]
    [InlineData("x_y.z@1")]
    [InlineData("abcdefghijklmno")]      // 15 bytes, the most IFNAMSIZ allows
    [InlineData("ééééééé")]              // 14 bytes of UTF-8
    public void Link_names_the_kernel_accepts_pass(string name)
        => Assert.Null(Parse.LinkNameProblem(name));

    [Theory]
    [InlineData(null, "empty")]
    [InlineData("", "empty")]
    [InlineData("abcdefghijklmnop", "longer than 15 bytes")]  // 16 bytes
    [InlineData("éééééééé", "longer than 15 bytes")]          // 8 characters, 16 bytes
    [InlineData(".", "reserved")]
    [InlineData("..", "reserved")]
    [InlineData("a/b", "'/'")]
    [InlineData("eth0:1", "':'")]
    [InlineData("a b", "white space")]
    [InlineData("a\tb", "white space")]
    [InlineData("eth0\n", "white space")]
    public void Link_names_the_kernel_refuses_are_reported(string? name, string reason)
    {
        Assert.Contains(reason, Parse.LinkNameProblem(name));
        Assert.Throws<ArgumentException>(() => Parse.ThrowIfInvalidLinkName(name));
    }

    [Theory]
    [InlineData("agent-ns")]
    [InlineData("a")]
    [InlineData("abcdefghijklmnop")]     // 16 bytes: fine for a namespace, unlike a link
    [InlineData("ns:with:colons")]
    [InlineData("ns.1_x@y")]
    public void Namespace_names_iproute2_accepts_pass(string name)
        => Assert.Null(NetworkNamespace.Validate(name));

    [Fact]
    public void Namespace_names_up_to_255_bytes_pass()
    {
        Assert.Null(NetworkNamespace.Validate(new string('n', 255)));
        Assert.Contains("longer than 255 bytes", NetworkNamespace.Validate(new string('n', 256)));
        Assert.Contains("longer than 255 bytes", NetworkNamespace.Validate(new string('é', 128))); // 256 bytes
    }

    [Theory]
    [InlineData(null, "empty")]
    [InlineData("", "empty")]
    [InlineData(".", "not a usable file name")]
    [InlineData("..", "not a usable file name")]
    [InlineData("a/b", "'/'")]
    [InlineData("../etc", "'/'")]
    [InlineData("a b", "white space")]
    [InlineData("agent-ns\n", "white space")]
    [InlineData("a\u0001b", "control character")]
    public void Namespace_names_that_are_unsafe_are_reported(string? name, string reason)
    {
        Assert.Contains(reason, NetworkNamespace.Validate(name));
        Assert.Throws<ArgumentException>(() => NetworkNamespace.ThrowIfInvalid(name));
        Assert.False(NetworkNamespace.Exists(name ?? ""));
    }
}
