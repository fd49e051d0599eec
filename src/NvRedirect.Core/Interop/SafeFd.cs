using System;
using System.Runtime.InteropServices;

namespace NvRedirect.Core.Interop;

/// <summary>A file descriptor owned by managed code: closed exactly once, also on failure paths.</summary>
public sealed class SafeFd : SafeHandle
{
    /// <summary>Wraps an fd returned by a syscall (-1 is treated as invalid).</summary>
    public SafeFd(int fd) : base(new IntPtr(-1), ownsHandle: true) => SetHandle(new IntPtr(fd));

    /// <inheritdoc/>
    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>The raw descriptor; valid while this handle is alive.</summary>
    public int Fd => (int)handle.ToInt64();

    /// <inheritdoc/>
    protected override bool ReleaseHandle() => Native.close(Fd) == 0;
}
