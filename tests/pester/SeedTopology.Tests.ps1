# New-SeedTopology / Remove-SeedTopology: the seed's whole topology in one command, checked fact by fact against
# `ip -j` and `tc -j`; torn down without a trace; and a build that fails at any point leaves nothing behind.
# Always under unique names with a host namespace of its own: -InRootNamespace is only ever run with -WhatIf here.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force

    function New-SeedName {
        @{ AgentNamespace = New-TestNamespaceName 'agent'; ContainerNamespace = New-TestNamespaceName 'ctr'; HostNamespace = New-TestNamespaceName 'host' }
    }
    function Get-IpLinkName([string]$Namespace) { @(Get-IpLink $Namespace | ForEach-Object ifname | Sort-Object) }
    function Test-NamespaceGone([hashtable]$Names) {
        $listed = @(Get-IpNamespaceName)
        -not @($Names.Values | Where-Object { $listed -contains $_ -or (Test-Path -LiteralPath "/run/netns/$_") })
    }
}
AfterAll { if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace } }

Describe 'New-SeedTopology' {
    BeforeAll {
        $names = New-SeedName
        $agent = $names.AgentNamespace; $container = $names.ContainerNamespace; $hostNs = $names.HostNamespace
        $lab = New-SeedTopology @names
    }
    AfterAll { Remove-TestNamespace @($names.Values) }

    It 'returns what it built: namespaces, addresses, the workload MAC, the interception and every link' {
        $lab | Should -BeOfType ([NvRedirect.Core.Intercept.SeedTopologyInfo])
        $lab.AgentNamespace | Should -BeExactly $agent
        $lab.ContainerNamespace | Should -BeExactly $container
        $lab.HostNamespace | Should -BeExactly $hostNs
        $lab.HostAddress | Should -BeExactly '10.10.10.66/24'
        $lab.WorkloadAddress | Should -BeExactly '10.10.10.88/24'
        $lab.WorkloadMac | Should -BeExactly '1a:27:f3:87:3a:27'
        $lab.Interception.UcMac | Should -BeExactly '4e:65:75:56:00:b4'
        $lab.Interception.ToWorkloadPriority | Should -Be 5
        $lab.Interception.FromWorkloadPriority | Should -Be 172
        @($lab.Links | ForEach-Object { "$($_.Namespace)/$($_.Name)" } | Sort-Object) | Should -Be @(
            "$agent/lo", "$agent/vbr", "$agent/vex", "$agent/vin", "$agent/vth", "$container/eth0", "$container/lo", "$hostNs/lo", "$hostNs/vex-peer" | Sort-Object)
        $lab.Links | Assert-AgentLinkMatchesIp
    }

    It 'creates the three namespaces with exactly the seed''s links' {
        $listed = Get-IpNamespaceName
        foreach ($n in $agent, $container, $hostNs) { $listed | Should -Contain $n }
        Get-IpLinkName $agent | Should -Be @('lo', 'vbr', 'vex', 'vin', 'vth')
        Get-IpLinkName $container | Should -Be @('eth0', 'lo')
        Get-IpLinkName $hostNs | Should -Be @('lo', 'vex-peer')
    }

    It 'pairs vex with vex-peer, vin with the container''s eth0, vbr with vth' {
        $ids = Get-IpNamespaceIdMap $agent
        $vex = Get-IpLink $agent vex; $vin = Get-IpLink $agent vin; $vbr = Get-IpLink $agent vbr; $vth = Get-IpLink $agent vth
        $ids[[int]$vex.link_netnsid] | Should -BeExactly $hostNs
        $vex.link_index | Should -Be (Get-IpLink $hostNs vex-peer).ifindex
        $ids[[int]$vin.link_netnsid] | Should -BeExactly $container
        $vin.link_index | Should -Be (Get-IpLink $container eth0).ifindex
        $vbr.link | Should -BeExactly 'vth'
        $vth.link | Should -BeExactly 'vbr'
        foreach ($l in $vex, $vin, $vbr, $vth) { $l.linkinfo.info_kind | Should -BeExactly 'veth' }
    }

    It 'gives eth0 the seed''s MAC and the two addresses' {
        (Get-IpLink $container eth0).address | Should -BeExactly '1a:27:f3:87:3a:27'
        @(Get-IpAddress $container -Family IPv4 | Where-Object LinkName -NE 'lo' | ForEach-Object { "$($_.LinkName) $($_.Address)" }) | Should -Be @('eth0 10.10.10.88/24')
        @(Get-IpAddress $hostNs -Family IPv4 | Where-Object LinkName -NE 'lo' | ForEach-Object { "$($_.LinkName) $($_.Address)" }) | Should -Be @('vex-peer 10.10.10.66/24')
        @(Get-IpAddress $agent -Family IPv4 | Where-Object LinkName -NE 'lo') | Should -BeNullOrEmpty
    }

    It 'brings every link up, lo included' {
        foreach ($n in $agent, $container, $hostNs) {
            foreach ($l in Get-IpLink $n) { $l.flags | Should -Contain 'UP' -Because "$n/$($l.ifname) must be up" }
        }
    }

    It 'installs the six rules with the seed''s prefs 10001/10002 on vex and vin and 5/172 on vbr, and the IPv6 steering at 10000' {
        @(Get-TcIngressLinkName $agent) | Should -Be @('vbr', 'vex', 'vin')
        # and the kernel fast path's program at pref 9999 ahead of them (docs/datapath.md, "The kernel fast path")
        @(Get-TcFilter $agent vex | ForEach-Object { "$($_.Priority) $($_.Protocol)" } | Sort-Object) | Should -Be @('10000 ipv6', '10001 ip', '10002 all', '9999 ip')
        @(Get-TcFilter $agent vin | ForEach-Object { "$($_.Priority) $($_.Protocol)" } | Sort-Object) | Should -Be @('10000 ipv6', '10001 ip', '10002 all', '9999 ip')
        @(Get-TcFilter $agent vbr | ForEach-Object { "$($_.Priority) $($_.Protocol)" } | Sort-Object) | Should -Be @('172 all', '5 all')
        @(Get-TcFilter $agent vth) | Should -BeNullOrEmpty
        (Get-TcFilter $agent vex | Where-Object Priority -EQ 10002).MirredTo | Should -BeExactly 'vin'
        (Get-TcFilter $agent vin | Where-Object Priority -EQ 10002).MirredTo | Should -BeExactly 'vex'
        $i = @(Get-WorkloadInterception $agent)
        $i.Count | Should -Be 1
        $i[0].WorkloadMac | Should -BeExactly '1a:27:f3:87:3a:27'
        $i[0].Backend | Should -BeExactly 'Bpf' -Because 'this kernel has no act_pedit and -Backend Auto is the default'
        $i[0].FastPath | Should -BeTrue
    }

    It 'refuses to build over its own namespaces and leaves them as they were' {
        $before = @($agent, $container, $hostNs | ForEach-Object { Get-IpLinkState $_ })
        $err = Get-ErrorRecord { New-SeedTopology @names }
        Assert-AgentError $err -Id 'NewSeedTopologyInvalidArgument,NvRedirect.Cmdlets.NewSeedTopologyCommand' -Category InvalidArgument -Message "*$agent*already exists*"
        @($agent, $container, $hostNs | ForEach-Object { Get-IpLinkState $_ }) | Should -Be $before
        @(Get-TcFilter $agent vex).Count | Should -Be 4 -Because 'the fast path (9999), IPv6 (10000), IPv4 (10001) and the pass rule (10002)'
    }
}

Describe 'Remove-SeedTopology' {
    It 'removes the namespaces and everything in them, and says what it removed' {
        $names = New-SeedName
        try {
            New-SeedTopology @names | Out-Null
            $removed = @(Remove-SeedTopology @names -PassThru)
            $removed | Should -Be @($names.AgentNamespace, $names.ContainerNamespace, $names.HostNamespace)
            Test-NamespaceGone $names | Should -BeTrue
            @(Get-AgentNamespace "$(Get-TestRunStem)*" | Where-Object Name -In $names.Values) | Should -BeNullOrEmpty
            Test-Path "/sys/fs/bpf/nvredirect/$($names.AgentNamespace)" | Should -BeFalse -Because 'the fast path''s pinned map goes with the topology'
        }
        finally { Remove-TestNamespace @($names.Values) }
    }

    It 'tears down what New-SeedTopology returned, through the pipeline' {
        $names = New-SeedName
        try {
            New-SeedTopology @names -NoInterception | Remove-SeedTopology
            Test-NamespaceGone $names | Should -BeTrue
        }
        finally { Remove-TestNamespace @($names.Values) }
    }

    It 'skips missing parts: a second removal, or one after an interrupted build, is quiet' {
        $names = New-SeedName
        try {
            Invoke-Ip netns add $names.ContainerNamespace | Out-Null
            @(Remove-SeedTopology @names -PassThru) | Should -Be @($names.ContainerNamespace)
            @(Remove-SeedTopology @names -PassThru -ErrorVariable errors) | Should -BeNullOrEmpty
            $errors | Should -BeNullOrEmpty
            Test-NamespaceGone $names | Should -BeTrue
        }
        finally { Remove-TestNamespace @($names.Values) }
    }

    It '-WhatIf removes nothing' {
        $names = New-SeedName
        try {
            New-SeedTopology @names -NoInterception | Out-Null
            Remove-SeedTopology @names -WhatIf -PassThru | Should -BeNullOrEmpty
            $listed = Get-IpNamespaceName
            foreach ($n in $names.Values) { $listed | Should -Contain $n }
        }
        finally { Remove-TestNamespace @($names.Values) }
    }
}

Describe 'A New-SeedTopology that cannot be built leaves nothing behind' {
    BeforeEach { $names = New-SeedName }
    AfterEach { Remove-TestNamespace @($names.Values) }

    It 'an invalid -WorkloadAddress is refused before anything is created' {
        $err = Get-ErrorRecord { New-SeedTopology @names -WorkloadAddress 10.10.10.888/24 }
        Assert-AgentError $err -Id 'NewSeedTopologyInvalidArgument,NvRedirect.Cmdlets.NewSeedTopologyCommand' -Category InvalidArgument -Message '*10.10.10.888*'
        Test-NamespaceGone $names | Should -BeTrue
    }

    It 'a namespace name that already exists is refused, and that namespace is left untouched' {
        Invoke-Ip netns add $names.HostNamespace | Out-Null
        Invoke-Ip -n $names.HostNamespace link add tkeep0 type veth peer name tkeep1 | Out-Null
        $before = @(Get-IpLinkState $names.HostNamespace)
        $err = Get-ErrorRecord { New-SeedTopology @names }
        Assert-AgentError $err -Id 'NewSeedTopologyInvalidArgument,NvRedirect.Cmdlets.NewSeedTopologyCommand' -Category InvalidArgument -Message "*$($names.HostNamespace)*already exists*"
        @(Get-IpLinkState $names.HostNamespace) | Should -Be $before
        $listed = Get-IpNamespaceName
        $listed | Should -Not -Contain $names.AgentNamespace
        $listed | Should -Not -Contain $names.ContainerNamespace
    }

    It 'a multicast -WorkloadMac, refused once the links exist (setting eth0''s MAC), takes the namespaces back down' {
        $err = Get-ErrorRecord { New-SeedTopology @names -WorkloadMac 01:00:5e:00:00:01 }
        Assert-AgentError $err -Id 'NewSeedTopologyInvalidArgument,NvRedirect.Cmdlets.NewSeedTopologyCommand' -Category InvalidArgument -Message '*01:00:5e:00:00:01*multicast*'
        Test-NamespaceGone $names | Should -BeTrue
    }

    It 'the same address on both sides is refused before anything is created' {
        $err = Get-ErrorRecord { New-SeedTopology @names -HostAddress 10.10.10.88/24 }
        Assert-AgentError $err -Id 'NewSeedTopologyInvalidArgument,NvRedirect.Cmdlets.NewSeedTopologyCommand' -Category InvalidArgument -Message '*different addresses*10.10.10.88*'
        Test-NamespaceGone $names | Should -BeTrue
    }

    It 'an -UcMac without the NeuV prefix, refused by the last step (the interception), takes everything back down' {
        $err = Get-ErrorRecord { New-SeedTopology @names -UcMac 02:00:00:00:00:b4 }
        Assert-AgentError $err -Id 'NewSeedTopologyInvalidArgument,NvRedirect.Cmdlets.NewSeedTopologyCommand' -Category InvalidArgument -Message '*4e:65:75:56*'
        Test-NamespaceGone $names | Should -BeTrue
    }

    It '-Backend Pedit on this kernel takes everything back down' {
        $err = Get-ErrorRecord { New-SeedTopology @names -Backend Pedit }
        Assert-AgentError $err -Id 'NewSeedTopologyActionUnavailable,NvRedirect.Cmdlets.NewSeedTopologyCommand' -Category NotInstalled -Message '*act_pedit*'
        Test-NamespaceGone $names | Should -BeTrue
    }

    It '-WhatIf creates nothing' {
        New-SeedTopology @names -WhatIf | Should -BeNullOrEmpty
        Test-NamespaceGone $names | Should -BeTrue
    }

    It '-InRootNamespace -WhatIf creates nothing, neither namespaces nor a vex-peer in the root namespace' {
        $rootPeers = @(Get-IpLink '' vex-peer).Count
        New-SeedTopology @names -InRootNamespace -WhatIf | Should -BeNullOrEmpty
        Test-NamespaceGone $names | Should -BeTrue
        @(Get-IpLink '' vex-peer).Count | Should -Be $rootPeers
    }
}
