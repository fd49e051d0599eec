using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using NvRedirect.Core.Interop;
using NvRedirect.Core.Netlink;
using NvRedirect.Core.Protocol;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace NvRedirect.Core.Datapath;

/// <summary>
/// A client of the datapath's control socket, as NeuVector's agent is one: a unix datagram socket bound to a path of
/// its own (/run/nvredirect/client.PID.RANDOM in nvr-dp's private directory, mode 0600 from the first instant, removed on dispose) so replies can reach
/// it, connected to the control socket (so only the datapath's datagrams arrive), one JSON object per datagram out,
/// binary replies in. Queries wait at most <see cref="Timeout"/>.
/// </summary>
public sealed unsafe class DpClient : IDisposable
{
    /// <summary>Where client sockets are bound: this prefix, the process id, a random suffix.</summary>
    public const string ClientPathPrefix = DatapathPaths.ClientPrefix;
    /// <summary>How long a query waits for its answer unless told otherwise (NeuVector's agent waits 5 s).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    private const int AddressSize = 110, PathCapacity = 108, ReceiveBufferSize = 65536;
    private readonly SafeFd _fd;
    private readonly byte[] _server;
    private readonly byte[] _buffer = new byte[ReceiveBufferSize];
    private bool _disposed, _connected;

    /// <summary>The datapath's control socket.</summary>
    public string ControlSocket { get; }
    /// <summary>This client's own socket path.</summary>
    public string LocalPath { get; }
    /// <summary>How long a query waits.</summary>
    public TimeSpan Timeout { get; }

    private DpClient(SafeFd fd, string controlSocket, string localPath, TimeSpan timeout)
    {
        _fd = fd;
        ControlSocket = controlSocket;
        LocalPath = localPath;
        Timeout = timeout;
        _server = Address(controlSocket);
    }

    /// <summary>Opens a client of the datapath serving <paramref name="controlSocket"/> (an absolute path).</summary>
    public static DpClient Open(string controlSocket, TimeSpan? timeout = null)
    {
        if (string.IsNullOrEmpty(controlSocket)) throw new ArgumentException("The control socket path is empty.");
        if (Encoding.UTF8.GetByteCount(controlSocket) >= PathCapacity)
            throw new ArgumentException($"The control socket path {controlSocket} is longer than {PathCapacity - 1} bytes, which a unix socket address cannot hold.");
        DatapathPaths.Ensure(); // replies come back to a socket only root can reach
        int raw = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (raw < 0) throw SyscallException.FromLastError("open a datapath client socket");
        var fd = new SafeFd(raw);
        try
        {
            // the socket inode's mode is what bind() gives the path (minus umask): 0600 from the first instant
            if (fchmod(fd.Fd, (mode_t)0x180) < 0) throw SyscallException.FromLastError("set the client socket's mode");
            var wait = timeout ?? DefaultTimeout;
            long* tv = stackalloc long[2]; // struct timeval { tv_sec; tv_usec } on x86-64
            tv[0] = (long)wait.TotalSeconds;
            tv[1] = wait.Milliseconds * 1000L;
            setsockopt(fd.Fd, SOL_SOCKET, SO_SNDTIMEO, tv, 16); // a datapath that stops reading must not hang us
            int size = 1 << 20;
            setsockopt(fd.Fd, SOL_SOCKET, SO_RCVBUF, &size, 4);
            for (int attempt = 0; ; attempt++)
            {
                string path = $"{ClientPathPrefix}{Environment.ProcessId}.{Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)).ToLowerInvariant()}";
                var addr = Address(path);
                int rc;
                fixed (byte* a = addr) rc = bind(fd.Fd, (sockaddr*)a, (uint)addr.Length);
                if (rc == 0) return new DpClient(fd, controlSocket, path, wait);
                int errno = Native.LastErrno;
                if (errno != EADDRINUSE || attempt >= 8) throw new SyscallException(errno, $"bind the datapath client socket {path}");
            }
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    private static byte[] Address(string path)
    {
        var b = new byte[2 + Encoding.UTF8.GetByteCount(path) + 1];
        BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)AF_UNIX);
        Encoding.UTF8.GetBytes(path, b.AsSpan(2));
        return b;
    }

    // connect() once, as NeuVector's agent does: the kernel then delivers only the datapath's datagrams to this socket
    private int Connect()
    {
        if (_connected) return 0;
        int rc;
        fixed (byte* a = _server) rc = connect(_fd.Fd, (sockaddr*)a, (uint)_server.Length);
        if (rc < 0) return Native.LastErrno;
        _connected = true;
        return 0;
    }

    /// <summary>Datagrams this thread sent to any datapath (tests count them per operation).</summary>
    [ThreadStatic] internal static long DatagramsSent;
    /// <summary>Workload entries this thread read from state replies (tests check a change does not read every workload back).</summary>
    [ThreadStatic] internal static long WorkloadsRead;

    /// <summary>More MACs than this in one state filter ask for the whole state (a filter must fit in one datagram).</summary>
    private const int MaxStateFilter = 256;

    private int SendRaw(ReadOnlySpan<byte> datagram)
    {
        DatagramsSent++;
        int errno = Connect();
        if (errno != 0) return errno;
        fixed (byte* d = datagram)
            while (true)
            {
                if (send(_fd.Fd, d, datagram.Length, 0) >= 0) return 0;
                errno = Native.LastErrno;
                if (errno != EINTR) return errno;
            }
    }

    /// <summary>Sends one datagram to the datapath.</summary>
    public void Send(ReadOnlySpan<byte> datagram)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int errno = SendRaw(datagram);
        if (errno == 0) return;
        if (errno == ENOENT) throw new DatapathNotRespondingException(ControlSocket, "it does not exist");
        if (errno == ECONNREFUSED) throw new DatapathNotRespondingException(ControlSocket, "nothing is bound to it: its daemon is gone");
        if (errno == ENOTDIR) throw new DatapathNotRespondingException(ControlSocket, "a part of the path is not a directory");
        if (errno == EAGAIN) throw new DatapathNotRespondingException(ControlSocket, $"its daemon has not read its requests for {Timeout.TotalSeconds:0.#} s");
        if (errno == EMSGSIZE) throw new ArgumentException($"A message of {datagram.Length} bytes is too large for one datagram.");
        throw new SyscallException(errno, $"send to the datapath on {ControlSocket}");
    }

    /// <summary>Waits until <paramref name="deadline"/> (Stopwatch ticks) for a reply datagram; null when none came.</summary>
    public byte[]? Receive(long deadline)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (true)
        {
            long left = (deadline - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
            var pfd = new pollfd { fd = _fd.Fd, events = POLLIN };
            int r = Native.poll(&pfd, 1, (int)Math.Clamp(left, 0, int.MaxValue));
            if (r < 0)
            {
                if (Native.LastErrno == EINTR) continue;
                throw SyscallException.FromLastError("wait for a datapath reply");
            }
            if (r == 0) return null;
            long n;
            fixed (byte* b = _buffer) n = recv(_fd.Fd, b, _buffer.Length, MSG_TRUNC | MSG_DONTWAIT);
            if (n < 0)
            {
                int errno = Native.LastErrno;
                if (errno == EAGAIN || errno == EINTR) continue;
                throw new SyscallException(errno, "receive a datapath reply");
            }
            if (n > _buffer.Length) throw new DatapathProtocolException($"a reply of {n} bytes is larger than any the datapath sends");
            return _buffer.AsSpan(0, (int)n).ToArray();
        }
    }

    private long Deadline() => Stopwatch.GetTimestamp() + (long)(Timeout.TotalSeconds * Stopwatch.Frequency);

    private byte[] Next(long deadline, bool first)
        => Receive(deadline) ?? throw (first
            ? new DatapathNotRespondingException(ControlSocket, $"no answer within {Timeout.TotalSeconds:0.#} s")
            : new DatapathProtocolException($"the datapath on {ControlSocket} stopped answering in the middle of a reply"));

    /// <summary>Whether a datapath answers a keep-alive (false when nothing answers).</summary>
    public bool KeepAlive() => Probe() == DpProbe.Answered;

    /// <summary>Probes the control socket with the protocol's one keep-alive probe (<see cref="KeepAliveProbe"/>), waiting up to <see cref="Timeout"/>.</summary>
    public DpProbe Probe()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return KeepAliveProbe.Run(ControlSocket, Timeout);
    }

    /// <summary>The datapath's state, session count and device counters (one request, three replies).</summary>
    public DatapathInfo Query()
    {
        Send(DpRequests.Query());
        var deadline = Deadline();
        var count = DpReplyReader.SessionCount(Next(deadline, true), ControlSocket);
        var counters = DpReplyReader.DeviceCounters(Next(deadline, false), ControlSocket);
        return ReadState(deadline, first: false, out _, out _).With(count, counters);
    }

    /// <summary>The datapath's state alone; with <paramref name="macs"/>, only those workloads (by MAC or alias; an empty list: none).</summary>
    public DatapathInfo State(IReadOnlyCollection<string>? macs = null)
    {
        Send(DpRequests.State(Filter(macs)));
        return ReadState(Deadline(), first: true, out _, out _);
    }

    private static IReadOnlyCollection<string>? Filter(IReadOnlyCollection<string>? macs) => macs is { Count: > MaxStateFilter } ? null : macs;

    private DatapathInfo ReadState(long deadline, bool first, out bool? accepted, out string? error)
    {
        var chunks = new List<byte[]>();
        while (true)
        {
            var d = Next(deadline, first && chunks.Count == 0);
            chunks.Add(d);
            if (!DpReplyReader.Header(d).More) break;
        }
        return Counted(DpReplyReader.State(DpReplyReader.JoinState(chunks), out accepted, out error));
    }

    private static DatapathInfo Counted(DatapathInfo state)
    {
        WorkloadsRead += state.Workloads.Length;
        return state;
    }

    /// <summary>The session table (ctrl_list_session: datagrams until the one with More=0).</summary>
    public List<DpSession> ListSessions()
    {
        Send(DpRequests.ListSessions());
        var deadline = Deadline();
        var sessions = new List<DpSession>();
        bool more = true;
        for (bool first = true; more; first = false) sessions.AddRange(DpReplyReader.SessionList(Next(deadline, first), ControlSocket, out more));
        return sessions;
    }

    /// <summary>The datapath's traffic statistics (ctrl_stats_device, DEVICE_STATS).</summary>
    public DpTrafficStatistic DeviceStatistics()
    {
        Send(DpRequests.DeviceStatistics());
        return DpReplyReader.Statistic(Next(Deadline(), true), MessageKind.DeviceStats, ControlSocket, null);
    }

    /// <summary>One workload's traffic statistics (ctrl_stats_macs, MAC_STATS); <paramref name="mac"/> is its registered MAC.</summary>
    public DpTrafficStatistic MacStatistics(string mac)
    {
        Send(DpRequests.MacStatistics(mac));
        return DpReplyReader.Statistic(Next(Deadline(), true), MessageKind.MacStats, ControlSocket, mac);
    }

    /// <summary>The meters (ctrl_list_meter: METER_LIST datagrams until the one with More=0).</summary>
    public List<DpMeter> Meters()
    {
        Send(DpRequests.ListMeters());
        var deadline = Deadline();
        var meters = new List<DpMeter>();
        bool more = true;
        for (bool first = true; more; first = false) meters.AddRange(DpReplyReader.Meters(Next(deadline, first), ControlSocket, out more));
        return meters;
    }

    /// <summary>Current sessions by protocol (ctrl_count_session).</summary>
    public DpSessionCount CountSessions()
    {
        Send(DpRequests.CountSessions());
        return DpReplyReader.SessionCount(Next(Deadline(), true), ControlSocket);
    }

    /// <summary>
    /// Sends <paramref name="request"/>, then a keep-alive with nvr_get_state in a second datagram. The replies that
    /// arrive before that keep-alive's answer belong to the request; the state after it tells whether the request was
    /// applied (nvr-dp reports each sender's previous outcome). A datapath without nvr_get_state leaves
    /// <see cref="DpExchange.Accepted"/> null. <paramref name="stateMacs"/> limits the workloads that state reports
    /// (null: all, empty: none), so acknowledging a change costs the same however many workloads the datapath serves.
    /// </summary>
    public DpExchange Exchange(ReadOnlySpan<byte> request, IReadOnlyCollection<string>? stateMacs = null)
    {
        uint seq = (uint)Random.Shared.Next(1, int.MaxValue);
        Send(request);
        Send(DpRequests.Sync(seq, Filter(stateMacs)));
        var deadline = Deadline();
        var replies = new List<byte[]>();
        while (true)
        {
            var d = Next(deadline, replies.Count == 0);
            if (Replies.IsKeepAlive(d, seq)) break;
            replies.Add(d);
        }
        // what follows the marker is its state; a datapath that does not know nvr_get_state sends nothing more
        var first = Receive(deadline);
        if (first == null) return new DpExchange { Replies = replies };
        var chunks = new List<byte[]> { first };
        while (DpReplyReader.Header(chunks[^1]).More) chunks.Add(Next(deadline, false));
        var state = Counted(DpReplyReader.State(DpReplyReader.JoinState(chunks), out var accepted, out var error));
        return new DpExchange { Replies = replies, Accepted = accepted, Error = error, State = state };
    }

    /// <summary>
    /// Sends a request that must be applied; throws <see cref="DatapathRejectedException"/> when it was not. Returns the
    /// state after it, with the workloads of <paramref name="report"/> only (none by default: the acknowledgement does
    /// not read every workload back).
    /// </summary>
    public DatapathInfo Apply(ReadOnlySpan<byte> request, IReadOnlyCollection<string>? report = null)
    {
        var result = Exchange(request, report ?? []);
        if (result.Accepted == false) throw new DatapathRejectedException(ControlSocket, result.Error ?? "no reason given");
        return result.State ?? throw new DatapathProtocolException($"the datapath on {ControlSocket} does not report its state (it is not nvr-dp?)");
    }

    /// <summary>
    /// Sends a query that answers with one of nvr-dp's chunked JSON replies of <paramref name="kind"/> and returns its
    /// joined body with the state after it. A refused query (an unregistered MAC, a daemon without the extension)
    /// throws <see cref="DatapathRejectedException"/> instead of waiting for a reply that never comes.
    /// </summary>
    public (byte[] Json, DatapathInfo State) Ask(ReadOnlySpan<byte> request, byte kind, string what, IReadOnlyCollection<string>? stateMacs = null)
    {
        var result = Exchange(request, stateMacs);
        if (result.Accepted == false) throw new DatapathRejectedException(ControlSocket, result.Error ?? "no reason given");
        var state = result.State ?? throw new DatapathProtocolException($"the datapath on {ControlSocket} does not report its state (it is not nvr-dp?)");
        if (result.Replies.Count == 0) throw new DatapathProtocolException($"the datapath on {ControlSocket} accepted the {what} query but sent no {what} reply");
        return (DpReplyReader.Join(result.Replies, kind, what), state);
    }

    /// <summary>The policies of the workloads that have one (nvr_get_policy; <paramref name="macs"/> filters), and the state after the query (with the same workloads).</summary>
    public (List<DpPolicy> Policies, DatapathInfo State) Policies(IEnumerable<string>? macs = null)
    {
        var list = macs?.ToList();
        var (json, state) = Ask(DpRequests.GetPolicy(list), MessageKind.Policy, "policy", list);
        return (DpReplyReader.Policies(json, ControlSocket), state);
    }

    /// <summary>The connection table (nvr_list_connection; <paramref name="macs"/> filters), with the table's capacity and evictions.</summary>
    public List<DpConnection> Connections(IEnumerable<string>? macs, out long capacity, out long evicted)
    {
        var (json, _) = Ask(DpRequests.ListConnections(macs), MessageKind.Connections, "connection", []);
        return DpReplyReader.Connections(json, ControlSocket, out capacity, out evicted);
    }

    /// <summary>Closes the socket and removes its path.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _fd.Dispose();
        Native.unlink(LocalPath);
    }
}
