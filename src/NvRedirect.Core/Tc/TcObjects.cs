using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace NvRedirect.Core.Tc;

// The typed tc objects (the model): what a qdisc, a filter, a match and an action ARE, apart from their bytes.
// Encoding lives in TcMessages, decoding in TcDecoder, struct layouts in TcLayouts, iproute2's packing rules in
// TcKeyPacking. Properties documented "decoded" are filled from kernel dumps and ignored by the encoder.

/// <summary>What an idempotent operation did.</summary>
public enum TcChange
{
    /// <summary>Nothing was there; it was created.</summary>
    Added,
    /// <summary>The same thing was already there; nothing was sent.</summary>
    Unchanged,
    /// <summary>Something different was there; it was removed and the new one added.</summary>
    Replaced,
    /// <summary>It was there and has been removed.</summary>
    Removed,
    /// <summary>There was nothing to remove.</summary>
    Absent,
}

/// <summary>An action's verdict, the tc_gen "action" word (TC_ACT_*): what happens after the action ran.</summary>
public enum TcActionControl
{
    /// <summary>TC_ACT_UNSPEC: use the classifier's default (continue).</summary>
    Unspec = -1,
    /// <summary>TC_ACT_OK ("pass"): stop classifying, let the packet through.</summary>
    Ok = 0,
    /// <summary>TC_ACT_RECLASSIFY.</summary>
    Reclassify = 1,
    /// <summary>TC_ACT_SHOT ("drop").</summary>
    Shot = 2,
    /// <summary>TC_ACT_PIPE: go on with the next action of the list.</summary>
    Pipe = 3,
    /// <summary>TC_ACT_STOLEN: the action consumed the packet (mirred redirect).</summary>
    Stolen = 4,
    /// <summary>TC_ACT_QUEUED.</summary>
    Queued = 5,
    /// <summary>TC_ACT_REPEAT.</summary>
    Repeat = 6,
    /// <summary>TC_ACT_REDIRECT.</summary>
    Redirect = 7,
    /// <summary>TC_ACT_TRAP.</summary>
    Trap = 8,
}

/// <summary>Which side of the target device mirred hands the packet to.</summary>
public enum MirredDirection
{
    /// <summary>Transmit out of the target (tc "egress").</summary>
    Egress,
    /// <summary>Receive on the target (tc "ingress").</summary>
    Ingress,
}

/// <summary>Whether mirred copies the packet or takes it.</summary>
public enum MirredMode
{
    /// <summary>Send a copy; the original goes on (default control: pipe).</summary>
    Mirror,
    /// <summary>Send the packet itself (default control: stolen).</summary>
    Redirect,
}

/// <summary>pedit's TCA_PEDIT_KEY_EX_HTYPE: what a key's offset is relative to (legacy keys: the network header).</summary>
public enum PeditHeaderType : ushort
{
    /// <summary>TCA_PEDIT_KEY_EX_HDR_TYPE_NETWORK: relative to the network header (negative = link-layer header).</summary>
    Network = 0,
    /// <summary>Ethernet header.</summary>
    Eth = 1,
    /// <summary>IPv4 header.</summary>
    IPv4 = 2,
    /// <summary>IPv6 header.</summary>
    IPv6 = 3,
    /// <summary>TCP header.</summary>
    Tcp = 4,
    /// <summary>UDP header.</summary>
    Udp = 5,
}

/// <summary>pedit's TCA_PEDIT_KEY_EX_CMD.</summary>
public enum PeditCommand : ushort
{
    /// <summary>word = (word &amp; mask) ^ val.</summary>
    Set = 0,
    /// <summary>word = ((word &amp; mask) + val) (ex syntax only).</summary>
    Add = 1,
}

/// <summary>Ethernet protocol numbers as tc names them (host order; the wire holds them in network order).</summary>
public static class TcProtocol
{
    /// <summary>ETH_P_ALL, tc "all" (tc's default when creating a filter).</summary>
    public const ushort All = 0x0003;
    /// <summary>ETH_P_IP, tc "ip".</summary>
    public const ushort IPv4 = 0x0800;
    /// <summary>ETH_P_ARP, tc "arp".</summary>
    public const ushort Arp = 0x0806;
    /// <summary>ETH_P_8021Q, tc "802.1Q".</summary>
    public const ushort Vlan = 0x8100;
    /// <summary>ETH_P_IPV6, tc "ipv6".</summary>
    public const ushort IPv6 = 0x86DD;

    /// <summary>tc's name for a protocol ("ip", "all"...), or 0xNNNN.</summary>
    public static string Name(ushort protocol) => protocol switch
    {
        All => "all",
        IPv4 => "ip",
        Arp => "arp",
        Vlan => "802.1Q",
        IPv6 => "ipv6",
        0 => "none",
        _ => $"0x{protocol:x4}",
    };

    /// <summary>Reads "ip", "all", "arp", "ipv6", "802.1q", a decimal or a 0x hex number.</summary>
    public static ushort Parse(string text)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "all": return All;
            case "ip": case "ipv4": return IPv4;
            case "arp": return Arp;
            case "ipv6": return IPv6;
            case "802.1q": case "vlan": return Vlan;
        }
        if (TcNumber.TryParse(text, out uint v) && v <= 0xffff) return (ushort)v;
        throw new ArgumentException($"'{text}' is not a protocol: use ip, ipv6, arp, all, 802.1Q or a number such as 0x0800.", nameof(text));
    }
}

/// <summary>tc's text forms of handles and numbers.</summary>
public static class TcNumber
{
    /// <summary>A qdisc/class handle as tc prints it: "ffff:", "ffff:fff1", "root".</summary>
    public static string Handle(uint handle)
    {
        if (handle == Tca.TC_H_ROOT) return "root";
        if (handle == 0) return "none";
        uint major = handle >> 16, minor = handle & 0xffff;
        return minor == 0 ? $"{major:x}:" : $"{major:x}:{minor:x}";
    }

    /// <summary>Parses "ffff:", "ffff:fff1", "root", "ingress" (= ffff:fff1) or a 0x number.</summary>
    public static uint ParseHandle(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "root") return Tca.TC_H_ROOT;
        if (t == "ingress") return Tca.TC_H_INGRESS;
        int colon = t.IndexOf(':');
        if (colon >= 0)
        {
            string major = t[..colon], minor = t[(colon + 1)..];
            if (uint.TryParse(major.Length == 0 ? "0" : major, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint ma) && ma <= 0xffff &&
                uint.TryParse(minor.Length == 0 ? "0" : minor, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint mi) && mi <= 0xffff)
                return ma << 16 | mi;
        }
        else if (TryParse(t, out uint v)) return v;
        throw new ArgumentException($"'{text}' is not a tc handle: write MAJOR:MINOR in hex (ffff:, ffff:fff1) or root.", nameof(text));
    }

    /// <summary>A u32 filter handle as tc prints it: "800:" (hash table), "800::800" (node).</summary>
    public static string U32Handle(uint handle)
    {
        uint table = handle >> 20, bucket = (handle >> 12) & 0xff, node = handle & 0xfff;
        var text = $"{table:x}:";
        if (bucket != 0) text += $"{bucket:x}";
        if (node != 0) text += $":{node:x}";
        return text;
    }

    /// <summary>Decimal, or hex with 0x (as tc's get_u32(..., 0) accepts).</summary>
    public static bool TryParse(string text, out uint value)
    {
        var t = text.Trim();
        if (t.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return uint.TryParse(t[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
        return uint.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>Signed decimal or 0x hex (offsets: "-14").</summary>
    public static bool TryParseSigned(string text, out int value)
    {
        var t = text.Trim();
        bool negative = t.StartsWith('-');
        if (negative) t = t[1..];
        if (TryParse(t, out uint magnitude) && magnitude <= int.MaxValue)
        {
            value = negative ? -(int)magnitude : (int)magnitude;
            return true;
        }
        value = 0;
        return false;
    }
}

/// <summary>A qdisc (only option-less ones such as ingress and clsact can be created here).</summary>
public sealed record Qdisc
{
    /// <summary>ifindex of the device.</summary>
    public int LinkIndex { get; init; }
    /// <summary>The device's name (filled by the operations layer; not on the wire).</summary>
    public string? LinkName { get; init; }
    /// <summary>Kind: ingress, clsact, noqueue, pfifo_fast...</summary>
    public string Kind { get; init; } = "";
    /// <summary>tcm_handle (ingress: ffff:0).</summary>
    public uint Handle { get; init; }
    /// <summary>tcm_parent (ingress: TC_H_INGRESS ffff:fff1; root qdiscs: ffffffff).</summary>
    public uint Parent { get; init; }
    /// <summary>Decoded: tcm_info, the qdisc's reference count.</summary>
    public uint RefCount { get; init; }

    /// <summary>The ingress qdisc of a device, as `tc qdisc add dev D ingress` creates it.</summary>
    public static Qdisc Ingress(int linkIndex) => new() { LinkIndex = linkIndex, Kind = "ingress", Handle = Tca.IngressHandle, Parent = Tca.TC_H_INGRESS };

    /// <summary>Whether this is an ingress qdisc.</summary>
    public bool IsIngress => Kind == "ingress" && Parent == Tca.TC_H_INGRESS;
    /// <summary>Handle in tc's notation.</summary>
    public string HandleText => TcNumber.Handle(Handle);
    /// <summary>Parent in tc's notation.</summary>
    public string ParentText => TcNumber.Handle(Parent);

    /// <inheritdoc/>
    public override string ToString() => $"qdisc {Kind} {HandleText} dev {LinkName ?? LinkIndex.ToString(CultureInfo.InvariantCulture)} parent {ParentText}";
}

/// <summary>
/// One `match uN VALUE MASK at OFFSET` of tc's u32 syntax, as the user means it. Packed into <see cref="U32Key"/>s
/// by <see cref="TcKeyPacking.PackU32"/>. Offsets are relative to the network header at ingress (-14 = destination
/// MAC, -8 = source MAC, -2 = ethertype).
/// </summary>
/// <param name="Size">8, 16 or 32 bits.</param>
/// <param name="Value">The value to compare (must fit in Size bits).</param>
/// <param name="Mask">Which bits to compare (must fit in Size bits).</param>
/// <param name="Offset">Byte offset; u32 needs a multiple of 4, u16 an even offset.</param>
public readonly record struct U32Match(int Size, uint Value, uint Mask, int Offset)
{
    /// <summary>`match u8 VALUE MASK at OFFSET`.</summary>
    public static U32Match U8(byte value, byte mask, int offset = 0) => new(8, value, mask, offset);
    /// <summary>`match u16 VALUE MASK at OFFSET`.</summary>
    public static U32Match U16(ushort value, ushort mask, int offset = 0) => new(16, value, mask, offset);
    /// <summary>`match u32 VALUE MASK at OFFSET`.</summary>
    public static U32Match U32(uint value, uint mask, int offset = 0) => new(32, value, mask, offset);

    /// <summary>
    /// Parses tc's text, with or without the leading "match": "u16 0x1a27 0xffff at -14" (<see cref="TcText.ParseMatch"/>);
    /// <see cref="TcSyntaxException"/> names the word it cannot read.
    /// </summary>
    public static U32Match Parse(string text)
    {
        var words = TcText.Words(text);
        int i = 0;
        var match = TcText.ParseMatch(words, ref i, text);
        if (i < words.Length) throw new TcSyntaxException(text, words[i], "it holds more than one match", TcText.MatchExample);
        return match;
    }

    /// <inheritdoc/>
    public override string ToString() => $"u{Size} 0x{Value:x} 0x{Mask:x} at {Offset}";
}

/// <summary>
/// One packed u32 key (struct tc_u32_key): the 32-bit word at network header + <paramref name="Offset"/> matches
/// when (word ^ Value) &amp; Mask == 0. Mask and Value are numbers whose big-endian bytes are the packet bytes
/// (0x00001a27 = bytes 00 00 1a 27), as tc prints them.
/// </summary>
/// <param name="Mask">Compare-mask (1 = compare this bit).</param>
/// <param name="Value">Expected bits (only those under Mask matter).</param>
/// <param name="Offset">Word offset, a multiple of 4 (may be negative).</param>
/// <param name="OffMask">Next-header offset mask (tc `nexthdr+`); 0 for plain offsets.</param>
public readonly record struct U32Key(uint Mask, uint Value, int Offset, int OffMask = 0)
{
    /// <summary>The key `match u8 0 0` packs to: always true.</summary>
    public static U32Key MatchAll => new(0, 0, 0);

    /// <inheritdoc/>
    public override string ToString() => OffMask == 0
        ? $"{Value:x8}/{Mask:x8} at {Offset}"
        : $"{Value:x8}/{Mask:x8} at nexthdr+{Offset} offmask {OffMask:x}";
}

/// <summary>
/// The selector of a u32 node (struct tc_u32_sel): its keys (all must match) and the rarely used next-header and
/// hashing fields, kept so that a decoded filter re-encodes to the same bytes.
/// </summary>
public sealed record U32Selector
{
    /// <summary>tc_u32_sel.flags; TC_U32_TERMINAL (1) makes the node run its actions.</summary>
    public byte Flags { get; init; } = Tca.TC_U32_TERMINAL;
    /// <summary>offshift.</summary>
    public byte OffShift { get; init; }
    /// <summary>offmask (host value of the be16 field).</summary>
    public ushort OffMask { get; init; }
    /// <summary>off.</summary>
    public ushort Off { get; init; }
    /// <summary>offoff.</summary>
    public short OffOff { get; init; }
    /// <summary>hoff.</summary>
    public short HashOffset { get; init; }
    /// <summary>hmask (host value of the be32 field).</summary>
    public uint HashMask { get; init; }
    /// <summary>The keys, in wire order.</summary>
    public IReadOnlyList<U32Key> Keys { get; init; } = [];

    /// <summary>A terminal selector from tc-style matches, packed and merged as tc does.</summary>
    public static U32Selector FromMatches(IEnumerable<U32Match> matches) => new() { Keys = TcKeyPacking.PackU32(matches) };
    /// <summary>A terminal selector from matches.</summary>
    public static U32Selector FromMatches(params U32Match[] matches) => FromMatches((IEnumerable<U32Match>)matches);
    /// <summary>A terminal selector from already packed keys (taken as they are).</summary>
    public static U32Selector FromKeys(IEnumerable<U32Key> keys) => new() { Keys = keys.ToArray() };
    /// <summary>Matches every packet (`match u8 0 0`).</summary>
    public static U32Selector MatchAll => new() { Keys = [U32Key.MatchAll] };

    /// <summary>Whether the node runs its actions.</summary>
    public bool IsTerminal => (Flags & Tca.TC_U32_TERMINAL) != 0;

    /// <summary>Value equality including the keys.</summary>
    public bool Equals(U32Selector? other) => other is not null && Flags == other.Flags && OffShift == other.OffShift &&
        OffMask == other.OffMask && Off == other.Off && OffOff == other.OffOff && HashOffset == other.HashOffset &&
        HashMask == other.HashMask && Keys.SequenceEqual(other.Keys);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Flags, Keys.Count, Keys.Count > 0 ? Keys[0] : default);

    /// <inheritdoc/>
    public override string ToString() => string.Join("; ", Keys.Select(k => "match " + k));
}

/// <summary>
/// One `munge offset OFFSET uN set VALUE` of tc's pedit syntax, as the user means it. Packed into a
/// <see cref="PeditPackedKey"/> by <see cref="TcKeyPacking.PackPedit(PeditKey)"/>.
/// </summary>
/// <param name="Offset">Byte offset from the network header (negative = link-layer header).</param>
/// <param name="Size">8, 16 or 32 bits.</param>
/// <param name="Value">The value to write (must fit in Size bits).</param>
public readonly record struct PeditKey(int Offset, int Size, uint Value)
{
    /// <summary>`munge offset OFFSET u8 set VALUE`.</summary>
    public static PeditKey U8(int offset, byte value) => new(offset, 8, value);
    /// <summary>`munge offset OFFSET u16 set VALUE`.</summary>
    public static PeditKey U16(int offset, ushort value) => new(offset, 16, value);
    /// <summary>`munge offset OFFSET u32 set VALUE`.</summary>
    public static PeditKey U32(int offset, uint value) => new(offset, 32, value);

    /// <summary>
    /// Parses "offset -14 u16 set 0x4e65", with or without the leading "munge" (<see cref="TcText.ParseMunge"/>);
    /// <see cref="TcSyntaxException"/> names the word it cannot read.
    /// </summary>
    public static PeditKey Parse(string text)
    {
        var words = TcText.Words(text);
        int i = 0;
        var key = TcText.ParseMunge(words, ref i, text);
        if (i < words.Length) throw new TcSyntaxException(text, words[i], $"'{words[i]}' is not part of the munge", TcText.MungeExample);
        return key;
    }

    /// <inheritdoc/>
    public override string ToString() => $"offset {Offset} u{Size} set 0x{Value:x}";
}

/// <summary>
/// One kernel pedit key (struct tc_pedit_key): word(Offset) = (word &amp; KeepMask) ^ Value. KeepMask is the
/// opposite of a u32 mask: 1 = keep the packet's bit. Mask and Value read as big-endian packet bytes.
/// </summary>
/// <param name="KeepMask">Bits of the word to keep.</param>
/// <param name="Value">Bits to set (zero under KeepMask).</param>
/// <param name="Offset">Word offset, a multiple of 4.</param>
/// <param name="At">`at` (offset taken from the packet; 0 = unused).</param>
/// <param name="OffMask">Mask for the `at` byte.</param>
/// <param name="Shift">Shift for the `at` byte.</param>
/// <param name="HeaderType">Header the offset is relative to (ex syntax; legacy = Network).</param>
/// <param name="Command">Set or add (ex syntax; legacy = Set).</param>
public readonly record struct PeditPackedKey(uint KeepMask, uint Value, int Offset, uint At = 0, uint OffMask = 0, int Shift = 0,
    PeditHeaderType HeaderType = PeditHeaderType.Network, PeditCommand Command = PeditCommand.Set)
{
    /// <summary>
    /// The `munge offset OFF uN set VALUE` this key packs from, or null when it is not the packing of one munge
    /// (keep-mask bytes other than 00/ff, `at`/`ex` keys, or a byte pattern no single u8/u16/u32 set produces).
    /// </summary>
    public PeditKey? Unpack()
    {
        if (At != 0 || OffMask != 0 || Shift != 0 || HeaderType != PeditHeaderType.Network || Command != PeditCommand.Set) return null;
        int first = -1, count = 0;
        for (int b = 0; b < 4; b++)
        {
            uint keep = (KeepMask >> (8 * (3 - b))) & 0xff;
            if (keep == 0xff) continue;
            if (keep != 0 || (first >= 0 && first + count != b)) return null;
            if (first < 0) first = b;
            count++;
        }
        if (count is not (1 or 2 or 4)) return null;
        uint value = (Value >> (8 * (4 - first - count))) & (count == 4 ? 0xffffffff : (1u << (8 * count)) - 1);
        var key = new PeditKey(Offset + first, 8 * count, value);
        try { return TcKeyPacking.PackPedit(key) == this ? key : null; }
        catch (ArgumentException) { return null; }
    }

    /// <inheritdoc/>
    public override string ToString() => (HeaderType == PeditHeaderType.Network ? $"at {Offset}" : $"at {HeaderType.ToString().ToLowerInvariant()}+{Offset}")
        + $": val {Value:x8} mask {KeepMask:x8}" + (Command == PeditCommand.Add ? " add" : "");
}

/// <summary>Counters the kernel keeps for an action (TCA_ACT_STATS).</summary>
/// <param name="Bytes">Bytes seen.</param>
/// <param name="Packets">Packets seen.</param>
/// <param name="Drops">Packets dropped.</param>
/// <param name="Overlimits">Overlimits.</param>
public sealed record TcStatistics(ulong Bytes, ulong Packets, uint Drops, uint Overlimits);

/// <summary>One tc action of a filter's action list. Create with the subclasses; decoded ones carry kernel state too.</summary>
public abstract record TcAction
{
    /// <summary>The action kind (TCA_ACT_KIND): mirred, pedit...</summary>
    public abstract string Kind { get; }
    /// <summary>The verdict after this action; null = the kind's default (mirror: pipe, redirect: stolen, pedit: ok).</summary>
    public TcActionControl? Control { get; init; }
    /// <summary>The verdict actually sent.</summary>
    public TcActionControl EffectiveControl => Control ?? DefaultControl;
    /// <summary>The kind's default verdict, as tc uses when no control word follows the action.</summary>
    protected abstract TcActionControl DefaultControl { get; }
    /// <summary>
    /// Optional opaque tag stored with the action (TCA_ACT_COOKIE, at most 16 bytes), dumped back by the kernel:
    /// lets a program recognise its own filters. Null = no cookie attribute at all (tc's default).
    /// </summary>
    public byte[]? Cookie { get; init; }

    /// <summary>Decoded: the kernel's action index.</summary>
    public uint Index { get; init; }
    /// <summary>Decoded: reference count.</summary>
    public int RefCount { get; init; }
    /// <summary>Decoded: bind count.</summary>
    public int BindCount { get; init; }
    /// <summary>Decoded: counters.</summary>
    public TcStatistics? Statistics { get; init; }
    /// <summary>Decoded: time since the action was installed.</summary>
    public TimeSpan? Installed { get; init; }
    /// <summary>Decoded: time since the action last ran.</summary>
    public TimeSpan? LastUsed { get; init; }

    /// <summary>tc's word for a control value.</summary>
    public static string ControlName(TcActionControl control) => control switch
    {
        TcActionControl.Unspec => "continue",
        TcActionControl.Ok => "pass",
        TcActionControl.Shot => "drop",
        _ => control.ToString().ToLowerInvariant(),
    };
}

/// <summary>act_mirred: mirror or redirect the packet to another device of the same namespace.</summary>
public sealed record MirredAction : TcAction
{
    /// <inheritdoc/>
    public override string Kind => "mirred";
    /// <summary>Egress (transmit out of the target) or ingress (receive on it).</summary>
    public MirredDirection Direction { get; init; } = MirredDirection.Egress;
    /// <summary>Mirror (copy) or redirect (take).</summary>
    public MirredMode Mode { get; init; } = MirredMode.Mirror;
    /// <summary>ifindex of the target device in the filter's namespace (0 = resolve <see cref="TargetName"/> first).</summary>
    public int TargetIndex { get; init; }
    /// <summary>The target's name (resolved by the operations layer; not on the wire).</summary>
    public string? TargetName { get; init; }

    /// <inheritdoc/>
    protected override TcActionControl DefaultControl => Mode == MirredMode.Mirror ? TcActionControl.Pipe : TcActionControl.Stolen;

    /// <summary>`mirred egress mirror dev X` to an ifindex.</summary>
    public static MirredAction EgressMirror(int targetIndex) => new() { TargetIndex = targetIndex };
    /// <summary>`mirred egress redirect dev X` to an ifindex.</summary>
    public static MirredAction EgressRedirect(int targetIndex) => new() { Mode = MirredMode.Redirect, TargetIndex = targetIndex };

    /// <summary>tc_mirred.eaction (TCA_EGRESS_REDIR 1, EGRESS_MIRROR 2, INGRESS_REDIR 3, INGRESS_MIRROR 4).</summary>
    public int EAction => (Direction, Mode) switch
    {
        (MirredDirection.Egress, MirredMode.Redirect) => Tca.TCA_EGRESS_REDIR,
        (MirredDirection.Egress, MirredMode.Mirror) => Tca.TCA_EGRESS_MIRROR,
        (MirredDirection.Ingress, MirredMode.Redirect) => Tca.TCA_INGRESS_REDIR,
        _ => Tca.TCA_INGRESS_MIRROR,
    };

    /// <summary>Direction and mode from an eaction value; null for a value this code does not know.</summary>
    public static (MirredDirection Direction, MirredMode Mode)? FromEAction(int eaction) => eaction switch
    {
        Tca.TCA_EGRESS_REDIR => (MirredDirection.Egress, MirredMode.Redirect),
        Tca.TCA_EGRESS_MIRROR => (MirredDirection.Egress, MirredMode.Mirror),
        Tca.TCA_INGRESS_REDIR => (MirredDirection.Ingress, MirredMode.Redirect),
        Tca.TCA_INGRESS_MIRROR => (MirredDirection.Ingress, MirredMode.Mirror),
        _ => null,
    };

    /// <inheritdoc/>
    public override string ToString()
        => $"mirred ({Direction} {Mode} to device {TargetName ?? "ifindex " + TargetIndex.ToString(CultureInfo.InvariantCulture)}) {ControlName(EffectiveControl)}";
}

/// <summary>act_pedit: rewrite packet words in place (legacy syntax: offsets from the network header).</summary>
public sealed record PeditAction : TcAction
{
    /// <inheritdoc/>
    public override string Kind => "pedit";
    /// <summary>The packed kernel keys, in order.</summary>
    public IReadOnlyList<PeditPackedKey> Keys { get; init; } = [];
    /// <summary>tc_pedit_sel.flags (0 from tc).</summary>
    public byte Flags { get; init; }

    /// <inheritdoc/>
    protected override TcActionControl DefaultControl => TcActionControl.Ok;

    /// <summary>`pedit munge ... munge ... [CONTROL]`, packed as tc packs it.</summary>
    public static PeditAction Munge(IEnumerable<PeditKey> keys, TcActionControl? control = null)
        => new() { Keys = keys.Select(TcKeyPacking.PackPedit).ToArray(), Control = control };

    /// <summary>The keys as munges (offset, size, value), or null when a key is not the packing of a single munge.</summary>
    public IReadOnlyList<PeditKey>? Munges
    {
        get
        {
            var list = new List<PeditKey>(Keys.Count);
            foreach (var k in Keys)
            {
                if (k.Unpack() is not { } munge) return null;
                list.Add(munge);
            }
            return list;
        }
    }

    /// <summary>Whether any key needs the extended (`pedit ex`) encoding.</summary>
    public bool IsExtended => Keys.Any(k => k.HeaderType != PeditHeaderType.Network || k.Command != PeditCommand.Set);

    /// <inheritdoc/>
    public override string ToString() => $"pedit {ControlName(EffectiveControl)} keys {Keys.Count}: {string.Join("; ", Keys)}";
}

/// <summary>An action of a kind this code does not decode; its options are kept as raw attribute bytes.</summary>
public sealed record UnknownAction : TcAction
{
    private readonly string _kind;

    /// <summary>Wraps a kind and the raw payload of its TCA_ACT_OPTIONS.</summary>
    public UnknownAction(string kind, byte[] options, TcActionControl control) { _kind = kind; Options = options; Control = control; }

    /// <inheritdoc/>
    public override string Kind => _kind;
    /// <summary>The raw TCA_ACT_OPTIONS payload as dumped (includes the kernel's index and counts).</summary>
    public byte[] Options { get; init; }
    /// <inheritdoc/>
    protected override TcActionControl DefaultControl => TcActionControl.Pipe;
    /// <inheritdoc/>
    public override string ToString() => $"{Kind} {ControlName(EffectiveControl)}";
}

/// <summary>A classifier instance attached to a device (one u32 node, one bpf program...).</summary>
public abstract record TcFilter
{
    /// <summary>The classifier kind (TCA_KIND): u32, bpf...</summary>
    public abstract string Kind { get; }
    /// <summary>ifindex of the device the filter is attached to (tcm_ifindex).</summary>
    public int LinkIndex { get; init; }
    /// <summary>The device's name (filled by the operations layer; not on the wire).</summary>
    public string? LinkName { get; init; }
    /// <summary>tcm_parent: ffff: (the ingress qdisc) unless set otherwise.</summary>
    public uint Parent { get; init; } = Tca.IngressHandle;
    /// <summary>pref (priority): lower runs first; the identity tc filters are added and removed by.</summary>
    public ushort Priority { get; init; }
    /// <summary>Ethernet protocol the filter applies to (host order): TcProtocol.All (tc's default) or IPv4...</summary>
    public ushort Protocol { get; init; } = TcProtocol.All;
    /// <summary>Filter chain (TCA_CHAIN); 0 is the default chain and is not sent.</summary>
    public uint Chain { get; init; }
    /// <summary>Decoded: the kernel-assigned handle (u32 node 800::800, bpf 1). 0 in requests.</summary>
    public uint Handle { get; init; }

    /// <summary>tc's name for <see cref="Protocol"/>.</summary>
    public string ProtocolName => TcProtocol.Name(Protocol);
    /// <summary>tc's notation for <see cref="Parent"/>.</summary>
    public string ParentText => TcNumber.Handle(Parent);
}

/// <summary>A u32 classifier node with its selector and action list (the seed's filters).</summary>
public sealed record U32Filter : TcFilter
{
    /// <inheritdoc/>
    public override string Kind => "u32";
    /// <summary>The keys and selector fields.</summary>
    public U32Selector Selector { get; init; } = U32Selector.MatchAll;
    /// <summary>Actions in execution order.</summary>
    public IReadOnlyList<TcAction> Actions { get; init; } = [];
    /// <summary>TCA_U32_CLASSID (`flowid`/`classid`), null when none.</summary>
    public uint? ClassId { get; init; }
    /// <summary>Decoded: the hash table the node is in (TCA_U32_HASH, 0x80000000 = "800:").</summary>
    public uint HashTable { get; init; }
    /// <summary>Decoded: TCA_U32_FLAGS (8 = not in hardware).</summary>
    public uint Flags { get; init; }
    /// <summary>Decoded: how often the node was evaluated (TCA_U32_PCNT, kernels with CONFIG_CLS_U32_PERF only).</summary>
    public ulong? Lookups { get; init; }
    /// <summary>Decoded: how often all keys matched (TCA_U32_PCNT).</summary>
    public ulong? Hits { get; init; }

    /// <summary>The packed keys.</summary>
    public IReadOnlyList<U32Key> Keys => Selector.Keys;
    /// <summary>The handle in tc's notation (800::800).</summary>
    public string HandleText => TcNumber.U32Handle(Handle);

    /// <inheritdoc/>
    public override string ToString()
        => $"filter parent {ParentText} protocol {ProtocolName} pref {Priority} u32 {(Handle != 0 ? "fh " + HandleText + " " : "")}{Selector}"
           + string.Concat(Actions.Select((a, i) => $" action {i + 1}: {a}"));
}

/// <summary>A cls_bpf classifier (the eBPF replacement for pedit filters).</summary>
public sealed record BpfFilter : TcFilter
{
    /// <inheritdoc/>
    public override string Kind => "bpf";
    /// <summary>TCA_BPF_NAME: the program's annotation ("rs_macrw", or tc's "FILE:[*fsobj]").</summary>
    public string? Name { get; init; }
    /// <summary>Direct-action mode (TCA_BPF_FLAG_ACT_DIRECT): the program's return value is the verdict.</summary>
    public bool DirectAction { get; init; } = true;
    /// <summary>Decoded: the kernel's program id (TCA_BPF_ID).</summary>
    public uint ProgramId { get; init; }
    /// <summary>Decoded: the program tag (TCA_BPF_TAG, 8 bytes).</summary>
    public byte[] Tag { get; init; } = [];
    /// <summary>Decoded: TCA_BPF_FLAGS_GEN (8 = not in hardware).</summary>
    public uint GenericFlags { get; init; }
    /// <summary>TCA_BPF_CLASSID, null when none.</summary>
    public uint? ClassId { get; init; }
    /// <summary>Decoded: actions attached after the program (TCA_BPF_ACT).</summary>
    public IReadOnlyList<TcAction> Actions { get; init; } = [];

    /// <summary>The tag as tc prints it (hex).</summary>
    public string TagText => Convert.ToHexString(Tag).ToLowerInvariant();

    /// <inheritdoc/>
    public override string ToString()
        => $"filter parent {ParentText} protocol {ProtocolName} pref {Priority} bpf handle 0x{Handle:x} {Name}{(DirectAction ? " direct-action" : "")}"
           + (ProgramId != 0 ? $" id {ProgramId} tag {TagText}" : "");
}

/// <summary>A filter of a kind this code does not decode (flower, matchall...): its identity only.</summary>
public sealed record GenericFilter : TcFilter
{
    private readonly string _kind;
    /// <summary>A filter of the given kind.</summary>
    public GenericFilter(string kind) => _kind = kind;
    /// <inheritdoc/>
    public override string Kind => _kind;
    /// <inheritdoc/>
    public override string ToString() => $"filter parent {ParentText} protocol {ProtocolName} pref {Priority} {Kind} handle 0x{Handle:x}";
}
