# New/Get/Remove-AgentNamespace against the real kernel, each fact checked with iproute2 (`ip netns`, `ip -n`).
BeforeAll { Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force; Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force }
AfterAll { if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace } }

Describe 'New-AgentNamespace' {
    AfterAll { Remove-TestNamespace }

    It 'creates a namespace that ip netns lists, holding only lo, and returns it' {
        $name = New-TestNamespaceName 'new'
        $ns = New-AgentNamespace $name
        $ns | Should -BeOfType ([NvRedirect.Core.Model.AgentNamespace])
        $ns.Name | Should -BeExactly $name
        $ns.Path | Should -BeExactly "/run/netns/$name"
        $ns.IsMounted | Should -BeTrue
        $ns.Id | Should -Be ([uint64](& stat -L -c %i "/run/netns/$name"))
        Get-IpNamespaceName | Should -Contain $name
        @(Get-IpLink $name).ifname | Should -Be @('lo')
    }

    It 'creates several namespaces from one call and from the pipeline' {
        $names = @(New-TestNamespaceName 'many'; New-TestNamespaceName 'many')
        $piped = New-TestNamespaceName 'many'
        $created = @(New-AgentNamespace $names) + @($piped | New-AgentNamespace)
        $created.Name | Should -Be (@($names) + $piped)
        $listed = Get-IpNamespaceName
        foreach ($n in $names + $piped) { $listed | Should -Contain $n }
    }

    It 'makes a namespace that ip netns exec enters (same nsfs inode, own lo)' {
        $name = New-TestNamespaceName 'exec'
        $ns = New-AgentNamespace $name
        $inside = & ip netns exec $name stat -L -c %i /proc/self/ns/net
        $LASTEXITCODE | Should -Be 0
        [uint64]$inside | Should -Be $ns.Id
        [uint64]$inside | Should -Not -Be ([uint64](& stat -L -c %i /proc/self/ns/net))
        $links = (& ip netns exec $name ip -j link show) -join "`n" | ConvertFrom-Json
        @($links).ifname | Should -Be @('lo')
    }

    It 'reports a duplicate name and leaves the existing namespace as it was' {
        $name = New-TestNamespace 'dup'
        Invoke-Ip -n $name link add name d0 type veth peer name d1
        $inode = & stat -L -c %i "/run/netns/$name"
        $out = New-AgentNamespace $name -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'NewAgentNamespaceAlreadyExists,NvRedirect.Cmdlets.NewAgentNamespaceCommand' `
            -Category ResourceExists -Message "*'$name'*already exists*"
        & stat -L -c %i "/run/netns/$name" | Should -Be $inode
        (Get-IpLink $name).ifname | Sort-Object | Should -Be @('d0', 'd1', 'lo')
    }

    It 'continues with the next name after one fails' {
        $taken = New-TestNamespace 'cont'
        $fresh = New-TestNamespaceName 'cont'
        $out = New-AgentNamespace $taken, $fresh -ErrorVariable err -ErrorAction SilentlyContinue
        @($out).Name | Should -Be @($fresh)
        Assert-AgentError $err -Id 'NewAgentNamespaceAlreadyExists,NvRedirect.Cmdlets.NewAgentNamespaceCommand' -Category ResourceExists -Message "*$taken*"
        Get-IpNamespaceName | Should -Contain $fresh
    }

    It 'rejects a name with <Case> and creates nothing' -ForEach @(
        @{ Case = "'/'"; Bad = 'a/b'; Problem = "*contains '/'*" }
        @{ Case = 'a space'; Bad = 'a b'; Problem = '*contains white space*' }
        @{ Case = 'a tab'; Bad = "a`tb"; Problem = '*contains white space*' }
        @{ Case = 'only dots'; Bad = '..'; Problem = "*'..'*" }
    ) {
        $name = if ($Bad -eq '..') { $Bad } else { "$(Get-TestRunStem)bad-$Bad" }
        $before = @(Get-ChildItem /run/netns -Name)
        $out = New-AgentNamespace $name -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'NewAgentNamespaceInvalidArgument,NvRedirect.Cmdlets.NewAgentNamespaceCommand' `
            -Category InvalidArgument -Message 'Invalid network namespace name*', $Problem
        @(Get-ChildItem /run/netns -Name | Where-Object { $_ -like "$(Get-TestRunStem)bad-*" }) | Should -BeNullOrEmpty
        Test-Path "/run/netns/$(Get-TestRunStem)bad-a" | Should -BeFalse
        (Get-ChildItem /run/netns -Directory -Name | Where-Object { $_ -notin $before }) | Should -BeNullOrEmpty
    }

    It '-WhatIf creates nothing' {
        $name = New-TestNamespaceName 'whatif'
        $out = New-AgentNamespace $name -WhatIf
        $out | Should -BeNullOrEmpty
        Test-Path "/run/netns/$name" | Should -BeFalse
        Get-IpNamespaceName | Should -Not -Contain $name
    }
}

Describe 'Get-AgentNamespace' {
    BeforeAll {
        $names = @(1..3 | ForEach-Object { New-TestNamespace 'get' })
        $prefix = "$(Get-TestRunStem)get-"
    }
    AfterAll { Remove-TestNamespace }

    It 'lists namespaces made by ip netns add, with their nsfs inode' {
        foreach ($n in $names) {
            $ns = Get-AgentNamespace $n
            $ns.Name | Should -BeExactly $n
            $ns.IsMounted | Should -BeTrue
            $ns.Id | Should -Be ([uint64](& stat -L -c %i "/run/netns/$n"))
        }
        (Get-AgentNamespace).Name | Should -Contain $names[0]
    }

    It 'matches wildcards, sorted by name, exactly as ip netns list filtered' {
        $expected = [string[]]@(Get-IpNamespaceName | Where-Object { $_ -like "$prefix*" })
        [Array]::Sort($expected, [StringComparer]::Ordinal)
        $got = @(Get-AgentNamespace "$prefix*").Name
        $got | Should -Be $expected
        $got | Sort-Object | Should -Be ($names | Sort-Object)
    }

    It 'reports a missing name, naming it' {
        $missing = "$(Get-TestRunStem)missing"
        $out = Get-AgentNamespace $missing -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'GetAgentNamespaceNamespaceNotFound,NvRedirect.Cmdlets.GetAgentNamespaceCommand' `
            -Category ObjectNotFound -Message "*'$missing' does not exist*"
    }

    It 'treats a wildcard that matches nothing as no error' {
        $out = Get-AgentNamespace "$(Get-TestRunStem)nothing-*" -ErrorVariable err
        $out | Should -BeNullOrEmpty
        $err | Should -BeNullOrEmpty
    }

    It 'pipes a namespace into Get-AgentLink, which lists what ip -n lists' {
        Invoke-Ip -n $names[0] link add name g0 type veth peer name g1
        $links = @(Get-AgentNamespace $names[0] | Get-AgentLink)
        $links.Name | Should -Be @(Get-IpLink $names[0] | ForEach-Object ifname)
        $links.Namespace | Sort-Object -Unique | Should -BeExactly $names[0]
    }

    It 'uses a namespace made by ip netns add with -Namespace' {
        $link = New-AgentLink g2 g3 -Namespace $names[1]
        $link.Namespace | Should -BeExactly $names[1]
        (Get-IpLink $names[1]).ifname | Should -Contain 'g2'
        (Get-IpLink $names[1]).ifname | Should -Contain 'g3'
    }
}

Describe 'Remove-AgentNamespace' {
    AfterAll { Remove-TestNamespace }

    It 'removes a namespace; ip no longer lists it and its veth takes the peer in another namespace along' {
        $doomed = New-TestNamespace 'rm'
        $other = New-TestNamespace 'rm'
        Invoke-Ip -n $doomed link add name r0 type veth peer name r1 netns $other
        @(Get-IpLink $other r1).Count | Should -Be 1
        Remove-AgentNamespace $doomed | Should -BeNullOrEmpty
        Test-Path "/run/netns/$doomed" | Should -BeFalse
        Get-IpNamespaceName | Should -Not -Contain $doomed
        # the kernel dismantles a namespace asynchronously
        Wait-TestCondition { @(Get-IpLink $other r1).Count -eq 0 } | Should -BeTrue -Because 'the peer of a veth dies with its namespace'
    }

    It 'removes a namespace made by New-AgentNamespace that ip netns exec used' {
        $name = New-TestNamespaceName 'rm'
        New-AgentNamespace $name | Out-Null
        & ip netns exec $name true; $LASTEXITCODE | Should -Be 0
        Remove-AgentNamespace $name
        Get-IpNamespaceName | Should -Not -Contain $name
    }

    It 'removes every namespace piped from Get-AgentNamespace PREFIX*' {
        $made = @(1..3 | ForEach-Object { New-TestNamespace 'pipe' })
        $prefix = "$(Get-TestRunStem)pipe-"
        @(Get-AgentNamespace "$prefix*").Count | Should -Be 3
        Get-AgentNamespace "$prefix*" | Remove-AgentNamespace
        Get-AgentNamespace "$prefix*" | Should -BeNullOrEmpty
        @(Get-IpNamespaceName | Where-Object { $_ -like "$prefix*" }) | Should -BeNullOrEmpty
        foreach ($n in $made) { Test-Path "/run/netns/$n" | Should -BeFalse }
    }

    It 'reports a missing namespace, naming it' {
        $missing = "$(Get-TestRunStem)missing"
        Remove-AgentNamespace $missing -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RemoveAgentNamespaceNamespaceNotFound,NvRedirect.Cmdlets.RemoveAgentNamespaceCommand' `
            -Category ObjectNotFound -Message "*'$missing' does not exist*"
    }

    It 'rejects a name that would reach outside /run/netns, removing nothing' {
        $witness = New-TestNamespace 'witness'
        Remove-AgentNamespace '../netns' -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RemoveAgentNamespaceInvalidArgument,NvRedirect.Cmdlets.RemoveAgentNamespaceCommand' `
            -Category InvalidArgument -Message "*'../netns' contains '/'*"
        Test-Path /run/netns -PathType Container | Should -BeTrue
        Get-IpNamespaceName | Should -Contain $witness
        @(Get-IpLink $witness).ifname | Should -Be @('lo')
    }

    It '-WhatIf removes nothing' {
        $name = New-TestNamespace 'keep'
        Remove-AgentNamespace $name -WhatIf
        Get-IpNamespaceName | Should -Contain $name
        (Get-AgentNamespace $name).IsMounted | Should -BeTrue
    }
}
