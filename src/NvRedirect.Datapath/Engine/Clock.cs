using System;

namespace NvRedirect.Datapath.Engine;

/// <summary>Whole seconds on a monotonic clock: session timeouts and ages are counted in it (NeuVector's 1 s tick).</summary>
internal abstract class DatapathClock
{
    /// <summary>Seconds since an arbitrary fixed point; never goes backwards.</summary>
    public abstract long NowSeconds { get; }

    /// <summary>The process's monotonic clock.</summary>
    public static readonly DatapathClock Monotonic = new MonotonicClock();

    private sealed class MonotonicClock : DatapathClock
    {
        public override long NowSeconds => Environment.TickCount64 / 1000;
    }
}

/// <summary>A clock the caller moves by hand (tests, replays).</summary>
internal sealed class ManualClock(long start = 1000) : DatapathClock
{
    private long _now = start;
    public override long NowSeconds => _now;
    /// <summary>Moves the clock forward.</summary>
    public void Advance(long seconds) => _now += seconds;
}
