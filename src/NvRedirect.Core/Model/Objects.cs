using System;
using System.Linq;
using System.Net;

namespace NvRedirect.Core.Model;

/// <summary>A named network namespace (an entry of /run/netns, ours or iproute2's).</summary>
public sealed class AgentNamespace
{
    /// <summary>The name under /run/netns.</summary>
    public string Name { get; init; } = "";
    /// <summary>Same as <see cref="Name"/>: lets a namespace object bind to the -Namespace parameter of the link cmdlets.</summary>
    public string Namespace => Name;
    /// <summary>/run/netns/NAME.</summary>
    public string Path { get; init; } = "";
    /// <summary>The nsfs inode that identifies the namespace (as `ls -iL /run/netns/NAME`); 0 for a stale entry.</summary>
    public ulong Id { get; init; }
    /// <summary>False for a stale file that pins no namespace (left by a crashed tool).</summary>
    public bool IsMounted { get; init; }
    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>A network interface in some namespace.</summary>
public sealed class AgentLink
{
    /// <summary>The namespace holding the link; "" is the root namespace (the one this process runs in).</summary>
    public string Namespace { get; init; } = "";
    /// <summary>Interface name.</summary>
    public string Name { get; init; } = "";
    /// <summary>Same as <see cref="Name"/>: lets a link bind to the -LinkName parameter of the address and capture cmdlets
    /// (a namespace object, which also has a Name, then never binds there by mistake).</summary>
    public string LinkName => Name;
    /// <summary>ifindex (unique within its namespace).</summary>
    public int Index { get; init; }
    /// <summary>veth, bridge, ... ("" for devices without a kind, such as lo).</summary>
    public string Kind { get; init; } = "";
    /// <summary>MAC address, lower-case colon form.</summary>
    public string MacAddress { get; init; } = "";
    /// <summary>MTU in bytes.</summary>
    public int Mtu { get; init; }
    /// <summary>Administrative state: Up or Down.</summary>
    public string State { get; init; } = "";
    /// <summary>Operational state as the kernel reports it (up, down, lowerlayerdown, unknown...).</summary>
    public string OperState { get; init; } = "";
    /// <summary>Interface flags (UP, BROADCAST, LOWER_UP...).</summary>
    public string[] Flags { get; init; } = [];
    /// <summary>The other end of a veth pair, when there is one and its name could be read.</summary>
    public string? PeerName { get; init; }
    /// <summary>The peer's ifindex in its own namespace (0 when none).</summary>
    public int PeerIndex { get; init; }
    /// <summary>The peer's namespace: "" for the root namespace, a name from /run/netns, or null when unknown.</summary>
    public string? PeerNamespace { get; init; }
    /// <summary>Addresses with prefix length, e.g. 10.10.10.88/24.</summary>
    public string[] Addresses { get; init; } = [];
    /// <inheritdoc/>
    public override string ToString() => Namespace.Length == 0 ? Name : $"{Namespace}/{Name}";
}

/// <summary>An IPv4 or IPv6 address on a link.</summary>
public sealed class AgentAddress
{
    /// <summary>The namespace; "" is the root namespace.</summary>
    public string Namespace { get; init; } = "";
    /// <summary>The link holding the address.</summary>
    public string LinkName { get; init; } = "";
    /// <summary>The link's ifindex.</summary>
    public int LinkIndex { get; init; }
    /// <summary>IPv4 or IPv6.</summary>
    public string Family { get; init; } = "";
    /// <summary>Address with prefix length (CIDR), e.g. 10.10.10.88/24.</summary>
    public string Address { get; init; } = "";
    /// <summary>The bare IP address.</summary>
    public IPAddress IPAddress { get; init; } = IPAddress.None;
    /// <summary>Prefix length.</summary>
    public int PrefixLength { get; init; }
    /// <summary>global, link or host.</summary>
    public string Scope { get; init; } = "";
    /// <inheritdoc/>
    public override string ToString() => Address;
}

/// <summary>Parsing and formatting helpers shared by the cmdlets and the operations.</summary>
public static class Parse
{
    /// <summary>Formats 6 bytes as aa:bb:cc:dd:ee:ff.</summary>
    public static string Mac(ReadOnlySpan<byte> mac)
        => mac.Length == 6 ? Mac(MacValue(mac)) : Convert.ToHexString(mac).ToLowerInvariant();

    /// <summary>Reads 6 bytes as a 48-bit number (the form the datapath keys workloads by).</summary>
    public static ulong MacValue(ReadOnlySpan<byte> b)
        => ((ulong)System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(b) << 32) | System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b[2..]);

    /// <summary>Formats a 48-bit MAC as aa:bb:cc:dd:ee:ff.</summary>
    public static string Mac(ulong mac)
        => string.Create(17, mac, static (s, m) =>
        {
            for (int i = 0; i < 6; i++)
            {
                byte b = (byte)(m >> (40 - 8 * i));
                s[i * 3] = "0123456789abcdef"[b >> 4];
                s[i * 3 + 1] = "0123456789abcdef"[b & 15];
                if (i < 5) s[i * 3 + 2] = ':';
            }
        });

    /// <summary>Parses aa:bb:cc:dd:ee:ff (or with '-'); throws an ArgumentException that says what is wrong.</summary>
    public static byte[] Mac(string text, string what = "MAC address")
    {
        var parts = (text ?? "").Trim().Split(':', '-');
        if (parts.Length != 6 || parts.Any(p => p.Length is < 1 or > 2 || !p.All(Uri.IsHexDigit)))
            throw new ArgumentException($"'{text}' is not a valid {what}: write six hexadecimal bytes separated by colons, e.g. 1a:27:f3:87:3a:27.");
        return parts.Select(p => Convert.ToByte(p, 16)).ToArray();
    }

    /// <summary>Parses ADDR/PREFIX (IPv4 or IPv6); a bare address gets the full-length prefix.</summary>
    public static (IPAddress Address, int PrefixLength) Cidr(string text)
    {
        var s = (text ?? "").Trim();
        int slash = s.IndexOf('/');
        var addrPart = slash >= 0 ? s[..slash] : s;
        if (!IPAddress.TryParse(addrPart, out var address) || addrPart.Contains('%') ||
            (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && addrPart.Count(c => c == '.') != 3))
            throw new ArgumentException($"'{text}' is not a valid IP address: write an IPv4 or IPv6 address with an optional prefix length, e.g. 10.10.10.88/24 or 2001:db8::1/64.");
        int max = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        int prefix = max;
        if (slash >= 0 && (!int.TryParse(s[(slash + 1)..], System.Globalization.NumberStyles.None, null, out prefix) || prefix > max))
            throw new ArgumentException($"'{text}' has an invalid prefix length: it must be a whole number from 0 to {max}.");
        return (address, prefix);
    }

    /// <summary>Whether <paramref name="ip"/> lies in <paramref name="network"/>/<paramref name="prefixLength"/> (same family).</summary>
    public static bool InSubnet(IPAddress ip, IPAddress network, int prefixLength)
    {
        var a = ip.GetAddressBytes();
        var b = network.GetAddressBytes();
        if (a.Length != b.Length) return false;
        for (int bit = 0; bit < prefixLength; bit++)
        {
            int mask = 0x80 >> (bit % 8);
            if ((a[bit / 8] & mask) != (b[bit / 8] & mask)) return false;
        }
        return true;
    }

    /// <summary>Why an interface name is unacceptable to the kernel, or null when it is fine (the protocol's one validator).</summary>
    public static string? LinkNameProblem(string? name) => InterfaceName.Problem(name);

    /// <summary>Throws an ArgumentException for an invalid interface name.</summary>
    public static void ThrowIfInvalidLinkName(string? name, string parameter = "Name")
    {
        var problem = LinkNameProblem(name);
        if (problem != null)
            throw new ArgumentException($"Invalid interface name: {problem}. Interface names are 1 to 15 bytes without '/', ':' or white space.", parameter);
    }
}
