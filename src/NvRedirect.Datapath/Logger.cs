using System;
using System.Collections.Generic;
using System.IO;

namespace NvRedirect.Datapath;

/// <summary>
/// The daemon's log: timestamped lines to a file and/or stderr, and optionally into memory (tests read what was
/// logged). Thread-safe; never called per packet (the packet thread reports counters, summarised once a second).
/// Every message is escaped here (<see cref="Escape"/>), so text from a datagram (an interface name, a MAC, any JSON
/// string) cannot forge a line or hide in one: one call, one line.
/// </summary>
internal sealed class Logger : IDisposable
{
    private readonly object _gate = new();
    private readonly StreamWriter? _file;
    private readonly bool _stderr;
    private readonly List<string>? _memory;

    /// <summary>Opens <paramref name="path"/> for appending (when given) and/or writes to stderr.</summary>
    public Logger(string? path, bool stderr, bool keepInMemory = false)
    {
        _stderr = stderr;
        if (keepInMemory) _memory = [];
        if (path != null)
        {
            var info = new FileInfo(path);
            if (info.LinkTarget != null) throw new IOException($"log file {path} is a symbolic link; refusing to write through it");
            // O_APPEND, not FileMode.Append (which seeks once and then writes at its own offset): nvr-dp's supervisor and
            // its daemon write the same file, and each line must land whole at the end
            int fd = NvRedirect.Core.Interop.Native.open(path, 1 /* O_WRONLY */ | 0x400 /* O_APPEND */ | NvRedirect.Core.Interop.Native.O_CREAT
                | NvRedirect.Core.Interop.Native.O_CLOEXEC | 0x20000 /* O_NOFOLLOW */, 0x1a0 /* 0640 */);
            if (fd < 0) throw new IOException($"cannot open the log file {path}: {NvRedirect.Core.Interop.Native.StrError(NvRedirect.Core.Interop.Native.LastErrno)}");
            var stream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, bufferSize: 0);
            _file = new StreamWriter(stream) { AutoFlush = true };
        }
    }

    /// <summary>Lines logged so far (only when kept in memory).</summary>
    public IReadOnlyList<string> Lines { get { lock (_gate) return _memory?.ToArray() ?? []; } }

    public void Info(string message) => Write("INFO", message);
    public void Warn(string message) => Write("WARN", message);
    public void Error(string message) => Write("ERROR", message);

    /// <summary>
    /// <paramref name="text"/> with every control character (C0, DEL, C1, the Unicode line and paragraph separators,
    /// bidirectional overrides) written as \n, \r, \t, \0 or \u{XXXX}, a lone surrogate as \u{XXXX}, and a backslash
    /// doubled, so the result is one line that says unambiguously what was received.
    /// </summary>
    public static string Escape(string text)
    {
        int i = 0;
        while (i < text.Length && !NeedsEscape(text, i)) i++;
        if (i == text.Length) return text;
        var b = new System.Text.StringBuilder(text.Length + 16);
        b.Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (!NeedsEscape(text, i))
            {
                b.Append(c);
                continue;
            }
            switch (c)
            {
                case '\\': b.Append(@"\\"); break;
                case '\n': b.Append(@"\n"); break;
                case '\r': b.Append(@"\r"); break;
                case '\t': b.Append(@"\t"); break;
                case '\0': b.Append(@"\0"); break;
                default: b.Append(@"\u{").Append(((int)c).ToString("X4", System.Globalization.CultureInfo.InvariantCulture)).Append('}'); break;
            }
        }
        return b.ToString();
    }

    private static bool NeedsEscape(string text, int i)
    {
        char c = text[i];
        if (c == '\\' || c < 0x20 || c is >= '\u007f' and <= '\u009f' || c is '\u2028' or '\u2029' or '\u0085'
            || c is >= '\u202a' and <= '\u202e' || c is >= '\u2066' and <= '\u2069' || c is '\u200e' or '\u200f' or '\ufeff') return true;
        if (char.IsHighSurrogate(c)) return i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]);
        return char.IsLowSurrogate(c) && (i == 0 || !char.IsHighSurrogate(text[i - 1])); // a low surrogate not after a high one
    }

    private void Write(string level, string message)
    {
        var line = $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} nvr-dp[{Environment.ProcessId}] {level} {Escape(message)}";
        lock (_gate)
        {
            _memory?.Add(line);
            try { _file?.WriteLine(line); } catch (IOException) { /* a full disk must not stop the datapath */ }
            if (_stderr) Console.Error.WriteLine(line);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate) _file?.Dispose();
    }
}
