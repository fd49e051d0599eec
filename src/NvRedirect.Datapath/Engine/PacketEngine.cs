using System;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// The datapath's live parts: the published workload table, the session table and counters (owned by the packet
/// thread while a service port runs), and that port. The control side changes them only through here.
/// </summary>
internal sealed class PacketEngine : IDisposable
{
    private readonly Logger _log;

    /// <summary>Where the control thread publishes workload tables.</summary>
    public WorkloadDirectory Workloads { get; } = new();
    /// <summary>Sessions (packet thread's; reach them through <see cref="OnPacketThread"/>).</summary>
    public SessionTable Sessions { get; }
    /// <summary>Datapath-wide counters.</summary>
    public DatapathCounters Counters { get; } = new();
    /// <summary>Connections seen per workload (packet thread's, like <see cref="Sessions"/>).</summary>
    public ConnectionTable Connections => Processor.Connections;
    /// <summary>The per-frame logic.</summary>
    public FrameProcessor Processor { get; }
    /// <summary>The session clock.</summary>
    public DatapathClock Clock { get; }
    /// <summary>The running service port, if any.</summary>
    public IServicePort? Port { get; private set; }

    /// <summary>Creates the tables (sessions preallocated).</summary>
    public PacketEngine(int sessionCapacity, DatapathClock clock, Logger log, int connectionCapacity = 16384)
    {
        _log = log;
        Clock = clock;
        Sessions = new SessionTable(sessionCapacity);
        Processor = new FrameProcessor(Sessions, Counters, new ConnectionTable(connectionCapacity));
    }

    /// <summary>Called when a service port's packet thread died (it forwards nothing any more).</summary>
    public Action<string, Exception>? PortFailed { get; set; }

    /// <summary>The opener of real AF_PACKET service ports in namespace <paramref name="ns"/> ("" = the process's own).</summary>
    public ServicePortOpener RealPorts(string ns) => (iface, jumbo) =>
    {
        var port = ServicePort.Open(ns, iface, jumbo, Processor, Workloads, Clock, _log);
        port.Failed = e => PortFailed?.Invoke(iface, e);
        return port;
    };

    /// <summary>Starts <paramref name="port"/> as the service port.</summary>
    public void AttachPort(IServicePort port)
    {
        if (Port != null) throw new InvalidOperationException($"service port {Port.Interface} is already running");
        Port = port;
        port.Start();
    }

    /// <summary>Stops and closes the service port; sessions stay.</summary>
    public void DetachPort()
    {
        var port = Port;
        Port = null;
        port?.Dispose();
    }

    /// <summary>
    /// Runs <paramref name="work"/> where the session table may be touched: on the packet thread when one runs, else
    /// here. What the kernel fast path forwarded is folded into the sessions and workloads first, so every answer
    /// (sessions, counters, statistics, reports) includes it.
    /// </summary>
    public T OnPacketThread<T>(Func<T> work) => Port is { } port ? port.Invoke(() => { Sessions.FoldFastPath(); return work(); }) : Fold(work);

    private T Fold<T>(Func<T> work)
    {
        Sessions.FoldFastPath();
        return work();
    }

    /// <inheritdoc/>
    public void Dispose() => DetachPort();
}
