# The seed's `ip` section reproduced with cmdlets, step by step, each resulting fact checked against `ip -j`.
# A third, uniquely named "host" namespace stands in for the root namespace: the tests never touch the real one.
BeforeAll { Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force; Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force }
AfterAll { if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace } }

Describe 'The seed topology, built with cmdlets' {
    BeforeAll {
        $hostNs = New-TestNamespaceName 'host'
        $agentNs = New-TestNamespaceName 'agent'
        $containerNs = New-TestNamespaceName 'container'
        $macs = @{}
        function Get-IpLinkName([string]$Namespace) { @(Get-IpLink $Namespace | ForEach-Object ifname | Sort-Object) }
    }
    AfterAll { Remove-TestNamespace }

    It 'ip netns add agent-ns; ip netns add container-ns (and the host namespace)' {
        $made = New-AgentNamespace $hostNs, $agentNs, $containerNs
        $made.Name | Should -Be @($hostNs, $agentNs, $containerNs)
        $listed = Get-IpNamespaceName
        foreach ($n in $hostNs, $agentNs, $containerNs) {
            $listed | Should -Contain $n
            Get-IpLinkName $n | Should -Be @('lo')
        }
    }

    It 'ip link add vex type veth peer name vex-peer' {
        $vex = New-AgentLink vex vex-peer -Namespace $hostNs
        $vex.Name | Should -BeExactly 'vex'
        $vex.Namespace | Should -BeExactly $hostNs
        $vex.Kind | Should -BeExactly 'veth'
        $vex.State | Should -BeExactly 'Down'
        $vex.PeerName | Should -BeExactly 'vex-peer'
        $vex.PeerNamespace | Should -BeExactly $hostNs
        Assert-AgentLinkMatchesIp $vex
        (Get-IpLink $hostNs vex).link | Should -BeExactly 'vex-peer'
        Get-IpLinkName $hostNs | Should -Be @('lo', 'vex', 'vex-peer')
        $macs['vex'] = $vex.MacAddress
    }

    It 'ip link set vex netns agent-ns' {
        $vex = Move-AgentLink vex -Namespace $hostNs -DestinationNamespace $agentNs -PassThru
        $vex.Namespace | Should -BeExactly $agentNs
        $vex.Name | Should -BeExactly 'vex'
        $vex.MacAddress | Should -BeExactly $macs['vex']
        $vex.PeerName | Should -BeExactly 'vex-peer'
        $vex.PeerNamespace | Should -BeExactly $hostNs
        Assert-AgentLinkMatchesIp $vex
        Get-IpLinkName $hostNs | Should -Be @('lo', 'vex-peer')
        Get-IpLinkName $agentNs | Should -Be @('lo', 'vex')
        $peer = Get-AgentLink vex-peer -Namespace $hostNs
        $peer.PeerNamespace | Should -BeExactly $agentNs
        Assert-AgentLinkMatchesIp $peer
    }

    It 'ip link add vin type veth peer name vin-peer; ip link set vin netns agent-ns; ip link set vin-peer netns container-ns' {
        New-AgentLink vin vin-peer -Namespace $hostNs | Out-Null
        Move-AgentLink vin -Namespace $hostNs -DestinationNamespace $agentNs | Should -BeNullOrEmpty
        Move-AgentLink vin-peer -Namespace $hostNs -DestinationNamespace $containerNs | Should -BeNullOrEmpty
        Get-IpLinkName $hostNs | Should -Be @('lo', 'vex-peer')
        Get-IpLinkName $agentNs | Should -Be @('lo', 'vex', 'vin')
        Get-IpLinkName $containerNs | Should -Be @('lo', 'vin-peer')
        Get-AgentLink vin -Namespace $agentNs | Assert-AgentLinkMatchesIp
        Get-AgentLink vin-peer -Namespace $containerNs | Assert-AgentLinkMatchesIp
    }

    It 'ip netns exec container-ns ip link set vin-peer name eth0' {
        $index = (Get-IpLink $containerNs vin-peer).ifindex
        $eth0 = Rename-AgentLink vin-peer -NewName eth0 -Namespace $containerNs -PassThru
        $eth0.Name | Should -BeExactly 'eth0'
        $eth0.Index | Should -Be $index
        $eth0.PeerName | Should -BeExactly 'vin'
        $eth0.PeerNamespace | Should -BeExactly $agentNs
        Assert-AgentLinkMatchesIp $eth0
        Get-IpLinkName $containerNs | Should -Be @('eth0', 'lo')
    }

    It 'ip link add vbr type veth peer name vth; ip link set vbr netns agent-ns; ip link set vth netns agent-ns' {
        New-AgentLink vbr vth -Namespace $hostNs | Out-Null
        Move-AgentLink vbr -Namespace $hostNs -DestinationNamespace $agentNs
        Move-AgentLink vth -Namespace $hostNs -DestinationNamespace $agentNs
        Get-IpLinkName $hostNs | Should -Be @('lo', 'vex-peer')
        Get-IpLinkName $agentNs | Should -Be @('lo', 'vbr', 'vex', 'vin', 'vth')
        $vbr = Get-AgentLink vbr -Namespace $agentNs
        $vbr.PeerName | Should -BeExactly 'vth'
        $vbr.PeerNamespace | Should -BeExactly $agentNs
        (Get-IpLink $agentNs vbr).link | Should -BeExactly 'vth'
        Assert-AgentLinkMatchesIp $vbr
    }

    It 'brings every link up (Get-AgentLink -Namespace NS | Set-AgentLink -Up)' {
        foreach ($ns in $hostNs, $agentNs, $containerNs) {
            Get-AgentLink -Namespace $ns | Set-AgentLink -Up | Should -BeNullOrEmpty
            foreach ($l in Get-IpLink $ns) { $l.flags | Should -Contain 'UP' -Because "$($l.ifname) in $ns is set up" }
        }
        # carrier and operstate follow through the kernel's linkwatch, asynchronously
        $allUp = Wait-TestCondition {
            @($hostNs, $agentNs, $containerNs | ForEach-Object { Get-IpLink $_ } | Where-Object { $_.ifname -ne 'lo' -and $_.operstate -ne 'UP' }).Count -eq 0
        }
        $allUp | Should -BeTrue -Because 'both ends of every veth are up'
    }

    It 'ip addr add 10.10.10.66/24 dev vex-peer; ip netns exec container-ns ip addr add 10.10.10.88/24 dev eth0' {
        $a = Add-AgentAddress vex-peer 10.10.10.66/24 -Namespace $hostNs
        $a | Should -BeOfType ([NvRedirect.Core.Model.AgentAddress])
        $a.Namespace | Should -BeExactly $hostNs
        $a.LinkName | Should -BeExactly 'vex-peer'
        $a.Address | Should -BeExactly '10.10.10.66/24'
        $a.Family | Should -BeExactly 'IPv4'
        $a.Scope | Should -BeExactly 'global'
        $b = Add-AgentAddress eth0 10.10.10.88/24 -Namespace $containerNs
        $b.Address | Should -BeExactly '10.10.10.88/24'
        @(Get-IpAddress $hostNs -Family IPv4 | Where-Object LinkName -NE 'lo' | ForEach-Object Address) | Should -Be @('10.10.10.66/24')
        @(Get-IpAddress $hostNs -LinkName vex-peer -Family IPv4 | ForEach-Object Address) | Should -Be @('10.10.10.66/24')
        @(Get-IpAddress $containerNs -LinkName eth0 -Family IPv4 | ForEach-Object Address) | Should -Be @('10.10.10.88/24')
        # the kernel adds the prefix route itself, as for `ip addr add`
        $routes = (Invoke-Ip -j -n $containerNs route show) -join "`n" | ConvertFrom-Json
        @($routes | Where-Object { $_.dst -eq '10.10.10.0/24' -and $_.dev -eq 'eth0' }).Count | Should -Be 1
    }

    It 'ends with exactly the links, peers, states and addresses ip -j reports' {
        $expected = @(
            @{ Ns = $hostNs; Name = 'vex-peer'; Peer = 'vex'; PeerNs = $agentNs; Addresses = @('10.10.10.66/24') }
            @{ Ns = $agentNs; Name = 'vex'; Peer = 'vex-peer'; PeerNs = $hostNs; Addresses = @() }
            @{ Ns = $agentNs; Name = 'vin'; Peer = 'eth0'; PeerNs = $containerNs; Addresses = @() }
            @{ Ns = $agentNs; Name = 'vbr'; Peer = 'vth'; PeerNs = $agentNs; Addresses = @() }
            @{ Ns = $agentNs; Name = 'vth'; Peer = 'vbr'; PeerNs = $agentNs; Addresses = @() }
            @{ Ns = $containerNs; Name = 'eth0'; Peer = 'vin'; PeerNs = $agentNs; Addresses = @('10.10.10.88/24') }
        )
        foreach ($ns in $hostNs, $agentNs, $containerNs) {
            $links = @(Get-AgentLink -Namespace $ns)
            ($links.Name | Sort-Object) | Should -Be (Get-IpLinkName $ns)
            $links | Assert-AgentLinkMatchesIp
            foreach ($l in $links) {
                $ip = Get-IpLink $ns $l.Name
                $l.OperState | Should -Be $ip.operstate.ToLowerInvariant()
                $l.State | Should -BeExactly 'Up'
            }
        }
        foreach ($e in $expected) {
            $l = Get-AgentLink $e.Name -Namespace $e.Ns
            $l.Kind | Should -BeExactly 'veth'
            $l.OperState | Should -BeExactly 'up'
            $l.PeerName | Should -BeExactly $e.Peer
            $l.PeerNamespace | Should -BeExactly $e.PeerNs
            @($l.Addresses | Where-Object { $_ -notlike '*:*' }) | Should -Be $e.Addresses
        }
    }

    It 'Get-AgentAddress reports the IPv4 addresses ip -j reports' {
        foreach ($ns in $hostNs, $agentNs, $containerNs) {
            $mine = @(Get-AgentAddress -Namespace $ns -Family IPv4 | ForEach-Object { "$($_.LinkName) $($_.Address)" } | Sort-Object)
            $theirs = @(Get-IpAddress $ns -Family IPv4 | ForEach-Object { "$($_.LinkName) $($_.Address)" } | Sort-Object)
            $mine | Should -Be $theirs
        }
    }

    It 'leaves the root namespace untouched (no link of the seed appears there)' {
        $seedMacs = @($hostNs, $agentNs, $containerNs | ForEach-Object { Get-IpLink $_ } | Where-Object ifname -NE 'lo' | ForEach-Object address)
        $seedMacs.Count | Should -Be 6
        $rootMacs = @(Get-IpLink '' | ForEach-Object address)
        foreach ($mac in $seedMacs) { $rootMacs | Should -Not -Contain $mac }
    }

    It 'does not forward yet: 10.10.10.88 does not answer the host namespace (vex and vin are not joined)' {
        Test-IcmpEcho $hostNs 10.10.10.88 -Count 1 | Should -BeFalse
    }
}

Describe 'A direct veth pair carries traffic (links and addresses are real)' {
    BeforeAll {
        $left = New-TestNamespaceName 'left'
        $right = New-TestNamespaceName 'right'
        $l = New-TestLinkName 'l'
        $r = New-TestLinkName 'r'
        New-AgentNamespace $left, $right | Out-Null
        New-AgentLink $l $r -Namespace $left -PeerNamespace $right | Out-Null
        Get-AgentLink -Namespace $left | Set-AgentLink -Up
        Get-AgentLink -Namespace $right | Set-AgentLink -Up
        Add-AgentAddress $l 10.10.10.1/24 -Namespace $left | Out-Null
        Add-AgentAddress $r 10.10.10.2/24 -Namespace $right | Out-Null
    }
    AfterAll { Remove-TestNamespace }

    It 'answers an ICMP echo from one namespace to the other, both ways' {
        Test-IcmpEcho $left 10.10.10.2 | Should -BeTrue
        Test-IcmpEcho $right 10.10.10.1 | Should -BeTrue
    }

    It 'stops answering once the pair is removed (Get-AgentLink | Remove-AgentLink)' {
        Get-AgentLink $l -Namespace $left | Remove-AgentLink
        @(Get-IpLink $left $l).Count | Should -Be 0
        Wait-TestCondition { @(Get-IpLink $right $r).Count -eq 0 } | Should -BeTrue -Because 'removing one end removes the pair'
        Test-IcmpEcho $left 10.10.10.2 -Count 1 | Should -BeFalse
    }
}
