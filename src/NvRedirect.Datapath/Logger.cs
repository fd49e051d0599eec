using System;
using System.Collections.Generic;
using System.IO;

namespace NvRedirect.Datapath;

/// <summary>
/// The daemon's log: timestamped lines to a file and/or stderr, and optionally into memory (tests read what was
/// logged). Thread-safe; never called per packet (the packet thread reports counters, summarised once a second).
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
            var options = new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.ReadWrite };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;
            var stream = new FileStream(path, options);
            _file = new StreamWriter(stream) { AutoFlush = true };
        }
    }

    /// <summary>Lines logged so far (only when kept in memory).</summary>
    public IReadOnlyList<string> Lines { get { lock (_gate) return _memory?.ToArray() ?? []; } }

    public void Info(string message) => Write("INFO", message);
    public void Warn(string message) => Write("WARN", message);
    public void Error(string message) => Write("ERROR", message);

    private void Write(string level, string message)
    {
        var line = $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} nvr-dp[{Environment.ProcessId}] {level} {message}";
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
