<#
.SYNOPSIS
    Draws the pictures the README and docs show: the seed topology and a protected container, as they run.
.DESCRIPTION
    Builds the seed topology (New-SeedTopology: agent-ns, container-ns, host-ns) with nvr-dp reading vth and the
    container registered inline in Protect mode; then a running container (a process from unshare --net, its eth0 on a
    bridge in ctr-host-ns) protected in one command by Add-WorkloadInterception into the enforcer namespace
    nvr-enforcer. Each is read with Get-AgentTopology and drawn with ConvertTo-TopologyDiagram as Mermaid, DOT and SVG
    into docs/images/ (seed-topology.*, protected-container.*). Everything it made is removed afterwards, also on
    failure. It refuses to run when any of those namespaces exists already. build.ps1 Diagrams runs it.
#>
[CmdletBinding()]
param(
    # Where the pictures go.
    [string]$OutputDirectory = (Join-Path $PSScriptRoot '../../docs/images')
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force

$seed = @{ AgentNamespace = 'agent-ns'; ContainerNamespace = 'container-ns'; HostNamespace = 'host-ns' }
# the datapaths' default sockets, in nvr-dp's root-only directory (nothing under /tmp, which any user can write)
$ctr = @{ HostNs = 'ctr-host-ns'; Enforcer = 'nvr-enforcer'; Socket = [NvRedirect.Core.Datapath.DatapathPaths]::DefaultSocket('nvr-enforcer'); Process = $null }
$seedSocket = [NvRedirect.Core.Datapath.DatapathPaths]::DefaultSocket($seed.AgentNamespace)
$logPath = Join-Path $PSScriptRoot '../../artifacts/diagrams-dp.log'
$null = New-Item -ItemType Directory -Force (Split-Path $logPath)
$taken = @($seed.Values + $ctr.HostNs + $ctr.Enforcer | Where-Object { Get-AgentNamespace $_ -ErrorAction Ignore })
if ($taken) { throw "namespaces $($taken -join ', ') exist already: the pictures are drawn in namespaces of their own; remove them or run this elsewhere" }
$null = New-Item -ItemType Directory -Force $OutputDirectory

# writes NAME.mmd, NAME.dot and NAME.svg
function Save-Diagram([Parameter(Mandatory)][object]$Topology, [string]$Name, [string]$Title) {
    foreach ($format in @{ Mermaid = 'mmd'; Dot = 'dot'; Svg = 'svg' }.GetEnumerator()) {
        $path = Join-Path $OutputDirectory "$Name.$($format.Value)"
        $Topology | ConvertTo-TopologyDiagram -Format $format.Key -Title $Title | Set-Content -LiteralPath $path -NoNewline
        Write-Host "wrote $path"
    }
}

$made = [System.Collections.Generic.List[string]]::new()
try {
    Write-Host '== the seed topology, nvr-dp reading vth, the container registered inline in Protect mode'
    $t = New-SeedTopology @seed
    $made.Add('seed')
    $null = Start-Datapath -Namespace $t.AgentNamespace -ControlSocket $seedSocket -LogPath $logPath
    $made.Add("dp:$seedSocket")
    $null = Add-DpServicePort vth -ControlSocket $seedSocket
    $null = Get-WorkloadInterception $t.AgentNamespace | Add-DpMac -ControlSocket $seedSocket
    $null = Set-DpMac $t.WorkloadMac -Tap $false -ControlSocket $seedSocket
    $null = Set-DpWorkloadMode -Mac $t.WorkloadMac -Mode Protect -ControlSocket $seedSocket
    $topology = Get-AgentTopology $t.HostNamespace, $t.AgentNamespace, $t.ContainerNamespace
    $topology | Format-List | Out-String | Write-Host
    Save-Diagram $topology 'seed-topology' 'The seed: host-ns -> agent-ns (tc steering, nvr-dp on vth) -> container-ns'

    Write-Host '== a running container (unshare --net), protected in one command'
    $null = New-AgentNamespace $ctr.HostNs
    $made.Add($ctr.HostNs)
    ip -n $ctr.HostNs link add br0 type bridge
    ip -n $ctr.HostNs addr add 172.31.199.1/24 dev br0
    ip -n $ctr.HostNs link set br0 up
    $ctr.Process = [System.Diagnostics.Process]::Start('unshare', [string[]]@('--net', 'sleep', '600'))
    # the process has its own network namespace once its /proc link differs from ours
    $deadline = [DateTime]::UtcNow.AddSeconds(10)
    while ((Get-Item "/proc/$($ctr.Process.Id)/ns/net").LinkTarget -eq (Get-Item /proc/self/ns/net).LinkTarget) {
        if ([DateTime]::UtcNow -gt $deadline) { throw 'unshare --net did not enter a namespace of its own' }
        Start-Sleep -Milliseconds 50
    }
    $pidNs = "/proc/$($ctr.Process.Id)/ns/net"
    ip -n $ctr.HostNs link add ctr-c0 type veth peer name eth0 netns $ctr.Process.Id
    ip -n $ctr.HostNs link set ctr-c0 master br0 up
    nsenter -t $ctr.Process.Id -n sh -c 'ip link set lo up; ip addr add 172.31.199.10/24 dev eth0; ip link set eth0 up; ip route add default via 172.31.199.1'
    if ($LASTEXITCODE -ne 0) { throw 'could not configure the container''s eth0' }
    $made.Add($ctr.Enforcer); $made.Add("dp:$($ctr.Socket)")
    $null = Add-WorkloadInterception -ProcessId $ctr.Process.Id -Namespace $ctr.Enforcer -ControlSocket $ctr.Socket -Mode Protect
    $topology = Get-AgentTopology $ctr.HostNs, $ctr.Enforcer, $pidNs
    $topology | Format-List | Out-String | Write-Host
    Save-Diagram $topology 'protected-container' 'A running container protected in one command: Add-WorkloadInterception -ProcessId PID -Mode Protect'
}
finally {
    if ($made.Contains($ctr.Enforcer) -and $ctr.Process -and -not $ctr.Process.HasExited) {
        Remove-WorkloadInterception -ProcessId $ctr.Process.Id -Namespace $ctr.Enforcer -ErrorAction Continue
    }
    foreach ($socket in $made | Where-Object { $_ -like 'dp:*' }) { Stop-Datapath -ControlSocket $socket.Substring(3) -ErrorAction Continue }
    if ($ctr.Process -and -not $ctr.Process.HasExited) { $ctr.Process.Kill(); $ctr.Process.WaitForExit() }
    foreach ($ns in $ctr.Enforcer, $ctr.HostNs) { if ($made.Contains($ns) -and (Get-AgentNamespace $ns -ErrorAction Ignore)) { Remove-AgentNamespace $ns -ErrorAction Continue } }
    if ($made.Contains('seed')) { Get-AgentNamespace $seed.AgentNamespace, $seed.ContainerNamespace, $seed.HostNamespace -ErrorAction Ignore | Remove-AgentNamespace -ErrorAction Continue }
    Remove-Item $logPath -ErrorAction Ignore
}
