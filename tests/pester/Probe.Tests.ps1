# Test-AgentConnection and the echo server cmdlets (issue 16), against the real kernel: every outcome produced for
# real, over IPv4 and IPv6, between namespaces this file makes (a client, a server that also routes, and the seed
# topology with nvr-dp for Protect-mode drops and resets); and no socket or thread of the module left behind.
#   client  va 10.x.0.1/24 fd77:x::1/64  ----  vb 10.x.0.2/24 fd77:x::2/64  server (forwards; "unreachable" routes)
#   .99 / ::99: a static neighbour with a MAC nobody has (frames leave and vanish: silence);
#   .98 / ::98: on the link but nobody answers ARP/ND (no neighbour); 198.51.100.0/24 / 2001:db8:1::/64: no route at
#   the client; 203.0.113.0/24 / 2001:db8:2::/64: routed via the server, whose "unreachable" route answers with ICMP.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force

    # the module's sockets and threads in this process: socket fds (by inode) and threads named nvredirect-*
    function Get-ProcessSocket { @(Get-ChildItem /proc/self/fd -ErrorAction Ignore | ForEach-Object { try { $_.LinkTarget } catch { } } | Where-Object { $_ -like 'socket:*' } | Sort-Object -Unique) }
    function Get-ModuleThread { @(Get-ChildItem /proc/self/task -ErrorAction Ignore | ForEach-Object { Get-Content "$($_.FullName)/comm" -ErrorAction Ignore } | Where-Object { $_ -like 'nvredirect-*' }) }
    function Get-NewSocket([string[]]$Before) { @(Get-ProcessSocket | Where-Object { $_ -notin $Before }) }
}

Describe 'Test-AgentConnection: every outcome, IPv4 and IPv6' {
    BeforeAll {
        $client = New-TestNamespace 'pcli'
        $server = New-TestNamespace 'psrv'
        $n = Get-Random -Minimum 10 -Maximum 250
        $Net = @{
            IPv4 = @{ Client = "10.$n.0.1"; Server = "10.$n.0.2"; Silent = "10.$n.0.99"; NoNeighbour = "10.$n.0.98"; NoRoute = '198.51.100.7'; Refusing = '203.0.113.7' }
            IPv6 = @{ Client = "fd77:$n::1"; Server = "fd77:$n::2"; Silent = "fd77:$n::99"; NoNeighbour = "fd77:$n::98"; NoRoute = '2001:db8:1::7'; Refusing = '2001:db8:2::7' }
        }
        Invoke-Ip -n $client link add va type veth peer name vb netns $server | Out-Null
        Invoke-Ip -n $client addr add "$($Net.IPv4.Client)/24" dev va | Out-Null
        Invoke-Ip -n $client addr add "$($Net.IPv6.Client)/64" dev va nodad | Out-Null
        Invoke-Ip -n $server addr add "$($Net.IPv4.Server)/24" dev vb | Out-Null
        Invoke-Ip -n $server addr add "$($Net.IPv6.Server)/64" dev vb nodad | Out-Null
        foreach ($ns in $client, $server) { Invoke-Ip -n $ns link set lo up | Out-Null }
        Invoke-Ip -n $client link set va up | Out-Null
        Invoke-Ip -n $server link set vb up | Out-Null
        Invoke-Ip -n $client neigh add $Net.IPv4.Silent lladdr 02:00:00:00:99:99 dev va nud permanent | Out-Null
        Invoke-Ip -n $client neigh add $Net.IPv6.Silent lladdr 02:00:00:00:99:99 dev va nud permanent | Out-Null
        Invoke-Ip -n $client route add 203.0.113.0/24 via $Net.IPv4.Server | Out-Null
        Invoke-Ip -n $client -6 route add 2001:db8:2::/64 via $Net.IPv6.Server | Out-Null
        Invoke-Ip -n $server route add unreachable 203.0.113.0/24 | Out-Null
        Invoke-Ip -n $server -6 route add unreachable 2001:db8:2::/64 | Out-Null
        # the server routes (so its "unreachable" routes answer with ICMP), without rate limits on those answers
        & ip netns exec $server sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
        $TcpPort = 8000; $UdpPort = 9000; $ClosedPort = 8001
        $socketsBefore = Get-ProcessSocket
        $echo = Start-AgentEchoServer -Namespace $server -TcpPort $TcpPort -UdpPort $UdpPort
    }
    AfterAll {
        Disconnect-AgentConnection
        Stop-AgentEchoServer
        Remove-TestNamespace
    }

    It 'Start-AgentEchoServer returns the running server, its thread runs, and Get-AgentEchoServer lists it' {
        $echo.Namespace | Should -BeExactly $server
        $echo.TcpPort | Should -Be @($TcpPort)
        $echo.UdpPort | Should -Be @($UdpPort)
        $echo.IsRunning | Should -BeTrue
        "$($echo.Address)" | Should -Be '::' -Because 'it listens on every address of both families'
        (Get-AgentEchoServer -Id $echo.Id).Id | Should -Be $echo.Id
        $line = 'Stop-AgentEchoServer -Id '
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Contain "$($echo.Id)"
        Get-ModuleThread | Should -Contain 'nvredirect-echo'
        # the kernel's own view: ss in the server namespace lists the listener
        (& ip netns exec $server ss -Htln "sport = :$TcpPort") | Should -Not -BeNullOrEmpty
    }

    It '<Family>: TCP to a listener is Connected, with the source, round trip and the echo' -ForEach @(@{ Family = 'IPv4' }, @{ Family = 'IPv6' }) {
        $a = $Net[$Family]
        $r = Test-AgentConnection $a.Server -Port $TcpPort -Namespace $client -Echo
        $r.Outcome | Should -Be 'Connected'
        $r.Succeeded | Should -BeTrue
        $r.Protocol | Should -Be 'TCP'
        "$($r.Source)" | Should -Be $a.Client
        $r.SourcePort | Should -BeGreaterThan 0
        "$($r.Destination)" | Should -Be $a.Server
        $r.Port | Should -Be $TcpPort
        $r.RoundTripMilliseconds | Should -BeGreaterThan 0
        $r.ResetAfterOpen | Should -BeFalse
        $r.Namespace | Should -BeExactly $client
        # the server saw this very connection (its peer port) accepted and closed
        Wait-TestCondition { @($echo.Events | Where-Object { $_.Kind -eq 'Close' -and $_.PeerPort -eq $r.SourcePort }).Count -eq 1 } -TimeoutSeconds 5 | Should -BeTrue
        @($echo.Events | Where-Object { $_.Kind -eq 'Accept' -and $_.PeerPort -eq $r.SourcePort -and "$($_.Peer)" -eq $a.Client }).Count | Should -Be 1
    }

    It '<Family>: TCP to a closed port is Refused (ECONNREFUSED)' -ForEach @(@{ Family = 'IPv4' }, @{ Family = 'IPv6' }) {
        $r = Test-AgentConnection $Net[$Family].Server -Port $ClosedPort -Namespace $client
        $r.Outcome | Should -Be 'Refused'
        $r.Detail | Should -Be 'ECONNREFUSED'
        $r.Succeeded | Should -BeFalse
    }

    It '<Family>: UDP to the echo is Answered, to a closed port Refused (ICMP port unreachable)' -ForEach @(@{ Family = 'IPv4' }, @{ Family = 'IPv6' }) {
        $a = $Net[$Family]
        $r = Test-AgentConnection $a.Server -Port $UdpPort -Protocol UDP -Namespace $client -Echo
        $r.Outcome | Should -Be 'Answered'
        $r.RoundTripMilliseconds | Should -BeGreaterThan 0
        @($echo.Events | Where-Object { $_.Kind -eq 'Datagram' -and $_.PeerPort -eq $r.SourcePort }).Count | Should -Be 1
        (Test-AgentConnection $a.Server -Port $UdpPort -Protocol UDP -Namespace $client).Outcome | Should -Be 'Answered' -Because 'any answer counts without -Echo'
        $refused = Test-AgentConnection $a.Server -Port ($UdpPort + 1) -Protocol UDP -Namespace $client
        $refused.Outcome | Should -Be 'Refused'
        $refused.Detail | Should -Be 'ECONNREFUSED'
    }

    It '<Family>: ICMP echo is Answered, -Count sends several, -Quiet is a boolean' -ForEach @(@{ Family = 'IPv4' }, @{ Family = 'IPv6' }) {
        $a = $Net[$Family]
        $r = @(Test-AgentConnection $a.Server -Namespace $client -Count 3)
        $r.Count | Should -Be 3
        $r.Outcome | Should -Be @('Answered', 'Answered', 'Answered')
        $r.Sequence | Should -Be @(1, 2, 3)
        $r[0].Protocol | Should -Be 'ICMP'
        "$($r[0].Source)" | Should -Be $a.Client
        Test-AgentConnection $a.Server -Namespace $client -Quiet | Should -BeExactly $true
        Test-AgentConnection $a.Silent -Namespace $client -Quiet -TimeoutSeconds 0.3 | Should -BeExactly $false
    }

    It '<Family>: a silent drop is TimedOut for TCP, UDP with -Echo and ICMP, and NotRefused for UDP without' -ForEach @(@{ Family = 'IPv4' }, @{ Family = 'IPv6' }) {
        $a = $Net[$Family]
        $tcp = Test-AgentConnection $a.Silent -Port $TcpPort -Namespace $client -TimeoutSeconds 0.5
        $tcp.Outcome | Should -Be 'TimedOut'
        $tcp.RoundTripMilliseconds | Should -BeNullOrEmpty
        (Test-AgentConnection $a.Silent -Port $UdpPort -Protocol UDP -Echo -Namespace $client -TimeoutSeconds 0.5).Outcome | Should -Be 'TimedOut'
        $udp = Test-AgentConnection $a.Silent -Port $UdpPort -Protocol UDP -Namespace $client -TimeoutSeconds 0.5
        $udp.Outcome | Should -Be 'NotRefused'
        $udp.Succeeded | Should -BeTrue
        (Test-AgentConnection $a.Silent -Namespace $client -TimeoutSeconds 0.5).Outcome | Should -Be 'TimedOut'
    }

    It '<Family>: no route is Unreachable at once (ENETUNREACH), for TCP, UDP and ICMP' -ForEach @(@{ Family = 'IPv4' }, @{ Family = 'IPv6' }) {
        $a = $Net[$Family]
        foreach ($p in @(@{ Port = $TcpPort }, @{ Port = $UdpPort; Protocol = 'UDP' }, @{})) {
            $r = Test-AgentConnection $a.NoRoute -Namespace $client @p
            $r.Outcome | Should -Be 'Unreachable'
            $r.Detail | Should -Be 'ENETUNREACH'
        }
    }

    It '<Family>: an ICMP destination unreachable from a router is Unreachable, for TCP, UDP and ICMP' -ForEach @(@{ Family = 'IPv4' }, @{ Family = 'IPv6' }) {
        $a = $Net[$Family]
        $tcp = Test-AgentConnection $a.Refusing -Port $TcpPort -Namespace $client
        $tcp.Outcome | Should -Be 'Unreachable'
        $tcp.Detail | Should -BeIn @('EHOSTUNREACH', 'ENETUNREACH')
        (Test-AgentConnection $a.Refusing -Port $UdpPort -Protocol UDP -Namespace $client).Outcome | Should -Be 'Unreachable'
        $icmp = Test-AgentConnection $a.Refusing -Namespace $client
        $icmp.Outcome | Should -Be 'Unreachable'
        $icmp.Detail | Should -BeLike "*destination unreachable*from $($a.Server)"
    }

    It '<Family>: an address on the link that no neighbour answers is Unreachable (EHOSTUNREACH)' -ForEach @(@{ Family = 'IPv4' }, @{ Family = 'IPv6' }) {
        $r = Test-AgentConnection $Net[$Family].NoNeighbour -Port $TcpPort -Namespace $client -TimeoutSeconds 10
        $r.Outcome | Should -Be 'Unreachable'
        $r.Detail | Should -Be 'EHOSTUNREACH'
    }

    It '<Family>: a held connection answers, then is Reset (ResetAfterOpen) when the server aborts it' -ForEach @(@{ Family = 'IPv4' }, @{ Family = 'IPv6' }) {
        $a = $Net[$Family]
        $own = Start-AgentEchoServer -Namespace $server -TcpPort 0
        try {
            $held = Test-AgentConnection $a.Server -Port $own.TcpPort[0] -Namespace $client -Echo -KeepOpen
            $held.Outcome | Should -Be 'Connected'
            $held.Connection.IsOpen | Should -BeTrue
            $held.Connection.RemotePort | Should -Be $own.TcpPort[0]
            $again = $held | Test-AgentConnection -Echo
            $again.Outcome | Should -Be 'Connected'
            $again.SourcePort | Should -Be $held.SourcePort -Because 'the same connection answered again'
            $own.Accepted | Should -Be 1
            $own | Stop-AgentEchoServer -Abort
            $reset = $held.Connection | Test-AgentConnection -Echo
            $reset.Outcome | Should -Be 'Reset'
            $reset.ResetAfterOpen | Should -BeTrue
            $reset.Detail | Should -BeIn @('ECONNRESET', 'EPIPE')
            $held.Connection.IsOpen | Should -BeFalse -Because 'a reset connection is closed at once'
        }
        finally { $own | Stop-AgentEchoServer; Disconnect-AgentConnection }
    }

    It 'a held connection closed by the server (FIN) is Closed; Disconnect-AgentConnection closes the others' {
        $own = Start-AgentEchoServer -Namespace $server -TcpPort 0
        $closing = Test-AgentConnection $Net.IPv4.Server -Port $own.TcpPort[0] -Namespace $client -Echo -KeepOpen
        $kept = Test-AgentConnection $Net.IPv4.Server -Port $TcpPort -Namespace $client -Echo -KeepOpen
        $own | Stop-AgentEchoServer
        ($closing | Test-AgentConnection -Echo).Outcome | Should -Be 'Closed'
        $kept.Connection.IsOpen | Should -BeTrue
        $kept | Disconnect-AgentConnection -WhatIf
        $kept.Connection.IsOpen | Should -BeTrue
        $kept | Disconnect-AgentConnection
        $kept.Connection.IsOpen | Should -BeFalse
        Wait-TestCondition { @($echo.Events | Where-Object { $_.Kind -eq 'Close' -and $_.PeerPort -eq $kept.SourcePort }).Count -eq 1 } -TimeoutSeconds 5 | Should -BeTrue
        $err = $null
        $kept | Test-AgentConnection -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        "$($err[0])" | Should -BeLike '*closed already*'
    }

    It '-Source sends from the given address; -NetnsPath and -ProcessId name the same namespace' {
        Invoke-Ip -n $client addr add "10.$n.0.5/24" dev va | Out-Null
        $r = Test-AgentConnection $Net.IPv4.Server -Port $TcpPort -Namespace $client -Source "10.$n.0.5"
        "$($r.Source)" | Should -Be "10.$n.0.5"
        (Test-AgentConnection $Net.IPv4.Server -Port $TcpPort -NetnsPath "/run/netns/$client").Outcome | Should -Be 'Connected'
        $p = Start-TestProcess $client 'exec sleep 60'
        try {
            # `ip netns exec` enters the namespace after it starts: wait until the process is in it
            $inode = (stat -L -c %i "/run/netns/$client")
            Wait-TestCondition { (readlink "/proc/$($p.Id)/ns/net") -eq "net:[$inode]" } -TimeoutSeconds 5 | Should -BeTrue
            $byPid = Test-AgentConnection $Net.IPv4.Server -Port $TcpPort -ProcessId $p.Id
            $byPid.Outcome | Should -Be 'Connected'
            $byPid.Namespace | Should -Be "pid $($p.Id)"
            "$($byPid.Source)" | Should -Be $Net.IPv4.Client -Because 'the probe ran inside the process''s namespace'
        }
        finally { Stop-TestProcess $p }
    }

    It 'bad input is a clear error: <What>' -ForEach @(
        @{ What = 'a missing namespace'; Call = { Test-AgentConnection 10.0.0.1 -Namespace 'nvt-no-such-ns' }; Id = 'TestAgentConnectionNamespaceNotFound'; Category = 'ObjectNotFound'; Message = "*'nvt-no-such-ns' does not exist*" }
        @{ What = 'two targets'; Call = { Test-AgentConnection 10.0.0.1 -Namespace $client -ProcessId 1 }; Id = 'TestAgentConnectionInvalidArgument'; Category = 'InvalidArgument'; Message = '*-Namespace and -ProcessId*' }
        @{ What = 'a port for ICMP'; Call = { Test-AgentConnection 10.0.0.1 -Port 80 -Protocol ICMP -Namespace $client }; Id = 'TestAgentConnectionInvalidArgument'; Category = 'InvalidArgument'; Message = '*no port*' }
        @{ What = 'UDP without a port'; Call = { Test-AgentConnection 10.0.0.1 -Protocol UDP -Namespace $client }; Id = 'TestAgentConnectionInvalidArgument'; Category = 'InvalidArgument'; Message = '*needs a port*' }
        @{ What = 'a source that is not local'; Call = { Test-AgentConnection $Net.IPv4.Server -Port 80 -Source 192.0.2.1 -Namespace $client }; Id = 'TestAgentConnectionInvalidArgument'; Category = 'InvalidArgument'; Message = '*192.0.2.1 is not an address of*' }
        @{ What = 'a source of another family'; Call = { Test-AgentConnection $Net.IPv4.Server -Port 80 -Source $Net.IPv6.Client -Namespace $client }; Id = 'TestAgentConnectionInvalidArgument'; Category = 'InvalidArgument'; Message = '*different families*' }
        @{ What = 'a file that is no namespace'; Call = { Test-AgentConnection 10.0.0.1 -NetnsPath /etc/hostname }; Id = 'TestAgentConnectionInvalidArgument'; Category = 'InvalidArgument'; Message = '*not a network namespace*' }
        @{ What = 'a process that does not exist'; Call = { Test-AgentConnection 10.0.0.1 -ProcessId 999999999 }; Id = 'TestAgentConnectionNamespaceNotFound'; Category = 'ObjectNotFound'; Message = '*no process 999999999*' }
        @{ What = 'a container that does not exist'; Call = { Test-AgentConnection 10.0.0.1 -Container 'nvt-no-such-container' }; Id = 'TestAgentConnectionNamespaceNotFound'; Category = 'ObjectNotFound'; Message = "*'nvt-no-such-container'*" }
    ) {
        $ErrorActionPreference = 'Continue'
        $out = & $Call 2>$null
        $out | Should -BeNullOrEmpty
        Assert-AgentError (Get-ErrorRecord $Call) -Id "$Id,NvRedirect.Cmdlets.TestAgentConnectionCommand" -Category $Category -Message $Message
    }

    It 'Start-AgentEchoServer on a port in use fails with StartAgentEchoServerPortInUse and leaves nothing listening' {
        $sockets = Get-ProcessSocket
        $err = $null
        $out = Start-AgentEchoServer -Namespace $server -TcpPort 7777, $TcpPort -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'StartAgentEchoServerPortInUse,NvRedirect.Cmdlets.StartAgentEchoServerCommand' -Category ResourceExists -Message "*TCP port $TcpPort is in use*"
        (& ip netns exec $server ss -Htln 'sport = :7777') | Should -BeNullOrEmpty -Because 'the port bound before the failure was closed again'
        Get-NewSocket $sockets | Should -BeNullOrEmpty
        @(Get-AgentEchoServer).Count | Should -Be 1
        Start-AgentEchoServer -Namespace $server -TcpPort 7778 -WhatIf | Should -BeNullOrEmpty
        (& ip netns exec $server ss -Htln 'sport = :7778') | Should -BeNullOrEmpty
        $err = $null
        Stop-AgentEchoServer -Id 424242 -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'StopAgentEchoServerNotFound,NvRedirect.Cmdlets.StopAgentEchoServerCommand' -Category ObjectNotFound -Message '*no running echo server 424242*'
    }

    It 'Stop-AgentEchoServer ends its thread and closes every socket: nothing of the module is left in the process' {
        $held = Test-AgentConnection $Net.IPv6.Server -Port $TcpPort -Namespace $client -Echo -KeepOpen
        $echo.OpenConnections | Should -Be 1
        Get-NewSocket $socketsBefore | Should -Not -BeNullOrEmpty -Because 'the server and the held connection own sockets now'
        $stopped = $echo | Stop-AgentEchoServer -PassThru
        $stopped.IsRunning | Should -BeFalse
        $held | Disconnect-AgentConnection
        @(Get-AgentEchoServer) | Should -BeNullOrEmpty
        Get-ModuleThread | Should -BeNullOrEmpty
        Get-NewSocket $socketsBefore | Should -BeNullOrEmpty
        @(& ip netns exec $server ss -Htan | Where-Object { $_ -notlike 'TIME-WAIT*' }) | Should -BeNullOrEmpty -Because 'no listener and no connection remains in the server namespace'
    }
}

Describe 'Test-AgentConnection through nvr-dp: a Protect-mode drop and a reset of an open connection' {
    BeforeAll {
        $SeedMac = '1a:27:f3:87:3a:27'
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
        $sock = New-TestDpPath '.sock'
        $null = Start-TestDp $topo.AgentNamespace $sock (New-TestDpPath '.log')
        Add-DpServicePort vth -ControlSocket $sock
        Get-WorkloadInterception $topo.AgentNamespace | Add-DpMac -Tap $false -ControlSocket $sock
        $echo = Start-AgentEchoServer -Namespace $topo.ContainerNamespace -TcpPort 5001, 5002 -UdpPort 6001
        $socketsBefore = $null
    }
    AfterAll {
        Disconnect-AgentConnection
        Stop-AgentEchoServer
        Stop-TestDp $sock
        Remove-TestNamespace
    }

    It 'Discover passes TCP, UDP and ICMP; Protect resets the held connection and drops new ones (TimedOut)' {
        Set-DpWorkloadMode -Mac $SeedMac -Mode Discover -ControlSocket $sock
        Wait-TestCondition { Test-AgentConnection 10.10.10.88 -Namespace $topo.HostNamespace -Quiet -TimeoutSeconds 0.5 } -TimeoutSeconds 15 | Should -BeTrue
        $held = Test-AgentConnection 10.10.10.88 -Port 5001 -Namespace $topo.HostNamespace -Echo -KeepOpen
        $held.Outcome | Should -Be 'Connected'
        (Test-AgentConnection 10.10.10.88 -Port 6001 -Protocol UDP -Echo -Namespace $topo.HostNamespace).Outcome | Should -Be 'Answered'

        Set-DpWorkloadMode -Mac $SeedMac -Mode Protect -ControlSocket $sock
        $reset = $held | Test-AgentConnection -Echo
        $reset.Outcome | Should -Be 'Reset'
        $reset.ResetAfterOpen | Should -BeTrue
        Wait-TestCondition { @($echo.Events | Where-Object { $_.Kind -eq 'Reset' -and $_.PeerPort -eq $held.SourcePort }).Count -eq 1 } -TimeoutSeconds 5 |
            Should -BeTrue -Because 'nvr-dp resets both ways: the server saw the reset too'

        $drop = Test-AgentConnection 10.10.10.88 -Port 5002 -Namespace $topo.HostNamespace -TimeoutSeconds 1
        $drop.Outcome | Should -Be 'TimedOut'
        (Test-AgentConnection 10.10.10.88 -Port 6001 -Protocol UDP -Echo -Namespace $topo.HostNamespace -TimeoutSeconds 1).Outcome | Should -Be 'TimedOut'
        (Test-AgentConnection 10.10.10.88 -Namespace $topo.HostNamespace -TimeoutSeconds 1).Outcome | Should -Be 'TimedOut'
        $blocked = @(Get-DpConnection -Blocked -Mac $SeedMac -ControlSocket $sock | Where-Object { $_.ServerPort -eq 5002 -and "$($_.Client)" -eq '10.10.10.66' })
        $blocked.Count | Should -Be 1 -Because 'the datapath lists the dropped connection'
        $blocked[0].DroppedPackets | Should -BeGreaterThan 0
    }
}

Describe 'Removing the module' {
    AfterAll {
        Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
        Remove-TestNamespace
    }

    It 'stops every echo server and closes every kept connection: no thread or socket of the module remains' {
        $ns = New-TestNamespace 'prm'
        Invoke-Ip -n $ns link set lo up | Out-Null
        $before = Get-ProcessSocket
        $server = Start-AgentEchoServer -Namespace $ns -TcpPort 0 -Address 127.0.0.1
        $kept = Test-AgentConnection 127.0.0.1 -Port $server.TcpPort[0] -Namespace $ns -Echo -KeepOpen
        $kept.Outcome | Should -Be 'Connected'
        Get-ModuleThread | Should -Contain 'nvredirect-echo'
        Get-NewSocket $before | Should -Not -BeNullOrEmpty

        Remove-Module NvRedirect
        $server.IsRunning | Should -BeFalse
        $kept.Connection.IsOpen | Should -BeFalse
        Get-ModuleThread | Should -BeNullOrEmpty
        Get-NewSocket $before | Should -BeNullOrEmpty
        @(& ip netns exec $ns ss -Htan | Where-Object { $_ -notlike 'TIME-WAIT*' }) | Should -BeNullOrEmpty
    }
}
