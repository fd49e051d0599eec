using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;

namespace NvRedirect.Tests;

/// <summary>One request from an iproute2 capture (netlink-golden README, "File format").</summary>
/// <param name="Number">The n of its "## msg n:" line.</param>
/// <param name="Role">The text after "## role: " (starts with PRIMARY or AUX).</param>
/// <param name="Bytes">The message bytes from its "hex:" line.</param>
public sealed record GoldenMessage(int Number, string Role, byte[] Bytes)
{
    /// <summary>Whether this is the operation's own message.</summary>
    public bool IsPrimary => Role.StartsWith("PRIMARY", StringComparison.Ordinal);
    /// <summary>nlmsg_type.</summary>
    public ushort Type => BitConverter.ToUInt16(Bytes, 4);
    /// <summary>nlmsg_flags.</summary>
    public ushort Flags => BitConverter.ToUInt16(Bytes, 6);
    /// <summary>nlmsg_seq.</summary>
    public uint Seq => BitConverter.ToUInt32(Bytes, 8);
}

/// <summary>Reads the capture files copied next to the test assembly (Golden/*.hex).</summary>
public static partial class GoldenFile
{
    /// <summary>Every message of a capture, in the order iproute2 sent them.</summary>
    public static List<GoldenMessage> Messages(string fileName)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Golden", fileName);
        var messages = new List<GoldenMessage>();
        int? number = null;
        string? role = null;
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            if (MsgLine().Match(line) is { Success: true } m)
            {
                number = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
                role = null;
            }
            else if (line.StartsWith("## role:", StringComparison.Ordinal))
                role = line["## role:".Length..].Trim();
            else if (line.StartsWith("hex:", StringComparison.Ordinal))
            {
                if (number is null || role is null)
                    throw new InvalidDataException($"{fileName}: a hex: line without its ## msg / ## role lines.");
                var bytes = Convert.FromHexString(line["hex:".Length..].Trim());
                if (bytes.Length < 16 || BitConverter.ToUInt32(bytes, 0) != bytes.Length)
                    throw new InvalidDataException($"{fileName} msg {number}: nlmsg_len does not match the {bytes.Length} bytes.");
                messages.Add(new GoldenMessage(number.Value, role, bytes));
                number = null;
                role = null;
            }
        }
        if (messages.Count == 0) throw new InvalidDataException($"{fileName} holds no messages.");
        return messages;
    }

    /// <summary>The bytes of the single message marked "role: PRIMARY".</summary>
    public static byte[] Primary(string fileName)
    {
        var primaries = Messages(fileName).Where(m => m.IsPrimary).ToList();
        if (primaries.Count != 1)
            throw new InvalidDataException($"{fileName} has {primaries.Count} PRIMARY messages; expected exactly one.");
        return primaries[0].Bytes;
    }

    /// <summary>The single message (PRIMARY or AUX) that satisfies <paramref name="match"/>.</summary>
    public static byte[] Single(string fileName, Func<GoldenMessage, bool> match)
        => Messages(fileName).Single(match).Bytes;

    [GeneratedRegex(@"^## msg (\d+):")]
    private static partial Regex MsgLine();
}
