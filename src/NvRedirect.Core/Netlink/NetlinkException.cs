using System;
using NvRedirect.Core.Interop;

namespace NvRedirect.Core.Netlink;

/// <summary>
/// A failed kernel operation: the errno, what we were doing, and the kernel's own extended-ACK text when it sent one.
/// </summary>
public class NetlinkException : Exception
{
    /// <summary>Positive errno (ENOENT = 2 ...).</summary>
    public int Errno { get; }
    /// <summary>What was being done, e.g. "create veth pair vex/vex-peer".</summary>
    public string Operation { get; }
    /// <summary>The kernel's extack message (NLMSGERR_ATTR_MSG), or null when it gave none.</summary>
    public string? KernelMessage { get; }

    /// <summary>Builds the exception; the message reads "operation: strerror (ENAME): kernel text".</summary>
    public NetlinkException(int errno, string operation, string? kernelMessage = null)
        : base(Compose(errno, operation, kernelMessage))
    {
        Errno = errno;
        Operation = operation;
        KernelMessage = kernelMessage;
    }

    /// <summary>For subclasses whose message is already complete and needs no errno suffix.</summary>
    protected NetlinkException(int errno, string operation, string? kernelMessage, string message) : base(message)
    {
        Errno = errno;
        Operation = operation;
        KernelMessage = kernelMessage;
    }

    private static string Compose(int errno, string operation, string? kernelMessage)
    {
        var text = $"{operation}: {Native.StrError(errno)} ({Native.ErrnoName(errno)})";
        return string.IsNullOrEmpty(kernelMessage) ? text : $"{text}; kernel says: {kernelMessage}";
    }
}

/// <summary>A syscall outside netlink failed (open, mount, setns...).</summary>
public sealed class SyscallException : NetlinkException
{
    /// <summary>Builds the exception from the errno just read.</summary>
    public SyscallException(int errno, string operation) : base(errno, operation) { }

    /// <summary>Throws for the calling thread's current errno.</summary>
    public static SyscallException FromLastError(string operation) => new(Native.LastErrno, operation);
}
