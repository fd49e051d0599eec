# The datapath daemon driven by the module's cmdlets and by the seed's own Python script, in the seed's topology
# (New-SeedTopology, uniquely named namespaces; the host side in a namespace of its own). Every daemon runs on a
# control socket of this run (/tmp/<run stem>dp-*.sock), never NeuVector's /tmp/dp_listen.sock, and every daemon
# started here is stopped in AfterAll, by pid if need be, also when a test failed.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $Fixtures = Join-Path $PSScriptRoot 'Fixtures'
    # the seed's script and its socket redirection are shared with the xunit daemon tests
    $SeedFixtures = Join-Path $PSScriptRoot '../NvRedirect.Tests/Fixtures'
    $SeedMac = '1a:27:f3:87:3a:27'
    $SeedUcMac = '4e:65:75:56:00:b4'
    $SeedBcMac = 'ff:ff:ff:00:00:b4'
    $SeedNetworks = @('172.17.0.0/16', '179.20.23.0/24', '10.10.10.0/24', '172.20.166.0/24', '10.10.10.66/24 devip', '10.10.10.88/24 devip')
    # daemons and their files: New-TestDpPath, Start-TestDp, Register-TestDp and Stop-TestDp (TestSupport) keep
    # every pid and file this file made, for the cleanup. A Describe's cleanup: its daemons stopped cleanly where they
    # answer, then every daemon of this file still running killed by pid, its files and namespaces removed.
    function Clear-DpTest([string[]]$Socket) {
        Stop-TestDp $Socket
        Remove-TestNamespace
    }

    # ping from a namespace; true when an echo came back
    function Test-Ping([string]$Namespace, [string]$Address = '10.10.10.88', [int]$Count = 3) { Test-IcmpEcho $Namespace $Address -Count $Count }

    # true once a ping gets through (bounded polling: the first echo may wait for ARP on a busy machine)
    function Wait-Ping([string]$Namespace, [string]$Address = '10.10.10.88') {
        Wait-TestCondition { Test-Ping $Namespace $Address -Count 1 } -TimeoutSeconds 15
    }

    # The seed's script, unchanged, against our socket (run_seed_client.py redirects its fixed path)
    function Invoke-SeedScript([string]$Socket) {
        $env:DP_SERVER_PATH = $Socket
        try { $out = & python3 (Join-Path $SeedFixtures 'run_seed_client.py') (Join-Path $SeedFixtures 'dp_seed_client.py') 2>&1 }
        finally { Remove-Item Env:DP_SERVER_PATH }
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = @($out | ForEach-Object { "$_" }) }
    }

    # The seed's configuration sent with the typed cmdlets
    function Set-SeedConfiguration([string]$Socket, [string]$AgentNamespace) {
        Add-DpServicePort vth -ControlSocket $Socket
        Set-DpInternalNetwork -Subnet 172.17.0.0/16, 179.20.23.0/24, 10.10.10.0/24, 172.20.166.0/24 -DeviceAddress 10.10.10.66/24, 10.10.10.88/24 -ControlSocket $Socket
        Get-WorkloadInterception $AgentNamespace | Add-DpMac -ControlSocket $Socket
        Set-DpMac $SeedMac -Tap $false -ControlSocket $Socket
    }

    # The configuration of a datapath as comparable text (no pid, counters or request numbers)
    function Get-DpConfigurationText([string]$Socket) {
        $d = Get-Datapath -ControlSocket $Socket -ErrorAction Stop
        @(
            "ports=$($d.ServicePorts -join ',')"
            $d.Workloads | ForEach-Object { "workload $($_.Mac) uc=$($_.UcMac) bc=$($_.BcMac) p=$($_.ProxyMac) pips=$($_.ProxyAddresses -join ',') iface=$($_.Interface) tap=$($_.Tap) apps=$($_.Apps -join ',')" }
            "nets=$($d.InternalNetworks -join ',') pending=$($d.InternalNetworksPending)"
            "xff=$($d.XffEnabled) nopolicy=$($d.DisableNetPolicy) unmanaged=$($d.DetectUnmanagedWorkloads) icmp=$($d.EnableIcmpPolicy) strict=$($d.StrictGroupMode) debug=$($d.DebugCategories -join ',')"
        ) -join "`n"
    }

    # The fully qualified id of an error record a cmdlet wrote: 'GetDatapathNotResponding' -> 'GetDatapathNotResponding,NvRedirect.Cmdlets.GetDatapathCommand'
    function Get-QualifiedErrorId([string]$Id) {
        $command = Get-Command -Module NvRedirect -CommandType Cmdlet | ForEach-Object { $_.Name -replace '-', '' } |
            Where-Object { $Id.StartsWith($_, [StringComparison]::Ordinal) } | Sort-Object Length -Descending | Select-Object -First 1
        "$Id,NvRedirect.Cmdlets.${command}Command"
    }

    function New-TestSeedTopology {
        # these tests prove the datapath's own path (every frame of a connection through nvr-dp, captured on vbr): the
        # kernel fast path stays off here; tests/pester/FastPath.Tests.ps1 proves it
        New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host') -FastPath:$false
    }
}
AfterAll {
    if (Get-Command Stop-TestDp -ErrorAction Ignore) { Stop-TestDp }
    if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace }
}

Describe 'The seed''s Python client' {
    It 'is the seed document''s script with only its indentation restored' {
        # the document sits in ../shared/seed next to the checkout (or further up for a worktree)
        $doc = $null
        for ($dir = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path; $dir -and -not $doc; $dir = Split-Path $dir -Parent) {
            $candidate = Join-Path $dir 'shared/seed/000_382fdea29d456aa2.txt'
            if (Test-Path $candidate) { $doc = $candidate }
            if ($dir -eq '/') { break }
        }
        if (-not $doc) { Set-ItResult -Skipped -Because 'the seed document (shared/seed/000_382fdea29d456aa2.txt) is not next to this checkout'; return }
        $lines = @(Get-Content $doc)
        $start = [Array]::IndexOf($lines, 'import socket')
        $end = [Array]::LastIndexOf($lines, 'cfg_mac()')
        $start | Should -BeGreaterThan 0
        $fixture = @(Get-Content (Join-Path $SeedFixtures 'dp_seed_client.py'))
        @($fixture | ForEach-Object TrimStart) | Should -Be $lines[$start..$end]
        & python3 -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" (Join-Path $SeedFixtures 'dp_seed_client.py')
        $LASTEXITCODE | Should -Be 0 -Because 'the restored indentation is valid Python'
    }
}

Describe 'The seed''s datapath, started and driven from PowerShell' {
    BeforeAll {
        $topo = New-TestSeedTopology
        $agent = $topo.AgentNamespace
        $hostNs = $topo.HostNamespace
        $containerNs = $topo.ContainerNamespace
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
    }
    AfterAll { Clear-DpTest $sock }

    It 'Start-Datapath starts nvr-dp in the agent namespace and returns it once its socket answers' {
        $dp = $topo | Start-Datapath -ControlSocket $sock -LogPath $log -SessionCapacity 32768 -ConnectionCapacity 4096 -Unsupervised # the crash below is a crash without a supervisor
        Register-TestDp -ProcessId $dp.Pid
        $dp | Should -BeOfType ([NvRedirect.Core.Datapath.DatapathInfo])
        Test-TestDpProcess $dp.Pid | Should -BeTrue
        $cmdline = (Get-Content "/proc/$($dp.Pid)/cmdline" -Raw) -split "`0"
        $cmdline | Should -Contain $sock
        $dp.SessionCapacity | Should -Be 32768
        $dp.Supervised | Should -BeFalse
        $dp.Restarts | Should -Be 0
        ($cmdline -join ' ') | Should -BeLike '*--sessions 32768 --connections 4096*'
        (Get-Content $log -Raw) | Should -BeLike '*32768 sessions, 4096 connections*' 
        $dp.Namespace | Should -BeExactly $agent
        $dp.ControlSocket | Should -BeExactly $sock
        $dp.LogPath | Should -BeExactly $log
        $dp.ServicePorts | Should -BeNullOrEmpty
        $dp.Workloads | Should -BeNullOrEmpty
        $dp.Sessions.Total | Should -Be 0
        $dp.Counters.RXPackets | Should -Be 0
        (Get-Item $sock).UnixFileMode | Should -Be ([System.IO.UnixFileMode]'UserRead, UserWrite')
        (Get-Content $log -Raw) | Should -BeLike "*serving $sock, packet work in namespace '$agent'*"
    }

    It 'refuses a second Start-Datapath on the same control socket with a clear error, the first one untouched' {
        $first = Get-Datapath -ControlSocket $sock
        $errors = Get-ErrorRecord { Start-Datapath -Namespace $agent -ControlSocket $sock -LogPath $log }
        Assert-AgentError $errors -Id (Get-QualifiedErrorId 'StartDatapathAlreadyRunning') -Category ResourceExists -Message "*another datapath (pid $($first.Pid), namespace '$agent') is already serving $sock*Stop-Datapath*"
        (Get-Datapath -ControlSocket $sock).Pid | Should -Be $first.Pid
        @(Get-Datapath | Where-Object ControlSocket -EQ $sock).Count | Should -Be 1
    }

    It 'the seed''s Python script, unchanged, configures our datapath' {
        $run = Invoke-SeedScript $sock
        $run.ExitCode | Should -Be 0 -Because ($run.Output -join "`n")
        @($run.Output | Where-Object { $_ -like 'send msg: *success' }).Count | Should -Be 4
        $dp = Get-Datapath -ControlSocket $sock
        $dp.RequestsRejected | Should -Be 0
        $dp.ServicePorts | Should -Be @('vth')
        $dp.InternalNetworks | Should -Be $SeedNetworks
        $w = @($dp.Workloads)
        $w.Count | Should -Be 1
        $w[0].Mac | Should -BeExactly $SeedMac
        $w[0].UcMac | Should -BeExactly $SeedUcMac
        $w[0].BcMac | Should -BeExactly $SeedBcMac
        $w[0].Interface | Should -BeExactly 'vth'
        $w[0].Tap | Should -BeFalse
        $w[0].ControlSocket | Should -BeExactly $sock
    }

    It 'ping and a 50 MB TCP transfer from the host side reach the container through the datapath, content intact, while vbr carries the ucmac' {
        $before = Get-Datapath -ControlSocket $sock
        Wait-Ping $hostNs | Should -BeTrue

        # capture on vbr in a thread job; it is open once it has seen a frame (a ping), then the transfer runs
        $psd1 = Join-Path $PSScriptRoot '../../NvRedirect.psd1'
        $capture = Start-ThreadJob -ArgumentList $psd1, $agent -ScriptBlock {
            param($Psd1, $Ns)
            Import-Module $Psd1
            Watch-AgentTraffic vbr -Namespace $Ns -Count 400 -TimeoutSeconds 60
        }
        $receiver = $null
        try {
            Wait-TestCondition { $null = Test-Ping $hostNs -Count 1; $capture.Output.Count -gt 0 } -TimeoutSeconds 30 | Should -BeTrue -Because 'the capture on vbr sees the ping'

            $port = 20000 + (Get-Random -Maximum 20000)
            $size = 50MB
            # a python helper, not Test-AgentConnection: 50 MB in one connection with its SHA-256 checked at both ends
            # (GSO frames and checksums through nvr-dp) is more than an echo probe's few bytes
            $transfer = Join-Path $Fixtures 'tcp_transfer.py'
            $psi = [System.Diagnostics.ProcessStartInfo]::new('ip')
            foreach ($a in 'netns', 'exec', $containerNs, 'python3', $transfer, 'recv', '10.10.10.88', "$port") { $psi.ArgumentList.Add($a) }
            $psi.RedirectStandardOutput = $true
            $psi.RedirectStandardError = $true
            $receiver = [System.Diagnostics.Process]::Start($psi)
            $receiver.StandardOutput.ReadLine() | Should -Be 'listening'
            $sent = & ip netns exec $hostNs python3 $transfer send 10.10.10.88 $port $size 7 2>&1
            $LASTEXITCODE | Should -Be 0 -Because "$sent"
            $receiver.WaitForExit(60000) | Should -BeTrue
            $received = $receiver.StandardOutput.ReadToEnd().Trim()
            $receiver.ExitCode | Should -Be 0 -Because $receiver.StandardError.ReadToEnd()
            "$sent".Trim() | Should -Match "^$size [0-9a-f]{64}$"
            $received | Should -BeExactly "$sent".Trim() -Because 'the container received every byte the host side sent'

            $frames = @($capture | Wait-Job -Timeout 60 | Receive-Job)
        }
        finally {
            if ($receiver -and -not $receiver.HasExited) { $receiver.Kill($true) }
            $capture | Remove-Job -Force
        }
        $tcp = @($frames | Where-Object { $_.Protocol -eq 'TCP' -and ($_.SourcePort -eq $port -or $_.DestinationPort -eq $port) })
        $tcp.Count | Should -BeGreaterThan 10
        @($tcp | Where-Object { $_.DestinationMac -eq $SeedUcMac -and $_.DestinationIP -eq '10.10.10.88' }).Count | Should -BeGreaterThan 0 -Because 'frames to the container carry its ucmac on vbr'
        @($tcp | Where-Object { $_.SourceMac -eq $SeedUcMac -and $_.SourceIP -eq '10.10.10.88' }).Count | Should -BeGreaterThan 0 -Because 'frames from the container carry its ucmac on vbr'
        @($frames | Where-Object { $_.SourceMac -eq $SeedMac -or $_.DestinationMac -eq $SeedMac } | Where-Object Protocol -In 'TCP', 'ICMP').Count | Should -Be 0 -Because 'no steered frame shows the real MAC on vbr'

        $after = Get-Datapath -ControlSocket $sock
        $after.Counters.TXPackets | Should -BeGreaterThan $before.Counters.TXPackets
        $after.Counters.TCPSessions | Should -BeGreaterThan $before.Counters.TCPSessions
        $w = $after.Workloads[0]
        $w.BytesIn | Should -BeGreaterOrEqual $size
        $session = @(Get-DpSession -ControlSocket $sock | Where-Object { $_.Protocol -eq 'TCP' -and $_.ServerPort -eq $port })
        $session.Count | Should -Be 1
        $session[0].ServerAddress | Should -BeExactly '10.10.10.88'
        $session[0].ClientAddress | Should -BeExactly '10.10.10.66'
        $session[0].Ingress | Should -BeTrue
        $session[0].EndpointMac | Should -BeExactly $SeedMac
        $session[0].ClientBytes | Should -BeGreaterOrEqual $size
    }

    It 'tap on: the ping fails; tap off: it passes' {
        $tapped = Set-DpMac $SeedMac -Tap $true -ControlSocket $sock -PassThru
        $tapped.Tap | Should -BeTrue
        Test-Ping $hostNs -Count 2 | Should -BeFalse
        (Get-Datapath -ControlSocket $sock).Workloads[0].Tap | Should -BeTrue

        # a workload object binds Mac and ControlSocket from the pipeline
        (Get-Datapath -ControlSocket $sock).Workloads | Set-DpMac -Tap $false
        Wait-Ping $hostNs | Should -BeTrue
    }

    It 'Remove-DpMac: the ping fails' {
        $before = (Get-Datapath -ControlSocket $sock).Counters.NoWorkloadPackets
        $removed = Remove-DpMac $SeedMac -ControlSocket $sock -PassThru
        $removed.Mac | Should -BeExactly $SeedMac
        (Get-Datapath -ControlSocket $sock).Workloads | Should -BeNullOrEmpty
        Test-Ping $hostNs -Count 2 | Should -BeFalse
        (Get-Datapath -ControlSocket $sock).Counters.NoWorkloadPackets | Should -BeGreaterThan $before
    }

    It 'Get-WorkloadInterception | Add-DpMac registers the intercepted workload again, and the ping passes' {
        $w = Get-WorkloadInterception $agent | Add-DpMac -ControlSocket $sock -Tap $false -PassThru
        $w.Mac | Should -BeExactly $SeedMac
        $w.UcMac | Should -BeExactly $SeedUcMac
        $w.BcMac | Should -BeExactly $SeedBcMac
        $w.Interface | Should -BeExactly 'vth'
        $w.Tap | Should -BeFalse
        Wait-Ping $hostNs | Should -BeTrue
    }

    It 'Get-DpSession lists the ping''s session, Clear-DpSession removes sessions piped to it, then every one' {
        $icmp = @(Get-DpSession -ControlSocket $sock | Where-Object Protocol -EQ 'ICMP')
        $icmp.Count | Should -BeGreaterThan 0
        $icmp[0].ClientAddress | Should -BeExactly '10.10.10.66'
        $icmp[0].ServerAddress | Should -BeExactly '10.10.10.88'
        $count = Get-DpSession -Count -ControlSocket $sock
        $count.Icmp | Should -BeGreaterOrEqual $icmp.Count
        $icmp | Clear-DpSession
        @(Get-DpSession -ControlSocket $sock | Where-Object Id -In $icmp.Id) | Should -BeNullOrEmpty
        (Clear-DpSession -ControlSocket $sock -PassThru).Total | Should -Be 0
    }

    It 'killing the daemon blackholes the steered traffic (fail closed); Start-Datapath again restores the saved configuration without it being sent again' {
        $old = Get-Datapath -ControlSocket $sock
        Stop-Process -Id $old.Pid -Force   # SIGKILL: no clean shutdown, the socket file stays
        Wait-TestCondition { -not (Test-TestDpProcess $old.Pid) } | Should -BeTrue
        Test-Ping $hostNs -Count 2 | Should -BeFalse
        $errors = Get-ErrorRecord { Get-Datapath -ControlSocket $sock }
        Assert-AgentError $errors -Id (Get-QualifiedErrorId 'GetDatapathNotResponding') -Category ConnectionError -Message "*no datapath answers on $sock*nothing is bound to it*start one with Start-Datapath*"

        $new = Start-TestDp $agent $sock $log -Unsupervised
        $new.Pid | Should -Not -Be $old.Pid
        # no configuration sent: the new daemon read what the killed one had saved
        Wait-Ping $hostNs | Should -BeTrue
        Get-DpConfigurationText $sock | Should -BeExactly ((@('ports=vth', "workload $SeedMac uc=$SeedUcMac bc=$SeedBcMac p= pips= iface=vth tap=False apps=",
                    "nets=$($SeedNetworks -join ',') pending=", 'xff=False nopolicy=False unmanaged=False icmp=True strict=False debug=')) -join "`n")
        (Get-Content $log -Raw) | Should -BeLike "*replacing stale control socket $sock (left by nvr-dp pid $($old.Pid), which is gone)*"
        (Get-Content $log -Raw) | Should -BeLike '*restored the configuration saved in /run/nvredirect/*service port vth, 1 workloads (1 inline), 6 internal subnets*'
    }

    It 'Stop-Datapath stops it cleanly and removes its socket' {
        $dp = Get-Datapath -ControlSocket $sock
        $stopped = Stop-Datapath -ControlSocket $sock -PassThru
        $stopped.Pid | Should -Be $dp.Pid
        Test-TestDpProcess $dp.Pid | Should -BeFalse
        Test-Path $sock | Should -BeFalse
        $text = Get-Content $log -Raw
        $text | Should -BeLike ('*' + [WildcardPattern]::Escape("nvr-dp[$($dp.Pid)] INFO SIGTERM received, stopping") + '*')
        $text | Should -BeLike ('*' + [WildcardPattern]::Escape("nvr-dp[$($dp.Pid)] INFO stopped (service port vth, 1 workloads (1 inline), 6 internal subnets") + '*')
        Test-Ping $hostNs -Count 2 | Should -BeFalse
    }
}

Describe 'The typed cmdlets and the seed''s Python script are interchangeable' {
    BeforeAll {
        $topo = New-TestSeedTopology
        $agent = $topo.AgentNamespace
        $hostNs = $topo.HostNamespace
        $pySock = New-TestDpPath '.sock'
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
    }
    AfterAll { Clear-DpTest $pySock, $sock }

    It 'configure with the script or with the cmdlets: the same datapath configuration' {
        $null = Start-TestDp $agent $pySock $log
        (Invoke-SeedScript $pySock).ExitCode | Should -Be 0
        $byScript = Get-DpConfigurationText $pySock
        Stop-Datapath -ControlSocket $pySock

        $null = Start-TestDp $agent $sock $log
        Set-SeedConfiguration $sock $agent
        $byCmdlets = Get-DpConfigurationText $sock
        $byCmdlets | Should -BeExactly $byScript
        $byCmdlets | Should -BeLike "*workload $SeedMac uc=$SeedUcMac bc=$SeedBcMac*tap=False*"
        Wait-Ping $hostNs | Should -BeTrue
    }

    It 'an independent Python query client reads what the cmdlets configured' {
        $null = Test-Ping $hostNs -Count 1
        $q = (& python3 (Join-Path $Fixtures 'dp_query.py') $sock) | ConvertFrom-Json
        $LASTEXITCODE | Should -Be 0
        $q.keep_alive.answered | Should -Be $q.keep_alive.sent
        $q.state.service_port | Should -BeExactly 'vth'
        @($q.state.workloads).Count | Should -Be 1
        $q.state.workloads[0].mac | Should -BeExactly $SeedMac
        $q.state.workloads[0].ucmac | Should -BeExactly $SeedUcMac
        $q.state.workloads[0].tap | Should -BeFalse
        @($q.state.internal_nets).Count | Should -Be 6
        $q.state.daemon.pid | Should -Be (Get-Datapath -ControlSocket $sock).Pid
        $q.sessions.icmp | Should -BeGreaterThan 0
        $count = Get-DpSession -Count -ControlSocket $sock
        $count.Icmp | Should -Be $q.sessions.icmp
        $count.Total | Should -Be $q.sessions.total
    }

    It 'the script sent on top of the cmdlets'' configuration changes nothing, and each acts on what the other registered' {
        $before = Get-DpConfigurationText $sock
        $rejected = (Get-Datapath -ControlSocket $sock).RequestsRejected
        (Invoke-SeedScript $sock).ExitCode | Should -Be 0
        Get-DpConfigurationText $sock | Should -BeExactly $before
        (Get-Datapath -ControlSocket $sock).RequestsRejected | Should -Be $rejected

        Set-DpMac $SeedMac -Tap $true -ControlSocket $sock
        Test-Ping $hostNs -Count 2 | Should -BeFalse
        (Invoke-SeedScript $sock).ExitCode | Should -Be 0   # its cfg_mac puts the workload inline again
        (Get-Datapath -ControlSocket $sock).Workloads[0].Tap | Should -BeFalse
        Wait-Ping $hostNs | Should -BeTrue
        Remove-DpMac $SeedMac -ControlSocket $sock
        Test-Ping $hostNs -Count 2 | Should -BeFalse
    }
}

Describe 'A long internal-network list goes out in START/END chunks' {
    BeforeAll {
        $ns = New-TestNamespace 'chunk'
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
        $null = Start-TestDp $ns $sock $log
    }
    AfterAll { Clear-DpTest $sock }

    It 'sets 512 entries in order through several requests' {
        $subnets = @(0..255 | ForEach-Object { "10.10.10.$_/32" })
        $devices = @(0..255 | ForEach-Object { "192.0.2.$_/24" })
        $dp = Set-DpInternalNetwork -Subnet $subnets -DeviceAddress $devices -ControlSocket $sock -PassThru
        $dp.InternalNetworks | Should -Be (@($subnets) + @($devices | ForEach-Object { "$_ devip" }))
        $dp.InternalNetworksPending | Should -BeNullOrEmpty
        $text = Get-Content $log -Raw
        $text | Should -BeLike '*ctrl_cfg_internal_net: * entries pending*' -Because 'the list went out in chunks'
        $text | Should -BeLike '*ctrl_cfg_internal_net: 512 internal subnets in force*'
        (Set-DpInternalNetwork -Subnet @() -ControlSocket $sock -PassThru).InternalNetworks | Should -BeNullOrEmpty
    }
}

Describe 'Bad control messages, sent with Send-DpMessage' {
    BeforeDiscovery {
        $corpus = @(
            @{ Name = 'malformed JSON'; Message = '{"ctrl_keep_alive": {"seq_num": 1}'; Reason = '*malformed JSON*' }
            @{ Name = 'a JSON array'; Message = '[{"ctrl_keep_alive": {"seq_num": 1}}]'; Reason = '*must be a JSON object whose keys are commands*' }
            @{ Name = 'text that is not UTF-8'; Message = [byte[]](0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d); Reason = '*not valid UTF-8*' }
            @{ Name = 'a request over 8192 bytes'; Message = '{"ctrl_set_debug": {"categories": [' + ('"all", ' * 1400) + '"all"]}}'; Reason = '*exceeds the 8192-byte limit*' }
            @{ Name = 'JSON nested too deep'; Message = '{"ctrl_sys_conf": ' + ('[' * 40) + (']' * 40) + '}'; Reason = '*malformed JSON*' }
            @{ Name = 'an unknown command'; Message = '{"ctrl_bogus": {}}'; Reason = '*ctrl_bogus: unknown command*' }
            @{ Name = 'a command that is not an object'; Message = '{"ctrl_add_mac": 5}'; Reason = '*ctrl_add_mac: expects an object*' }
            @{ Name = 'a missing required field'; Message = '{"ctrl_add_mac": {"iface": "vth"}}'; Reason = '*ctrl_add_mac:*"mac"*' }
            @{ Name = 'a string where an integer belongs'; Message = '{"ctrl_keep_alive": {"seq_num": "7"}}'; Reason = '*"seq_num" must be an integer*' }
            @{ Name = 'an integer out of range'; Message = '{"ctrl_keep_alive": {"seq_num": 4294967296}}'; Reason = '*"seq_num" must be an integer from 0 to 4294967295*' }
            @{ Name = 'a fraction where an integer belongs'; Message = '{"ctrl_clear_session": {"filter_id": 1.5}}'; Reason = '*"filter_id" must be an integer*' }
            @{ Name = '0 where a boolean belongs'; Message = '{"ctrl_cfg_mac": {"macs": ["1a:27:f3:87:3a:27"], "tap": 0}}'; Reason = '*"tap" must be true or false*' }
            @{ Name = 'a malformed MAC'; Message = '{"ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a"}}'; Reason = '*"mac" is not a MAC address*' }
            @{ Name = 'a multicast workload MAC'; Message = '{"ctrl_add_mac": {"iface": "vth", "mac": "01:00:5e:00:00:01"}}'; Reason = '*not a unicast address*' }
            @{ Name = 'ucmac equal to mac'; Message = '{"ctrl_add_mac": {"iface": "vth", "mac": "02:00:00:00:00:01", "ucmac": "02:00:00:00:00:01"}}'; Reason = '*"ucmac" must differ from "mac"*' }
            @{ Name = 'an alias of another workload'; Message = '{"ctrl_add_mac": {"iface": "vth", "mac": "02:00:00:00:00:01", "ucmac": "4e:65:75:56:00:b4"}}'; Reason = '*4e:65:75:56:00:b4 is already registered to workload 1a:27:f3:87:3a:27*' }
            @{ Name = 'a shorthand IPv4 address'; Message = '{"ctrl_cfg_internal_net": {"flag": 3, "subnet_addr": [{"ip": "10.1", "mask": "255.255.255.0"}]}}'; Reason = '*"ip" is not a dotted-quad IPv4 address*' }
            @{ Name = 'an internal-net chunk without START'; Message = '{"ctrl_cfg_internal_net": {"flag": 0, "subnet_addr": []}}'; Reason = '*no list was started*' }
            @{ Name = 'a second service port'; Message = '{"ctrl_add_srvc_port": {"iface": "vbr"}}'; Reason = '*already serving vth*' }
            @{ Name = 'a service port that does not exist'; Message = '{"ctrl_del_srvc_port": {"iface": "vth"}, "ctrl_add_srvc_port": {"iface": "nosuch0"}}'; Reason = '*cannot open service port nosuch0*' }
            @{ Name = 'an interface name with a slash'; Message = '{"ctrl_add_srvc_port": {"iface": "a/b"}}'; Reason = '*"iface" is not an interface name*' }
            @{ Name = 'an unknown debug category'; Message = '{"ctrl_set_debug": {"categories": ["bogus"]}}'; Reason = '*unknown debug category "bogus"*' }
            @{ Name = 'a good command followed by a bad one (all or nothing)'; Message = '{"ctrl_sys_conf": {"xff_enabled": true}, "ctrl_del_mac": {"mac": "1a:27:f3:87:3a:27"}, "ctrl_bogus": {}}'; Reason = '*ctrl_bogus: unknown command*' }
        )
    }
    BeforeAll {
        $ns = New-TestNamespace 'corpus'
        Invoke-Ip -n $ns link add vth type veth peer name vbr
        Invoke-Ip -n $ns link set vth up
        Invoke-Ip -n $ns link set vbr up
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
        $dp = Start-TestDp $ns $sock $log
        Add-DpServicePort vth -ControlSocket $sock
        Set-DpInternalNetwork -Subnet 10.10.10.0/24 -DeviceAddress 10.10.10.66/24 -ControlSocket $sock
        Add-DpMac $SeedMac -UcMac $SeedUcMac -BcMac $SeedBcMac -Tap $false -ControlSocket $sock
        $configured = Get-DpConfigurationText $sock
    }
    AfterAll { Clear-DpTest $sock }

    It 'rejects <Name>, nothing applied, the daemon alive with its state unchanged' -ForEach $corpus {
        $rejected = (Get-Datapath -ControlSocket $sock).RequestsRejected
        $errors = Get-ErrorRecord { Send-DpMessage -Message $Message -ControlSocket $sock }
        Assert-AgentError $errors -Id (Get-QualifiedErrorId 'SendDpMessageRejected') -Category InvalidData -Message "*the datapath on $sock rejected the request, nothing was applied*", $Reason
        $after = Get-Datapath -ControlSocket $sock
        $after.Pid | Should -Be $dp.Pid
        $after.RequestsRejected | Should -Be ($rejected + 1)
        $after.LastRejection | Should -BeLike $Reason
        Get-DpConfigurationText $sock | Should -BeExactly $configured
        (Send-DpMessage '{"ctrl_keep_alive": {"seq_num": 42}}' -ExpectReply -ControlSocket $sock).Sequence | Should -Be 42
        (Get-Content $log -Raw) | Should -BeLike "*ERROR request rejected, nothing applied: $Reason"
    }

    It 'accepts what it should: hashtables become JSON, replies come back decoded' {
        $replies = @(Send-DpMessage ([ordered]@{ ctrl_keep_alive = @{ seq_num = 5 }; ctrl_count_session = @{}; ctrl_counter_device = @{}; ctrl_list_session = @{}; nvr_get_state = @{} }) -ExpectReply -ControlSocket $sock)
        $replies[0] | Should -BeOfType ([NvRedirect.Core.Datapath.DpKeepAlive])
        $replies[0].Sequence | Should -Be 5
        $replies[1] | Should -BeOfType ([NvRedirect.Core.Datapath.DpSessionCount])
        $replies[2] | Should -BeOfType ([NvRedirect.Core.Datapath.DpDeviceCounters])
        $replies[3] | Should -BeOfType ([NvRedirect.Core.Datapath.DatapathInfo])
        $replies[3].Workloads[0].Mac | Should -BeExactly $SeedMac
        $replies.Count | Should -Be 4 -Because 'no session exists, so the session list is only its terminator'
        Send-DpMessage ([pscustomobject]@{ ctrl_sys_conf = [pscustomobject]@{ xff_enabled = $true } }) -ControlSocket $sock
        (Get-Datapath -ControlSocket $sock).XffEnabled | Should -BeTrue
        Send-DpMessage '{"ctrl_sys_conf": {"xff_enabled": false}}' -ControlSocket $sock
        Get-DpConfigurationText $sock | Should -BeExactly $configured
    }
}

Describe 'Error ids of the datapath cmdlets' {
    BeforeDiscovery {
        $clients = @(
            @{ Command = 'Get-Datapath'; Invoke = { param($s) Get-Datapath -ControlSocket $s } }
            @{ Command = 'Stop-Datapath'; Invoke = { param($s) Stop-Datapath -ControlSocket $s } }
            @{ Command = 'Add-DpServicePort'; Invoke = { param($s) Add-DpServicePort vth -ControlSocket $s } }
            @{ Command = 'Set-DpInternalNetwork'; Invoke = { param($s) Set-DpInternalNetwork -Subnet 10.10.10.0/24 -ControlSocket $s } }
            @{ Command = 'Add-DpMac'; Invoke = { param($s) Add-DpMac 1a:27:f3:87:3a:27 -Interface vth -ControlSocket $s } }
            @{ Command = 'Set-DpMac'; Invoke = { param($s) Set-DpMac 1a:27:f3:87:3a:27 -Tap $false -ControlSocket $s } }
            @{ Command = 'Remove-DpMac'; Invoke = { param($s) Remove-DpMac 1a:27:f3:87:3a:27 -ControlSocket $s } }
            @{ Command = 'Get-DpSession'; Invoke = { param($s) Get-DpSession -ControlSocket $s } }
            @{ Command = 'Clear-DpSession'; Invoke = { param($s) Clear-DpSession -ControlSocket $s } }
            @{ Command = 'Send-DpMessage'; Invoke = { param($s) Send-DpMessage '{"ctrl_keep_alive": {"seq_num": 1}}' -ControlSocket $s } }
        )
    }
    BeforeAll {
        $ns = New-TestNamespace 'errors'
        Invoke-Ip -n $ns link add vth type veth peer name vbr
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
        $dp = Start-TestDp $ns $sock $log
    }
    AfterAll { Clear-DpTest $sock }

    It '<Command> reports NotResponding when no datapath serves the socket' -ForEach $clients {
        $missing = New-TestDpPath '.sock'
        $errors = Get-ErrorRecord { & $Invoke $missing }
        Assert-AgentError $errors -Id (Get-QualifiedErrorId "$($Command -replace '-', '')NotResponding") -Category ConnectionError -Message "*no datapath answers on $missing (it does not exist): start one with Start-Datapath*"
        Test-Path $missing | Should -BeFalse
    }

    It 'a stale socket (what a killed daemon leaves) is NotResponding too, and Stop-Datapath -Force removes it' {
        $stale = New-TestDpPath '.sock'
        & python3 -c "import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind('$stale')"
        Test-Path $stale | Should -BeTrue
        Assert-AgentError (Get-ErrorRecord { Get-DpSession -ControlSocket $stale }) -Id (Get-QualifiedErrorId 'GetDpSessionNotResponding') -Category ConnectionError -Message '*nothing is bound to it*'
        Assert-AgentError (Get-ErrorRecord { Stop-Datapath -ControlSocket $stale }) -Id (Get-QualifiedErrorId 'StopDatapathNotResponding') -Category ConnectionError
        Test-Path $stale | Should -BeTrue
        Stop-Datapath -ControlSocket $stale -Force
        Test-Path $stale | Should -BeFalse
    }

    It 'Start-Datapath: <Id>' -ForEach @(
        @{ Id = 'StartDatapathNamespaceNotFound'; Category = 'ObjectNotFound'; Case = 'missing namespace' }
        @{ Id = 'StartDatapathInvalidArgument'; Category = 'InvalidArgument'; Case = 'bad namespace name' }
        @{ Id = 'StartDatapathStartFailed'; Category = 'OpenError'; Case = 'path is a regular file' }
    ) {
        $path = New-TestDpPath '.sock'
        switch ($Case) {
            'missing namespace' { $errors = Get-ErrorRecord { Start-Datapath -Namespace "$(Get-TestRunStem)missing" -ControlSocket $path -LogPath "$path.log" }; $pattern = '*missing*' }
            'bad namespace name' { $errors = Get-ErrorRecord { Start-Datapath -Namespace 'a/b' -ControlSocket $path -LogPath "$path.log" }; $pattern = '*a/b*' }
            'path is a regular file' {
                Set-Content -LiteralPath $path -Value 'keep me'
                Register-TestDp -Path "$path.log"
                $errors = Get-ErrorRecord { Start-Datapath -Namespace $ns -ControlSocket $path -LogPath "$path.log" }
                $pattern = "*nvr-dp could not start (exit code 1): *$path exists and is not a socket; refusing to replace it*"
                Get-Content -LiteralPath $path | Should -Be 'keep me'
            }
        }
        Assert-AgentError $errors -Id (Get-QualifiedErrorId $Id) -Category $Category -Message $pattern
        @(Get-Datapath | Where-Object ControlSocket -EQ $path) | Should -BeNullOrEmpty
    }

    It 'invalid arguments are refused before anything is sent: <Id>' -ForEach @(
        @{ Id = 'AddDpMacInvalidArgument'; Invoke = { param($s) Add-DpMac nonsense -Interface vth -ControlSocket $s }; Pattern = "*'nonsense' is not a valid MAC*" }
        @{ Id = 'AddDpMacInvalidArgument'; Invoke = { param($s) Add-DpMac 1a:27:f3:87:3a:27 -ControlSocket $s }; Pattern = '*has no service port yet*Add-DpServicePort*' }
        @{ Id = 'SetDpInternalNetworkInvalidArgument'; Invoke = { param($s) Set-DpInternalNetwork -Subnet 10.10.10.66/24 -ControlSocket $s }; Pattern = '*not a network address*10.10.10.0/24*' }
        @{ Id = 'AddDpServicePortInvalidArgument'; Invoke = { param($s) Add-DpServicePort 'a/b' -ControlSocket $s }; Pattern = "*contains '/'*" }
        @{ Id = 'SendDpMessageInvalidArgument'; Invoke = { param($s) Send-DpMessage (Get-Date) -ControlSocket $s }; Pattern = '*must be a JSON string, a hashtable or object, or bytes*' }
        @{ Id = 'SetDpMacInvalidArgument'; Invoke = { param($s) Set-DpMac 1a:27 -Tap $true -ControlSocket $s }; Pattern = '*not a valid MAC*' }
    ) {
        $accepted = (Get-Datapath -ControlSocket $sock).RequestsAccepted
        Assert-AgentError (Get-ErrorRecord { & $Invoke $sock }) -Id (Get-QualifiedErrorId $Id) -Category InvalidArgument -Message $Pattern
        # only state queries were sent: the two before and after, plus at most the lookup of the service port
        (Get-Datapath -ControlSocket $sock).RequestsAccepted | Should -BeLessOrEqual ($accepted + 2)
        Get-DpConfigurationText $sock | Should -BeExactly "ports=`nnets= pending=`nxff=False nopolicy=False unmanaged=False icmp=True strict=False debug="
    }

    It 'the datapath''s rejections: <Id>' -ForEach @(
        @{ Id = 'AddDpServicePortRejected'; Invoke = { param($s) Add-DpServicePort nosuch0 -ControlSocket $s }; Pattern = '*cannot open service port nosuch0*' }
        @{ Id = 'AddDpMacRejected'; Invoke = { param($s) Add-DpMac 1a:27:f3:87:3a:27 -UcMac 1a:27:f3:87:3a:27 -Interface vth -ControlSocket $s }; Pattern = '*"ucmac" must differ from "mac"*' }
        @{ Id = 'SendDpMessageRejected'; Invoke = { param($s) Send-DpMessage '{"ctrl_bogus": {}}' -ControlSocket $s }; Pattern = '*unknown command*' }
    ) {
        Assert-AgentError (Get-ErrorRecord { & $Invoke $sock }) -Id (Get-QualifiedErrorId $Id) -Category InvalidData -Message "*the datapath on $sock rejected the request, nothing was applied*", $Pattern
    }

    It 'MACs the datapath does not know: <Id>' -ForEach @(
        @{ Id = 'SetDpMacNotFound'; Invoke = { param($s) Set-DpMac 02:00:00:00:00:09 -Tap $false -ControlSocket $s } }
        @{ Id = 'RemoveDpMacNotFound'; Invoke = { param($s) Remove-DpMac 02:00:00:00:00:09 -ControlSocket $s } }
    ) {
        Assert-AgentError (Get-ErrorRecord { & $Invoke $sock }) -Id (Get-QualifiedErrorId $Id) -Category ObjectNotFound -Message "*02:00:00:00:00:09 is not registered with the datapath at $sock*"
    }

    It 'a daemon that stopped answering: Stop-Datapath finds its pid by its command line; SIGTERM cannot stop it (StopDatapathStopFailed), -Force kills it and removes its socket' {
        $hung = New-TestDpPath '.sock'
        $other = Start-TestDp $ns $hung "$hung.log"
        Register-TestDp -Path "$hung.log"
        & kill -STOP $other.Pid
        try {
            Assert-AgentError (Get-ErrorRecord { Stop-Datapath -ControlSocket $hung -TimeoutSeconds 0.5 -StopTimeoutSeconds 1 }) -Id (Get-QualifiedErrorId 'StopDatapathStopFailed') `
                -Category OperationTimeout -Message "*nvr-dp (pid $($other.Pid)) did not stop within 1 s of SIGTERM; Stop-Datapath -Force kills it*"
            Test-TestDpProcess $other.Pid | Should -BeTrue
            Stop-Datapath -ControlSocket $hung -TimeoutSeconds 0.5 -Force
            Test-TestDpProcess $other.Pid | Should -BeFalse
            Test-Path $hung | Should -BeFalse
        }
        finally { if (Test-TestDpProcess $other.Pid) { & kill -CONT $other.Pid } }
    }

    It 'Send-DpMessage -ExpectReply for a message that produces no reply: SendDpMessageNoReply' {
        Assert-AgentError (Get-ErrorRecord { Send-DpMessage '{"ctrl_sys_conf": {"xff_enabled": false}}' -ExpectReply -ControlSocket $sock }) `
            -Id (Get-QualifiedErrorId 'SendDpMessageNoReply') -Category InvalidResult -Message '*applied the message but sent no reply*'
    }

    It 'a reply whose header lies about its length: GetDpSessionBadReply' {
        $fake = New-TestDpPath '.sock'
        $psi = [System.Diagnostics.ProcessStartInfo]::new('python3')
        foreach ($a in (Join-Path $Fixtures 'fake_dp.py'), $fake, '1') { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true
        $server = [System.Diagnostics.Process]::Start($psi)
        try {
            $server.StandardOutput.ReadLine() | Should -Be 'ready'
            Assert-AgentError (Get-ErrorRecord { Get-DpSession -Count -ControlSocket $fake }) -Id (Get-QualifiedErrorId 'GetDpSessionBadReply') -Category ProtocolError -Message '*says it is 153 bytes long but is 6*'
            $server.WaitForExit(30000) | Should -BeTrue
        }
        finally { if (-not $server.HasExited) { $server.Kill() } }
    }
}

Describe 'A datapath outlives the PowerShell session that started it' {
    BeforeAll {
        $ns = New-TestNamespace 'outlive'
        $sock = New-TestDpPath '.sock'
        $log = New-TestDpPath '.log'
    }
    AfterAll { Clear-DpTest $sock }

    It 'keeps serving after the pwsh that ran Start-Datapath exited; Get-Datapath finds it, Stop-Datapath stops it' {
        $psd1 = (Resolve-Path (Join-Path $PSScriptRoot '../../NvRedirect.psd1')).Path
        $dotnet = (Get-Process -Id $PID).Path
        $pwshDll = Join-Path $PSHOME 'pwsh.dll'
        $out = & $dotnet $pwshDll -NoProfile -NonInteractive -Command "Import-Module '$psd1'; `$d = Start-Datapath -Namespace '$ns' -ControlSocket '$sock' -LogPath '$log'; `"`$(`$d.Pid) `$PID`"" 2>&1
        $LASTEXITCODE | Should -Be 0 -Because "$out"
        $daemonPid, $childPid = "$out".Trim() -split ' ' | ForEach-Object { [int]$_ }
        Register-TestDp -ProcessId $daemonPid
        Test-Path "/proc/$childPid" | Should -BeFalse -Because 'the pwsh that started it is gone'
        Test-TestDpProcess $daemonPid | Should -BeTrue

        $stat = (Get-Content "/proc/$daemonPid/stat" -Raw)
        $fields = $stat.Substring($stat.LastIndexOf(')') + 2) -split ' '
        [int]$fields[3] | Should -Be $daemonPid -Because 'the daemon leads a session of its own (setsid), away from the terminal of whoever started it'

        $found = @(Get-Datapath | Where-Object ControlSocket -EQ $sock)
        $found.Count | Should -Be 1
        $found[0].Pid | Should -Be $daemonPid
        $found[0].Namespace | Should -BeExactly $ns
        (Get-Datapath $sock).Pid | Should -Be $daemonPid

        Get-Datapath $sock | Stop-Datapath
        Test-TestDpProcess $daemonPid | Should -BeFalse
        Test-Path $sock | Should -BeFalse
        (Get-Content $log -Raw) | Should -BeLike '*SIGTERM received, stopping*'
    }
}

Describe 'After the datapath tests' {
    It 'leaves no nvr-dp process, socket, log or client socket of this run' {
        $stem = Get-TestRunStem
        $daemons = @(Get-ChildItem /proc -Directory -ErrorAction Ignore | Where-Object Name -Match '^\d+$' | ForEach-Object {
                $cmd = Get-Content "/proc/$($_.Name)/cmdline" -Raw -ErrorAction Ignore
                if ($cmd -and $cmd.Contains('nvr-dp.dll') -and $cmd.Contains("/tmp/$stem")) { $_.Name }
            })
        $daemons | Should -BeNullOrEmpty
        @(Get-ChildItem /tmp -Filter "${stem}dp-*" -Name -ErrorAction Ignore) | Should -BeNullOrEmpty
        @(Get-ChildItem /run/nvredirect -Filter "client.$PID.*" -Name -ErrorAction Ignore) | Should -BeNullOrEmpty
        # no pid lock of this run's sockets is left either (their names are the escaped socket paths)
        @(Get-ChildItem /run/nvredirect -Filter "%2Ftmp%2F${stem}dp-*" -Name -ErrorAction Ignore) | Should -BeNullOrEmpty
        @(Get-ChildItem /tmp -Filter 'nvr-dp-pyquery.*' -Name -ErrorAction Ignore) | Should -BeNullOrEmpty
    }
}
