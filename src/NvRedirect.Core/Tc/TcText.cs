using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace NvRedirect.Core.Tc;

/// <summary>
/// tc's command-line syntax for u32 matches and for actions, both ways: reading what a user copies from a tc command
/// line (`u16 0x1a27 0xffff at -14`, `pedit munge offset -14 u16 set 0x4e65 pipe`, `mirred egress mirror dev vbr`)
/// into the typed objects, and printing objects back as that syntax or as a shorter readable form. Only the subset
/// the seed and NeuVector use is read (u8/u16/u32 matches at fixed offsets, legacy pedit munges with `set`, mirred);
/// anything else is refused with an error that names the word and shows an example. Reading is about words only:
/// whether a value fits its size or an offset its alignment is <see cref="TcKeyPacking"/>'s to say, as in tc. Numbers are decimal or 0x hex
/// (tc would also read a leading 0 as octal; that is not supported).
/// </summary>
public static class TcText
{
    /// <summary>An example of a match, shown in errors.</summary>
    public const string MatchExample = "u16 0x1a27 0xffff at -14";
    /// <summary>An example of a pedit munge, shown in errors.</summary>
    public const string MungeExample = "pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe";
    /// <summary>An example of a mirred action, shown in errors.</summary>
    public const string MirredExample = "mirred egress mirror dev vbr";

    /// <summary>The words of a text, split on white space.</summary>
    public static string[] Words(string? text) => (text ?? "").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);

    // ------------------------------------------------------------------ matches

    /// <summary>
    /// Reads matches: each text holds one or more `[match] u8|u16|u32 VALUE MASK [at OFFSET]` clauses, in order.
    /// Throws <see cref="TcSyntaxException"/> naming the first word it cannot read.
    /// </summary>
    public static List<U32Match> ParseMatches(IEnumerable<string> texts)
    {
        var matches = new List<U32Match>();
        foreach (var text in texts)
        {
            var words = Words(text);
            if (words.Length == 0) throw new TcSyntaxException(text, "", "the match is empty", MatchExample);
            int i = 0;
            while (i < words.Length) matches.Add(ParseMatch(words, ref i, text));
        }
        return matches;
    }

    /// <summary>
    /// Reads one `[match] uN VALUE MASK [at OFFSET]` starting at <paramref name="i"/> and moves past it.
    /// <paramref name="text"/> is the whole text, for error messages.
    /// </summary>
    public static U32Match ParseMatch(IReadOnlyList<string> words, ref int i, string text)
    {
        if (i < words.Count && words[i] == "match") i++;
        string sizeWord = Next(words, ref i, text, "a match size (u8, u16 or u32)", MatchExample);
        int size = SizeOf(sizeWord);
        if (size == 0)
            throw new TcSyntaxException(text, sizeWord, $"'{sizeWord}' is not a match this module reads: write u8, u16 or u32 (tc's ip/ip6/tcp/mark matches are not supported)", MatchExample);
        uint value = Number(Next(words, ref i, text, "the value to compare", MatchExample), "value", text, MatchExample);
        uint mask = Number(Next(words, ref i, text, "the mask", MatchExample), "mask", text, MatchExample);
        int offset = 0;
        if (i < words.Count && words[i] == "at")
        {
            i++;
            string offsetWord = Next(words, ref i, text, "the offset after 'at'", MatchExample);
            if (!TcNumber.TryParseSigned(offsetWord, out offset))
                throw new TcSyntaxException(text, offsetWord, $"'{offsetWord}' is not an offset: write a byte offset from the network header such as -14 (nexthdr+ offsets are not supported)", MatchExample);
        }
        if (i < words.Count && words[i] != "match")
            throw new TcSyntaxException(text, words[i], $"'{words[i]}' is not part of a match: a match ends after its mask or its 'at OFFSET'", MatchExample);
        return new U32Match(size, value, mask, offset);
    }

    // ------------------------------------------------------------------ actions

    /// <summary>
    /// Reads an action list: each text holds one or more actions (`[action] pedit ...`, `[action] mirred ...`), in
    /// execution order. Mirred targets are left as names (<see cref="MirredAction.TargetName"/>), to be resolved in
    /// the filter's namespace.
    /// </summary>
    public static List<TcAction> ParseActions(IEnumerable<string> texts)
    {
        var actions = new List<TcAction>();
        foreach (var text in texts)
        {
            var words = Words(text);
            if (words.Length == 0) throw new TcSyntaxException(text, "", "the action is empty", MirredExample);
            int i = 0;
            while (i < words.Length)
            {
                var action = ParseAction(words, ref i, text);
                if (i < words.Length && words[i] != "action")
                    throw new TcSyntaxException(text, words[i], $"'{words[i]}' is not part of the {action.Kind} action: give one action per element, optionally followed by a control word (pipe, pass, drop, continue, reclassify)",
                        action is PeditAction ? MungeExample : MirredExample);
                actions.Add(action);
            }
        }
        return actions;
    }

    /// <summary>
    /// Reads one action starting at <paramref name="i"/> (an optional leading "action", the kind, its arguments and
    /// an optional control word) and moves past it; stops before a word that is not part of it.
    /// </summary>
    public static TcAction ParseAction(IReadOnlyList<string> words, ref int i, string text)
    {
        if (i < words.Count && words[i] == "action") i++;
        string kind = Next(words, ref i, text, "an action kind (pedit or mirred)", MirredExample);
        TcAction action = kind switch
        {
            "pedit" => ParsePedit(words, ref i, text),
            "mirred" => ParseMirred(words, ref i, text),
            _ => throw new TcSyntaxException(text, kind, $"'{kind}' is not an action this module reads: write pedit or mirred", MirredExample),
        };
        if (i < words.Count && ParseControl(words[i]) is { } control)
        {
            // tc reads a control word after pedit and after mirred mirror; after mirred redirect it would start a gact action
            if (action is MirredAction { Mode: MirredMode.Redirect })
                throw new TcSyntaxException(text, words[i], $"a mirred redirect takes the packet, so '{words[i]}' cannot follow it (tc would read it as a separate gact action)", "mirred egress redirect dev vbr");
            action = action with { Control = control };
            i++;
        }
        return action;
    }

    /// <summary>tc's control words (parse_action_control): pipe, pass/ok, drop/shot, continue, reclassify, trap; null for any other word.</summary>
    public static TcActionControl? ParseControl(string word) => word switch
    {
        "pipe" => TcActionControl.Pipe,
        "pass" or "ok" => TcActionControl.Ok,
        "drop" or "shot" => TcActionControl.Shot,
        "continue" => TcActionControl.Unspec,
        "reclassify" => TcActionControl.Reclassify,
        "trap" => TcActionControl.Trap,
        _ => null,
    };

    private static PeditAction ParsePedit(IReadOnlyList<string> words, ref int i, string text)
    {
        var keys = new List<PeditKey>();
        while (i < words.Count && words[i] == "munge") keys.Add(ParseMunge(words, ref i, text));
        if (keys.Count == 0)
        {
            string found = i < words.Count ? words[i] : "";
            throw new TcSyntaxException(text, found, found.Length == 0
                ? "pedit needs at least one 'munge offset OFFSET u8|u16|u32 set VALUE'"
                : $"'{found}' is not a pedit munge: write 'munge offset OFFSET u8|u16|u32 set VALUE' (pedit ex and header keywords are not supported)", MungeExample);
        }
        try { return PeditAction.Munge(keys); }
        catch (ArgumentException e) { throw new TcSyntaxException(text, "munge", e.Message, MungeExample); }
    }

    /// <summary>Reads one `[munge] offset OFFSET u8|u16|u32 set VALUE` starting at <paramref name="i"/> and moves past it.</summary>
    public static PeditKey ParseMunge(IReadOnlyList<string> words, ref int i, string text)
    {
        if (i < words.Count && words[i] == "munge") i++;
        Expect(words, ref i, text, "offset", MungeExample);
        string offsetWord = Next(words, ref i, text, "the offset", MungeExample);
        if (!TcNumber.TryParseSigned(offsetWord, out int offset))
            throw new TcSyntaxException(text, offsetWord, $"'{offsetWord}' is not an offset: write a byte offset from the network header such as -14", MungeExample);
        string sizeWord = Next(words, ref i, text, "a size (u8, u16 or u32)", MungeExample);
        int size = SizeOf(sizeWord);
        if (size == 0) throw new TcSyntaxException(text, sizeWord, $"'{sizeWord}' is not a munge size: write u8, u16 or u32", MungeExample);
        string command = Next(words, ref i, text, "'set'", MungeExample);
        if (command != "set")
            throw new TcSyntaxException(text, command, $"'{command}' is not supported: only 'set' munges are read (not clear, invert, retain or add)", MungeExample);
        uint value = Number(Next(words, ref i, text, "the value to set", MungeExample), "value", text, MungeExample);
        return new PeditKey(offset, size, value);
    }

    private static MirredAction ParseMirred(IReadOnlyList<string> words, ref int i, string text)
    {
        string directionWord = Next(words, ref i, text, "egress or ingress", MirredExample);
        var direction = directionWord switch
        {
            "egress" => MirredDirection.Egress,
            "ingress" => MirredDirection.Ingress,
            _ => throw new TcSyntaxException(text, directionWord, $"'{directionWord}' is not a mirred direction: write egress or ingress", MirredExample),
        };
        string modeWord = Next(words, ref i, text, "mirror or redirect", MirredExample);
        var mode = modeWord switch
        {
            "mirror" => MirredMode.Mirror,
            "redirect" => MirredMode.Redirect,
            _ => throw new TcSyntaxException(text, modeWord, $"'{modeWord}' is not a mirred mode: write mirror or redirect", MirredExample),
        };
        Expect(words, ref i, text, "dev", MirredExample);
        string device = Next(words, ref i, text, "the target device's name", MirredExample);
        return new MirredAction { Direction = direction, Mode = mode, TargetName = device };
    }

    // ------------------------------------------------------------------ printing

    /// <summary>
    /// An action in tc's syntax, as <see cref="ParseAction"/> reads it back: `pedit munge offset -14 u16 set 0x4e65 pipe`,
    /// `mirred egress mirror dev vbr` (the control word only when it is not the kind's default, except for pedit,
    /// whose control is always written). Keys that are not munges are printed as tc prints them (not readable back).
    /// </summary>
    public static string Format(TcAction action) => action switch
    {
        PeditAction p => "pedit " + (p.Munges is { } munges
            ? string.Join(" ", munges.Select(k => "munge " + k))
            : string.Join(" ", p.Keys.Select(k => $"key {k}"))) + " " + TcAction.ControlName(p.EffectiveControl),
        MirredAction m => $"mirred {m.Direction.ToString().ToLowerInvariant()} {m.Mode.ToString().ToLowerInvariant()} dev " +
                          (m.TargetName ?? $"ifindex {m.TargetIndex.ToString(CultureInfo.InvariantCulture)}") + ControlSuffix(m),
        _ => $"{action.Kind} {TcAction.ControlName(action.EffectiveControl)}",
    };

    /// <summary>
    /// An action for people: a pedit that rewrites exactly one MAC reads `pedit dst-mac := 4e:65:75:56:00:b4 pipe`
    /// (or src-mac); everything else as <see cref="Format"/> writes it.
    /// </summary>
    public static string Describe(TcAction action)
    {
        if (action is PeditAction p && p.Munges is { Count: 2 } m)
        {
            string? field = (m[0], m[1]) switch
            {
                ({ Offset: -14, Size: 16 }, { Offset: -12, Size: 32 }) => "dst-mac",
                ({ Offset: -8, Size: 32 }, { Offset: -4, Size: 16 }) => "src-mac",
                _ => null,
            };
            if (field != null)
            {
                var bytes = field == "dst-mac"
                    ? new[] { m[0].Value >> 8, m[0].Value, m[1].Value >> 24, m[1].Value >> 16, m[1].Value >> 8, m[1].Value }
                    : new[] { m[0].Value >> 24, m[0].Value >> 16, m[0].Value >> 8, m[0].Value, m[1].Value >> 8, m[1].Value };
                return $"pedit {field} := {MacText(bytes.Select(b => (byte)b))} {TcAction.ControlName(p.EffectiveControl)}";
            }
        }
        return Format(action);
    }

    /// <summary>
    /// The keys of a u32 selector for people. Keys that only compare Ethernet header bytes read as `dst-mac X`,
    /// `src-mac X` and `dst-mac-unicast` (the I/G bit of the destination is 0); the match-everything key reads `all`.
    /// When any key compares something else, every key is printed as tc prints it (`00001a27/0000ffff at -16`), so
    /// the readable form never hides a comparison. (tc merges `u8 0 1 at -14` into a destination MAC match on the
    /// same word, so a unicast test next to a unicast MAC is implied by the MAC and not listed apart.)
    /// </summary>
    public static IReadOnlyList<string> DescribeMatches(U32Selector selector)
    {
        var keys = selector.Keys;
        var raw = keys.Select(k => k.ToString()).ToArray();
        if (keys.Count == 1 && keys[0] == U32Key.MatchAll) return ["all"];
        if (keys.Count == 0 || keys.Any(k => k.OffMask != 0) || keys.Select(k => k.Offset).Distinct().Count() != keys.Count) return raw;

        // the compared bytes of the Ethernet header (-14..-1 from the network header): offset -> (mask, value)
        var bytes = new Dictionary<int, (byte Mask, byte Value)>();
        foreach (var k in keys)
            for (int b = 0; b < 4; b++)
            {
                byte mask = (byte)(k.Mask >> (8 * (3 - b))), value = (byte)(k.Value >> (8 * (3 - b)));
                if (mask == 0) continue;
                int offset = k.Offset + b;
                if (offset is < -14 or > -3) return raw; // outside the two MAC fields
                bytes[offset] = (mask, value);
            }
        bool Full(int from) => Enumerable.Range(from, 6).All(o => bytes.TryGetValue(o, out var b) && b.Mask == 0xff);
        string Mac(int from) => MacText(Enumerable.Range(from, 6).Select(o => bytes[o].Value));
        bool dst = Full(-14), src = Full(-8);
        bool unicast = !dst && bytes.TryGetValue(-14, out var first) && first.Mask == 0x01 && (first.Value & 0x01) == 0;
        // every compared byte must be explained by one of the fields found
        foreach (var (offset, _) in bytes)
        {
            bool explained = (dst && offset is >= -14 and <= -9) || (src && offset is >= -8 and <= -3) || (unicast && offset == -14);
            if (!explained) return raw;
        }
        var list = new List<string>();
        if (unicast) list.Add("dst-mac-unicast");
        if (dst) list.Add("dst-mac " + Mac(-14));
        if (src) list.Add("src-mac " + Mac(-8));
        return list;
    }

    private static string ControlSuffix(MirredAction m) => m.Control is { } c && c != (m.Mode == MirredMode.Mirror ? TcActionControl.Pipe : TcActionControl.Stolen)
        ? " " + TcAction.ControlName(c) : "";

    // ------------------------------------------------------------------ words and numbers

    private static string MacText(IEnumerable<byte> mac) => string.Join(':', mac.Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    private static int SizeOf(string word) => word switch { "u8" => 8, "u16" => 16, "u32" => 32, _ => 0 };

    private static string Next(IReadOnlyList<string> words, ref int i, string text, string wanted, string example)
    {
        if (i >= words.Count) throw new TcSyntaxException(text, "", $"it ends where {wanted} should follow", example);
        return words[i++];
    }

    private static void Expect(IReadOnlyList<string> words, ref int i, string text, string keyword, string example)
    {
        string word = Next(words, ref i, text, $"'{keyword}'", example);
        if (word != keyword) throw new TcSyntaxException(text, word, $"'{word}' stands where '{keyword}' should", example);
    }

    private static uint Number(string word, string what, string text, string example)
    {
        if (!TcNumber.TryParse(word, out uint value))
            throw new TcSyntaxException(text, word, $"'{word}' is not a {what}: write a decimal or 0x hexadecimal number", example);
        return value;
    }
}

/// <summary>A match or action text that is not tc syntax this module reads; names the word and shows an example.</summary>
public sealed class TcSyntaxException : ArgumentException
{
    /// <summary>The whole text that was read.</summary>
    public string Text { get; }
    /// <summary>The word that could not be read ("" when the text ended too early).</summary>
    public string Token { get; }
    /// <summary>A correct example.</summary>
    public string Example { get; }

    /// <summary>Describes the problem with <paramref name="token"/> in <paramref name="text"/>.</summary>
    public TcSyntaxException(string text, string token, string problem, string example)
        : base($"Cannot read '{text}': {problem}. Example: '{example}'.")
    {
        Text = text;
        Token = token;
        Example = example;
    }
}
