<#
.SYNOPSIS
    The seed scenario, end to end, with NvRedirect's cmdlets, then the policy story (Discover, Protect, learned
    connections as allow rules, Monitor) with real traffic; removes everything it created.
.DESCRIPTION
    Builds the seed's topology: agent-ns and container-ns, the vex/vex-peer, vin/vin-peer(->eth0) and vbr/vth pairs,
    all up, 10.10.10.66/24 on the host side and 10.10.10.88/24 in the container; then the interception (the six
    redirect rules), the observation that pings are steered to vbr with the ucmac and get no reply, the datapath
    (nvr-dp) started in agent-ns and configured with the seed's four messages, and the ping passing through it.
    Then the workload's modes with ping, TCP and UDP between the host side and the container: Discover learns every
    connection; Protect with no rules blocks new ones and resets an open one; the learned connections turned into
    allow rules pass again while the rest stays blocked; a rule by hand and its removal; Monitor lets everything pass
    and lists the violations. Each step prints what it does, what the traffic did and Get-DpConnection's table; an
    outcome the story does not expect is marked and makes the demo fail at the end.
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
    [string]$ControlSocket = '/tmp/dp_listen.sock'
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

    Step '5. Interception: ingress qdiscs on vin, vex and vbr, and the six redirect rules'
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
    if ($surprises.Count) { throw "The policy story did not hold: $($surprises -join '; ')" }
    Write-Host 'The story held: every outcome above is the expected one.'
}
finally {
    Remove-Item $pingLog -ErrorAction Ignore
    Stop-DemoTraffic
    Step 'Cleanup: removing everything this demo created'
    foreach ($socket in $created | Where-Object { $_ -like 'dp:*' }) { Stop-Datapath -ControlSocket $socket.Substring(3) -ErrorAction Continue }
    if ($created.Contains('link:vex-peer')) { Remove-AgentLink vex-peer -ErrorAction Continue }
    foreach ($ns in $created | Where-Object { $_ -notlike 'link:*' -and $_ -notlike 'dp:*' }) { Remove-AgentNamespace $ns -ErrorAction Continue }
    Write-Host "removed: $($created -join ', ')"
}
