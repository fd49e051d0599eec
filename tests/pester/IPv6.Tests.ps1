# IPv6 (issue 12, item 6), proved with real traffic: the seed topology with IPv6 addresses (ULA fd00:10::/64, added
# with nodad, waited for until none is tentative) on both sides of the intercepted path, nvr-dp inline. The interception
# steers IPv6 unicast to the datapath as it steers IPv4; Discover learns IPv6 connections; Protect blocks ping6 and
# TCP over IPv6 that no rule allows while neighbour discovery keeps working; the learned connections turned into IPv6
# rules let exactly those through; a connection that became denied is reset; removal leaves no IPv6 rule behind.
# The backend is the kernel's (Auto: Bpf where act_pedit is missing); the stock-kernel stage runs the Pedit one.
# Every name is this run's; AfterAll removes all of it, also on failure.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $SeedMac = '1a:27:f3:87:3a:27'
    $Host6 = 'fd00:10::66'
    $Container6 = 'fd00:10::88'

    function Clear-IPv6Test([string[]]$Socket) {
        Stop-TestTraffic
        Stop-TestDp $Socket
        Remove-TestNamespace
    }

    function Ping6In { Test-IcmpEcho $hostNs $Container6 -Count 2 }
    function Tcp6In([int]$Port) { (Invoke-TestTcpConnection $hostNs $Container6 $Port).Result }
    function Tcp6Out([int]$Port) { (Invoke-TestTcpConnection $containerNs $Host6 $Port).Result }
    function Get-Counter6 { (Get-Datapath -ControlSocket $sock).Counters.IPv6Packets }

    # the host side's neighbour entry for the container's IPv6 address: its state, or '' when there is none
    function Get-Neighbour6State {
        $line = (& ip -n $hostNs -6 neigh show $Container6 dev vex-peer 2>$null) -join ' '
        if ($line -match 'lladdr ([0-9a-f:]+) .*?(REACHABLE|STALE|DELAY|PROBE|PERMANENT)') { "$($Matches[1]) $($Matches[2])" } else { $line }
    }
}
AfterAll {
    if (Get-Command Clear-IPv6Test -ErrorAction Ignore) { Clear-IPv6Test $sock }
}

Describe 'IPv6: steered, policed and learned like IPv4' {
    BeforeAll {
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
        $agent = $topo.AgentNamespace
        $hostNs = $topo.HostNamespace
        $containerNs = $topo.ContainerNamespace
        Invoke-Ip -n $hostNs addr add "$Host6/64" dev vex-peer nodad
        Invoke-Ip -n $containerNs addr add "$Container6/64" dev eth0 nodad
        # link-local addresses still run DAD: wait until no address of either side is tentative
        Wait-TestCondition { -not ((& ip -n $hostNs -6 addr show tentative) + (& ip -n $containerNs -6 addr show tentative)) } -TimeoutSeconds 15 |
            Should -BeTrue -Because 'no IPv6 address may be tentative when traffic starts'
        $sock = New-TestDpPath '.sock'
        $null = Start-TestDp $agent $sock (New-TestDpPath '.log')
        Add-DpServicePort vth -ControlSocket $sock
        Get-WorkloadInterception $agent | Add-DpMac -Tap $false -ControlSocket $sock
        $LearnTcp = 5101; $OtherTcp = 5102; $HeldTcp = 5103; $OutTcp = 7101
        $containerServer = Start-TestEchoServer $containerNs -TcpPort $LearnTcp, $OtherTcp, $HeldTcp
        $hostServer = Start-TestEchoServer $hostNs -TcpPort $OutTcp
        $state = @{ Rules = @(); Held = $null }
    }
    AfterAll { Clear-IPv6Test $sock }

    It 'the interception has the seed''s six rules and two IPv6 steering rules (pref 10000, protocol ipv6) on the entry and inner ports' {
        $i = Get-WorkloadInterception $agent
        $i.Rules.Count | Should -Be 8
        $v6 = @($i.Rules | Where-Object Role -Like '*IPv6 to datapath')
        @($v6.Role | Sort-Object) | Should -Be @('entry: IPv6 to datapath', 'inner: IPv6 to datapath')
        @($v6.Priority | Sort-Object -Unique) | Should -Be @(10000)
        @($v6.LinkName | Sort-Object) | Should -Be @('vex', 'vin')
        foreach ($link in 'vex', 'vin') {
            $shown = (& tc -n $agent filter show dev $link ingress pref 10000) -join "`n"
            $shown | Should -Match 'protocol ipv6' -Because "tc must show the IPv6 steering rule of $link"
        }
    }

    It 'without a policy ping6 and TCP over IPv6 pass, through the datapath (its IPv6 counter grows)' {
        $before = Get-Counter6
        Wait-TestCondition { Ping6In } -TimeoutSeconds 15 | Should -BeTrue -Because 'the datapath forwards the steered IPv6 frames'
        Tcp6In $LearnTcp | Should -Be 'connected'
        Get-Counter6 | Should -BeGreaterThan $before -Because 'IPv6 unicast is steered to nvr-dp, not passed around it'
        @(Get-DpConnection -Mac $SeedMac -ControlSocket $sock | Where-Object { "$($_.Client)" -eq $Host6 -and $_.ServerPort -eq $LearnTcp }).Count |
            Should -Be 1 -Because 'the IPv6 connection is listed'
    }

    It 'Discover learns IPv6 connections and ConvertTo-DpRule makes IPv6 rules of them' {
        Set-DpWorkloadMode -Mac $SeedMac -Mode Discover -ControlSocket $sock
        Ping6In | Should -BeTrue
        Tcp6In $LearnTcp | Should -Be 'connected'
        Tcp6Out $OutTcp | Should -Be 'connected'
        $state.Held = Open-TestTcpConnection $hostNs $Container6 $HeldTcp
        $state.Held.Result | Should -Be 'connected'
        $learned = @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock | Where-Object { "$($_.Client)" -in $Host6, $Container6 })
        @($learned | Where-Object { $_.Protocol -eq 58 -and "$($_.Server)" -eq $Container6 }).Count | Should -Be 1 -Because 'ping6 is learned as ICMPv6'
        @($learned | Where-Object { $_.Protocol -eq 6 -and $_.ServerPort -eq $LearnTcp -and "$($_.Action)" -eq 'Learn' }).Count | Should -Be 1
        $rules = @($learned | Where-Object { $_.ServerPort -ne $HeldTcp } | ConvertTo-DpRule -WarningVariable warned)
        $warned | Should -BeNullOrEmpty -Because 'IPv6 connections are no longer skipped'
        $rules.Count | Should -Be 3
        $out = $rules | Where-Object { $_.Protocol -eq 6 -and "$($_.Direction)" -eq 'Egress' }
        ($out.Source, $out.Destination, $out.Port) | Should -Be @($Container6, $Host6, "$OutTcp")
        $tcp = $rules | Where-Object { $_.Protocol -eq 6 -and "$($_.Direction)" -eq 'Ingress' }
        ($tcp.Source, $tcp.Destination, $tcp.Port, "$($tcp.Direction)") | Should -Be @($Host6, $Container6, "$LearnTcp", 'Ingress')
        ($rules | Where-Object Protocol -EQ 58).ProtocolName | Should -Be 'ICMPv6'
        $state.Rules = $rules
    }

    It 'Protect with no rules blocks ping6 and TCP over IPv6 both ways, while neighbour discovery keeps working' {
        Set-DpWorkloadMode -Mac $SeedMac -Mode Protect -ControlSocket $sock
        Ping6In | Should -BeFalse -Because 'no rule allows ping6'
        Tcp6In $LearnTcp | Should -Be 'timeout' -Because 'the SYN is dropped'
        Tcp6Out $OutTcp | Should -Be 'timeout' -Because 'egress is policed too'
        @(Get-DpConnection -Mac $SeedMac -Blocked -ControlSocket $sock | Where-Object { "$($_.Client)" -in $Host6, $Container6 }).Count | Should -Be 3 -Because 'ping6 and the two TCP connections are listed as denied'

        # neighbour discovery: the host side forgets the container's MAC and must learn it again through the interception
        Invoke-Ip -n $hostNs -6 neigh flush dev vex-peer
        $null = Ping6In
        Wait-TestCondition { (Get-Neighbour6State) -match "^$([regex]::Escape($SeedMac)) (REACHABLE|STALE|DELAY|PROBE)" } -TimeoutSeconds 10 |
            Should -BeTrue -Because "neighbour solicitations and advertisements pass in Protect (neighbour entry: '$(Get-Neighbour6State)')"
    }

    It 'Protect: the IPv6 connection opened in Discover is reset on its next packet' {
        $r = Send-TestTcpData $state.Held
        $r.Result | Should -Be 'reset' -Because "the client must see a reset, not a hang (got $($r.Result) $($r.Detail))"
        Close-TestTcpConnection $state.Held
    }

    It 'the learned IPv6 rules let ping6 and the learned ports (ingress and egress) through; another port stays blocked' {
        $state.Rules | Add-DpPolicyRule -Mac $SeedMac -ControlSocket $sock
        $policy = Get-DpPolicy $SeedMac -ControlSocket $sock
        $policy.Mode | Should -Be 'Protect'
        @($policy.Rules | Where-Object { $_.Source -in $Host6, $Container6 }).Count | Should -Be 3 -Because 'the IPv6 rules come back from the datapath as IPv6'
        Wait-TestCondition { Ping6In } -TimeoutSeconds 10 | Should -BeTrue
        Tcp6In $LearnTcp | Should -Be 'connected'
        Tcp6Out $OutTcp | Should -Be 'connected'
        Tcp6In $OtherTcp | Should -Be 'timeout'
        $allowed = @(Get-DpConnection -Mac $SeedMac -ControlSocket $sock | Where-Object { "$($_.Client)" -eq $Host6 -and $_.ServerPort -eq $LearnTcp -and "$($_.Action)" -eq 'Allow' })
        $allowed.Count | Should -Be 1
        $allowed[0].RuleId | Should -BeGreaterThan 0
    }

    It 'New-DpRule refuses bad IPv6 text with what is wrong' {
        $e = @(Get-ErrorRecord { New-DpRule -Source 'fd00:10::5/64' })[0]
        $e.FullyQualifiedErrorId | Should -BeLike 'NewDpRuleInvalidArgument*'
        $e.Exception.Message | Should -BeLike '*did you mean fd00:10::/64*'
        (Get-ErrorRecord { New-DpRule -Source $Host6 -Protocol ICMP }).Exception.Message | Should -BeLike '*ICMPv6*'
        (Get-ErrorRecord { New-DpRule -Source $Host6 -Destination 10.10.10.88 }).Exception.Message | Should -BeLike '*different address families*'
    }

    It 'Remove-WorkloadInterception removes the IPv6 steering rules with the others' {
        $removed = @(Remove-WorkloadInterception $SeedMac -Namespace $agent -PassThru)
        @($removed | Where-Object Role -NotLike '*fast path').Count | Should -Be 8 -Because 'the six of the seed and the two for IPv6 (and the fast path''s programs when it is on)'
        @($removed | Where-Object Role -Like '*IPv6 to datapath').Count | Should -Be 2
        foreach ($link in 'vex', 'vin') { (& tc -n $agent filter show dev $link ingress) | Should -BeNullOrEmpty }
    }
}
