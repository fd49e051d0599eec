<#
.SYNOPSIS
    Datapath benchmark: host namespace -> container namespace through (a) a direct veth, (b) the interception with a
    kernel-only bounce on vth, (c) the interception with nvr-dp on vth.
.DESCRIPTION
    Not a test: it measures and prints, it asserts nothing (the targets are evaluated and printed as met / not met).
    Needs root, a build (dotnet pwsh ./build.ps1 Build) and iperf3, ethtool, iproute2 and ping (iperf3 and ethtool
    are installed with apt-get when missing).

    Modes (each run builds its own topology under unique namespace names and removes it afterwards):
      a  direct veth: vex-peer (host namespace) <-> eth0 (container namespace), no agent namespace. The physical
         limit of this machine for namespace-to-namespace traffic.
      b  New-SeedTopology (the interception: vex, vin, vbr/vth in the agent namespace, the six rules), plus a bounce
         on vth that sends every frame straight back: tc ingress qdisc on vth with a u32 match-all filter whose
         action is "mirred egress redirect dev vth". The interception's cost without any user space.
      c  New-SeedTopology plus nvr-dp (bin/nvr-dp.dll --netns AGENT --foreground --strict) on vth, configured with the
         seed's four control messages (internal nets, service port vth, the container MAC with ucmac
         4e:65:75:56:00:b4, tap off).
      f  (c) with the kernel fast path (docs/datapath.md, "The kernel fast path"): the interception's cls_bpf programs
         on vex and vin forward the packets of sessions nvr-dp allowed and published; nvr-dp sees the first packets
         of each session (and everything that is not IPv4 TCP/UDP, such as ping). Modes b and c run without it
         (Add-WorkloadInterception -FastPath:$false), as before the fast path existed.

    Per mode and run:
      ping  ping -q -c PingCount -i 0.01 from the host namespace to 10.10.10.88 (min/avg/max/mdev).
      TCP   iperf3 -c 10.10.10.88 -t Seconds -J against iperf3 -s in the container namespace: receiver bit rate,
            retransmits.
      UDP   iperf3 -u -b 0 -l 18 -t Seconds -J: 18 bytes of payload + 8 UDP + 20 IPv4 + 14 Ethernet = a 60-byte frame
            as veth carries it (no FCS), i.e. a 64-byte Ethernet frame on a wire with its 4-byte FCS. Packets per
            second sent (iperf3 sender), reaching the container's interface (eth0 rx_packets delta from
            `ip -s -j link` in the container namespace, over the sender's duration) and received by the
            application (iperf3 receiver: packets - lost).
      dp    (c only) CPU per forwarded packet during the TCP and the UDP test: the daemon process's utime+stime
            (/proc/PID/stat) and its packet thread's ("nvr-dp packets", /proc/PID/task/TID/stat), divided by the
            delta of the daemon's forwarded-packet counter (TXPackets of ctrl_counter_device).
    With -Rules N, mode (c) also gets a policy on the workload after the seed's messages, installed the way NeuVector's
    agent does (bench/PolicyBench.psm1): ctrl_cfg_policy chunks of at most 8120 bytes (flag 1, 0 ..., 2), cmd 1,
    default action DENY, dir 3, N-3 rules that do not match the benchmark's traffic (exact and range rules, other ports
    and other sources), then the three that allow it (TCP and UDP 10.10.10.66 -> 10.10.10.88:5201, ICMP), so every new
    session is decided after all rules before them. Every chunk goes through Send-DpMessage (a rejection is an
    error), and nvr_get_state must show N rules; after the tests nvr_list_connection must show the traffic decided by
    the allow rules, with nothing dropped. nvr-dp decides a session once when it opens, so the figures here (a few
    sessions, millions of packets) show the per-packet path with a policy in force; bench/policy.ps1 measures the cost
    per new session.

    The machine (nproc, CPU, memory, kernel, .NET, commit, load) and every interface's offloads (ethtool -k) are
    printed as well. Modes are interleaved (a b c, a b c, ...) so that load from other work on the machine spreads
    over all of them; every run is reported, then the medians and the targets.

    Everything created (namespaces, daemon, iperf3 servers, control socket, temporary files) is removed in finally
    blocks, also on Ctrl-C.
.PARAMETER Runs
    Rounds over the modes (default 3; at least 2 for a meaningful report).
.PARAMETER Seconds
    Duration of each iperf3 test.
.PARAMETER Modes
    Which modes to run (default a, b, c).
.PARAMETER Offloads
    Offload settings to measure under, each a complete set of runs (default all three):
      Topology    as the topologies come: veth defaults in (a); in (b) and (c) New-SeedTopology's interception has
                  switched transmit checksum, TSO, GSO and GRO off on vex, vin, vbr and vth, while vex-peer and eth0
                  keep the veth defaults (so the host sends 64 KiB TSO frames that vbr segments in software).
      AllOff      transmit checksum, TSO, GSO and GRO off on every interface of the path (Set-AgentLink -Offload
                  $false), the conditions of the C datapath's figures in the issue (reference/kernel-facts.md).
      AllDefault  veth defaults on every interface, the agent ports included (ethtool -K tx on sg on tso on gso on
                  gro off): GSO frames and partial checksums reach the datapath.
.PARAMETER Rules
    Policy rules to install on the workload in mode (c) (default 0: no policy, as the seed; otherwise at least 3).
.PARAMETER PingCount
    Echo requests per ping test.
.PARAMETER MarkdownPath
    Also write the machine, offloads, runs, medians and targets as Markdown tables to this file.
.PARAMETER JsonPath
    Also write every measurement as JSON to this file.
.EXAMPLE
    dotnet pwsh ./build.ps1 Build; dotnet pwsh -NoProfile -File bench/datapath.ps1 -Runs 3 -MarkdownPath /tmp/dp.md
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 50)][int]$Runs = 3,
    [ValidateRange(1, 120)][int]$Seconds = 5,
    [string[]]$Modes = @('a', 'b', 'c', 'f'),
    [string[]]$Offloads = @('Topology', 'AllOff', 'AllDefault'),
    [ValidateRange(0, 100000)][int]$Rules = 0,
    [ValidateRange(5, 10000)][int]$PingCount = 50,
    [string]$MarkdownPath,
    [string]$JsonPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$env:NO_COLOR = '1'
$root = Split-Path $PSScriptRoot -Parent
# lists also as one comma-separated word (pwsh -File passes "-Modes a,b" as a single string)
$Modes = @($Modes -split ',' | ForEach-Object Trim | Where-Object { $_ })
$Offloads = @($Offloads -split ',' | ForEach-Object Trim | Where-Object { $_ })
foreach ($m in $Modes) { if ($m -notin 'a', 'b', 'c', 'f') { throw "Unknown mode '$m': use a, b, c or f." } }
if ($Rules -gt 0 -and $Rules -lt 3) { throw "Rules $Rules`: use 0 (no policy) or at least 3 (the last three allow the benchmark's traffic)." }
foreach ($o in $Offloads) { if ($o -notin 'Topology', 'AllOff', 'AllDefault') { throw "Unknown offload setting '$o': use Topology, AllOff or AllDefault." } }

# ---- constants of the seed topology -------------------------------------------------------------------------------
$HostIp = '10.10.10.66'; $WorkloadIp = '10.10.10.88'
$WorkloadMac = '1a:27:f3:87:3a:27'; $UcMac = '4e:65:75:56:00:b4'
$UdpPayload = 18   # 18 + 8 (UDP) + 20 (IPv4) + 14 (Ethernet) = 60 bytes on veth, 64 with an FCS
$ClockTicks = [int](getconf CLK_TCK)
$ModeTitle = @{ a = '(a) direct veth'; b = '(b) interception, kernel bounce on vth'; c = '(c) interception, nvr-dp on vth'; f = '(f) interception, nvr-dp + kernel fast path' }
if ($Rules -gt 0) { $ModeTitle.c += ", $('{0:N0}' -f $Rules) policy rules"; $ModeTitle.f += ", $('{0:N0}' -f $Rules) policy rules" }

# ---- small helpers ------------------------------------------------------------------------------------------------
function Invoke-Native([string]$What, [scriptblock]$Command) {
    $out = & $Command 2>&1
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit code $LASTEXITCODE): $($out -join "`n")" }
    $out
}

function Get-Median([double[]]$Values) {
    $v = @($Values | Where-Object { $null -ne $_ -and -not [double]::IsNaN($_) } | Sort-Object)
    if ($v.Count -eq 0) { return [double]::NaN }
    if ($v.Count % 2) { return $v[($v.Count - 1) / 2] }
    ($v[$v.Count / 2 - 1] + $v[$v.Count / 2]) / 2
}

function Format-Num($Value, [string]$Format = 'N2') {
    if ($null -eq $Value -or ($Value -is [double] -and [double]::IsNaN($Value))) { return '-' }
    ([double]$Value).ToString($Format, [Globalization.CultureInfo]::InvariantCulture)
}

function Install-Tools {
    $need = [ordered]@{ iperf3 = 'iperf3'; ethtool = 'ethtool'; ip = 'iproute2'; tc = 'iproute2'; ss = 'iproute2'; ping = 'iputils-ping' }
    $missing = @($need.GetEnumerator() | Where-Object { -not (Get-Command $_.Key -CommandType Application -ErrorAction SilentlyContinue) } |
        ForEach-Object Value | Select-Object -Unique)
    if (-not $missing) { return }
    Write-Host "== installing $($missing -join ', ')"
    $env:DEBIAN_FRONTEND = 'noninteractive'
    Invoke-Native 'apt-get update' { apt-get update -qq } | Out-Null
    Invoke-Native 'apt-get install' { apt-get install -y -qq --no-install-recommends @missing } | Out-Null
}

function Get-Machine {
    $cpu = (Select-String -Path /proc/cpuinfo -Pattern '^model name\s*:\s*(.*)$' | Select-Object -First 1).Matches[0].Groups[1].Value
    $memKb = [long]((Select-String -Path /proc/meminfo -Pattern '^MemTotal:\s*(\d+)').Matches[0].Groups[1].Value)
    $commit = (git -C $root rev-parse --short HEAD 2>$null)
    if ($commit -and (git -C $root status --porcelain --untracked-files=no 2>$null)) { $commit += ' (with uncommitted changes)' }
    $virt = (Get-Command systemd-detect-virt -ErrorAction SilentlyContinue) ? (systemd-detect-virt --vm 2>$null) : $null
    [pscustomobject]@{
        Cpus = [int](nproc); Cpu = $cpu; MemoryGiB = [math]::Round($memKb / 1MB, 1); Kernel = (uname -r)
        Virtualization = $virt
        DotNet = "runtime $([Environment]::Version), SDK $(dotnet --version 2>$null)"
        Iperf3 = ((iperf3 --version 2>$null | Select-Object -First 1) -replace '\s*\(.*$', '')
        Commit = $commit ?? '?'
        Date = (Get-Date).ToUniversalTime().ToString('yyyy-MM-dd HH:mm') + ' UTC'
    }
}

function Get-LoadAverage { ((Get-Content /proc/loadavg) -split ' ')[0..2] -join ' ' }

# Offloads of one interface as ethtool -k reports them, compacted ("tx-csum on, sg on, tso on, gso on, gro off, rx-csum on").
function Get-Offloads([string]$Ns, [string]$Link) {
    $k = Invoke-Native "ethtool -k $Link in $Ns" { ip netns exec $Ns ethtool -k $Link }
    $map = @{}
    foreach ($line in $k) { if ($line -match '^\s*([a-z0-9-]+):\s+(on|off)') { $map[$Matches[1]] = $Matches[2] } }
    # tso: tx-tcp-segmentation itself; ethtool 6.1 shows "tcp-segmentation-offload: on" whenever any TSO sub-feature
    # (e.g. this kernel's tx-tcp-accecn-segmentation) is on, even with IPv4 TSO off
    $short = [ordered]@{ 'rx-checksumming' = 'rx-csum'; 'tx-checksumming' = 'tx-csum'; 'scatter-gather' = 'sg'
        'tx-tcp-segmentation' = 'tso'; 'generic-segmentation-offload' = 'gso'; 'generic-receive-offload' = 'gro' }
    ($short.GetEnumerator() | ForEach-Object { "$($_.Value) $($map[$_.Key] ?? '?')" }) -join ', '
}

function Get-RxStats([string]$Ns, [string]$Link) {
    $j = Invoke-Native "ip -s link show $Link" { ip -n $Ns -s -j link show $Link } | Out-String | ConvertFrom-Json
    [pscustomobject]@{ Packets = [long]$j[0].stats64.rx.packets; Bytes = [long]$j[0].stats64.rx.bytes }
}

# utime+stime in seconds of the whole process and of its threads whose name starts with $ThreadPrefix; for those
# threads also the scheduler's view (schedstat: ns on a CPU, ns runnable but waiting for one) and their voluntary
# context switches (each one a sleep in poll, i.e. a wake-up later) and involuntary ones (preemptions).
function Get-ProcessCpu([int]$ProcessId, [string]$ThreadPrefix) {
    function StatTicks([string]$path) {
        $fields = ((Get-Content -Raw $path) -split '\)\s', 2)[1] -split ' '
        , @([long]$fields[11], [long]$fields[12])    # fields 14 and 15 of stat(5): utime, stime
    }
    $user = 0L; $kernel = 0L; $runNs = 0L; $waitNs = 0L; $dispatches = 0L; $voluntary = 0L; $involuntary = 0L
    foreach ($t in Get-ChildItem "/proc/$ProcessId/task") {
        try {
            if (-not (Get-Content -Raw "$($t.FullName)/comm").StartsWith($ThreadPrefix)) { continue }
            $ticks = StatTicks "$($t.FullName)/stat"
            $user += $ticks[0]; $kernel += $ticks[1]
            $sched = (Get-Content -Raw "$($t.FullName)/schedstat").Trim() -split ' '
            $runNs += [long]$sched[0]; $waitNs += [long]$sched[1]; $dispatches += [long]$sched[2]
            foreach ($l in Get-Content "$($t.FullName)/status") {
                if ($l -match '^voluntary_ctxt_switches:\s+(\d+)') { $voluntary += [long]$Matches[1] }
                elseif ($l -match '^nonvoluntary_ctxt_switches:\s+(\d+)') { $involuntary += [long]$Matches[1] }
            }
        } catch { }   # a thread that ended meanwhile
    }
    $proc = StatTicks "/proc/$ProcessId/stat"
    [pscustomobject]@{ Process = ($proc[0] + $proc[1]) / $ClockTicks; Thread = ($user + $kernel) / $ClockTicks
        ThreadUser = $user / $ClockTicks; ThreadKernel = $kernel / $ClockTicks
        ThreadRunS = $runNs / 1e9; ThreadWaitS = $waitNs / 1e9; Dispatches = $dispatches; Voluntary = $voluntary; Involuntary = $involuntary }
}

function Start-Background([string]$Name, [string]$File, [string[]]$Arguments, [string]$TempDir) {
    $p = Start-Process -FilePath $File -ArgumentList $Arguments -PassThru `
        -RedirectStandardOutput (Join-Path $TempDir "$Name.out") -RedirectStandardError (Join-Path $TempDir "$Name.err")
    $p
}

# SIGTERM, then wait; SIGKILL after the timeout. Only the process we started, by its id.
function Stop-Background($Process, [int]$TimeoutSeconds = 30) {
    if ($null -eq $Process -or $Process.HasExited) { return }
    kill -TERM $Process.Id 2>$null
    if (-not $Process.WaitForExit($TimeoutSeconds * 1000)) { $Process.Kill(); $Process.WaitForExit(5000) | Out-Null }
}

function Wait-Until([scriptblock]$Condition, [double]$TimeoutSeconds, [string]$What) {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not (& $Condition)) {
        if ([DateTime]::UtcNow -gt $deadline) { throw "Timed out after $TimeoutSeconds s waiting for $What." }
        Start-Sleep -Milliseconds 100
    }
}

# ---- the datapath's control socket --------------------------------------------------------------------------------
# A datagram client bound to an abstract address, so it gets the daemon's replies and leaves no file behind.
function New-DpClient {
    $s = [System.Net.Sockets.Socket]::new([System.Net.Sockets.AddressFamily]::Unix, [System.Net.Sockets.SocketType]::Dgram,
        [System.Net.Sockets.ProtocolType]::Unspecified)
    $s.Bind([System.Net.Sockets.UnixDomainSocketEndPoint]::new("`0nvb-client-$PID-$([guid]::NewGuid().ToString('n').Substring(0, 8))"))
    $s.ReceiveTimeout = 5000
    $s
}

function Send-Dp($Client, [string]$SocketPath, $Message) {
    $bytes = [Text.Encoding]::UTF8.GetBytes(($Message | ConvertTo-Json -Compress -Depth 6))
    [void]$Client.SendTo($bytes, [System.Net.Sockets.UnixDomainSocketEndPoint]::new($SocketPath))
}

# The next reply of the given kind (DPMsgHdr.Kind); a late reply to an earlier request is skipped.
function Receive-Dp($Client, [byte]$Kind) {
    $buf = [byte[]]::new(8192)
    while ($true) {
        $n = $Client.Receive($buf)
        if ($n -ge 4 -and $buf[0] -eq $Kind) { return , [byte[]]$buf[0..($n - 1)] }
    }
}

function Read-BigEndian([byte[]]$Bytes, [int]$Offset, [int]$Size) {
    $v = [uint64]0
    for ($i = 0; $i -lt $Size; $i++) { $v = $v * 256 + $Bytes[$Offset + $i] }
    $v
}

# Keep-alive round trip: true when the daemon answers with our sequence number.
function Test-DpAlive($Client, [string]$SocketPath, [uint32]$Sequence) {
    try {
        Send-Dp $Client $SocketPath ([ordered]@{ ctrl_keep_alive = [ordered]@{ seq_num = $Sequence } })
        do { $r = Receive-Dp $Client 10 } until ($r.Count -eq 8 -and (Read-BigEndian $r 4 4) -eq $Sequence)
        $true
    } catch [System.Net.Sockets.SocketException] { $false }   # not bound yet, or no answer within the receive timeout
}

# The seed's four messages (its dp client: internal nets, service port, workload MAC, tap off), then a keep-alive
# so that we know they were processed.
function Set-DpSeedConfig($Client, [string]$SocketPath) {
    Send-Dp $Client $SocketPath ([ordered]@{ ctrl_cfg_internal_net = [ordered]@{ flag = 3; subnet_addr = @(
                [ordered]@{ ip = '172.17.0.0'; mask = '255.255.0.0' }, [ordered]@{ ip = '179.20.23.0'; mask = '255.255.255.0' },
                [ordered]@{ ip = '10.10.10.0'; mask = '255.255.255.0' }, [ordered]@{ ip = '172.20.166.0'; mask = '255.255.255.0' },
                [ordered]@{ ip = $HostIp; mask = '255.255.255.0'; iptype = 'devip' }, [ordered]@{ ip = $WorkloadIp; mask = '255.255.255.0'; iptype = 'devip' }) } })
    Send-Dp $Client $SocketPath ([ordered]@{ ctrl_add_srvc_port = [ordered]@{ iface = 'vth'; jumboframe = $false } })
    Send-Dp $Client $SocketPath ([ordered]@{ ctrl_add_mac = [ordered]@{ iface = 'vth'; mac = $WorkloadMac; ucmac = $UcMac
                bcmac = 'ff:ff:ff:00:00:b4'; oldmac = ''; pmac = ''; pips = $null } })
    Send-Dp $Client $SocketPath ([ordered]@{ ctrl_cfg_mac = [ordered]@{ tap = $false; macs = @($WorkloadMac) } })
    if (-not (Test-DpAlive $Client $SocketPath 2)) { throw 'nvr-dp did not answer after its configuration.' }
}

# DPMsgDeviceCounter: the leading u64 block (RXPackets, RXDropPackets, TXPackets, TXDropPackets, ErrorPackets, NoWorkloadPackets).
function Get-DpCounters($Client, [string]$SocketPath) {
    Send-Dp $Client $SocketPath ([ordered]@{ ctrl_counter_device = @{} })
    $r = Receive-Dp $Client 4
    if ($r.Count -lt 52) { throw "Short reply to ctrl_counter_device ($($r.Count) bytes)." }
    $names = 'Rx', 'RxDrops', 'Tx', 'TxDrops', 'Errors', 'NoWorkload'
    $o = [ordered]@{}
    for ($i = 0; $i -lt $names.Count; $i++) { $o[$names[$i]] = [long](Read-BigEndian $r (4 + 8 * $i) 8) }
    [pscustomobject]$o
}

# ---- topologies ---------------------------------------------------------------------------------------------------
# Each returns a context (namespaces, the interfaces to report) and adds its cleanup steps to $Cleanup as soon as
# there is something to clean up (the caller runs them in reverse order, also when the build fails halfway).
function New-DirectTopology([string]$Prefix, $Cleanup) {
    $ctx = [pscustomobject]@{ Host = "$Prefix-host"; Container = "$Prefix-ctr"; Agent = $null; Cleanup = $Cleanup; Interfaces = @() }
    $h = $ctx.Host; $c = $ctx.Container
    New-AgentNamespace $h | Out-Null
    $ctx.Cleanup.Add({ Remove-AgentNamespace $h -Confirm:$false }.GetNewClosure())
    New-AgentNamespace $c | Out-Null
    $ctx.Cleanup.Add({ Remove-AgentNamespace $c -Confirm:$false }.GetNewClosure())
    New-AgentLink vex-peer eth0 -Namespace $h -PeerNamespace $c | Out-Null
    Set-AgentLink eth0 -Namespace $c -MacAddress $WorkloadMac
    foreach ($l in @(@($h, 'lo'), @($h, 'vex-peer'), @($c, 'lo'), @($c, 'eth0'))) { Set-AgentLink $l[1] -Namespace $l[0] -Up }
    Add-AgentAddress vex-peer "$HostIp/24" -Namespace $h | Out-Null
    Add-AgentAddress eth0 "$WorkloadIp/24" -Namespace $c | Out-Null
    $ctx.Interfaces = @(@($h, 'vex-peer'), @($c, 'eth0'))
    $ctx
}

function New-InterceptedTopology([string]$Prefix, $Cleanup, [bool]$FastPath = $false) {
    $ctx = [pscustomobject]@{ Host = "$Prefix-host"; Container = "$Prefix-ctr"; Agent = "$Prefix-agent"; Cleanup = $Cleanup; Interfaces = @(); Backend = $null }
    $a = $ctx.Agent; $c = $ctx.Container; $h = $ctx.Host
    # registered before the call: New-SeedTopology leaves nothing behind when it fails, Remove-SeedTopology skips missing parts
    $ctx.Cleanup.Add({ Remove-SeedTopology -AgentNamespace $a -ContainerNamespace $c -HostNamespace $h -Confirm:$false }.GetNewClosure())
    $topology = New-SeedTopology -AgentNamespace $a -ContainerNamespace $c -HostNamespace $h -WorkloadMac $WorkloadMac -UcMac $UcMac `
        -HostAddress "$HostIp/24" -WorkloadAddress "$WorkloadIp/24"
    $ctx.Backend = $topology.Interception.Backend
    $i = $topology.Interception
    # New-SeedTopology installs the fast path where the kernel has it; only mode f keeps it
    $fp = Add-WorkloadInterception -Namespace $a -EntryLink $i.EntryLink -InnerLink $i.InnerLink -MonitorLink $i.MonitorLink -WorkloadMac $WorkloadMac -UcMac $UcMac -FastPath:$FastPath
    $ctx | Add-Member FastPath $fp.FastPath
    $ctx.Interfaces = @(@($h, 'vex-peer'), @($a, 'vex'), @($a, 'vin'), @($a, 'vbr'), @($a, 'vth'), @($c, 'eth0'))
    $ctx
}

# ---- measurements -------------------------------------------------------------------------------------------------
function Invoke-Ping([string]$FromNs, [int]$Count) {
    $out = Invoke-Native 'ping' { ip netns exec $FromNs ping -n -c $Count -i 0.01 -W 2 $WorkloadIp }
    $inv = [Globalization.CultureInfo]::InvariantCulture
    $rtt = ($out | Select-String 'min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)').Matches
    $loss = ($out | Select-String '(\d+) received').Matches
    $times = @($out | Select-String 'time=([\d.]+) ms' | ForEach-Object { [double]::Parse($_.Matches[0].Groups[1].Value, $inv) })
    if (-not $rtt) { throw "ping gave no round-trip times: $($out -join ' ')" }
    $g = $rtt[0].Groups
    [pscustomobject]@{ Received = [int]$loss[0].Groups[1].Value; Median = Get-Median $times
        Min = [double]::Parse($g[1].Value, $inv); Avg = [double]::Parse($g[2].Value, $inv); Max = [double]::Parse($g[3].Value, $inv); Mdev = [double]::Parse($g[4].Value, $inv) }
}

function Invoke-Iperf([string]$FromNs, [string[]]$Extra) {
    $what = "iperf3 -c $WorkloadIp -t $Seconds $($Extra -join ' ')".TrimEnd()
    $text = & ip netns exec $FromNs iperf3 -c $WorkloadIp -t $Seconds -J @Extra 2>&1 | Out-String
    $j = try { $text | ConvertFrom-Json } catch { $null }
    if ($null -eq $j) { throw "$what gave no JSON (exit code $LASTEXITCODE): $text" }
    if ($j.PSObject.Properties['error']) { throw "$what failed: $($j.error)" }
    $j
}

# Snapshot of the daemon's CPU and counters (null without a daemon).
function Get-DpSnapshot($Dp) {
    if ($null -eq $Dp) { return $null }
    $cpu = Get-ProcessCpu $Dp.Process.Id 'nvr-dp packets'
    [pscustomobject]@{ Cpu = $cpu; Counters = Get-DpCounters $Dp.Client $Dp.SocketPath; Time = [Diagnostics.Stopwatch]::GetTimestamp() }
}

function Measure-DpDelta($Before, $After) {
    if ($null -eq $Before) { return $null }
    $tx = $After.Counters.Tx - $Before.Counters.Tx
    $proc = $After.Cpu.Process - $Before.Cpu.Process
    $thr = $After.Cpu.Thread - $Before.Cpu.Thread
    $wall = ($After.Time - $Before.Time) / [Diagnostics.Stopwatch]::Frequency
    $wakeups = $After.Cpu.Voluntary - $Before.Cpu.Voluntary
    $dispatches = $After.Cpu.Dispatches - $Before.Cpu.Dispatches
    $user = $After.Cpu.ThreadUser - $Before.Cpu.ThreadUser; $kernel = $After.Cpu.ThreadKernel - $Before.Cpu.ThreadKernel
    [pscustomobject]@{
        ThreadUserUsPerPacket = $tx -gt 0 ? $user / $tx * 1e6 : [double]::NaN; ThreadKernelUsPerPacket = $tx -gt 0 ? $kernel / $tx * 1e6 : [double]::NaN
        Dispatches = $dispatches; WaitUsPerDispatch = $dispatches -gt 0 ? ($After.Cpu.ThreadWaitS - $Before.Cpu.ThreadWaitS) / $dispatches * 1e6 : [double]::NaN
        WallS = $wall; ThreadRunS = $After.Cpu.ThreadRunS - $Before.Cpu.ThreadRunS; ThreadWaitS = $After.Cpu.ThreadWaitS - $Before.Cpu.ThreadWaitS
        Wakeups = $wakeups; Preemptions = $After.Cpu.Involuntary - $Before.Cpu.Involuntary
        PacketsPerWakeup = $wakeups -gt 0 ? $tx / $wakeups : [double]::NaN
        Forwarded = $tx; RxDrops = $After.Counters.RxDrops - $Before.Counters.RxDrops
        TxDrops = $After.Counters.TxDrops - $Before.Counters.TxDrops; NoWorkload = $After.Counters.NoWorkload - $Before.Counters.NoWorkload
        ProcessCpuS = $proc; ThreadCpuS = $thr
        ProcessUsPerPacket = $tx -gt 0 ? $proc / $tx * 1e6 : [double]::NaN
        ThreadUsPerPacket = $tx -gt 0 ? $thr / $tx * 1e6 : [double]::NaN
    }
}

function Set-Offloads($Ctx, [string]$Config) {
    foreach ($i in $Ctx.Interfaces) {
        switch ($Config) {
            'AllOff' { Set-AgentLink $i[1] -Namespace $i[0] -Offload $false }
            'AllDefault' { Invoke-Native "ethtool -K $($i[1])" { ip netns exec $i[0] ethtool -K $i[1] tx on sg on tso on gso on gro off } | Out-Null }
        }
    }
}

function Measure-Mode([string]$Mode, [int]$Run, [string]$Config, [string]$TempDir) {
    $prefix = "nvb-$PID-$($Config.ToLowerInvariant())$Run$Mode"
    $cleanup = [Collections.Generic.List[scriptblock]]::new()
    $dp = $null
    $result = [ordered]@{ Config = $Config; Mode = $Mode; Run = $Run; Load = Get-LoadAverage; Policy = $null; Connections = @() }
    try {
        $ctx = if ($Mode -eq 'a') { New-DirectTopology $prefix $cleanup } else { New-InterceptedTopology $prefix $cleanup ($Mode -eq 'f') }
        Set-Offloads $ctx $Config
        if ($Mode -eq 'b') {
            Invoke-Native 'tc qdisc add (bounce)' { tc -n $ctx.Agent qdisc add dev vth ingress } | Out-Null
            Invoke-Native 'tc filter add (bounce)' { tc -n $ctx.Agent filter add dev vth parent ffff: pref 1 u32 match u8 0 0 action mirred egress redirect dev vth } | Out-Null
        }
        if ($Mode -in 'c', 'f') {
            $sock = "/tmp/$prefix.sock"; $log = Join-Path $TempDir "$prefix-dp.log"
            $dp = [pscustomobject]@{ Process = $null; Client = New-DpClient; SocketPath = $sock; Log = $log }
            $dpRef = $dp
            $ctx.Cleanup.Add({ Stop-Background $dpRef.Process; $dpRef.Client.Dispose(); Remove-Item -LiteralPath $dpRef.SocketPath -ErrorAction SilentlyContinue }.GetNewClosure())
            $dp.Process = Start-Background "$prefix-dp" dotnet @((Join-Path $root 'bin/nvr-dp.dll'), '--netns', $ctx.Agent, '--socket', $sock, '--foreground', '--log', $log, '--strict') $TempDir
            Wait-Until { if ($dpRef.Process.HasExited) { throw "nvr-dp exited with code $($dpRef.Process.ExitCode): $(Get-Content -Raw -ErrorAction SilentlyContinue $dpRef.Log)" }
                (Test-Path $dpRef.SocketPath) -and (Test-DpAlive $dpRef.Client $dpRef.SocketPath 1) } 60 'nvr-dp to serve its socket'
            Set-DpSeedConfig $dp.Client $sock
            if ($Rules -gt 0) { $result.Policy = Install-BenchPolicy -ControlSocket $sock -Mac $WorkloadMac -Count $Rules }
        }
        $result.Backend = $ctx.PSObject.Properties['Backend'] ? $ctx.Backend : $null
        $result.Offloads = [ordered]@{}
        foreach ($i in $ctx.Interfaces) { $result.Offloads["$($i[1])"] = Get-Offloads $i[0] $i[1] }

        $server = Start-Background "$prefix-iperf3" ip @('netns', 'exec', $ctx.Container, 'iperf3', '-s') $TempDir
        $srv = $server; $cns = $ctx.Container
        $ctx.Cleanup.Add({ Stop-Background $srv 10 }.GetNewClosure())
        Wait-Until { if ($srv.HasExited) { throw 'iperf3 -s exited.' }; [bool](ip netns exec $cns ss -Hltn 'sport = :5201') } 20 'iperf3 -s to listen'

        # warm-up: ARP, and in (c) the datapath's first frames; fails loudly when the path does not work
        Invoke-Native "ping through $($ModeTitle[$Mode])" { ip netns exec $ctx.Host ping -q -n -c 3 -i 0.2 -W 2 $WorkloadIp } | Out-Null

        $before = Get-DpSnapshot $dp
        $result.Ping = Invoke-Ping $ctx.Host $PingCount
        $after = Get-DpSnapshot $dp
        $result.PingDp = Measure-DpDelta $before $after
        Start-Sleep -Milliseconds 500

        $eth0 = Get-RxStats $ctx.Container 'eth0'
        $before = Get-DpSnapshot $dp
        $tcp = Invoke-Iperf $ctx.Host @()
        $after = Get-DpSnapshot $dp
        $eth1 = Get-RxStats $ctx.Container 'eth0'
        $result.Tcp = [pscustomobject]@{
            Eth0Frames = $eth1.Packets - $eth0.Packets; Eth0AvgBytes = ($eth1.Bytes - $eth0.Bytes) / [math]::Max(1, $eth1.Packets - $eth0.Packets)
            Gbps = $tcp.end.sum_received.bits_per_second / 1e9; Retransmits = $tcp.end.sum_sent.retransmits
            SenderCpu = $tcp.end.cpu_utilization_percent.host_total; ReceiverCpu = $tcp.end.cpu_utilization_percent.remote_total }
        $result.TcpDp = Measure-DpDelta $before $after
        Start-Sleep -Milliseconds 500

        $rx0 = (Get-RxStats $ctx.Container 'eth0').Packets
        $before = Get-DpSnapshot $dp
        $udp = Invoke-Iperf $ctx.Host @('-u', '-b', '0', '-l', "$UdpPayload")
        $after = Get-DpSnapshot $dp
        $rx1 = (Get-RxStats $ctx.Container 'eth0').Packets
        $sent = $udp.end.sum_sent; $recv = $udp.end.sum_received
        $appPackets = [long]$recv.packets - [long]$recv.lost_packets
        $result.Udp = [pscustomobject]@{
            SentPackets = [long]$sent.packets; IfacePackets = $rx1 - $rx0; AppPackets = $appPackets
            SentKpps = $sent.packets / $sent.seconds / 1e3; IfaceKpps = ($rx1 - $rx0) / $sent.seconds / 1e3
            AppKpps = $appPackets / $recv.seconds / 1e3
            SenderCpu = $udp.end.cpu_utilization_percent.host_total; ReceiverCpu = $udp.end.cpu_utilization_percent.remote_total }
        $result.UdpDp = Measure-DpDelta $before $after
        if (($Mode -in 'c', 'f') -and $Rules -gt 0) {
            # the traffic must have been decided by the three allow rules at the end of the list, and nothing dropped
            $connections = @(Get-BenchDpConnection $dp.SocketPath | Where-Object { $_.client -eq $HostIp -and $_.server -eq $WorkloadIp })
            $result.Connections = @($connections | ForEach-Object { "proto $($_.proto) port $($_.server_port): rule $($_.rule_id), action $($_.action), $($_.sessions) sessions, $($_.packets) packets, $($_.dropped) dropped" })
            $bad = @($connections | Where-Object { $_.rule_id -lt $Rules - 2 -or $_.action -ne 2 -or $_.dropped -ne 0 })
            if ($bad -or -not $connections) { throw "The policy did not decide the benchmark's traffic as expected: $($result.Connections -join '; ')" }
        }
        [pscustomobject]$result
    }
    finally {
        for ($i = $cleanup.Count - 1; $i -ge 0; $i--) {
            try { & $cleanup[$i] } catch { Write-Warning "cleanup: $_" }
        }
    }
}

# ---- report -------------------------------------------------------------------------------------------------------
$ConfigTitle = @{
    Topology   = 'offloads as built (agent ports off in b/c, veth defaults elsewhere)'
    AllOff     = 'all offloads off on every interface'
    AllDefault = 'veth offload defaults on every interface'
}

function Get-ModeMedians($Group) {
    $m = { param($f) Get-Median @($Group | ForEach-Object $f) }
    [pscustomobject]@{
        Runs = @($Group).Count
        Tcp = & $m { $_.Tcp.Gbps }; Sent = & $m { $_.Udp.SentKpps }; Iface = & $m { $_.Udp.IfaceKpps }; App = & $m { $_.Udp.AppKpps }
        Ping = & $m { $_.Ping.Avg }; PingMedian = & $m { $_.Ping.Median }
        UdpProc = & $m { $_.UdpDp ? $_.UdpDp.ProcessUsPerPacket : [double]::NaN }
        UdpThr = & $m { $_.UdpDp ? $_.UdpDp.ThreadUsPerPacket : [double]::NaN }
        TcpProc = & $m { $_.TcpDp ? $_.TcpDp.ProcessUsPerPacket : [double]::NaN }
        TcpThr = & $m { $_.TcpDp ? $_.TcpDp.ThreadUsPerPacket : [double]::NaN }
    }
}

function Format-Verdict([double]$Value, [double]$Limit, [switch]$AtLeast) {
    if ([double]::IsNaN($Value)) { return 'n/a' }
    $ok = $AtLeast ? ($Value -ge $Limit) : ($Value -le $Limit)
    $ok ? 'met' : 'not met'
}

function Format-Report($Machine, $Results, [string]$LoadBefore, [string]$LoadAfter) {
    $md = [Text.StringBuilder]::new()
    $line = { param($s) [void]$md.AppendLine($s) }
    & $line ("Machine: $($Machine.Cpus) CPUs ($($Machine.Cpu)), $($Machine.MemoryGiB) GiB, kernel $($Machine.Kernel)" +
        "$($Machine.Virtualization ? ", $($Machine.Virtualization) guest" : ''), .NET $($Machine.DotNet), $($Machine.Iperf3), " +
        "commit $($Machine.Commit), $($Machine.Date); load average $LoadBefore before, $LoadAfter after.")
    & $line ''
    & $line ("TCP: iperf3 receiver rate over $Seconds s. UDP: $UdpPayload-byte payload, i.e. 60-byte frames on veth (64 bytes with an FCS on a wire), " +
        "iperf3 -b 0, kpps over the sender's $Seconds s. Ping: $PingCount echoes at 10 ms intervals. " +
        'dp: CPU per forwarded packet, daemon process / packet thread (utime+stime over the test divided by the delta of the ' +
        'forwarded-packet counter). Load: the 1/5/15-minute load average when the run started.')
    $withPolicy = @($Results | Where-Object { $_.Policy }) | Select-Object -First 1
    if ($withPolicy) {
        $p = $withPolicy.Policy
        & $line ''
        & $line ("Policy in (c): $($p.Rules) rules on the workload (default DENY, dir 3) in $($p.Chunks) ctrl_cfg_policy chunks of at most " +
            "$($p.LargestChunk) bytes, checked in nvr_get_state: $($p.Exact) single-address rules, $($p.Range) range rules ($($p.Egress) egress); " +
            "a new session of the benchmark's traffic is decided after scanning $($p.ScannedTcp) (TCP), $($p.ScannedUdp) (UDP), $($p.ScannedIcmp) (ICMP) range rules. " +
            "Connections the daemon saw in the first run of (c), at its end: $($withPolicy.Connections -join '; ').")
    }
    foreach ($config in $Offloads) {
        $rows = @($Results | Where-Object Config -eq $config)
        if (-not $rows) { continue }
        & $line ''
        & $line "#### $($ConfigTitle[$config]) (-Offloads $config)"
        & $line ''
        & $line 'Offloads (ethtool -k as measured; rx-csum/tx-csum/sg/tso/gso/gro):'
        & $line ''
        & $line '| mode | interfaces |'
        & $line '|---|---|'
        foreach ($mode in $Modes) {
            $first = $rows | Where-Object Mode -eq $mode | Select-Object -First 1
            if (-not $first) { continue }
            $text = ($first.Offloads.GetEnumerator() | ForEach-Object { "$($_.Key) $(($_.Value -replace '[a-z-]+ ', '') -replace ', ', '/')" }) -join ', '
            & $line "| $($ModeTitle[$mode])$($first.Backend ? " ($($first.Backend) rules)" : '') | $text |"
        }
        & $line ''
        & $line 'Every run:'
        & $line ''
        & $line '| mode | run | load | TCP Gbit/s | retr | UDP sent kpps | at eth0 kpps | app kpps | ping min/median/avg/max ms | dp UDP us/pkt | dp TCP us/pkt |'
        & $line '|---|---|---|---|---|---|---|---|---|---|---|'
        foreach ($r in $rows) {
            $dpU = $r.UdpDp ? "$(Format-Num $r.UdpDp.ProcessUsPerPacket) / $(Format-Num $r.UdpDp.ThreadUsPerPacket)" : '-'
            $dpT = $r.TcpDp ? "$(Format-Num $r.TcpDp.ProcessUsPerPacket) / $(Format-Num $r.TcpDp.ThreadUsPerPacket)" : '-'
            & $line ("| $($r.Mode) | $($r.Run) | $($r.Load) | $(Format-Num $r.Tcp.Gbps) | $($r.Tcp.Retransmits) | $(Format-Num $r.Udp.SentKpps 'N0') | " +
                "$(Format-Num $r.Udp.IfaceKpps 'N0') | $(Format-Num $r.Udp.AppKpps 'N0') | " +
                "$(Format-Num $r.Ping.Min 'N3')/$(Format-Num $r.Ping.Median 'N3')/$(Format-Num $r.Ping.Avg 'N3')/$(Format-Num $r.Ping.Max 'N2') | $dpU | $dpT |")
        }
        $dpRows = @($rows | Where-Object { $_.UdpDp })
        if ($dpRows) {
            & $line ''
            & $line ('The packet thread in (c), per test: packets forwarded (TCP: also the frames reaching eth0 and their mean size), ring drops, ' +
                'its CPU per forwarded packet split into user and kernel time, its time on a CPU and runnable but waiting for one ' +
                '(schedstat) as shares of the wall time, the mean wait per dispatch onto a CPU, its wake-ups (voluntary context ' +
                'switches: sleeps in poll) and packets per wake-up:')
            & $line ''
            & $line '| run | test | forwarded | ring drops | user / kernel us/pkt | on CPU | waiting for a CPU | wait per dispatch | wake-ups | packets per wake-up |'
            & $line '|---|---|---|---|---|---|---|---|---|---|'
            foreach ($r in $dpRows) {
                $tcpText = "TCP ($($r.Tcp.Eth0Frames) frames at eth0, mean $(Format-Num $r.Tcp.Eth0AvgBytes 'F0') B)"
                foreach ($t in @(@('ping', $r.PingDp), @($tcpText, $r.TcpDp), @('UDP', $r.UdpDp))) {
                    $d = $t[1]
                    # CPU time comes in clock ticks (10 ms): below 20 ticks a per-packet figure is mostly rounding
                    $split = ($d.ThreadCpuS * $ClockTicks -ge 20) ? "$(Format-Num $d.ThreadUserUsPerPacket) / $(Format-Num $d.ThreadKernelUsPerPacket)" : '-'
                    & $line ("| $($r.Run) | $($t[0]) | $($d.Forwarded) | $($d.RxDrops) | $split | " +
                        "$(Format-Num ($d.ThreadRunS / $d.WallS * 100) 'N0') % | $(Format-Num ($d.ThreadWaitS / $d.WallS * 100) 'N0') % | " +
                        "$(Format-Num $d.WaitUsPerDispatch 'F0') us | $($d.Wakeups) | $(Format-Num $d.PacketsPerWakeup 'F1') |")
                }
            }
        }
        & $line ''
        & $line 'Medians:'
        & $line ''
        & $line '| mode | runs | TCP Gbit/s | UDP sent kpps | at eth0 kpps | app kpps | ping median / avg ms | dp UDP us/pkt (process / thread) | dp TCP us/pkt (process / thread) |'
        & $line '|---|---|---|---|---|---|---|---|---|'
        $med = @{}
        foreach ($mode in $Modes) {
            $g = @($rows | Where-Object Mode -eq $mode)
            if (-not $g) { continue }
            $o = Get-ModeMedians $g
            $med[$mode] = $o
            $dpU = [double]::IsNaN($o.UdpProc) ? '-' : "$(Format-Num $o.UdpProc) / $(Format-Num $o.UdpThr)"
            $dpT = [double]::IsNaN($o.TcpProc) ? '-' : "$(Format-Num $o.TcpProc) / $(Format-Num $o.TcpThr)"
            # (f): nvr-dp forwards only each session's first packets, so its CPU per forwarded packet says nothing
            if ($mode -eq 'f') { $dpU = $dpT = 'n/a (first packets only)' }
            & $line ("| $($ModeTitle[$mode]) | $($o.Runs) | $(Format-Num $o.Tcp) | $(Format-Num $o.Sent 'N0') | $(Format-Num $o.Iface 'N0') | $(Format-Num $o.App 'N0') | " +
                "$(Format-Num $o.PingMedian 'N3') / $(Format-Num $o.Ping 'N3') | $dpU | $dpT |")
        }
        if (-not $med.ContainsKey('c') -and -not $med.ContainsKey('f')) { continue }
        & $line ''
        & $line 'Targets (on the medians):'
        & $line ''
        & $line '| target | measured | verdict |'
        & $line '|---|---|---|'
        if ($med.ContainsKey('f') -and $med.ContainsKey('a')) {
            # issue 15's targets for the kernel fast path
            $f = $med['f']; $a = $med['a']
            & $line "| TCP through (f) >= 90 % of (a) | $(Format-Num ($f.Tcp / $a.Tcp * 100) 'N1') % ($(Format-Num $f.Tcp) of $(Format-Num $a.Tcp) Gbit/s) | $(Format-Verdict ($f.Tcp / $a.Tcp) 0.9 -AtLeast) |"
            if ($med.ContainsKey('b')) { & $line "| TCP through (f) >= (b) | $(Format-Num $f.Tcp) vs $(Format-Num $med['b'].Tcp) Gbit/s | $(Format-Verdict ($f.Tcp / $med['b'].Tcp) 1 -AtLeast) |" }
            & $line "| 64-byte UDP at the container's application (f) >= 90 % of (a) | $(Format-Num ($f.App / $a.App * 100) 'N1') % ($(Format-Num $f.App 'N0') of $(Format-Num $a.App 'N0') kpps) | $(Format-Verdict ($f.App / $a.App) 0.9 -AtLeast) |"
            & $line "| ping median (f) <= 1.2 x (a) | $(Format-Num ($f.PingMedian / $a.PingMedian)) x ($(Format-Num $f.PingMedian 'N3') vs $(Format-Num $a.PingMedian 'N3') ms) | $(($f.PingMedian -le 1.2 * $a.PingMedian) ? 'met' : 'not met') |"
        }
        if (-not $med.ContainsKey('c')) { continue }
        $c = $med['c']
        & $line "| dp CPU per forwarded 64-byte UDP packet <= 3.5 us | $(Format-Num $c.UdpProc) us process, $(Format-Num $c.UdpThr) us packet thread | $(Format-Verdict $c.UdpProc 3.5) (packet thread: $(Format-Verdict $c.UdpThr 3.5)) |"
        & $line "| dp CPU per forwarded packet under TCP bulk <= 5 us | $(Format-Num $c.TcpProc) us process, $(Format-Num $c.TcpThr) us packet thread | $(Format-Verdict $c.TcpProc 5) (packet thread: $(Format-Verdict $c.TcpThr 5)) |"
        if ($med.ContainsKey('b')) {
            $b = $med['b']
            & $line "| TCP through (c) >= 35 % of (b) | $(Format-Num ($c.Tcp / $b.Tcp * 100) 'N1') % ($(Format-Num $c.Tcp) of $(Format-Num $b.Tcp) Gbit/s) | $(Format-Verdict ($c.Tcp / $b.Tcp) 0.35 -AtLeast) |"
            & $line ("| ping (c) < 2.5 x (b) | avg $(Format-Num ($c.Ping / $b.Ping)) x ($(Format-Num $c.Ping 'N3') vs $(Format-Num $b.Ping 'N3') ms); " +
                "median $(Format-Num ($c.PingMedian / $b.PingMedian)) x ($(Format-Num $c.PingMedian 'N3') vs $(Format-Num $b.PingMedian 'N3') ms) | " +
                "avg: $(($c.Ping -lt 2.5 * $b.Ping) ? 'met' : 'not met'), median: $(($c.PingMedian -lt 2.5 * $b.PingMedian) ? 'met' : 'not met') |")
        }
    }
    $md.ToString()
}

# ---- main ---------------------------------------------------------------------------------------------------------
if ((id -u) -ne '0') { throw 'The datapath benchmark needs root (namespaces, tc, AF_PACKET).' }
if (-not (Test-Path (Join-Path $root 'bin/NvRedirect.dll')) -or -not (Test-Path (Join-Path $root 'bin/nvr-dp.dll'))) {
    throw "No build in $root/bin: run 'dotnet pwsh ./build.ps1 Build' first."
}
Install-Tools
Import-Module (Join-Path $root 'NvRedirect.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'PolicyBench.psm1') -Force

$machine = Get-Machine
$loadBefore = Get-LoadAverage
$tempDir = Join-Path ([IO.Path]::GetTempPath()) "nvb-$PID"
New-Item -ItemType Directory -Path $tempDir -Force | Out-Null
$results = [Collections.Generic.List[object]]::new()
try {
    Write-Host "== datapath benchmark: $Runs run(s) of $($Modes -join ', ') under offloads $($Offloads -join ', '), $Seconds s per iperf3 test$($Rules -gt 0 ? ", $Rules policy rules in (c)" : '')"
    Write-Host ($machine | Format-List | Out-String).Trim()
    foreach ($config in $Offloads) {
        for ($run = 1; $run -le $Runs; $run++) {
            foreach ($mode in $Modes) {
                Write-Host "-- $config, run $run, $($ModeTitle[$mode]) (load $(Get-LoadAverage))"
                $r = Measure-Mode $mode $run $config $tempDir
                $results.Add($r)
                $dpText = $r.UdpDp ? ('; dp UDP {0} / {1} us, TCP {2} / {3} us per packet (process / thread), ring drops {4} / {5}' -f (Format-Num $r.UdpDp.ProcessUsPerPacket),
                        (Format-Num $r.UdpDp.ThreadUsPerPacket), (Format-Num $r.TcpDp.ProcessUsPerPacket), (Format-Num $r.TcpDp.ThreadUsPerPacket), $r.UdpDp.RxDrops, $r.TcpDp.RxDrops) : ''
                Write-Host ('   TCP {0} Gbit/s; UDP sent {1} kpps, at eth0 {2} kpps, app {3} kpps; ping avg {4} ms{5}' -f (Format-Num $r.Tcp.Gbps),
                    (Format-Num $r.Udp.SentKpps 'N0'), (Format-Num $r.Udp.IfaceKpps 'N0'), (Format-Num $r.Udp.AppKpps 'N0'), (Format-Num $r.Ping.Avg 'N3'), $dpText)
            }
        }
    }
}
finally {
    Remove-Item -LiteralPath $tempDir -Recurse -Force -ErrorAction SilentlyContinue
}
if ($Runs -lt 2) { Write-Warning 'A single run on a noisy machine says little; use -Runs 2 or more.' }
$report = Format-Report $machine $results $loadBefore (Get-LoadAverage)
Write-Host ''
Write-Host $report
if ($MarkdownPath) { Set-Content -LiteralPath $MarkdownPath -Value $report }
if ($JsonPath) { ConvertTo-Json @($results) -Depth 6 | Set-Content -LiteralPath $JsonPath }
