<#
.SYNOPSIS
    Benchmark (not a test): creates and deletes N veth pairs through the cmdlets, through one `ip` process per
    operation, and through `ip -batch`, and prints the timings and the machine.
.DESCRIPTION
    Everything happens inside a uniquely named namespace created for the run (bench-links-XXXXXXXX), so the root
    namespace and other people's namespaces are never touched; the namespace is removed at the end, also on failure
    or Ctrl-C.

    Methods (each creates pairs bvA<i>/bvB<i>, i = 1..N, then deletes them by their first end):
      cmdlet per pair    New-AgentLink / Remove-AgentLink, one command per pair (as a script loop would do)
      cmdlet pipeline    all N pairs piped into one New-AgentLink, then into one Remove-AgentLink
      ip per op (pwsh)   one `ip -n NS link add|del ...` process per pair, started from PowerShell
      ip per op (bash)   the same processes started by one bash loop (separates pwsh's process start cost)
      ip -batch          one `ip -n NS -batch FILE` for all adds, one for all deletes

    Each phase is timed with a Stopwatch around the work only. After each phase the namespace is checked with
    `ip -d -j -n NS link show type veth`: exactly the 2N expected veths after create, none after delete, or the
    run fails, so a broken method cannot look fast. Runs are interleaved (run 1 of every method, then run 2...)
    so that a noisy moment on the machine does not hit one method only. Before the timed runs every method does
    one untimed warm-up round of a few pairs (JIT compilation, module and command lookup caches).
.PARAMETER Count
    Veth pairs per phase (default 200).
.PARAMETER Runs
    Timed repetitions per method (default 3); every run is reported, plus the median.
.PARAMETER Markdown
    Print the results as a Markdown section (for docs/performance.md) instead of plain tables.
.PARAMETER Breakdown
    Also time the layers under New-AgentLink / Remove-AgentLink one by one, through the module's .NET API
    (RouteHandle, LinkQuery, LinkMessages), N times each: opening a namespace handle (dedicated OS thread, setns,
    socket), the bare create request, the existence checks plus the create request, building the returned object,
    the link lookup and the bare delete request. Shows where a cmdlet's time goes beyond the kernel's own work.
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/links.ps1 -Count 200 -Runs 3
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 9999)]
    [int]$Count = 200,
    [ValidateRange(1, 100)]
    [int]$Runs = 3,
    [switch]$Markdown,
    [switch]$Breakdown
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$env:NO_COLOR = '1'
Import-Module (Join-Path $PSScriptRoot '../NvRedirect.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'BenchSupport.psm1') -Force

$WarmupPairs = 5

# Progress goes to the host, or to stderr with -Markdown so that stdout holds nothing but the Markdown section.
function Write-Log([string]$Text) {
    if ($Markdown) { [Console]::Error.WriteLine($Text) } else { Write-Host $Text }
}

function Invoke-Ip {
    param([Parameter(ValueFromRemainingArguments)][string[]]$Arguments)
    $out = & ip @Arguments 2>&1
    if ($LASTEXITCODE -ne 0) { throw "ip $($Arguments -join ' ') failed with exit code ${LASTEXITCODE}: $out" }
    $out
}

function Get-PairNames([int]$N) {
    foreach ($i in 1..$N) { [pscustomobject]@{ Name = "bvA$i"; PeerName = "bvB$i" } }
}

# The namespace must hold exactly these veths (names compared, not just counted).
function Assert-Veths([string]$Ns, [string[]]$Expected, [string]$What) {
    $json = (Invoke-Ip -d -j -n $Ns link show type veth) -join ''
    $actual = @(@($json | ConvertFrom-Json) | ForEach-Object ifname | Sort-Object)
    $wanted = @($Expected | Sort-Object)
    $diff = @(Compare-Object $wanted $actual)
    if ($actual.Count -ne $wanted.Count -or $diff.Count -gt 0) {
        throw "$What left $($actual.Count) veths in $Ns, expected $($wanted.Count) (differences: $(($diff | Select-Object -First 6 | ForEach-Object { "$($_.SideIndicator)$($_.InputObject)" }) -join ', '))."
    }
}

# Each method: Create/Delete take the namespace and the pair list and do the work (timed); nothing else is timed.
$methods = [ordered]@{
    'cmdlet per pair'  = @{
        Create = { param($ns, $pairs) foreach ($p in $pairs) { $null = New-AgentLink -Name $p.Name -PeerName $p.PeerName -Namespace $ns } }
        Delete = { param($ns, $pairs) foreach ($p in $pairs) { Remove-AgentLink -Name $p.Name -Namespace $ns -Confirm:$false } }
    }
    'cmdlet pipeline'  = @{
        Create = { param($ns, $pairs) $null = $pairs | New-AgentLink -Namespace $ns }
        Delete = { param($ns, $pairs) $pairs | Remove-AgentLink -Namespace $ns -Confirm:$false }
    }
    'ip per op (pwsh)' = @{
        Create = { param($ns, $pairs) foreach ($p in $pairs) { & ip -n $ns link add $p.Name type veth peer name $p.PeerName; if ($LASTEXITCODE) { throw "ip link add $($p.Name) failed" } } }
        Delete = { param($ns, $pairs) foreach ($p in $pairs) { & ip -n $ns link del $p.Name; if ($LASTEXITCODE) { throw "ip link del $($p.Name) failed" } } }
    }
    'ip per op (bash)' = @{
        # the names are generated, not passed, so the bash loop does nothing but start ip processes
        Create = { param($ns, $pairs) & bash -c 'for i in $(seq 1 $2); do ip -n "$1" link add bvA$i type veth peer name bvB$i || exit 1; done' bench $ns $pairs.Count; if ($LASTEXITCODE) { throw 'bash loop of ip link add failed' } }
        Delete = { param($ns, $pairs) & bash -c 'for i in $(seq 1 $2); do ip -n "$1" link del bvA$i || exit 1; done' bench $ns $pairs.Count; if ($LASTEXITCODE) { throw 'bash loop of ip link del failed' } }
    }
    'ip -batch'        = @{
        # the batch files are written before the stopwatch starts (see Prepare)
        Prepare = { param($ns, $pairs, $dir)
            Set-Content -Path (Join-Path $dir 'add.batch') -Value ($pairs | ForEach-Object { "link add $($_.Name) type veth peer name $($_.PeerName)" })
            Set-Content -Path (Join-Path $dir 'del.batch') -Value ($pairs | ForEach-Object { "link del $($_.Name)" })
        }
        Create = { param($ns, $pairs, $dir) & ip -n $ns -batch (Join-Path $dir 'add.batch'); if ($LASTEXITCODE) { throw 'ip -batch (add) failed' } }
        Delete = { param($ns, $pairs, $dir) & ip -n $ns -batch (Join-Path $dir 'del.batch'); if ($LASTEXITCODE) { throw 'ip -batch (del) failed' } }
    }
}

function Invoke-Phase([string]$Method, [string]$Phase, [string]$Ns, [object[]]$Pairs, [string]$Dir) {
    $m = $methods[$Method]
    if ($m.Contains('Prepare')) { & $m.Prepare $Ns $Pairs $Dir }
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    & $m[$Phase] $Ns $Pairs $Dir
    $sw.Stop()
    $expected = if ($Phase -eq 'Create') { @($Pairs.Name) + @($Pairs.PeerName) } else { @() }
    Assert-Veths $Ns $expected "$Method ($($Phase.ToLowerInvariant()))"
    $sw.Elapsed.TotalMilliseconds
}

# The layers under one New-AgentLink (open handle, checks, create request, object) and one Remove-AgentLink
# (lookup, delete request), each timed over all N pairs on its own.
function Invoke-Breakdown([string]$Ns, [object[]]$Pairs) {
    $step = [ordered]@{}
    function Measure-Step([string]$Name, [scriptblock]$Work) {
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        & $Work
        $sw.Stop()
        $step[$Name] = $sw.Elapsed.TotalMilliseconds
    }
    $all = @($Pairs.Name) + @($Pairs.PeerName)
    Measure-Step 'open namespace handle (thread + setns + socket)' { foreach ($p in $Pairs) { [NvRedirect.Core.Links.RouteHandle]::Open($Ns).Dispose() } }
    $h = [NvRedirect.Core.Links.RouteHandle]::Open($Ns)
    try {
        Measure-Step 'bare create request' { foreach ($p in $Pairs) { $h.Socket.Execute([NvRedirect.Core.Links.LinkMessages]::CreateVeth($p.Name, $p.PeerName), 'create') } }
        Assert-Veths $Ns $all 'breakdown (bare create)'
        $q = [NvRedirect.Core.Links.LinkQuery]::new()
        try { Measure-Step 'build returned object (LinkQuery.Link)' { foreach ($p in $Pairs) { $null = $q.Link($Ns, $p.Name) } } }
        finally { $q.Dispose() }
        $records = [System.Collections.Generic.List[object]]::new()
        Measure-Step 'look up link by name' { foreach ($p in $Pairs) { $records.Add($h.GetLink($p.Name)) } }
        Measure-Step 'bare delete request' { foreach ($r in $records) { $h.Delete($r) } }
        Assert-Veths $Ns @() 'breakdown (bare delete)'
        # the peer namespace is given explicitly: RouteHandle.CreateVeth reads null/"" as the root namespace
        Measure-Step 'existence checks + create request (CreateVeth)' { foreach ($p in $Pairs) { $h.CreateVeth($p.Name, $p.PeerName, $Ns) } }
        Assert-Veths $Ns $all 'breakdown (CreateVeth)'
        foreach ($p in $Pairs) { $h.Delete($h.GetLink($p.Name)) }   # untimed clean-up for the next run
        Assert-Veths $Ns @() 'breakdown (clean-up)'
    }
    finally { $h.Dispose() }
    $step
}

$loadBefore = Get-LoadAverage
$ns = 'bench-links-' + [Guid]::NewGuid().ToString('N').Substring(0, 8)
$dir = Join-Path ([IO.Path]::GetTempPath()) $ns
$results = [System.Collections.Generic.List[object]]::new()
$created = $false
try {
    New-Item -ItemType Directory -Path $dir | Out-Null
    $null = New-AgentNamespace -Name $ns
    $created = $true
    $pairs = @(Get-PairNames $Count)
    $warmup = @(Get-PairNames $WarmupPairs)
    Write-Log "bench/links.ps1: $Count veth pairs, $Runs runs per method, namespace $ns"

    foreach ($method in $methods.Keys) {
        $null = Invoke-Phase $method Create $ns $warmup $dir
        $null = Invoke-Phase $method Delete $ns $warmup $dir
    }
    $times = @{}
    foreach ($method in $methods.Keys) { $times[$method] = @{ Create = [System.Collections.Generic.List[double]]::new(); Delete = [System.Collections.Generic.List[double]]::new() } }
    foreach ($run in 1..$Runs) {
        foreach ($method in $methods.Keys) {
            foreach ($phase in 'Create', 'Delete') {
                $ms = Invoke-Phase $method $phase $ns $pairs $dir
                $times[$method][$phase].Add($ms)
                Write-Log ('  run {0}  {1,-17} {2,-6} {3,9:N1} ms' -f $run, $method, $phase.ToLowerInvariant(), $ms)
            }
        }
    }
    $steps = [ordered]@{}
    if ($Breakdown) {
        $null = Invoke-Breakdown $ns $warmup
        foreach ($run in 1..$Runs) {
            $one = Invoke-Breakdown $ns $pairs
            foreach ($k in $one.Keys) {
                if (-not $steps.Contains($k)) { $steps[$k] = [System.Collections.Generic.List[double]]::new() }
                $steps[$k].Add($one[$k])
                Write-Log ('  run {0}  breakdown: {1,-48} {2,9:N1} ms' -f $run, $k, $one[$k])
            }
        }
    }
    foreach ($method in $methods.Keys) {
        foreach ($phase in 'Create', 'Delete') {
            $list = $times[$method][$phase].ToArray()
            $median = Get-Median $list
            $results.Add([pscustomobject]@{
                Method       = $method
                Phase        = $phase.ToLowerInvariant()
                RunsMs       = $list
                MedianMs     = $median
                MsPerPair    = $median / $Count
                PairsPerSec  = $Count / ($median / 1000)
            })
        }
    }
}
finally {
    if ($created) {
        try { Remove-AgentNamespace -Name $ns -Confirm:$false } catch { Write-Warning "Could not remove namespace ${ns}: $_ (remove it with: ip netns del $ns)" }
    }
    Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
}

$machine = Get-BenchMachine $loadBefore
if ($Markdown) {
    $runHeads = (1..$Runs | ForEach-Object { "run $_ (ms)" }) -join ' | '
    "### Links: $Count veth pairs"
    ''
    "Measured $($machine.Date) with ``dotnet pwsh -NoProfile -File bench/links.ps1 -Count $Count -Runs $Runs$(if ($Breakdown) { ' -Breakdown' }) -Markdown``."
    ''
    "| method | phase | $runHeads | median (ms) | ms per pair | pairs/s |"
    "|---|---|$('---:|' * $Runs)---:|---:|---:|"
    foreach ($r in $results) {
        $runCells = ($r.RunsMs | ForEach-Object { '{0:F0}' -f $_ }) -join ' | '
        '| {0} | {1} | {2} | {3:F0} | {4:F2} | {5:F0} |' -f $r.Method, $r.Phase, $runCells, $r.MedianMs, $r.MsPerPair, $r.PairsPerSec
    }
    if ($steps.Count) {
        ''
        "Breakdown (``-Breakdown``): the layers under the cmdlets, each timed over all $Count pairs."
        ''
        "| step | $runHeads | median (ms) | ms per pair |"
        "|---|$('---:|' * $Runs)---:|---:|"
        foreach ($k in $steps.Keys) {
            $median = Get-Median $steps[$k].ToArray()
            '| {0} | {1} | {2:F0} | {3:F3} |' -f $k, (($steps[$k] | ForEach-Object { '{0:F0}' -f $_ }) -join ' | '), $median, ($median / $Count)
        }
    }
    ''
    'Machine:'
    ''
    foreach ($k in $machine.Keys) { "- $($k): $($machine[$k])" }
}
else {
    ''
    "Links: $Count veth pairs, $Runs runs (all runs in ms, median, per pair, pairs per second)"
    $results | Format-Table -AutoSize Method, Phase,
        @{ n = 'Runs (ms)'; e = { ($_.RunsMs | ForEach-Object { '{0:F0}' -f $_ }) -join ' / ' } },
        @{ n = 'Median (ms)'; e = { '{0:F0}' -f $_.MedianMs }; a = 'right' },
        @{ n = 'ms/pair'; e = { '{0:F2}' -f $_.MsPerPair }; a = 'right' },
        @{ n = 'pairs/s'; e = { '{0:F0}' -f $_.PairsPerSec }; a = 'right' } | Out-String -Width 200
    if ($steps.Count) {
        "Breakdown: the layers under the cmdlets, each timed over all $Count pairs"
        $steps.Keys | ForEach-Object {
            $median = Get-Median $steps[$_].ToArray()
            [pscustomobject]@{ Step = $_; 'Runs (ms)' = ($steps[$_] | ForEach-Object { '{0:F0}' -f $_ }) -join ' / '; 'Median (ms)' = '{0:F0}' -f $median; 'ms/pair' = '{0:F3}' -f ($median / $Count) }
        } | Format-Table -AutoSize | Out-String -Width 200
    }
    'Machine'
    foreach ($k in $machine.Keys) { '  {0,-13} {1}' -f $k, $machine[$k] }
}
