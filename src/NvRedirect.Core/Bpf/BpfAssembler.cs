using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace NvRedirect.Core.Bpf;

/// <summary>eBPF registers (r10 is the read-only frame pointer).</summary>
public enum Reg : byte { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 }

/// <summary>
/// A minimal eBPF assembler: the handful of instructions the MAC-rewrite programs need, with forward labels.
/// Encoding (docs/kernel-interfaces.md, "Instruction encoding"): u8 opcode | u8 (src&lt;&lt;4 | dst) | s16 off | s32 imm, little-endian;
/// a jump's target is pc + 1 + off.
/// </summary>
public sealed class BpfAssembler
{
    private const byte PseudoMapFd = 1;
    private readonly List<(byte Code, byte Regs, short Off, int Imm, string? Label)> _insns = new();
    private readonly Dictionary<string, int> _labels = new();

    /// <summary>Helper ids (include/uapi/linux/bpf.h).</summary>
    public const int HelperMapLookupElem = 1, HelperKtimeGetNs = 5, HelperSkbStoreBytes = 9, HelperCloneRedirect = 13, HelperRedirect = 23, HelperSkbLoadBytes = 26, HelperRedirectPeer = 155;

    private BpfAssembler Emit(byte code, Reg dst, Reg src, short off, int imm, string? label = null)
    {
        _insns.Add((code, (byte)(((byte)src << 4) | (byte)dst), off, imm, label));
        return this;
    }

    /// <summary>Number of instructions so far.</summary>
    public int Count => _insns.Count;

    /// <summary>Marks the next instruction with a label.</summary>
    public BpfAssembler Label(string name) { _labels[name] = _insns.Count; return this; }
    /// <summary>dst = src (64-bit).</summary>
    public BpfAssembler Mov(Reg dst, Reg src) => Emit(0xbf, dst, src, 0, 0);
    /// <summary>dst = imm (64-bit, sign-extended).</summary>
    public BpfAssembler Mov(Reg dst, int imm) => Emit(0xb7, dst, Reg.R0, 0, imm);
    /// <summary>dst += imm (64-bit).</summary>
    public BpfAssembler Add(Reg dst, int imm) => Emit(0x07, dst, Reg.R0, 0, imm);
    /// <summary>dst &amp;= imm (64-bit).</summary>
    public BpfAssembler And(Reg dst, int imm) => Emit(0x57, dst, Reg.R0, 0, imm);
    /// <summary>dst = *(u8 *)(src + off).</summary>
    public BpfAssembler LoadU8(Reg dst, Reg src, short off) => Emit(0x71, dst, src, off, 0);
    /// <summary>dst = *(u16 *)(src + off).</summary>
    public BpfAssembler LoadU16(Reg dst, Reg src, short off) => Emit(0x69, dst, src, off, 0);
    /// <summary>dst = *(u32 *)(src + off).</summary>
    public BpfAssembler LoadU32(Reg dst, Reg src, short off) => Emit(0x61, dst, src, off, 0);
    /// <summary>*(u32 *)(dst + off) = imm.</summary>
    public BpfAssembler StoreU32(Reg dst, short off, int imm) => Emit(0x62, dst, Reg.R0, off, imm);
    /// <summary>*(u16 *)(dst + off) = imm.</summary>
    public BpfAssembler StoreU16(Reg dst, short off, int imm) => Emit(0x6a, dst, Reg.R0, off, imm);
    /// <summary>if dst != imm goto label (64-bit compare, imm sign-extended).</summary>
    public BpfAssembler JumpIfNotEqual64(Reg dst, int imm, string label) => Emit(0x55, dst, Reg.R0, 0, imm, label);
    /// <summary>if (u32)dst != imm goto label (JMP32: needed when imm has bit 31 set).</summary>
    public BpfAssembler JumpIfNotEqual32(Reg dst, int imm, string label) => Emit(0x56, dst, Reg.R0, 0, imm, label);
    /// <summary>dst = *(u64 *)(src + off).</summary>
    public BpfAssembler LoadU64(Reg dst, Reg src, short off) => Emit(0x79, dst, src, off, 0);
    /// <summary>*(u8 *)(dst + off) = imm.</summary>
    public BpfAssembler StoreU8(Reg dst, short off, int imm) => Emit(0x72, dst, Reg.R0, off, imm);
    /// <summary>*(u8 *)(dst + off) = src.</summary>
    public BpfAssembler StoreU8(Reg dst, short off, Reg src) => Emit(0x73, dst, src, off, 0);
    /// <summary>*(u16 *)(dst + off) = src.</summary>
    public BpfAssembler StoreU16(Reg dst, short off, Reg src) => Emit(0x6b, dst, src, off, 0);
    /// <summary>goto label.</summary>
    public BpfAssembler Jump(string label) => Emit(0x05, Reg.R0, Reg.R0, 0, 0, label);
    /// <summary>*(u64 *)(dst + off) = src.</summary>
    public BpfAssembler StoreU64(Reg dst, short off, Reg src) => Emit(0x7b, dst, src, off, 0);
    /// <summary>lock *(u64 *)(dst + off) += src (BPF_STX | BPF_ATOMIC | BPF_DW, imm BPF_ADD).</summary>
    public BpfAssembler AtomicAdd64(Reg dst, short off, Reg src) => Emit(0xdb, dst, src, off, 0);
    /// <summary>
    /// dst = the map whose fd is <paramref name="mapFd"/> (BPF_LD_IMM64 with src BPF_PSEUDO_MAP_FD: two instruction slots,
    /// the second carrying the upper 32 bits, 0). The kernel swaps the fd for the map's address when it loads the program.
    /// </summary>
    public BpfAssembler LoadMapFd(Reg dst, int mapFd) => Emit(0x18, dst, (Reg)PseudoMapFd, 0, mapFd).Emit(0x00, Reg.R0, Reg.R0, 0, 0);
    /// <summary>if dst == imm goto label (64-bit compare).</summary>
    public BpfAssembler JumpIfEqual64(Reg dst, int imm, string label) => Emit(0x15, dst, Reg.R0, 0, imm, label);
    /// <summary>if dst &amp; imm goto label (64-bit).</summary>
    public BpfAssembler JumpIfAnySet(Reg dst, int imm, string label) => Emit(0x45, dst, Reg.R0, 0, imm, label);
    /// <summary>call helper.</summary>
    public BpfAssembler Call(int helper) => Emit(0x85, Reg.R0, Reg.R0, 0, helper);
    /// <summary>return r0.</summary>
    public BpfAssembler Exit() => Emit(0x95, Reg.R0, Reg.R0, 0, 0);

    /// <summary>The program as bytes, jump offsets resolved.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[_insns.Count * 8];
        for (int pc = 0; pc < _insns.Count; pc++)
        {
            var (code, regs, off, imm, label) = _insns[pc];
            if (label != null)
            {
                if (!_labels.TryGetValue(label, out int target)) throw new InvalidOperationException($"BPF label '{label}' is not defined.");
                off = checked((short)(target - pc - 1));
            }
            var span = bytes.AsSpan(pc * 8, 8);
            span[0] = code;
            span[1] = regs;
            BinaryPrimitives.WriteInt16LittleEndian(span[2..], off);
            BinaryPrimitives.WriteInt32LittleEndian(span[4..], imm);
        }
        return bytes;
    }
}
