# Add/Get/Remove-AgentAddress against the real kernel (10.10.10.x and 192.0.2.x only, in namespaces of this run),
# each result read back with `ip -j addr show`; each error case proves that the addresses did not change.
BeforeAll { Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force; Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force }
AfterAll { if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace } }

Describe 'Add-AgentAddress, Get-AgentAddress and Remove-AgentAddress' {
    BeforeAll {
        $a = New-TestNamespace 'addr'
        $missing = "$(Get-TestRunStem)missing"
        Invoke-Ip -n $a link add name a0 type veth peer name a1
        function Get-V4([string]$Link) { @(Get-IpAddress $a -LinkName $Link -Family IPv4 | ForEach-Object Address | Sort-Object) }
    }
    AfterAll { Remove-TestNamespace }
    AfterEach {
        # every test starts from links without IPv4 addresses, whatever the previous one left
        foreach ($x in Get-IpAddress $a -Family IPv4 | Where-Object LinkName -NE 'lo') { Invoke-Ip -n $a addr del $x.Address dev $x.LinkName | Out-Null }
    }

    It 'adds an address, as ip -j reports it, and returns it' {
        $added = Add-AgentAddress a0 10.10.10.66/24 -Namespace $a
        $added | Should -BeOfType ([NvRedirect.Core.Model.AgentAddress])
        $added.Namespace | Should -BeExactly $a
        $added.LinkName | Should -BeExactly 'a0'
        $added.LinkIndex | Should -Be (Get-IpLink $a a0).ifindex
        $added.Address | Should -BeExactly '10.10.10.66/24'
        $added.IPAddress | Should -Be ([ipaddress]'10.10.10.66')
        $added.PrefixLength | Should -Be 24
        $added.Family | Should -BeExactly 'IPv4'
        $added.Scope | Should -BeExactly 'global'
        Get-V4 a0 | Should -Be @('10.10.10.66/24')
        (Get-AgentLink a0 -Namespace $a).Addresses | Should -Contain '10.10.10.66/24'
    }

    It 'adds several addresses in one call; a bare address gets /32' {
        $added = @(Add-AgentAddress a0 10.10.10.1/24, 192.0.2.1/24, 10.10.10.200 -Namespace $a)
        $added.Count | Should -Be 3
        ($added | ForEach-Object Address) | Should -Be @('10.10.10.1/24', '192.0.2.1/24', '10.10.10.200/32')
        Get-V4 a0 | Should -Be @('10.10.10.1/24', '10.10.10.200/32', '192.0.2.1/24')
    }

    It 'takes the link from the pipeline (Get-AgentLink | Add-AgentAddress)' {
        Get-AgentLink a1 -Namespace $a | Add-AgentAddress -Address 10.10.10.88/24 | Out-Null
        Get-V4 a1 | Should -Be @('10.10.10.88/24')
    }

    It 'lists what ip -j lists, filtered by link (with wildcards) and family' {
        Invoke-Ip -n $a addr add 10.10.10.5/24 dev a0
        Invoke-Ip -n $a addr add 192.0.2.5/24 dev a1
        $mine = @(Get-AgentAddress -Namespace $a | ForEach-Object { "$($_.LinkName) $($_.Family) $($_.Address)" } | Sort-Object)
        $theirs = @(Get-IpAddress $a | ForEach-Object { "$($_.LinkName) $($_.Family) $($_.Address)" } | Sort-Object)
        $mine | Should -Be $theirs
        (Get-AgentAddress a0 -Namespace $a -Family IPv4).Address | Should -Be '10.10.10.5/24'
        (Get-AgentAddress a* -Namespace $a -Family IPv4 | ForEach-Object Address | Sort-Object) | Should -Be @('10.10.10.5/24', '192.0.2.5/24')
        (Get-AgentAddress -Namespace $a -Family IPv4 | ForEach-Object LinkName | Sort-Object) | Should -Be @('a0', 'a1')
        (Get-AgentAddress lo -Namespace $a -Family IPv4) | Should -BeNullOrEmpty -Because 'lo is down and has no address yet'
    }

    It 'removes an address by value' {
        Invoke-Ip -n $a addr add 10.10.10.7/24 dev a0
        Invoke-Ip -n $a addr add 192.0.2.7/24 dev a0
        Remove-AgentAddress a0 10.10.10.7/24 -Namespace $a | Should -BeNullOrEmpty
        Get-V4 a0 | Should -Be @('192.0.2.7/24')
    }

    It 'removes addresses piped from Get-AgentAddress' {
        Invoke-Ip -n $a addr add 10.10.10.8/24 dev a0
        Invoke-Ip -n $a addr add 192.0.2.8/24 dev a0
        Invoke-Ip -n $a addr add 10.10.10.9/24 dev a1
        Get-AgentAddress a0 -Namespace $a -Family IPv4 | Remove-AgentAddress
        Get-V4 a0 | Should -BeNullOrEmpty
        Get-V4 a1 | Should -Be @('10.10.10.9/24')
    }

    It 'reports an address added twice with the kernel''s own words, leaving one copy' {
        Add-AgentAddress a0 10.10.10.66/24 -Namespace $a | Out-Null
        $out = Add-AgentAddress a0 10.10.10.66/24 -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'AddAgentAddressAlreadyExists,NvRedirect.Cmdlets.AddAgentAddressCommand' `
            -Category ResourceExists -Message '*10.10.10.66/24*a0*', '*Address already assigned*'
        $err[0].ErrorDetails.RecommendedAction | Should -BeLike '*Address already assigned*'
        Get-V4 a0 | Should -Be @('10.10.10.66/24')
    }

    It 'adds the addresses of several links from CSV-like rows in one pipeline; Get-AgentAddress piped back reports each as AlreadyExists' {
        $rows = "LinkName,Namespace,Address`na0,$a,10.10.10.66/24`na1,$a,10.10.10.67/24`na0,$a,10.10.11.66/24" | ConvertFrom-Csv
        $out = @($rows | Add-AgentAddress)
        $out.Count | Should -Be 3
        Get-V4 a0 | Should -Be @('10.10.10.66/24', '10.10.11.66/24')
        Get-V4 a1 | Should -Be @('10.10.10.67/24')
        $again = Get-AgentAddress -Namespace $a -Family IPv4 | Where-Object LinkName -NE 'lo' | Add-AgentAddress -ErrorVariable err -ErrorAction SilentlyContinue
        $again | Should -BeNullOrEmpty
        $err.Count | Should -Be 3
        $err | ForEach-Object { $_.FullyQualifiedErrorId | Should -BeExactly 'AddAgentAddressAlreadyExists,NvRedirect.Cmdlets.AddAgentAddressCommand' }
        Get-V4 a0 | Should -Be @('10.10.10.66/24', '10.10.11.66/24')
        Get-V4 a1 | Should -Be @('10.10.10.67/24')
    }

    It 'rejects the malformed address <Bad>, adding nothing' -ForEach @(
        @{ Bad = '10.10.10.300/24'; Problem = "*'10.10.10.300/24' is not a valid IP address*" }
        @{ Bad = '10.10.10/24'; Problem = "*'10.10.10/24' is not a valid IP address*" }
        @{ Bad = 'ten.ten.ten.ten'; Problem = '*not a valid IP address*' }
        @{ Bad = '10.10.10.5 /24'; Problem = '*not a valid IP address*' }
        @{ Bad = '/24'; Problem = '*not a valid IP address*' }
        @{ Bad = '10.10.10.5/33'; Problem = "*'10.10.10.5/33' has an invalid prefix length*0 to 32*" }
        @{ Bad = '10.10.10.5/-1'; Problem = '*invalid prefix length*' }
        @{ Bad = '10.10.10.5/x'; Problem = '*invalid prefix length*' }
        @{ Bad = '10.10.10.5/'; Problem = '*invalid prefix length*' }
        @{ Bad = '2001:db8::1/129'; Problem = '*invalid prefix length*0 to 128*' }
    ) {
        $before = Get-IpLinkState $a
        Add-AgentAddress a0 $Bad -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'AddAgentAddressInvalidArgument,NvRedirect.Cmdlets.AddAgentAddressCommand' -Category InvalidArgument -Message $Problem
        Get-IpLinkState $a | Should -Be $before
        @(Get-IpAddress $a -LinkName a0 -Family IPv6 | Where-Object Scope -EQ 'global') | Should -BeNullOrEmpty
    }

    It 'adds the valid addresses of a list and reports the malformed one' {
        $out = @(Add-AgentAddress a0 10.10.10.11/24, 10.10.10.12/99, 192.0.2.11/24 -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue)
        ($out | ForEach-Object Address) | Should -Be @('10.10.10.11/24', '192.0.2.11/24')
        Assert-AgentError $err -Id 'AddAgentAddressInvalidArgument,NvRedirect.Cmdlets.AddAgentAddressCommand' -Category InvalidArgument -Message '*10.10.10.12/99*'
        Get-V4 a0 | Should -Be @('10.10.10.11/24', '192.0.2.11/24')
    }

    It 'reports a missing link (<Command>)' -ForEach @(
        @{ Command = 'Add-AgentAddress'; Id = 'AddAgentAddressLinkNotFound,NvRedirect.Cmdlets.AddAgentAddressCommand' }
        @{ Command = 'Remove-AgentAddress'; Id = 'RemoveAgentAddressLinkNotFound,NvRedirect.Cmdlets.RemoveAgentAddressCommand' }
    ) {
        $before = Get-IpLinkState $a
        & $Command nope 10.10.10.66/24 -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id $Id -Category ObjectNotFound -Message "*no link 'nope' in namespace '$a'*"
        Get-IpLinkState $a | Should -Be $before
        Get-AgentAddress nope -Namespace $a -ErrorVariable err2 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err2 -Id 'GetAgentAddressLinkNotFound,NvRedirect.Cmdlets.GetAgentAddressCommand' -Category ObjectNotFound -Message "*'nope'*"
    }

    It 'reports a missing namespace (<Command>)' -ForEach @(
        @{ Command = 'Add-AgentAddress'; Id = 'AddAgentAddressNamespaceNotFound,NvRedirect.Cmdlets.AddAgentAddressCommand' }
        @{ Command = 'Remove-AgentAddress'; Id = 'RemoveAgentAddressNamespaceNotFound,NvRedirect.Cmdlets.RemoveAgentAddressCommand' }
    ) {
        & $Command a0 10.10.10.66/24 -Namespace $missing -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id $Id -Category ObjectNotFound -Message "*'$missing' does not exist*"
        Get-AgentAddress -Namespace $missing -ErrorVariable err2 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err2 -Id 'GetAgentAddressNamespaceNotFound,NvRedirect.Cmdlets.GetAgentAddressCommand' -Category ObjectNotFound -Message "*'$missing'*"
        Test-Path "/run/netns/$missing" | Should -BeFalse
    }

    It 'reports removing an address the link does not have, leaving the others' {
        Invoke-Ip -n $a addr add 10.10.10.20/24 dev a0
        Remove-AgentAddress a0 10.10.10.21/24 -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RemoveAgentAddressNotFound,NvRedirect.Cmdlets.RemoveAgentAddressCommand' `
            -Category ObjectNotFound -Message "*10.10.10.21/24 is not an address of link 'a0'*"
        Remove-AgentAddress a0 10.10.10.20/16 -Namespace $a -ErrorVariable err2 -ErrorAction SilentlyContinue
        Assert-AgentError $err2 -Id 'RemoveAgentAddressNotFound,NvRedirect.Cmdlets.RemoveAgentAddressCommand' -Category ObjectNotFound -Message '*10.10.10.20/16*'
        Get-V4 a0 | Should -Be @('10.10.10.20/24')
    }

    It 'removes a primary address and its secondaries piped together, without reporting the ones the kernel dropped' {
        Invoke-Ip -n $a link add name s0 type veth peer name s1
        Invoke-Ip -n $a addr add 10.10.10.40/24 dev s0
        Invoke-Ip -n $a addr add 10.10.10.41/24 dev s0
        Invoke-Ip -n $a addr add 192.0.2.40/24 dev s0
        Get-AgentAddress s0 -Namespace $a -Family IPv4 | Remove-AgentAddress -ErrorVariable err
        $err | Should -BeNullOrEmpty
        Get-V4 s0 | Should -BeNullOrEmpty
    }

    It '-WhatIf adds and removes nothing' {
        Invoke-Ip -n $a addr add 10.10.10.30/24 dev a0
        $before = Get-IpLinkState $a
        Add-AgentAddress a0 10.10.10.31/24 -Namespace $a -WhatIf | Should -BeNullOrEmpty
        Remove-AgentAddress a0 10.10.10.30/24 -Namespace $a -WhatIf
        Get-AgentAddress -Namespace $a -Family IPv4 | Remove-AgentAddress -WhatIf
        Get-IpLinkState $a | Should -Be $before
    }
}
