<#
.SYNOPSIS
    Benchmark (not a test): takes N running containers over and gives them back, one cmdlet call per container and in
    one pipeline, and the same done NeuVector's way (one ip, tc or ethtool process per step), and counts what a 10 ms
    ping and an established TCP stream lose while one container is taken over and given back.
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
      NeuVector's way        the steps of NeuVector's agent (agent/pipe/port.go InterceptContainerPorts and
                             RestoreContainer, agent/pipe/tc.go), one process per step: ip -j reads of links,
                             addresses, routes and permanent neighbours; eth0 down, renamed to vex<pid>-eth0, addresses
                             flushed, temporary MAC; a veth pair eth0 (index max+100, MTU, txqueuelen) / vin<pid>-eth0;
                             MAC, addresses, up; ethtool -K tx off, rx off; vin down and into the enforcer, vex gets
                             another MAC and goes into the enforcer; routes and neighbours added again; in the enforcer
                             the two ingress qdiscs, six u32 filters and both ports up. Give-back: the six filters and
                             two qdiscs deleted, vex down and back into the container, ip -j reads, the replacement
                             deleted, vex renamed eth0 with the MAC, addresses and routes. Steps in the container run as
                             `nsenter -t PID -n TOOL ...` (one process: nsenter execs the tool), in the enforcer as
                             `ip -n` / `tc -n`. This kernel has no act_pedit, so the six filters are NeuVector's u32
                             matches with mirred only (no pedit) and mirror straight between vex and vin: the same
                             number of tc processes, but the traffic does not pass the datapath (NeuVector registers a
                             workload with its dp over the control socket, not with a process; not done here).

    After each take-over the enforcer must list N interceptions with 8 rules each and the datapath N workloads (NeuVector's
    way: N vex and N vin ports); after each give-back none, and every container's eth0 must have its ifindex, MAC and
    address again, or the run fails. After both, every container must answer a ping from the host side.
    Runs are interleaved (run 1 of each method, then run 2...); every run and the median are printed.

    Loss: while container 0 is taken over (alone) and given back, by `cmdlet per container` and by NeuVector's way, a
    ping every 10 ms from the host namespace to it and an established TCP stream (bench/tcp_stream.py: the host side
    writes 1 KiB every 5 ms, the container side counts) run; printed for each run: pings sent and lost, whether the
    connection survived (no error, every byte arrived), bytes sent and received, the longest gap between two reads at
    the receiver, and the sender's retransmissions (ss -ti).
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

$stream = Join-Path $PSScriptRoot 'tcp_stream.py'
$python = if (Test-Path /usr/bin/python3) { '/usr/bin/python3' } else { 'python3' }
$tools = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()
# A long-running tool with its output read by the caller (killed at the end if still running).
function Start-Tool {
    $psi = [System.Diagnostics.ProcessStartInfo]::new([string]$args[0])
    for ($k = 1; $k -lt $args.Count; $k++) { $psi.ArgumentList.Add([string]$args[$k]) }
    $psi.RedirectStandardOutput = $true; $psi.UseShellExecute = $false
    $p = [System.Diagnostics.Process]::Start($psi)
    $tools.Add($p)
    $p
}

$script:nvSteps = 0
# One process per step, as NeuVector's agent runs its tools; returns stdout, throws with the tool's message on failure.
function Step {
    $all = @(foreach ($a in $args) { foreach ($x in @($a)) { [string]$x } })
    $psi = [System.Diagnostics.ProcessStartInfo]::new($all[0])
    for ($k = 1; $k -lt $all.Count; $k++) { $psi.ArgumentList.Add($all[$k]) }
    $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.UseShellExecute = $false
    $p = [System.Diagnostics.Process]::Start($psi)
    $err = $p.StandardError.ReadToEndAsync()
    $out = $p.StandardOutput.ReadToEnd(); $p.WaitForExit()
    $script:nvSteps++
    if ($p.ExitCode -ne 0) { throw "$($all -join ' ') failed: $($err.Result.Trim())" }
    $out
}

# u32 matches of a MAC as destination (at -14) or source (at -8) of an ingress frame
function MacMatch([string]$Mac, [switch]$Source) {
    $h = $Mac -replace ':', ''
    if ($Source) { 'match', 'u32', "0x$($h.Substring(0, 8))", '0xffffffff', 'at', '-8', 'match', 'u16', "0x$($h.Substring(8, 4))", '0xffff', 'at', '-4' }
    else { 'match', 'u16', "0x$($h.Substring(0, 4))", '0xffff', 'at', '-14', 'match', 'u32', "0x$($h.Substring(4, 8))", '0xffffffff', 'at', '-12' }
}

# the broadcast address of an address, when it has one (ip -j addr's broadcast)
function Brd($A) { if ($A.PSObject.Properties['broadcast']) { 'broadcast', $A.broadcast } }

function NvPorts($C) { 'vex{0:x}-eth0' -f $C.Pid; 'vin{0:x}-eth0' -f $C.Pid }

# routes (not the kernel's own) and permanent neighbours of eth0 back, one process each
function Add-NvRoutes($C, $Routes, $Neighs) {
    $cn = 'nsenter', '-t', $C.Pid, '-n'
    foreach ($r in @($Routes | Where-Object { $_.dev -eq 'eth0' -and $_.PSObject.Properties['protocol'] -eq $null })) {
        $a = @('ip', 'route', 'add', $r.dst)
        if ($r.PSObject.Properties['gateway']) { $a += 'via', $r.gateway }
        $a += 'dev', 'eth0'
        if ($r.PSObject.Properties['metric']) { $a += 'metric', $r.metric }
        Step @cn @a | Out-Null
    }
    foreach ($n in @($Neighs | Where-Object { $_.dev -eq 'eth0' })) { Step @cn ip neigh replace $n.dst lladdr $n.lladdr dev eth0 nud permanent | Out-Null }
}

# NeuVector's InterceptContainerPorts for eth0 of one container (index $I: its vbr prefs and made-up MACs)
function Invoke-NvTakeover($C, [int]$I) {
    $cn = 'nsenter', '-t', $C.Pid, '-n'
    $ex, $in = NvPorts $C
    $links = Step @cn ip -j -d link show | ConvertFrom-Json
    $addrs = Step @cn ip -j addr show | ConvertFrom-Json
    $routes = Step @cn ip -j route show | ConvertFrom-Json
    $neighs = Step @cn ip -j neigh show nud permanent | ConvertFrom-Json
    $l = $links | Where-Object ifname -eq 'eth0'
    $v4 = @(($addrs | Where-Object ifname -eq 'eth0').addr_info | Where-Object family -eq 'inet')
    $local = ($links.ifindex | Measure-Object -Maximum).Maximum + 100
    Step @cn ip link set eth0 down | Out-Null
    Step @cn ip link set eth0 name $ex | Out-Null
    Step @cn ip addr flush dev $ex | Out-Null
    Step @cn ip link set $ex address 00:01:02:03:04:05 | Out-Null
    Step @cn ip link add eth0 index $local mtu $l.mtu txqueuelen $l.txqlen type veth peer name $in | Out-Null
    Step @cn ip link set eth0 address $l.address | Out-Null
    foreach ($a in $v4) { Step @cn ip addr add "$($a.local)/$($a.prefixlen)" @(Brd $a) dev eth0 | Out-Null }
    Step @cn ip link set eth0 up | Out-Null
    Step @cn ethtool -K eth0 tx off | Out-Null
    Step @cn ethtool -K eth0 rx off | Out-Null
    Step @cn ip link set $in down | Out-Null
    Step @cn ip link set $in netns $enf | Out-Null
    Step @cn ip link set $ex address ('02:4e:76:{0:x2}:{1:x2}:01' -f ($I -shr 8), ($I -band 255)) | Out-Null
    Step @cn ip link set $ex netns $enf | Out-Null
    Add-NvRoutes $C $routes $neighs
    # tc.go AttachPortPair and FwdPortPair (without pedit: see the help)
    $m = $l.address; $u = '4e:65:75:56:{0:x2}:{1:x2}' -f ($I -shr 8), ($I -band 255)
    $f = 'tc', '-n', $enf, 'filter', 'add', 'dev'
    Step tc -n $enf qdisc add dev $in ingress | Out-Null
    Step tc -n $enf qdisc add dev $ex ingress | Out-Null
    Step @f $ex pref 10001 parent ffff: protocol ip u32 match u8 0 1 at -14 @(MacMatch $m) action mirred egress mirror dev $in | Out-Null
    Step @f $ex pref 10002 parent ffff: protocol all u32 match u8 0 0 action mirred egress mirror dev $in | Out-Null
    Step @f $in pref 10001 parent ffff: protocol ip u32 match u8 0 1 at -14 @(MacMatch $m -Source) action mirred egress mirror dev $ex | Out-Null
    Step @f $in pref 10002 parent ffff: protocol all u32 match u8 0 0 action mirred egress mirror dev $ex | Out-Null
    Step @f vbr pref (30000 + 2 * $I) parent ffff: protocol all u32 @(MacMatch $u) action mirred egress mirror dev $in | Out-Null
    Step @f vbr pref (30001 + 2 * $I) parent ffff: protocol all u32 @(MacMatch $u -Source) action mirred egress mirror dev $ex | Out-Null
    Step ip -n $enf link set $ex up | Out-Null
    Step ip -n $enf link set $in up | Out-Null
}

# NeuVector's RestoreContainer for eth0 of one container
function Invoke-NvGiveBack($C, [int]$I) {
    $cn = 'nsenter', '-t', $C.Pid, '-n'
    $ex, $in = NvPorts $C
    $d = 'tc', '-n', $enf, 'filter', 'del', 'dev'
    Step @d $ex parent ffff: protocol ip pref 10001 | Out-Null
    Step @d $ex parent ffff: protocol all pref 10002 | Out-Null
    Step @d $in parent ffff: protocol ip pref 10001 | Out-Null
    Step @d $in parent ffff: protocol all pref 10002 | Out-Null
    Step @d vbr parent ffff: protocol all pref (30000 + 2 * $I) | Out-Null
    Step @d vbr parent ffff: protocol all pref (30001 + 2 * $I) | Out-Null
    Step tc -n $enf qdisc del dev $in ingress | Out-Null
    Step tc -n $enf qdisc del dev $ex ingress | Out-Null
    Step ip -n $enf link set $ex down | Out-Null
    Step ip -n $enf link set $ex netns $C.Pid | Out-Null
    $null = Step @cn ip -j link show
    $routes = Step @cn ip -j route show | ConvertFrom-Json
    $neighs = Step @cn ip -j neigh show nud permanent | ConvertFrom-Json
    $a = (Step @cn ip -j addr show dev eth0 | ConvertFrom-Json)[0]
    Step @cn ip link set eth0 down | Out-Null
    Step @cn ip link del eth0 | Out-Null
    Step @cn ip link set $ex down | Out-Null
    Step @cn ip link set $ex name eth0 | Out-Null
    Step @cn ip link set eth0 address $a.address | Out-Null
    Step @cn ip addr flush dev eth0 | Out-Null
    foreach ($x in @($a.addr_info | Where-Object family -eq 'inet')) { Step @cn ip addr add "$($x.local)/$($x.prefixlen)" @(Brd $x) dev eth0 | Out-Null }
    Step @cn ip link set eth0 up | Out-Null
    Add-NvRoutes $C $routes $neighs
}

function Assert-NvTakenOver([object[]]$Set) {
    $ports = @((Step ip -n $enf -j link show | ConvertFrom-Json).ifname | Where-Object { $_ -match '^v(ex|in)[0-9a-f]+-eth0$' })
    if ($ports.Count -ne 2 * $Set.Count) { throw "expected $(2 * $Set.Count) vex/vin ports in the enforcer, found $($ports.Count)" }
    foreach ($c in $Set) {
        $link = (& nsenter -t $c.Pid -n ip -j addr show eth0 | ConvertFrom-Json)[0]
        if ($link.address -ne $c.Mac -or -not ($link.addr_info.local -contains $c.Ip)) { throw "container $($c.Pid) has no eth0 with its MAC and address after NeuVector's take-over" }
    }
}

# every container of the set answers one ping from the host side
function Assert-Answers([object[]]$Set, [string]$When) {
    $silent = & ip netns exec $hostNs sh -c ('for a in {0}; do ping -n -q -c 1 -W 2 $a >/dev/null || echo $a; done' -f ($Set.Ip -join ' '))
    if ($silent) { throw "no ping answer $When from $($silent -join ', ')" }
}

function Assert-TakenOver([int]$N) {
    $i = @(Get-WorkloadInterception -Namespace $enf)
    if ($i.Count -ne $N -or @($i | Where-Object { $_.Rules.Count -ne 8 }).Count) { throw "expected $N interceptions with 8 rules each, found $($i.Count)" }
    $w = @((Get-Datapath -ControlSocket $sock).Workloads)
    if ($w.Count -ne $N) { throw "expected $N workloads in the datapath, found $($w.Count)" }
}

# NeuVector's way does not keep the ifindex (the original gets a new one when its index is taken in the enforcer);
# the container's new index is what the next method must keep. Returns how many containers changed index.
function Update-Index([object[]]$Set) {
    $changed = 0
    foreach ($c in $Set) {
        $ix = (& nsenter -t $c.Pid -n ip -j link show eth0 | ConvertFrom-Json)[0].ifindex
        if ($ix -ne $c.Index) { $changed++; $c.Index = $ix }
    }
    $changed
}

function Assert-GivenBack([object[]]$Set) {
    if (@(Get-WorkloadInterception -Namespace $enf).Count) { throw 'interceptions left after the give-back' }
    if (@((& ip -n $enf -j link show | ConvertFrom-Json).ifname | Where-Object { $_ -match '^v(ex|in)' }).Count) { throw 'vex/vin ports left in the enforcer after the give-back' }
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
    # NeuVector's agent gives vbr its ingress qdisc once when it starts (tc.go Connect); the cmdlets use it as they find it
    function Confirm-VbrIngress { if (-not ((& tc -n $enf qdisc show dev vbr ingress) -match 'ingress')) { Invoke-Checked tc -n $enf qdisc add dev vbr ingress } }
    Confirm-VbrIngress
    Invoke-NvTakeover $containers[0] 0; Invoke-NvGiveBack $containers[0] 0; $null = Update-Index @($containers[0])

    $methods = [ordered]@{
        'cmdlet per container' = @{
            Add = { param($set) foreach ($c in $set) { $null = Add-WorkloadInterception -ProcessId $c.Pid -Namespace $enf -ControlSocket $sock } }
            Remove = { param($set) foreach ($c in $set) { Remove-WorkloadInterception -ProcessId $c.Pid -Namespace $enf } }
            Check = { param($set) Assert-TakenOver $set.Count }
        }
        'cmdlet pipeline' = @{
            Add = { param($set) $null = $set | Add-WorkloadInterception -Namespace $enf -ControlSocket $sock }
            Remove = { param($set) Get-WorkloadInterception -Namespace $enf | Remove-WorkloadInterception }
            Check = { param($set) Assert-TakenOver $set.Count }
        }
        "NeuVector's way" = @{
            Add = { param($set) for ($i = 0; $i -lt $set.Count; $i++) { Invoke-NvTakeover $set[$i] $i } }
            Remove = { param($set) for ($i = 0; $i -lt $set.Count; $i++) { Invoke-NvGiveBack $set[$i] $i } }
            Check = { param($set) Assert-NvTakenOver $set }
            Reindex = $true
        }
    }
    foreach ($n in $Count) {
        $set = @($containers | Select-Object -First $n)
        for ($run = 1; $run -le $Runs; $run++) {
            foreach ($m in $methods.Keys) {
                Say "N=$n run $run $m"
                Confirm-VbrIngress
                $script:nvSteps = 0
                $sw = [System.Diagnostics.Stopwatch]::StartNew(); & $methods[$m].Add $set; $sw.Stop(); $add = $sw.Elapsed.TotalMilliseconds
                $addSteps = $script:nvSteps
                & $methods[$m].Check $set
                Assert-Answers $set 'after the take-over'
                $script:nvSteps = 0
                $sw.Restart(); & $methods[$m].Remove $set; $sw.Stop(); $remove = $sw.Elapsed.TotalMilliseconds
                $removeSteps = $script:nvSteps
                $reindexed = if ($methods[$m].Reindex) { Update-Index $set } else { 0 }
                Assert-GivenBack $set
                Assert-Answers $set 'after the give-back'
                $results.Add([pscustomobject]@{ N = $n; Method = $m; Run = $run; TakeOverMs = [math]::Round($add, 1); GiveBackMs = [math]::Round($remove, 1)
                        TakeOverSteps = $addSteps / $n; GiveBackSteps = $removeSteps / $n; Reindexed = $reindexed })
            }
        }
    }
    # loss: a 10 ms ping and a TCP stream to container 0 through one take-over and one give-back
    $lossMethods = [ordered]@{
        'cmdlet per container' = @{ Add = { param($c) $null = Add-WorkloadInterception -ProcessId $c.Pid -Namespace $enf -ControlSocket $sock }; Remove = { param($c) Remove-WorkloadInterception -ProcessId $c.Pid -Namespace $enf } }
        "NeuVector's way" = @{ Add = { param($c) Invoke-NvTakeover $c 0 }; Remove = { param($c) Invoke-NvGiveBack $c 0 } }
    }
    $script:port = 5200
    for ($run = 1; $run -le $Runs; $run++) {
        foreach ($m in $lossMethods.Keys) {
            Say "loss run $run $m"
            Confirm-VbrIngress
            $c = $containers[0]
            $script:port++
            $receiver = Start-Tool nsenter -t $c.Pid -n $python $stream recv $script:port
            if ($receiver.StandardOutput.ReadLine() -ne 'listening') { throw 'the stream receiver did not start' }
            $sender = Start-Tool ip netns exec $hostNs $python $stream send $c.Ip $script:port
            if ($sender.StandardOutput.ReadLine() -ne 'connected') { throw 'the stream sender did not connect' }
            $ping = Start-Tool ip netns exec $hostNs ping -n -q -i 0.01 -W 1 $c.Ip
            Start-Sleep -Milliseconds 500
            & $lossMethods[$m].Add $c
            Start-Sleep -Milliseconds 500
            & $lossMethods[$m].Remove $c
            Start-Sleep -Milliseconds 500
            & kill -INT $ping.Id $sender.Id
            $out = $ping.StandardOutput.ReadToEnd(); $ping.WaitForExit()
            $sent = $sender.StandardOutput.ReadToEnd(); $sender.WaitForExit()
            if (-not $receiver.WaitForExit(15000)) { $receiver.Kill() }
            $received = $receiver.StandardOutput.ReadToEnd()
            if ($m -eq "NeuVector's way") { $null = Update-Index @($c) }
            Assert-GivenBack @($c)
            if ($out -notmatch '(\d+) packets transmitted, (\d+) received') { throw "no ping summary: $out" }
            $pSent = [int]$Matches[1]; $pLost = [int]$Matches[1] - [int]$Matches[2]
            if ($sent -notmatch 'sent (\d+) retrans (\d+) error (\S+)') { throw "no sender summary: $sent" }
            $tSent = [long]$Matches[1]; $retrans = [int]$Matches[2]; $sErr = $Matches[3]
            if ($received -notmatch 'received (\d+) maxgap_ms (\S+) error (\S+)') { throw "no receiver summary: $received" }
            $tRecv = [long]$Matches[1]; $gap = [double]$Matches[2]; $rErr = $Matches[3]
            $losses.Add([pscustomobject]@{ Method = $m; Run = $run; Sent = $pSent; Lost = $pLost
                    Survived = ($sErr -eq 'none' -and $rErr -eq 'none' -and $tSent -eq $tRecv); BytesSent = $tSent; BytesReceived = $tRecv
                    StallMs = $gap; Retransmissions = $retrans; Error = if ($sErr -ne 'none') { $sErr } elseif ($rErr -ne 'none') { $rErr } else { '' } })
        }
    }
}
finally {
    foreach ($t in $tools) { if (-not $t.HasExited) { $t.Kill(); [void]$t.WaitForExit(5000) } }
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
        'processes/container' = if ($f.TakeOverSteps) { "$($f.TakeOverSteps) + $($f.GiveBackSteps)" } else { '-' }
    }
}
$nv = @($results | Where-Object Method -eq "NeuVector's way")
$reindexNote = "NeuVector's way gave eth0 back with another ifindex in $(($nv.Reindexed | Measure-Object -Sum).Sum) of $(($nv.N | Measure-Object -Sum).Sum) give-backs (the cmdlets: none, or the run would have failed)."
if ($Markdown) {
    "Measured $($machine.Date) with ``dotnet pwsh -NoProfile -Command '& ./bench/containers.ps1 -Count $($Count -join ',') -Runs $Runs -Markdown'``; $($machine.CPUs), kernel $($machine.Kernel), load $($machine.'Load (1 min)')."
    ''
    '| N | method | take-over ms/container (median) | give-back ms/container (median) | take-over runs (ms, all N) | give-back runs (ms, all N) | processes/container (take-over + give-back) |'
    '|---|---|---|---|---|---|---|'
    foreach ($s in $summary) { "| $($s.N) | $($s.Method) | $($s.'take-over ms/container (median)') | $($s.'give-back ms/container (median)') | $($s.'runs take-over ms') | $($s.'runs give-back ms') | $($s.'processes/container') |" }
    ''
    $reindexNote
    ''
    'A ping every 10 ms and a TCP stream (1 KiB every 5 ms) to one container while it is taken over and given back (about 1.5 s around the two operations):'
    ''
    '| method | run | pings sent | pings lost | TCP survived | bytes sent | bytes received | longest stall (ms) | retransmissions |'
    '|---|---|---|---|---|---|---|---|---|'
    foreach ($l in $losses) { "| $($l.Method) | $($l.Run) | $($l.Sent) | $($l.Lost) | $(if ($l.Survived) { 'yes' } else { "no ($($l.Error))" }) | $($l.BytesSent) | $($l.BytesReceived) | $($l.StallMs) | $($l.Retransmissions) |" }
}
else {
    $machine | Format-Table -HideTableHeaders | Out-String | Write-Host
    $summary | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
    $losses | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
    Write-Host $reindexNote
}
