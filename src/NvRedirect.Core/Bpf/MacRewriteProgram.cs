using System;
using System.Buffers.Binary;

namespace NvRedirect.Core.Bpf;

/// <summary>Which Ethernet address a program matches or rewrites.</summary>
public enum MacField
{
    /// <summary>Destination MAC (frame offset 0; u32 `at -14`).</summary>
    Destination,
    /// <summary>Source MAC (frame offset 6; u32 `at -8`).</summary>
    Source,
}

/// <summary>
/// The cls_bpf (direct-action) equivalent of one seed filter `u32 match MAC ... action pedit MAC := NEW pipe action
/// mirred egress mirror|redirect dev X` (docs/kernel-interfaces.md, "The program", verified on this kernel):
/// load dst+src MAC, compare, optionally require a unicast destination and IPv4 (or IPv6), rewrite with skb_store_bytes, then
/// clone_redirect (mirror: TC_ACT_OK afterwards, like pipe + mirror) or redirect; no match returns TC_ACT_UNSPEC so the
/// next filter (the pref 10002 catch-all) runs.
/// </summary>
public sealed record MacRewriteProgram(
    MacField MatchField, byte[] MatchMac, MacField RewriteField, byte[] NewMac, int TargetIfIndex,
    bool Redirect = false, bool ToIngress = false, bool RequireUnicastDestination = false, bool RequireIPv4 = false, bool RequireIPv6 = false)
{
    private const int TcActOk = 0, TcActUnspec = -1;
    private const short Frame = -16;       // fp-16..fp-5: dst (fp-16..-11) and src (fp-10..-5)
    private const short NewMacDst = -24;   // staging for the new MAC; u32 then u16 (dst) or u16 then u32 (src)
    private const short NewMacSrc = -22;
    private const int SkbProtocolOffset = 16; // __sk_buff.protocol, be16 in the low half
    private const int BpfFIngress = 1;

    /// <summary>Assembles the program.</summary>
    public byte[] Assemble()
    {
        if (MatchMac.Length != 6 || NewMac.Length != 6) throw new ArgumentException("MAC addresses are 6 bytes.");
        var a = new BpfAssembler();
        a.Mov(Reg.R6, Reg.R1)                                    // keep ctx: r1-r5 die at every call
         .Mov(Reg.R2, 0).Mov(Reg.R3, Reg.R10).Add(Reg.R3, Frame).Mov(Reg.R4, 12)
         .Call(BpfAssembler.HelperSkbLoadBytes)
         .JumpIfNotEqual64(Reg.R0, 0, "nomatch");
        if (RequireUnicastDestination)
            a.LoadU8(Reg.R1, Reg.R10, Frame).And(Reg.R1, 1).JumpIfNotEqual64(Reg.R1, 0, "nomatch");
        // naturally aligned stack loads only: dst = u32 + u16, src = u16 + u32
        if (MatchField == MacField.Destination)
        {
            a.LoadU32(Reg.R1, Reg.R10, Frame).JumpIfNotEqual32(Reg.R1, Le32(MatchMac, 0), "nomatch")
             .LoadU16(Reg.R1, Reg.R10, Frame + 4).JumpIfNotEqual32(Reg.R1, Le16(MatchMac, 4), "nomatch");
        }
        else
        {
            a.LoadU16(Reg.R1, Reg.R10, Frame + 6).JumpIfNotEqual32(Reg.R1, Le16(MatchMac, 0), "nomatch")
             .LoadU32(Reg.R1, Reg.R10, Frame + 8).JumpIfNotEqual32(Reg.R1, Le32(MatchMac, 2), "nomatch");
        }
        if (RequireIPv4 && RequireIPv6) throw new ArgumentException("A frame is IPv4 or IPv6, not both: require one of them.");
        if (RequireIPv4)
            a.LoadU32(Reg.R1, Reg.R6, SkbProtocolOffset).JumpIfNotEqual32(Reg.R1, 0x0008, "nomatch");
        if (RequireIPv6)
            a.LoadU32(Reg.R1, Reg.R6, SkbProtocolOffset).JumpIfNotEqual32(Reg.R1, 0xdd86, "nomatch"); // htons(ETH_P_IPV6)
        short staging;
        if (RewriteField == MacField.Destination)
        {
            staging = NewMacDst;
            a.StoreU32(Reg.R10, NewMacDst, Le32(NewMac, 0)).StoreU16(Reg.R10, NewMacDst + 4, Le16(NewMac, 4));
        }
        else
        {
            staging = NewMacSrc;
            a.StoreU16(Reg.R10, NewMacSrc, Le16(NewMac, 0)).StoreU32(Reg.R10, NewMacSrc + 2, Le32(NewMac, 2));
        }
        a.Mov(Reg.R1, Reg.R6).Mov(Reg.R2, RewriteField == MacField.Destination ? 0 : 6)
         .Mov(Reg.R3, Reg.R10).Add(Reg.R3, staging).Mov(Reg.R4, 6).Mov(Reg.R5, 0)
         .Call(BpfAssembler.HelperSkbStoreBytes)
         .JumpIfNotEqual64(Reg.R0, 0, "done");
        int flags = ToIngress ? BpfFIngress : 0;
        if (Redirect)
            a.Mov(Reg.R1, TargetIfIndex).Mov(Reg.R2, flags).Call(BpfAssembler.HelperRedirect).Exit(); // r0 = TC_ACT_REDIRECT
        else
            a.Mov(Reg.R1, Reg.R6).Mov(Reg.R2, TargetIfIndex).Mov(Reg.R3, flags).Call(BpfAssembler.HelperCloneRedirect);
        a.Label("done").Mov(Reg.R0, TcActOk).Exit()
         .Label("nomatch").Mov(Reg.R0, TcActUnspec).Exit();
        return a.ToBytes();
    }

    private static int Le32(byte[] mac, int at) => BinaryPrimitives.ReadInt32LittleEndian(mac.AsSpan(at, 4));
    private static int Le16(byte[] mac, int at) => BinaryPrimitives.ReadUInt16LittleEndian(mac.AsSpan(at, 2));
}
