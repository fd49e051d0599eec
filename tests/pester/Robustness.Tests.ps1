# nvr-dp cannot be swamped (issue 12, items 5 and 7), proved against a running daemon in the seed topology:
# - a real port scan and a flood of never-answered flows through the intercepted path in Discover: the learned
#   connections stay, Get-Datapath's Tables show the fill, evictions and summaries, the scan is one entry, and
#   ConvertTo-DpRule warns and collapses;
# - a soak: 10,000 malformed control datagrams and 200,000 malformed frames (on the service port's peer, with a raw
#   packet socket), then the same configuration, RSS within a bound, and valid traffic still forwarded.
# Every name is this run's; AfterAll removes all of it, also on failure.
BeforeAll {
    # the daemon has read what was sent once its receive counter stops moving
    function Wait-DpSettled([string]$Socket, [double]$TimeoutSeconds) {
        Wait-TestCondition {
            $a = (Get-Datapath -ControlSocket $Socket).Counters.RXPackets; Start-Sleep -Milliseconds 300
            $a -eq (Get-Datapath -ControlSocket $Socket).Counters.RXPackets
        } -TimeoutSeconds $TimeoutSeconds
    }
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $Flood = Join-Path $PSScriptRoot 'Fixtures/nvr_flood.py'
    $SeedMac = '1a:27:f3:87:3a:27'
    $HostIp = '10.10.10.66'
    $ScannerIp = '10.10.10.67'
    $ContainerIp = '10.10.10.88'

    function Clear-RobustnessTest([string[]]$Socket) {
        Stop-TestTraffic
        Stop-TestDp $Socket
        Remove-TestNamespace
    }

    # Runs nvr_flood.py in a namespace and returns what it printed (one JSON line); a failure is an error.
    function Invoke-Flood([string]$Namespace, [string[]]$Arguments) {
        $out = @(& ip netns exec $Namespace python3 $Flood @Arguments 2>&1)
        if ($LASTEXITCODE -ne 0) { throw "nvr_flood.py $($Arguments -join ' ') failed ($LASTEXITCODE): $($out -join ' ')" }
        $out | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] } | Select-Object -Last 1 | ConvertFrom-Json
    }

    # A topology, a daemon with small tables (so a test-sized scan fills them), the workload inline
    function New-RobustnessRig([int]$Connections = 1024, [int]$Sessions = 4096) {
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
        $dp = Start-Datapath -Namespace $topo.AgentNamespace -ControlSocket $sock -LogPath $log -ConnectionCapacity $Connections -SessionCapacity $Sessions
        Register-TestDp -ProcessId $dp.Pid
        Add-DpServicePort vth -ControlSocket $sock
        Get-WorkloadInterception $topo.AgentNamespace | Add-DpMac -Tap $false -ControlSocket $sock
        [pscustomobject]@{ Topology = $topo; Socket = $sock; Log = $log; Pid = $dp.Pid }
    }

    function Get-Table([string]$Socket, [string]$Name) { (Get-Datapath -ControlSocket $Socket).Tables | Where-Object Name -EQ $Name }
    function Get-RssKiB([int]$ProcessId) { [long]((Get-Content "/proc/$ProcessId/status" | Where-Object { $_ -match '^VmRSS:' }) -replace '\D', '') }
}
AfterAll {
    if (Get-Command Clear-RobustnessTest -ErrorAction Ignore) { Clear-RobustnessTest }
}

Describe 'Bounded learning: a port scan in Discover does not push out what was learned' {
    BeforeAll {
        $rig = New-RobustnessRig -Connections 1024 -Sessions 4096
        $sock = $rig.Socket
        $hostNs = $rig.Topology.HostNamespace
        $null = Invoke-Ip -n $hostNs addr add "$ScannerIp/24" dev vex-peer
        $server = Start-TestEchoServer $rig.Topology.ContainerNamespace -TcpPort 5001, 5002 -UdpPort 6001
        Set-DpWorkloadMode -Mac $SeedMac -Mode Discover -ControlSocket $sock
        Wait-TestCondition { Test-IcmpEcho $hostNs $ContainerIp -Count 1 } -TimeoutSeconds 15 | Should -BeTrue -Because 'the datapath forwards the steered frames'
        (Invoke-TestTcpConnection $hostNs $ContainerIp 5001).Result | Should -Be 'connected'
        (Invoke-TestTcpConnection $hostNs $ContainerIp 5002).Result | Should -Be 'connected'
        (Invoke-TestUdpRequest $hostNs $ContainerIp 6001).Result | Should -Be 'answered'
        $real = @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock | Where-Object Answered)
    }
    AfterAll { Clear-RobustnessTest $sock }

    It 'learns the real connections as answered entries' {
        $real.Count | Should -Be 4 -Because 'ping, TCP 5001, TCP 5002 and UDP 6001 were answered'
        ($real | ForEach-Object { "$($_.ProtocolName)/$($_.ServerPort)" } | Sort-Object) -join ',' | Should -Be 'ICMP/0,TCP/5001,TCP/5002,UDP/6001'
        $t = Get-Table $sock Connections
        $t.Capacity | Should -Be 1024
        $t.Learned | Should -Be 4
        $t.Evicted | Should -Be 0
    }

    It 'a 5,000-port scan from one client and 3,000 never-answered flows from 100 more fill the tables without evicting a learned entry' {
        # first the flood (a scan summary is an unanswered entry like any other: a later flood may evict it), then the scan
        $many = Invoke-Flood $hostNs @('--seed', '6', 'syn', '--to', $ContainerIp, '--sources-from', '10.10.10.100', '--sources', '100', '--ports', '20000:30')
        $many.sent | Should -Be 3000
        $scan = Invoke-Flood $hostNs @('--seed', '5', 'syn', '--to', $ContainerIp, '--source', $ScannerIp, '--ports', '10000:5000', '--shuffle')
        $scan.sent | Should -Be 5000
        Wait-DpSettled $sock 20 | Should -BeTrue

        $info = Get-Datapath -ControlSocket $sock
        $c = $info.Tables | Where-Object Name -EQ Connections
        $s = $info.Tables | Where-Object Name -EQ Sessions
        $c.Count | Should -Be 1024 -Because 'the never-answered flows filled the connection table'
        $c.FillPercent | Should -Be 100
        $c.Evicted | Should -BeGreaterThan 1500 -Because '3,000 + 32 never-answered entries went through 1,024 places'
        $c.LearnedEvicted | Should -Be 0 -Because 'never-answered flows evict only each other'
        $c.Learned | Should -Be 4
        $c.Summarised | Should -BeGreaterThan 4500 -Because 'the scan past its first 32 ports folds into one entry'
        $s.Capacity | Should -Be 4096
        $s.Evicted | Should -BeGreaterThan 3000 -Because '8,000 SYNs opened sessions in 4,096 places'
        $s.LearnedEvicted | Should -Be 0 -Because 'opening and closed sessions are evicted first'

        # what the user sees: the learned connections, and the scan as one entry
        $learned = @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock)
        foreach ($r in $real) {
            @($learned | Where-Object { $_.Protocol -eq $r.Protocol -and $_.ServerPort -eq $r.ServerPort -and "$($_.Client)" -eq $HostIp -and $_.Answered }).Count |
                Should -Be 1 -Because "Get-DpConnection -Learned still lists $r"
        }
        $scans = @(Get-DpConnection -Mac $SeedMac -ControlSocket $sock | Where-Object Scan)
        $scans.Count | Should -Be 1
        "$($scans[0].Client)" | Should -Be $ScannerIp
        $scans[0].ServerPort | Should -Be 0
        $scans[0].Attempts | Should -Be $c.Summarised
        @($learned | Where-Object Scan) | Should -BeNullOrEmpty -Because '-Learned leaves scan summaries out'
    }

    It 'ConvertTo-DpRule warns past 100 rules, skips the scan summary, and the answered connections make a short policy' {
        $all = @(Get-DpConnection -Mac $SeedMac -ControlSocket $sock)
        $rules = @($all | ConvertTo-DpRule -WarningVariable warnings -WarningAction SilentlyContinue)
        $rules.Count | Should -BeGreaterThan 100
        ($warnings -join ' ') | Should -Match "$($rules.Count) rules \(more than 100\)"
        ($warnings -join ' ') | Should -Match 'Skipped 1 scan summary'
        # the many-sources flood used ports 20000-20029 from each source: collapsed, one range rule per source
        $collapsed = @($all | Where-Object { -not $_.Answered } | ConvertTo-DpRule -CollapsePorts -WarningAction SilentlyContinue)
        $collapsed.Count | Should -BeLessThan ($rules.Count / 5)
        @($collapsed | Where-Object { $_.PortTo -gt $_.PortFrom }).Count | Should -BeGreaterThan 10
        $policy = @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock | Where-Object Answered | ConvertTo-DpRule -WarningVariable quiet)
        $policy.Count | Should -Be 4
        $quiet | Should -BeNullOrEmpty
    }
}

Describe 'Soak: malformed control datagrams and frames change nothing' {
    BeforeAll {
        $rig = New-RobustnessRig -Connections 16384 -Sessions 65536
        $sock = $rig.Socket
        $agentNs = $rig.Topology.AgentNamespace
        $hostNs = $rig.Topology.HostNamespace
        $server = Start-TestEchoServer $rig.Topology.ContainerNamespace -TcpPort 5001
        # Protect: ping and TCP 5001 from the host side allowed, everything else (TCP 5002) denied
        Set-DpPolicy -Mac $SeedMac -Rule (New-DpRule -Source $HostIp -Port 5001 -Protocol TCP), (New-DpRule -Source $HostIp -Protocol ICMP) -DefaultAction Deny -ControlSocket $sock
        Wait-TestCondition { Test-IcmpEcho $hostNs $ContainerIp -Count 1 } -TimeoutSeconds 15 | Should -BeTrue -Because 'the datapath forwards the steered frames'

        # the configuration as the daemon reports it (no counters)
        function Get-Configuration {
            $i = Get-Datapath -ControlSocket $sock
            $p = Get-DpPolicy -ControlSocket $sock
            [ordered]@{
                Pid = $i.Pid; ServicePorts = $i.ServicePorts; InternalNetworks = $i.InternalNetworks; PolicyAddresses = $i.PolicyAddresses
                Switches = @($i.XffEnabled, $i.DisableNetPolicy, $i.DetectUnmanagedWorkloads, $i.EnableIcmpPolicy, $i.StrictGroupMode)
                Debug = $i.DebugCategories; Pending = @($i.InternalNetworksPending, $i.PolicyPending)
                Workloads = @($i.Workloads | ForEach-Object { [ordered]@{ Mac = $_.Mac; UcMac = $_.UcMac; BcMac = $_.BcMac; Interface = $_.Interface; Tap = $_.Tap; Mode = "$($_.Mode)"; Version = $_.PolicyVersion } })
                Rules = @($p.Rules | ForEach-Object { "$_" })
            } | ConvertTo-Json -Depth 5 -Compress
        }
        $before = Get-Configuration
        $requestsBefore = Get-Datapath -ControlSocket $sock
        $rssBefore = Get-RssKiB $rig.Pid
        $uc = (Get-Datapath -ControlSocket $sock).Workloads[0].UcMac
    }
    AfterAll { Clear-RobustnessTest $sock }

    It 'refuses 10,000 malformed control datagrams, one by one, and keeps its configuration' {
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        $r = Invoke-Flood $agentNs @('--seed', '11', 'control', '--socket', $sock, '--count', '10000')
        $r.sent | Should -Be 10000
        Wait-TestCondition { (Get-Datapath -ControlSocket $sock).RequestsRejected -ge $requestsBefore.RequestsRejected + 10000 } -TimeoutSeconds 20 | Should -BeTrue
        $after = Get-Datapath -ControlSocket $sock
        $after.RequestsRejected - $requestsBefore.RequestsRejected | Should -Be 10000 -Because 'every malformed datagram is refused'
        Get-Configuration | Should -BeExactly $before
        Write-Host "  10,000 malformed datagrams refused in $([int]$sw.Elapsed.TotalMilliseconds) ms"
        # no log line was forged: every line of the log starts with a timestamp and the daemon's name
        $bad = @(Get-Content -LiteralPath $rig.Log | Where-Object { $_ -notmatch '^\d{4}-\d\d-\d\dT[\d:.]+Z nvr-dp\[\d+\] (INFO|WARN|ERROR) ' })
        $bad | Should -BeNullOrEmpty -Because 'escaped datagram text cannot start a line of its own'
    }

    It 'takes 200,000 malformed frames on the service port and still forwards and polices valid traffic, RSS within 64 MiB of before' {
        $countersBefore = (Get-Datapath -ControlSocket $sock).Counters
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        $r = Invoke-Flood $agentNs @('--seed', '12', 'frames', '--iface', 'vbr', '--workload', $uc, '--peer', '02:00:00:00:00:01', '--count', '200000')
        $r.sent | Should -Be 200000
        Wait-DpSettled $sock 30 | Should -BeTrue
        $counters = (Get-Datapath -ControlSocket $sock).Counters
        Write-Host "  200,000 malformed frames sent in $([int]$sw.Elapsed.TotalMilliseconds) ms; RX +$($counters.RXPackets - $countersBefore.RXPackets), errors +$($counters.ErrorPackets - $countersBefore.ErrorPackets), ring drops +$($counters.RXDropPackets - $countersBefore.RXDropPackets)"
        ($counters.RXPackets - $countersBefore.RXPackets) + ($counters.RXDropPackets - $countersBefore.RXDropPackets) | Should -BeGreaterThan 150000 -Because 'the frames reached the daemon'
        $counters.ErrorPackets - $countersBefore.ErrorPackets | Should -BeGreaterThan 10000 -Because 'many were malformed workload frames'

        Get-Configuration | Should -BeExactly $before
        $rss = Get-RssKiB $rig.Pid
        Write-Host "  RSS $rssBefore KiB before, $rss KiB after"
        $rss - $rssBefore | Should -BeLessThan (64 * 1024)
        Test-IcmpEcho $hostNs $ContainerIp -Count 2 | Should -BeTrue
        (Invoke-TestTcpConnection $hostNs $ContainerIp 5001).Result | Should -Be 'connected'
        (Invoke-TestTcpConnection $hostNs $ContainerIp 5002 -TimeoutSeconds 1.5).Result | Should -Be 'timeout' -Because 'the policy still denies port 5002'
    }

    It 'a 200,000-flow scan in Discover (1,000 sources, 200 ports each) fills the default tables, evicts nothing learned, RSS within 128 MiB of before' {
        Set-DpWorkloadMode -Mac $SeedMac -Mode Discover -ControlSocket $sock
        (Invoke-TestTcpConnection $hostNs $ContainerIp 5001).Result | Should -Be 'connected'
        Test-IcmpEcho $hostNs $ContainerIp -Count 1 | Should -BeTrue
        $learnedBefore = (Get-Table $sock Connections).Learned
        $learnedBefore | Should -BeGreaterOrEqual 2
        $rssStart = Get-RssKiB $rig.Pid
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        $r = Invoke-Flood $hostNs @('--seed', '13', 'syn', '--to', $ContainerIp, '--sources-from', '10.20.0.1', '--sources', '1000', '--ports', '30000:200')
        $r.sent | Should -Be 200000
        Wait-DpSettled $sock 30 | Should -BeTrue
        $info = Get-Datapath -ControlSocket $sock
        $c = $info.Tables | Where-Object Name -EQ Connections
        $s = $info.Tables | Where-Object Name -EQ Sessions
        $rss = Get-RssKiB $rig.Pid
        Write-Host "  200,000 flows in $([int]$sw.Elapsed.TotalMilliseconds) ms; RSS $rssStart -> $rss KiB; sessions $($s.Count)/$($s.Capacity) evicted $($s.Evicted) (live $($s.LearnedEvicted)); connections $($c.Count)/$($c.Capacity) learned $($c.Learned) scans $($c.Scans) evicted $($c.Evicted) (learned $($c.LearnedEvicted)) summarised $($c.Summarised); ring drops $($info.Counters.RXDropPackets)"
        $c.Count | Should -Be $c.Capacity
        $s.Count | Should -BeGreaterThan ($s.Capacity * 0.95) -Because 'the sessions of the flood fill the table (a few expire meanwhile)'
        # each source past 32 ports is one scan entry (per-port entries are evicted before summaries); the malformed
        # frames before made some too (mutated addresses and protocols); at most a quarter of the table holds scans
        $c.Scans | Should -BeGreaterOrEqual 1000
        $c.Scans | Should -BeLessOrEqual ($c.Capacity / 4)
        $c.LearnedEvicted | Should -Be 0
        $s.LearnedEvicted | Should -Be 0
        $c.Learned | Should -Be $learnedBefore
        $c.Summarised | Should -BeGreaterThan 150000 -Because 'every source past its first 32 ports folds into its scan entry'
        $rss - $rssStart | Should -BeLessThan (128 * 1024)
        @(Get-DpConnection -Mac $SeedMac -ControlSocket $sock | Where-Object { $_.Answered -and $_.ServerPort -eq 5001 -and "$($_.Action)" -eq 'Allow' }).Count | Should -Be 1 -Because 'the allowed connection is still listed'
        (Invoke-TestTcpConnection $hostNs $ContainerIp 5001).Result | Should -Be 'connected'
    }
}
