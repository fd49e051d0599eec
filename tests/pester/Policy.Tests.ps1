# Policy and modes (issue 6), proved with real traffic: ping, TCP and UDP between the host-side and container
# namespaces of the seed topology, through the intercepted path and nvr-dp. The Describe tells the demo's story in
# order (Discover, Protect with no rules, learned connections turned into allow rules, ranges, ingress versus
# egress, ICMP, removing a rule, ICMP policing off, Monitor, no policy, tap), and every verdict is checked twice: by
# what the traffic did (answered, reset, timed out) and by what Get-DpConnection lists for it (action, rule id,
# dropped packets).
# Every name is this run's (namespaces, control socket, log, traffic logs); AfterAll removes all of it, also on failure.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $SeedMac = '1a:27:f3:87:3a:27'
    $HostIp = '10.10.10.66'
    $ContainerIp = '10.10.10.88'
    # more host-side addresses (on vex-peer) for rules on address ranges: .67 is inside 10.10.10.64/28 and
    # 10.10.10.65-10.10.10.70, .100 outside both
    $HostIp2 = '10.10.10.67'
    $FarIp = '10.10.10.100'
    $Proto = @{ ICMP = 1; TCP = 6; UDP = 17 }

    # The cleanup: traffic processes, the daemons (cleanly where they answer, else by pid) with their files, namespaces
    function Clear-PolicyTest([string[]]$Socket) {
        Stop-TestTraffic
        Stop-TestDp $Socket
        Remove-TestNamespace
    }

    # The entries Get-DpConnection lists for one (direction, client, server, server port, protocol), optionally one action.
    function Get-TestConnection([string]$Client, [string]$Server, [int]$Port, [string]$Protocol, [string]$Direction = 'Ingress', [string]$Action) {
        @(Get-DpConnection -Mac $SeedMac -ControlSocket $sock | Where-Object {
                "$($_.Client)" -eq $Client -and "$($_.Server)" -eq $Server -and $_.ServerPort -eq $Port -and $_.Protocol -eq $Proto[$Protocol] -and
                "$($_.Direction)" -eq $Direction -and (-not $Action -or "$($_.Action)" -eq $Action)
            })
    }

    # Asserts that Get-DpConnection lists exactly one entry with this verdict (action and rule id) for the connection;
    # a Deny entry must have withheld packets, any other none. Returns the entry.
    function Assert-Verdict([string]$Client, [string]$Server, [int]$Port, [string]$Protocol, [string]$Direction = 'Ingress',
        [Parameter(Mandatory)][string]$Action, [uint32]$RuleId = 0) {
        $all = Get-TestConnection $Client $Server $Port $Protocol $Direction
        $e = @($all | Where-Object { "$($_.Action)" -eq $Action -and $_.RuleId -eq $RuleId })
        $listed = ($all | ForEach-Object { "$($_.Action)/rule $($_.RuleId)/dropped $($_.DroppedPackets)" }) -join ', '
        $e.Count | Should -Be 1 -Because "Get-DpConnection must list $Direction $Protocol $Client -> ${Server}:$Port as $Action by rule $RuleId (it lists: $listed)"
        $e[0].Mac | Should -BeExactly $SeedMac
        $e[0].ControlSocket | Should -BeExactly $sock
        if ($Action -eq 'Deny') { $e[0].DroppedPackets | Should -BeGreaterThan 0 }
        else {
            $e[0].DroppedPackets | Should -Be 0
            $e[0].Packets | Should -BeGreaterThan 0
            $e[0].Sessions | Should -BeGreaterThan 0
        }
        $e[0]
    }

    # Traffic from the host side to the container (ingress for the workload) and back (egress)
    function Test-PingIn([string]$Source = $HostIp) { Test-IcmpEcho $hostNs $ContainerIp -Count 2 -Source $Source }
    function Test-PingOut { Test-IcmpEcho $containerNs $HostIp -Count 2 }
    function TcpIn([int]$Port, [string]$Source = $HostIp) { (Invoke-TestTcpConnection $hostNs $ContainerIp $Port -Source $Source).Result }
    function TcpOut([int]$Port) { (Invoke-TestTcpConnection $containerNs $HostIp $Port).Result }
    function UdpIn([int]$Port, [string]$Source = $HostIp) { (Invoke-TestUdpRequest $hostNs $ContainerIp $Port -Source $Source).Result }

    # Connection entries as short text, for messages: 'Ingress TCP 10.10.10.66->10.10.10.88:5001 Deny/0'
    function Format-TestConnection([object[]]$Connection) {
        ($Connection | ForEach-Object { "$($_.Direction) $($_.ProtocolName) $($_.Client)->$($_.Server):$($_.ServerPort) $($_.Action)/$($_.RuleId)" }) -join '; '
    }

    function Get-Mode { (Get-Datapath -ControlSocket $sock).Workloads | Where-Object Mac -EQ $SeedMac | ForEach-Object Mode }
}
AfterAll {
    if (Get-Command Clear-PolicyTest -ErrorAction Ignore) { Clear-PolicyTest $sock }
}

Describe 'Policy and modes: the seed''s story with real traffic' {
    BeforeAll {
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
        $agent = $topo.AgentNamespace
        $hostNs = $topo.HostNamespace
        $containerNs = $topo.ContainerNamespace
        Invoke-Ip -n $hostNs addr add "$HostIp2/24" dev vex-peer
        Invoke-Ip -n $hostNs addr add "$FarIp/24" dev vex-peer
        $sock = New-TestDpPath '.sock'
        $null = Start-TestDp $agent $sock (New-TestDpPath '.log')
        Add-DpServicePort vth -ControlSocket $sock
        Get-WorkloadInterception $agent | Add-DpMac -Tap $false -ControlSocket $sock

        # the ports of the story (servers echo everything back)
        $LearnTcp = 5001; $HeldTcp = 5002; $OtherTcp = 5003; $LearnUdp = 6001; $OtherUdp = 6003
        $BothTcp = 7000    # listened on on both sides: ingress versus egress
        $OutTcp = 7001     # on the host side, reached from the container (egress) in Discover
        $RangeTcp = 7999, 8000, 8050, 8100, 8101; $RangeUdp = 9000
        $containerServer = Start-TestEchoServer $containerNs -TcpPort (@($LearnTcp, $HeldTcp, $OtherTcp, $BothTcp) + $RangeTcp) -UdpPort $LearnUdp, $OtherUdp, $RangeUdp
        $hostServer = Start-TestEchoServer $hostNs -TcpPort $BothTcp, $OutTcp
        $state = @{ Held = $null }   # the connection held open from Discover into Protect (Its share state through it)
    }
    AfterAll { Clear-PolicyTest $sock }

    It 'without a policy the workload''s Mode is None and traffic passes, not policed (action Open)' {
        Wait-TestCondition { Test-PingIn } -TimeoutSeconds 15 | Should -BeTrue -Because 'the datapath forwards the steered frames'
        Get-Mode | Should -Be 'None'
        $w = (Get-Datapath -ControlSocket $sock).Workloads[0]
        $w.DefaultAction | Should -BeNullOrEmpty
        $w.PolicyVersion | Should -Be 0
        $p = Get-DpPolicy $SeedMac -ControlSocket $sock
        $p.Mode | Should -Be 'None'
        $p.Rules | Should -BeNullOrEmpty
        TcpIn $LearnTcp | Should -Be 'connected'
        $null = Assert-Verdict $HostIp $ContainerIp $LearnTcp TCP -Action Open
        $null = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Open
        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        @(Get-DpConnection -Mac $SeedMac -ControlSocket $sock | Where-Object Protocol -In 1, 6, 17) | Should -BeNullOrEmpty -Because 'Clear-DpConnection forgot them'
    }

    It 'Discover: ping, TCP both ways and UDP pass, and Get-DpConnection -Learned lists each with action Learn' {
        Set-DpWorkloadMode -Mac $SeedMac -Mode Discover -ControlSocket $sock
        Get-Mode | Should -Be 'Discover'
        (Get-Datapath -ControlSocket $sock).Workloads[0].DefaultAction | Should -Be 'Learn'
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Mode | Should -Be 'Discover'

        Test-PingIn | Should -BeTrue
        TcpIn $LearnTcp | Should -Be 'connected'
        UdpIn $LearnUdp | Should -Be 'answered'
        TcpOut $OutTcp | Should -Be 'connected'
        $state.Held = Open-TestTcpConnection $hostNs $ContainerIp $HeldTcp
        $state.Held.Result | Should -Be 'connected'
        (Send-TestTcpData $state.Held).Result | Should -Be 'answered'

        $null = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Learn
        $null = Assert-Verdict $HostIp $ContainerIp $LearnTcp TCP -Action Learn
        $null = Assert-Verdict $HostIp $ContainerIp $HeldTcp TCP -Action Learn
        $null = Assert-Verdict $HostIp $ContainerIp $LearnUdp UDP -Action Learn
        $null = Assert-Verdict $ContainerIp $HostIp $OutTcp TCP -Direction Egress -Action Learn
        $learned = @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock)
        $learned.Count | Should -Be 5 -Because "exactly the five connections above were learned (listed: $(Format-TestConnection $learned))"
        @($learned | Where-Object { "$($_.Action)" -ne 'Learn' }) | Should -BeNullOrEmpty
    }

    It 'Protect with no rules: ping, new TCP (both ways) and UDP are blocked, and Get-DpConnection -Blocked lists them' {
        Set-DpWorkloadMode -Mac $SeedMac -Mode Protect -ControlSocket $sock
        Get-Mode | Should -Be 'Protect'
        (Get-Datapath -ControlSocket $sock).Workloads[0].DefaultAction | Should -Be 'Deny'
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Rules | Should -BeNullOrEmpty

        Test-PingIn | Should -BeFalse
        TcpIn $LearnTcp | Should -Be 'timeout' -Because 'the SYN is dropped: no answer, no RST'
        UdpIn $LearnUdp | Should -Be 'timeout'
        TcpOut $OutTcp | Should -Be 'timeout'

        $null = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Deny
        $null = Assert-Verdict $HostIp $ContainerIp $LearnTcp TCP -Action Deny
        $null = Assert-Verdict $HostIp $ContainerIp $LearnUdp UDP -Action Deny
        $null = Assert-Verdict $ContainerIp $HostIp $OutTcp TCP -Direction Egress -Action Deny
        $blocked = @(Get-DpConnection -Mac $SeedMac -Blocked -ControlSocket $sock)
        $blocked.Count | Should -Be 4 -Because "exactly the four connections above were blocked (listed: $(Format-TestConnection $blocked))"
        @($blocked | Where-Object { "$($_.Action)" -ne 'Deny' }) | Should -BeNullOrEmpty
        @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock).Count | Should -Be 5 -Because 'the learned entries stay listed'
        @(Get-TestConnection $HostIp $ContainerIp $HeldTcp TCP -Action Deny) | Should -BeNullOrEmpty -Because 'the connection held open is idle: no packet of it has met the new policy yet'
        # no server saw the blocked connections
        @(Get-TestEchoServerEvent $containerServer | Where-Object { $_.Event -eq 'accept' -and $_.Port -eq $LearnTcp }).Count | Should -Be 2 -Because 'only the connections made without a policy and in Discover arrived'
    }

    It 'Protect: the connection opened in Discover is reset on its next packet; the client sees a reset, not a hang, and so does the server' {
        $held = $state.Held
        $held | Should -Not -BeNullOrEmpty
        $r = Send-TestTcpData $held
        $r.Result | Should -Be 'reset' -Because "the client must see ECONNRESET/EPIPE, not a timeout (got $($r.Result) $($r.Detail))"
        Wait-TestCondition { @(Get-TestEchoServerEvent $containerServer | Where-Object { $_.Port -eq $HeldTcp -and $_.Peer -eq $held.Local -and $_.Event -eq 'reset' }).Count -gt 0 } -TimeoutSeconds 10 |
            Should -BeTrue -Because 'the server end of the connection is reset too'
        $null = Assert-Verdict $HostIp $ContainerIp $HeldTcp TCP -Action Deny
        $null = Assert-Verdict $HostIp $ContainerIp $HeldTcp TCP -Action Learn   # the learned entry stays
        Close-TestTcpConnection $held
    }

    It 'learned connections turned into allow rules (Get-DpConnection -Learned | ConvertTo-DpRule | Set-DpPolicy) pass again; everything else stays blocked' {
        $rules = @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock | ConvertTo-DpRule)
        $rules.Count | Should -Be 5
        foreach ($r in $rules) {
            "$($r.Action)" | Should -Be 'Allow'
            $r.Mac | Should -BeExactly $SeedMac
            $r.Id | Should -Be 0
        }
        $tcpRule = @($rules | Where-Object { $_.Protocol -eq 6 -and $_.PortFrom -eq $LearnTcp })
        $tcpRule.Count | Should -Be 1
        "$($tcpRule[0].SourceFrom)" | Should -Be $HostIp
        "$($tcpRule[0].SourceTo)" | Should -Be $HostIp
        "$($tcpRule[0].DestinationFrom)" | Should -Be $ContainerIp
        $tcpRule[0].PortTo | Should -Be $LearnTcp
        "$($tcpRule[0].Direction)" | Should -Be 'Ingress'
        $outRule = @($rules | Where-Object { $_.Protocol -eq 6 -and $_.PortFrom -eq $OutTcp })
        "$($outRule[0].Direction)" | Should -Be 'Egress'
        "$($outRule[0].SourceFrom)" | Should -Be $ContainerIp
        $icmpRule = @($rules | Where-Object Protocol -EQ 1)
        $icmpRule[0].Port | Should -Be 'any'

        $rules | Set-DpPolicy -ControlSocket $sock
        $policy = Get-DpPolicy $SeedMac -ControlSocket $sock
        $policy.Mode | Should -Be 'Protect' -Because 'Set-DpPolicy keeps the default action'
        $policy.Rules.Count | Should -Be 5
        @($policy.Rules.Id | Sort-Object -Unique).Count | Should -Be 5 -Because 'rules with Id 0 got distinct ids'
        $policy.Rules.Id | Should -Not -Contain 0
        (Get-Datapath -ControlSocket $sock).Workloads[0].RuleCount | Should -Be 5
        $idOf = @{}
        foreach ($r in $policy.Rules) { $idOf["$($r.Protocol)/$($r.PortFrom)"] = $r.Id }

        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        Test-PingIn | Should -BeTrue
        TcpIn $LearnTcp | Should -Be 'connected'
        TcpIn $HeldTcp | Should -Be 'connected' -Because 'a new connection to the port of the reset one is allowed now'
        UdpIn $LearnUdp | Should -Be 'answered'
        TcpOut $OutTcp | Should -Be 'connected'
        TcpIn $OtherTcp | Should -Be 'timeout'
        UdpIn $OtherUdp | Should -Be 'timeout'
        Test-PingIn -Source $FarIp | Should -BeFalse -Because 'the ICMP rule is for the learned client only'

        $null = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Allow -RuleId $idOf['1/0']
        $null = Assert-Verdict $HostIp $ContainerIp $LearnTcp TCP -Action Allow -RuleId $idOf["6/$LearnTcp"]
        $null = Assert-Verdict $HostIp $ContainerIp $HeldTcp TCP -Action Allow -RuleId $idOf["6/$HeldTcp"]
        $null = Assert-Verdict $HostIp $ContainerIp $LearnUdp UDP -Action Allow -RuleId $idOf["17/$LearnUdp"]
        $null = Assert-Verdict $ContainerIp $HostIp $OutTcp TCP -Direction Egress -Action Allow -RuleId $idOf["6/$OutTcp"]
        $null = Assert-Verdict $HostIp $ContainerIp $OtherTcp TCP -Action Deny
        $null = Assert-Verdict $HostIp $ContainerIp $OtherUdp UDP -Action Deny
        $null = Assert-Verdict $FarIp $ContainerIp 0 ICMP -Action Deny
    }

    It 'rules with address ranges (CIDR and a-b) and port ranges: inside passes, outside is blocked, ends included' {
        $cidr = New-DpRule -Id 10 -Source 10.10.10.64/28 -Destination $ContainerIp -Port 8000-8100 -Protocol TCP -Action Allow -Direction Ingress
        $span = New-DpRule -Id 11 -Source 10.10.10.65-10.10.10.70 -Destination 10.10.10.80-10.10.10.90 -Port $RangeUdp -Protocol UDP -Direction Ingress
        $cidr.Source | Should -Be '10.10.10.64/28'
        $cidr.Port | Should -Be '8000-8100'
        $span.Source | Should -Be '10.10.10.65-10.10.10.70' -Because 'a range that is no CIDR is shown as first-last'
        "$($span.Action)" | Should -Be 'Allow'
        Set-DpPolicy -Mac $SeedMac -Rule $cidr, $span -ControlSocket $sock
        $policy = Get-DpPolicy $SeedMac -ControlSocket $sock
        $policy.Mode | Should -Be 'Protect'
        $policy.Rules.Id | Should -Be @(10, 11)
        "$($policy.Rules[0].SourceFrom)-$($policy.Rules[0].SourceTo)" | Should -Be '10.10.10.64-10.10.10.79'
        "$($policy.Rules[0].PortFrom)-$($policy.Rules[0].PortTo)" | Should -Be '8000-8100'
        "$($policy.Rules[1].DestinationFrom)-$($policy.Rules[1].DestinationTo)" | Should -Be '10.10.10.80-10.10.10.90'

        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        TcpIn 8000 | Should -Be 'connected'
        TcpIn 8100 -Source $HostIp2 | Should -Be 'connected'
        TcpIn 8050 | Should -Be 'connected'
        TcpIn 8101 | Should -Be 'timeout'
        TcpIn 7999 | Should -Be 'timeout'
        TcpIn 8050 -Source $FarIp | Should -Be 'timeout' -Because "$FarIp is outside 10.10.10.64/28"
        TcpIn $LearnTcp | Should -Be 'timeout' -Because 'Set-DpPolicy replaced the learned rules'
        UdpIn $RangeUdp -Source $HostIp2 | Should -Be 'answered'
        UdpIn $RangeUdp -Source $FarIp | Should -Be 'timeout'

        $null = Assert-Verdict $HostIp $ContainerIp 8000 TCP -Action Allow -RuleId 10
        $null = Assert-Verdict $HostIp2 $ContainerIp 8100 TCP -Action Allow -RuleId 10
        $null = Assert-Verdict $HostIp $ContainerIp 8050 TCP -Action Allow -RuleId 10
        $null = Assert-Verdict $HostIp $ContainerIp 8101 TCP -Action Deny
        $null = Assert-Verdict $HostIp $ContainerIp 7999 TCP -Action Deny
        $null = Assert-Verdict $FarIp $ContainerIp 8050 TCP -Action Deny
        $null = Assert-Verdict $HostIp $ContainerIp $LearnTcp TCP -Action Deny
        $null = Assert-Verdict $HostIp2 $ContainerIp $RangeUdp UDP -Action Allow -RuleId 11
        $null = Assert-Verdict $FarIp $ContainerIp $RangeUdp UDP -Action Deny
    }

    It 'ingress versus egress: an ingress rule does not open the same port for connections the container initiates; an egress rule does' {
        Add-DpPolicyRule -Mac $SeedMac -Rule (New-DpRule -Id 20 -Source $HostIp -Destination $ContainerIp -Port $BothTcp -Protocol TCP -Direction Ingress) -ControlSocket $sock
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Rules.Id | Should -Be @(10, 11, 20)
        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        TcpIn $BothTcp | Should -Be 'connected'
        TcpOut $BothTcp | Should -Be 'timeout' -Because 'a connection initiated from the container is egress'
        $null = Assert-Verdict $HostIp $ContainerIp $BothTcp TCP -Action Allow -RuleId 20
        $null = Assert-Verdict $ContainerIp $HostIp $BothTcp TCP -Direction Egress -Action Deny

        New-DpRule -Id 21 -Source $ContainerIp -Destination $HostIp -Port $BothTcp -Protocol TCP -Direction Egress | Add-DpPolicyRule -Mac $SeedMac -ControlSocket $sock
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Rules.Id | Should -Be @(10, 11, 20, 21)
        TcpOut $BothTcp | Should -Be 'connected'
        $null = Assert-Verdict $ContainerIp $HostIp $BothTcp TCP -Direction Egress -Action Allow -RuleId 21
        @(Get-TestEchoServerEvent $hostServer | Where-Object { $_.Event -eq 'accept' -and $_.Port -eq $BothTcp }).Count | Should -Be 1 -Because 'only the allowed egress connection reached the host side'
    }

    It 'a policy that polices ingress only (-Direction Ingress) leaves the connections the container initiates open; -Direction Both polices them again' {
        $rules = (Get-DpPolicy $SeedMac -ControlSocket $sock).Rules
        $rules | Set-DpPolicy -Direction Ingress -ControlSocket $sock
        $policy = Get-DpPolicy $SeedMac -ControlSocket $sock
        "$($policy.Direction)" | Should -Be 'Ingress'
        $policy.Mode | Should -Be 'Protect'
        $policy.Rules.Id | Should -Be @(10, 11, 20, 21)
        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        TcpOut $OutTcp | Should -Be 'connected' -Because 'no rule allows it, but egress is not policed'
        TcpIn $OtherTcp | Should -Be 'timeout' -Because 'ingress still is'
        $null = Assert-Verdict $ContainerIp $HostIp $OutTcp TCP -Direction Egress -Action Open
        $null = Assert-Verdict $HostIp $ContainerIp $OtherTcp TCP -Action Deny

        $rules | Set-DpPolicy -Direction Both -ControlSocket $sock
        "$((Get-DpPolicy $SeedMac -ControlSocket $sock).Direction)" | Should -Be 'Both'
        TcpOut $OutTcp | Should -Be 'timeout'
        $null = Assert-Verdict $ContainerIp $HostIp $OutTcp TCP -Direction Egress -Action Deny
    }

    It 'ICMP rules: the TCP and UDP rules do not cover ping; an ICMP rule for one client lets only its pings pass, one way' {
        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        Test-PingIn | Should -BeFalse
        $null = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Deny

        Add-DpPolicyRule -Mac $SeedMac -Rule (New-DpRule -Id 30 -Source $HostIp -Destination $ContainerIp -Protocol ICMP -Direction Ingress) -ControlSocket $sock
        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        Test-PingIn | Should -BeTrue
        Test-PingIn -Source $FarIp | Should -BeFalse
        Test-PingOut | Should -BeFalse -Because 'the rule is for ingress; the container pinging out is egress'
        $allowed = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Allow -RuleId 30
        $allowed.ProtocolName | Should -Be 'ICMP'
        $null = Assert-Verdict $FarIp $ContainerIp 0 ICMP -Action Deny
        $null = Assert-Verdict $ContainerIp $HostIp 0 ICMP -Direction Egress -Action Deny
    }

    It 'Remove-DpPolicyRule: the traffic the rule allowed is blocked again; an id not in the policy is an error' {
        Remove-DpPolicyRule -Mac $SeedMac -Id 30 -ControlSocket $sock
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Rules.Id | Should -Be @(10, 11, 20, 21)
        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        Test-PingIn | Should -BeFalse
        $null = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Deny
        @(Get-TestConnection $HostIp $ContainerIp 0 ICMP -Action Allow) | Should -BeNullOrEmpty

        Remove-DpPolicyRule -Mac $SeedMac -Id 21 -ControlSocket $sock
        TcpOut $BothTcp | Should -Be 'timeout'
        $null = Assert-Verdict $ContainerIp $HostIp $BothTcp TCP -Direction Egress -Action Deny
        TcpIn $BothTcp | Should -Be 'connected' -Because 'the other rules stay'

        $errors = Get-ErrorRecord { Remove-DpPolicyRule -Mac $SeedMac -Id 999 -ControlSocket $sock }
        @($errors).Count | Should -Be 1
        $errors[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $errors[0].Exception.Message | Should -BeLike '*999*'
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Rules.Id | Should -Be @(10, 11, 20)
    }

    It 'with ICMP policing off (ctrl_enable_icmp_policy false, NeuVector''s own behaviour) ping passes in Protect by the built-in rule 0; on again, it is blocked' {
        Get-Mode | Should -Be 'Protect'
        (Get-Datapath -ControlSocket $sock).EnableIcmpPolicy | Should -BeTrue -Because 'nvr-dp polices ICMP by default'
        Send-DpMessage '{"ctrl_enable_icmp_policy": {"enable_icmp_policy": false}}' -ControlSocket $sock
        try {
            (Get-Datapath -ControlSocket $sock).EnableIcmpPolicy | Should -BeFalse
            Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
            Test-PingIn | Should -BeTrue
            TcpIn $OtherTcp | Should -Be 'timeout' -Because 'only ICMP is exempt'
            $null = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Allow -RuleId 0
        }
        finally { Send-DpMessage '{"ctrl_enable_icmp_policy": {"enable_icmp_policy": true}}' -ControlSocket $sock }
        (Get-Datapath -ControlSocket $sock).EnableIcmpPolicy | Should -BeTrue
        Test-PingIn | Should -BeFalse
        $null = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Deny
    }

    It 'Monitor: everything passes, the rules still match, and Get-DpConnection -Violation lists what the rules do not allow' {
        Set-DpWorkloadMode -Mac $SeedMac -Mode Monitor -ControlSocket $sock
        Get-Mode | Should -Be 'Monitor'
        (Get-Datapath -ControlSocket $sock).Workloads[0].DefaultAction | Should -Be 'Violate'
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Rules.Id | Should -Be @(10, 11, 20) -Because 'changing the mode keeps the rules'
        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock

        Test-PingIn | Should -BeTrue
        Test-PingIn -Source $FarIp | Should -BeTrue
        Test-PingOut | Should -BeTrue
        TcpIn $OtherTcp | Should -Be 'connected'
        TcpIn 8101 | Should -Be 'connected'
        TcpOut $BothTcp | Should -Be 'connected'
        UdpIn $OtherUdp | Should -Be 'answered'
        TcpIn 8000 | Should -Be 'connected'

        $violations = @(Get-DpConnection -Mac $SeedMac -Violation -ControlSocket $sock)
        $violations.Count | Should -Be 7 -Because "exactly the seven connections above are violations (listed: $(Format-TestConnection $violations))"
        @($violations | Where-Object { "$($_.Action)" -ne 'Violate' }) | Should -BeNullOrEmpty -Because 'nothing is blocked in Monitor'
        $null = Assert-Verdict $HostIp $ContainerIp 0 ICMP -Action Violate
        $null = Assert-Verdict $FarIp $ContainerIp 0 ICMP -Action Violate
        $null = Assert-Verdict $ContainerIp $HostIp 0 ICMP -Direction Egress -Action Violate
        $null = Assert-Verdict $HostIp $ContainerIp $OtherTcp TCP -Action Violate
        $null = Assert-Verdict $HostIp $ContainerIp 8101 TCP -Action Violate
        $null = Assert-Verdict $ContainerIp $HostIp $BothTcp TCP -Direction Egress -Action Violate
        $null = Assert-Verdict $HostIp $ContainerIp $OtherUdp UDP -Action Violate
        $null = Assert-Verdict $HostIp $ContainerIp 8000 TCP -Action Allow -RuleId 10
        @(Get-DpConnection -Mac $SeedMac -Blocked -ControlSocket $sock) | Should -BeNullOrEmpty
    }

    It 'Remove-DpPolicy: no policy again, Mode None, everything passes unpoliced' {
        Remove-DpPolicy -Mac $SeedMac -ControlSocket $sock
        Get-Mode | Should -Be 'None'
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Mode | Should -Be 'None'
        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        TcpIn $OtherTcp | Should -Be 'connected'
        $null = Assert-Verdict $HostIp $ContainerIp $OtherTcp TCP -Action Open
        @(Get-DpConnection -Mac $SeedMac -Violation -ControlSocket $sock) | Should -BeNullOrEmpty
    }

    It 'Discover on a tapped workload (-Wire Tap): verdicts are computed and recorded, nothing is transmitted; Protect with -Wire Tap is refused' {
        Set-DpWorkloadMode -Mac $SeedMac -Mode Discover -Wire Tap -ControlSocket $sock
        $w = (Get-Datapath -ControlSocket $sock).Workloads[0]
        $w.Mode | Should -Be 'Discover'
        $w.Tap | Should -BeTrue
        Clear-DpConnection -Mac $SeedMac -ControlSocket $sock
        TcpIn $LearnTcp | Should -Be 'timeout' -Because 'a tapped workload''s frames are inspected only'
        $null = Assert-Verdict $HostIp $ContainerIp $LearnTcp TCP -Action Learn

        $errors = Get-ErrorRecord { Set-DpWorkloadMode -Mac $SeedMac -Mode Protect -Wire Tap -ControlSocket $sock }
        @($errors).Count | Should -Be 1
        $errors[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $errors[0].Exception.Message | Should -BeLike '*-Wire Tap cannot go with -Mode Protect*'
        Get-Mode | Should -Be 'Discover' -Because 'nothing was sent'

        Set-DpWorkloadMode -Mac $SeedMac -Mode Discover -ControlSocket $sock
        (Get-Datapath -ControlSocket $sock).Workloads[0].Tap | Should -BeFalse -Because '-Wire defaults to Inline'
        TcpIn $LearnTcp | Should -Be 'connected'
    }
}

Describe 'After the policy tests' {
    It 'leaves no nvr-dp process, socket or log of this run, no echo server and no kept connection' {
        $stem = Get-TestRunStem
        $left = @(Get-ChildItem /proc -Directory -ErrorAction Ignore | Where-Object Name -Match '^\d+$' | ForEach-Object {
                $cmd = Get-Content "/proc/$($_.Name)/cmdline" -Raw -ErrorAction Ignore
                if ($cmd -and $cmd.Contains('nvr-dp.dll') -and $cmd.Contains("/tmp/$stem")) { $_.Name }
            })
        $left | Should -BeNullOrEmpty
        @(Get-ChildItem /tmp -Filter "${stem}dp-*" -Name -ErrorAction Ignore) | Should -BeNullOrEmpty
        @(Get-AgentEchoServer) | Should -BeNullOrEmpty
        @(Get-ChildItem /proc/self/task | ForEach-Object { Get-Content "$($_.FullName)/comm" -ErrorAction Ignore } | Where-Object { $_ -like 'nvredirect-*' }) | Should -BeNullOrEmpty
    }
}
