using System;
using System.Collections.Generic;
using System.Collections.Frozen;
using System.Linq;
using System.Text;
using System.Text.Json;
using NvRedirect.Core.Protocol;
using NvRedirect.Datapath.Engine;

namespace NvRedirect.Datapath.Control;

/// <summary>
/// Executes control datagrams: one JSON object whose keys are commands, run in order. The whole datagram is
/// validated first by applying it to a copy of the state (a service port is even opened then); if any command is
/// bad, nothing is applied, every reason is logged, and a port opened for it is closed again. Otherwise the copy
/// becomes the state, the workload table is republished, and the side effects (port start/stop, session removal,
/// replies) run in command order. Pure with respect to sockets: bytes in, reply datagrams out.
/// <para>
/// <see cref="Handle"/> is the one entry point. This file holds it (parse, validate-then-commit, outcomes); the commands
/// live by family in Controller.Workloads.cs (ctrl_*_mac), Controller.PortsAndNetworks.cs (service port, internal
/// networks, switches, debug), Controller.Policy.cs (policies, policy addresses, connections) and Controller.Queries.cs
/// (keep-alive, sessions, counters, state). A command reads its message with the protocol's reader, checks it against
/// the copied state, changes only the copy, and queues its side effects: nothing it does is visible until commit.
/// </para>
/// </summary>
internal sealed partial class Controller
{
    /// <summary>Largest request accepted (NeuVector's receive buffer; the agent keeps requests under 8120 bytes).</summary>
    public const int MaxRequestSize = DpWire.MaxRequestSize;

    private static readonly JsonDocumentOptions JsonOptions = new() { MaxDepth = 16 };

    private readonly PacketEngine _datapath;
    private readonly ServicePortOpener _openPort;
    private readonly Logger _log;

    /// <summary>The configuration in force.</summary>
    public ControlState State { get; private set; } = new();
    /// <summary>Requests executed and requests rejected so far.</summary>
    public long Accepted { get; private set; }
    public long Rejected { get; private set; }
    /// <summary>Why the last rejected request was rejected (null when none was).</summary>
    public string? LastRejection { get; private set; }
    /// <summary>The connection reports to the agent's socket (null: none are sent), for nvr_get_state.</summary>
    public ConnectionReporter? Reports { get; init; }
    /// <summary>Where the committed configuration is kept (null: nowhere, as in tests of the controller alone).</summary>
    public StateFile? Persist { get; set; }
    /// <summary>Why the saved configuration was refused at start (null: restored, or none).</summary>
    public string? StateProblem { get; private set; }
    /// <summary>Who this daemon is, for nvr_get_state.</summary>
    public DaemonIdentity Identity { get; init; } = DaemonIdentity.OfThisProcess();

    // the outcome of the datagram being handled, and of each recent sender's previous datagram (for nvr_get_state)
    private RequestOutcome _outcome = RequestOutcome.Success;
    private RequestOutcome? _previousOfSender;
    private string? _sender;
    private readonly RecentOutcomes _outcomes = new(256);

    /// <summary>
    /// Controls <paramref name="datapath"/>; service ports come from <paramref name="openPort"/>. <paramref name="strict"/>
    /// (nvr-dp --strict) starts with the strict semantics and ICMP policed; otherwise with NeuVector dp's defaults.
    /// </summary>
    public Controller(PacketEngine datapath, ServicePortOpener openPort, Logger log, bool strict = false)
    {
        _datapath = datapath;
        _openPort = openPort;
        _log = log;
        State.Strict = State.EnableIcmpPolicy = strict;
    }

    /// <summary>One datagram being validated: the copied state it changes, and what to do if it commits.</summary>
    private sealed class Request
    {
        public required ControlState State;
        /// <summary>The bound address of the client that sent the datagram (null: unbound).</summary>
        public string? Sender;
        /// <summary>Side effects, run in command order after commit; they may add reply datagrams.</summary>
        public readonly List<Action<List<byte[]>>> Effects = [];
        /// <summary>Resources opened while validating (service ports), closed again when the datagram is rejected.</summary>
        public readonly List<IDisposable> Prepared = [];
        public readonly List<string> Errors = [];
        /// <summary>Log lines, written only when the datagram commits.</summary>
        public readonly List<string> Notes = [];
    }

    /// <summary>
    /// Executes one datagram and returns the reply datagrams (usually none: only queries answer).
    /// <paramref name="sender"/> names a bound client; its outcome is kept for its next nvr_get_state.
    /// </summary>
    public List<byte[]> Handle(ReadOnlySpan<byte> datagram, string? sender = null)
    {
        _previousOfSender = sender == null ? null : _outcomes.Find(sender);
        _sender = sender;
        _outcome = RequestOutcome.Success;
        var replies = Execute(datagram);
        if (sender != null) _outcomes.Remember(sender, _outcome);
        return replies;
    }

    private List<byte[]> Execute(ReadOnlySpan<byte> datagram)
    {
        var replies = new List<byte[]>();
        if (datagram.Length > MaxRequestSize)
            return Reject(replies, $"request of {datagram.Length} bytes exceeds the {MaxRequestSize}-byte limit");
        if (!System.Text.Unicode.Utf8.IsValid(datagram)) return Reject(replies, "the request is not valid UTF-8");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(datagram.ToArray(), JsonOptions); }
        catch (JsonException e) { return Reject(replies, $"malformed JSON: {e.Message}"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return Reject(replies, $"a request must be a JSON object whose keys are commands, got {Fields.Describe(root)}");

            var request = new Request { State = State.Clone(), Sender = _sender };
            int commands = 0;
            bool changes = false;
            foreach (var command in root.EnumerateObject())
            {
                commands++;
                changes |= !Queries.Contains(command.Name);
                try { Apply(command.Name, command.Value, request); }
                catch (CommandException e) { request.Errors.Add($"{command.Name}: {e.Message}"); }
                catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
                {
                    request.Errors.Add($"{command.Name}: unreadable argument ({e.Message})");
                }
            }
            if (commands == 0) { _log.Warn("empty request {} ignored"); return replies; }
            if (request.Errors.Count > 0)
            {
                foreach (var p in request.Prepared) p.Dispose();
                return Reject(replies, string.Join("; ", request.Errors));
            }
            // a datagram of queries alone changed no configuration: nothing to write (the file would come out the same)
            Commit(request, replies, save: changes);
        }
        return replies;
    }

    // The commands that only read: a datagram made of these alone is not saved (serializing the whole configuration
    // for every query would make each query cost as much as the configuration is large).
    private static readonly FrozenSet<string> Queries = new[]
    {
        Command.KeepAlive, Command.CountSessions, Command.ListSessions, Command.DeviceCounters, Command.GetState, Command.GetPolicy,
        Command.ListConnections, Command.DeviceStats, Command.MacStats, Command.ListMeters,
    }.ToFrozenSet(StringComparer.Ordinal);

    // Every command, by family: the protocol's reader turns it into its message (an unknown command is refused there),
    // and the family's handler validates it against the request's copy of the state and queues its effects.
    private void Apply(string name, JsonElement args, Request r)
    {
        switch (Datagram.Read(name, args))
        {
            // workloads (Controller.Workloads.cs)
            case AddMacRequest m: AddMac(m, r); break;
            case DeleteMacRequest m: DeleteMac(m, r); break;
            case ConfigureMacRequest m: ConfigureMac(m, r); break;
            // ports, networks and switches (Controller.PortsAndNetworks.cs)
            case AddServicePortRequest m: AddServicePort(m, r); break;
            case DeleteServicePortRequest m: DeleteServicePort(m, r); break;
            case InternalNetRequest m: ConfigureInternalNet(m, r); break;
            case ToggleRequest m: Toggle(m, r); break;
            case SetDebugRequest m: SetDebug(m, r); break;
            // policy (Controller.Policy.cs)
            case PolicyRequest m: ConfigurePolicy(m, r); break;
            case PolicyAddressRequest m: ConfigurePolicyAddresses(m, r); break;
            case MacFilterRequest { Command: Command.GetPolicy } m: GetPolicy(m, r); break;
            case MacFilterRequest { Command: Command.ListConnections } m: ListConnections(m, r); break;
            case MacFilterRequest { Command: Command.ClearConnections } m: ClearConnections(m, r); break;
            // queries (Controller.Queries.cs)
            case KeepAliveRequest m: KeepAlive(m, r); break;
            case EmptyRequest { Command: Command.CountSessions }: r.Effects.Add(CountSessions); break;
            case EmptyRequest { Command: Command.ListSessions }: r.Effects.Add(ListSessions); break;
            case EmptyRequest { Command: Command.DeviceCounters }: r.Effects.Add(DeviceCounters); break;
            case MacFilterRequest { Command: Command.GetState } m: GetState(m, r); break;
            case ClearSessionRequest m: ClearSession(m, r); break;
            case EmptyRequest { Command: Command.DeviceStats }: r.Effects.Add(DeviceStats); break;
            case MacStatsRequest m: MacStats(m, r); break;
            case EmptyRequest { Command: Command.ListMeters }: r.Effects.Add(replies => replies.AddRange(StatsReplies.MeterList([]))); break;
            case EmptyRequest { Command: Command.RefreshApp }:
                NoEffect(Command.RefreshApp, "nvr-dp identifies no applications, so it has no APP_UPDATE to send", r);
                break;
            // the agent's other ports, networks and names (Controller.PortsAndNetworks.cs, Controller.Workloads.cs, Controller.Policy.cs)
            case TapPortRequest m: TapPort(m, r); break;
            case NfqPortRequest m: NoEffect(m.Command, $"nvr-dp opens no NFQUEUE ports ({m.NetNs} {m.Interface}{(m.Add ? $" queue {m.QueueNumber}" : "")})", r); break;
            case PortPairRequest m: PortPair(m, r); break;
            case SpecialIpNetRequest m: ConfigureSpecialIpNet(m, r); break;
            case NbeRequest m: ConfigureNbe(m, r); break;
            case SetFqdnRequest m: SetFqdn(m, r); break;
            case DeleteFqdnRequest m: DeleteFqdn(m, r); break;
            case DlpRequest m: NoEffect(m.Command, "nvr-dp inspects no payloads (DLP/WAF)", r); break;
            case var m: throw new CommandException($"{m.Command} has no handler in this nvr-dp");
        }
    }

    // A command nvr-dp accepts and does nothing with: logged (when the datagram commits) and counted in nvr_get_state's no_effect.
    private static void NoEffect(string command, string why, Request r)
    {
        r.State.NoEffect[command] = r.State.NoEffect.GetValueOrDefault(command) + 1;
        r.Notes.Add($"{command}: accepted without effect: {why}");
    }

    /// <summary>Rejects a datagram that was longer than <see cref="MaxRequestSize"/> (only its length is known).</summary>
    public List<byte[]> RejectOversized(int length, string sender, bool bound = false)
    {
        var replies = Reject([], $"request of {length} bytes from {sender} exceeds the {MaxRequestSize}-byte limit");
        if (bound) _outcomes.Remember(sender, _outcome);
        return replies;
    }

    private List<byte[]> Reject(List<byte[]> replies, string reason)
    {
        Rejected++;
        LastRejection = reason.Length > 2000 ? reason[..2000] + "..." : reason;
        _outcome = new RequestOutcome(false, LastRejection);
        _log.Error($"request rejected, nothing applied: {reason}");
        return replies;
    }

    private void Commit(Request request, List<byte[]> replies, bool save = true)
    {
        Accepted++;
        var state = request.State;
        var tapChanged = new List<ulong>();
        foreach (var w in state.Workloads.Values)
        {
            if (w.State.Tap != state.Tap[w.Mac]) tapChanged.Add(w.Mac);
            w.State.Tap = state.Tap[w.Mac]; // before publishing: a new MAC starts with its tap setting
        }
        bool settingsChanged = state.SettingsChanged;
        if (state.SettingsChanged) state.SettingsGeneration++;
        var before = _datapath.Workloads.Current;
        if (state.WorkloadsChanged || state.SettingsChanged)
        {
            var table = new WorkloadTable(state.Workloads.Values, state.Settings());
            _datapath.Workloads.Publish(table);
            RevokeFastPath(before, table, tapChanged, settingsChanged);
        }
        else if (tapChanged.Count > 0) RevokeFastPath(before, before, tapChanged, false);
        state.WorkloadsChanged = false;
        state.SettingsChanged = false;
        State = state;
        foreach (var note in request.Notes) _log.Info(note);
        foreach (var effect in request.Effects)
        {
            try { effect(replies); }
            catch (Exception e)
            {
                _log.Error($"applying a command failed: {e.Message}");
                _outcome = new RequestOutcome(true, (_outcome.Error == null ? "" : _outcome.Error + "; ") + $"applying a command failed: {e.Message}");
            }
        }
        // durable before the replies go out: what a client was told is in force survives a crash
        if (save && Persist != null)
        {
            try { Persist.Save(State, Learned()); }
            catch (Exception e) when (e is System.IO.IOException or UnauthorizedAccessException or NvRedirect.Core.Netlink.NetlinkException)
            {
                _log.Error($"the configuration is in force but could not be saved to {Persist.Path}: {e.Message}; a restart would lose it");
                _outcome = new RequestOutcome(true, (_outcome.Error == null ? "" : _outcome.Error + "; ") + $"applied but not saved ({e.Message})");
            }
        }
    }

    /// <summary>
    /// Restores the configuration <see cref="Persist"/> holds, before the daemon serves: every saved datagram is applied
    /// to one copy of the (empty) state, through the same validation as any request, and committed only when all of
    /// them are valid. A file that cannot be read or applied (corrupt, foreign, refused) is renamed aside with the reason
    /// logged, and the daemon starts empty. Returns the reason when the file was refused, else null.
    /// </summary>
    public string? Restore()
    {
        if (Persist is not { } file) return null;
        return StateProblem = RestoreFrom(file);
    }

    private string? RestoreFrom(StateFile file)
    {
        List<byte[]>? datagrams;
        ConnectionList? learned;
        try { datagrams = file.Read(out learned); }
        catch (Exception e) when (e is System.IO.InvalidDataException or System.IO.IOException or UnauthorizedAccessException)
        {
            return Refuse(file, e.Message);
        }
        if (datagrams == null) { _log.Info($"no saved configuration at {file.Path}: starting empty"); return null; }
        var request = new Request { State = State.Clone() };
        foreach (var datagram in datagrams)
        {
            using var doc = JsonDocument.Parse(datagram, JsonOptions);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) { request.Errors.Add("a saved datagram is not an object"); continue; }
            foreach (var command in doc.RootElement.EnumerateObject())
            {
                try { Apply(command.Name, command.Value, request); }
                catch (CommandException e) { request.Errors.Add($"{command.Name}: {e.Message}"); }
                catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
                {
                    request.Errors.Add($"{command.Name}: unreadable argument ({e.Message})");
                }
            }
        }
        if (request.Errors.Count > 0)
        {
            foreach (var p in request.Prepared) p.Dispose();
            return Refuse(file, $"its configuration is refused: {string.Join("; ", request.Errors)}");
        }
        request.Notes.Clear();
        // learned connections first: the saved service port opens the ring in the commit below
        int relearned = learned == null ? 0 : Relearn(learned, request.State);
        Commit(request, [], save: false);
        file.Loaded(State, Learned());
        _log.Info($"restored the configuration saved in {file.Path}: {Summary()}, {relearned} learned connections");
        return null;
    }

    private string Refuse(StateFile file, string reason)
    {
        string aside;
        try { aside = $"set aside as {file.SetAside()}"; }
        catch (Exception e) when (e is System.IO.IOException or UnauthorizedAccessException) { aside = $"and could not be set aside ({e.Message})"; }
        _log.Error($"the saved configuration {file.Path} is not applied, nothing of it is: {reason}; {aside}. Starting empty: send the configuration again");
        return reason;
    }

    /// <summary>A one-line summary of the configuration, for the log.</summary>
    public string Summary()
    {
        var s = State;
        var b = new StringBuilder();
        b.Append($"service port {s.ServicePort ?? "none"}, {s.Workloads.Count} workloads ({s.Tap.Count(t => !t.Value)} inline), ");
        b.Append($"{s.InternalNets.Length} internal subnets");
        return b.ToString();
    }
}

/// <summary>Whether a request was applied, and why not (or what failed while applying it).</summary>
internal readonly record struct RequestOutcome(bool Accepted, string? Error)
{
    public static readonly RequestOutcome Success = new(true, null);
}

/// <summary>The outcome of each recent bound sender's last datagram; the oldest sender is forgotten beyond the capacity.</summary>
internal sealed class RecentOutcomes(int capacity)
{
    private readonly Dictionary<string, RequestOutcome> _bySender = [];
    private readonly Queue<string> _order = new();

    public RequestOutcome? Find(string sender) => _bySender.TryGetValue(sender, out var o) ? o : null;

    public void Remember(string sender, RequestOutcome outcome)
    {
        if (!_bySender.ContainsKey(sender))
        {
            _order.Enqueue(sender);
            while (_order.Count > capacity) _bySender.Remove(_order.Dequeue());
        }
        _bySender[sender] = outcome;
    }
}

/// <summary>What nvr_get_state reports about the daemon itself.</summary>
internal sealed record DaemonIdentity(int Pid, string Version, string Namespace, string SocketPath, string? LogPath, int SessionCapacity, DateTime Started)
{
    /// <summary>Set by a supervisor (see Supervisor.cs): it restarts this daemon, how often it did, why the last one died.</summary>
    public bool Supervised { get; init; }
    public int Restarts { get; init; }
    public string? LastExit { get; init; }

    /// <summary>Defaults for a controller that is not a daemon (tests).</summary>
    public static DaemonIdentity OfThisProcess() => new(Environment.ProcessId, typeof(Controller).Assembly.GetName().Version?.ToString() ?? "",
        "", DpWire.DefaultControlSocket, null, 0, DateTime.UtcNow);
}
