# Policy through the Pedit backend, under Debian's stock kernel (act_pedit as a module): the seed's story once more
# with the interception's u32 + pedit + mirred rules instead of cls_bpf, so the claim "the same redirect works both
# ways" covers nvr-dp's verdicts too, the resets included (their MACs are rewritten back by the vbr pedit rules),
# and IPv6 (issue 12): the IPv6 steering rules as u32 + pedit (pref 10000, protocol ipv6), ping6 and TCP over IPv6
# policed, neighbour discovery passing.
# Runs inside
#   tests/stock-kernel/pester.sh tests/stock-kernel/Policy.StockKernel.Tests.ps1
# On a kernel without act_pedit (this project's machines) each test is skipped with that reason; the same story runs
# there through cls_bpf in tests/pester/Policy.Tests.ps1.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot '../pester/TestSupport.psm1') -Force
    $script:stock = [bool]$env:NVREDIRECT_STOCK_KERNEL
    $script:mac = '1a:27:f3:87:3a:27'
    if ($stock) {
        $script:lab = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
        $script:hostNs = $lab.HostNamespace
        # IPv6 (ULA, no duplicate address detection) for the IPv6 tests at the end
        Invoke-Ip -n $hostNs addr add 'fd00:10::66/64' dev vex-peer nodad
        Invoke-Ip -n $lab.ContainerNamespace addr add 'fd00:10::88/64' dev eth0 nodad
        $script:sock = New-TestDpPath '.sock'
        $null = Start-TestDp -Namespace $lab.AgentNamespace -ControlSocket $sock -LogPath (New-TestDpPath '.log')
        Add-DpServicePort vth -ControlSocket $sock
        Get-WorkloadInterception $lab.AgentNamespace | Add-DpMac -Tap $false -ControlSocket $sock
        $script:server = Start-TestEchoServer $lab.ContainerNamespace -TcpPort 8080
    }
    function Get-Verdict([string]$Action, [int]$Port) {
        @(Get-DpConnection -Mac $mac -ControlSocket $sock | Where-Object { "$($_.Action)" -eq $Action -and $_.ServerPort -eq $Port })
    }
}

AfterAll {
    if ($stock) {
        Stop-TestTraffic
        Stop-TestDp $sock
        Remove-TestNamespace
    }
}

Describe 'Policy with the Pedit backend (stock kernel)' {
    BeforeEach {
        if (-not $stock) { Set-ItResult -Skipped -Because 'this kernel has no act_pedit; the test runs under tests/stock-kernel/pester.sh' }
    }

    It 'intercepts with Pedit and nvr-dp forwards the workload inline' {
        if (-not $stock) { return }
        $lab.Interception.Backend | Should -Be 'Pedit'
        Test-IcmpEcho $hostNs 10.10.10.88 -Count 2 | Should -BeTrue
    }

    It 'Discover: TCP and ping pass and are learned; a connection stays open' {
        if (-not $stock) { return }
        Set-DpWorkloadMode $mac -Mode Discover -ControlSocket $sock
        (Invoke-TestTcpConnection $hostNs 10.10.10.88 8080).Result | Should -Be 'connected'
        Test-IcmpEcho $hostNs 10.10.10.88 -Count 2 | Should -BeTrue
        $script:held = Open-TestTcpConnection $hostNs 10.10.10.88 8080
        $held.Result | Should -Be 'connected'
        (Get-Verdict Learn 8080).Count | Should -Be 1
        (Get-Verdict Learn 0).Count | Should -Be 1
    }

    It 'Protect: new connections and ping are blocked, and the open connection is reset at both ends' {
        if (-not $stock) { return }
        Set-DpWorkloadMode $mac -Mode Protect -ControlSocket $sock
        (Send-TestTcpData $held).Result | Should -Be 'reset' -Because 'the client must see a reset, not a hang'
        Wait-TestCondition { Get-TestEchoServerEvent $server | Where-Object { $_.Event -eq 'reset' -and $_.Peer -eq $held.Local } } -TimeoutSeconds 5 |
            Should -BeTrue -Because 'the server side gets its reset too'
        (Invoke-TestTcpConnection $hostNs 10.10.10.88 8080).Result | Should -Be 'timeout'
        Test-IcmpEcho $hostNs 10.10.10.88 -Count 2 | Should -BeFalse
        (Get-Verdict Deny 8080)[0].DroppedPackets | Should -BeGreaterThan 0
        (Get-Datapath -ControlSocket $sock).ResetsSent | Should -Be 1
    }

    It 'the learned connections as allow rules: they pass again, and Get-DpConnection names the rules' {
        if (-not $stock) { return }
        Get-DpConnection -Mac $mac -Learned -ControlSocket $sock | ConvertTo-DpRule | Set-DpPolicy
        (Get-DpPolicy $mac -ControlSocket $sock).Mode | Should -Be 'Protect'
        (Invoke-TestTcpConnection $hostNs 10.10.10.88 8080).Result | Should -Be 'connected'
        Test-IcmpEcho $hostNs 10.10.10.88 -Count 2 | Should -BeTrue
        (Get-Verdict Allow 8080)[0].RuleId | Should -BeGreaterThan 0
    }

    It 'IPv6 is steered by u32 + pedit rules at pref 10000 (protocol ipv6) and policed: Protect blocks ping6 and TCP over IPv6, neighbour discovery works' {
        if (-not $stock) { return }
        $lab.Interception.Rules.Count | Should -Be 8
        foreach ($link in 'vex', 'vin') {
            $shown = (tc -n $lab.AgentNamespace filter show dev $link ingress pref 10000) -join "`n"
            $shown | Should -Match 'protocol ipv6'
            $shown | Should -Match 'pedit action pipe keys 2'
            $shown | Should -Match 'mirred \(Egress Mirror to device vbr\)'
        }
        Wait-TestCondition { -not ((ip -n $hostNs -6 addr show tentative) + (ip -n $lab.ContainerNamespace -6 addr show tentative)) } -TimeoutSeconds 30 | Should -BeTrue
        $before = (Get-Datapath -ControlSocket $sock).Counters.IPv6Packets
        (Get-DpPolicy $mac -ControlSocket $sock).Mode | Should -Be 'Protect'
        Test-IcmpEcho $hostNs 'fd00:10::88' -Count 2 | Should -BeFalse -Because 'no rule allows ping6'
        (Invoke-TestTcpConnection $hostNs 'fd00:10::88' 8080).Result | Should -Be 'timeout'
        (Get-Datapath -ControlSocket $sock).Counters.IPv6Packets | Should -BeGreaterThan $before
        ip -n $hostNs -6 neigh flush dev vex-peer
        $null = Test-IcmpEcho $hostNs 'fd00:10::88' -Count 2
        Wait-TestCondition { ((ip -n $hostNs -6 neigh show 'fd00:10::88' dev vex-peer) -join ' ') -match "lladdr $mac (REACHABLE|STALE|DELAY|PROBE)" } -TimeoutSeconds 15 |
            Should -BeTrue -Because 'neighbour advertisements pass nvr-dp in Protect'
    }

    It 'IPv6 rules let ping6 and TCP to the allowed port through; another port stays blocked' {
        if (-not $stock) { return }
        Add-DpPolicyRule -Mac $mac -Rule (New-DpRule -Source 'fd00:10::66' -Destination 'fd00:10::88' -Port 8080 -Protocol TCP), (New-DpRule -Source 'fd00:10::/64' -Protocol ICMPv6) -ControlSocket $sock
        Wait-TestCondition { Test-IcmpEcho $hostNs 'fd00:10::88' -Count 2 } -TimeoutSeconds 15 | Should -BeTrue
        (Invoke-TestTcpConnection $hostNs 'fd00:10::88' 8080).Result | Should -Be 'connected'
        (Invoke-TestTcpConnection $hostNs 'fd00:10::88' 8081).Result | Should -Be 'timeout' -Because 'blocked, not refused by the container'
    }

    It 'the kernel fast path works with the Pedit backend: an allowed connection is published and the kernel forwards it' {
        if (-not $stock) { return }
        $lab.Interception.FastPath | Should -BeTrue -Because "the stock kernel has cls_bpf, hash maps and bpf_redirect ($($lab.Interception.FastPathReason))"
        $c = Open-TestTcpConnection $hostNs 10.10.10.88 8080
        $c.Result | Should -Be 'connected'
        foreach ($n in 1..10) { (Send-TestTcpData $c).Result | Should -Be 'answered' }
        $port = [int]$c.Local.Split(':')[1]
        $in = @([NvRedirect.Core.Bpf.FastPathMap]::Entries($lab.AgentNamespace, [byte[]](0x1a, 0x27, 0xf3, 0x87, 0x3a, 0x27)) |
            Where-Object { "$($_.Direction)" -eq 'ToWorkload' -and $_.SourcePort -eq $port })
        $in.Count | Should -Be 1
        $in[0].Packets | Should -BeGreaterOrEqual 5 -Because 'the round trips after the first few take the kernel path'
        Close-TestTcpConnection $c
    }
}
