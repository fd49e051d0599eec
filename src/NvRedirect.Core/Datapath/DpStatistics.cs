using System.Net;

namespace NvRedirect.Core.Datapath;

/// <summary>
/// Traffic of a datapath (ctrl_stats_device) or of one workload (ctrl_stats_macs) as NeuVector's dp counts it
/// (DPMsgStats): totals since the daemon started and three windows of 5-second slots.
/// </summary>
public sealed class DpTrafficStatistic
{
    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>The workload's MAC; null for the whole datapath (Get-DpDeviceStatistic).</summary>
    public string? Mac { get; init; }
    /// <summary>Seconds per slot (5).</summary>
    public uint Interval { get; init; }
    /// <summary>Sessions opened towards the workload (in) and by it (out) since the start.</summary>
    public uint SessionsIn { get; init; }
    /// <summary>See <see cref="SessionsIn"/>.</summary>
    public uint SessionsOut { get; init; }
    /// <summary>Sessions open now, in and out.</summary>
    public uint CurrentSessionsIn { get; init; }
    /// <summary>See <see cref="CurrentSessionsIn"/>.</summary>
    public uint CurrentSessionsOut { get; init; }
    /// <summary>Packets and bytes in (to the workload) and out since the start.</summary>
    public ulong PacketsIn { get; init; }
    /// <summary>See <see cref="PacketsIn"/>.</summary>
    public ulong PacketsOut { get; init; }
    /// <summary>See <see cref="PacketsIn"/>.</summary>
    public ulong BytesIn { get; init; }
    /// <summary>See <see cref="PacketsIn"/>.</summary>
    public ulong BytesOut { get; init; }
    /// <summary>The last whole slot (5 s), the last 12 slots (1 min) and the last 60 slots (5 min), as dp sums them.</summary>
    public DpStatisticWindow Last { get; init; } = new();
    /// <summary>See <see cref="Last"/>.</summary>
    public DpStatisticWindow LastMinute { get; init; } = new();
    /// <summary>See <see cref="Last"/>.</summary>
    public DpStatisticWindow LastFiveMinutes { get; init; } = new();

    /// <inheritdoc/>
    public override string ToString() => Mac ?? ControlSocket;
}

/// <summary>One window of a <see cref="DpTrafficStatistic"/>: what it summed, and the rates over its length.</summary>
public sealed class DpStatisticWindow
{
    /// <summary>The window's length in seconds (slots times the interval).</summary>
    public uint Seconds { get; init; }
    /// <summary>Sessions opened in and out within the window.</summary>
    public uint SessionsIn { get; init; }
    /// <summary>See <see cref="SessionsIn"/>.</summary>
    public uint SessionsOut { get; init; }
    /// <summary>Packets and bytes in and out within the window.</summary>
    public ulong PacketsIn { get; init; }
    /// <summary>See <see cref="PacketsIn"/>.</summary>
    public ulong PacketsOut { get; init; }
    /// <summary>See <see cref="PacketsIn"/>.</summary>
    public ulong BytesIn { get; init; }
    /// <summary>See <see cref="PacketsIn"/>.</summary>
    public ulong BytesOut { get; init; }
    /// <summary>Bytes per second in and out over the window (what NeuVector's console shows as throughput).</summary>
    public double BytesInPerSecond => Seconds == 0 ? 0 : (double)BytesIn / Seconds;
    /// <summary>See <see cref="BytesInPerSecond"/>.</summary>
    public double BytesOutPerSecond => Seconds == 0 ? 0 : (double)BytesOut / Seconds;

    /// <inheritdoc/>
    public override string ToString() => $"{Seconds} s: {SessionsIn}/{SessionsOut} sessions, {PacketsIn}/{PacketsOut} packets, {BytesIn}/{BytesOut} bytes in/out";
}

/// <summary>One rate limit per source (ctrl_list_meter, DPMsgMeter). nvr-dp keeps none; NeuVector's dp lists its DDoS meters.</summary>
public sealed class DpMeter
{
    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; init; } = "";
    /// <summary>The workload the meter belongs to.</summary>
    public string Mac { get; init; } = "";
    /// <summary>The metered peer.</summary>
    public IPAddress PeerAddress { get; init; } = IPAddress.None;
    /// <summary>dp's meter id (the kind of flood).</summary>
    public byte MeterId { get; init; }
    /// <summary>dp's meter flags.</summary>
    public byte Flags { get; init; }
    /// <summary>Seconds the meter counts over.</summary>
    public byte Span { get; init; }
    /// <summary>Events counted in the current and the previous span.</summary>
    public uint Count { get; init; }
    /// <summary>See <see cref="Count"/>.</summary>
    public uint LastCount { get; init; }
    /// <summary>Seconds since the meter last counted.</summary>
    public ushort Idle { get; init; }
    /// <summary>The rate at which the meter trips, and the one below which it resets.</summary>
    public uint UpperLimit { get; init; }
    /// <summary>See <see cref="UpperLimit"/>.</summary>
    public uint LowerLimit { get; init; }
}
