using System;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;

namespace NvRedirect.Datapath.Control;

/// <summary>
/// nvr-dp --metrics: a minimal HTTP/1.1 responder on a loopback TCP socket that answers GET (and HEAD) /metrics with
/// the counters in Prometheus text format (NvRedirect.Core.Datapath.DpMetrics). It runs on a thread of its own and
/// serves one connection at a time; a request has <see cref="MaxRequestBytes"/> and <see cref="RequestTimeout"/> to
/// arrive whole, then the connection is answered (400, 404, 405, 408, 431) or dropped, and closed. It reads the
/// datapath only through <see cref="_describe"/>, which the control thread answers between datagrams: a slow or
/// hostile client delays only other scrapes, never the packet threads or the control loop.
/// </summary>
internal sealed class MetricsListener : IDisposable
{
    /// <summary>Largest request head (request line and headers) read; a longer one is answered 431.</summary>
    public const int MaxRequestBytes = 8192;
    /// <summary>How long a client has to send its request head, and to take the answer.</summary>
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(3);

    private readonly Socket _listener;
    private readonly Func<string?> _describe;
    private readonly Logger _log;
    private readonly byte[] _buffer = new byte[MaxRequestBytes];
    private Thread? _thread;
    private volatile bool _stopping;

    /// <summary>Where it listens.</summary>
    public IPEndPoint Endpoint { get; }
    /// <summary>Requests answered 200, and requests refused or dropped (bad, too big, too slow).</summary>
    public long Served;
    /// <summary>See <see cref="Served"/>.</summary>
    public long Refused;

    /// <summary>Binds <paramref name="endpoint"/> (loopback, checked by DpMetrics.ParseEndpoint); <paramref name="describe"/> returns the exposition text, null when the datapath did not answer in time.</summary>
    public MetricsListener(IPEndPoint endpoint, Func<string?> describe, Logger log)
    {
        _describe = describe;
        _log = log;
        _listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // SO_REUSEADDR alone: a restarted daemon rebinds past its predecessor's TIME_WAIT connections. (.NET's
            // ReuseAddress option also sets SO_REUSEPORT on Linux, which would let a second listener share the port.)
            _listener.SetRawSocketOption(1 /* SOL_SOCKET */, 2 /* SO_REUSEADDR */, BitConverter.GetBytes(1));
            _listener.Bind(endpoint);
            _listener.Listen(4);
        }
        catch (SocketException e)
        {
            _listener.Dispose();
            throw new InvalidOperationException($"cannot serve metrics on {Format(endpoint)}: {e.Message} ({e.SocketErrorCode}); choose another port with --metrics", e);
        }
        Endpoint = (IPEndPoint)_listener.LocalEndPoint!;
    }

    /// <summary>The endpoint as ADDRESS:PORT ([ADDRESS]:PORT for IPv6).</summary>
    public static string Format(IPEndPoint endpoint) => endpoint.ToString();

    /// <summary>Starts serving on a background thread.</summary>
    public void Start()
    {
        _thread = new Thread(Serve) { IsBackground = true, Name = "nvr-dp metrics" };
        _thread.Start();
    }

    private void Serve()
    {
        while (!_stopping)
        {
            Socket client;
            try
            {
                if (!_listener.Poll(TimeSpan.FromMilliseconds(500), SelectMode.SelectRead)) continue; // wake up to notice a stop
                client = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (_stopping) return;
                _log.Warn($"metrics: accept failed: {e.Message}");
                Thread.Sleep(100);
                continue;
            }
            using (client)
            {
                try { Answer(client); }
                catch (Exception e) when (e is SocketException or ObjectDisposedException or System.IO.IOException)
                {
                    Interlocked.Increment(ref Refused); // the client went away or was too slow to read the answer
                }
                catch (Exception e)
                {
                    Interlocked.Increment(ref Refused);
                    _log.Error($"metrics: answering a request failed: {e.Message}");
                }
            }
        }
    }

    private void Answer(Socket client)
    {
        client.SendTimeout = (int)RequestTimeout.TotalMilliseconds;
        var clock = Stopwatch.StartNew();
        int length = 0, headEnd = -1;
        while (headEnd < 0)
        {
            if (length == _buffer.Length) { Refuse(client, 431, "Request Header Fields Too Large", $"a request head of more than {MaxRequestBytes} bytes"); return; }
            var left = RequestTimeout - clock.Elapsed;
            if (left <= TimeSpan.Zero || !client.Poll(left, SelectMode.SelectRead)) { Refuse(client, 408, "Request Timeout", $"no complete request within {RequestTimeout.TotalSeconds:0} s"); return; }
            int n = client.Receive(_buffer, length, _buffer.Length - length, SocketFlags.None);
            if (n == 0) { Interlocked.Increment(ref Refused); return; } // closed before a whole request
            length += n;
            headEnd = _buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8);
            if (headEnd < 0 && _buffer.AsSpan(0, length).IndexOf("\n\n"u8) is int bare and >= 0) headEnd = bare; // tolerate bare LF (RFC 9112 2.2)
        }
        var head = _buffer.AsSpan(0, headEnd);
        int lineEnd = head.IndexOf((byte)'\n');
        var line = lineEnd < 0 ? head : head[..lineEnd];
        if (line.Length > 0 && line[^1] == '\r') line = line[..^1];
        if (!System.Text.Unicode.Utf8.IsValid(line)) { Refuse(client, 400, "Bad Request", "a request line that is not text"); return; }
        var parts = Encoding.ASCII.GetString(line).Split(' ');
        if (parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal) || parts[1].Length == 0)
        {
            Refuse(client, 400, "Bad Request", "a request line that is not METHOD TARGET HTTP/1.x");
            return;
        }
        string method = parts[0], path = parts[1].Split('?', 2)[0];
        if (path != "/metrics") { Refuse(client, 404, "Not Found", "only /metrics is served"); return; }
        if (method != "GET" && method != "HEAD") { Refuse(client, 405, "Method Not Allowed", "only GET and HEAD are served", "Allow: GET, HEAD\r\n"); return; }
        var text = _describe();
        if (text == null) { Refuse(client, 503, "Service Unavailable", "the datapath's control thread did not answer in time; try again"); return; }
        Send(client, 200, "OK", Core.Datapath.DpMetrics.ContentType, Encoding.UTF8.GetBytes(text), method == "HEAD");
        Interlocked.Increment(ref Served);
    }

    private void Refuse(Socket client, int status, string reason, string why, string extraHeaders = "")
    {
        Interlocked.Increment(ref Refused);
        Send(client, status, reason, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes($"nvr-dp metrics: {status} {reason}: {why}\n"), false, extraHeaders);
    }

    private static void Send(Socket client, int status, string reason, string contentType, byte[] body, bool headOnly, string extraHeaders = "")
    {
        var header = Encoding.ASCII.GetBytes($"HTTP/1.1 {status} {reason}\r\nContent-Type: {contentType}\r\nContent-Length: {body.Length}\r\n{extraHeaders}Connection: close\r\n\r\n");
        client.Send(header);
        if (!headOnly) client.Send(body);
        client.Shutdown(SocketShutdown.Send);
        Drain(client);
    }

    // Reads (and drops) what the client still sends, briefly and boundedly, before the socket is closed: closing with
    // unread bytes would send a RST, which can destroy the answer in the client's buffer before it reads it.
    private static void Drain(Socket client)
    {
        var scratch = new byte[4096];
        var clock = Stopwatch.StartNew();
        int total = 0;
        while (total < 64 * 1024 && clock.Elapsed < TimeSpan.FromSeconds(1))
        {
            if (!client.Poll(TimeSpan.FromMilliseconds(200), SelectMode.SelectRead)) return;
            int n = client.Receive(scratch, SocketFlags.None);
            if (n <= 0) return; // the client closed its side
            total += n;
        }
    }

    /// <summary>Stops listening; a request being answered is cut short.</summary>
    public void Dispose()
    {
        _stopping = true;
        _listener.Dispose();
        _thread?.Join(TimeSpan.FromSeconds(2));
    }
}
