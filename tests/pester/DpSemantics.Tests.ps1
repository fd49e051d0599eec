# nvr-dp's two semantics with real traffic (issue 14, item 4; docs/datapath.md, "Semantics: NeuVector's dp or strict"):
# Start-Datapath's strict default, where Protect blocks whatever no rule allows, ping included, at once; and
# -AgentCompatible, NeuVector dp's semantics for its agent: ping unpoliced until ctrl_enable_icmp_policy, the grace period
# for addresses ctrl_cfg_policy_addr has not named, inbound UDP to a port outside the listening table taken as an
# answer. Also the statistics cmdlets (Get-DpDeviceStatistic, Get-DpMacStatistic, Get-DpMeter) against the daemon.
# Every verdict is proved by the traffic's outcome and by Get-DpConnection's entry. Every name is this run's; AfterAll
# removes all of it, also on failure.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $SeedMac = '1a:27:f3:87:3a:27'
    $HostIp = '10.10.10.66'
    $ContainerIp = '10.10.10.88'
    $Tcp = 5101; $ListedUdp = 6101; $UnlistedUdp = 6102

    function Test-PingIn([int]$TimeoutMilliseconds = 1000) { Test-IcmpEcho $hostNs $ContainerIp -Count 2 -TimeoutMilliseconds $TimeoutMilliseconds }
    function TcpIn([double]$TimeoutSeconds = 3) { (Invoke-TestTcpConnection $hostNs $ContainerIp $Tcp -TimeoutSeconds $TimeoutSeconds).Result }
    function UdpIn([int]$Port, [double]$TimeoutSeconds = 3) { (Invoke-TestUdpRequest $hostNs $ContainerIp $Port -TimeoutSeconds $TimeoutSeconds).Result }
    # the entries of one protocol and server port (0: ICMP), as 'Direction Client->Server:Port Action/RuleId'
    function Get-Entry([string]$Socket, [int]$Protocol, [int]$Port) {
        @(Get-DpConnection -Mac $SeedMac -ControlSocket $Socket | Where-Object { $_.Protocol -eq $Protocol -and $_.ServerPort -eq $Port } |
                ForEach-Object { "$($_.Direction) $($_.Client)->$($_.Server):$($_.ServerPort) $($_.Action)/$($_.RuleId)" })
    }
    function Start-SemanticsDp([switch]$AgentCompatible) {
        $s = New-TestDpPath '.sock'
        $null = Start-TestDp $agent $s (New-TestDpPath '.log') -Unsupervised -AgentCompatible:$AgentCompatible
        Add-DpServicePort vth -ControlSocket $s
        Get-WorkloadInterception $agent | Add-DpMac -Tap $false -ControlSocket $s
        $s
    }
}
AfterAll {
    if (Get-Command Stop-TestTraffic -ErrorAction Ignore) { Stop-TestTraffic; Stop-TestDp; Remove-TestNamespace }
}

Describe 'nvr-dp''s semantics: strict by default, NeuVector dp''s with -AgentCompatible' {
    BeforeAll {
        # without the kernel fast path: these tests count what nvr-dp itself sees (FastPath.Tests.ps1 proves the fast path)
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host') -FastPath:$false
        $agent = $topo.AgentNamespace
        $hostNs = $topo.HostNamespace
        $containerNs = $topo.ContainerNamespace
        $null = Start-TestEchoServer $containerNs -TcpPort $Tcp -UdpPort $ListedUdp, $UnlistedUdp
    }

    Context 'Start-Datapath (strict)' {
        BeforeAll { $sock = Start-SemanticsDp }
        AfterAll { Stop-TestDp $sock }

        It 'starts strict with ICMP policed, and says so' {
            $dp = Get-Datapath -ControlSocket $sock
            $dp.Strict | Should -BeTrue
            $dp.EnableIcmpPolicy | Should -BeTrue
            ($dp | Format-Table | Out-String -Width 400) | Should -Match 'strict'
        }

        It 'in Discover traffic passes, and the statistics cmdlets decode what the agent''s queries return' {
            Set-DpWorkloadMode -Mac $SeedMac -Mode Discover -ControlSocket $sock
            Wait-TestCondition { Test-PingIn } -TimeoutSeconds 15 | Should -BeTrue
            TcpIn | Should -Be 'connected'
            UdpIn $UnlistedUdp | Should -Be 'answered'
            $device = Get-DpDeviceStatistic -ControlSocket $sock
            $device.Mac | Should -BeNullOrEmpty
            $device.Interval | Should -Be 5
            $device.PacketsIn | Should -BeGreaterOrEqual 5
            $device.PacketsOut | Should -BeGreaterOrEqual 5
            $device.SessionsIn | Should -BeGreaterOrEqual 3 -Because 'ping, TCP and UDP each opened a session towards the workload'
            $device.LastFiveMinutes.Seconds | Should -Be 300
            # by its alias, as the interception names it: the statistics are the workload's, under its MAC
            $alias = (Get-Datapath -ControlSocket $sock).Workloads[0].UcMac
            $mac = Get-DpMacStatistic -Mac $alias -ControlSocket $sock
            $mac.Mac | Should -BeExactly $SeedMac
            # the only workload: its counts are the device's (read before and after, as a stray ARP may count between)
            $deviceAfter = Get-DpDeviceStatistic -ControlSocket $sock
            $mac.PacketsIn | Should -BeGreaterOrEqual $device.PacketsIn
            $mac.PacketsIn | Should -BeLessOrEqual $deviceAfter.PacketsIn
            $mac.BytesIn | Should -BeGreaterOrEqual $device.BytesIn
            $mac.BytesIn | Should -BeLessOrEqual $deviceAfter.BytesIn
            $piped = @((Get-Datapath -ControlSocket $sock).Workloads | Get-DpMacStatistic)
            $piped.Count | Should -Be 1
            $piped[0].SessionsIn | Should -Be $mac.SessionsIn
            ($piped | Out-String -Width 400) | Should -Match ([regex]::Escape($SeedMac))
            @(Get-DpMeter -ControlSocket $sock) | Should -BeNullOrEmpty -Because 'nvr-dp keeps no meters; its answer is the terminator alone'
            $e = @(Get-ErrorRecord { Get-DpMacStatistic -Mac 02:00:00:00:00:09 -ControlSocket $sock })
            $e.Count | Should -Be 1
            $e[0].FullyQualifiedErrorId | Should -BeLike 'GetDpMacStatisticNotFound,*'
        }

        It 'Protect blocks ping, TCP and inbound UDP to any port at once: no grace period, nothing named needed' {
            Set-DpWorkloadMode -Mac $SeedMac -Mode Protect -ControlSocket $sock -WarningVariable warned -WarningAction SilentlyContinue
            $warned | Should -BeNullOrEmpty -Because 'strict: Protect means blocked now'
            Test-PingIn -TimeoutMilliseconds 500 | Should -BeFalse
            TcpIn 1.5 | Should -Be 'timeout'
            UdpIn $UnlistedUdp 1.5 | Should -Be 'timeout'
            Get-Entry $sock 1 0 | Should -Contain "Ingress $HostIp->${ContainerIp}:0 Deny/0"
            Get-Entry $sock 6 $Tcp | Should -Contain "Ingress $HostIp->${ContainerIp}:$Tcp Deny/0"
            Get-Entry $sock 17 $UnlistedUdp | Should -Contain "Ingress $HostIp->${ContainerIp}:$UnlistedUdp Deny/0"
            (Get-Datapath -ControlSocket $sock).GraceOpened | Should -Be 0
        }

        It 'Get-Datapath''s Counters carry the policy counts dp fills in DEVICE_COUNTER' {
            $rules = (New-DpRule -Id 77 -Source $HostIp -Destination $ContainerIp -Port 5999 -Protocol TCP),
                (New-DpRule -Id 78 -Source 10.10.10.64/28 -Destination $ContainerIp -Port 6000-6010 -Protocol UDP)
            Add-DpPolicyRule -Mac $SeedMac -Rule $rules -ControlSocket $sock
            $c = (Get-Datapath -ControlSocket $sock).Counters
            "$($c.PolicyType1Rules)/$($c.PolicyType2Rules)/$($c.PolicyDomains)" | Should -Be '1/1/0' -Because 'one single-address rule, one range rule, no names'
        }
    }

    Context 'Start-Datapath -AgentCompatible (NeuVector dp''s semantics)' {
        BeforeAll { $sock = Start-SemanticsDp -AgentCompatible }
        AfterAll { Stop-TestDp $sock }

        It 'starts with dp''s defaults: not strict, ICMP not policed' {
            $dp = Get-Datapath -ControlSocket $sock
            $dp.Strict | Should -BeFalse
            $dp.EnableIcmpPolicy | Should -BeFalse
        }

        It 'Protect lets addresses the agent has not named through (the grace period) until ctrl_cfg_policy_addr names them, and ping until ctrl_enable_icmp_policy' {
            Set-DpWorkloadMode -Mac $SeedMac -Mode Protect -ControlSocket $sock -WarningVariable warned -WarningAction SilentlyContinue
            @($warned).Count | Should -Be 1
            "$($warned[0])" | Should -Match 'NeuVector dp''s semantics.*ping passes until ctrl_enable_icmp_policy.*grace period.*nvr_cfg_strict'
            Wait-TestCondition { Test-PingIn } -TimeoutSeconds 15 | Should -BeTrue -Because 'ICMP is not policed before the agent''s toggle'
            Get-Entry $sock 1 0 | Should -Contain "Ingress $HostIp->${ContainerIp}:0 Allow/0"
            TcpIn | Should -Be 'connected' -Because '10.10.10.66 is in no ctrl_cfg_policy_addr yet'
            Get-Entry $sock 6 $Tcp | Should -Contain "Ingress $HostIp->${ContainerIp}:$Tcp Open/0"
            (Get-Datapath -ControlSocket $sock).GraceOpened | Should -BeGreaterThan 0
            @(Get-DpSession -ControlSocket $sock | Where-Object { $_.ServerPort -eq $Tcp -and $_.Grace }).Count | Should -BeGreaterThan 0 -Because 'the session list marks it as dp does (TMP_OPEN)'

            Send-DpMessage "{`"ctrl_cfg_policy_addr`": {`"flag`": 3, `"subnet_addr`": [{`"ip`": `"$HostIp`", `"mask`": `"255.255.255.255`"}, {`"ip`": `"$ContainerIp`", `"mask`": `"255.255.255.255`"}]}}" -ControlSocket $sock
            TcpIn 1.5 | Should -Be 'timeout' -Because 'named, the address gets the DENY default'
            Get-Entry $sock 6 $Tcp | Should -Contain "Ingress $HostIp->${ContainerIp}:$Tcp Deny/0"
            Test-PingIn | Should -BeTrue -Because 'ping is still not policed'

            Send-DpMessage '{"ctrl_enable_icmp_policy": {"enable_icmp_policy": true}}' -ControlSocket $sock
            Test-PingIn -TimeoutMilliseconds 500 | Should -BeFalse
            Get-Entry $sock 1 0 | Should -Contain "Ingress $HostIp->${ContainerIp}:0 Deny/0"
        }

        It 'inbound UDP to a port outside the listening table is taken as an answer to the workload (dir ingress: it passes); to a listed port it is blocked' {
            Set-DpPolicy -Mac $SeedMac -DefaultAction Deny -Direction Ingress -ControlSocket $sock
            Send-DpMessage "{`"ctrl_cfg_mac`": {`"macs`": [`"$SeedMac`"], `"apps`": [{`"port`": $ListedUdp, `"ip_proto`": 17, `"app`": 0, `"server`": 0}]}}" -ControlSocket $sock
            UdpIn $UnlistedUdp | Should -Be 'answered'
            $entry = @(Get-DpConnection -Mac $SeedMac -ControlSocket $sock | Where-Object { $_.Protocol -eq 17 -and "$($_.Direction)" -eq 'Egress' })
            $entry.Count | Should -Be 1 -Because 'dp takes the workload as the client of the peer''s port'
            "$($entry[0].Client)->$($entry[0].Server) $($entry[0].Action)" | Should -Be "$ContainerIp->$HostIp Open"
            UdpIn $ListedUdp 1.5 | Should -Be 'timeout' -Because 'a listed port makes the sender the client: an ingress session, denied'
            Get-Entry $sock 17 $ListedUdp | Should -Contain "Ingress $HostIp->${ContainerIp}:$ListedUdp Deny/0"
        }

        It 'nvr_cfg_strict switches the running daemon to the strict semantics' {
            Send-DpMessage '{"nvr_cfg_strict": {"strict": true}}' -ControlSocket $sock
            (Get-Datapath -ControlSocket $sock).Strict | Should -BeTrue
            UdpIn $UnlistedUdp 1.5 | Should -Be 'timeout' -Because 'strict: the sender is the client, an ingress session, denied'
            Get-Entry $sock 17 $UnlistedUdp | Should -Contain "Ingress $HostIp->${ContainerIp}:$UnlistedUdp Deny/0"
        }
    }
}
