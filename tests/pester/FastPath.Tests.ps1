# The kernel fast path (issue 15; docs/datapath.md, "The kernel fast path"), with real traffic through the seed
# topology and nvr-dp: an allowed TCP connection of a protected workload moves to the kernel once established and the
# map counts its packets; a policy change revokes it before the cmdlet returns, so its next packet is reset by nvr-dp;
# crash, kill and stop of the daemon, and removing the interception, leave nothing published; -FastPath:$false.
# Every name is this run's; AfterAll removes all of it, also on failure.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $SeedMac = '1a:27:f3:87:3a:27'
    $SeedMacBytes = [byte[]](0x1a, 0x27, 0xf3, 0x87, 0x3a, 0x27)
    $HostIp = '10.10.10.66'
    $ContainerIp = '10.10.10.88'
    $AllowedTcp = 5101; $OtherTcp = 5102; $AllowedUdp = 6101

    # what the workload's map holds now
    function Get-FastPathEntry { @([NvRedirect.Core.Bpf.FastPathMap]::Entries($agent, $SeedMacBytes)) }
    # the map entry of one direction of a TCP connection from $Local ('ip:port' of the host-side client)
    function Get-FlowEntry([string]$Local, [string]$Direction) {
        $port = [int]$Local.Split(':')[1]
        Get-FastPathEntry | Where-Object { "$($_.Direction)" -eq $Direction -and $_.Protocol -eq 6 -and ($_.SourcePort -eq $port -or $_.DestinationPort -eq $port) }
    }
    function Set-AllowPolicy {
        Set-DpPolicy -Mac $SeedMac -Rule (New-DpRule -Source $HostIp -Destination $ContainerIp -Port $AllowedTcp -Protocol TCP -Id 10),
            (New-DpRule -Source $HostIp -Destination $ContainerIp -Port $AllowedUdp -Protocol UDP -Id 11),
            (New-DpRule -Source $HostIp -Destination $ContainerIp -Protocol ICMP -Id 12) -DefaultAction Deny -ControlSocket $sock
    }
    function Start-FastPathDp {
        $dp = Start-TestDp $agent $sock $log
        Add-DpServicePort vth -ControlSocket $sock
        Get-WorkloadInterception $agent | Add-DpMac -Tap $false -ControlSocket $sock
        Set-AllowPolicy
        $dp
    }
}
AfterAll {
    if (Get-Command Stop-TestTraffic -ErrorAction Ignore) { Stop-TestTraffic; Stop-TestDp $sock; Remove-TestNamespace }
}

Describe 'The kernel fast path of a protected workload' {
    BeforeAll {
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
        $agent = $topo.AgentNamespace; $hostNs = $topo.HostNamespace; $containerNs = $topo.ContainerNamespace
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
        $dp = Start-FastPathDp
        $null = Start-TestEchoServer $containerNs -TcpPort $AllowedTcp, $OtherTcp -UdpPort $AllowedUdp
        $state = @{}
    }

    It 'Get-WorkloadInterception shows it on, with its two programs at pref 9999 and the pinned map' {
        $i = Get-WorkloadInterception $agent
        $i.FastPath | Should -BeTrue
        $i.FastPathReason | Should -Match '^on'
        $i.Rules.Count | Should -Be 8 -Because 'the steering rules are unchanged'
        @($i.FastPathRules | ForEach-Object { "$($_.Role)|$($_.LinkName)|$($_.Priority)|$($_.Kind)" } | Sort-Object) |
            Should -Be @('entry: fast path|vex|9999|bpf', 'inner: fast path|vin|9999|bpf')
        $i.FastPathMap | Should -BeExactly "/sys/fs/bpf/nvredirect/$agent/1a27f3873a27"
        Test-Path $i.FastPathMap | Should -BeTrue
        [int](Get-Item "/sys/fs/bpf/nvredirect/$agent").UnixFileMode | Should -Be 448 -Because 'mode 0700: only root reaches the maps'
        (Get-TcFilter $agent vex | Where-Object Priority -EQ ([NvRedirect.Core.Intercept.FastPathFilters]::FastPathPriority)).Kind | Should -Be 'bpf'
    }

    It 'an allowed TCP connection continues on the fast path: the map counts its packets, Get-DpSession includes them' {
        $c = Open-TestTcpConnection $hostNs $ContainerIp $AllowedTcp
        $c.Result | Should -Be 'connected'
        $state.Held = $c
        foreach ($n in 1..20) { (Send-TestTcpData $c).Result | Should -Be 'answered' }
        $in = @(Get-FlowEntry $c.Local ToWorkload)
        $out = @(Get-FlowEntry $c.Local FromWorkload)
        $in.Count | Should -Be 1 -Because 'the established connection is published towards the workload'
        $out.Count | Should -Be 1 -Because 'and from it'
        "$($in[0].Source)" | Should -Be $HostIp
        $in[0].DestinationPort | Should -Be $AllowedTcp
        "$($out[0].Source)" | Should -Be $ContainerIp
        $in[0].Packets | Should -BeGreaterOrEqual 15 -Because 'after the first round trips every segment of the 20 takes the kernel path'
        $out[0].Packets | Should -BeGreaterOrEqual 15
        $in[0].Bytes | Should -BeGreaterThan (54 * $in[0].Packets - 1)
        $session = @(Get-DpSession -ControlSocket $sock | Where-Object { $_.ServerPort -eq $AllowedTcp -and $_.Client -eq $c.Local })
        $session.Count | Should -Be 1
        $session[0].ClientPackets | Should -BeGreaterThan $in[0].Packets -Because 'the session counts what the kernel forwarded plus what nvr-dp saw'
        $session[0].ServerPackets | Should -BeGreaterThan $out[0].Packets
        $conn = @(Get-DpConnection -Mac $SeedMac -ControlSocket $sock | Where-Object { $_.ServerPort -eq $AllowedTcp -and "$($_.Action)" -eq 'Allow' })
        $conn.Count | Should -Be 1
        $conn[0].Packets | Should -BeGreaterThan ($in[0].Packets + $out[0].Packets) -Because 'Get-DpConnection counts what the kernel forwarded too'
        $conn[0].DroppedPackets | Should -Be 0
    }

    It 'an allowed UDP flow and an allowed ping are published once answered, a denied TCP connection is not' {
        (Invoke-TestUdpRequest $hostNs $ContainerIp $AllowedUdp).Result | Should -Be 'answered'
        (Invoke-TestTcpConnection $hostNs $ContainerIp $OtherTcp).Result | Should -Be 'timeout'
        # iputils ping: one identifier for all four requests, so one echo session
        $ping = & ip netns exec $hostNs ping -n -c 4 -i 0.2 -W 2 $ContainerIp 2>&1
        $LASTEXITCODE | Should -Be 0 -Because "$ping"
        $entries = Get-FastPathEntry
        $echo = @($entries | Where-Object { $_.Protocol -eq 1 -and "$($_.Direction)" -eq 'ToWorkload' })
        $echo.Count | Should -Be 1 -Because 'the echo session is published (its identifier in both port fields) once answered'
        $echo[0].SourcePort | Should -Be $echo[0].DestinationPort
        $echo[0].Packets | Should -BeGreaterOrEqual 1 -Because 'the requests after the first answer take the kernel path'
        $entries = Get-FastPathEntry
        @($entries | Where-Object { $_.Protocol -eq 17 -and ($_.DestinationPort -eq $AllowedUdp -or $_.SourcePort -eq $AllowedUdp) }).Count | Should -Be 2
        @($entries | Where-Object { $_.DestinationPort -eq $OtherTcp -or $_.SourcePort -eq $OtherTcp }) | Should -BeNullOrEmpty
    }

    It 'a policy change revokes the flow before the cmdlet returns; the connection''s next packet reaches nvr-dp and is reset' {
        $c = $state.Held
        Remove-DpPolicyRule -Mac $SeedMac -Id 10 -ControlSocket $sock
        @(Get-FlowEntry $c.Local ToWorkload) | Should -BeNullOrEmpty -Because 'the acknowledged change has revoked what was published'
        $r = Send-TestTcpData $c
        $r.Result | Should -Be 'reset' -Because "nvr-dp decides the next packet by the new policy (got $($r.Result) $($r.Detail))"
        @(Get-FlowEntry $c.Local ToWorkload) | Should -BeNullOrEmpty -Because 'a denied connection is never published again'
        Close-TestTcpConnection $c
    }

    It 'allowed again, a new connection is published again' {
        Set-AllowPolicy
        $c = Open-TestTcpConnection $hostNs $ContainerIp $AllowedTcp
        $c.Result | Should -Be 'connected'
        foreach ($n in 1..3) { (Send-TestTcpData $c).Result | Should -Be 'answered' }
        @(Get-FlowEntry $c.Local ToWorkload).Count | Should -Be 1
        $state.Held = $c
    }

    It 'a crashed daemon''s flows are revoked by its supervisor before the restart; the restarted daemon decides (and publishes) again' {
        $c = $state.Held
        @(Get-FastPathEntry).Count | Should -BeGreaterThan 0
        $old = (Get-Datapath -ControlSocket $sock).Pid
        Stop-Process -Id $old -Force
        Wait-TestCondition { @(Get-FastPathEntry).Count -eq 0 } -TimeoutSeconds 15 | Should -BeTrue -Because 'nothing a dead daemon decided forwards on'
        Wait-TestCondition { (Get-Datapath -ControlSocket $sock -ErrorAction Ignore).Pid -notin $null, $old } -TimeoutSeconds 30 | Should -BeTrue
        $new = (Get-Datapath -ControlSocket $sock).Pid
        Register-TestDp -ProcessId $new
        # the restored Protect policy allows the connection: picked up mid-stream, answered, and published again
        Wait-TestCondition { (Send-TestTcpData $c).Result -eq 'answered' } -TimeoutSeconds 15 | Should -BeTrue
        foreach ($n in 1..3) { (Send-TestTcpData $c).Result | Should -Be 'answered' }
        @(Get-FlowEntry $c.Local ToWorkload).Count | Should -Be 1
    }

    It 'Stop-Datapath -Force (a kill nobody restarts) revokes every flow; so does a clean stop' {
        @(Get-FastPathEntry).Count | Should -BeGreaterThan 0
        Stop-Datapath -ControlSocket $sock -Force
        @(Get-FastPathEntry) | Should -BeNullOrEmpty
        $c = $state.Held
        (Send-TestTcpData $c).Result | Should -Be 'timeout' -Because 'without a datapath nothing forwards the connection'
        Close-TestTcpConnection $c

        $null = Start-FastPathDp
        $c = Open-TestTcpConnection $hostNs $ContainerIp $AllowedTcp
        foreach ($n in 1..3) { (Send-TestTcpData $c).Result | Should -Be 'answered' }
        @(Get-FlowEntry $c.Local ToWorkload).Count | Should -Be 1
        Stop-Datapath -ControlSocket $sock
        @(Get-FastPathEntry) | Should -BeNullOrEmpty
        (Send-TestTcpData $c).Result | Should -Be 'timeout'
        Close-TestTcpConnection $c
    }

    It '-FastPath:$false takes it away (programs and map); -FastPath puts it back; Remove-WorkloadInterception unpins the map' {
        $i = Get-WorkloadInterception $agent
        $path = $i.FastPathMap
        $again = @{ Namespace = $agent; EntryLink = $i.EntryLink; InnerLink = $i.InnerLink; MonitorLink = $i.MonitorLink; WorkloadMac = $SeedMac }
        $off = Add-WorkloadInterception @again -FastPath:$false
        $off.FastPath | Should -BeFalse
        $off.FastPathReason | Should -Match 'off as requested'
        @(Get-TcFilter $agent vex | Where-Object Priority -EQ ([NvRedirect.Core.Intercept.FastPathFilters]::FastPathPriority)) | Should -BeNullOrEmpty
        Test-Path $path | Should -BeFalse
        (Get-WorkloadInterception $agent).FastPath | Should -BeFalse

        $on = Add-WorkloadInterception @again -FastPath
        $on.FastPath | Should -BeTrue
        $on.FastPathReason | Should -Match '^on as requested'
        Test-Path $path | Should -BeTrue
        (Add-WorkloadInterception @again).FastPathRules.Change | Sort-Object -Unique | Should -Be 'Unchanged'

        Remove-WorkloadInterception -Namespace $agent -WorkloadMac $SeedMac
        Test-Path $path | Should -BeFalse
        @(Get-TcFilter $agent vex) | Should -BeNullOrEmpty
    }
}

Describe 'When the fast path cannot be installed' {
    BeforeAll {
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host') -NoInterception
        $agent = $topo.AgentNamespace
        $add = @{ Namespace = $agent; EntryLink = 'vex'; InnerLink = 'vin'; MonitorLink = 'vbr'; WorkloadMac = $SeedMac }
        # a map directory nobody should trust: not mode 0700
        $dir = [NvRedirect.Core.Bpf.FastPathMap]::EnsureDirectory($agent)
        chmod 0755 $dir
    }
    AfterAll { if ($dir) { Remove-Item -LiteralPath $dir -Force -ErrorAction Ignore } }

    It 'without -FastPath the interception goes in without it and says why; with -FastPath it is refused and nothing is changed' {
        $i = Add-WorkloadInterception @add
        $i.FastPath | Should -BeFalse
        $i.FastPathReason | Should -Match '^off: it could not be installed .*mode other than 0700'
        $i.Rules.Count | Should -Be 8
        @(Get-TcFilter $agent vex | Where-Object Priority -EQ ([NvRedirect.Core.Intercept.FastPathFilters]::FastPathPriority)) | Should -BeNullOrEmpty
        Remove-WorkloadInterception -Namespace $agent -WorkloadMac $SeedMac

        $err = Get-ErrorRecord { Add-WorkloadInterception @add -FastPath }
        $err.Exception.Message | Should -Match 'mode other than 0700'
        Get-WorkloadInterception $agent | Should -BeNullOrEmpty -Because 'the failed add rolled back every rule it had installed'
        @(Get-TcFilter $agent vex) | Should -BeNullOrEmpty
    }
}
