using System;
using System.Globalization;
using System.Text.Json;

namespace NvRedirect.Core.Protocol;

/// <summary>A command argument that is missing, of the wrong JSON type, or out of range. The message says which and why.</summary>
public sealed class CommandException(string message) : Exception(message);

/// <summary>
/// Strict readers of the protocol's JSON fields (command arguments, and the replies nvr-dp writes). JSON types must match what NeuVector's agent sends (integers as JSON
/// integers, booleans as true/false, MACs and IPv4 addresses as strings); jansson would read a mistyped value as
/// 0/false/NULL, here it is an error. Unknown fields are ignored, as in NeuVector.
/// </summary>
public static class Fields
{
    /// <summary>The command's argument object.</summary>
    public static JsonElement Object(JsonElement value)
        => value.ValueKind == JsonValueKind.Object ? value : throw new CommandException($"expects an object, got {Describe(value)}");

    /// <summary>Whether <paramref name="name"/> is present and not null.</summary>
    public static bool Has(JsonElement obj, string name)
        => obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    /// <summary>A required string.</summary>
    public static string String(JsonElement obj, string name)
        => OptionalString(obj, name) ?? throw new CommandException($"\"{name}\" is missing (a string is required)");

    /// <summary>A required string that is not empty.</summary>
    public static string NonEmptyString(JsonElement obj, string name)
        => String(obj, name) is { Length: > 0 } s ? s : throw new CommandException($"\"{name}\" is empty");

    /// <summary>A domain name as NeuVector keeps it (1-255 bytes, no control characters); <paramref name="name"/> names the field.</summary>
    public static string FqdnName(string text, string name)
    {
        if (System.Text.Encoding.UTF8.GetByteCount(text) > 255) throw new CommandException($"\"{name}\": the name \"{Clip(text)}\" is longer than 255 bytes");
        foreach (char c in text)
            if (char.IsControl(c) || char.IsWhiteSpace(c)) throw new CommandException($"\"{name}\": the name \"{Clip(text)}\" holds a space or control character");
        return text;
    }

    /// <summary>A string, or null when absent/null.</summary>
    public static string? OptionalString(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new CommandException($"\"{name}\" must be a string, got {Describe(v)}");
    }

    /// <summary>A boolean, or null when absent.</summary>
    public static bool? OptionalBool(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new CommandException($"\"{name}\" must be true or false, got {Describe(v)}"),
        };
    }

    /// <summary>A required unsigned integer no larger than <paramref name="max"/>.</summary>
    public static uint UInt(JsonElement obj, string name, uint max = uint.MaxValue)
        => OptionalUInt(obj, name, max) ?? throw new CommandException($"\"{name}\" is missing (an integer is required)");

    /// <summary>An unsigned integer, or null when absent.</summary>
    public static uint? OptionalUInt(JsonElement obj, string name, uint max = uint.MaxValue)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetUInt32(out uint value))
            throw new CommandException($"\"{name}\" must be an integer from 0 to {max}, got {Describe(v)}");
        return value <= max ? value : throw new CommandException($"\"{name}\" must be an integer from 0 to {max}, got {value}");
    }

    /// <summary>A required array.</summary>
    public static JsonElement.ArrayEnumerator Array(JsonElement obj, string name)
        => OptionalArray(obj, name) ?? throw new CommandException($"\"{name}\" is missing (an array is required)");

    /// <summary>An array, or null when absent/null.</summary>
    public static JsonElement.ArrayEnumerator? OptionalArray(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.Array ? v.EnumerateArray() : throw new CommandException($"\"{name}\" must be an array, got {Describe(v)}");
    }

    /// <summary>A required MAC address.</summary>
    public static ulong Mac(JsonElement obj, string name)
    {
        var text = String(obj, name);
        return ParseMac(text) ?? throw new CommandException($"\"{name}\" is not a MAC address: \"{Clip(text)}\"");
    }

    /// <summary>A MAC address, or 0 when absent, null or "" (NeuVector: empty = not registered).</summary>
    public static ulong OptionalMac(JsonElement obj, string name)
    {
        var text = OptionalString(obj, name);
        if (string.IsNullOrEmpty(text)) return 0;
        return ParseMac(text) ?? throw new CommandException($"\"{name}\" is not a MAC address: \"{Clip(text)}\"");
    }

    /// <summary>A required interface name (see <see cref="InterfaceName"/>).</summary>
    public static string InterfaceName(JsonElement obj, string name)
    {
        string iface = String(obj, name);
        return Model.InterfaceName.Problem(iface) is { } problem
            ? throw new CommandException($"\"{name}\" is not an interface name: \"{Clip(iface)}\" ({problem})") : iface;
    }

    /// <summary>An array of MAC strings, or null when absent/null.</summary>
    public static ulong[]? Macs(JsonElement obj, string name)
    {
        if (OptionalArray(obj, name) is not { } list) return null;
        var macs = new System.Collections.Generic.List<ulong>();
        foreach (var item in list)
        {
            if (item.ValueKind != JsonValueKind.String) throw new CommandException($"\"{name}\" must hold MAC strings, got {Describe(item)}");
            macs.Add(ParseMac(item.GetString()!) ?? throw new CommandException($"\"{name}\" holds something that is not a MAC address: \"{Clip(item.GetString()!)}\""));
        }
        return macs.ToArray();
    }

    /// <summary>Writes an array of MACs as strings.</summary>
    public static void WriteMacs(Utf8JsonWriter w, string name, System.Collections.Generic.IEnumerable<ulong> macs)
    {
        w.WriteStartArray(name);
        foreach (var m in macs) w.WriteStringValue(FormatMac(m));
        w.WriteEndArray();
    }

    /// <summary>Parses a MAC with the protocol's validator (<see cref="ParseMac"/>); throws an ArgumentException naming <paramref name="what"/>.</summary>
    public static ulong MacOrThrow(string text, string what = "MAC address")
        => ParseMac(text) ?? throw new ArgumentException($"'{text}' is not a valid {what}: write six hexadecimal bytes separated by colons, e.g. 1a:27:f3:87:3a:27.");

    /// <summary>A required dotted-quad IPv4 address (host order).</summary>
    public static uint IPv4(JsonElement obj, string name)
    {
        var text = String(obj, name);
        return ParseIPv4(text) ?? throw new CommandException($"\"{name}\" is not a dotted-quad IPv4 address: \"{Clip(text)}\"");
    }

    /// <summary>
    /// A required address of either family (nvr-dp's IPv6 extension of the rule fields, docs/datapath.md "IPv6"):
    /// dotted-quad IPv4 as <see cref="IPv4"/> (returns false), or an IPv6 address in RFC 4291 text, no zone, no
    /// embedded IPv4 tail (returns true, with the address in <paramref name="v6"/>).
    /// </summary>
    public static bool Address(JsonElement obj, string name, out uint v4, out UInt128 v6)
    {
        var text = String(obj, name);
        v4 = 0;
        v6 = 0;
        if (!text.Contains(':'))
        {
            v4 = ParseIPv4(text) ?? throw new CommandException($"\"{name}\" is not a dotted-quad IPv4 address or an IPv6 address: \"{Clip(text)}\"");
            return false;
        }
        v6 = ParseIPv6(text) ?? throw new CommandException($"\"{name}\" is not an IPv6 address (hex groups separated by colons, e.g. fd00::1): \"{Clip(text)}\"");
        return true;
    }

    /// <summary>An IPv6 address (hex groups, :: allowed, no zone id, no dotted tail) as a 128-bit number, or null.</summary>
    public static UInt128? ParseIPv6(string text)
    {
        if (text.Length is < 2 or > 39 || text.Contains('%') || text.Contains('.')) return null;
        foreach (char ch in text) if (!(char.IsAsciiHexDigit(ch) || ch == ':')) return null;
        if (!System.Net.IPAddress.TryParse(text, out var a) || a.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6) return null;
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(a.GetAddressBytes());
    }

    /// <summary>RFC 5952 text of a 128-bit IPv6 address.</summary>
    public static string FormatIPv6(UInt128 ip)
    {
        var b = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(b, ip);
        return new System.Net.IPAddress(b).ToString();
    }

    /// <summary>
    /// The protocol's MAC validator: six colon-separated groups of one or two hex digits (what ether_aton accepts), nothing
    /// around them. Both sides use it: the daemon reads MACs with it, the module checks the MACs it sends.
    /// </summary>
    public static ulong? ParseMac(string text) => ParseBytes(text, ':', 6, 2, NumberStyles.AllowHexSpecifier);

    /// <summary>Parses exactly four decimal parts of 0..255 (no inet_addr shorthands such as "10.1").</summary>
    public static uint? ParseIPv4(string text) => (uint?)ParseBytes(text, '.', 4, 3, NumberStyles.None);

    // count separated byte values of 1..maxDigits digits, most significant first
    private static ulong? ParseBytes(string text, char separator, int count, int maxDigits, NumberStyles style)
    {
        var parts = text.Split(separator);
        if (parts.Length != count) return null;
        ulong value = 0;
        foreach (var p in parts)
        {
            if (p.Length < 1 || p.Length > maxDigits || !byte.TryParse(p, style, CultureInfo.InvariantCulture, out byte b)) return null;
            value = value << 8 | b;
        }
        return value;
    }

    /// <summary>Dotted-quad text of a host-order IPv4 address.</summary>
    public static string FormatIPv4(uint ip) => $"{ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}";

    /// <summary>aa:bb:cc:dd:ee:ff.</summary>
    public static string FormatMac(ulong mac) => Model.Parse.Mac(mac);

    /// <summary>A short description of a JSON value for error messages.</summary>
    public static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{Clip(v.GetString() ?? "")}\"",
        JsonValueKind.Number => $"the number {Clip(v.GetRawText())}",
        JsonValueKind.True or JsonValueKind.False => $"the boolean {v.GetRawText()}",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.Null => "null",
        _ => v.ValueKind.ToString(),
    };

    /// <summary>Cuts long text for log lines.</summary>
    public static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "...";
}
