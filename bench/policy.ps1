<#
.SYNOPSIS
    Benchmark (not a test): what a workload's policy rules cost nvr-dp's packet thread, per new session and per packet
    of an established session.
.DESCRIPTION
    nvr-dp decides a session's policy once, when the session opens (and again only after a policy change); every
    later packet compares the policy version its session was decided under with the workload's. So the rules' cost is
    per NEW session. This script measures it with bench/new_sessions.py as the frame sender.

    Per run and rule count (counts interleaved: run 1 with every count, then run 2 ...), in a fresh namespace
    nvb-<pid>-p<run>-<rules> with a veth pair vbr<->vth (offloads as veth makes them; the sender's frames are single
    60-byte frames):
      - nvr-dp (bin/nvr-dp.dll --netns NS --foreground --strict: the rules decide, no grace period) on vth, configured with the seed's four control messages
        (internal nets, service port vth, the workload 1a:27:f3:87:3a:27 with ucmac 4e:65:75:56:00:b4, tap off);
      - with Rules > 0, the policy of bench/PolicyBench.psm1 (New-BenchPolicyRule: Rules - 3 rules that do not match,
        then the three that allow the traffic; default action DENY, dir 3) in ctrl_cfg_policy chunks of at most 8120
        bytes through Send-DpMessage, checked in nvr_get_state;
      - new_sessions.py --mode new: 60-byte UDP frames 10.10.10.66 -> 10.10.10.88:5201, each with its own source
        port, so every frame opens a session (a policy lookup, with the rules a scan of ~half of them);
      - new_sessions.py --mode same: the same frames with one source port: one session, established packets.
    Each mode sends Batches batches of Batch frames after one unmeasured warm-up batch; the sessions are cleared
    between batches (outside the measured windows). The figure is the packet thread's CPU per forwarded frame:
    schedstat's time on a CPU (ns resolution) and utime+stime (10 ms ticks) over the batches, divided by the frames
    nvr-dp forwarded (TXPackets).

    Everything created (namespaces, daemons, control sockets, log files) is removed in finally blocks.
.PARAMETER Rules
    Rule counts to compare (default 0 and 1000; 0 = no policy at all, otherwise at least 3).
.PARAMETER Runs
    Runs per rule count (default 3).
.PARAMETER Batch
    Frames per batch (distinct source ports in mode new; at most 60000, the session table holds 65536).
.PARAMETER Batches
    Measured batches per mode and run.
.PARAMETER MarkdownPath
    Also write the machine, every run and the medians as Markdown to this file.
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/policy.ps1 -Rules 0,1000 -Runs 3 -MarkdownPath /tmp/policy.md
#>
[CmdletBinding()]
param(
    [string[]]$Rules = @('0', '1000'),
    [ValidateRange(1, 50)][int]$Runs = 3,
    [ValidateRange(1000, 60000)][int]$Batch = 50000,
    [ValidateRange(1, 100)][int]$Batches = 4,
    [string]$MarkdownPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$env:NO_COLOR = '1'
$root = Split-Path $PSScriptRoot -Parent
$RuleCounts = @($Rules -split ',' | ForEach-Object Trim | Where-Object { $_ } | ForEach-Object { [int]$_ })
foreach ($n in $RuleCounts) { if ($n -ne 0 -and $n -lt 3) { throw "Rules $n`: use 0 (no policy) or at least 3." } }
if ((id -u) -ne '0') { throw 'The policy benchmark needs root (namespaces, AF_PACKET).' }
if (-not (Test-Path (Join-Path $root 'bin/nvr-dp.dll'))) { throw "No build in $root/bin: run 'dotnet pwsh ./build.ps1 Build' first." }
Import-Module (Join-Path $root 'NvRedirect.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'BenchSupport.psm1') -Force
Import-Module (Join-Path $PSScriptRoot 'PolicyBench.psm1') -Force

$WorkloadMac = '1a:27:f3:87:3a:27'; $UcMac = '4e:65:75:56:00:b4'
$Inv = [Globalization.CultureInfo]::InvariantCulture
function Format-Num($Value, [string]$Format = 'N2') {
    if ($null -eq $Value -or ($Value -is [double] -and [double]::IsNaN($Value))) { return '-' }
    ([double]$Value).ToString($Format, $Inv)
}
function Get-Load { ((Get-Content /proc/loadavg) -split ' ')[0..2] -join ' ' }

function Measure-Policy([int]$Run, [int]$Count, [string]$TempDir) {
    $name = "nvb-$PID-p$Run-$Count"
    $sock = "/tmp/$name.sock"; $log = Join-Path $TempDir "$name.log"
    $daemon = $null
    $result = [ordered]@{ Run = $Run; Rules = $Count; Load = Get-Load; Policy = $null }
    try {
        New-AgentNamespace $name -Confirm:$false | Out-Null
        New-AgentLink vbr vth -Namespace $name -Confirm:$false | Out-Null
        foreach ($l in 'lo', 'vbr', 'vth') { Set-AgentLink $l -Namespace $name -Up -Confirm:$false }
        $daemon = Start-Process -FilePath dotnet -PassThru -ArgumentList @((Join-Path $root 'bin/nvr-dp.dll'), '--netns', $name,
            '--socket', $sock, '--foreground', '--log', $log, '--strict') -RedirectStandardOutput "$log.out" -RedirectStandardError "$log.err"
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        while ($true) {
            if ($daemon.HasExited) { throw "nvr-dp exited with code $($daemon.ExitCode): $(Get-Content -Raw -ErrorAction SilentlyContinue $log)" }
            if ((Test-Path $sock) -and (Send-DpMessage '{"ctrl_keep_alive":{"seq_num":1}}' -ControlSocket $sock -ExpectReply -ErrorAction SilentlyContinue)) { break }
            if ([DateTime]::UtcNow -gt $deadline) { throw 'nvr-dp did not serve its control socket within 60 s.' }
            Start-Sleep -Milliseconds 200
        }
        # the seed's four messages, as bench/datapath.ps1 sends them
        foreach ($m in @(
                '{"ctrl_cfg_internal_net":{"flag":3,"subnet_addr":[{"ip":"172.17.0.0","mask":"255.255.0.0"},{"ip":"179.20.23.0","mask":"255.255.255.0"},{"ip":"10.10.10.0","mask":"255.255.255.0"},{"ip":"172.20.166.0","mask":"255.255.255.0"},{"ip":"10.10.10.66","mask":"255.255.255.0","iptype":"devip"},{"ip":"10.10.10.88","mask":"255.255.255.0","iptype":"devip"}]}}',
                '{"ctrl_add_srvc_port":{"iface":"vth","jumboframe":false}}',
                "{`"ctrl_add_mac`":{`"iface`":`"vth`",`"mac`":`"$WorkloadMac`",`"ucmac`":`"$UcMac`",`"bcmac`":`"ff:ff:ff:00:00:b4`",`"oldmac`":`"`",`"pmac`":`"`",`"pips`":null}}",
                "{`"ctrl_cfg_mac`":{`"tap`":false,`"macs`":[`"$WorkloadMac`"]}}")) {
            Send-DpMessage $m -ControlSocket $sock -ErrorAction Stop -Confirm:$false
        }
        if ($Count -gt 0) { $result.Policy = Install-BenchPolicy -ControlSocket $sock -Mac $WorkloadMac -Count $Count }
        elseif ($null -ne (@((Get-BenchDpState $sock).workloads | Where-Object mac -eq $WorkloadMac)[0].policy)) { throw 'The workload has a policy without one being installed.' }
        foreach ($mode in 'new', 'same') {
            $out = & python3 (Join-Path $PSScriptRoot 'new_sessions.py') --netns $name --pid $daemon.Id --socket $sock --mode $mode --batch $Batch --batches $Batches 2>&1
            if ($LASTEXITCODE -ne 0) { throw "new_sessions.py --mode $mode failed ($LASTEXITCODE): $($out -join "`n")" }
            $j = ($out | Select-Object -Last 1) | ConvertFrom-Json
            $fwd = [math]::Max(1, [long]$j.forwarded)
            $result[$mode] = [pscustomobject]@{
                Frames = [long]$j.frames; Forwarded = [long]$j.forwarded; RxDrops = [long]$j.rx_drops; Sessions = [long]$j.sessions
                UsPerFrame = $j.on_cpu_ns / 1e3 / $fwd; TicksUsPerFrame = $j.ticks / $j.clock_ticks_per_s * 1e6 / $fwd
                UserUs = $j.utime_ticks / $j.clock_ticks_per_s * 1e6 / $fwd; KernelUs = $j.stime_ticks / $j.clock_ticks_per_s * 1e6 / $fwd
                Kpps = $j.forwarded / $j.wall_s / 1e3 }
            $expected = $mode -eq 'new' ? $j.forwarded : $Batches
            if ($j.sessions -ne $expected) { Write-Warning "run $Run, $Count rules, mode $mode`: $($j.sessions) sessions created, expected $expected." }
        }
        [pscustomobject]$result
    }
    finally {
        if ($null -ne $daemon -and -not $daemon.HasExited) {
            kill -TERM $daemon.Id 2>$null
            if (-not $daemon.WaitForExit(30000)) { $daemon.Kill(); $daemon.WaitForExit(5000) | Out-Null }
        }
        Remove-Item -LiteralPath $sock -ErrorAction SilentlyContinue
        if (Test-Path "/run/netns/$name") { Remove-AgentNamespace $name -Confirm:$false }
    }
}

$loadBefore = Get-Load
$machine = Get-BenchMachine (Get-LoadAverage)
$tempDir = Join-Path ([IO.Path]::GetTempPath()) "nvb-policy-$PID"
New-Item -ItemType Directory -Path $tempDir -Force | Out-Null
$results = [Collections.Generic.List[object]]::new()
try {
    Write-Host "== policy benchmark: rules $($RuleCounts -join ', '), $Runs run(s), $Batches x $Batch frames per mode"
    for ($run = 1; $run -le $Runs; $run++) {
        foreach ($n in $RuleCounts) {
            Write-Host "-- run $run, $n rules (load $(Get-Load))"
            $r = Measure-Policy $run $n $tempDir
            $results.Add($r)
            Write-Host ('   new sessions {0} us/frame ({1} kpps, {2} sessions); one session {3} us/frame ({4} kpps)' -f (Format-Num $r.new.UsPerFrame),
                (Format-Num $r.new.Kpps 'N0'), $r.new.Sessions, (Format-Num $r.same.UsPerFrame), (Format-Num $r.same.Kpps 'N0'))
        }
    }
}
finally { Remove-Item -LiteralPath $tempDir -Recurse -Force -ErrorAction SilentlyContinue }

$commit = (git -C $root rev-parse --short HEAD 2>$null)
if ($commit -and (git -C $root status --porcelain --untracked-files=no 2>$null)) { $commit += ' (with uncommitted changes)' }
$md = [Text.StringBuilder]::new()
$line = { param($s) [void]$md.AppendLine($s) }
& $line ("Machine: $($machine.CPUs), $($machine.Memory), kernel $($machine.Kernel), $($machine.'.NET'), commit $commit, $($machine.Date); " +
    "load average $loadBefore before, $(Get-Load) after.")
$shape = $results | Where-Object { $_.Policy } | Select-Object -First 1
if ($shape) {
    $p = $shape.Policy
    & $line ''
    & $line ("Policy of $($p.Rules) rules in $($p.Chunks) ctrl_cfg_policy chunks (largest $($p.LargestChunk) bytes): $($p.Exact) single-address rules " +
        "(hashed), $($p.Range) range rules, $($p.Egress) of them egress; a new session scans the ingress range rules of its protocol before its " +
        "allow rule: $($p.ScannedTcp) for TCP, $($p.ScannedUdp) for UDP, $($p.ScannedIcmp) for ICMP.")
}
& $line ''
& $line "Every run ($Batches x $Batch frames per mode; us/frame = the packet thread's time on a CPU (schedstat) / forwarded; ticks: utime+stime / forwarded, user / kernel):"
& $line ''
& $line '| run | rules | load | mode | forwarded | ring drops | sessions created | us/frame | ticks us/frame (user / kernel) | kpps |'
& $line '|---|---|---|---|---|---|---|---|---|---|'
foreach ($r in $results) {
    foreach ($mode in 'new', 'same') {
        $m = $r.$mode
        & $line ("| $($r.Run) | $($r.Rules) | $($r.Load) | $($mode -eq 'new' ? 'new session per frame' : 'one session') | $($m.Forwarded) | $($m.RxDrops) | $($m.Sessions) | " +
            "$(Format-Num $m.UsPerFrame) | $(Format-Num $m.TicksUsPerFrame) ($(Format-Num $m.UserUs) / $(Format-Num $m.KernelUs)) | $(Format-Num $m.Kpps 'N0') |")
    }
}
& $line ''
& $line 'Medians (us per forwarded frame; user: utime alone, the part of the CPU time the policy lookup adds to):'
& $line ''
& $line '| rules | runs | new session per frame: us/frame (user) | one session: us/frame (user) | new minus one session: us/frame (user) |'
& $line '|---|---|---|---|---|'
$med = @{}
foreach ($n in $RuleCounts) {
    $g = @($results | Where-Object Rules -eq $n)
    $o = [pscustomobject]@{
        New = Get-Median @($g | ForEach-Object { $_.new.UsPerFrame }); NewUser = Get-Median @($g | ForEach-Object { $_.new.UserUs })
        Same = Get-Median @($g | ForEach-Object { $_.same.UsPerFrame }); SameUser = Get-Median @($g | ForEach-Object { $_.same.UserUs }) }
    $med[$n] = $o
    & $line ("| $n | $($g.Count) | $(Format-Num $o.New) ($(Format-Num $o.NewUser)) | $(Format-Num $o.Same) ($(Format-Num $o.SameUser)) | " +
        "$(Format-Num ($o.New - $o.Same)) ($(Format-Num ($o.NewUser - $o.SameUser))) |")
}
if ($med.ContainsKey(0)) {
    foreach ($n in $RuleCounts | Where-Object { $_ -gt 0 }) {
        $a = $med[$n]; $z = $med[0]
        & $line ''
        & $line ("$n rules against none (medians): per new session $(Format-Num ($a.New - $z.New)) us more CPU ($(Format-Num ($a.NewUser - $z.NewUser)) us more user time); " +
            "per packet of an established session $(Format-Num ($a.Same - $z.Same)) us ($(Format-Num ($a.SameUser - $z.SameUser)) us user time).")
    }
}
$report = $md.ToString()
Write-Host ''
Write-Host $report
if ($MarkdownPath) { Set-Content -LiteralPath $MarkdownPath -Value $report }
