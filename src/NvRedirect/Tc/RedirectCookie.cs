using System;
using System.Linq;
using System.Text;

namespace NvRedirect.Tc;

/// <summary>
/// How NvRedirect recognises its own tc filters: every action it installs carries a 16-byte TCA_ACT_COOKIE,
/// ASCII "nvredir1" followed by an 8-byte tag (zero, or what identifies the owner: an interception uses "ic" + the
/// workload MAC). cls_bpf filters have no actions; their TCA_BPF_NAME starts with "nvredir1:" instead.
/// </summary>
public static class RedirectCookie
{
    /// <summary>The 8-byte marker at the start of every cookie and bpf filter name of ours.</summary>
    public const string Marker = "nvredir1";
    private static readonly byte[] MarkerBytes = Encoding.ASCII.GetBytes(Marker);

    /// <summary>A cookie with the given tag (at most 8 bytes, zero-padded).</summary>
    public static byte[] Create(ReadOnlySpan<byte> tag = default)
    {
        if (tag.Length > 8) throw new ArgumentException("A cookie tag is at most 8 bytes.", nameof(tag));
        var cookie = new byte[16];
        MarkerBytes.CopyTo(cookie, 0);
        tag.CopyTo(cookie.AsSpan(8));
        return cookie;
    }

    /// <summary>Whether a cookie is ours.</summary>
    public static bool IsOurs(byte[]? cookie) => cookie is { Length: 16 } && cookie.AsSpan(0, 8).SequenceEqual(MarkerBytes);

    /// <summary>The 8-byte tag of one of our cookies, or null.</summary>
    public static byte[]? TagOf(byte[]? cookie) => IsOurs(cookie) ? cookie![8..] : null;

    /// <summary>Whether a filter is ours: one of its actions carries our cookie, or (bpf) its name starts with the marker.</summary>
    public static bool IsOurs(TcFilter filter) => filter switch
    {
        U32Filter u => u.Actions.Any(a => IsOurs(a.Cookie)),
        BpfFilter b => b.Name?.StartsWith(Marker + ":", StringComparison.Ordinal) == true || b.Actions.Any(a => IsOurs(a.Cookie)),
        _ => false,
    };
}
