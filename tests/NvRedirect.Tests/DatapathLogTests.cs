using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using NvRedirect.Datapath;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// The daemon's log escapes what it is given: strings from control datagrams (interface names, MACs, any JSON string,
/// the parser's own messages about them) cannot forge a log line or smuggle control characters into one.
/// </summary>
public class DatapathLogTests
{
    [Theory]
    [InlineData("plain text 1a:27:f3:87:3a:27 vth", "plain text 1a:27:f3:87:3a:27 vth")]
    [InlineData("vth\n2026-01-01T00:00:00.000Z nvr-dp[1] INFO forged", @"vth\n2026-01-01T00:00:00.000Z nvr-dp[1] INFO forged")]
    [InlineData("a\r\nb\tc\0d", @"a\r\nb\tc\0d")]
    [InlineData("\u001b[31mred\u007f", @"\u{001B}[31mred\u{007F}")]
    [InlineData("next\u0085line\u2028sep\u2029par", @"next\u{0085}line\u{2028}sep\u{2029}par")]
    [InlineData("evil\u202egnp.exe\u2066", @"evil\u{202E}gnp.exe\u{2066}")]
    [InlineData(@"C:\path\n", @"C:\\path\\n")]
    public void Escape_writes_control_characters_lone_surrogates_and_backslashes_as_text(string raw, string logged)
        => Assert.Equal(logged, Logger.Escape(raw));

    [Fact]
    public void Escape_writes_lone_surrogates_as_code_units_and_keeps_pairs()
    {
        // built at run time: attribute strings cannot hold lone surrogates
        string raw = "lone " + (char)0xd800 + " high, lone " + (char)0xdc00 + " low, " + (char)0xd800 + (char)0xd83d + (char)0xde00 + " pair kept";
        Assert.Equal("lone \\u{D800} high, lone \\u{DC00} low, \\u{D800}\ud83d\ude00 pair kept", Logger.Escape(raw));
    }

    [Fact]
    public void Escape_returns_clean_text_itself()
    {
        const string clean = "ctrl_add_srvc_port: serving vth";
        Assert.Same(clean, Logger.Escape(clean));
    }

    [Fact]
    public void A_datagram_cannot_forge_a_log_line_or_put_control_characters_in_the_log_file()
    {
        var path = Path.Combine(Path.GetTempPath(), $"nvr-log-test-{Guid.NewGuid():N}.log");
        try
        {
            var log = new Logger(path, stderr: false);
            using (log)
            {
                var rig = new DatapathControlTests.Rig();
                var controller = new NvRedirect.Datapath.Control.Controller(rig.Engine, FakeServicePort.Opener(rig.Ports, "vth"), log);
                foreach (var datagram in new[]
                {
                    """{"ctrl_add_srvc_port": {"iface": "vth\n2026-01-01T00:00:00.000Z nvr-dp[1] INFO forged port", "jumboframe": false}}""",
                    """{"ctrl_add_mac": {"iface": "vth\u0000", "mac": "1a:27:f3:87:3a:27\r\nINFO forged mac", "ucmac": "4e:65:75:56:00:b4", "bcmac": "ff:ff:ff:00:00:b4"}}""",
                    """{"ctrl_set_debug": {"categories": ["ctrl\u001b[2J\u2028INFO forged category"]}}""",
                    """{"no such command\nINFO forged command": {}}""",
                    "{\"ctrl_keep_alive\": {\"seq_num\": 1}\n\u0007}",
                })
                    controller.Handle(System.Text.Encoding.UTF8.GetBytes(datagram));
                Assert.Equal(5, controller.Rejected);
            }
            var lines = File.ReadAllLines(path);
            Assert.NotEmpty(lines);
            var stamp = new Regex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z nvr-dp\[\d+\] (INFO|WARN|ERROR) ");
            Assert.All(lines, l => Assert.Matches(stamp, l));
            Assert.All(lines, l => Assert.DoesNotContain(l, c => char.IsControl(c) || c is '\u2028' or '\u2029'));
            Assert.DoesNotContain(lines, l => l.Contains("nvr-dp[1]") && l.StartsWith("2026-01-01", StringComparison.Ordinal));
            var text = File.ReadAllText(path);
            Assert.Contains(@"vth\n2026-01-01T00:00:00.000Z nvr-dp[1] I", text);   // what was sent is visible, escaped (and clipped)
            Assert.Contains(@"\r\nINFO forged mac", text);
            Assert.Contains(@"no such command\nINFO forged command", text);
            Assert.Contains(@"\u{001B}[2J\u{2028}INFO forged category", text);
        }
        finally { File.Delete(path); }
    }
}
