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
