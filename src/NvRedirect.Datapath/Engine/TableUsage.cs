using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// How full the session and connection tables are and what they had to give up: nvr_get_state reports it under
/// "tables" (<see cref="TablesReport"/>; Get-Datapath's Tables). Taken on the packet thread (<see cref="Of"/>).
/// </summary>
internal sealed record TableUsage(
    int SessionCapacity, int Sessions, long SessionsEvicted, long LiveSessionsEvicted,
    int ConnectionCapacity, int Connections, int AnsweredConnections, int ScanConnections,
    long ConnectionsEvicted, long AnsweredConnectionsEvicted, long ConnectionsSummarised)
{
    /// <summary>The figures of <paramref name="engine"/>'s tables (call on the packet thread).</summary>
    public static TableUsage Of(PacketEngine engine)
    {
        var s = engine.Sessions;
        var c = engine.Connections;
        return new(s.Capacity, s.Count, s.Evicted, s.LiveEvicted, c.Capacity, c.Count, c.AnsweredCount, c.ScanCount, c.Evicted, c.AnsweredEvicted, c.Summarised);
    }

    /// <summary>The figures as nvr_get_state carries them (a session table has no learned, scan or summarised entries).</summary>
    public TablesReport Report() => new(
        new TableFigures(SessionCapacity, Sessions, 0, 0, SessionsEvicted, LiveSessionsEvicted, 0),
        new TableFigures(ConnectionCapacity, Connections, AnsweredConnections, ScanConnections, ConnectionsEvicted, AnsweredConnectionsEvicted, ConnectionsSummarised));
}
