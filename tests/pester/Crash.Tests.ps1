# Crash and restart (issue 12): nvr-dp under its supervisor (Start-Datapath's default) is killed with SIGKILL while its
# workload is in Protect. Proved with real traffic through the seed topology: while it is down the workload stays closed
# (frames are steered to vth, where nobody reads), the supervisor starts it again with the configuration it saved, an
# allowed TCP connection held open across the crash goes on (picked up mid-stream), one the restored policy denies is
# reset, and Get-Datapath tells what happened (restarts, last exit). The outage after kill -9 is measured and printed.
# Every name is this run's; AfterAll removes all of it, also on failure.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $SeedMac = '1a:27:f3:87:3a:27'
    $HostIp = '10.10.10.66'
    $ContainerIp = '10.10.10.88'

    function Test-PingIn([int]$TimeoutMilliseconds = 1000) { Test-IcmpEcho $hostNs $ContainerIp -Count 1 -TimeoutMilliseconds $TimeoutMilliseconds }
    function Get-Worker { (Get-Datapath -ControlSocket $sock -ErrorAction Stop) }
    function Format-TestLearned($c) { "$($c.Direction) $($c.Client)>$($c.Server):$($c.ServerPort)/$($c.Protocol)" }
}
AfterAll {
    Stop-TestTraffic
    Stop-TestDp $sock
    Remove-TestNamespace
}

Describe 'A supervised datapath survives kill -9 with its configuration and its connections' {
    BeforeAll {
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
        $agent = $topo.AgentNamespace
        $hostNs = $topo.HostNamespace
        $containerNs = $topo.ContainerNamespace
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
        $dp = Start-TestDp $agent $sock $log
        Add-DpServicePort vth -ControlSocket $sock
        Get-WorkloadInterception $agent | Add-DpMac -Tap $false -ControlSocket $sock
        $AllowedTcp = 5101; $DeniedLaterTcp = 5102; $DeniedTcp = 5103
        $null = Start-TestEchoServer $containerNs -TcpPort $AllowedTcp, $DeniedLaterTcp, $DeniedTcp
        $held = @{}
    }
    AfterAll { Stop-TestTraffic; Stop-TestDp $sock }

    It 'runs under its supervisor, its configuration saved in root''s /run/nvredirect' {
        $dp.Supervised | Should -BeTrue
        $dp.Restarts | Should -Be 0
        $dp.LastExit | Should -BeNullOrEmpty
        Get-TestDpSupervisor $dp.Pid | Should -Not -BeNullOrEmpty
        $dp.StateFile | Should -BeExactly ('/run/nvredirect/' + ($sock -replace '%', '%25' -replace '/', '%2F') + '.state')
        (Get-Item /run/nvredirect).UnixFileMode | Should -Be ([System.IO.UnixFileMode]'UserRead, UserWrite, UserExecute')
        (Get-Item $dp.StateFile).UnixFileMode | Should -Be ([System.IO.UnixFileMode]'UserRead, UserWrite')
        (Get-Content $dp.StateFile -Raw) | Should -BeLike '*"ctrl_add_mac":{"iface":"vth","mac":"1a:27:f3:87:3a:27"*"ctrl_add_srvc_port":{"iface":"vth"*'
    }

    It 'Protect with ping and one TCP port allowed; two connections held open from Discover' {
        Set-DpWorkloadMode -Mac $SeedMac -Mode Discover -ControlSocket $sock
        Wait-TestCondition { Test-PingIn } -TimeoutSeconds 15 | Should -BeTrue
        $held.Allowed = Open-TestTcpConnection $hostNs $ContainerIp $AllowedTcp
        $held.DeniedLater = Open-TestTcpConnection $hostNs $ContainerIp $DeniedLaterTcp
        $held.Allowed.Result | Should -Be 'connected'
        $held.DeniedLater.Result | Should -Be 'connected'
        Set-DpPolicy -Mac $SeedMac -ControlSocket $sock -Rule @(
            New-DpRule -Id 1 -Source $HostIp -Destination $ContainerIp -Protocol ICMP -Direction Ingress
            New-DpRule -Id 2 -Source $HostIp -Destination $ContainerIp -Port $AllowedTcp -Protocol TCP -Direction Ingress)
        Set-DpWorkloadMode -Mac $SeedMac -Mode Protect -ControlSocket $sock
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Mode | Should -Be 'Protect'
        Test-PingIn | Should -BeTrue
        (Invoke-TestTcpConnection $hostNs $ContainerIp $DeniedTcp).Result | Should -Be 'timeout'
        (Send-TestTcpData $held.Allowed).Result | Should -Be 'answered'
        # the other held connection sends nothing now: its next packet meets the policy only after the crash
    }

    It 'kill -9: the workload stays closed while nvr-dp is down, and the supervisor brings it back within a second with its policy' {
        # what Discover learned (ping and both held connections), to be found again after the crashes
        $script:learnedBefore = @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock | Where-Object Answered | ForEach-Object { Format-TestLearned $_ } | Sort-Object)
        $script:learnedBefore | Should -Contain "Ingress $HostIp>$($ContainerIp):$AllowedTcp/6"
        $script:learnedBefore | Should -Contain "Ingress $HostIp>$($ContainerIp):$DeniedLaterTcp/6"
        @($script:learnedBefore -like "Ingress $HostIp>$($ContainerIp):*/1").Count | Should -BeGreaterThan 0 -Because 'ping was answered in Discover'
        $old = Get-Worker
        $supervisor = Get-TestDpSupervisor $old.Pid
        # hold the supervisor so the outage lasts long enough to look at it
        & kill -STOP $supervisor
        try {
            & kill -KILL $old.Pid
            Wait-TestCondition { -not (Test-TestDpProcess $old.Pid) } | Should -BeTrue
            Test-PingIn | Should -BeFalse -Because 'fail closed: the steering still sends the workload''s frames to vth, where nobody reads'
            (Invoke-TestTcpConnection $hostNs $ContainerIp $AllowedTcp).Result | Should -Be 'timeout'
        }
        finally { & kill -CONT $supervisor }
        $back = $null
        Wait-TestCondition { try { $script:back = Get-Worker; $true } catch { $false } } -TimeoutSeconds 20 | Should -BeTrue
        $back = $script:back
        $back.Pid | Should -Not -Be $old.Pid
        Get-TestDpSupervisor $back.Pid | Should -Be $supervisor
        Register-TestDp -ProcessId $back.Pid
        $back.Restarts | Should -Be 1
        $back.LastExit | Should -BeLike 'signal SIGKILL at *'
        $back.StateProblem | Should -BeNullOrEmpty
        Wait-TestCondition { Test-PingIn } -TimeoutSeconds 10 | Should -BeTrue

        # now unheld: the outage is the time from SIGKILL until an allowed ping passes again
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        & kill -KILL $back.Pid
        $passed = $false
        while (-not $passed -and $clock.Elapsed.TotalSeconds -lt 30) { $passed = Test-PingIn -TimeoutMilliseconds 100 }
        $outage = $clock.ElapsedMilliseconds
        $passed | Should -BeTrue
        Write-Host "outage after kill -9 of a supervised nvr-dp: $outage ms until an allowed ping passed again"
        $outage | Should -BeLessThan 10000 -Because 'the supervisor restarts at once (the aim is < 1 s; .NET start-up on a loaded machine varies)'
        $third = Get-Worker
        Register-TestDp -ProcessId $third.Pid
        $third.Restarts | Should -Be 2
        $third.Workloads.Mac | Should -Be $SeedMac
        $third.Workloads[0].Tap | Should -BeFalse
        $third.ServicePorts | Should -Be 'vth'
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Mode | Should -Be 'Protect'
        @((Get-DpPolicy $SeedMac -ControlSocket $sock).Rules).Count | Should -Be 2
        (Invoke-TestTcpConnection $hostNs $ContainerIp $DeniedTcp).Result | Should -Be 'timeout' -Because 'the restored policy still denies it'
        $text = Get-Content $log -Raw
        $text | Should -BeLike "*supervisor: nvr-dp (pid $($old.Pid)) died: signal SIGKILL at *; restart 1 now*"
        $text | Should -BeLike "*supervisor: nvr-dp (pid $($back.Pid)) died: signal SIGKILL at *; restart 2 now*"
        $text | Should -BeLike '*restored the configuration saved in /run/nvredirect/*'
    }

    It 'Get-DpConnection -Learned still lists what Discover learned before the crashes' {
        $after = @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock | Where-Object Answered | ForEach-Object { Format-TestLearned $_ } | Sort-Object)
        $after | Should -Be $script:learnedBefore -Because 'the learned connections are saved with the configuration and re-learned before the ring opens'
        # the log counts every answered entry re-learned (those of the Protect verdicts too), at least the ones above
        $counts = [regex]::Matches((Get-Content $log -Raw), 'restored the configuration saved in /run/nvredirect/[^\n]*, (\d+) learned connections') | ForEach-Object { [int]$_.Groups[1].Value }
        @($counts).Count | Should -Be 2
        $counts | ForEach-Object { $_ | Should -BeGreaterOrEqual $script:learnedBefore.Count }
    }

    It 'an allowed TCP connection held open across the crashes goes on; one the restored policy denies is reset' {
        (Send-TestTcpData $held.Allowed).Result | Should -Be 'answered' -Because 'its packets are picked up mid-stream and allowed by rule 2'
        $r = Send-TestTcpData $held.DeniedLater
        $r.Result | Should -Be 'reset' -Because "the restored Protect policy denies port $DeniedLaterTcp (got $($r.Result) $($r.Detail))"
    }

    It 'Stop-Datapath stops the daemon and its supervisor, and forgets the configuration' {
        $w = Get-Worker
        $supervisor = Get-TestDpSupervisor $w.Pid
        Stop-Datapath -ControlSocket $sock
        Test-TestDpProcess $w.Pid | Should -BeFalse
        Wait-TestCondition { -not (Test-TestDpProcess $supervisor) } | Should -BeTrue
        Test-Path $w.StateFile | Should -BeFalse
        Test-Path $sock | Should -BeFalse
        Test-PingIn | Should -BeFalse
    }
}

Describe 'A corrupt saved configuration' {
    BeforeAll {
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
        $agent = $topo.AgentNamespace
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
    }
    AfterAll { Stop-TestDp $sock }

    It 'is refused with a clear error, set aside, reported by Get-Datapath, and the datapath starts empty' {
        $stateFile = '/run/nvredirect/' + ($sock -replace '%', '%25' -replace '/', '%2F') + '.state'
        Set-Content -LiteralPath $stateFile -Value '{"nvr_state": 1, "namespace": "' -NoNewline
        try {
            $dp = Start-TestDp $agent $sock $log
            $dp.Workloads | Should -BeNullOrEmpty
            $dp.StateProblem | Should -BeLike 'it is not JSON*'
            # the refused file is gone; the configuration now saved is the empty one it started with
            (Get-Content -LiteralPath $stateFile -Raw -ErrorAction Ignore) | Should -Not -BeLike '*ctrl_add_mac*'
            $leaf = Split-Path $stateFile -Leaf
            $aside = @(Get-ChildItem /run/nvredirect | Where-Object { $_.Name.StartsWith("$leaf.refused-", [StringComparison]::Ordinal) })
            $aside.Count | Should -Be 1
            (Get-Content $log -Raw) | Should -BeLike "*ERROR the saved configuration $stateFile is not applied, nothing of it is: it is not JSON*set aside as $($aside[0].FullName)*"
            Remove-Item -LiteralPath $aside[0].FullName
            Stop-Datapath -ControlSocket $sock
        }
        finally { Remove-Item -LiteralPath $stateFile -ErrorAction Ignore }
    }
}
