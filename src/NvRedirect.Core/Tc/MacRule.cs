using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using NvRedirect.Core.Bpf;

namespace NvRedirect.Core.Tc;

/// <summary>
/// The seed's filter shape, typed: "frames whose destination (or source) MAC is X [and whose destination is unicast]
/// get that MAC rewritten to Y, then are mirrored (or redirected) to device T". One rule, two encodings:
/// <see cref="ToU32Filter"/> gives exactly the u32 + pedit + mirred filter NeuVector installs with tc (docs/kernel-interfaces.md,
/// "NeuVector's filters per workload"), <see cref="ToBpfProgram"/> the cls_bpf direct-action program that does the same where act_pedit is missing
/// ("cls_bpf instead of pedit" there).
/// </summary>
/// <param name="LinkIndex">The device the filter is attached to (its ingress).</param>
/// <param name="Priority">The tc pref.</param>
/// <param name="Protocol">TcProtocol.IPv4 or TcProtocol.IPv6 (unicast steering of that family) or TcProtocol.All.</param>
/// <param name="MatchField">Which MAC is compared.</param>
/// <param name="MatchMac">The MAC compared with (6 bytes).</param>
/// <param name="UnicastOnly">Also require a unicast destination (`match u8 0 1 at -14`).</param>
/// <param name="RewriteField">Which MAC is rewritten, or null for no rewrite.</param>
/// <param name="NewMac">The MAC written (6 bytes) when <paramref name="RewriteField"/> is set.</param>
/// <param name="Target">The mirred action (target ifindex/name, direction, mirror or redirect).</param>
public sealed record MacRule(int LinkIndex, ushort Priority, ushort Protocol, MacField MatchField, byte[] MatchMac,
    bool UnicastOnly, MacField? RewriteField, byte[]? NewMac, MirredAction Target)
{
    /// <summary>u32 offsets of a MAC relative to the network header: destination -14, source -8.</summary>
    public static int OffsetOf(MacField field) => field == MacField.Destination ? -14 : -8;

    /// <summary>The matches exactly as NeuVector's tc command lines write them.</summary>
    public IReadOnlyList<U32Match> Matches()
    {
        var list = new List<U32Match>();
        if (UnicastOnly) list.Add(U32Match.U8(0, 1, -14));
        if (MatchField == MacField.Destination)
        {
            list.Add(U32Match.U16(BinaryPrimitives.ReadUInt16BigEndian(MatchMac), 0xffff, -14));
            list.Add(U32Match.U32(BinaryPrimitives.ReadUInt32BigEndian(MatchMac.AsSpan(2)), 0xffffffff, -12));
        }
        else
        {
            list.Add(U32Match.U32(BinaryPrimitives.ReadUInt32BigEndian(MatchMac), 0xffffffff, -8));
            list.Add(U32Match.U16(BinaryPrimitives.ReadUInt16BigEndian(MatchMac.AsSpan(4)), 0xffff, -4));
        }
        return list;
    }

    /// <summary>The pedit munges (`munge offset -14 u16 set ... munge offset -12 u32 set ...`), empty without a rewrite.</summary>
    public IReadOnlyList<PeditKey> Munges()
    {
        if (RewriteField is not MacField field || NewMac is null) return [];
        return field == MacField.Destination
            ? [PeditKey.U16(-14, BinaryPrimitives.ReadUInt16BigEndian(NewMac)), PeditKey.U32(-12, BinaryPrimitives.ReadUInt32BigEndian(NewMac.AsSpan(2)))]
            : [PeditKey.U32(-8, BinaryPrimitives.ReadUInt32BigEndian(NewMac)), PeditKey.U16(-4, BinaryPrimitives.ReadUInt16BigEndian(NewMac.AsSpan(4)))];
    }

    /// <summary>The u32 filter: matches, then `pedit ... pipe` (when rewriting), then mirred; every action tagged with <paramref name="cookie"/>.</summary>
    public U32Filter ToU32Filter(byte[]? cookie = null)
    {
        Validate();
        var actions = new List<TcAction>();
        var munges = Munges();
        if (munges.Count > 0) actions.Add(PeditAction.Munge(munges, TcActionControl.Pipe) with { Cookie = cookie });
        actions.Add(Target with { Cookie = cookie });
        return new U32Filter
        {
            LinkIndex = LinkIndex, Priority = Priority, Protocol = Protocol,
            Selector = U32Selector.FromMatches(Matches()), Actions = actions,
        };
    }

    /// <summary>The equivalent cls_bpf program; the mirred target must be resolved to an ifindex.</summary>
    public byte[] ToBpfProgram()
    {
        Validate();
        if (Target.TargetIndex == 0) throw new ArgumentException("The target device must be resolved to an ifindex before building the program.");
        if (RewriteField is not MacField field || NewMac is null)
            throw new ArgumentException("The cls_bpf form rewrites a MAC; a rule without a rewrite is a plain u32 + mirred filter.");
        return new MacRewriteProgram(MatchField, MatchMac, field, NewMac, Target.TargetIndex,
            Redirect: Target.Mode == MirredMode.Redirect, ToIngress: Target.Direction == MirredDirection.Ingress,
            RequireUnicastDestination: UnicastOnly, RequireIPv4: Protocol == TcProtocol.IPv4, RequireIPv6: Protocol == TcProtocol.IPv6).Assemble();
    }

    private void Validate()
    {
        if (MatchMac is not { Length: 6 }) throw new ArgumentException("The MAC to match must be 6 bytes.");
        if (RewriteField != null && NewMac is not { Length: 6 }) throw new ArgumentException("The new MAC must be 6 bytes.");
        if (Priority == 0) throw new ArgumentException("A pref from 1 to 65535 is required.");
    }
}
