# Protecting a running container (issue 11) against containers made WITHOUT the module, the way a runtime makes them:
# a process from `unshare --net` (no /run/netns name of its own), its eth0 a veth plugged into a bridge in a host-side
# namespace, IPv4 and IPv6 addresses (a labelled secondary one, a custom broadcast, one with finite lifetimes), a
# default route and extra routes (metric, source, another table, IPv6), permanent neighbours of both families, a
# changed MTU and offload, and a second interface. The take-over and the give-back are judged by iproute2 and ethtool
# inside the container (`ip -d -j link`, `ip -j addr`, `ip -j route show table all` of both families, `ip -j neigh`,
# `ethtool -k`), traffic by its outcome and by what nvr-dp reports. Every name is this run's; AfterAll ends the
# container processes (by pid), the datapath and the namespaces, also on failure.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force

    $script:Containers = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()
    $Net = '172.31.61'; $Net6 = 'fd00:61:'; $P2p = '192.168.161'

    function Invoke-InContainer([int]$ProcessId) {
        $out = & nsenter -t $ProcessId -n @args 2>&1
        if ($LASTEXITCODE -ne 0) { throw "nsenter -t $ProcessId -n $($args -join ' ') failed: $out" }
        $out
    }

    # A container as a runtime makes it: `unshare --net sleep`, eth0 a veth whose peer is a port of br0 in the host-side
    # namespace, addresses, routes, neighbours; with -Second an eth1 to the host side too. Returns Pid, Process, Mac.
    function New-TestContainer([string]$HostNs, [int]$Octet, [switch]$Second) {
        $p = [System.Diagnostics.Process]::Start('unshare', [string[]]@('--net', 'sleep', '3600'))
        $script:Containers.Add($p)
        $own = (Get-Item /proc/self/ns/net).LinkTarget
        Wait-TestCondition { (Get-Item "/proc/$($p.Id)/ns/net" -ErrorAction Ignore).LinkTarget -ne $own } -TimeoutSeconds 10 | Should -BeTrue
        $id = $p.Id
        $port = New-TestLinkName "p$Octet"
        Invoke-Ip -n $HostNs link add $port mtu 1400 type veth peer name eth0 netns $id | Out-Null
        Invoke-Ip -n $HostNs link set $port master br0 up | Out-Null
        Invoke-InContainer $id ip link set lo up | Out-Null
        Invoke-InContainer $id ip link set eth0 mtu 1400 txqueuelen 500 | Out-Null
        Invoke-InContainer $id ip addr add "$Net.$Octet/24" brd "$Net.255" dev eth0 | Out-Null
        Invoke-InContainer $id ip addr add "$Net.$($Octet + 100)/24" dev eth0 label eth0:1 | Out-Null
        Invoke-InContainer $id ip -6 addr add "${Net6}:$Octet/64" dev eth0 nodad | Out-Null
        Invoke-InContainer $id ip -6 addr add "${Net6}:a$Octet/64" dev eth0 nodad valid_lft 3600 preferred_lft 1800 | Out-Null
        Invoke-InContainer $id ip link set eth0 up | Out-Null
        Invoke-InContainer $id ip route add default via "$Net.1" | Out-Null
        Invoke-InContainer $id ip route add 198.51.100.0/24 via "$Net.1" metric 50 src "$Net.$Octet" | Out-Null
        Invoke-InContainer $id ip route add 203.0.113.0/24 via "$Net.1" table 100 | Out-Null
        Invoke-InContainer $id ip -6 route add default via "${Net6}:1" | Out-Null
        Invoke-InContainer $id ip -6 route add 2001:db8:61::/64 via "${Net6}:1" metric 300 | Out-Null
        Invoke-InContainer $id ip neigh add "$Net.99" lladdr 02:00:00:00:61:99 dev eth0 nud permanent | Out-Null
        Invoke-InContainer $id ip -6 neigh add "${Net6}:99" lladdr 02:00:00:00:61:99 dev eth0 nud permanent | Out-Null
        Invoke-InContainer $id ethtool -K eth0 gro on | Out-Null
        if ($Second) {
            $p2 = New-TestLinkName "q$Octet"
            Invoke-Ip -n $HostNs link add $p2 type veth peer name eth1 netns $id | Out-Null
            Invoke-Ip -n $HostNs addr add "$P2p.1/24" dev $p2 | Out-Null
            Invoke-Ip -n $HostNs link set $p2 up | Out-Null
            Invoke-InContainer $id ip addr add "$P2p.$Octet/24" dev eth1 | Out-Null
            Invoke-InContainer $id ip link set eth1 up | Out-Null
        }
        $mac = (Invoke-InContainer $id ip -j link show eth0 | ConvertFrom-Json)[0].address
        [pscustomobject]@{ Pid = $id; Process = $p; Mac = $mac; HostPort = $port; Ip = "$Net.$Octet"; Ip6 = "${Net6}:$Octet"; Inode = [uint64]((Get-Item "/proc/$id/ns/net").LinkTarget -replace '\D', '') }
    }

    # What iproute2 and ethtool say inside the container, once DAD and link state settled. Finite address lifetimes
    # count down: they are taken out (into Lifetimes) and compared apart.
    function Get-ContainerState([int]$ProcessId) {
        $settled = Wait-TestCondition {
            $a = Invoke-InContainer $ProcessId ip -j addr | Out-String
            $l = Invoke-InContainer $ProcessId ip -j link | ConvertFrom-Json
            -not $a.Contains('tentative') -and -not @($l | Where-Object { $_.flags -contains 'UP' -and $_.ifname -ne 'lo' -and $_.operstate -ne 'UP' })
        } -TimeoutSeconds 15
        $settled | Should -BeTrue -Because 'addresses finish DAD and links come up'
        $lifetimes = [System.Collections.Generic.List[string]]::new()
        $addr = Invoke-InContainer $ProcessId ip -j addr | ConvertFrom-Json
        foreach ($l in $addr) {
            foreach ($i in $l.addr_info) {
                foreach ($k in 'valid_life_time', 'preferred_life_time') {
                    if ($i.$k -ne 4294967295) { $lifetimes.Add("$($i.local) $k $($i.$k)"); $i.$k = 'finite' }
                }
            }
        }
        $names = @(Invoke-InContainer $ProcessId ip -j link | ConvertFrom-Json | Where-Object ifname -ne 'lo' | ForEach-Object ifname)
        [ordered]@{
            Link      = (Invoke-InContainer $ProcessId ip -d -j link | Out-String).Trim()
            Address   = $addr | ConvertTo-Json -Depth 8 -Compress
            Route4    = (Invoke-InContainer $ProcessId ip -4 -j route show table all | Out-String).Trim()
            Route6    = (Invoke-InContainer $ProcessId ip -6 -j route show table all | Out-String).Trim()
            Neighbour = (Invoke-InContainer $ProcessId ip -j neigh show nud permanent | Out-String).Trim()
            Offload   = ($names | ForEach-Object { Invoke-InContainer $ProcessId ethtool -k $_ } | Out-String).Trim()
            Lifetimes = $lifetimes
        }
    }

    # Asserts that two states are identical (finite lifetimes: the same addresses, counting down by at most the time between).
    # -RouteSet compares the IPv6 routes as a set: when only some interfaces were taken over, the kernel lists routes with
    # the same prefix and metric on different links (fe80::/64) in the order the links came up.
    function Assert-SameState($Before, $After, [string[]]$Skip = @(), [switch]$RouteSet) {
        foreach ($k in 'Link', 'Address', 'Route4', 'Route6', 'Neighbour', 'Offload') {
            if ($k -in $Skip) { continue }
            if ($k -eq 'Route6' -and $RouteSet) {
                $set = { param($j) (@($j | ConvertFrom-Json) | ForEach-Object { $_ | ConvertTo-Json -Compress -Depth 5 } | Sort-Object) -join "`n" }
                & $set $After[$k] | Should -BeExactly (& $set $Before[$k]) -Because 'the IPv6 routes inside the container must be the same set'
                continue
            }
            $After[$k] | Should -BeExactly $Before[$k] -Because "$k inside the container must read as before"
        }
        $After.Lifetimes.Count | Should -Be $Before.Lifetimes.Count
        for ($i = 0; $i -lt $Before.Lifetimes.Count; $i++) {
            $b = $Before.Lifetimes[$i] -split ' '; $a = $After.Lifetimes[$i] -split ' '
            "$($a[0]) $($a[1])" | Should -Be "$($b[0]) $($b[1])"
            [int]$a[2] | Should -BeLessOrEqual ([int]$b[2])
            [int]$a[2] | Should -BeGreaterThan ([int]$b[2] - 120) -Because 'the remaining lifetime is carried over, not reset or lost'
        }
    }

    # The link (or address) JSON without the peer fields (which name the inner port while the container is taken over).
    function Get-LinkWithoutPeer([string]$Json) {
        $links = $Json | ConvertFrom-Json
        foreach ($l in $links) { foreach ($k in 'link_index', 'link_netnsid') { $l.PSObject.Properties.Remove($k) } }
        $links | ConvertTo-Json -Depth 8 -Compress
    }

    function Clear-ContainerTest {
        Stop-TestTraffic
        Stop-TestDp @($sock)
        foreach ($p in @($script:Containers)) {
            try { if (-not $p.HasExited) { $p.Kill() } } catch [System.InvalidOperationException] { }
            [void]$p.WaitForExit(10000)
        }
        $script:Containers.Clear()
        Remove-TestNamespace
    }
}
AfterAll { if (Get-Command Clear-ContainerTest -ErrorAction Ignore) { Clear-ContainerTest } }

Describe 'Protecting a container made as a runtime makes it (unshare --net, a bridge, IPv4 and IPv6)' {
    BeforeAll {
        $hostNs = New-TestNamespace 'chost'
        Invoke-Ip -n $hostNs link set lo up | Out-Null
        Invoke-Ip -n $hostNs link add br0 mtu 1400 type bridge | Out-Null
        Invoke-Ip -n $hostNs addr add "$Net.1/24" dev br0 | Out-Null
        Invoke-Ip -n $hostNs -6 addr add "${Net6}:1/64" dev br0 nodad | Out-Null
        Invoke-Ip -n $hostNs link set br0 up | Out-Null
        $a = New-TestContainer $hostNs 10 -Second
        $b = New-TestContainer $hostNs 11
        # names for the traffic helpers (ip netns exec): a bind mount of each container's namespace, as podman makes one
        $aNs = New-TestNamespaceName 'ca'; Invoke-Ip netns attach $aNs $a.Pid | Out-Null
        $bNs = New-TestNamespaceName 'cb'; Invoke-Ip netns attach $bNs $b.Pid | Out-Null
        $enf = New-TestNamespaceName 'enf'
        $sock = New-TestDpPath '.sock'
        $Port = 5101
        $hostServer = Start-TestEchoServer $hostNs -TcpPort $Port
        $bServer = Start-TestEchoServer $bNs -TcpPort $Port
        $beforeA = Get-ContainerState $a.Pid
        $beforeB = Get-ContainerState $b.Pid
        $st = @{}
    }

    It 'takes over every interface by -ProcessId in one call, starting the enforcer and its datapath; inside, everything reads as before but the veth peer' {
        Test-Path "/run/netns/$enf" | Should -BeFalse
        $r = @(Add-WorkloadInterception -ProcessId $a.Pid -Namespace $enf -ControlSocket $sock -Mode Discover)
        $dp = Get-Datapath -ControlSocket $sock
        Register-TestDp -ProcessId $dp.Pid
        $r.Count | Should -Be 2
        ($r.Interface | Sort-Object) -join ',' | Should -Be 'eth0,eth1'
        foreach ($i in $r) {
            $i.ProcessId | Should -Be $a.Pid
            $i.NetnsInode | Should -Be $a.Inode
            $i.NetnsPath | Should -Be "/proc/$($a.Pid)/ns/net"
            $i.Mode | Should -Be 'Discover'
            $i.ControlSocket | Should -Be $sock
            $i.IsOrphaned | Should -BeFalse
            $i.Rules.Count | Should -Be 8
            $i.EntryLink | Should -Match '^nvx[0-9a-f]{10}$'
            $i.InnerLink | Should -Be ($i.EntryLink -replace '^nvx', 'nvi')
        }
        $eth0 = $r | Where-Object Interface -EQ eth0
        $eth0.WorkloadMac | Should -Be $a.Mac
        $st.Eth0 = $eth0
        # the enforcer: created with its monitor pair; the original eth0 is the entry port (same MAC, marked), the inner port its replacement's peer
        $links = Get-IpLink $enf
        @($links.ifname) | Should -Contain 'vbr'
        @($links.ifname) | Should -Contain 'vth'
        $entry = $links | Where-Object ifname -EQ $eth0.EntryLink
        $entry.address | Should -Be $a.Mac
        (& ip -n $enf -d -j link show $eth0.EntryLink | ConvertFrom-Json)[0].ifalias | Should -BeLike "nvredirect v1 if=eth0 ix=*"
        $dp.Namespace | Should -Be $enf
        $dp.ServicePorts | Should -Contain 'vth'
        ($dp.Workloads | Where-Object Mac -EQ $a.Mac).Tap | Should -BeFalse -Because 'the workload is registered inline'
        # inside: same names, ifindexes, MACs, MTU, txqueuelen, addresses, routes, neighbours, offloads; only the peer differs
        $during = Get-ContainerState $a.Pid
        Assert-SameState $beforeA $during -Skip Link, Address
        Get-LinkWithoutPeer $during.Link | Should -BeExactly (Get-LinkWithoutPeer $beforeA.Link)
        Get-LinkWithoutPeer $during.Address | Should -BeExactly (Get-LinkWithoutPeer $beforeA.Address)
        $during.Link | Should -Not -BeExactly $beforeA.Link -Because 'eth0''s peer is now the inner port in the enforcer'
    }

    It 'carries host-to-container and container-to-host traffic through nvr-dp, and Discover learns it' {
        Test-IcmpEcho $hostNs $a.Ip -Count 2 | Should -BeTrue
        Test-IcmpEcho $aNs "$Net.1" -Count 2 | Should -BeTrue
        (Invoke-TestTcpConnection $aNs "$Net.1" $Port).Result | Should -Be 'connected'
        Test-IcmpEcho $hostNs "${Net6}:10" -Count 2 | Should -BeTrue -Because 'IPv6 is steered through nvr-dp too'
        Test-IcmpEcho $hostNs "$P2p.10" -Count 2 | Should -BeTrue -Because 'the second interface is taken over too'
        $learned = @(Get-DpConnection -Mac $a.Mac -Learned -ControlSocket $sock)
        @($learned | Where-Object { $_.ProtocolName -eq 'ICMP' -and "$($_.Client)" -eq "$Net.1" -and "$($_.Server)" -eq $a.Ip }).Count | Should -Be 1
        @($learned | Where-Object { $_.ProtocolName -eq 'TCP' -and "$($_.Server)" -eq "$Net.1" -and $_.ServerPort -eq $Port -and "$($_.Direction)" -eq 'Egress' }).Count | Should -Be 1
        @($learned | Where-Object { $_.ProtocolName -eq 'ICMPv6' -and "$($_.Server)" -eq "${Net6}:10" }).Count | Should -Be 1 -Because 'Discover learns ping6 too'
        (Get-DpConnection -Mac $a.Mac -ControlSocket $sock | Measure-Object -Property Packets -Sum).Sum | Should -BeGreaterThan 4
        # the interception binds to the datapath cmdlets by property name (WorkloadMac, ControlSocket)
        $piped = @(Get-WorkloadInterception -ProcessId $a.Pid -Namespace $enf | Where-Object Interface -EQ eth0 | Get-DpConnection -Learned)
        $piped.Count | Should -Be $learned.Count
    }

    It 'taking the same container over again changes nothing (but the mode it asks for)' {
        $links = (Get-IpLink $enf).ifname -join ','
        $again = @(Add-WorkloadInterception -ProcessId $a.Pid -Namespace $enf -ControlSocket $sock -Mode Monitor)
        $again.Count | Should -Be 2
        $again.EntryLink | Should -Contain $st.Eth0.EntryLink
        ($again | Where-Object Interface -EQ eth0).Mode | Should -Be 'Monitor'
        (Get-IpLink $enf).ifname -join ',' | Should -Be $links
        @(Get-WorkloadInterception -Namespace $enf).Count | Should -Be 2
        $null = Add-WorkloadInterception -ProcessId $a.Pid -Namespace $enf -ControlSocket $sock -Mode Discover
        (Get-WorkloadInterception -ProcessId $a.Pid -Namespace $enf).Mode | Should -Be @('Discover', 'Discover')
    }

    It 'takes a second container by -NetnsPath into the same enforcer in another mode, with its own ports and prefs' {
        $r = @(Add-WorkloadInterception -NetnsPath "/run/netns/$bNs" -Namespace $enf -ControlSocket $sock -Mode Discover)
        $r.Count | Should -Be 1
        $r[0].NetnsPath | Should -Be "/run/netns/$bNs"
        $r[0].ProcessId | Should -Be $b.Pid -Because 'the pid is found from the namespace inode'
        $r[0].EntryLink | Should -Not -Be $st.Eth0.EntryLink
        $r[0].ToWorkloadPriority | Should -Not -BeIn @($st.Eth0.ToWorkloadPriority, $st.Eth0.FromWorkloadPriority)
        $st.B = $r[0]
        $st.Held = Open-TestTcpConnection $hostNs $b.Ip $Port
        $st.Held.Result | Should -Be 'connected'
        $all = @(Get-WorkloadInterception -Namespace $enf)
        $all.Count | Should -Be 3
        @($all.Rules).Count | Should -Be 24
    }

    It 'Protect (set through the pipeline from Get-WorkloadInterception) blocks new connections and resets the open one; the other container stays in Discover' {
        $w = Get-WorkloadInterception -NetnsPath "/run/netns/$bNs" -Namespace $enf | Set-DpWorkloadMode -Mode Protect -PassThru
        $w.Mode | Should -Be 'Protect'
        (Get-WorkloadInterception -Namespace $enf | Where-Object WorkloadMac -EQ $b.Mac).Mode | Should -Be 'Protect'
        (Get-WorkloadInterception -Namespace $enf | Where-Object WorkloadMac -EQ $a.Mac).Mode | Should -Be 'Discover'
        Test-IcmpEcho $hostNs $b.Ip -Count 2 | Should -BeFalse
        Test-IcmpEcho $hostNs $b.Ip6 -Count 2 | Should -BeFalse -Because 'ping6 is blocked too'
        (Invoke-TestTcpConnection $hostNs $b.Ip $Port).Result | Should -Be 'timeout'
        $r = Send-TestTcpData $st.Held
        $r.Result | Should -Be 'reset' -Because "the connection opened in Discover is reset on its next packet (got $($r.Result) $($r.Detail))"
        Close-TestTcpConnection $st.Held
        Test-IcmpEcho $hostNs $a.Ip -Count 2 | Should -BeTrue -Because 'container A is still in Discover'
        @(Get-DpConnection -Mac $b.Mac -Blocked -ControlSocket $sock).Count | Should -BeGreaterThan 0
    }

    It 'Get-WorkloadInterception in a fresh pwsh finds both containers from the kernel and the datapath' {
        $pwsh = Join-Path $PSHOME 'pwsh.dll'
        $psd1 = Join-Path $PSScriptRoot '../../NvRedirect.psd1'
        $json = & dotnet $pwsh -NoProfile -NonInteractive -Command "Import-Module '$psd1'; Get-WorkloadInterception -Namespace '$enf' | Select-Object Interface, InterfaceIndex, ProcessId, NetnsInode, WorkloadMac, Mode, ControlSocket, IsOrphaned, Backend | ConvertTo-Json -Compress"
        $LASTEXITCODE | Should -Be 0
        $found = @($json | ConvertFrom-Json)
        $found.Count | Should -Be 3
        $fa = $found | Where-Object { $_.WorkloadMac -eq $a.Mac }
        $fa.Interface | Should -Be 'eth0'
        $fa.InterfaceIndex | Should -Be 2
        $fa.ProcessId | Should -Be $a.Pid
        $fa.Mode | Should -Be 'Discover'
        $fa.ControlSocket | Should -Be $sock
        $fb = $found | Where-Object { $_.WorkloadMac -eq $b.Mac }
        $fb.Mode | Should -Be 'Protect'
        $fb.NetnsInode | Should -Be $b.Inode
        @($found | Where-Object IsOrphaned).Count | Should -Be 0
    }

    It 'gives container A back exactly: ip -d link, addresses, routes of every table, neighbours and ethtool -k as before; the other container untouched' {
        $gone = @(Remove-WorkloadInterception -ProcessId $a.Pid -Namespace $enf -PassThru)
        $gone.Count | Should -Be 2
        Assert-SameState $beforeA (Get-ContainerState $a.Pid)
        @(Get-IpLink $enf | Where-Object { $_.ifname -in $gone.EntryLink -or $_.ifname -in $gone.InnerLink }) | Should -BeNullOrEmpty
        (Get-Datapath -ControlSocket $sock).Workloads.Mac | Should -Not -Contain $a.Mac
        @(Get-WorkloadInterception -Namespace $enf).Count | Should -Be 1
        Test-IcmpEcho $hostNs $a.Ip -Count 2 | Should -BeTrue -Because 'the container is on its bridge again'
        @(Get-DpConnection -Mac $b.Mac -ControlSocket $sock).Count | Should -BeGreaterThan 0 -Because 'B is still registered'
    }

    It 'rolls back after a failure half-way (the inner port''s name taken on purpose) and names the step with the kernel''s message' {
        $inner = [NvRedirect.Core.Intercept.ContainerTakeover]::InnerName($a.Inode, 'eth1')
        Invoke-Ip -n $enf link add $inner type veth peer name (New-TestLinkName 'col') | Out-Null
        try {
            $errors = Get-ErrorRecord { Add-WorkloadInterception -ProcessId $a.Pid -Namespace $enf -ControlSocket $sock -Mode Protect }
            Assert-AgentError $errors -Id 'AddWorkloadInterceptionStepFailed,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category InvalidOperation `
                -Message "*failed at step 'create the replacement veth 'eth1' (ifindex 3)*", '*File exists*', '*Everything done before it was undone*'
            $errors[0].Exception.Step | Should -BeLike "create the replacement veth 'eth1'*"
        }
        finally { Invoke-Ip -n $enf link del $inner | Out-Null }
        Assert-SameState $beforeA (Get-ContainerState $a.Pid)
        (Get-Datapath -ControlSocket $sock).Workloads.Mac | Should -Not -Contain $a.Mac -Because 'eth0 was registered before eth1 failed, and deregistered again'
        @(Get-IpLink $enf | Where-Object { $_.ifalias -like '*if=eth0*' -or $_.ifname -like 'nvx*' } | Where-Object ifname -NE $st.B.EntryLink) | Should -BeNullOrEmpty
        @(Get-TcFilter $enf vbr | Where-Object { "$($_.BpfName)$($_.Cookie)" -like "*$($a.Mac -replace ':', '')*" }) | Should -BeNullOrEmpty
    }

    It 'rolls back the enforcer namespace it made when a later step fails (a datapath that cannot start)' {
        $fresh = New-TestNamespaceName 'enf2'
        $errors = Get-ErrorRecord { Add-WorkloadInterception -ProcessId $a.Pid -Namespace $fresh -ControlSocket "/nonexistent-$(Get-TestRunStem)/dp.sock" }
        Assert-AgentError $errors -Id 'AddWorkloadInterceptionStepFailed,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category InvalidOperation `
            -Message "*failed at step 'find or start the datapath of namespace '$fresh''*", '*Everything done before it was undone*'
        Test-Path "/run/netns/$fresh" | Should -BeFalse -Because 'the enforcer this call created is removed again'
        Assert-SameState $beforeA (Get-ContainerState $a.Pid)
    }

    It 'marks a container that exited while intercepted as orphaned, and Remove cleans up its enforcer port and host-side veth' {
        $hostPort = $b.HostPort
        Get-IpLink $hostNs $hostPort | Should -Not -BeNullOrEmpty
        # the container's last processes end (its sleep, and the echo server the test ran in it) and its name is unpinned
        $b.Process.Kill(); [void]$b.Process.WaitForExit(10000)
        $bServer.Server | Stop-AgentEchoServer
        Invoke-Ip netns del $bNs | Out-Null
        Wait-TestCondition { (Get-WorkloadInterception -Namespace $enf | Where-Object WorkloadMac -EQ $b.Mac).IsOrphaned } -TimeoutSeconds 15 | Should -BeTrue
        $o = Get-WorkloadInterception -Namespace $enf | Where-Object WorkloadMac -EQ $b.Mac
        $o | Format-Table | Out-String -Width 400 | Should -BeLike '*(orphaned)*'
        $o.InnerLink | Should -Be ($o.EntryLink -replace '^nvx', 'nvi')
        $o | Remove-WorkloadInterception
        @(Get-WorkloadInterception -Namespace $enf) | Should -BeNullOrEmpty
        @(Get-IpLink $enf | Where-Object ifname -Like 'nv*') | Should -BeNullOrEmpty
        Wait-TestCondition { -not (Get-IpLink $hostNs | Where-Object ifname -EQ $hostPort) } | Should -BeTrue -Because 'the host-side veth goes with the entry port'
        (Get-Datapath -ControlSocket $sock).Workloads | Should -BeNullOrEmpty
        @(Get-TcFilter $enf vbr) | Should -BeNullOrEmpty
    }

    It 'refuses bad targets with clear errors and changes nothing' {
        $e = Get-ErrorRecord { Add-WorkloadInterception -Container "$(Get-TestRunStem)nosuch" -Namespace $enf -ControlSocket $sock }
        Assert-AgentError $e -Id 'AddWorkloadInterceptionNamespaceNotFound,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category ObjectNotFound -Message '*No container runtime knows*nosuch*'
        $e = Get-ErrorRecord { Add-WorkloadInterception -NetnsPath /etc/hostname -Namespace $enf -ControlSocket $sock }
        Assert-AgentError $e -Id 'AddWorkloadInterceptionInvalidArgument,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category InvalidArgument -Message '*/etc/hostname*is not a network namespace*'
        $e = Get-ErrorRecord { Add-WorkloadInterception -ProcessId 999999999 -Namespace $enf }
        Assert-AgentError $e -Id 'AddWorkloadInterceptionNamespaceNotFound,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category ObjectNotFound -Message '*no process 999999999*'
        $e = Get-ErrorRecord { Remove-WorkloadInterception -ProcessId $a.Pid -Namespace $enf }
        Assert-AgentError $e -Id 'RemoveWorkloadInterceptionNotFound,NvRedirect.Cmdlets.RemoveWorkloadInterceptionCommand' -Category ObjectNotFound -Message '*No interface of process*'
        Assert-SameState $beforeA (Get-ContainerState $a.Pid)
    }

    It 'an established TCP connection survives the take-over and the give-back' {
        $held = Open-TestTcpConnection $aNs "$Net.1" $Port
        $held.Result | Should -Be 'connected'
        try {
            $null = Add-WorkloadInterception -ProcessId $a.Pid -Namespace $enf -ControlSocket $sock -Mode Discover
            (Send-TestTcpData $held).Result | Should -Be 'answered' -Because 'the connection is picked up mid-stream and passes in Discover'
            Remove-WorkloadInterception -ProcessId $a.Pid -Namespace $enf
            (Send-TestTcpData $held).Result | Should -Be 'answered' -Because 'the original interface carries it again'
        }
        finally { Close-TestTcpConnection $held }
        @(Get-WorkloadInterception -Namespace $enf) | Should -BeNullOrEmpty
    }

    It 'binds podman-ps-like objects by property name (Pid) and -WhatIf changes nothing' {
        [pscustomobject]@{ Pid = $a.Pid } | Add-WorkloadInterception -Namespace $enf -ControlSocket $sock -WhatIf
        @(Get-WorkloadInterception -Namespace $enf) | Should -BeNullOrEmpty
        $r = @([pscustomobject]@{ Pid = $a.Pid } | Add-WorkloadInterception -Namespace $enf -ControlSocket $sock -Interface eth0)
        $r.Count | Should -Be 1
        $r[0].Interface | Should -Be 'eth0'
        @(Get-WorkloadInterception -ProcessId $a.Pid -Namespace $enf | Remove-WorkloadInterception -PassThru).Count | Should -Be 1
        Assert-SameState $beforeA (Get-ContainerState $a.Pid) -RouteSet
    }
}
