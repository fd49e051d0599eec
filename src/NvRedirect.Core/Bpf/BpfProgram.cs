using System;
using System.Runtime.InteropServices;
using System.Text;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;

namespace NvRedirect.Core.Bpf;

/// <summary>The verifier refused a program; <see cref="VerifierLog"/> holds its explanation.</summary>
public sealed class BpfVerifierException(int errno, string log)
    : NetlinkException(errno, "load a BPF program", null, $"The kernel's BPF verifier rejected the program ({Native.StrError(errno)}). Verifier log:\n{log.TrimEnd()}")
{
    /// <summary>The verifier's log text.</summary>
    public string VerifierLog { get; } = log;
}

/// <summary>Loads SCHED_CLS programs with the bpf(2) syscall (docs/kernel-interfaces.md, "BPF_PROG_LOAD").</summary>
public static unsafe class BpfProgram
{
    private const int BpfProgLoad = 5;
    private const int ProgTypeSchedCls = 3;
    private const int AttrSize = 72;         // up to expected_attach_type; the kernel accepts any size it knows

    /// <summary>Loads a program; returns its fd (the filter that attaches it takes its own reference).</summary>
    public static SafeFd LoadSchedCls(byte[] instructions, string name = "nvr_macrw")
    {
        if (instructions.Length == 0 || instructions.Length % 8 != 0) throw new ArgumentException("A BPF program is a non-empty multiple of 8 bytes.", nameof(instructions));
        var license = "GPL\0"u8.ToArray();
        var log = new byte[64 * 1024];
        var attr = new byte[AttrSize];
        var nameBytes = Encoding.ASCII.GetBytes(name);
        fixed (byte* insns = instructions, lic = license, logp = log, a = attr)
        {
            *(int*)(a + 0) = ProgTypeSchedCls;
            *(int*)(a + 4) = instructions.Length / 8;
            *(ulong*)(a + 8) = (ulong)insns;
            *(ulong*)(a + 16) = (ulong)lic;
            *(int*)(a + 24) = 1;                 // log_level 1: errors and statistics
            *(int*)(a + 28) = log.Length;
            *(ulong*)(a + 32) = (ulong)logp;
            for (int i = 0; i < Math.Min(15, nameBytes.Length); i++) a[48 + i] = nameBytes[i];
            long fd = Native.Bpf(BpfProgLoad, a, AttrSize);
            if (fd < 0)
            {
                int errno = Native.LastErrno;
                int len = Array.IndexOf(log, (byte)0);
                var text = Encoding.UTF8.GetString(log, 0, len < 0 ? log.Length : len);
                if (errno == 1 || text.Length == 0) throw new NetlinkException(errno, "load a BPF program (bpf syscall)");
                throw new BpfVerifierException(errno, text);
            }
            return new SafeFd((int)fd);
        }
    }
}
