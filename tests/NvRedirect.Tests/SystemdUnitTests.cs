using System;
using System.IO;
using System.Linq;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The shipped systemd unit (src/systemd/nvr-dp@.service) passes `systemd-analyze verify` without a single complaint
/// (the tool exits 0 even for values it ignores, so any output fails), and says what supervision needs.
/// </summary>
public sealed class SystemdUnitTests : IDisposable
{
    private static readonly string Unit = Path.Combine(TestRun.Root, "src", "systemd", "nvr-dp@.service");
    private readonly string _dir = Directory.CreateTempSubdirectory("nvr-unit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // an instance (nvr-dp@agent-ns.service, a link to the template) is what verify can load
    private (int Code, string Output) Verify(string text)
    {
        File.WriteAllText(Path.Combine(_dir, "nvr-dp@.service"), text);
        string instance = Path.Combine(_dir, "nvr-dp@agent-ns.service");
        if (!File.Exists(instance)) File.CreateSymbolicLink(instance, "nvr-dp@.service");
        var (code, output, error) = Tool.Run("systemd-analyze", ["verify", instance]);
        return (code, (output + error).Trim());
    }

    [Fact]
    public void The_unit_verifies_cleanly_and_restarts_with_a_watchdog()
    {
        var text = File.ReadAllText(Unit);
        var (code, output) = Verify(text);
        Assert.True(code == 0 && output.Length == 0, $"systemd-analyze verify: exit {code}: {output}");
        var lines = text.Split('\n').Select(l => l.Trim()).ToArray();
        Assert.Contains("Type=notify", lines);
        Assert.Contains("Restart=always", lines);
        Assert.Contains(lines, l => l.StartsWith("WatchdogSec=", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("ExecStart=", StringComparison.Ordinal) && l.Contains("--netns %I --foreground") && !l.Contains("--supervise"));
        Assert.Contains("RuntimeDirectoryMode=0700", lines);
        Assert.Contains("RuntimeDirectoryPreserve=yes", lines);
        Assert.Contains("NoNewPrivileges=yes", lines);
        Assert.Contains("ProtectSystem=strict", lines);
    }

    [Fact]
    public void A_broken_unit_is_caught()
    {
        var (_, output) = Verify(File.ReadAllText(Unit).Replace("Restart=always", "Restart=sometimes", StringComparison.Ordinal));
        Assert.Contains("Failed to parse service restart specifier", output);
    }
}
