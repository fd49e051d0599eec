<#
.SYNOPSIS
    Benchmark (not a test): takes N running containers over and gives them back, one cmdlet call per container and in
    one pipeline, and counts the pings lost by a 10 ms ping while one container is taken over and given back.
.DESCRIPTION
    The containers are made as a runtime makes them, in namespaces made for the run (bench-ctr-XXXXXXXX-*, removed at
    the end, also on failure): per container a process from `unshare --net sleep`, its eth0 a veth whose peer is a
    port of br0 in the run's host namespace, 172.31.64.(10+i)/24 (addresses for up to 200 containers) and a default
    route. One enforcer namespace and one nvr-dp (started with Start-Datapath on a socket of the run) serve them all.

    Methods (each timed around the work only; a run does take-over and give-back of all N containers):
      cmdlet per container   Add-WorkloadInterception -ProcessId PID, one call per container; then
                             Remove-WorkloadInterception -ProcessId PID, one call per container
      cmdlet pipeline        all N containers piped into one Add-WorkloadInterception (Pid binds by property name);
                             then Get-WorkloadInterception | Remove-WorkloadInterception

    After each take-over the enforcer must list N interceptions with 6 rules each and the datapath N workloads; after
    each give-back none, and every container's eth0 must have its ifindex, MAC and address again, or the run fails.
    Runs are interleaved (run 1 of each method, then run 2...); every run and the median are printed.

    Loss: a ping every 10 ms from the host namespace to container 0 runs while it is taken over (alone) and given back;
    the pings sent and lost in that window are printed for each run.
    NeuVector's way (one ip or tc process per step) is not measured by this script.
.PARAMETER Count
    How many containers (default 1 and 10; at most 200).
.PARAMETER Runs
    Runs per method (default 3).
.PARAMETER Markdown
    Print the results as a Markdown section (for docs/performance.md) instead of plain tables.
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 200)]
    [int[]]$Count = @(1, 10),
    [ValidateRange(1, 20)]
    [int]$Runs = 3,
    [switch]$Markdown
)
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot '../NvRedirect.psd1') -Force
Import-Module (Join-Path $PSScriptRoot 'BenchSupport.psm1') -Force

function Say([string]$Text) { if ($Markdown) { [Console]::Error.WriteLine($Text) } else { Write-Host $Text } }
function Invoke-Checked([string]$Exe) {
    $out = & $Exe @args 2>&1
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($args -join ' ') failed: $out" }
}

$tag = [guid]::NewGuid().ToString('N').Substring(0, 8)
$hostNs = "bench-ctr-$tag-h"; $enf = "bench-ctr-$tag-e"; $sock = "/tmp/bench-ctr-$tag.sock"; $log = "/tmp/bench-ctr-$tag.log"
$containers = [System.Collections.Generic.List[object]]::new()
$loadBefore = Get-LoadAverage
$results = [System.Collections.Generic.List[object]]::new()
$losses = [System.Collections.Generic.List[object]]::new()

function New-BenchContainer([int]$I) {
    $p = [System.Diagnostics.Process]::Start('unshare', [string[]]@('--net', 'sleep', '3600'))
    $own = (Get-Item /proc/self/ns/net).LinkTarget
    for ($t = 0; $t -lt 100 -and (Get-Item "/proc/$($p.Id)/ns/net").LinkTarget -eq $own; $t++) { Start-Sleep -Milliseconds 20 }
    Invoke-Checked ip -n $hostNs link add "bcp$I" type veth peer name eth0 netns $p.Id
    Invoke-Checked ip -n $hostNs link set "bcp$I" master br0 up
    Invoke-Checked nsenter -t $p.Id -n sh -c "ip link set lo up && ip addr add 172.31.64.$(10 + $I)/24 dev eth0 && ip link set eth0 up && ip route add default via 172.31.64.1"
    $link = (& nsenter -t $p.Id -n ip -j link show eth0 | ConvertFrom-Json)[0]
    [pscustomobject]@{ Pid = $p.Id; Process = $p; Index = $link.ifindex; Mac = $link.address; Ip = "172.31.64.$(10 + $I)" }
}

function Assert-TakenOver([int]$N) {
    $i = @(Get-WorkloadInterception -Namespace $enf)
    if ($i.Count -ne $N -or @($i | Where-Object { $_.Rules.Count -ne 6 }).Count) { throw "expected $N interceptions with 6 rules each, found $($i.Count)" }
    $w = @((Get-Datapath -ControlSocket $sock).Workloads)
    if ($w.Count -ne $N) { throw "expected $N workloads in the datapath, found $($w.Count)" }
}

function Assert-GivenBack([object[]]$Set) {
    if (@(Get-WorkloadInterception -Namespace $enf).Count) { throw 'interceptions left after the give-back' }
    foreach ($c in $Set) {
        $link = (& nsenter -t $c.Pid -n ip -j addr show eth0 | ConvertFrom-Json)[0]
        if ($link.ifindex -ne $c.Index -or $link.address -ne $c.Mac -or -not ($link.addr_info.local -contains $c.Ip)) { throw "container $($c.Pid) did not get eth0 back as it was" }
    }
}

try {
    Invoke-Checked ip netns add $hostNs
    Invoke-Checked ip -n $hostNs link add br0 type bridge
    Invoke-Checked ip -n $hostNs addr add 172.31.64.1/24 dev br0
    Invoke-Checked ip -n $hostNs link set br0 up
    $max = ($Count | Measure-Object -Maximum).Maximum
    Say "making $max containers"
    for ($i = 0; $i -lt $max; $i++) { $containers.Add((New-BenchContainer $i)) }
    # the enforcer and its datapath exist before the timing (a first take-over would make them)
    [NvRedirect.Core.Intercept.ContainerTakeover]::EnsureEnforcer($enf)
    $null = Start-Datapath -Namespace $enf -ControlSocket $sock -LogPath $log
    # warm-up (JIT, command lookup), untimed
    $containers[0] | Add-WorkloadInterception -Namespace $enf -ControlSocket $sock | Out-Null
    Get-WorkloadInterception -Namespace $enf | Remove-WorkloadInterception

    $methods = [ordered]@{
        'cmdlet per container' = @{
            Add = { param($set) foreach ($c in $set) { $null = Add-WorkloadInterception -ProcessId $c.Pid -Namespace $enf -ControlSocket $sock } }
            Remove = { param($set) foreach ($c in $set) { Remove-WorkloadInterception -ProcessId $c.Pid -Namespace $enf } }
        }
        'cmdlet pipeline' = @{
            Add = { param($set) $null = $set | Add-WorkloadInterception -Namespace $enf -ControlSocket $sock }
            Remove = { param($set) Get-WorkloadInterception -Namespace $enf | Remove-WorkloadInterception }
        }
    }
    foreach ($n in $Count) {
        $set = @($containers | Select-Object -First $n)
        for ($run = 1; $run -le $Runs; $run++) {
            foreach ($m in $methods.Keys) {
                Say "N=$n run $run $m"
                $sw = [System.Diagnostics.Stopwatch]::StartNew(); & $methods[$m].Add $set; $sw.Stop(); $add = $sw.Elapsed.TotalMilliseconds
                Assert-TakenOver $n
                $sw.Restart(); & $methods[$m].Remove $set; $sw.Stop(); $remove = $sw.Elapsed.TotalMilliseconds
                Assert-GivenBack $set
                $results.Add([pscustomobject]@{ N = $n; Method = $m; Run = $run; TakeOverMs = [math]::Round($add, 1); GiveBackMs = [math]::Round($remove, 1) })
            }
        }
    }
    # loss: a 10 ms ping to container 0 through take-over and give-back
    for ($run = 1; $run -le $Runs; $run++) {
        $c = $containers[0]
        $psi = [System.Diagnostics.ProcessStartInfo]::new('ip')
        foreach ($a in 'netns', 'exec', $hostNs, 'ping', '-n', '-q', '-i', '0.01', '-W', '1', $c.Ip) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true; $psi.UseShellExecute = $false
        $ping = [System.Diagnostics.Process]::Start($psi)
        Start-Sleep -Milliseconds 500
        $null = Add-WorkloadInterception -ProcessId $c.Pid -Namespace $enf -ControlSocket $sock
        Start-Sleep -Milliseconds 500
        Remove-WorkloadInterception -ProcessId $c.Pid -Namespace $enf
        Start-Sleep -Milliseconds 500
        & kill -INT $ping.Id
        $out = $ping.StandardOutput.ReadToEnd(); $ping.WaitForExit()
        if ($out -match '(\d+) packets transmitted, (\d+) received') {
            $losses.Add([pscustomobject]@{ Run = $run; Sent = [int]$Matches[1]; Lost = [int]$Matches[1] - [int]$Matches[2] })
        }
    }
}
finally {
    Stop-Datapath -ControlSocket $sock -ErrorAction SilentlyContinue
    foreach ($c in $containers) { if (-not $c.Process.HasExited) { $c.Process.Kill(); [void]$c.Process.WaitForExit(5000) } }
    foreach ($ns in $hostNs, $enf) { & ip netns del $ns 2>$null }
    Remove-Item -LiteralPath $log -ErrorAction Ignore
}

$machine = Get-BenchMachine $loadBefore
$summary = foreach ($g in $results | Group-Object N, Method) {
    $f = $g.Group[0]
    [pscustomobject]@{
        N = $f.N; Method = $f.Method
        'take-over ms/container (median)' = [math]::Round((Get-Median ($g.Group.TakeOverMs)) / $f.N, 1)
        'give-back ms/container (median)' = [math]::Round((Get-Median ($g.Group.GiveBackMs)) / $f.N, 1)
        'runs take-over ms' = ($g.Group.TakeOverMs -join ', ')
        'runs give-back ms' = ($g.Group.GiveBackMs -join ', ')
    }
}
if ($Markdown) {
    "Measured $($machine.Date) with ``dotnet pwsh -NoProfile -Command '& ./bench/containers.ps1 -Count $($Count -join ',') -Runs $Runs -Markdown'``; $($machine.CPUs), kernel $($machine.Kernel), load $($machine.'Load (1 min)')."
    ''
    '| N | method | take-over ms/container (median) | give-back ms/container (median) | take-over runs (ms, all N) | give-back runs (ms, all N) |'
    '|---|---|---|---|---|---|'
    foreach ($s in $summary) { "| $($s.N) | $($s.Method) | $($s.'take-over ms/container (median)') | $($s.'give-back ms/container (median)') | $($s.'runs take-over ms') | $($s.'runs give-back ms') |" }
    ''
    'Pings every 10 ms to a container while it is taken over and given back (about 1.5 s of pinging around the two calls):'
    ''
    '| run | sent | lost |'
    '|---|---|---|'
    foreach ($l in $losses) { "| $($l.Run) | $($l.Sent) | $($l.Lost) |" }
}
else {
    $machine | Format-Table -HideTableHeaders | Out-String | Write-Host
    $summary | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
    $losses | Format-Table -AutoSize | Out-String | Write-Host
}
