# Get-AgentTopology and ConvertTo-TopologyDiagram against a running setup of this run: the seed topology (uniquely
# named namespaces) with nvr-dp reading vth and the workload registered inline, checked against iproute2's and tc's own
# view; a namespace opened only by path (an unshare --net process), whose veth peer is matched by ifindex; the
# diagrams drawn by the real Graphviz. Everything is removed in AfterAll, also when a test failed.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $SeedMac = '1a:27:f3:87:3a:27'
    $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
    $agent = $topo.AgentNamespace; $cont = $topo.ContainerNamespace; $hostNs = $topo.HostNamespace
    $sock = New-TestDpPath '.sock'
    $dp = Start-TestDp $agent $sock (New-TestDpPath '.log')
    $null = Add-DpServicePort vth -ControlSocket $sock
    $null = Get-WorkloadInterception $agent | Add-DpMac -ControlSocket $sock
    $null = Set-DpMac $SeedMac -Tap $false -ControlSocket $sock
    $null = Set-DpWorkloadMode -Mac $SeedMac -Mode Monitor -ControlSocket $sock
    $held = @{ Process = $null }   # the unshare process of the path test, for AfterAll
    $t = Get-AgentTopology $hostNs, $agent, $cont
}
AfterAll {
    if ($held.Process -and -not $held.Process.HasExited) { $held.Process.Kill(); $held.Process.WaitForExit() }
    if (Get-Command Stop-TestDp -ErrorAction Ignore) { Stop-TestDp @($sock) }
    if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace }
}

Describe 'Get-AgentTopology' {
    It 'returns the namespaces in the order asked, with their part' {
        $t.Namespaces.Name | Should -Be @($hostNs, $agent, $cont)
        $t.Namespaces.Role | Should -Be @('Other', 'Enforcer', 'Workload')
    }

    It 'returns every link iproute2 sees (loopback aside), each veth with its peer across namespaces' {
        foreach ($ns in $hostNs, $agent, $cont) {
            $ip = @(Get-IpLink $ns | Where-Object ifname -NE 'lo')
            @($t.Links | Where-Object Namespace -EQ $ns | ForEach-Object Name | Sort-Object) | Should -Be @($ip.ifname | Sort-Object)
            foreach ($l in $ip) {
                $mine = $t.Links | Where-Object { $_.Namespace -eq $ns -and $_.Name -eq $l.ifname }
                $mine.Index | Should -Be $l.ifindex
                $mine.MacAddress | Should -Be $l.address
            }
        }
        $vin = $t.Links | Where-Object { $_.Namespace -eq $agent -and $_.Name -eq 'vin' }
        "$($vin.PeerName)@$($vin.PeerNamespace)" | Should -Be "eth0@$cont"
        $vex = $t.Links | Where-Object { $_.Namespace -eq $agent -and $_.Name -eq 'vex' }
        "$($vex.PeerName)@$($vex.PeerNamespace)" | Should -Be "vex-peer@$hostNs"
    }

    It 'returns the ten rules of the interception (six of the seed, two for IPv6, the fast path''s two programs) with the link each sends frames to, as tc shows them' {
        $t.SteeringRules.Count | Should -Be 10
        @($t.SteeringRules | ForEach-Object { "$($_.LinkName):$($_.Priority)->$($_.Targets -join ',')" } | Sort-Object) |
            Should -Be @('vbr:172->vex', 'vbr:5->vin', 'vex:10000->vbr', 'vex:10001->vbr', 'vex:10002->vin', 'vex:9999->vin', 'vin:10000->vbr', 'vin:10001->vbr', 'vin:10002->vex', 'vin:9999->vex')
        @($t.SteeringRules | Where-Object WorkloadMac -EQ $SeedMac).Count | Should -Be 10
        # tc's own view of the pass-through rules' targets (u32 + mirred on every kernel)
        foreach ($dev in 'vex', 'vin') {
            $json = (& tc -j -n $agent filter show dev $dev ingress pref 10002) -join "`n" | ConvertFrom-Json
            $target = @($json | ForEach-Object { $_.options.actions } | Where-Object { $_ -and $_.kind -eq 'mirred' } | ForEach-Object to_dev | Select-Object -Unique)
            ($t.SteeringRules | Where-Object { $_.LinkName -eq $dev -and $_.Priority -eq 10002 }).Targets | Should -Be $target
        }
        ($t.SteeringRules | Where-Object { $_.LinkName -eq 'vex' -and $_.Priority -eq 10001 }).Role | Should -Be 'entry: to datapath'
    }

    It 'returns the datapath on vth with the workload registered inline in its mode, joined to the container''s eth0' {
        $t.Datapaths.Count | Should -Be 1
        $d = $t.Datapaths[0]
        $d.Pid | Should -Be $dp.Pid
        $d.ServicePorts | Should -Be @('vth')
        $d.Workloads.Count | Should -Be 1
        $w = $d.Workloads[0]
        "$($w.Mac) $($w.Mode) $($w.Tap) $($w.Link)" | Should -Be "$SeedMac Monitor False $cont/eth0"
    }

    It 'matches a veth peer in a namespace that has no name (opened by its /proc path) by the ifindex pair' {
        $held.Process = [System.Diagnostics.Process]::Start('unshare', [string[]]@('--net', 'sleep', '120'))
        $path = "/proc/$($held.Process.Id)/ns/net"
        Wait-TestCondition { (Get-Item $path).LinkTarget -ne (Get-Item /proc/self/ns/net).LinkTarget } | Should -BeTrue
        $name = New-TestLinkName 'u'
        Invoke-Ip -n $hostNs link add $name type veth peer name eth0 netns $held.Process.Id | Out-Null
        $u = Get-AgentTopology $hostNs, $path
        $mine = $u.Links | Where-Object { $_.Namespace -eq $hostNs -and $_.Name -eq $name }
        "$($mine.PeerName)@$($mine.PeerNamespace)" | Should -Be "eth0@$path"
        ($u.Links | Where-Object Namespace -EQ $path).PeerName | Should -Be $name
    }

    It 'reports a namespace that does not exist as GetAgentTopologyNamespaceNotFound' {
        $missing = New-TestNamespaceName 'none'
        $e = Get-ErrorRecord { Get-AgentTopology $missing }
        $e.FullyQualifiedErrorId | Should -Contain 'GetAgentTopologyNamespaceNotFound,NvRedirect.Cmdlets.GetAgentTopologyCommand'
    }
}

Describe 'ConvertTo-TopologyDiagram' {
    It 'draws Mermaid: a subgraph per namespace, the three veth pairs, the ten steering arrows (the fast path''s included), the datapath and its workload' {
        $m = $t | ConvertTo-TopologyDiagram
        $lines = $m -split "`n"
        $lines[0] | Should -Be 'flowchart LR'
        foreach ($ns in $hostNs, $agent, $cont) { $m | Should -Match ([regex]::Escape("[`"$ns")) }
        @($lines | Where-Object { $_ -match '^  l\d+ === l\d+$' }).Count | Should -Be 3
        @($lines | Where-Object { $_ -match '^  l\d+ -\.->\|"\d+ ' }).Count | Should -Be 10
        $m | Should -Match ([regex]::Escape("pid $($dp.Pid)"))
        $m | Should -Match ([regex]::Escape("$SeedMac<br/>Monitor, inline"))
    }

    It 'draws DOT that Graphviz reads, and -Format Svg runs Graphviz''s dot' {
        $dot = $t | ConvertTo-TopologyDiagram -Format Dot -Title 'seed'
        $out = $dot | & dot -Tsvg 2>&1
        $LASTEXITCODE | Should -Be 0 -Because "$out"
        $svg = $t | ConvertTo-TopologyDiagram -Format Svg -Title 'seed'
        $xml = [xml]$svg
        $xml.svg | Should -Not -BeNullOrEmpty
        # the SVG carries the namespaces' and links' names as text
        $texts = @($xml.SelectNodes('//*[local-name()="text"]') | ForEach-Object InnerText)
        foreach ($text in "$agent · enforcer", 'vbr', 'nvr-dp', "pid $($dp.Pid)") { $texts | Should -Contain $text }
    }

    It 'fails with ConvertToTopologyDiagramNotInstalled, naming graphviz, when dot is not on the PATH' {
        $saved = $env:PATH
        try {
            $env:PATH = '/nonexistent'
            $e = Get-ErrorRecord { $t | ConvertTo-TopologyDiagram -Format Svg }
        }
        finally { $env:PATH = $saved }
        $e.FullyQualifiedErrorId | Should -Be 'ConvertToTopologyDiagramNotInstalled,NvRedirect.Cmdlets.ConvertToTopologyDiagramCommand'
        $e.Exception.Message | Should -Match 'graphviz'
    }
}
