using System;
using System.Linq;
using System.Security.Cryptography;
using System.Text;

namespace NvRedirect.Tc;

/// <summary>
/// The mark NvRedirect puts on every action it installs, so that its filters can be told apart from anybody
/// else's: a 16-byte TCA_ACT_COOKIE (the kernel's maximum), which the kernel stores opaquely and dumps back
/// (`tc filter show` prints it as "cookie 6e7672656469723100…"). Layout: the 8 ASCII bytes "nvredir1" (the
/// format's name and version), then 8 bytes of tag:
/// <list type="bullet">
/// <item>no tag: eight zero bytes;</item>
/// <item>a tag of at most 8 UTF-8 bytes: those bytes, zero-padded (readable back);</item>
/// <item>a longer tag: the first 8 bytes of its SHA-256 (compared, not readable back).</item>
/// </list>
/// </summary>
public static class RedirectCookie
{
    /// <summary>The cookie's size in bytes.</summary>
    public const int Length = 16;
    /// <summary>The tag's size in bytes.</summary>
    public const int TagLength = 8;
    /// <summary>The first 8 bytes of every cookie of ours: "nvredir1".</summary>
    public static ReadOnlySpan<byte> Magic => "nvredir1"u8;

    /// <summary>A cookie with the given tag (null or "" = no tag).</summary>
    public static byte[] Create(string? tag = null)
    {
        var cookie = new byte[Length];
        Magic.CopyTo(cookie);
        TagBytes(tag).CopyTo(cookie, Magic.Length);
        return cookie;
    }

    /// <summary>The 8 tag bytes a tag is stored as.</summary>
    public static byte[] TagBytes(string? tag)
    {
        var utf8 = Encoding.UTF8.GetBytes(tag ?? "");
        if (utf8.Length > TagLength) return SHA256.HashData(utf8)[..TagLength];
        var bytes = new byte[TagLength];
        utf8.CopyTo(bytes, 0);
        return bytes;
    }

    /// <summary>Whether a cookie is one of ours (any tag).</summary>
    public static bool IsOurs(byte[]? cookie) => cookie is { Length: Length } && cookie.AsSpan(0, Magic.Length).SequenceEqual(Magic);

    /// <summary>Whether a cookie is ours and carries the given tag.</summary>
    public static bool HasTag(byte[]? cookie, string? tag) => IsOurs(cookie) && cookie.AsSpan(Magic.Length).SequenceEqual(TagBytes(tag));

    /// <summary>
    /// The tag of a cookie of ours as text: "" for none, the tag itself when it was stored readable, "sha256:" and
    /// 16 hex digits for a hashed one; null when the cookie is not ours.
    /// </summary>
    public static string? TagOf(byte[]? cookie)
    {
        if (!IsOurs(cookie)) return null;
        var tag = cookie.AsSpan(Magic.Length);
        int end = tag.IndexOf((byte)0);
        if (end < 0) end = TagLength;
        bool padded = !tag[end..].ContainsAnyExcept((byte)0);
        if (padded)
        {
            try
            {
                var text = new UTF8Encoding(false, true).GetString(tag[..end]);
                if (!text.Any(char.IsControl)) return text;
            }
            catch (DecoderFallbackException) { /* not text: a hash */ }
        }
        return "sha256:" + Convert.ToHexString(tag).ToLowerInvariant();
    }

    /// <summary>Whether a filter is ours: it has actions and every one carries a cookie of ours.</summary>
    public static bool IsOurs(TcFilter filter) => Actions(filter) is { Count: > 0 } actions && actions.All(a => IsOurs(a.Cookie));

    /// <summary>The tag of a filter of ours (from its first action), or null when the filter is not ours.</summary>
    public static string? TagOf(TcFilter filter) => IsOurs(filter) ? TagOf(Actions(filter)[0].Cookie) : null;

    private static System.Collections.Generic.IReadOnlyList<TcAction> Actions(TcFilter filter) => filter switch
    {
        U32Filter u => u.Actions,
        BpfFilter b => b.Actions,
        _ => [],
    };
}
