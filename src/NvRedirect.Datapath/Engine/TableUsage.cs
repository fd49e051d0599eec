using System.Text.Json;

namespace NvRedirect.Datapath.Engine;

/// <summary>
/// How full the session and connection tables are and what they had to give up: nvr_get_state reports it under
/// "tables" (Get-Datapath's Tables). Taken on the packet thread (<see cref="Of"/>); the JSON names are read by
/// NvRedirect.Core.Datapath.DpReplyReader.
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

    /// <summary>Writes "tables": {"sessions": {...}, "connections": {...}}.</summary>
    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject("tables");
        w.WriteStartObject("sessions");
        w.WriteNumber("capacity", SessionCapacity);
        w.WriteNumber("count", Sessions);
        w.WriteNumber("evicted", SessionsEvicted);
        w.WriteNumber("learned_evicted", LiveSessionsEvicted);
        w.WriteNumber("summarised", 0);
        w.WriteEndObject();
        w.WriteStartObject("connections");
        w.WriteNumber("capacity", ConnectionCapacity);
        w.WriteNumber("count", Connections);
        w.WriteNumber("learned", AnsweredConnections);
        w.WriteNumber("scans", ScanConnections);
        w.WriteNumber("evicted", ConnectionsEvicted);
        w.WriteNumber("learned_evicted", AnsweredConnectionsEvicted);
        w.WriteNumber("summarised", ConnectionsSummarised);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
