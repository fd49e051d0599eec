<#
.SYNOPSIS
    The seed scenario, end to end, with NvRedirect's cmdlets; removes everything it created.
.DESCRIPTION
    Builds the seed's topology: agent-ns and container-ns, the vex/vex-peer, vin/vin-peer(->eth0) and vbr/vth pairs,
    all up, 10.10.10.66/24 on the host side and 10.10.10.88/24 in the container; then the interception (the six
    redirect rules), the observation that pings are steered to vbr with the ucmac and get no reply, the datapath
    (nvr-dp) started in agent-ns and configured with the seed's four messages, and the ping passing through it.
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

$hostNs = if ($InRootNamespace) { '' } else { $HostNamespace }
$ours = @($AgentNamespace, $ContainerNamespace) + @($hostNs | Where-Object { $_ })
$taken = @(Get-AgentNamespace | Where-Object Name -in $ours)
if ($taken) { throw "Namespace(s) $($taken.Name -join ', ') already exist; remove them or pass other names (-AgentNamespace, -ContainerNamespace, -HostNamespace)." }
if ($InRootNamespace -and (Get-AgentLink -Name vex-peer -ErrorAction SilentlyContinue)) { throw 'vex-peer already exists in the root namespace.' }

$created = [System.Collections.Generic.List[string]]::new()
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
}
finally {
    Remove-Item $pingLog -ErrorAction Ignore
    Step 'Cleanup: removing everything this demo created'
    foreach ($socket in $created | Where-Object { $_ -like 'dp:*' }) { Stop-Datapath -ControlSocket $socket.Substring(3) -ErrorAction Continue }
    if ($created.Contains('link:vex-peer')) { Remove-AgentLink vex-peer -ErrorAction Continue }
    foreach ($ns in $created | Where-Object { $_ -notlike 'link:*' -and $_ -notlike 'dp:*' }) { Remove-AgentNamespace $ns -ErrorAction Continue }
    Write-Host "removed: $($created -join ', ')"
}
