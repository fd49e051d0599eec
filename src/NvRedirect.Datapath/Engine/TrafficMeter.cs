using System;
using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// Sessions, packets and bytes in and out per 5-second slot over the last 60 slots (NeuVector's io_stats_t rings), for
/// one workload or the whole datapath; what ctrl_stats_macs and ctrl_stats_device report. The packet thread writes it
/// (slots are absolute: clock seconds / 5); the arrays are allocated once, so counting allocates nothing. The totals are
/// the device's (a workload's totals live in its <see cref="WorkloadState"/>).
/// </summary>
internal sealed class TrafficMeter
{
    private const int Slots = StatsLayout.Slots;

    private readonly long[] _sessionIn = new long[Slots], _sessionOut = new long[Slots], _packetIn = new long[Slots], _packetOut = new long[Slots],
        _byteIn = new long[Slots], _byteOut = new long[Slots];

    /// <summary>The slot the rings were last advanced to.</summary>
    public long CurrentSlot { get; private set; }
    /// <summary>Device totals (unused for a workload's meter).</summary>
    public long PacketsIn, PacketsOut, BytesIn, BytesOut, SessionsIn, SessionsOut;

    /// <summary>The slot of <paramref name="nowSeconds"/>.</summary>
    public static long SlotOf(long nowSeconds) => nowSeconds / StatsLayout.SlotSeconds;

    /// <summary>Counts a frame in <paramref name="slot"/>.</summary>
    public void Packet(bool ingress, int bytes, long slot)
    {
        int s = Advance(slot);
        if (ingress) { _packetIn[s]++; _byteIn[s] += bytes; PacketsIn++; BytesIn += bytes; }
        else { _packetOut[s]++; _byteOut[s] += bytes; PacketsOut++; BytesOut += bytes; }
    }

    /// <summary>Counts a new session in <paramref name="slot"/> (ingress: the workload is its server).</summary>
    public void Session(bool ingress, long slot)
    {
        int s = Advance(slot);
        if (ingress) { _sessionIn[s]++; SessionsIn++; } else { _sessionOut[s]++; SessionsOut++; }
    }

    // dpi_catch_stats_slot: the slots passed since the last count are emptied (all of them after 60 or more)
    private int Advance(long slot)
    {
        if (slot != CurrentSlot)
        {
            if (slot - CurrentSlot >= Slots || slot < CurrentSlot)
            {
                Array.Clear(_sessionIn); Array.Clear(_sessionOut); Array.Clear(_packetIn); Array.Clear(_packetOut); Array.Clear(_byteIn); Array.Clear(_byteOut);
            }
            else
                for (long n = CurrentSlot + 1; n <= slot; n++)
                {
                    int i = (int)(n % Slots);
                    _sessionIn[i] = _sessionOut[i] = _packetIn[i] = _packetOut[i] = _byteIn[i] = _byteOut[i] = 0;
                }
            CurrentSlot = slot;
        }
        return (int)(slot % Slots);
    }

    // the slots [from, to) the rings still hold (the last 60 up to CurrentSlot)
    private StatsWindow Sum(long from, long to)
    {
        long si = 0, so = 0, pi = 0, po = 0, bi = 0, bo = 0;
        for (long n = Math.Max(Math.Max(from, 0), CurrentSlot - Slots + 1); n < to && n <= CurrentSlot; n++)
        {
            int i = (int)(n % Slots);
            si += _sessionIn[i]; so += _sessionOut[i]; pi += _packetIn[i]; po += _packetOut[i]; bi += _byteIn[i]; bo += _byteOut[i];
        }
        return new StatsWindow((uint)si, (uint)so, (ulong)pi, (ulong)po, (ulong)bi, (ulong)bo);
    }

    /// <summary>
    /// A workload's windows as NeuVector's collect_stats computes them at global slot <paramref name="current"/>: the
    /// last slot, if this meter counted in it or the one before; the slots from current-12 (current-59) up to, not
    /// including, the slot this meter last counted in, if that is recent enough.
    /// </summary>
    public (StatsWindow Last, StatsWindow Last12, StatsWindow Last60) WorkloadWindows(long current)
    {
        long last = CurrentSlot;
        var one = current > 0 && last + 1 >= current ? Sum(current - 1, current) : StatsWindow.Zero;
        var twelve = last + 12 >= current ? Sum(Math.Max(current - 12, 0), last) : StatsWindow.Zero;
        var sixty = last + 59 >= current ? Sum(Math.Max(current - 59, 0), last) : StatsWindow.Zero;
        return (one, twelve, sixty);
    }

    /// <summary>
    /// The device's windows as NeuVector's ctrl_stats_device computes them at global slot <paramref name="current"/>: the
    /// rings laid out from slot current-60, up to the slot last counted in; the last of those 60 positions, the last 12,
    /// and all 60.
    /// </summary>
    public (StatsWindow Last, StatsWindow Last12, StatsWindow Last60) DeviceWindows(long current)
    {
        long start = current < Slots ? 0 : current - Slots, end = Math.Min(current, CurrentSlot + 1);
        // position p of the aligned ring holds slot start + p, when start + p < end
        return (Sum(start + Slots - 1, end), Sum(start + Slots - 12, end), Sum(start, end));
    }

    /// <summary>DPMsgStats of totals and windows (Interval 5 s).</summary>
    public static TrafficStats Stats(long sessionsIn, long sessionsOut, long currentIn, long currentOut, long packetsIn, long packetsOut,
        long bytesIn, long bytesOut, (StatsWindow Last, StatsWindow Last12, StatsWindow Last60) w)
        => new(StatsLayout.SlotSeconds, (uint)sessionsIn, (uint)sessionsOut, (uint)Math.Max(0, currentIn), (uint)Math.Max(0, currentOut),
            (ulong)packetsIn, (ulong)packetsOut, (ulong)bytesIn, (ulong)bytesOut, w.Last, w.Last12, w.Last60);

    /// <summary>Adds two windows (ctrl_stats_macs sums the listed workloads).</summary>
    public static StatsWindow Add(StatsWindow a, StatsWindow b)
        => new(a.SessionIn + b.SessionIn, a.SessionOut + b.SessionOut, a.PacketIn + b.PacketIn, a.PacketOut + b.PacketOut, a.ByteIn + b.ByteIn, a.ByteOut + b.ByteOut);
}
