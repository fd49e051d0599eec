using System;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using NvRedirect.Datapath;
using NvRedirect.Datapath.Control;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// nvr-dp's metrics listener on a loopback port of its own (port 0: the kernel picks a free one) with a fixed
/// description, and the control thread's mailbox it reads the datapath through. Real TCP, no daemon.
/// </summary>
public class MetricsListenerTests
{
    private static (MetricsListener Listener, Logger Log) Start(Func<string?> describe)
    {
        var log = new Logger(null, false, keepInMemory: true);
        var listener = new MetricsListener(new IPEndPoint(IPAddress.Loopback, 0), describe, log);
        listener.Start();
        return (listener, log);
    }

    // sends REQUEST (as is) and returns the whole answer
    private static string Exchange(IPEndPoint at, string request)
    {
        using var client = new TcpClient();
        client.Connect(at);
        var stream = client.GetStream();
        stream.ReadTimeout = 10000;
        var bytes = Encoding.ASCII.GetBytes(request);
        stream.Write(bytes);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    [Fact]
    public void Get_metrics_answers_200_with_the_exposition_text_and_its_length()
    {
        const string text = "nvr_dp_workloads{socket=\"s\",namespace=\"\"} 1\n";
        var (listener, log) = Start(() => text);
        using (log) using (listener)
        {
            var answer = Exchange(listener.Endpoint, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.StartsWith("HTTP/1.1 200 OK\r\n", answer);
            Assert.Contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", answer);
            Assert.Contains($"Content-Length: {text.Length}\r\n", answer);
            Assert.EndsWith("\r\n\r\n" + text, answer);
            var head = Exchange(listener.Endpoint, "HEAD /metrics?x=1 HTTP/1.1\r\n\r\n");
            Assert.StartsWith("HTTP/1.1 200 OK\r\n", head);
            Assert.EndsWith("\r\n\r\n", head);   // no body
            // counted once the answer is out, which the client may see first: wait for it, bounded
            Assert.True(SpinWait.SpinUntil(() => Interlocked.Read(ref listener.Served) == 2, TimeSpan.FromSeconds(10)), $"served {listener.Served}");
        }
    }

    [Theory]
    [InlineData("POST /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed")]
    [InlineData("GET / HTTP/1.1\r\n\r\n", "404 Not Found")]
    [InlineData("GET /metrics\r\n\r\n", "400 Bad Request")]
    [InlineData("\u0001\u0002garbage\r\n\r\n", "400 Bad Request")]
    public void Other_requests_get_an_error_status_and_the_listener_keeps_serving(string request, string status)
    {
        var (listener, log) = Start(() => "a 1\n");
        using (log) using (listener)
        {
            Assert.StartsWith($"HTTP/1.1 {status}\r\n", Exchange(listener.Endpoint, request));
            Assert.StartsWith("HTTP/1.1 200 OK\r\n", Exchange(listener.Endpoint, "GET /metrics HTTP/1.1\r\n\r\n"));
        }
    }

    [Fact]
    public void A_request_head_over_the_limit_gets_431_without_being_read_whole()
    {
        var (listener, log) = Start(() => "a 1\n");
        using (log) using (listener)
        {
            var answer = Exchange(listener.Endpoint, "GET /metrics HTTP/1.1\r\nX: " + new string('a', MetricsListener.MaxRequestBytes) + "\r\n\r\n");
            Assert.StartsWith("HTTP/1.1 431 ", answer);
        }
    }

    [Fact]
    public void A_datapath_that_does_not_answer_in_time_gives_503()
    {
        var (listener, log) = Start(() => null);
        using (log) using (listener)
            Assert.StartsWith("HTTP/1.1 503 ", Exchange(listener.Endpoint, "GET /metrics HTTP/1.1\r\n\r\n"));
    }

    [Fact]
    public void A_port_in_use_is_refused_with_its_endpoint()
    {
        var (listener, log) = Start(() => "a 1\n");
        using (log) using (listener)
        {
            var e = Assert.Throws<InvalidOperationException>(() => new MetricsListener(listener.Endpoint, () => "", log));
            Assert.Contains($"cannot serve metrics on {listener.Endpoint}", e.Message);
        }
    }

    [Fact]
    public void The_mailbox_runs_work_on_the_thread_that_drains_it_and_gives_up_after_its_timeout()
    {
        using var log = new Logger(null, false, keepInMemory: true);
        using var mailbox = new ControlMailbox();
        Assert.Null(mailbox.Invoke(() => "late", TimeSpan.FromMilliseconds(50)));   // nobody drains it
        mailbox.RunPending(log);                                                     // the abandoned item does nothing
        int? ranOn = null;
        var drainer = new Thread(() =>
        {
            // the control loop's part: wait for the eventfd, then run what is queued
            while (ranOn == null) { mailbox.RunPending(log); Thread.Sleep(5); }
        });
        drainer.Start();
        var result = mailbox.Invoke(() => { ranOn = Environment.CurrentManagedThreadId; return "done"; }, TimeSpan.FromSeconds(10));
        drainer.Join();
        Assert.Equal("done", result);
        Assert.Equal(drainer.ManagedThreadId, ranOn);
    }
}
