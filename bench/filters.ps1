<#
.SYNOPSIS
    Benchmark (not a test): installs the seed's six tc filters for N workloads through the cmdlets, through one `tc`
    process per filter (NeuVector's way) and through `tc -batch`, and prints the timings and the machine.
.DESCRIPTION
    The workloads live in one uniquely named namespace made for the run (bench-filters-XXXXXXXX), as NeuVector's
    working namespace holds them: per workload i a vex<i> and a vin<i> veth (peers vexp<i>, vinp<i>), and one vbr
    (peer vth) shared by all, each with an ingress qdisc. Per workload the six rules of the seed (neuvector-dp.md 4.3),
    with the workload's own MACs (M = 02:00:00:00:hi:lo, U = 4e:65:75:56:hi:lo) and prefs (vbr: 2i and 2i+1):
      vex<i> 10001 ip   unicast, dst MAC = M    -> mirror to vbr       vex<i> 10002 all  everything -> mirror to vin<i>
      vin<i> 10001 ip   unicast, src MAC = M    -> mirror to vbr       vin<i> 10002 all  everything -> mirror to vex<i>
      vbr    2i    all  dst MAC = U             -> mirror to vin<i>    vbr    2i+1  all  src MAC = U -> mirror to vex<i>
    This machine's kernel has no act_pedit and refuses the four rules that rewrite a MAC, so by default every method
    installs the MIRRED-ONLY form of all six rules: the same matches and mirred actions, without the pedit action
    (-Pedit installs the seed's own form, for a kernel that has act_pedit). Every action
    carries NvRedirect's 16-byte cookie (the cmdlets add it; the tc lines say `cookie ...`), so all methods install
    the very same filters.

    Methods (the work they time: 6N filters added to devices that have their qdiscs and no filters):
      cmdlet per filter   one Add-RedirectFilter command per filter (-Match/-Action text), as a script loop would do
      cmdlet pipeline     all 6N filters piped into one Add-RedirectFilter (bound by property name)
      tc per filter       one `tc -n NS filter add ...` process per filter, started by a bash loop (NeuVector execs
                          one tc per filter from Go; bash keeps PowerShell's own process start out of the figure)
      tc -batch           one `tc -n NS -batch FILE` for all 6N filters

    Each phase is timed with a Stopwatch around the work only; the tc command file is written before. After each
    phase every device's filters are read back in one `tc -batch` of `filter show` commands: there must be exactly 6N
    u32 nodes, each with the cookie, and the dump (handles, action indexes and counters aside) must be the same for
    every method, or the run fails, so a broken method cannot look fast. Between phases the filters are removed
    (untimed) by replacing each ingress qdisc. Runs are interleaved (run 1 of every method, then run 2...), and every
    method does an untimed warm-up round on two workloads first (JIT, command and module caches).
.PARAMETER Count
    Workload counts (default 1, 100, 500; 1 to 4000, vbr's prefs 2N+1 must fit): 6N filters each.
.PARAMETER Runs
    Timed repetitions per method and count (default 3); every run is reported, plus the median.
.PARAMETER Markdown
    Print the results as a Markdown section (for docs/performance.md) instead of plain tables.
.PARAMETER Pedit
    Install the four MAC-rewriting rules as the seed has them, with their pedit action before the mirred one. Needs a
    kernel with act_pedit: run it under Debian's stock kernel (tests/stock-kernel/run.sh, docs/stock-kernel.md),
    whose figures compare the methods with one another, not with the host's.
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/filters.ps1 -Count 1, 100, 500 -Runs 3 -Markdown
#>
[CmdletBinding()]
param(
    # a list, also as one comma-separated word (pwsh -File passes "1,100,500" as one string)
    [string[]]$Count = @('1', '100', '500'),
    [ValidateRange(1, 100)]
    [int]$Runs = 3,
    [switch]$Markdown,
    [switch]$Pedit
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$env:NO_COLOR = '1'
Import-Module (Join-Path $PSScriptRoot '../NvRedirect.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'BenchSupport.psm1') -Force

$Count = @($Count -split ',' | ForEach-Object { $_.Trim() } | Where-Object { $_ } | ForEach-Object {
    $n = 0
    if (-not [int]::TryParse($_, [ref]$n) -or $n -lt 1 -or $n -gt 4000) { throw "-Count takes workload counts from 1 to 4000, not '$_'." }
    $n
})
$WarmupWorkloads = 2
$Cookie = -join ([System.Text.Encoding]::ASCII.GetBytes('nvredir1') | ForEach-Object { $_.ToString('x2') }) + ('0' * 16)

function Write-Log([string]$Text) { if ($Markdown) { [Console]::Error.WriteLine($Text) } else { Write-Host $Text } }

function Invoke-Native([string]$What, [scriptblock]$Command) {
    $out = & $Command 2>&1
    if ($LASTEXITCODE -ne 0) { throw "$What failed with exit code ${LASTEXITCODE}: $($out | Select-Object -Last 5)" }
    $out
}

function Get-Hex([int]$Value, [int]$Digits) { $Value.ToString("x$Digits") }

# The six mirred-only rules of workload i, each as the parameters Add-RedirectFilter binds by property name.
function Get-WorkloadRule([int]$I) {
    $hi = Get-Hex ($I -shr 8) 2; $lo = Get-Hex ($I -band 0xff) 2
    $m = "02000000$hi$lo"   # the container's MAC, M
    $u = "4e657556$hi$lo"   # NeuVector's unicast MAC for it, U
    $matchDstM = @('u8 0 1 at -14', "u16 0x$($m.Substring(0, 4)) 0xffff at -14", "u32 0x$($m.Substring(4)) 0xffffffff at -12")
    $matchSrcM = @('u8 0 1 at -14', "u32 0x$($m.Substring(0, 8)) 0xffffffff at -8", "u16 0x$($m.Substring(8)) 0xffff at -4")
    $matchDstU = @("u16 0x$($u.Substring(0, 4)) 0xffff at -14", "u32 0x$($u.Substring(4)) 0xffffffff at -12")
    $matchSrcU = @("u32 0x$($u.Substring(0, 8)) 0xffffffff at -8", "u16 0x$($u.Substring(8)) 0xffff at -4")
    # the MAC rewrites of the seed's form (-Pedit): destination or source MAC := the other one
    function Rewrite([string]$Field, [string]$Mac) {
        if (-not $Pedit) { return @() }
        if ($Field -eq 'dst') { "pedit munge offset -14 u16 set 0x$($Mac.Substring(0, 4)) munge offset -12 u32 set 0x$($Mac.Substring(4)) pipe" }
        else { "pedit munge offset -8 u32 set 0x$($Mac.Substring(0, 8)) munge offset -4 u16 set 0x$($Mac.Substring(8)) pipe" }
    }
    [pscustomobject]@{ LinkName = "vex$I"; Priority = 10001; Protocol = 'ip'; Match = $matchDstM; Action = @(Rewrite dst $u) + 'mirred egress mirror dev vbr' }
    [pscustomobject]@{ LinkName = "vex$I"; Priority = 10002; Protocol = 'all'; Match = @('u8 0 0'); Action = @("mirred egress mirror dev vin$I") }
    [pscustomobject]@{ LinkName = "vin$I"; Priority = 10001; Protocol = 'ip'; Match = $matchSrcM; Action = @(Rewrite src $u) + 'mirred egress mirror dev vbr' }
    [pscustomobject]@{ LinkName = "vin$I"; Priority = 10002; Protocol = 'all'; Match = @('u8 0 0'); Action = @("mirred egress mirror dev vex$I") }
    [pscustomobject]@{ LinkName = 'vbr'; Priority = 2 * $I; Protocol = 'all'; Match = $matchDstU; Action = @(Rewrite dst $m) + "mirred egress mirror dev vin$I" }
    [pscustomobject]@{ LinkName = 'vbr'; Priority = 2 * $I + 1; Protocol = 'all'; Match = $matchSrcU; Action = @(Rewrite src $m) + "mirred egress mirror dev vex$I" }
}

# The same rule as a tc command line (without "tc -n NS"), with the cookie the cmdlets add.
function ConvertTo-TcLine($Rule) {
    "filter add dev $($Rule.LinkName) pref $($Rule.Priority) parent ffff: protocol $($Rule.Protocol) u32 " +
    (($Rule.Match | ForEach-Object { "match $_" }) -join ' ') + ' ' + (($Rule.Action | ForEach-Object { "action $_ cookie $Cookie" }) -join ' ')
}

function Get-Device([int]$N) { @(1..$N | ForEach-Object { "vex$_"; "vin$_" }) + 'vbr' }

# Every device's filters in one tc process; returns the node count, the nodes with our cookie, and the dump without
# what differs between two installs of the same filters (handles, hash tables, action indexes, counters).
function Get-FilterState([string]$Ns, [string[]]$Devices, [string]$Dir) {
    $file = Join-Path $Dir 'show.batch'
    Set-Content -Path $file -Value ($Devices | ForEach-Object { "filter show dev $_ ingress" })
    $lines = @(Invoke-Native 'tc -batch (show)' { & tc -n $Ns -batch $file })
    $nodes = @($lines | Where-Object { $_ -match '^filter .* fh [0-9a-f]+:[0-9a-f]*:[0-9a-f]+ ' }).Count
    $cookies = @($lines | Where-Object { $_ -match "^\s+cookie $Cookie$" }).Count
    $normal = ($lines | Where-Object { $_ -notmatch '^\s+index \d+ ref' } |
        ForEach-Object { $_ -replace '\bfh [0-9a-f:]+', 'fh *' -replace 'key ht [0-9a-f]+', 'key ht *' }) -join "`n"
    [pscustomobject]@{ Nodes = $nodes; Cookies = $cookies; Hash = [Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($normal))) }
}

# Removes every filter by replacing each device's ingress qdisc (one tc process).
function Clear-Filter([string]$Ns, [string[]]$Devices, [string]$Dir) {
    $file = Join-Path $Dir 'reset.batch'
    Set-Content -Path $file -Value ($Devices | ForEach-Object { "qdisc del dev $_ ingress"; "qdisc add dev $_ ingress" })
    $null = Invoke-Native 'tc -batch (reset)' { & tc -n $Ns -batch $file }
}

$methods = [ordered]@{
    'cmdlet per filter' = { param($ns, $rules, $file)
        foreach ($r in $rules) { $null = Add-RedirectFilter -LinkName $r.LinkName -Namespace $ns -Priority $r.Priority -Protocol $r.Protocol -Match $r.Match -Action $r.Action }
    }
    'cmdlet pipeline'   = { param($ns, $rules, $file) $null = $rules | Add-RedirectFilter -Namespace $ns }
    'tc per filter'     = { param($ns, $rules, $file)
        # word splitting of $line is intended: the file holds plain words, no quoting
        & bash -c 'while read -r line; do tc -n "$1" $line || exit 1; done < "$2"' bench $ns $file
        if ($LASTEXITCODE) { throw 'the bash loop of tc filter add failed' }
    }
    'tc -batch'         = { param($ns, $rules, $file) & tc -n $ns -batch $file; if ($LASTEXITCODE) { throw 'tc -batch failed' } }
}

function Invoke-Phase([string]$Method, [string]$Ns, [object[]]$Rules, [string[]]$Devices, [string]$Dir, [hashtable]$Reference) {
    $file = Join-Path $Dir 'add.batch'
    Set-Content -Path $file -Value ($Rules | ForEach-Object { ConvertTo-TcLine $_ })
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    & $methods[$Method] $Ns $Rules $file
    $sw.Stop()
    $state = Get-FilterState $Ns $Devices $Dir
    $actions = ($Rules | ForEach-Object { $_.Action.Count } | Measure-Object -Sum).Sum
    if ($state.Nodes -ne $Rules.Count -or $state.Cookies -ne $actions) {
        throw "$Method installed $($state.Nodes) u32 nodes with $($state.Cookies) cookies, expected $($Rules.Count) nodes with $actions (one per action)."
    }
    $key = "$($Rules.Count)"
    if (-not $Reference.ContainsKey($key)) { $Reference[$key] = @{ Hash = $state.Hash; Method = $Method } }
    elseif ($Reference[$key].Hash -ne $state.Hash) { throw "$Method installed other filters than $($Reference[$key].Method) (the tc filter show dumps differ)." }
    Clear-Filter $Ns $Devices $Dir
    $sw.Elapsed.TotalMilliseconds
}

$loadBefore = Get-LoadAverage
$results = [System.Collections.Generic.List[object]]::new()
foreach ($n in $Count) {
    $ns = 'bench-filters-' + [Guid]::NewGuid().ToString('N').Substring(0, 8)
    $dir = Join-Path ([IO.Path]::GetTempPath()) $ns
    $created = $false
    try {
        New-Item -ItemType Directory -Path $dir | Out-Null
        $null = New-AgentNamespace -Name $ns
        $created = $true
        $devices = Get-Device $n
        # untimed set-up: the veths and their ingress qdiscs, with ip -batch and tc -batch
        $linkFile = Join-Path $dir 'links.batch'
        Set-Content -Path $linkFile -Value (@('link add vbr type veth peer name vth') + @(1..$n | ForEach-Object { "link add vex$_ type veth peer name vexp$_"; "link add vin$_ type veth peer name vinp$_" }))
        $null = Invoke-Native 'ip -batch (links)' { & ip -n $ns -batch $linkFile }
        $qdiscFile = Join-Path $dir 'qdiscs.batch'
        Set-Content -Path $qdiscFile -Value ($devices | ForEach-Object { "qdisc add dev $_ ingress" })
        $null = Invoke-Native 'tc -batch (qdiscs)' { & tc -n $ns -batch $qdiscFile }

        $rules = @(1..$n | ForEach-Object { Get-WorkloadRule $_ })
        $warmup = @(1..([Math]::Min($WarmupWorkloads, $n)) | ForEach-Object { Get-WorkloadRule $_ })
        Write-Log "bench/filters.ps1: $n workload(s), $($rules.Count) filters, $Runs runs per method, namespace $ns"
        $reference = @{}
        foreach ($method in $methods.Keys) { $null = Invoke-Phase $method $ns $warmup $devices $dir $reference }
        $times = @{}
        foreach ($method in $methods.Keys) { $times[$method] = [System.Collections.Generic.List[double]]::new() }
        foreach ($run in 1..$Runs) {
            foreach ($method in $methods.Keys) {
                $ms = Invoke-Phase $method $ns $rules $devices $dir $reference
                $times[$method].Add($ms)
                Write-Log ('  N={0,-4} run {1}  {2,-18} {3,10:N1} ms' -f $n, $run, $method, $ms)
            }
        }
        foreach ($method in $methods.Keys) {
            $list = $times[$method].ToArray()
            $median = Get-Median $list
            $results.Add([pscustomobject]@{
                Workloads     = $n
                Filters       = $rules.Count
                Method        = $method
                RunsMs        = $list
                MedianMs      = $median
                MsPerFilter   = $median / $rules.Count
                FiltersPerSec = $rules.Count / ($median / 1000)
            })
        }
    }
    finally {
        if ($created) {
            try { Remove-AgentNamespace -Name $ns -Confirm:$false } catch { Write-Warning "Could not remove namespace ${ns}: $_ (remove it with: ip netns del $ns)" }
        }
        Remove-Item -Recurse -Force $dir -ErrorAction SilentlyContinue
    }
}

$machine = Get-BenchMachine $loadBefore
$form = if ($Pedit) { 'with pedit, as the seed has them' } else { 'mirred-only form' }
if ($Markdown) {
    $runHeads = (1..$Runs | ForEach-Object { "run $_ (ms)" }) -join ' | '
    "### tc filters: the seed's six rules ($form) for $($Count -join ', ') workloads"
    ''
    "Measured $($machine.Date) with ``dotnet pwsh -NoProfile -File bench/filters.ps1 -Count $($Count -join ',') -Runs $Runs$(if ($Pedit) { ' -Pedit' }) -Markdown``."
    ''
    "| workloads | filters | method | $runHeads | median (ms) | ms per filter | filters/s |"
    "|---:|---:|---|$('---:|' * $Runs)---:|---:|---:|"
    foreach ($r in $results) {
        $runCells = ($r.RunsMs | ForEach-Object { '{0:F0}' -f $_ }) -join ' | '
        '| {0} | {1} | {2} | {3} | {4:F0} | {5:F3} | {6:F0} |' -f $r.Workloads, $r.Filters, $r.Method, $runCells, $r.MedianMs, $r.MsPerFilter, $r.FiltersPerSec
    }
    ''
    'Machine:'
    ''
    foreach ($k in $machine.Keys) { "- $($k): $($machine[$k])" }
}
else {
    ''
    "tc filters: the seed's six rules ($form) per workload, $Runs runs (all runs in ms, median, per filter, filters per second)"
    $results | Format-Table -AutoSize Workloads, Filters, Method,
        @{ n = 'Runs (ms)'; e = { ($_.RunsMs | ForEach-Object { '{0:F0}' -f $_ }) -join ' / ' } },
        @{ n = 'Median (ms)'; e = { '{0:F0}' -f $_.MedianMs }; a = 'right' },
        @{ n = 'ms/filter'; e = { '{0:F3}' -f $_.MsPerFilter }; a = 'right' },
        @{ n = 'filters/s'; e = { '{0:F0}' -f $_.FiltersPerSec }; a = 'right' } | Out-String -Width 200
    'Machine'
    foreach ($k in $machine.Keys) { '  {0,-13} {1}' -f $k, $machine[$k] }
}
