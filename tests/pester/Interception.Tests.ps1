# The proof of the interception (issue 4) against this machine's kernel, which has cls_bpf but no act_pedit:
# the seed's six rules per workload (and two more for IPv6) steer unicast IPv4 (and IPv6) through vbr/vth with the ucmac, let ARP and broadcast straight
# through, and give the workload its real MAC back on the way out of the monitor pair. A kernel-only bounce on vth
# (every frame received is sent straight back out) stands in for the datapath. Every fact is read back independently:
# frames with Watch-AgentTraffic while iputils ping runs in the background, rules with `tc -j`, offloads with ethtool.
# Namespaces are uniquely named per run; the host side lives in its own namespace, never in the root one.
BeforeAll {
    # these tests are about the six steering rules; the kernel fast path (two more programs, pref 9999) is proved by
    # tests/pester/FastPath.Tests.ps1, so it stays off here
    $PSDefaultParameterValues['Add-WorkloadInterception:FastPath'] = $false
    $PSDefaultParameterValues['New-SeedTopology:FastPath'] = $false
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force

    $SeedMac = '1a:27:f3:87:3a:27'
    $SeedUcMac = '4e:65:75:56:00:b4'
    $OurMarkerHex = '6e76726564697231'   # "nvredir1", the start of every cookie and bpf name of ours

    # Builds the seed topology under unique names; returns the names (and what New-SeedTopology returned).
    function New-TestSeed([string]$Backend = 'Auto', [switch]$NoInterception) {
        $names = @{ Agent = New-TestNamespaceName 'agent'; Container = New-TestNamespaceName 'ctr'; Host = New-TestNamespaceName 'host' }
        $names.Lab = New-SeedTopology -AgentNamespace $names.Agent -ContainerNamespace $names.Container -HostNamespace $names.Host -Backend $Backend -NoInterception:$NoInterception
        $names
    }

    # The frames seen on an interface while a command runs in the background in another namespace.
    function Watch-While([string]$TrafficNamespace, [string]$Traffic, [string]$Namespace, [string]$Interface, [int]$Count = 12, [double]$TimeoutSeconds = 6) {
        $process = Start-TestProcess $TrafficNamespace $Traffic
        try { @(Watch-AgentTraffic $Interface -Namespace $Namespace -Count $Count -TimeoutSeconds $TimeoutSeconds) }
        finally { Stop-TestProcess $process }
    }

    # tc's view of every filter of ours (cookie or bpf name starting with "nvredir1") on the given devices.
    function Get-OurTcFilter([string]$Namespace, [string[]]$LinkName = @('vex', 'vin', 'vbr', 'vth')) {
        foreach ($l in $LinkName) {
            Get-TcFilter $Namespace $l | Where-Object { "$($_.BpfName)".StartsWith('nvredir1:') -or "$($_.Cookie)".StartsWith($OurMarkerHex) }
        }
    }

    # Every filter of the given devices as comparable strings (pref, protocol, kind, bpf name, cookie, target).
    function Get-TcFingerprint([string]$Namespace, [string[]]$LinkName = @('vex', 'vin', 'vbr', 'vth')) {
        foreach ($l in $LinkName) { Get-TcFilter $Namespace $l | ForEach-Object { "$l $($_.Priority) $($_.Protocol) $($_.Kind) $($_.BpfName) $($_.Cookie) $($_.MirredTo)" } }
    }

    # The stand-in for the datapath: every frame vth receives goes straight back out of vth.
    function Add-VthBounce([string]$Namespace) {
        & tc -n $Namespace qdisc add dev vth ingress
        & tc -n $Namespace filter add dev vth parent ffff: pref 1 u32 match u8 0 0 action mirred egress redirect dev vth
        $LASTEXITCODE | Should -Be 0 -Because 'tc must install the bounce on vth'
    }

    function Get-Offload([string]$Namespace, [string]$LinkName) {
        $features = @{}
        foreach ($line in & ip netns exec $Namespace ethtool -k $LinkName) {
            if ($line -match '^([a-z-]+): (on|off)') { $features[$Matches[1]] = $Matches[2] }
        }
        $features
    }
}
AfterAll {
    if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace }
    $PSDefaultParameterValues.Remove('Add-WorkloadInterception:FastPath')
    $PSDefaultParameterValues.Remove('New-SeedTopology:FastPath')
}

Describe 'The interception with the Bpf backend on this kernel (the issue''s proof)' {
    BeforeAll {
        $seed = New-TestSeed -Backend Bpf
        $agent = $seed.Agent; $container = $seed.Container; $hostNs = $seed.Host
        $hostMac = (Get-IpLink $hostNs vex-peer).address
        $pingContainer = 'exec ping -n -i 0.2 10.10.10.88'
    }
    AfterAll { Remove-TestNamespace $agent, $container, $hostNs }

    It 'installs the eight rules (the seed''s six and two for IPv6) as cls_bpf programs and u32 catch-alls, as tc sees them' {
        $seed.Lab.Interception.Backend | Should -BeExactly 'Bpf'
        $seed.Lab.Interception.BackendReason | Should -BeExactly 'requested'
        $rules = @(Get-OurTcFilter $agent)
        $rules.Count | Should -Be 8
        @($rules | ForEach-Object { "$($_.LinkName) $($_.Priority) $($_.Protocol) $($_.Kind)" } | Sort-Object) | Should -Be @(
            'vbr 172 all bpf', 'vbr 5 all bpf', 'vex 10000 ipv6 bpf', 'vex 10001 ip bpf', 'vex 10002 all u32', 'vin 10000 ipv6 bpf', 'vin 10001 ip bpf', 'vin 10002 all u32')
        ($rules | Where-Object { $_.LinkName -eq 'vex' -and $_.Priority -eq 10002 }).MirredTo | Should -BeExactly 'vin'
        ($rules | Where-Object { $_.LinkName -eq 'vin' -and $_.Priority -eq 10002 }).MirredTo | Should -BeExactly 'vex'
    }

    It 'steers a ping to 10.10.10.88: vex shows the container MAC, vbr the ucmac' {
        $vex = @(Watch-While $hostNs $pingContainer $agent vex | Where-Object { $_.Protocol -eq 'ICMP' -and "$($_.DestinationIP)" -eq '10.10.10.88' })
        $vex.Count | Should -BeGreaterThan 0 -Because 'the echo requests enter the agent namespace on vex'
        foreach ($f in $vex) {
            $f.Direction | Should -BeExactly 'In'
            $f.DestinationMac | Should -BeExactly $SeedMac
            $f.SourceMac | Should -BeExactly $hostMac
            "$($f.SourceIP)" | Should -BeExactly '10.10.10.66'
            $f.Summary | Should -BeLike '*echo request*'
        }
        $vbr = @(Watch-While $hostNs $pingContainer $agent vbr | Where-Object { $_.Protocol -eq 'ICMP' -and "$($_.DestinationIP)" -eq '10.10.10.88' })
        $vbr.Count | Should -BeGreaterThan 0 -Because 'pref 10001 on vex mirrors them to vbr'
        foreach ($f in $vbr) {
            $f.Direction | Should -BeExactly 'Out' -Because 'mirred sends them out of vbr towards vth'
            $f.DestinationMac | Should -BeExactly $SeedUcMac
            $f.SourceMac | Should -BeExactly $hostMac
        }
    }

    It 'keeps steered frames from the container: the ping fails and eth0 sees no echo request' {
        Test-IcmpEcho $hostNs 10.10.10.88 | Should -BeFalse
        $eth0 = @(Watch-While $hostNs $pingContainer $container eth0 -Count 10 -TimeoutSeconds 3)
        @($eth0 | Where-Object Protocol -EQ 'ICMP') | Should -BeNullOrEmpty
    }

    It 'lets ARP and broadcast through to the container (pref 10002), both ways' {
        # each round forgets the neighbour, so the next unicast ping broadcasts an ARP request; then an IPv4 broadcast
        $traffic = 'while :; do ip neigh flush dev vex-peer; ping -n -c 1 -W 0.5 10.10.10.88; ping -n -b -c 1 -W 0.5 10.10.10.255; done'
        $eth0 = @(Watch-While $hostNs $traffic $container eth0 -Count 16 -TimeoutSeconds 10)
        $arpRequests = @($eth0 | Where-Object { $_.Protocol -eq 'ARP' -and $_.Direction -eq 'In' -and $_.Summary -like '*Request who-has 10.10.10.88 tell 10.10.10.66*' })
        $arpRequests.Count | Should -BeGreaterThan 0 -Because "the host's ARP requests reach eth0: $($eth0.Summary -join '; ')"
        $arpRequests | ForEach-Object { $_.DestinationMac | Should -BeExactly 'ff:ff:ff:ff:ff:ff'; $_.EtherType | Should -BeExactly '0x0806' }
        $arpReplies = @($eth0 | Where-Object { $_.Protocol -eq 'ARP' -and $_.Direction -eq 'Out' -and $_.Summary -like "*Reply 10.10.10.88 is-at $SeedMac*" })
        $arpReplies.Count | Should -BeGreaterThan 0 -Because 'the container answers them'
        $arpReplies | ForEach-Object { $_.SourceMac | Should -BeExactly $SeedMac; $_.DestinationMac | Should -BeExactly $hostMac }
        $broadcasts = @($eth0 | Where-Object { $_.Protocol -eq 'ICMP' -and "$($_.DestinationIP)" -eq '10.10.10.255' })
        $broadcasts.Count | Should -BeGreaterThan 0 -Because 'a broadcast IPv4 frame is not steered'
        $broadcasts | ForEach-Object { $_.DestinationMac | Should -BeExactly 'ff:ff:ff:ff:ff:ff'; $_.Direction | Should -BeExactly 'In' }
        @($eth0 | Where-Object { $_.Protocol -eq 'ICMP' -and "$($_.DestinationIP)" -eq '10.10.10.88' }) | Should -BeNullOrEmpty -Because 'unicast IPv4 is still steered'

        # the ARP reply crossed back through vin and vex: the host resolved the container
        Test-IcmpEcho $hostNs 10.10.10.88 -Count 1 | Should -BeFalse
        $neigh = @((Invoke-Ip -j -n $hostNs neigh show 10.10.10.88) -join "`n" | ConvertFrom-Json)
        $neigh.Count | Should -Be 1
        $neigh[0].lladdr | Should -BeExactly $SeedMac
        $neigh[0].state | Should -Not -Contain 'FAILED'
        $neigh[0].state | Should -Not -Contain 'INCOMPLETE'
    }

    It 'passes the ping once a kernel-only bounce on vth stands in for the datapath' {
        Add-VthBounce $agent
        Test-IcmpEcho $hostNs 10.10.10.88 | Should -BeTrue
    }

    It 'gives the container its real MAC back in both directions, and vex never shows the ucmac' {
        $eth0 = @(Watch-While $hostNs $pingContainer $container eth0 -Count 12 | Where-Object Protocol -EQ 'ICMP')
        $requests = @($eth0 | Where-Object { $_.Summary -like '*echo request*' })
        $replies = @($eth0 | Where-Object { $_.Summary -like '*echo reply*' })
        $requests.Count | Should -BeGreaterThan 0
        $replies.Count | Should -BeGreaterThan 0
        foreach ($f in $requests) { $f.Direction | Should -BeExactly 'In'; $f.DestinationMac | Should -BeExactly $SeedMac; $f.SourceMac | Should -BeExactly $hostMac }
        foreach ($f in $replies) { $f.Direction | Should -BeExactly 'Out'; $f.SourceMac | Should -BeExactly $SeedMac; $f.DestinationMac | Should -BeExactly $hostMac }

        $vex = @(Watch-While $hostNs $pingContainer $agent vex -Count 12)
        $vexReplies = @($vex | Where-Object { $_.Protocol -eq 'ICMP' -and $_.Summary -like '*echo reply*' })
        $vexReplies.Count | Should -BeGreaterThan 0
        foreach ($f in $vexReplies) { $f.Direction | Should -BeExactly 'Out'; $f.SourceMac | Should -BeExactly $SeedMac; "$($f.SourceIP)" | Should -BeExactly '10.10.10.88' }
        @($vex + $eth0 | Where-Object { $_.SourceMac -eq $SeedUcMac -or $_.DestinationMac -eq $SeedUcMac }) | Should -BeNullOrEmpty

        # and in between, vth carries the ucmac both ways
        $vth = @(Watch-While $hostNs $pingContainer $agent vth -Count 12 | Where-Object Protocol -EQ 'ICMP')
        @($vth | Where-Object { $_.Summary -like '*echo request*' -and $_.DestinationMac -eq $SeedUcMac }).Count | Should -BeGreaterThan 0
        @($vth | Where-Object { $_.Summary -like '*echo reply*' -and $_.SourceMac -eq $SeedUcMac }).Count | Should -BeGreaterThan 0
        @($vth | Where-Object { $_.SourceMac -eq $SeedMac -or $_.DestinationMac -eq $SeedMac }) | Should -BeNullOrEmpty
    }

    It 'leaves no filter of ours behind when the interception is removed, and only the bounce stays' {
        $removed = @(Remove-WorkloadInterception $SeedMac -Namespace $agent -PassThru)
        $removed.Count | Should -Be 8
        $removed.Change | Sort-Object -Unique | Should -Be @('Removed')
        @(Get-OurTcFilter $agent) | Should -BeNullOrEmpty
        foreach ($l in 'vex', 'vin', 'vbr') { @(Get-TcFilter $agent $l) | Should -BeNullOrEmpty -Because "$l held only our rules" }
        @(Get-TcFilter $agent vth | ForEach-Object { "$($_.Priority) $($_.Kind) $($_.MirredTo)" }) | Should -Be @('1 u32 vth')
        @(Get-WorkloadInterception $agent) | Should -BeNullOrEmpty
        Test-IcmpEcho $hostNs 10.10.10.88 -Count 2 | Should -BeFalse -Because 'nothing joins vex and vin any more'
    }
}

Describe 'The Pedit backend on a kernel without act_pedit' {
    BeforeAll {
        $seed = New-TestSeed -NoInterception
        $agent = $seed.Agent
    }
    AfterAll { Remove-TestNamespace $seed.Agent, $seed.Container, $seed.Host }

    It 'fails with a clear act_pedit error and installs nothing: no filter, no qdisc' {
        $err = Get-ErrorRecord { Add-WorkloadInterception -Namespace $agent -WorkloadMac $SeedMac -UcMac $SeedUcMac -ToWorkloadPriority 5 -FromWorkloadPriority 172 -Backend Pedit }
        Assert-AgentError $err -Id 'AddWorkloadInterceptionActionUnavailable,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category NotInstalled `
            -Message '*act_pedit*', '*Failed to load TC action module*', '*modprobe act_pedit*', '*Bpf*', '*Nothing was changed*'
        @(Get-TcFingerprint $agent) | Should -BeNullOrEmpty
        @(Get-TcIngressLinkName $agent) | Should -BeNullOrEmpty -Because 'the qdiscs this call added for its probe are gone again'
        @(Get-WorkloadInterception $agent) | Should -BeNullOrEmpty
    }

    It 'costs an intercepted workload none of its rules' {
        Add-WorkloadInterception -Namespace $agent -WorkloadMac $SeedMac -Backend Bpf | Out-Null
        $before = @(Get-TcFingerprint $agent)
        $before.Count | Should -Be 8
        $err = Get-ErrorRecord { Add-WorkloadInterception -Namespace $agent -WorkloadMac $SeedMac -Backend Pedit }
        Assert-AgentError $err -Id 'AddWorkloadInterceptionActionUnavailable,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category NotInstalled -Message '*act_pedit*'
        @(Get-TcFingerprint $agent) | Should -Be $before
        @(Get-TcIngressLinkName $agent) | Should -Be @('vbr', 'vex', 'vin')
        (Get-WorkloadInterception $agent).Backend | Should -BeExactly 'Bpf'
    }
}

Describe 'Add-WorkloadInterception, Get-WorkloadInterception and Remove-WorkloadInterception on the seed''s links' {
    BeforeAll {
        $seed = New-TestSeed -NoInterception
        $agent = $seed.Agent
        $other = '1a:27:f3:87:3a:99'
        $seedArgs = @{ Namespace = $agent; WorkloadMac = $SeedMac; UcMac = $SeedUcMac; ToWorkloadPriority = 5; FromWorkloadPriority = 172 }
    }
    AfterAll { Remove-TestNamespace $seed.Agent, $seed.Container, $seed.Host }

    It '-WhatIf installs nothing, not even a qdisc' {
        Add-WorkloadInterception @seedArgs -WhatIf | Should -BeNullOrEmpty
        @(Get-TcIngressLinkName $agent) | Should -BeNullOrEmpty
        @(Get-TcFingerprint $agent) | Should -BeNullOrEmpty
    }

    It 'refuses a ucmac without the NeuV prefix and installs nothing' {
        $err = Get-ErrorRecord { Add-WorkloadInterception -Namespace $agent -WorkloadMac $SeedMac -UcMac 02:00:00:00:00:b4 }
        Assert-AgentError $err -Id 'AddWorkloadInterceptionInvalidArgument,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category InvalidArgument `
            -Message '*02:00:00:00:00:b4*', '*4e:65:75:56*NeuV*'
        @(Get-TcIngressLinkName $agent) | Should -BeNullOrEmpty
        @(Get-TcFingerprint $agent) | Should -BeNullOrEmpty
    }

    It 'refuses a ucmac equal to the workload MAC and installs nothing' {
        $err = Get-ErrorRecord { Add-WorkloadInterception -Namespace $agent -WorkloadMac 4e:65:75:56:00:b4 -UcMac 4E-65-75-56-00-B4 }
        Assert-AgentError $err -Id 'AddWorkloadInterceptionInvalidArgument,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category InvalidArgument -Message '*must differ*'
        @(Get-TcIngressLinkName $agent) | Should -BeNullOrEmpty
        @(Get-TcFingerprint $agent) | Should -BeNullOrEmpty
    }

    It 'refuses a multicast workload MAC and installs nothing' {
        $err = Get-ErrorRecord { Add-WorkloadInterception -Namespace $agent -WorkloadMac 01:00:5e:00:00:01 }
        Assert-AgentError $err -Id 'AddWorkloadInterceptionInvalidArgument,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category InvalidArgument -Message '*multicast*'
        @(Get-TcFingerprint $agent) | Should -BeNullOrEmpty
    }

    It 'reports a missing port as LinkNotFound and installs nothing' {
        $err = Get-ErrorRecord { Add-WorkloadInterception -Namespace $agent -WorkloadMac $SeedMac -MonitorLink nosuchlink }
        Assert-AgentError $err -Id 'AddWorkloadInterceptionLinkNotFound,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category ObjectNotFound -Message '*nosuchlink*'
        @(Get-TcIngressLinkName $agent) | Should -BeNullOrEmpty
    }

    It 'picks Bpf with -Backend Auto and says why' {
        $script:added = Add-WorkloadInterception @seedArgs
        $added | Should -BeOfType ([NvRedirect.Core.Intercept.InterceptionInfo])
        $added.Backend | Should -BeExactly 'Bpf'
        $added.BackendReason | Should -BeLike '*no act_pedit*Failed to load TC action module*cls_bpf*'
        $added.Rules.Count | Should -Be 8
        $added.Rules.Change | Sort-Object -Unique | Should -Be @('Added')
        $added.OffloadsDisabled | Should -BeTrue
        @(Get-OurTcFilter $agent).Count | Should -Be 8
        @(Get-TcIngressLinkName $agent) | Should -Be @('vbr', 'vex', 'vin')
    }

    It 'changes nothing when run again: every rule Unchanged, the kernel''s filters identical' {
        $before = @(Get-TcFingerprint $agent)
        $ids = @(& tc -j -n $agent filter show dev vbr ingress | ConvertFrom-Json | Where-Object { $_.PSObject.Properties['options'] -and $_.options.PSObject.Properties['prog'] } | ForEach-Object { $_.options.prog.id })
        $again = Add-WorkloadInterception @seedArgs
        $again.Rules.Count | Should -Be 8
        $again.Rules.Change | Sort-Object -Unique | Should -Be @('Unchanged')
        @(Get-TcFingerprint $agent) | Should -Be $before
        @(& tc -j -n $agent filter show dev vbr ingress | ConvertFrom-Json | Where-Object { $_.PSObject.Properties['options'] -and $_.options.PSObject.Properties['prog'] } | ForEach-Object { $_.options.prog.id }) |
            Should -Be $ids -Because 'the same programs stay attached'
    }

    It 'round-trips the installed facts through Get-WorkloadInterception' {
        $got = @(Get-WorkloadInterception $agent)
        $got.Count | Should -Be 1
        $i = $got[0]
        foreach ($p in 'Namespace', 'WorkloadMac', 'UcMac', 'BcMac', 'EntryLink', 'InnerLink', 'MonitorLink', 'DatapathLink', 'Backend', 'ToWorkloadPriority', 'FromWorkloadPriority') {
            $i.$p | Should -Be $added.$p -Because "$p must read back as installed"
        }
        $i.UcMac | Should -BeExactly $SeedUcMac
        $i.BcMac | Should -BeExactly 'ff:ff:ff:00:00:b4'
        $i.DatapathLink | Should -BeExactly 'vth'
        $i.ToWorkloadPriority | Should -Be 5
        $i.FromWorkloadPriority | Should -Be 172
        $mine = @($i.Rules | ForEach-Object { "$($_.Role)|$($_.LinkName)|$($_.Priority)|$($_.Kind)" } | Sort-Object)
        $mine | Should -Be @($added.Rules | ForEach-Object { "$($_.Role)|$($_.LinkName)|$($_.Priority)|$($_.Kind)" } | Sort-Object)
        (Get-WorkloadInterception $agent -WorkloadMac 1A-27-F3-87-3A-27).WorkloadMac | Should -BeExactly $SeedMac
        @(Get-WorkloadInterception $agent -WorkloadMac $other) | Should -BeNullOrEmpty
    }

    It 'switches checksum and segmentation offloads off on vex, vin, vbr and vth' {
        foreach ($l in 'vex', 'vin', 'vbr', 'vth') {
            $k = Get-Offload $agent $l
            foreach ($feature in 'tx-checksumming', 'tcp-segmentation-offload', 'generic-segmentation-offload', 'generic-receive-offload') {
                $k[$feature] | Should -BeExactly 'off' -Because "$feature on $l must be off for an inline datapath"
            }
        }
        (Get-IpLink $seed.Container eth0) | Should -Not -BeNullOrEmpty
        (Get-Offload $seed.Container eth0)['tx-checksumming'] | Should -BeExactly 'on' -Because 'the workload''s own interface is not ours to change'
    }

    It 'leaves offloads as they are with -KeepOffloads' {
        Set-AgentLink vex -Namespace $agent -Offload $true
        $kept = Add-WorkloadInterception @seedArgs -KeepOffloads
        $kept.OffloadsDisabled | Should -BeFalse
        $kept.Rules.Change | Sort-Object -Unique | Should -Be @('Unchanged')
        $k = Get-Offload $agent vex
        $k['tx-checksumming'] | Should -BeExactly 'on'
        $k['tcp-segmentation-offload'] | Should -BeExactly 'on'
        Add-WorkloadInterception @seedArgs | Out-Null
        (Get-Offload $agent vex)['tx-checksumming'] | Should -BeExactly 'off'
    }

    It 'refuses a pref held by a foreign filter with a clear error and installs nothing' {
        & tc -n $agent filter add dev vbr parent ffff: pref 300 u32 match u8 0 0 action mirred egress mirror dev vin
        $LASTEXITCODE | Should -Be 0
        try {
            $before = @(Get-TcFingerprint $agent)
            # the workload's own rules may stay where they are; pref 300 is not free
            $err = Get-ErrorRecord { Add-WorkloadInterception @seedArgs -ToWorkloadPriority 300 }
            Assert-AgentError $err -Id 'AddWorkloadInterceptionPriorityInUse,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category ResourceExists `
                -Message "*pref 300 of link 'vbr'*someone else*", '*-ToWorkloadPriority*', '*Nothing was changed*'
            @(Get-TcFingerprint $agent) | Should -Be $before
            (Get-WorkloadInterception $agent).ToWorkloadPriority | Should -Be 5
        }
        finally { & tc -n $agent filter del dev vbr parent ffff: pref 300 }
    }

    It 'refuses a second workload on the same entry port: its steering pref holds another interception''s rule' {
        $before = @(Get-TcFingerprint $agent)
        $err = Get-ErrorRecord { Add-WorkloadInterception -Namespace $agent -WorkloadMac $other -ToWorkloadPriority 300 -FromWorkloadPriority 301 }
        Assert-AgentError $err -Id 'AddWorkloadInterceptionPriorityInUse,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category ResourceExists `
            -Message "*pref 10001 of link 'vex'*another interception*"
        @(Get-TcFingerprint $agent) | Should -Be $before
        @(Get-WorkloadInterception $agent -WorkloadMac $other) | Should -BeNullOrEmpty
    }

    It 'reports an unknown workload as NotFound on removal, and -WhatIf removes nothing' {
        $err = Get-ErrorRecord { Remove-WorkloadInterception $other -Namespace $agent }
        Assert-AgentError $err -Id 'RemoveWorkloadInterceptionNotFound,NvRedirect.Cmdlets.RemoveWorkloadInterceptionCommand' -Category ObjectNotFound -Message "*$other*"
        $before = @(Get-TcFingerprint $agent)
        Remove-WorkloadInterception $SeedMac -Namespace $agent -WhatIf -PassThru | Should -BeNullOrEmpty
        @(Get-TcFingerprint $agent) | Should -Be $before
    }

    It 'removes every interception through Get-WorkloadInterception | Remove-WorkloadInterception, keeping the qdiscs' {
        $removed = @(Get-WorkloadInterception $agent | Remove-WorkloadInterception -PassThru)
        $removed.Count | Should -Be 8
        @($removed | ForEach-Object { "$($_.Role)|$($_.LinkName)|$($_.Priority)" } | Sort-Object) |
            Should -Be @($added.Rules | ForEach-Object { "$($_.Role)|$($_.LinkName)|$($_.Priority)" } | Sort-Object)
        @(Get-TcFingerprint $agent) | Should -BeNullOrEmpty
        @(Get-TcIngressLinkName $agent) | Should -Be @('vbr', 'vex', 'vin')
        @(Get-WorkloadInterception $agent) | Should -BeNullOrEmpty
    }
}

Describe 'Two workloads intercepted in one agent namespace' {
    BeforeAll {
        $seed = New-TestSeed -NoInterception
        $agent = $seed.Agent; $container1 = $seed.Container; $host1 = $seed.Host
        $container2 = New-TestNamespaceName 'ctr2'
        $host2 = New-TestNamespaceName 'host2'
        $mac2 = '1a:27:f3:87:3a:28'
        New-AgentNamespace $container2, $host2 | Out-Null
        New-AgentLink vex2 vex2-peer -Namespace $agent -PeerNamespace $host2 | Out-Null
        New-AgentLink vin2 vin2-peer -Namespace $agent -PeerNamespace $container2 | Out-Null
        Rename-AgentLink vin2-peer -NewName eth0 -Namespace $container2
        Set-AgentLink eth0 -Namespace $container2 -MacAddress $mac2
        Get-AgentLink -Namespace $container2 | Set-AgentLink -Up
        Get-AgentLink -Namespace $host2 | Set-AgentLink -Up
        Get-AgentLink vex2, vin2 -Namespace $agent | Set-AgentLink -Up
        Add-AgentAddress eth0 10.10.10.89/24 -Namespace $container2 | Out-Null
        Add-AgentAddress vex2-peer 10.10.10.67/24 -Namespace $host2 | Out-Null
    }
    AfterAll { Remove-TestNamespace $agent, $container1, $host1, $container2, $host2 }

    It 'intercepts both with ucmacs and monitor prefs derived from the ports'' ifindexes' {
        $script:w1 = Add-WorkloadInterception -Namespace $agent -WorkloadMac $SeedMac
        $script:w2 = Add-WorkloadInterception -Namespace $agent -WorkloadMac $mac2 -EntryLink vex2 -InnerLink vin2
        foreach ($w in @(@($w1, 'vex', 'vin'), @($w2, 'vex2', 'vin2'))) {
            $i = $w[0]; $entry = Get-IpLink $agent $w[1]; $inner = Get-IpLink $agent $w[2]
            $i.UcMac | Should -BeExactly ('4e:65:75:56:{0:x2}:{1:x2}' -f ($entry.ifindex -shr 8), ($entry.ifindex -band 255))
            $i.ToWorkloadPriority | Should -Be $entry.ifindex
            $i.FromWorkloadPriority | Should -Be $inner.ifindex
            $i.MonitorLink | Should -BeExactly 'vbr'
            $i.DatapathLink | Should -BeExactly 'vth'
        }
        $w1.UcMac | Should -Not -Be $w2.UcMac
        @($w1.ToWorkloadPriority, $w1.FromWorkloadPriority, $w2.ToWorkloadPriority, $w2.FromWorkloadPriority | Sort-Object -Unique).Count | Should -Be 4
        @(Get-TcFilter $agent vbr).Count | Should -Be 4 -Because 'both workloads share vbr, two rules each'
        @(Get-WorkloadInterception $agent).Count | Should -Be 2
    }

    It 'refuses the second workload the first one''s ucmac or pref, naming it, and changes nothing' {
        $before = @(Get-TcFingerprint $agent)
        $err = Get-ErrorRecord { Add-WorkloadInterception -Namespace $agent -WorkloadMac $mac2 -EntryLink vex2 -InnerLink vin2 -UcMac $w1.UcMac }
        Assert-AgentError $err -Id 'AddWorkloadInterceptionUcMacInUse,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category ResourceExists `
            -Message "*ucmac $($w1.UcMac)*workload $SeedMac*", '*-UcMac*', "*Remove-WorkloadInterception -WorkloadMac $SeedMac*", '*Nothing was changed*'
        $err = Get-ErrorRecord { Add-WorkloadInterception -Namespace $agent -WorkloadMac $mac2 -EntryLink vex2 -InnerLink vin2 -FromWorkloadPriority $w1.ToWorkloadPriority }
        Assert-AgentError $err -Id 'AddWorkloadInterceptionPriorityInUse,NvRedirect.Cmdlets.AddWorkloadInterceptionCommand' -Category ResourceExists `
            -Message "*pref $($w1.ToWorkloadPriority) of link 'vbr'*workload $SeedMac*", '*-FromWorkloadPriority*', '*Nothing was changed*'
        @(Get-TcFingerprint $agent) | Should -Be $before
        # run again with defaults, each keeps what it has
        $again = Add-WorkloadInterception -Namespace $agent -WorkloadMac $mac2 -EntryLink vex2 -InnerLink vin2
        $again.Rules.Change | Sort-Object -Unique | Should -Be @('Unchanged')
        $again.UcMac | Should -BeExactly $w2.UcMac
        @(Get-TcFingerprint $agent) | Should -Be $before
    }

    It 'passes both workloads'' pings through the shared vbr/vth bounce' {
        Add-VthBounce $agent
        Test-IcmpEcho $host1 10.10.10.88 | Should -BeTrue
        Test-IcmpEcho $host2 10.10.10.89 | Should -BeTrue
    }

    It 'keeps each workload''s frames to itself: the first container sees none of the second''s pings' {
        $eth0 = @(Watch-While $host2 'exec ping -n -i 0.2 10.10.10.89' $container1 eth0 -Count 10 -TimeoutSeconds 3)
        @($eth0 | Where-Object Protocol -EQ 'ICMP') | Should -BeNullOrEmpty
        # 20 frames: ARP or neighbour discovery may come first on a loaded machine; pings (10 frames a second) fill the rest
        $other = @(Watch-While $host2 'exec ping -n -i 0.2 10.10.10.89' $container2 eth0 -Count 20 -TimeoutSeconds 8 | Where-Object Protocol -EQ 'ICMP')
        $other.Count | Should -BeGreaterThan 0
        $other | ForEach-Object { @($_.SourceMac, $_.DestinationMac) | Should -Contain $mac2 }
    }

    It 'removing one leaves the other working, and Get-WorkloadInterception lists exactly the other with its eight rules' {
        $removed = @(Remove-WorkloadInterception $SeedMac -Namespace $agent -PassThru)
        $removed.Count | Should -Be 8
        Test-IcmpEcho $host2 10.10.10.89 | Should -BeTrue
        Test-IcmpEcho $host1 10.10.10.88 -Count 2 | Should -BeFalse
        $left = @(Get-WorkloadInterception $agent)
        $left.Count | Should -Be 1
        $left[0].WorkloadMac | Should -BeExactly $mac2
        $left[0].UcMac | Should -BeExactly $w2.UcMac
        $left[0].EntryLink | Should -BeExactly 'vex2'
        $left[0].InnerLink | Should -BeExactly 'vin2'
        $left[0].Rules.Count | Should -Be 8
        @($left[0].Rules | ForEach-Object { "$($_.Role)|$($_.LinkName)|$($_.Priority)" } | Sort-Object) |
            Should -Be @($w2.Rules | ForEach-Object { "$($_.Role)|$($_.LinkName)|$($_.Priority)" } | Sort-Object)
        @(Get-TcFilter $agent vex) + @(Get-TcFilter $agent vin) | Should -BeNullOrEmpty
        @(Get-TcFilter $agent vbr | ForEach-Object Priority | Sort-Object) | Should -Be @($w2.ToWorkloadPriority, $w2.FromWorkloadPriority | Sort-Object)
    }

    It 'allocates free prefs and a free ucmac when explicit values hold the ones the ports'' ifindexes give' {
        Remove-WorkloadInterception $mac2 -Namespace $agent | Out-Null
        $vex2 = (Get-IpLink $agent vex2).ifindex; $vin2 = (Get-IpLink $agent vin2).ifindex
        $derivedUc = '4e:65:75:56:{0:x2}:{1:x2}' -f ($vex2 -shr 8), ($vex2 -band 255)
        # the first workload asks for exactly what the second one's ports would give it
        $a = Add-WorkloadInterception -Namespace $agent -WorkloadMac $SeedMac -UcMac $derivedUc -ToWorkloadPriority $vex2 -FromWorkloadPriority $vin2
        $b = Add-WorkloadInterception -Namespace $agent -WorkloadMac $mac2 -EntryLink vex2 -InnerLink vin2
        $b.UcMac | Should -Not -Be $a.UcMac
        $b.UcMac | Should -BeLike '4e:65:75:56:*'
        @($a.ToWorkloadPriority, $a.FromWorkloadPriority, $b.ToWorkloadPriority, $b.FromWorkloadPriority | Sort-Object -Unique).Count | Should -Be 4
        @(Get-TcFilter $agent vbr).Count | Should -Be 4
        Test-IcmpEcho $host1 10.10.10.88 | Should -BeTrue
        Test-IcmpEcho $host2 10.10.10.89 | Should -BeTrue
        $listed = @(Get-WorkloadInterception $agent -WorkloadMac $mac2)
        $listed[0].UcMac | Should -BeExactly $b.UcMac
        $listed[0].ToWorkloadPriority | Should -Be $b.ToWorkloadPriority
    }
}
