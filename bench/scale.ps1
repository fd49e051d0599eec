<#
.SYNOPSIS
    Benchmark (not a test): the control plane with N = 1, 10, 100, 500, 1000 workloads in one enforcer (one agent
    namespace, one nvr-dp), every per-workload operation timed, and how each grows with N (issue 17).
.DESCRIPTION
    Per N, in namespaces made for the run (bench-scale-XXXXXXXX-agent, -host, -ctr; removed at the end, also on
    failure), built with the cmdlets only: the monitor pair vbr/vth in the agent namespace, and per workload i two veth
    pairs, vxI (entry port) with its peer in the host namespace and viI (inner port) with its peer in the container
    namespace, whose MAC (02:5c:00:00:HI:LO) is the workload's: New-AgentLink, Set-AgentLink -MacAddress -Up, each a
    pipeline of N objects. One nvr-dp runs in the agent namespace (Start-Datapath -Unsupervised, service port vth).

    Operations, each timed around the work only (a pipeline of N where the cmdlets take one; per workload = total / N):
      build        the topology above (links, MACs, up), per workload
      intercept    N objects piped into Add-WorkloadInterception -Namespace agent (lab workloads: -WorkloadMac with
                   their own entry and inner ports, one monitor port), per workload
      get all      Get-WorkloadInterception -Namespace agent (all N), per call and per workload
      get one      Get-WorkloadInterception -Namespace agent -WorkloadMac M, median of 10 calls
      register     the interceptions piped into Add-DpMac -Tap $false (binds WorkloadMac, UcMac, BcMac, DatapathLink)
      mode         the interceptions piped into Set-DpWorkloadMode -Mode Protect
      policy       one rule per workload (New-DpRule -Mac, made before the clock starts) piped into Add-DpPolicyRule
      remove one   Remove-WorkloadInterception -Namespace agent -WorkloadMac M, median of 10 calls (N/2 for N < 20;
                   before the query load)
      remove all   Get-WorkloadInterception -Namespace agent | Remove-WorkloadInterception (the rest), per workload
    After each phase the result is checked (N interceptions of 8 rules, N registered workloads in Protect with one
    rule, none left after removal), so a phase that silently does less fails the run.

    Memory: nvr-dp's VmRSS before registering, after registering N (per workload), and, at the largest N, under a
    steady query load: -Queries (default 10,000) queries through one client (nvr_get_state of every workload, the
    session list, the session count, every policy, in turn), VmRSS sampled every tenth of them.

    Growth: the per-workload cost of each operation at the largest N over its cost at N=10 (target: at most 2).
.PARAMETER Count
    The Ns (default 1, 10, 100, 500, 1000).
.PARAMETER MaxN
    Leave out every N above this (e.g. -MaxN 100 for a quick run).
.PARAMETER Queries
    Queries of the memory phase (default 10,000; 0 leaves it out).
.PARAMETER Markdown
    Print the results as Markdown tables (for docs/performance.md).
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 4000)]
    [int[]]$Count = @(1, 10, 100, 500, 1000),
    [ValidateRange(1, 4000)]
    [int]$MaxN = 4000,
    [ValidateRange(0, 1000000)]
    [int]$Queries = 10000,
    [switch]$Markdown
)
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot '../NvRedirect.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'BenchSupport.psm1') -Force

$loadBefore = Get-LoadAverage
$counts = @($Count | Where-Object { $_ -le $MaxN } | Sort-Object -Unique)
if ($counts.Count -eq 0) { throw "No N is at most -MaxN $MaxN." }

function Get-Rss([int]$ProcessId) {
    [long]((Select-String -Path "/proc/$ProcessId/status" -Pattern '^VmRSS:\s+(\d+)').Matches[0].Groups[1].Value) * 1KB
}

function Measure-Ms([scriptblock]$Work) {
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $null = & $Work
    $sw.Elapsed.TotalMilliseconds
}

function Get-WorkloadMacText([int]$I) { '02:5c:00:00:{0:x2}:{1:x2}' -f ($I -shr 8), ($I -band 0xff) }

function Invoke-ScaleRun([int]$N, [bool]$QueryLoad) {
    $tag = [Guid]::NewGuid().ToString('N').Substring(0, 8)
    $agent = "bench-scale-$tag-agent"; $hostNs = "bench-scale-$tag-host"; $ctr = "bench-scale-$tag-ctr"
    $socket = "/run/nvredirect/bench-scale-$tag.sock"
    $log = "/tmp/bench-scale-$tag.log"
    $r = [ordered]@{ N = $N }
    $dp = $null
    try {
        New-AgentNamespace $agent, $hostNs, $ctr | Out-Null
        New-AgentLink vbr vth -Namespace $agent | Out-Null
        'vbr', 'vth' | ForEach-Object { [pscustomobject]@{ Name = $_; Namespace = $agent } } | Set-AgentLink -Up
        $workloads = foreach ($i in 0..($N - 1)) {
            [pscustomobject]@{ Index = $i; WorkloadMac = Get-WorkloadMacText $i; EntryLink = "vx$i"; InnerLink = "vi$i"; MonitorLink = 'vbr'; Namespace = $agent }
        }
        $r.Build = (Measure-Ms {
                $workloads | ForEach-Object { [pscustomobject]@{ Name = $_.EntryLink; PeerName = "hx$($_.Index)"; Namespace = $agent; PeerNamespace = $hostNs } } | New-AgentLink
                $workloads | ForEach-Object { [pscustomobject]@{ Name = $_.InnerLink; PeerName = "ci$($_.Index)"; Namespace = $agent; PeerNamespace = $ctr } } | New-AgentLink
                $workloads | ForEach-Object { [pscustomobject]@{ Name = "ci$($_.Index)"; Namespace = $ctr; MacAddress = $_.WorkloadMac } } | Set-AgentLink -Up
                $workloads | ForEach-Object { [pscustomobject]@{ Name = "hx$($_.Index)"; Namespace = $hostNs } } | Set-AgentLink -Up
                $workloads | ForEach-Object { $_.EntryLink; $_.InnerLink } | ForEach-Object { [pscustomobject]@{ Name = $_; Namespace = $agent } } | Set-AgentLink -Up
            }) / $N

        $dp = Start-Datapath -Namespace $agent -ControlSocket $socket -LogPath $log -Unsupervised
        Add-DpServicePort vth -ControlSocket $socket
        $r.RssEmpty = Get-Rss $dp.Pid

        $r.Intercept = (Measure-Ms { $workloads | Add-WorkloadInterception }) / $N
        $all = $null
        $r.GetAll = Measure-Ms { $script:all = @(Get-WorkloadInterception -Namespace $agent) }
        if ($script:all.Count -ne $N -or @($script:all | Where-Object { $_.Rules.Count -ne 8 }).Count) { throw "N=${N}: Get-WorkloadInterception listed $($script:all.Count) interceptions (expected $N, 8 rules each)." }
        $probe = $workloads[[int][Math]::Floor($N / 2)].WorkloadMac
        $r.GetOne = Get-Median @(1..10 | ForEach-Object {
                Measure-Ms { $one = @(Get-WorkloadInterception -Namespace $agent -WorkloadMac $probe); if ($one.Count -ne 1) { throw "N=${N}: Get one found $($one.Count)." } }
            })

        $r.Register = (Measure-Ms { $script:all | Add-DpMac -Tap $false -ControlSocket $socket }) / $N
        $state = Get-Datapath -ControlSocket $socket
        if ($state.Workloads.Count -ne $N) { throw "N=${N}: the datapath has $($state.Workloads.Count) workloads after Add-DpMac (expected $N)." }
        $r.RssLoaded = Get-Rss $dp.Pid

        $r.Mode = (Measure-Ms { $script:all | Set-DpWorkloadMode -Mode Protect -ControlSocket $socket }) / $N
        $rules = $script:all | ForEach-Object { New-DpRule -Mac $_.WorkloadMac -Source 192.0.2.0/24 -Port 8080 -Protocol TCP }
        $r.Policy = (Measure-Ms { $rules | Add-DpPolicyRule -ControlSocket $socket }) / $N
        $policies = @(Get-DpPolicy -ControlSocket $socket)
        if ($policies.Count -ne $N -or @($policies | Where-Object { $_.Mode -ne 'Protect' -or $_.Rules.Count -ne 1 }).Count) { throw "N=${N}: after Set-DpWorkloadMode and Add-DpPolicyRule not every workload is in Protect with one rule." }

        $removeOne = foreach ($k in 1..([Math]::Max(1, [Math]::Min(10, [Math]::Floor($N / 2))))) {
            $mac = $workloads[$N - $k].WorkloadMac
            Measure-Ms { Remove-WorkloadInterception -Namespace $agent -WorkloadMac $mac }
        }
        $r.RemoveOne = Get-Median @($removeOne)
        if ($QueryLoad -and $Queries -gt 0) {
            $client = [NvRedirect.Core.Datapath.DpClient]::Open($socket)
            try {
                $samples = [Collections.Generic.List[long]]::new()
                $samples.Add((Get-Rss $dp.Pid))
                $step = [Math]::Max(1, [int]($Queries / 10))
                $sw = [Diagnostics.Stopwatch]::StartNew()
                for ($q = 1; $q -le $Queries; $q++) {
                    switch ($q % 4) {
                        0 { $null = $client.State($null) }
                        1 { $null = $client.ListSessions() }
                        2 { $null = $client.CountSessions() }
                        3 { $null = $client.Policies($null) }
                    }
                    if ($q % $step -eq 0) { $samples.Add((Get-Rss $dp.Pid)) }
                }
                $r.QueryMs = $sw.Elapsed.TotalMilliseconds / $Queries
                $r.RssQueries = $samples.ToArray()
            }
            finally { $client.Dispose() }
            [GC]::Collect() # the replies read were this process's garbage: not the removal's to pay for
        }

        $rest = $N - @($removeOne).Count
        if ($rest -gt 0) {
            $r.RemoveAll = (Measure-Ms { Get-WorkloadInterception -Namespace $agent | Remove-WorkloadInterception }) / $rest
        }
        $left = @(Get-WorkloadInterception -Namespace $agent)
        if ($left.Count) { throw "N=${N}: $($left.Count) interceptions left after removing all." }
        [pscustomobject]$r
    }
    finally {
        if ($dp) { try { Stop-Datapath -ControlSocket $socket -Force | Out-Null } catch { Write-Warning "stopping nvr-dp: $_" } }
        foreach ($ns in $agent, $hostNs, $ctr) { if (Get-AgentNamespace | Where-Object Name -eq $ns) { Remove-AgentNamespace $ns } }
        # the daemon keeps its configuration next to its socket for a restart; this run's daemon is gone for good
        Remove-Item $log, "$socket.pid", "$socket.state" -ErrorAction SilentlyContinue
    }
}

$results = foreach ($n in $counts) {
    Write-Host "N=$n ..."
    $sw = [Diagnostics.Stopwatch]::StartNew()
    Invoke-ScaleRun -N $n -QueryLoad ($n -eq $counts[-1])
    Write-Host ("N={0} done in {1:N0} s" -f $n, $sw.Elapsed.TotalSeconds)
}

$machine = Get-BenchMachine $loadBefore
$ops = [ordered]@{
    Build = 'build (per workload)'; Intercept = 'intercept (per workload)'; GetAll = 'get all (per call)'; GetOne = 'get one (per call)'
    Register = 'register in datapath (per workload)'; Mode = 'change mode (per workload)'; Policy = 'change policy (per workload)'
    RemoveOne = 'remove one (per call)'; RemoveAll = 'remove all via pipeline (per workload)'
}
$ref = $results | Where-Object N -eq 10 | Select-Object -First 1
$top = $results[-1]
function Format-Ms($v) { if ($null -eq $v) { '-' } else { '{0:N2}' -f $v } }
function Get-Growth($op) {
    if (-not $ref -or $top.N -eq 10 -or $null -eq $ref.$op -or $null -eq $top.$op) { return '-' }
    # get all is one call for N workloads: its per-workload cost is the call over N
    $a = if ($op -eq 'GetAll') { $top.$op / $top.N } else { $top.$op }
    $b = if ($op -eq 'GetAll') { $ref.$op / $ref.N } else { $ref.$op }
    '{0:N2}x' -f ($a / $b)
}

$rows = foreach ($op in $ops.Keys) {
    $row = [ordered]@{ Operation = $ops[$op] }
    foreach ($x in $results) { $row["N=$($x.N) ms"] = Format-Ms $x.$op }
    $row["growth $($top.N)/10"] = Get-Growth $op
    [pscustomobject]$row
}
$memory = foreach ($x in $results) {
    [pscustomobject][ordered]@{
        N = $x.N; 'nvr-dp RSS empty MiB' = '{0:N1}' -f ($x.RssEmpty / 1MB); 'with N registered MiB' = '{0:N1}' -f ($x.RssLoaded / 1MB)
        'per workload KiB' = '{0:N1}' -f (($x.RssLoaded - $x.RssEmpty) / 1KB / $x.N)
    }
}
$ones = [Math]::Max(1, [Math]::Min(10, [Math]::Floor($top.N / 2)))
$releaseSeconds = ($top.RemoveOne * $ones + $(if ($top.N -gt $ones) { $top.RemoveAll * ($top.N - $ones) } else { 0 })) / 1000
$listing = "listing $($top.N): {0:N0} ms; releasing $($top.N) (remove one x{1} + remove all): {2:N1} s" -f $top.GetAll, $ones, $releaseSeconds
$queryLine = if ($top.PSObject.Properties.Name -contains 'RssQueries') {
    "query load at N=$($top.N): $Queries queries, {0:N2} ms each; nvr-dp RSS every {1} queries (MiB): {2}" -f $top.QueryMs, [Math]::Max(1, [int]($Queries / 10)),
        (($top.RssQueries | ForEach-Object { '{0:N1}' -f ($_ / 1MB) }) -join ', ')
}

if ($Markdown) {
    "Machine: " + (($machine.GetEnumerator() | ForEach-Object { "$($_.Key) $($_.Value)" }) -join '; ')
    ''
    $cols = $rows[0].PSObject.Properties.Name
    '| ' + ($cols -join ' | ') + ' |'
    '|' + (($cols | ForEach-Object { '---' }) -join '|') + '|'
    foreach ($row in $rows) { '| ' + (($cols | ForEach-Object { $row.$_ }) -join ' | ') + ' |' }
    ''
    $mcols = $memory[0].PSObject.Properties.Name
    '| ' + ($mcols -join ' | ') + ' |'
    '|' + (($mcols | ForEach-Object { '---' }) -join '|') + '|'
    foreach ($m in $memory) { '| ' + (($mcols | ForEach-Object { $m.$_ }) -join ' | ') + ' |' }
    ''
    $listing
    $queryLine
}
else {
    [pscustomobject]$machine | Format-List
    $rows | Format-Table -AutoSize
    $memory | Format-Table -AutoSize
    $listing
    $queryLine
}
