using System;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace NvRedirect.Datapath;

/// <summary>
/// sd_notify(3) without libsystemd: one datagram ("READY=1", "WATCHDOG=1", "STOPPING=1") to the unix socket systemd
/// names in NOTIFY_SOCKET (a path, or "@name" for an abstract one). Nothing happens outside systemd.
/// </summary>
internal static class SystemdNotify
{
    /// <summary>Half of WATCHDOG_USEC (systemd's advice: ping at least that often), or null when the unit has no watchdog.</summary>
    public static TimeSpan? WatchdogInterval
        => long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), NumberStyles.None, CultureInfo.InvariantCulture, out long usec) && usec > 0
            && (Environment.GetEnvironmentVariable("WATCHDOG_PID") is not { Length: > 0 } pid || pid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture))
            ? TimeSpan.FromMicroseconds(usec / 2) : null;

    /// <summary>Sends <paramref name="state"/>; false when there is no NOTIFY_SOCKET or it could not be reached.</summary>
    public static bool Send(string state)
    {
        var target = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(target)) return false;
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            var endpoint = new UnixDomainSocketEndPoint(target[0] == '@' ? "\0" + target[1..] : target);
            socket.SendTo(Encoding.UTF8.GetBytes(state), endpoint);
            return true;
        }
        catch (SocketException) { return false; }
    }
}
