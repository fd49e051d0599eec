<#
.SYNOPSIS
    Benchmark (not a test) of the kernel fast path's two costs outside the forwarding itself: the revocation latency
    of a policy change, and nvr-dp's CPU per packet for the first packets of new sessions, with the fast path on and
    off in the same run.
.DESCRIPTION
    Two seed topologies side by side (New-SeedTopology under unique names nvb-<pid>-on-* and nvb-<pid>-off-*; the
    second with Add-WorkloadInterception -FastPath:$false, as bench/datapath.ps1's mode c), each with nvr-dp
    (Start-Datapath) on vth configured like tests/pester/FastPath.Tests.ps1: service port vth, the workload with tap
    off, a Protect policy (Set-DpPolicy, default Deny) allowing TCP 10.10.10.66 -> 10.10.10.88:5101 (rule 10), UDP
    :6101 (rule 11) and ICMP (rule 12); an echo server (Start-AgentEchoServer) in the container namespace on TCP 5101
    and UDP 6101. The two are measured interleaved (on, off, on, off ...), so load from other work spreads over both.

    Revocation (Runs rounds per setting): bench/fastpath_client.py --mode revoke in the host namespace holds one TCP
    connection to 5101 and sends 16-byte messages back to back, each after the previous echo. Once it has made 200
    round trips (and, with the fast path on, the workload's map holds the connection and counts its packets), the
    script reads CLOCK_MONOTONIC (t0), runs Remove-DpPolicyRule -Id 10 (the allow rule of the held connection; the
    default Deny remains), and reads the clock again when the cmdlet returns (t1). The client notes on the same clock
    when its connection fails (the reset nvr-dp sends for the first packet it sees after the change). Reported: the
    cmdlet's time (t1 - t0), policy change to the reset seen by the client (reset - t0), and cmdlet return to reset
    (reset - t1: negative when the reset arrived before the cmdlet had returned), each as median / min / max; and
    with the fast path on, whether the map held nothing of the connection when the cmdlet returned. Rule 10 is put
    back (Set-DpPolicy) before the next round.

    First packets (Batches measured batches per setting after one unmeasured warm-up batch): fastpath_client.py
    --mode sessions makes Sessions UDP request/reply exchanges with UDP 6101, each from its own source port, in
    windows of 250: every exchange is a new session, and nvr-dp forwards exactly its first packet each way (the
    request: a new session, a policy decision; the reply: with the fast path on, the session has now seen both
    directions and is published, two map updates). Per batch, nvr-dp's packet thread's time on a CPU (schedstat) and
    utime+stime are read before and after, and divided by the delta of the daemon's forwarded-frame counter
    (Get-Datapath's Counters.TXPackets); sessions are cleared (Clear-DpSession, which also deletes their map entries)
    between batches, outside the measured windows. Sessions stays under 8192 so that every session fits in the map
    (16384 entries, two per session).

    The machine is printed as in the other benchmarks. Everything created (namespaces, daemons, echo servers, control
    sockets, logs) is removed in finally blocks. Needs root, a build (dotnet pwsh ./build.ps1 Build) and python3.
.PARAMETER Runs
    Revocations per setting (default 7).
.PARAMETER Batches
    Measured batches of new sessions per setting (default 5).
.PARAMETER Sessions
    New sessions per batch (default 3000, at most 8000).
.PARAMETER MarkdownPath
    Also write the machine, every measurement and the medians as Markdown to this file.
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/fastpath.ps1 -Runs 7 -Batches 5 -MarkdownPath /tmp/fastpath.md
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 100)][int]$Runs = 7,
    [ValidateRange(1, 100)][int]$Batches = 5,
    [ValidateRange(100, 8000)][int]$Sessions = 3000,
    [string]$MarkdownPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$env:NO_COLOR = '1'
$root = Split-Path $PSScriptRoot -Parent
if ((id -u) -ne '0') { throw 'The fast-path benchmark needs root (namespaces, tc, BPF, AF_PACKET).' }
if (-not (Test-Path (Join-Path $root 'bin/nvr-dp.dll'))) { throw "No build in $root/bin: run 'dotnet pwsh ./build.ps1 Build' first." }
if (-not (Get-Command python3 -CommandType Application -ErrorAction SilentlyContinue)) { throw 'The fast-path benchmark needs python3.' }
if ([Diagnostics.Stopwatch]::Frequency -ne 1000000000) { throw 'Stopwatch is not CLOCK_MONOTONIC in ns here; the client''s times cannot be compared.' }
Import-Module (Join-Path $root 'NvRedirect.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'BenchSupport.psm1') -Force

$HostIp = '10.10.10.66'; $WorkloadIp = '10.10.10.88'; $WorkloadMac = '1a:27:f3:87:3a:27'; $UcMac = '4e:65:75:56:00:b4'
$MacBytes = [byte[]](0x1a, 0x27, 0xf3, 0x87, 0x3a, 0x27)
$TcpPort = 5101; $UdpPort = 6101
$Client = Join-Path $PSScriptRoot 'fastpath_client.py'
$Inv = [Globalization.CultureInfo]::InvariantCulture
function Format-Num($Value, [string]$Format = 'N2') {
    if ($null -eq $Value -or ($Value -is [double] -and [double]::IsNaN($Value))) { return '-' }
    ([double]$Value).ToString($Format, $Inv)
}
function Get-Load { ((Get-Content /proc/loadavg) -split ' ')[0..2] -join ' ' }

function Set-AllowPolicy($Ctx) {
    Set-DpPolicy -Mac $WorkloadMac -Rule (New-DpRule -Source $HostIp -Destination $WorkloadIp -Port $TcpPort -Protocol TCP -Id 10),
        (New-DpRule -Source $HostIp -Destination $WorkloadIp -Port $UdpPort -Protocol UDP -Id 11),
        (New-DpRule -Source $HostIp -Destination $WorkloadIp -Protocol ICMP -Id 12) -DefaultAction Deny -ControlSocket $Ctx.Socket -Confirm:$false
}

# One setting: the seed topology (fast path on or off), nvr-dp, the policy, the echo server. Cleanup steps go to $Ctx.Cleanup.
function New-Setting([string]$Name, [bool]$FastPath, $Cleanup) {
    $p = "nvb-$PID-$Name"
    $ctx = [pscustomobject]@{ Name = $Name; FastPath = $FastPath; Agent = "$p-agent"; Container = "$p-ctr"; Host = "$p-host"
        Socket = "/tmp/$p.sock"; Log = "/tmp/$p.log"; Pid = 0 }
    $c = $ctx
    # Remove-SeedTopology deletes the namespaces but leaves the agent namespace's fast-path pins (its directory under
    # /sys/fs/bpf/nvredirect, and the map) for the next Add-WorkloadInterception to sweep: this run's own go with it
    $Cleanup.Add({
            Remove-SeedTopology -AgentNamespace $c.Agent -ContainerNamespace $c.Container -HostNamespace $c.Host -Confirm:$false
            Remove-Item -LiteralPath "/sys/fs/bpf/nvredirect/$($c.Agent)" -Recurse -Force -ErrorAction SilentlyContinue }.GetNewClosure())
    $t = New-SeedTopology -AgentNamespace $ctx.Agent -ContainerNamespace $ctx.Container -HostNamespace $ctx.Host
    $i = $t.Interception
    $on = (Add-WorkloadInterception -Namespace $ctx.Agent -EntryLink $i.EntryLink -InnerLink $i.InnerLink -MonitorLink $i.MonitorLink `
            -WorkloadMac $WorkloadMac -UcMac $UcMac -FastPath:$FastPath -Confirm:$false).FastPath
    if ([bool]$on -ne $FastPath) { throw "The interception of setting $Name has FastPath $on, expected ${FastPath}: $((Get-WorkloadInterception $ctx.Agent).FastPathReason)" }
    $Cleanup.Add({ Stop-Datapath -ControlSocket $c.Socket -Confirm:$false -ErrorAction SilentlyContinue; Remove-Item -LiteralPath $c.Socket, $c.Log -ErrorAction SilentlyContinue }.GetNewClosure())
    $dp = Start-Datapath -Namespace $ctx.Agent -ControlSocket $ctx.Socket -LogPath $ctx.Log -Confirm:$false
    $ctx.Pid = $dp.Pid
    Add-DpServicePort vth -ControlSocket $ctx.Socket -Confirm:$false
    Get-WorkloadInterception $ctx.Agent | Add-DpMac -Tap $false -ControlSocket $ctx.Socket -Confirm:$false
    Set-AllowPolicy $ctx
    $server = Start-AgentEchoServer -Namespace $ctx.Container -TcpPort $TcpPort -UdpPort $UdpPort -Confirm:$false
    $Cleanup.Add({ Stop-AgentEchoServer -Id $server.Id -Abort -Confirm:$false -ErrorAction SilentlyContinue }.GetNewClosure())
    # warm-up: ARP, and the path works
    $out = & ip netns exec $ctx.Host ping -q -n -c 3 -i 0.2 -W 2 $WorkloadIp 2>&1
    if ($LASTEXITCODE -ne 0) { throw "ping through setting $Name failed: $out" }
    $ctx
}

function Start-Client([string]$Ns, [string[]]$Arguments) {
    $psi = [Diagnostics.ProcessStartInfo]::new('ip')
    foreach ($a in @('netns', 'exec', $Ns, 'python3', $Client) + $Arguments) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.UseShellExecute = $false
    [Diagnostics.Process]::Start($psi)
}

function Read-ClientLine($Process, [int]$TimeoutSeconds, [string]$What) {
    $task = $Process.StandardOutput.ReadLineAsync()
    if (-not $task.Wait($TimeoutSeconds * 1000) -or $null -eq $task.Result) {
        if (-not $Process.HasExited) { $Process.Kill() }
        throw "fastpath_client.py gave no $What within $TimeoutSeconds s: $($Process.StandardError.ReadToEnd())"
    }
    $task.Result
}

function Get-HeldEntry($Ctx, [int]$LocalPort) {
    @([NvRedirect.Core.Bpf.FastPathMap]::Entries($Ctx.Agent, $MacBytes) | Where-Object { $_.Protocol -eq 6 -and ($_.SourcePort -eq $LocalPort -or $_.DestinationPort -eq $LocalPort) })
}

function Measure-Revocation($Ctx, [int]$Run) {
    Set-AllowPolicy $Ctx
    $p = Start-Client $Ctx.Host @('--mode', 'revoke', '--address', $WorkloadIp, '--port', "$TcpPort", '--warmup', '200')
    try {
        $ready = Read-ClientLine $p 15 'ready line'
        if ($ready -notmatch '^ready (\d+)$') { throw "fastpath_client.py: unexpected '$ready'" }
        $port = [int]$Matches[1]
        $published = $null
        if ($Ctx.FastPath) {
            # published and counting: the connection is on the fast path
            $deadline = [DateTime]::UtcNow.AddSeconds(5)
            do {
                $e = @(Get-HeldEntry $Ctx $port | Where-Object { "$($_.Direction)" -eq 'ToWorkload' })
                if ($e.Count -eq 1 -and $e[0].Packets -ge 50) { break }
                if ([DateTime]::UtcNow -gt $deadline) { throw "setting $($Ctx.Name): the held connection (port $port) is not on the fast path after 5 s." }
                Start-Sleep -Milliseconds 20
            } while ($true)
            $published = $e[0].Packets
        }
        else { Start-Sleep -Milliseconds 100 }
        $t0 = [Diagnostics.Stopwatch]::GetTimestamp()
        Remove-DpPolicyRule -Mac $WorkloadMac -Id 10 -ControlSocket $Ctx.Socket -Confirm:$false
        $t1 = [Diagnostics.Stopwatch]::GetTimestamp()
        $left = $Ctx.FastPath ? @(Get-HeldEntry $Ctx $port).Count : 0
        $j = Read-ClientLine $p 10 'result' | ConvertFrom-Json
        [pscustomobject]@{ Setting = $Ctx.Name; Run = $Run; Load = Get-Load; PublishedPackets = $published; EntriesAfter = $left
            CmdletMs = ($t1 - $t0) / 1e6; ChangeToResetMs = ($j.reset_ns - $t0) / 1e6; ReturnToResetMs = ($j.reset_ns - $t1) / 1e6
            LastAnswerMs = ($j.last_answer_ns - $t0) / 1e6; RoundTrips = $j.round_trips; Error = $j.error }
    }
    finally { if (-not $p.HasExited) { $p.Kill() }; $p.Dispose() }
}

# The packet threads' time on a CPU (schedstat, ns) and utime+stime (ticks), and the forwarded-frame counter.
function Get-DpSample($Ctx) {
    $onCpu = 0L; $ticks = 0L
    foreach ($t in Get-ChildItem "/proc/$($Ctx.Pid)/task") {
        try {
            if (-not (Get-Content -Raw "$($t.FullName)/comm").StartsWith('nvr-dp packets')) { continue }
            $onCpu += [long]((Get-Content -Raw "$($t.FullName)/schedstat").Trim() -split ' ')[0]
            $f = ((Get-Content -Raw "$($t.FullName)/stat") -split '\)\s', 2)[1] -split ' '
            $ticks += [long]$f[11] + [long]$f[12]
        } catch { }
    }
    [pscustomobject]@{ OnCpuNs = $onCpu; Ticks = $ticks; Tx = [long](Get-Datapath -ControlSocket $Ctx.Socket).Counters.TXPackets }
}

function Measure-Sessions($Ctx, [int]$Batch) {
    Clear-DpSession -ControlSocket $Ctx.Socket -Confirm:$false
    $before = Get-DpSample $Ctx
    $p = Start-Client $Ctx.Host @('--mode', 'sessions', '--address', $WorkloadIp, '--port', "$UdpPort", '--count', "$Sessions", '--base-port', '20000')
    try { $j = Read-ClientLine $p 120 'result' | ConvertFrom-Json } finally { if (-not $p.HasExited) { $p.Kill() }; $p.Dispose() }
    $after = Get-DpSample $Ctx
    $published = $Ctx.FastPath ? @([NvRedirect.Core.Bpf.FastPathMap]::Entries($Ctx.Agent, $MacBytes) | Where-Object Protocol -EQ 17).Count : 0
    $tx = [math]::Max(1, $after.Tx - $before.Tx)
    [pscustomobject]@{ Setting = $Ctx.Name; Batch = $Batch; Load = Get-Load; Answered = $j.answered; Forwarded = $after.Tx - $before.Tx
        PublishedEntries = $published; UsPerPacket = ($after.OnCpuNs - $before.OnCpuNs) / 1e3 / $tx
        TicksUsPerPacket = ($after.Ticks - $before.Ticks) / [int](getconf CLK_TCK) * 1e6 / $tx; Seconds = $j.seconds }
}

$loadBefore = Get-LoadAverage
$load3Before = Get-Load
$cleanup = [Collections.Generic.List[scriptblock]]::new()
$revocations = [Collections.Generic.List[object]]::new()
$batchResults = [Collections.Generic.List[object]]::new()
try {
    Write-Host "== fast-path benchmark: $Runs revocations and $Batches x $Sessions new sessions per setting (fast path on / off)"
    $settings = @((New-Setting 'on' $true $cleanup), (New-Setting 'off' $false $cleanup))
    for ($r = 1; $r -le $Runs; $r++) {
        foreach ($s in $settings) {
            $m = Measure-Revocation $s $r
            $revocations.Add($m)
            Write-Host ('-- revocation {0}, fast path {1}: cmdlet {2} ms, change to reset {3} ms, return to reset {4} ms ({5})' -f $r, $s.Name,
                (Format-Num $m.CmdletMs), (Format-Num $m.ChangeToResetMs), (Format-Num $m.ReturnToResetMs), $m.Error)
        }
    }
    for ($b = 0; $b -le $Batches; $b++) {
        foreach ($s in $settings) {
            $m = Measure-Sessions $s $b
            if ($b -gt 0) { $batchResults.Add($m) }
            Write-Host ('-- sessions batch {0}{1}, fast path {2}: {3} answered, {4} forwarded, {5} us/packet, {6} map entries' -f $b, ($b -eq 0 ? ' (warm-up)' : ''), $s.Name,
                $m.Answered, $m.Forwarded, (Format-Num $m.UsPerPacket), $m.PublishedEntries)
        }
    }
}
finally {
    for ($i = $cleanup.Count - 1; $i -ge 0; $i--) { try { & $cleanup[$i] } catch { Write-Warning "cleanup: $_" } }
}

$machine = Get-BenchMachine $loadBefore
$commit = (git -C $root rev-parse --short HEAD 2>$null)
if ($commit -and (git -C $root status --porcelain --untracked-files=no 2>$null)) { $commit += ' (with uncommitted changes)' }
$md = [Text.StringBuilder]::new()
$line = { param($s) [void]$md.AppendLine($s) }
& $line ("Machine: CPUs $($machine.CPUs), $($machine.Memory), kernel $($machine.Kernel), $($machine.'.NET'), PowerShell $($machine.PowerShell), " +
    "commit $commit, $($machine.Date); load average $load3Before before, $(Get-Load) after.")
& $line ''
& $line 'Revocation (Remove-DpPolicyRule of the held connection''s allow rule; times in ms from the cmdlet''s call, t0, or its return, t1):'
& $line ''
& $line '| fast path | run | load | published pkts | cmdlet (t1 - t0) | change to reset (reset - t0) | return to reset (reset - t1) | last echo (- t0) | map entries at t1 | client saw |'
& $line '|---|---|---|---|---|---|---|---|---|---|'
foreach ($m in $revocations) {
    & $line ("| $($m.Setting) | $($m.Run) | $($m.Load) | $($m.PublishedPackets ?? '-') | $(Format-Num $m.CmdletMs) | $(Format-Num $m.ChangeToResetMs) | " +
        "$(Format-Num $m.ReturnToResetMs) | $(Format-Num $m.LastAnswerMs) | $($m.EntriesAfter) | $($m.Error) |")
}
& $line ''
& $line ("First packets of new sessions ($Sessions UDP request/reply sessions per batch; us/packet = the packet thread's time on a CPU " +
    '(schedstat) / frames forwarded; ticks: utime+stime / forwarded):')
& $line ''
& $line '| fast path | batch | load | answered | forwarded | UDP map entries after | us/packet | ticks us/packet | seconds |'
& $line '|---|---|---|---|---|---|---|---|---|'
foreach ($m in $batchResults) {
    & $line ("| $($m.Setting) | $($m.Batch) | $($m.Load) | $($m.Answered) | $($m.Forwarded) | $($m.PublishedEntries) | $(Format-Num $m.UsPerPacket) | " +
        "$(Format-Num $m.TicksUsPerPacket) | $(Format-Num $m.Seconds) |")
}
& $line ''
& $line 'Medians (min - max):'
& $line ''
& $line '| fast path | revocations | cmdlet ms | change to reset ms | return to reset ms | batches | first packets: us/packet (schedstat) | ticks us/packet |'
& $line '|---|---|---|---|---|---|---|---|'
foreach ($name in 'on', 'off') {
    $rv = @($revocations | Where-Object Setting -EQ $name); $bt = @($batchResults | Where-Object Setting -EQ $name)
    $mm = { param($rows, $f) $v = @($rows | ForEach-Object $f); "$(Format-Num (Get-Median $v)) ($(Format-Num ($v | Measure-Object -Minimum).Minimum) - $(Format-Num ($v | Measure-Object -Maximum).Maximum))" }
    & $line ("| $name | $($rv.Count) | $(& $mm $rv { $_.CmdletMs }) | $(& $mm $rv { $_.ChangeToResetMs }) | $(& $mm $rv { $_.ReturnToResetMs }) | " +
        "$($bt.Count) | $(& $mm $bt { $_.UsPerPacket }) | $(& $mm $bt { $_.TicksUsPerPacket }) |")
}
$report = $md.ToString()
Write-Host ''
Write-Host $report
if ($MarkdownPath) { Set-Content -LiteralPath $MarkdownPath -Value $report }
