<#
.SYNOPSIS
    The seed scenario, end to end, with NvRedirect's cmdlets, then the policy story (Discover, Protect, learned
    connections as allow rules, Monitor) with real traffic; removes everything it created.
.DESCRIPTION
    Builds the seed's topology: agent-ns and container-ns, the vex/vex-peer, vin/vin-peer(->eth0) and vbr/vth pairs,
    all up, 10.10.10.66/24 on the host side and 10.10.10.88/24 in the container; then the interception (the seed's six
    redirect rules and two that steer IPv6 the same way), the observation that pings are steered to vbr with the ucmac and get no reply, the datapath
    (nvr-dp) started in agent-ns and configured with the seed's four messages, and the ping passing through it.
    Then the workload's modes with ping, TCP and UDP between the host side and the container: Discover learns every
    connection; Protect with no rules blocks new ones and resets an open one; the learned connections turned into
    allow rules pass again while the rest stays blocked; a rule by hand and its removal; Monitor lets everything pass
    and lists the violations. Each step prints what it does, what the traffic did and Get-DpConnection's table; an
    outcome the story does not expect is marked and makes the demo fail at the end.
    Last, a running container made as a runtime makes it (podman with an image imported from busybox-static when podman
    is installed, else a process from unshare --net on a bridge) is protected in one command (Add-WorkloadInterception),
    learns in Discover, is blocked in Protect, and is given back: the demo compares what iproute2 and ethtool report
    inside it before and after.
    Everything it created is removed at the end, also on failure. By default the host side lives in a
    third namespace (host-ns) so the demo never touches this machine's own addresses or routes; -InRootNamespace puts
    vex-peer in the root namespace exactly as the seed does.
.EXAMPLE
    dotnet pwsh ./build.ps1 Demo
#>
[CmdletBinding()]
param(
    [string]$AgentNamespace = 'agent-ns',
    [string]$ContainerNamespace = 'container-ns',
    [string]$HostNamespace = 'host-ns',
    [switch]$InRootNamespace,
    # NeuVector's default control socket, the one the seed's Python client talks to.
    [string]$ControlSocket = '/tmp/dp_listen.sock',
    # Make the demo's running container with unshare --net even when podman is installed.
    [switch]$NoPodman
)
$ErrorActionPreference = 'Stop'
$PSStyle.OutputRendering = 'PlainText'
Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force

function Step([string]$Text) { Write-Host ''; Write-Host "### $Text" }
function Show($Objects) { $Objects | Out-String -Width 140 | Write-Host }
# A connection table sized to its content (addresses are not cut short)
function Show-Connection($Connections) { $Connections | Format-Table -AutoSize | Out-String -Width 160 | Write-Host }

$hostNs = if ($InRootNamespace) { '' } else { $HostNamespace }
$ours = @($AgentNamespace, $ContainerNamespace) + @($hostNs | Where-Object { $_ })
$taken = @(Get-AgentNamespace | Where-Object Name -in $ours)
if ($taken) { throw "Namespace(s) $($taken.Name -join ', ') already exist; remove them or pass other names (-AgentNamespace, -ContainerNamespace, -HostNamespace)." }
if ($InRootNamespace -and (Get-AgentLink -Name vex-peer -ErrorAction SilentlyContinue)) { throw 'vex-peer already exists in the root namespace.' }

$created = [System.Collections.Generic.List[string]]::new()

# Traffic for the policy story, from inside the namespaces ('' = this one), by the module itself: echo servers
# (Start-AgentEchoServer) and probes (Test-AgentConnection) in this process. Every server and kept connection is
# tracked and closed at the end. (Steps 6 and 9 run ping in the background instead: they need traffic flowing while
# Watch-AgentTraffic captures, and Test-AgentConnection waits for its answer in the foreground.)
$demoServers = [System.Collections.Generic.List[object]]::new()
$demoConnections = [System.Collections.Generic.List[object]]::new()
$surprises = [System.Collections.Generic.List[string]]::new()
function Start-DemoEcho([string]$Namespace, [int[]]$TcpPort = @(), [int[]]$UdpPort = @()) {
    $server = Start-AgentEchoServer -Namespace $Namespace -TcpPort $TcpPort -UdpPort $UdpPort -ErrorAction Stop
    $demoServers.Add($server)
    $server
}
function Invoke-DemoTraffic([ValidateSet('TCP', 'UDP')][string]$Kind, [string]$Namespace, [string]$To, [int]$Port) {
    "$((Test-AgentConnection $To -Port $Port -Protocol $Kind -Echo -Namespace $Namespace -TimeoutSeconds 2).Outcome)"
}
function Invoke-DemoPing([string]$Namespace, [string]$To) {
    if (Test-AgentConnection $To -Namespace $Namespace -Count 2 -TimeoutSeconds 1 -Quiet) { 'passes' } else { 'blocked' }
}
function Open-DemoConnection([string]$Namespace, [string]$To, [int]$Port) {
    $r = Test-AgentConnection $To -Port $Port -Echo -KeepOpen -Namespace $Namespace -TimeoutSeconds 2
    if ($r.Connection) { $demoConnections.Add($r.Connection) }
    [pscustomobject]@{ Probe = $r; Result = "$($r.Outcome)"; Local = "$($r.Source):$($r.SourcePort)" }
}
function Send-DemoConnection($Connection) {
    if (-not $Connection.Probe.Connection -or -not $Connection.Probe.Connection.IsOpen) { return 'Closed' }
    "$(($Connection.Probe.Connection | Test-AgentConnection -Echo -TimeoutSeconds 2).Outcome)"
}
function Stop-DemoTraffic {
    foreach ($c in $demoConnections) { $c | Disconnect-AgentConnection }
    foreach ($s in $demoServers) { $s | Stop-AgentEchoServer }
}
# One line per traffic check: what was tried, what happened, and whether that is what the story expects.
function Show-Traffic([string]$What, [string]$Outcome, [string]$Expected) {
    $mark = if ($Outcome -eq $Expected) { '' } else { "   <-- UNEXPECTED, the story expects: $Expected"; $surprises.Add("$What -> $Outcome (expected $Expected)") }
    Write-Host ('  {0,-72} {1}{2}' -f $What, $Outcome, $mark)
}
$pingLog = Join-Path ([IO.Path]::GetTempPath()) "nvr-demo-ping-$PID.txt"
# The container part: podman when installed (busybox-static image), else a process from unshare --net on a bridge
$podmanOptions = @('--runtime', 'runc', '--cgroup-manager=cgroupfs')
$ctr = @{ Runtime = $null; Name = "nvr-demo-$PID"; Image = "localhost/nvr-demo-bb:$PID"; Network = "nvr-demo-$PID"; Root = Join-Path ([IO.Path]::GetTempPath()) "nvr-demo-rootfs-$PID"
    HostNs = 'ctr-host-ns'; Enforcer = 'nvr-enforcer-demo'; Socket = '/tmp/nvr-enforcer-demo.sock'
    Process = $null; Started = $false; NetworkMade = $false; Imported = $false; Forward = $null; Iptables = $null; Before = $null }
# What iproute2 and ethtool report inside a container (by pid), once its links settled
function Get-DemoContainerState([int]$ProcessId) {
    $n = @('nsenter', '-t', "$ProcessId", '-n')
    for ($i = 0; $i -lt 50 -and ((& $n[0] @($n[1..3]) ip -j addr) -join '').Contains('tentative'); $i++) { Start-Sleep -Milliseconds 100 }
    Start-Sleep -Milliseconds 500
    [ordered]@{
        'ip -d -j link' = (& $n[0] @($n[1..3]) ip -d -j link) -join ''
        'ip -j addr' = (& $n[0] @($n[1..3]) ip -j addr) -join ''
        'ip -j route show table all (IPv4 and IPv6)' = ((& $n[0] @($n[1..3]) ip -4 -j route show table all) + (& $n[0] @($n[1..3]) ip -6 -j route show table all)) -join ''
        'ip -j neigh (permanent)' = (& $n[0] @($n[1..3]) ip -j neigh show nud permanent) -join ''
        'ethtool -k eth0' = (& $n[0] @($n[1..3]) ethtool -k eth0) -join "`n"
    }
}
try {
    Step "1. Namespaces: '$AgentNamespace' steers, '$ContainerNamespace' stands in for a container$(if ($hostNs) { ", '$hostNs' stands in for the host" })"
    foreach ($ns in $ours) { $null = New-AgentNamespace $ns; $created.Add($ns) }
    Show (Get-AgentNamespace $ours)

    Step '2. Veth pairs: vex/vex-peer (entry), vin/vin-peer (into the container), vbr/vth (monitor pair for the datapath)'
    # vex is created on the host side and its peer placed in agent-ns at once; the seed names them the other way
    # round (vex in agent-ns, vex-peer on the host), so create vex in agent-ns with its peer on the host side.
    $null = New-AgentLink vex -PeerName vex-peer -Namespace $AgentNamespace -PeerNamespace $hostNs
    if ($InRootNamespace) { $created.Add('link:vex-peer') }
    $null = New-AgentLink vin -PeerName vin-peer -Namespace $AgentNamespace -PeerNamespace $ContainerNamespace
    $null = New-AgentLink vbr -PeerName vth -Namespace $AgentNamespace

    Step "3. In '$ContainerNamespace', vin-peer becomes eth0 with the seed's container MAC"
    $null = Rename-AgentLink vin-peer -NewName eth0 -Namespace $ContainerNamespace
    Show (Set-AgentLink eth0 -Namespace $ContainerNamespace -MacAddress 1a:27:f3:87:3a:27 -PassThru)

    Step '4. Everything up, addresses on both ends'
    foreach ($ns in $ours) { Get-AgentLink -Namespace $ns | Set-AgentLink -Up }
    if ($InRootNamespace) { Set-AgentLink vex-peer -Up }
    $null = Add-AgentAddress vex-peer 10.10.10.66/24 -Namespace $hostNs
    $null = Add-AgentAddress eth0 10.10.10.88/24 -Namespace $ContainerNamespace
    Show (Get-AgentLink -Namespace $AgentNamespace)
    Show (Get-AgentLink -Namespace $ContainerNamespace)
    Show (Get-AgentLink vex-peer -Namespace $hostNs)
    Show (@($hostNs, $ContainerNamespace) | ForEach-Object { Get-AgentAddress -Namespace $_ -Family IPv4 })

    Step 'Topology as iproute2 sees it'
    Write-Host (ip -n $AgentNamespace -br link show | Out-String)
    Write-Host (ip -n $ContainerNamespace -br addr show | Out-String)

    Step '5. Interception: ingress qdiscs on vin, vex and vbr, and the six redirect rules (and two for IPv6)'
    $ic = Add-WorkloadInterception -Namespace $AgentNamespace -WorkloadMac 1a:27:f3:87:3a:27 -UcMac 4e:65:75:56:00:b4 -ToWorkloadPriority 5 -FromWorkloadPriority 172
    Write-Host "backend: $($ic.Backend) - $($ic.BackendReason)"
    Show ($ic.Rules | Format-Table Role, LinkName, Priority, Kind, Change)
    Write-Host (tc -n $AgentNamespace filter show dev vex ingress | Out-String)

    Step '6. Observation before any datapath runs: ping 10.10.10.88 from the host side'
    $pingArgs = @('netns', 'exec', $(if ($hostNs) { $hostNs } else { $AgentNamespace }), 'ping', '-c', '3', '-i', '0.3', '-W', '1', '10.10.10.88')
    if (-not $hostNs) { $pingArgs = @('ping', '-c', '3', '-i', '0.3', '-W', '1', '10.10.10.88') }
    $ping = Start-Process -FilePath $(if ($hostNs) { 'ip' } else { 'ping' }) -ArgumentList $(if ($hostNs) { $pingArgs } else { $pingArgs[1..($pingArgs.Count - 1)] }) -PassThru -RedirectStandardOutput $pingLog
    $seen = Watch-AgentTraffic vex, vbr -Namespace $AgentNamespace -Count 40 -TimeoutSeconds 2.5 | Where-Object Protocol -eq ICMP
    $onVex = $seen | Where-Object Interface -eq vex | Select-Object -First 2
    $onVbr = $seen | Where-Object Interface -eq vbr | Select-Object -First 2
    $ping.WaitForExit()
    Write-Host 'on vex (as sent by the host side, to the container MAC):'
    $onVex | ForEach-Object { Write-Host "  $($_.Summary)" }
    Write-Host 'on vbr (rewritten to the ucmac and steered to the datapath):'
    $onVbr | ForEach-Object { Write-Host "  $($_.Summary)" }
    Write-Host (Get-Content $pingLog | Select-String 'transmitted')
    Remove-Item $pingLog -ErrorAction Ignore
    Write-Host 'No reply: unicast IPv4 to the container now goes through vth, and no datapath runs there yet.'

    Step "7. The datapath: nvr-dp in '$AgentNamespace', control socket $ControlSocket"
    $dp = Start-Datapath -Namespace $AgentNamespace -ControlSocket $ControlSocket
    $created.Add("dp:$ControlSocket")
    Show ($dp | Format-List Pid, Namespace, ControlSocket, LogPath)

    Step "8. The seed's four messages, through the cmdlets (the seed's Python client sends the same datagrams)"
    Set-DpInternalNetwork -Subnet 172.17.0.0/16, 179.20.23.0/24, 10.10.10.0/24, 172.20.166.0/24 -DeviceAddress 10.10.10.66/24, 10.10.10.88/24 -ControlSocket $ControlSocket
    Add-DpServicePort vth -ControlSocket $ControlSocket
    Add-DpMac 1a:27:f3:87:3a:27 -UcMac 4e:65:75:56:00:b4 -BcMac ff:ff:ff:00:00:b4 -Interface vth -ControlSocket $ControlSocket
    Set-DpMac 1a:27:f3:87:3a:27 -Tap $false -ControlSocket $ControlSocket
    Show (Get-Datapath -ControlSocket $ControlSocket | Select-Object -ExpandProperty Workloads)

    Step '9. Ping again: the datapath writes the steered frames back, tc restores the real MAC, the container answers'
    $ping = Start-Process -FilePath $(if ($hostNs) { 'ip' } else { 'ping' }) -ArgumentList $(if ($hostNs) { $pingArgs } else { $pingArgs[1..($pingArgs.Count - 1)] }) -PassThru -RedirectStandardOutput $pingLog
    $seen = Watch-AgentTraffic vbr -Namespace $AgentNamespace -Count 40 -TimeoutSeconds 2.5 | Where-Object Protocol -eq ICMP
    $ping.WaitForExit()
    Write-Host 'on vbr (to the datapath and back, always with the ucmac):'
    $seen | Select-Object -First 4 | ForEach-Object { Write-Host "  $($_.Summary)" }
    Write-Host (Get-Content $pingLog | Select-String 'transmitted')
    Remove-Item $pingLog -ErrorAction Ignore
    Show (Get-DpSession -ControlSocket $ControlSocket)
    Write-Host 'The container is reachable only through the datapath now: Set-DpMac -Tap $true, Remove-DpMac or Stop-Datapath cut it off.'

    # ---- The policy story: Discover, Protect, learned connections as allow rules, Monitor ----
    $mac = '1a:27:f3:87:3a:27'
    Step "10. Echo servers in '$ContainerNamespace' (TCP 8080 and 8081, UDP 9999) and on the host side (TCP 7070)"
    $containerEcho = Start-DemoEcho $ContainerNamespace -TcpPort 8080, 8081 -UdpPort 9999
    $hostEcho = Start-DemoEcho $hostNs -TcpPort 7070
    Show $containerEcho, $hostEcho
    Write-Host 'Without a policy the workload is in Mode None: nothing is policed.'
    Show (Get-Datapath -ControlSocket $ControlSocket).Workloads

    Step '11. Discover (Set-DpWorkloadMode -Mode Discover): everything passes and every connection is learned'
    Set-DpWorkloadMode -Mac $mac -Mode Discover -ControlSocket $ControlSocket
    Clear-DpConnection -Mac $mac -ControlSocket $ControlSocket
    Show (Get-Datapath -ControlSocket $ControlSocket).Workloads
    Show-Traffic 'ping host -> container' (Invoke-DemoPing $hostNs 10.10.10.88) 'passes'
    Show-Traffic 'TCP host -> container:8080' (Invoke-DemoTraffic TCP $hostNs 10.10.10.88 8080) 'Connected'
    Show-Traffic 'UDP host -> container:9999' (Invoke-DemoTraffic UDP $hostNs 10.10.10.88 9999) 'Answered'
    Show-Traffic 'TCP container -> host:7070 (egress)' (Invoke-DemoTraffic TCP $ContainerNamespace 10.10.10.66 7070) 'Connected'
    $held = Open-DemoConnection $hostNs 10.10.10.88 8080
    Show-Traffic "TCP host -> container:8080, kept open (client $($held.Local))" $held.Result 'Connected'
    Write-Host 'Get-DpConnection -Learned:'
    Show-Connection (Get-DpConnection -Mac $mac -Learned -ControlSocket $ControlSocket)

    Step '12. Protect with no rules (Set-DpWorkloadMode -Mode Protect): new connections are blocked, the open one is reset'
    Set-DpWorkloadMode -Mac $mac -Mode Protect -ControlSocket $ControlSocket
    Show (Get-Datapath -ControlSocket $ControlSocket).Workloads
    Show-Traffic 'ping host -> container' (Invoke-DemoPing $hostNs 10.10.10.88) 'blocked'
    Show-Traffic 'TCP host -> container:8080 (new)' (Invoke-DemoTraffic TCP $hostNs 10.10.10.88 8080) 'TimedOut'
    Show-Traffic 'UDP host -> container:9999' (Invoke-DemoTraffic UDP $hostNs 10.10.10.88 9999) 'TimedOut'
    Show-Traffic 'TCP container -> host:7070 (egress)' (Invoke-DemoTraffic TCP $ContainerNamespace 10.10.10.66 7070) 'TimedOut'
    Show-Traffic "the connection kept open since Discover sends again ($($held.Local))" (Send-DemoConnection $held) 'Reset'
    Write-Host 'Get-DpConnection -Blocked:'
    Show-Connection (Get-DpConnection -Mac $mac -Blocked -ControlSocket $ControlSocket)

    Step '13. The learned connections become allow rules: Get-DpConnection -Learned | ConvertTo-DpRule | Set-DpPolicy'
    Get-DpConnection -Mac $mac -Learned -ControlSocket $ControlSocket | ConvertTo-DpRule | Set-DpPolicy -ControlSocket $ControlSocket
    Show (Get-DpPolicy $mac -ControlSocket $ControlSocket)
    Show (Get-DpPolicy $mac -ControlSocket $ControlSocket).Rules
    Clear-DpConnection -Mac $mac -ControlSocket $ControlSocket
    Show-Traffic 'ping host -> container' (Invoke-DemoPing $hostNs 10.10.10.88) 'passes'
    Show-Traffic 'TCP host -> container:8080' (Invoke-DemoTraffic TCP $hostNs 10.10.10.88 8080) 'Connected'
    Show-Traffic 'UDP host -> container:9999' (Invoke-DemoTraffic UDP $hostNs 10.10.10.88 9999) 'Answered'
    Show-Traffic 'TCP container -> host:7070 (egress)' (Invoke-DemoTraffic TCP $ContainerNamespace 10.10.10.66 7070) 'Connected'
    Show-Traffic 'TCP host -> container:8081 (never learned)' (Invoke-DemoTraffic TCP $hostNs 10.10.10.88 8081) 'TimedOut'
    Write-Host 'Get-DpConnection (the allowed ones name their rule, the blocked one rule 0):'
    Show-Connection (Get-DpConnection -Mac $mac -ControlSocket $ControlSocket)

    Step '14. Rules by hand: TCP 8081-8089 from 10.10.10.64/28 (New-DpRule | Add-DpPolicyRule), then removed again'
    New-DpRule -Id 100 -Source 10.10.10.64/28 -Destination 10.10.10.88 -Port 8081-8089 -Protocol TCP -Direction Ingress | Add-DpPolicyRule -Mac $mac -ControlSocket $ControlSocket
    Show (Get-DpPolicy $mac -ControlSocket $ControlSocket).Rules
    Show-Traffic 'TCP host -> container:8081' (Invoke-DemoTraffic TCP $hostNs 10.10.10.88 8081) 'Connected'
    Remove-DpPolicyRule -Mac $mac -Id 100 -ControlSocket $ControlSocket
    Show-Traffic 'TCP host -> container:8081 after Remove-DpPolicyRule -Id 100' (Invoke-DemoTraffic TCP $hostNs 10.10.10.88 8081) 'TimedOut'

    Step '15. Monitor (Set-DpWorkloadMode -Mode Monitor): everything passes, what no rule allows is a violation'
    Set-DpWorkloadMode -Mac $mac -Mode Monitor -ControlSocket $ControlSocket
    Clear-DpConnection -Mac $mac -ControlSocket $ControlSocket
    Show (Get-Datapath -ControlSocket $ControlSocket).Workloads
    Show-Traffic 'TCP host -> container:8081 (no rule)' (Invoke-DemoTraffic TCP $hostNs 10.10.10.88 8081) 'Connected'
    Show-Traffic 'ping container -> host (no rule for egress ICMP)' (Invoke-DemoPing $ContainerNamespace 10.10.10.66) 'passes'
    Show-Traffic 'TCP host -> container:8080 (allowed by its rule)' (Invoke-DemoTraffic TCP $hostNs 10.10.10.88 8080) 'Connected'
    Write-Host 'Get-DpConnection -Violation:'
    Show-Connection (Get-DpConnection -Mac $mac -Violation -ControlSocket $ControlSocket)

    # ---- a running container, made as a runtime makes it, protected in one command and given back ----
    $ctr.Runtime = if (-not $NoPodman -and (Get-Command podman -CommandType Application -ErrorAction Ignore) -and (Test-Path /bin/busybox)) { 'podman' } else { 'unshare' }
    if ($ctr.Runtime -eq 'podman') {
        Step "16. A running podman container: an image imported from busybox-static, a bridge network $($ctr.Network) (172.31.199.0/24)"
        $ctr.Forward = (Get-Content /proc/sys/net/ipv4/ip_forward -Raw).Trim(); $ctr.Iptables = (& iptables-save | Out-String)
        New-Item -ItemType Directory (Join-Path $ctr.Root 'bin') -Force | Out-Null
        Copy-Item /bin/busybox (Join-Path $ctr.Root 'bin/busybox')
        & chroot $ctr.Root /bin/busybox --install -s /bin
        & bash -c "tar -C '$($ctr.Root)' -c . | podman import - '$($ctr.Image)'" | Out-Null; $ctr.Imported = $true
        & podman network create --subnet 172.31.199.0/24 $ctr.Network | Out-Null; $ctr.NetworkMade = $true
        & podman @podmanOptions run -d --cap-add NET_RAW --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --name $ctr.Name --network $ctr.Network --ip 172.31.199.10 $ctr.Image sleep 3600 | Out-Null
        if ($LASTEXITCODE -ne 0) { throw "podman could not start the demo container (see above)" }
        $ctr.Started = $true
        $ctr.Pid = [int](& podman inspect --type container --format '{{.State.Pid}}' $ctr.Name)
        $ctr.Ip = '172.31.199.10'; $ctr.PingFrom = ''
        $target = @{ Container = $ctr.Name }
    }
    else {
        Step "16. A running container made as a runtime makes it, without podman: unshare --net sleep, eth0 on a bridge in $($ctr.HostNs)"
        $null = New-AgentNamespace $ctr.HostNs; $created.Add($ctr.HostNs)
        ip -n $ctr.HostNs link add br0 type bridge; ip -n $ctr.HostNs addr add 172.31.199.1/24 dev br0; ip -n $ctr.HostNs link set br0 up
        $ctr.Process = [System.Diagnostics.Process]::Start('unshare', [string[]]@('--net', 'sleep', '3600'))
        Start-Sleep -Milliseconds 300
        $ctr.Pid = $ctr.Process.Id
        ip -n $ctr.HostNs link add demo-c0 type veth peer name eth0 netns $ctr.Pid
        ip -n $ctr.HostNs link set demo-c0 master br0 up
        nsenter -t $ctr.Pid -n sh -c 'ip link set lo up; ip addr add 172.31.199.10/24 dev eth0; ip -6 addr add fd00:199::10/64 dev eth0 nodad; ip link set eth0 up; ip route add default via 172.31.199.1; ip neigh add 172.31.199.99 lladdr 02:00:00:00:01:99 dev eth0 nud permanent'
        $ctr.Ip = '172.31.199.10'; $ctr.PingFrom = $ctr.HostNs
        $target = @{ ProcessId = $ctr.Pid }
    }
    Start-Sleep -Seconds 1
    $ctr.Before = Get-DemoContainerState $ctr.Pid
    nsenter -t $ctr.Pid -n ip -br addr | Write-Host
    nsenter -t $ctr.Pid -n ip route | Write-Host

    Step "17. Protect it in one command: Add-WorkloadInterception $(($target.GetEnumerator() | ForEach-Object { "-$($_.Key) $($_.Value)" }) -join ' ') -Namespace $($ctr.Enforcer) -Mode Discover"
    $created.Add($ctr.Enforcer); $created.Add("dp:$($ctr.Socket)")
    $w = Add-WorkloadInterception @target -Namespace $ctr.Enforcer -ControlSocket $ctr.Socket -Mode Discover
    Show ($w | Format-Table Namespace, Interface, InterfaceIndex, WorkloadMac, EntryLink, InnerLink, Backend, Runtime, ContainerName, ProcessId, Mode -AutoSize)
    Show-Traffic "ping host -> container $($ctr.Ip) (Discover)" (Invoke-DemoPing $ctr.PingFrom $ctr.Ip) 'passes'
    Write-Host 'Get-WorkloadInterception | Get-DpConnection -Learned:'
    Show-Connection (Get-WorkloadInterception @target -Namespace $ctr.Enforcer | Get-DpConnection -Learned)

    Step '18. Protect: Get-WorkloadInterception | Set-DpWorkloadMode -Mode Protect'
    Show (Get-WorkloadInterception @target -Namespace $ctr.Enforcer | Set-DpWorkloadMode -Mode Protect -PassThru)
    Show-Traffic "ping host -> container $($ctr.Ip) (Protect, no rules)" (Invoke-DemoPing $ctr.PingFrom $ctr.Ip) 'blocked'

    Step '19. Give it back: Remove-WorkloadInterception, then the container as iproute2 and ethtool see it, before and after'
    Remove-WorkloadInterception @target -Namespace $ctr.Enforcer
    $after = Get-DemoContainerState $ctr.Pid
    foreach ($k in $ctr.Before.Keys) { Show-Traffic "inside the container: $k" $(if ($after[$k] -ceq $ctr.Before[$k]) { 'identical' } else { 'different' }) 'identical' }
    Show-Traffic "ping host -> container $($ctr.Ip) (given back)" (Invoke-DemoPing $ctr.PingFrom $ctr.Ip) 'passes'

    if ($surprises.Count) { throw "The story did not hold: $($surprises -join '; ')" }
    Write-Host 'The story held: every outcome above is the expected one.'
}
finally {
    Remove-Item $pingLog -ErrorAction Ignore
    Stop-DemoTraffic
    Step 'Cleanup: removing everything this demo created'
    if ($ctr.Process -and -not $ctr.Process.HasExited) { $ctr.Process.Kill(); [void]$ctr.Process.WaitForExit(5000) }
    if ($ctr.Started) { & podman @podmanOptions rm -f -t 0 $ctr.Name *> $null }
    if ($ctr.NetworkMade) { & podman network rm -f $ctr.Network *> $null }
    if ($ctr.Imported) { & podman rmi -f $ctr.Image *> $null }
    Remove-Item -LiteralPath $ctr.Root -Recurse -Force -ErrorAction Ignore
    if ($null -ne $ctr.Forward) { & sysctl -q -w "net.ipv4.ip_forward=$($ctr.Forward)" }
    if ($null -ne $ctr.Iptables) {
        if ($ctr.Iptables.Trim()) { $ctr.Iptables | iptables-restore } else { foreach ($t in 'filter', 'nat') { iptables -t $t -F; iptables -t $t -X } }
    }
    foreach ($socket in $created | Where-Object { $_ -like 'dp:*' }) { Stop-Datapath -ControlSocket $socket.Substring(3) -ErrorAction Continue }
    if ($created.Contains('link:vex-peer')) { Remove-AgentLink vex-peer -ErrorAction Continue }
    foreach ($ns in $created | Where-Object { $_ -notlike 'link:*' -and $_ -notlike 'dp:*' }) { Remove-AgentNamespace $ns -ErrorAction Continue }
    Write-Host "removed: $($created -join ', ')"
}
