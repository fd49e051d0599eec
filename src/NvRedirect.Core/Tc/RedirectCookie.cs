using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Text;

namespace NvRedirect.Core.Tc;

/// <summary>
/// How NvRedirect recognises its own tc filters: every action it installs carries a 16-byte TCA_ACT_COOKIE (the
/// kernel's maximum; stored opaquely and dumped back, `tc filter show` prints it as "cookie 6e7672656469723100…"):
/// the 8 ASCII bytes "nvredir1" (the format's name and version), then an 8-byte tag. The tag is zero, or says who
/// owns the filter: an interception uses "ic" + the workload MAC; Add-RedirectFilter -Tag stores a text of at most 8
/// UTF-8 bytes as it is (zero-padded, readable back) and a longer one as the first 8 bytes of its SHA-256 (compared,
/// not readable back). cls_bpf filters have no actions; their TCA_BPF_NAME starts with "nvredir1:" instead.
/// </summary>
public static class RedirectCookie
{
    /// <summary>The 8-byte marker at the start of every cookie and bpf filter name of ours.</summary>
    public const string Marker = "nvredir1";
    /// <summary>The cookie's size in bytes.</summary>
    public const int Length = 16;
    /// <summary>The tag's size in bytes.</summary>
    public const int TagLength = 8;
    private static ReadOnlySpan<byte> MarkerBytes => "nvredir1"u8;

    /// <summary>A cookie with the given tag (at most 8 bytes, zero-padded).</summary>
    public static byte[] Create(ReadOnlySpan<byte> tag = default)
    {
        if (tag.Length > TagLength) throw new ArgumentException("A cookie tag is at most 8 bytes.", nameof(tag));
        var cookie = new byte[Length];
        MarkerBytes.CopyTo(cookie);
        tag.CopyTo(cookie.AsSpan(MarkerBytes.Length));
        return cookie;
    }

    /// <summary>A cookie with a text tag (null or "" = no tag), stored as <see cref="TagBytes"/> says.</summary>
    public static byte[] ForTag(string? tag) => Create(TagBytes(tag));

    /// <summary>The 8 bytes a text tag is stored as: its UTF-8 bytes zero-padded, or the first 8 bytes of their SHA-256 when longer.</summary>
    public static byte[] TagBytes(string? tag)
    {
        var utf8 = Encoding.UTF8.GetBytes(tag ?? "");
        if (utf8.Length > TagLength) return SHA256.HashData(utf8)[..TagLength];
        var bytes = new byte[TagLength];
        utf8.CopyTo(bytes, 0);
        return bytes;
    }

    /// <summary>Whether a cookie is ours (any tag).</summary>
    public static bool IsOurs(byte[]? cookie) => cookie is { Length: Length } && cookie.AsSpan(0, MarkerBytes.Length).SequenceEqual(MarkerBytes);

    /// <summary>The 8-byte tag of one of our cookies, or null.</summary>
    public static byte[]? TagOf(byte[]? cookie) => IsOurs(cookie) ? cookie![MarkerBytes.Length..] : null;

    /// <summary>Whether a cookie is ours and carries the given text tag.</summary>
    public static bool HasTag(byte[]? cookie, string? tag) => TagOf(cookie) is { } bytes && bytes.AsSpan().SequenceEqual(TagBytes(tag));

    /// <summary>
    /// The tag of one of our cookies for people: "" for none, the text when it is zero-padded printable UTF-8, otherwise
    /// 0x and 16 hex digits (a hashed long tag, an interception's "ic"+MAC); null when the cookie is not ours.
    /// </summary>
    public static string? TagText(byte[]? cookie)
    {
        if (TagOf(cookie) is not { } tag) return null;
        int end = Array.IndexOf(tag, (byte)0);
        if (end < 0) end = TagLength;
        if (!tag.AsSpan(end).ContainsAnyExcept((byte)0))
        {
            try
            {
                var text = new UTF8Encoding(false, true).GetString(tag, 0, end);
                if (!text.Any(char.IsControl)) return text;
            }
            catch (DecoderFallbackException) { /* binary: shown in hex */ }
        }
        return "0x" + Convert.ToHexString(tag).ToLowerInvariant();
    }

    /// <summary>
    /// Whether a filter is ours: it has actions and every one carries our cookie (one foreign action makes the whole
    /// filter somebody else's), or, for cls_bpf, its name starts with the marker.
    /// </summary>
    public static bool IsOurs(TcFilter filter) => filter switch
    {
        BpfFilter b when b.Name?.StartsWith(Marker + ":", StringComparison.Ordinal) == true => true,
        _ => Actions(filter) is { Count: > 0 } actions && actions.All(a => IsOurs(a.Cookie)),
    };

    /// <summary>
    /// The tag of a filter of ours as <see cref="TagText(byte[])"/> shows it: from its first action's cookie, or for a
    /// cls_bpf filter from its name ("nvredir1:TAGHEX:..."); null when the filter is not ours.
    /// </summary>
    public static string? TagText(TcFilter filter)
    {
        if (!IsOurs(filter)) return null;
        if (Actions(filter) is { Count: > 0 } actions) return TagText(actions[0].Cookie);
        var parts = (filter as BpfFilter)?.Name?.Split(':');
        if (parts is { Length: >= 2 } && parts[1].Length == 2 * TagLength && parts[1].All(Uri.IsHexDigit))
            return TagText(Create(Convert.FromHexString(parts[1])));
        return "";
    }

    private static IReadOnlyList<TcAction> Actions(TcFilter filter) => filter switch
    {
        U32Filter u => u.Actions,
        BpfFilter b => b.Actions,
        _ => [],
    };
}
