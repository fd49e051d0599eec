using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using NvRedirect.Core.Links;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Netlink;
using Xunit;

namespace NvRedirect.Tests.Tc;

/// <summary>Byte comparison with a readable failure: the first differing offset and both dumps.</summary>
public static class TcBytes
{
    /// <summary>Asserts equality; <paramref name="context"/> names the case (e.g. the tc command line).</summary>
    public static void Equal(byte[] expected, byte[] actual, string context)
    {
        if (expected.AsSpan().SequenceEqual(actual)) return;
        int first = 0;
        while (first < Math.Min(expected.Length, actual.Length) && expected[first] == actual[first]) first++;
        Assert.Fail($"{context}\nbytes differ at offset 0x{first:x} (lengths {expected.Length} / {actual.Length})\nexpected: {Convert.ToHexString(expected).ToLowerInvariant()}\nactual:   {Convert.ToHexString(actual).ToLowerInvariant()}");
    }
}

/// <summary>`tc -n NAME` in a test's namespace, and its JSON listings.</summary>
public static class TcInNamespace
{
    /// <summary>Runs `tc -n NAME ARGS`; returns (exit code, stdout, stderr).</summary>
    public static (int Code, string Out, string Err) Tc(this TestNamespace ns, params string[] args) => Tool.Run("tc", ["-n", ns.Name, .. args]);

    /// <summary>Runs `tc -n NAME ARGS` and fails the test when it fails.</summary>
    public static string TcOk(this TestNamespace ns, params string[] args) => Tool.RunOk("tc", ["-n", ns.Name, .. args]);

    /// <summary>`tc -j -s filter show dev D ingress` as JSON objects (one per priority, table and node).</summary>
    public static List<JsonElement> FilterJson(this TestNamespace ns, string device)
    {
        var text = ns.TcOk("-j", "-s", "filter", "show", "dev", device, "ingress");
        if (string.IsNullOrWhiteSpace(text)) return [];
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.EnumerateArray().Select(e => e.Clone()).ToList();
    }

    /// <summary>Only the u32 nodes (entries whose fh has a node part, e.g. 800::800).</summary>
    public static List<JsonElement> NodeJson(this TestNamespace ns, string device)
        => ns.FilterJson(device).Where(e => e.TryGetProperty("options", out var o) && o.TryGetProperty("fh", out var fh) &&
                                             fh.GetString()!.Contains("::")).ToList();
}

/// <summary>tc under strace: the netlink messages it sends, as the witness of what tc itself puts on the wire.</summary>
public static class Strace
{
    /// <summary>
    /// Runs `strace -f -e trace=sendmsg,sendto -e write=all -xx -s 65536 -o FILE tc ARGS` and returns tc's exit code, its
    /// stderr and every netlink message it sent with sendmsg (from strace's hex dumps of the written buffers).
    /// </summary>
    public static (int Code, string Err, List<byte[]> Sent) Tc(params string[] tcArgs)
    {
        var log = Path.Combine(Path.GetTempPath(), $"tct-strace-{Guid.NewGuid():N}.txt");
        try
        {
            var (code, _, err) = Tool.Run("strace", ["-f", "-e", "trace=sendmsg,sendto", "-e", "write=all", "-xx", "-s", "65536", "-o", log, "tc", .. tcArgs]);
            return (code, err, ParseDumps(File.ReadAllLines(log)));
        }
        finally { File.Delete(log); }
    }

    /// <summary>Joins strace's " | 00000  xx xx ...  ascii |" lines into one buffer per written iovec.</summary>
    public static List<byte[]> ParseDumps(IEnumerable<string> lines)
    {
        var buffers = new List<byte[]>();
        List<byte>? current = null;
        foreach (var raw in lines)
        {
            // with -f and -o the lines carry the pid first: "1234   | 00000  ..."
            int bar = raw.IndexOf(" | ", StringComparison.Ordinal);
            if (bar < 0 || raw.Length < bar + 10 || !IsHex(raw.AsSpan(bar + 3, 5))) continue;
            var line = raw[(bar + 1)..]; // "| 00000  8c 00 ..."
            int offset = Convert.ToInt32(line.Substring(2, 5), 16);
            if (offset == 0) { current = []; buffers.Add([]); }
            if (current == null) continue;
            var hexArea = line.Substring(9, Math.Min(49, line.Length - 9));
            foreach (var word in hexArea.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                current.Add(Convert.ToByte(word, 16));
            buffers[^1] = current.ToArray();
        }
        return buffers;
    }

    private static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s) if (!Uri.IsHexDigit(c)) return false;
        return true;
    }
}

/// <summary>
/// Turns a `tc filter add ... u32 ...` command line into the typed filter, using the product's match and action
/// readers (TcText, what Add-RedirectFilter's -Match and -Action use), so that a captured or generated command and
/// our encoder can be compared. The command-line frame around them (dev, pref, parent, protocol, chain, flowid,
/// cookie) is read here: the module's surface takes those as parameters.
/// </summary>
public static class TcCommand
{
    /// <summary>Splits on white space (the command lines used here contain no quoting).</summary>
    public static string[] Words(string commandLine) => commandLine.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Parses `filter add dev D [pref N] [parent P] [protocol X] [chain N] u32 match... [flowid X] action...`.</summary>
    public static NvRedirect.Core.Tc.U32Filter ParseU32(IReadOnlyList<string> w, Func<string, int> ifindexOf)
    {
        int i = 0;
        if (w[i] == "tc") i++;
        Assert.Equal("filter", w[i++]);
        Assert.Equal("add", w[i++]);
        int link = 0; ushort pref = 0, protocol = NvRedirect.Core.Tc.TcProtocol.All;
        uint parent = NvRedirect.Core.Tc.Tca.IngressHandle, chain = 0;
        for (; w[i] != "u32"; i += 2)
        {
            if (w[i] == "ingress") { parent = NvRedirect.Core.Tc.Tca.ClsactIngressParent; i--; continue; }
            switch (w[i])
            {
                case "dev": link = ifindexOf(w[i + 1]); break;
                case "pref": case "prio": case "priority": pref = ushort.Parse(w[i + 1]); break;
                case "parent": parent = NvRedirect.Core.Tc.TcNumber.ParseHandle(w[i + 1]); break;
                case "protocol": protocol = NvRedirect.Core.Tc.TcProtocol.Parse(w[i + 1]); break;
                case "chain": chain = uint.Parse(w[i + 1]); break;
                default: throw new FormatException($"unexpected '{w[i]}'");
            }
        }
        i++; // u32
        var matches = new List<NvRedirect.Core.Tc.U32Match>();
        uint? classId = null;
        var actions = new List<NvRedirect.Core.Tc.TcAction>();
        while (i < w.Count)
        {
            switch (w[i])
            {
                case "match":
                {
                    int n = i + 5 < w.Count && w[i + 4] == "at" ? 6 : 4;
                    matches.Add(NvRedirect.Core.Tc.U32Match.Parse(string.Join(' ', w.Skip(i + 1).Take(n - 1))));
                    i += n;
                    break;
                }
                case "flowid": case "classid":
                    classId = NvRedirect.Core.Tc.TcNumber.ParseHandle(w[i + 1]);
                    i += 2;
                    break;
                case "action":
                    actions.Add(ParseAction(w, ref i, ifindexOf));
                    break;
                default: throw new FormatException($"unexpected '{w[i]}' at word {i}");
            }
        }
        var selector = NvRedirect.Core.Tc.U32Selector.FromMatches(matches);
        // tc marks a node terminal only when it has actions or a classid (f_u32.c)
        if (actions.Count == 0 && classId == null) selector = selector with { Flags = 0 };
        return new NvRedirect.Core.Tc.U32Filter
        {
            LinkIndex = link, Priority = pref, Parent = parent, Protocol = protocol, Chain = chain, ClassId = classId,
            Selector = selector, Actions = actions,
        };
    }

    private static NvRedirect.Core.Tc.TcAction ParseAction(IReadOnlyList<string> w, ref int i, Func<string, int> ifindexOf)
    {
        var action = NvRedirect.Core.Tc.TcText.ParseAction(w, ref i, string.Join(' ', w));
        if (action is NvRedirect.Core.Tc.MirredAction m) action = m with { TargetIndex = ifindexOf(m.TargetName!) };
        if (i < w.Count && w[i] == "cookie") { action = action with { Cookie = Convert.FromHexString(w[i + 1]) }; i += 2; }
        return action;
    }
}
