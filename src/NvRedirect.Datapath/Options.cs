using System;

using NvRedirect.Core.Datapath;
using NvRedirect.Core.Protocol;

namespace NvRedirect.Datapath;

/// <summary>nvr-dp's command line.</summary>
internal sealed class Options
{
    /// <summary>The default control socket: in nvr-dp's private directory, named after the namespace.</summary>
    public static string DefaultSocket(string ns) => DatapathPaths.DefaultSocket(ns);
    /// <summary>Where a daemon started in the background logs when --log is not given.</summary>
    public const string DefaultBackgroundLog = "/var/log/nvr-dp.log";

    /// <summary>Named network namespace for all packet work ("" = the one nvr-dp runs in).</summary>
    public string Namespace { get; private set; } = "";
    public string SocketPath { get; private set; } = "";
    /// <summary>--control-group: the group id whose members may send commands besides root (null: root only).</summary>
    public int? ControlGroup { get; private set; }
    public string? LogPath { get; private set; }
    public bool Foreground { get; private set; }
    /// <summary>--supervise: run the daemon as a child and restart it when it dies (Supervisor.cs).</summary>
    public bool Supervise { get; private set; }
    public int Sessions { get; private set; } = 65536;
    public int Connections { get; private set; } = 16384;
    public bool Help { get; private set; }
    /// <summary>Where connection reports go (null: none are sent); sent only while a trusted socket is there.</summary>
    public string? ReportSocket { get; private set; } = Control.ConnectionReporter.DefaultSocket;
    /// <summary>A group (gid) whose report socket is trusted besides root's.</summary>
    public uint? ReportGroup { get; private set; }
    /// <summary>--strict: start with the strict semantics and ICMP policed (the module's Start-Datapath default) instead of NeuVector dp's.</summary>
    public bool Strict { get; private set; }
    /// <summary>--metrics: the loopback address and port to serve GET /metrics on (null: no listener).</summary>
    public System.Net.IPEndPoint? Metrics { get; private set; }

    public const string Usage =
        "usage: dotnet nvr-dp.dll [--netns NAME] [--socket PATH] [--control-group GROUP] [--log FILE] [--foreground] [--supervise] [--sessions N] [--connections N]\n" +
        "                   [--report-socket PATH | --no-reports] [--report-group GID] [--strict] [--metrics ADDRESS:PORT]\n" +
        "  --netns NAME     open service ports inside the named network namespace (/run/netns/NAME)\n" +
        "  --socket PATH    control socket (unix datagram, mode 0600); default " + DatapathPaths.Directory + "/dp-NAME.sock\n" +
        "                   (" + DatapathPaths.Directory + "/dp.sock without --netns; NeuVector's is " + DpWire.DefaultControlSocket + ")\n" +
        "  --control-group GROUP  a group (name or id) whose members may send commands besides root; the socket becomes 0660\n" +
        "  --log FILE       append the log to FILE (default: stderr in the foreground, " + DefaultBackgroundLog + " in the background)\n" +
        "  --foreground     stay attached to the terminal and log to stderr too\n" +
        "  --supervise      run the daemon as a child and restart it within a second when it dies (backing off while it keeps dying)\n" +
        "  --sessions N     session table size (preallocated; the session closest to expiring is evicted when full); default 65536\n" +
        "  --connections N  connection table size (preallocated; when full, never-answered entries are evicted first); default 16384\n" +
        "  --report-socket PATH  send NeuVector CONNECTION reports every 6 s to this unix datagram socket while it exists and is\n" +
        "                   owned by root (or --report-group); default " + Control.ConnectionReporter.DefaultSocket + "\n" +
        "  --no-reports     send no connection reports\n" +
        "  --report-group GID  also trust a report socket owned by this group\n" +
        "  --strict         start with the strict semantics: ICMP policed, no grace period for addresses the agent has not\n" +
        "                   named, inbound UDP decided as sent (default: NeuVector dp's; nvr_cfg_strict switches at run time)\n" +
        "  --metrics ADDRESS:PORT  serve the counters in Prometheus text format on http://ADDRESS:PORT/metrics; loopback\n" +
        "                   addresses only (127.0.0.1:9464, [::1]:9464): the listener has no authentication\n";

    /// <summary>Parses <paramref name="args"/>; throws ArgumentException with a readable message.</summary>
    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal)
                ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--netns":
                    o.Namespace = Value();
                    if (NvRedirect.Core.Namespaces.NetworkNamespace.Validate(o.Namespace) is { } problem) throw new ArgumentException($"--netns: {problem}");
                    break;
                case "--socket": o.SocketPath = Value(); break;
                case "--log": o.LogPath = Value(); break;
                case "--control-group":
                    var group = Value();
                    o.ControlGroup = ResolveGroup(group) ?? throw new ArgumentException($"--control-group: no group {group} (give a name from /etc/group or a number)");
                    break;
                case "--foreground": o.Foreground = true; break;
                case "--supervise": o.Supervise = true; break;
                case "--sessions":
                    var text = Value();
                    if (!int.TryParse(text, out int n) || n < 1 || n > 1 << 24) throw new ArgumentException($"--sessions: {text} is not a number from 1 to {1 << 24}");
                    o.Sessions = n;
                    break;
                case "--connections":
                    var count = Value();
                    if (!int.TryParse(count, out int c) || c < 1 || c > 1 << 22) throw new ArgumentException($"--connections: {count} is not a number from 1 to {1 << 22}");
                    o.Connections = c;
                    break;
                case "--report-socket":
                    o.ReportSocket = Value();
                    if (o.ReportSocket.Length == 0 || System.Text.Encoding.UTF8.GetByteCount(o.ReportSocket) > 107)
                        throw new ArgumentException("--report-socket: give a path of 1 to 107 bytes");
                    break;
                case "--no-reports": o.ReportSocket = null; break;
                case "--strict": o.Strict = true; break;
                case "--report-group":
                    var gid = Value();
                    if (!uint.TryParse(gid, out uint g)) throw new ArgumentException($"--report-group: {gid} is not a group id (a number)");
                    o.ReportGroup = g;
                    break;
                case "--metrics":
                    var endpoint = Value();
                    try { o.Metrics = DpMetrics.ParseEndpoint(endpoint); }
                    catch (ArgumentException e) { throw new ArgumentException($"--metrics: {e.Message}"); }
                    break;
                case "-h": case "--help": o.Help = true; break;
                default: throw new ArgumentException($"unknown argument {args[i]}");
            }
        }
        if (o.SocketPath.Length == 0) o.SocketPath = DefaultSocket(o.Namespace);
        if (System.Text.Encoding.UTF8.GetByteCount(o.SocketPath) > 107)
            throw new ArgumentException($"the control socket path {o.SocketPath} is longer than 107 bytes (a long namespace name?): give a shorter one with --socket");
        return o;
    }

    private static int? ResolveGroup(string text)
    {
        if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id)) return id;
        foreach (var line in System.IO.File.ReadLines("/etc/group"))
        {
            var fields = line.Split(':');
            if (fields.Length >= 3 && fields[0] == text && int.TryParse(fields[2], System.Globalization.CultureInfo.InvariantCulture, out int gid)) return gid;
        }
        return null;
    }
}
