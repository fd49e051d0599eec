<#
.SYNOPSIS
    The seed scenario, end to end, with NvRedirect's cmdlets; removes everything it created.
.DESCRIPTION
    Builds the seed's topology: agent-ns and container-ns, the vex/vex-peer, vin/vin-peer(->eth0) and vbr/vth pairs,
    all up, 10.10.10.66/24 on the host side and 10.10.10.88/24 in the container. By default the host side lives in a
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
    [switch]$InRootNamespace
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

    Step "3. In '$ContainerNamespace', vin-peer becomes eth0"
    Show (Rename-AgentLink vin-peer -NewName eth0 -Namespace $ContainerNamespace -PassThru)

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

    Step 'What comes next'
    Write-Host 'Traffic from 10.10.10.66 to 10.10.10.88 enters agent-ns on vex; the tc redirect filters (ingress qdiscs,'
    Write-Host 'u32 + pedit/mirred or cls_bpf) and the datapath on vth decide what reaches eth0. Those steps are the'
    Write-Host 'next parts of this demo; without them nothing forwards between vex and vin yet.'
}
finally {
    Step 'Cleanup: removing everything this demo created'
    if ($created.Contains('link:vex-peer')) { Remove-AgentLink vex-peer -ErrorAction Continue }
    foreach ($ns in $created | Where-Object { $_ -notlike 'link:*' }) { Remove-AgentNamespace $ns -ErrorAction Continue }
    Write-Host "removed: $($created -join ', ')"
}
