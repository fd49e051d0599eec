using System;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Datapath;

namespace NvRedirect.Cmdlets;

/// <summary>
/// <para type="synopsis">Shows the datapath's traffic statistics as NeuVector's agent reads them (ctrl_stats_device).</para>
/// <para type="description">Asks the datapath the agent's device statistics query and decodes the DEVICE_STATS reply (DPMsgStats, in dp's layout): sessions opened towards workloads (in) and by them (out), the sessions open now, packets and bytes in and out since the daemon started, and three windows of 5-second slots - the last slot, the last minute and the last five minutes - with their byte rates. The datapath's device counters (frames, drops, protocols, sessions, policy rule counts) are Get-Datapath's Counters.</para>
/// </summary>
/// <example><code>Get-DpDeviceStatistic -ControlSocket $dp.ControlSocket</code><para>Shows how much traffic the datapath in $dp carried, in total and over the last minute.</para></example>
/// <example><code>(Get-DpDeviceStatistic).LastMinute.BytesInPerSecond</code><para>The running datapath's inbound throughput over the last minute, in bytes per second.</para></example>
[Cmdlet(VerbsCommon.Get, "DpDeviceStatistic")]
[OutputType(typeof(DpTrafficStatistic))]
public sealed class GetDpDeviceStatisticCommand : DpCmdlet
{
    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(SocketPath, () =>
        {
            using var client = OpenClient();
            WriteObject(client.DeviceStatistics());
        });
    }
}

/// <summary>
/// <para type="synopsis">Shows workloads' traffic statistics as NeuVector's agent reads them (ctrl_stats_macs).</para>
/// <para type="description">Asks the datapath the agent's statistics query once per workload and decodes each MAC_STATS reply (DPMsgStats, in dp's layout): the workload's sessions in and out, the ones open now, packets and bytes in and out since the daemon started, and the last 5-second slot, the last minute and the last five minutes with their byte rates. Without -Mac every registered workload is shown. MACs may be given as the workload's MAC or an alias; workloads from Get-Datapath and interceptions bind by property name; a MAC the datapath does not know is reported as GetDpMacStatisticNotFound.</para>
/// </summary>
/// <example><code>Get-DpMacStatistic -ControlSocket $dp.ControlSocket</code><para>Shows the traffic of every workload of the datapath in $dp.</para></example>
/// <example><code>(Get-Datapath -ControlSocket $s).Workloads | Get-DpMacStatistic | Sort-Object BytesIn -Descending | Select-Object -First 3</code><para>The three workloads that received the most bytes.</para></example>
[Cmdlet(VerbsCommon.Get, "DpMacStatistic")]
[OutputType(typeof(DpTrafficStatistic))]
public sealed class GetDpMacStatisticCommand : DpPolicyCmdlet
{
    /// <summary><para type="description">The workloads (MAC or alias); absent: every registered workload. A workload, policy or interception object binds its Mac here.</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("WorkloadMac")]
    [ArgumentCompleter(typeof(DpWorkloadMacCompleter))]
    public string[]? Mac { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var socket = SocketPath;
        Try(socket, () =>
        {
            using var client = OpenClient(socket);
            var macs = ResolveAll(client, Mac, socket) ?? client.State().Workloads.Select(w => w.Mac).OrderBy(m => m, StringComparer.Ordinal).ToList();
            foreach (var mac in macs) WriteObject(client.MacStatistics(mac));
        });
    }
}

/// <summary>
/// <para type="synopsis">Lists the datapath's meters, the rate limits per source NeuVector's dp keeps (ctrl_list_meter).</para>
/// <para type="description">Asks the agent's meter query and decodes the METER_LIST replies (DPMsgMeter, in dp's layout) until the last one: per workload and peer, the meter's kind, span, counts and limits. nvr-dp keeps no meters (it does no DDoS metering), so against it the list is empty; against NeuVector's own dp the same command lists its meters.</para>
/// </summary>
/// <example><code>Get-DpMeter -ControlSocket /tmp/dp_listen.sock</code><para>Lists the meters of the datapath on NeuVector's socket.</para></example>
/// <example><code>@(Get-DpMeter).Count</code><para>How many meters the running datapath keeps (0 for nvr-dp).</para></example>
[Cmdlet(VerbsCommon.Get, "DpMeter")]
[OutputType(typeof(DpMeter))]
public sealed class GetDpMeterCommand : DpCmdlet
{
    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        Try(SocketPath, () =>
        {
            using var client = OpenClient();
            foreach (var m in client.Meters()) WriteObject(m);
        });
    }
}
