# New/Get/Set/Rename/Move/Remove-AgentLink against the real kernel, in namespaces of this run only. Fixtures are made
# with iproute2, results are read back with `ip -j`, and every error case proves that nothing changed.
BeforeAll { Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force; Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force }
AfterAll { if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace } }

Describe 'New-AgentLink' {
    BeforeAll {
        $a = New-TestNamespace 'new-a'
        $b = New-TestNamespace 'new-b'
        $missing = "$(Get-TestRunStem)missing"
        Invoke-Ip -n $a link add name dup0 type veth peer name dup1
        Invoke-Ip -n $b link add name taken type veth peer name taken1
    }
    AfterAll { Remove-TestNamespace }

    It 'creates a veth pair, both ends down, and returns the first end' {
        $name = New-TestLinkName 'n0'; $peer = New-TestLinkName 'n1'
        $link = New-AgentLink $name $peer -Namespace $a
        $link | Should -BeOfType ([NvRedirect.Core.Model.AgentLink])
        $link.Name | Should -BeExactly $name
        $link.Namespace | Should -BeExactly $a
        $link.Kind | Should -BeExactly 'veth'
        $link.State | Should -BeExactly 'Down'
        $link.PeerName | Should -BeExactly $peer
        $link.PeerNamespace | Should -BeExactly $a
        Assert-AgentLinkMatchesIp $link
        Get-AgentLink $peer -Namespace $a | Assert-AgentLinkMatchesIp
        (Get-IpLink $a $peer).linkinfo.info_kind | Should -BeExactly 'veth'
    }

    It 'creates the peer straight inside -PeerNamespace' {
        $name = New-TestLinkName 'p0'; $peer = New-TestLinkName 'p1'
        $link = New-AgentLink $name $peer -Namespace $a -PeerNamespace $b
        $link.PeerNamespace | Should -BeExactly $b
        Assert-AgentLinkMatchesIp $link
        @(Get-IpLink $a $peer).Count | Should -Be 0
        $peerLink = Get-AgentLink $peer -Namespace $b
        $peerLink.PeerName | Should -BeExactly $name
        $peerLink.PeerNamespace | Should -BeExactly $a
        Assert-AgentLinkMatchesIp $peerLink
    }

    It 'resolves the peer when both ends have the same ifindex in their own namespaces' {
        # in two fresh namespaces both ends are the first link after lo: ifindex 2 on each side
        $x = New-TestNamespace 'same-idx'
        $y = New-TestNamespace 'same-idx'
        $name = New-TestLinkName 'i0'; $peer = New-TestLinkName 'i1'
        $link = New-AgentLink $name $peer -Namespace $x -PeerNamespace $y
        $link.Index | Should -Be (Get-IpLink $y $peer).ifindex -Because 'this test needs equal indexes'
        $link.PeerIndex | Should -Be $link.Index
        $link.PeerName | Should -BeExactly $peer
        $link.PeerNamespace | Should -BeExactly $y
        Assert-AgentLinkMatchesIp $link
        (Get-AgentLink $peer -Namespace $y).PeerName | Should -BeExactly $name
        Remove-TestNamespace $x, $y
    }

    It 'creates from pipeline objects with Name, PeerName and Namespace properties' {
        $name = New-TestLinkName 'q0'; $peer = New-TestLinkName 'q1'
        $link = [pscustomobject]@{ Name = $name; PeerName = $peer; Namespace = $a } | New-AgentLink
        $link.Namespace | Should -BeExactly $a
        @(Get-IpLink $a $name).Count | Should -Be 1
        @(Get-IpLink $a $peer).Count | Should -Be 1
    }

    It 'reports a missing <Which>, creating nothing anywhere' -ForEach @(
        @{ Which = 'namespace'; Param = 'Namespace' }
        @{ Which = 'peer namespace'; Param = 'PeerNamespace' }
    ) {
        $name = New-TestLinkName 'm0'; $peer = New-TestLinkName 'm1'
        $before = Get-IpLinkState $a
        $splat = @{ Namespace = $a }
        $splat[$Param] = $missing
        $out = New-AgentLink $name $peer @splat -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'NewAgentLinkNamespaceNotFound,NvRedirect.Cmdlets.NewAgentLinkCommand' `
            -Category ObjectNotFound -Message "*'$missing' does not exist*"
        Get-IpLinkState $a | Should -Be $before
        Test-Path "/run/netns/$missing" | Should -BeFalse
        @(Get-IpLink '' | Where-Object { $_.ifname -in $name, $peer }).Count | Should -Be 0
    }

    It 'reports a duplicate name, creating no half pair' {
        $fresh = New-TestLinkName 'd1'
        $before = Get-IpLinkState $a
        $out = New-AgentLink dup0 $fresh -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'NewAgentLinkAlreadyExists,NvRedirect.Cmdlets.NewAgentLinkCommand' `
            -Category ResourceExists -Message "*'dup0' already exists in namespace '$a'*"
        Get-IpLinkState $a | Should -Be $before
    }

    It 'reports a peer name already taken in the peer namespace, creating no half pair' {
        $fresh = New-TestLinkName 'd2'
        $beforeA = Get-IpLinkState $a; $beforeB = Get-IpLinkState $b
        $out = New-AgentLink $fresh taken -Namespace $a -PeerNamespace $b -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'NewAgentLinkAlreadyExists,NvRedirect.Cmdlets.NewAgentLinkCommand' `
            -Category ResourceExists -Message "*'taken' already exists in namespace '$b'*"
        Get-IpLinkState $a | Should -Be $beforeA
        Get-IpLinkState $b | Should -Be $beforeB
    }

    It 'reports a peer name already taken in the same namespace, creating no half pair' {
        $fresh = New-TestLinkName 'd3'
        $before = Get-IpLinkState $a
        New-AgentLink $fresh dup1 -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'NewAgentLinkAlreadyExists,NvRedirect.Cmdlets.NewAgentLinkCommand' -Category ResourceExists -Message "*'dup1'*"
        Get-IpLinkState $a | Should -Be $before
    }

    It 'rejects <Case> as a <Param>, creating nothing' -ForEach @(
        @{ Case = 'a 16-byte name'; Bad = 'abcdefghijklmnop'; Param = 'Name'; Problem = '*longer than 15 bytes*' }
        @{ Case = 'a 15-character name of 17 UTF-8 bytes'; Bad = 'ééabcdefghijklm'; Param = 'PeerName'; Problem = '*longer than 15 bytes*' }
        @{ Case = "a name with '/'"; Bad = 'a/b'; Param = 'Name'; Problem = "*contains '/'*" }
        @{ Case = "a name with '/'"; Bad = 'a/b'; Param = 'PeerName'; Problem = "*contains '/'*" }
        @{ Case = 'a name with a space'; Bad = 'a b'; Param = 'Name'; Problem = '*contains white space*' }
        @{ Case = 'a name with a tab'; Bad = "a`tb"; Param = 'PeerName'; Problem = '*contains white space*' }
        @{ Case = 'a name with a newline'; Bad = "a`nb"; Param = 'Name'; Problem = '*contains white space*' }
        @{ Case = "a name with ':'"; Bad = 'a:b'; Param = 'Name'; Problem = "*contains ':'*" }
        @{ Case = "'.'"; Bad = '.'; Param = 'Name'; Problem = "*'.' is reserved*" }
    ) {
        $good = New-TestLinkName 'ok'
        $names = @{ Name = $good; PeerName = $good }
        $names[$Param] = $Bad
        $before = Get-IpLinkState $a
        $out = New-AgentLink @names -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'NewAgentLinkInvalidArgument,NvRedirect.Cmdlets.NewAgentLinkCommand' `
            -Category InvalidArgument -Message 'Invalid interface name*', $Problem
        Get-IpLinkState $a | Should -Be $before
    }

    It 'rejects the same name for both ends in one namespace' {
        $name = New-TestLinkName 'same'
        $before = Get-IpLinkState $a
        New-AgentLink $name $name -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'NewAgentLinkInvalidArgument,NvRedirect.Cmdlets.NewAgentLinkCommand' -Category InvalidArgument -Message "*'$name'*"
        Get-IpLinkState $a | Should -Be $before
    }

    It '-WhatIf creates nothing' {
        $beforeA = Get-IpLinkState $a; $beforeB = Get-IpLinkState $b
        New-AgentLink (New-TestLinkName 'w0') (New-TestLinkName 'w1') -Namespace $a -PeerNamespace $b -WhatIf | Should -BeNullOrEmpty
        Get-IpLinkState $a | Should -Be $beforeA
        Get-IpLinkState $b | Should -Be $beforeB
    }
}

Describe 'Get-AgentLink' {
    BeforeAll {
        $a = New-TestNamespace 'get'
        Invoke-Ip -n $a link add name g0 type veth peer name g1
        Invoke-Ip -n $a link add name h0 type veth peer name h1
        Invoke-Ip -n $a link set g0 up
    }
    AfterAll { Remove-TestNamespace }

    It 'lists every link of a namespace, as ip -j does' {
        $links = @(Get-AgentLink -Namespace $a)
        ($links.Name | Sort-Object) | Should -Be @('g0', 'g1', 'h0', 'h1', 'lo')
        $links | Assert-AgentLinkMatchesIp
        ($links | Where-Object Name -EQ 'g0').State | Should -BeExactly 'Up'
        ($links | Where-Object Name -EQ 'lo').Kind | Should -BeExactly ''
    }

    It 'selects by names and wildcards, and by -Kind' {
        (Get-AgentLink g0, h1 -Namespace $a).Name | Should -Be @('g0', 'h1')
        (Get-AgentLink g* -Namespace $a).Name | Sort-Object | Should -Be @('g0', 'g1')
        (Get-AgentLink -Namespace $a -Kind veth).Name | Sort-Object | Should -Be @('g0', 'g1', 'h0', 'h1')
        Get-AgentLink x* -Namespace $a -ErrorVariable err | Should -BeNullOrEmpty
        $err | Should -BeNullOrEmpty
    }

    It 'reports a missing link and still returns the others' {
        $out = Get-AgentLink g0, nope -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue
        @($out).Name | Should -Be @('g0')
        Assert-AgentError $err -Id 'GetAgentLinkLinkNotFound,NvRedirect.Cmdlets.GetAgentLinkCommand' `
            -Category ObjectNotFound -Message "*no link 'nope' in namespace '$a'*"
    }

    It 'reports a missing namespace' {
        $missing = "$(Get-TestRunStem)missing"
        Get-AgentLink -Namespace $missing -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'GetAgentLinkNamespaceNotFound,NvRedirect.Cmdlets.GetAgentLinkCommand' `
            -Category ObjectNotFound -Message "*'$missing' does not exist*"
    }
}

Describe 'Set-AgentLink' {
    BeforeAll {
        $a = New-TestNamespace 'set'
        Invoke-Ip -n $a link add name s0 type veth peer name s1
    }
    AfterAll { Remove-TestNamespace }

    It '-Mtu is what ip -j reports, and -PassThru returns the updated link' {
        $link = Set-AgentLink s0 -Namespace $a -Mtu 1400 -PassThru
        $link.Mtu | Should -Be 1400
        (Get-IpLink $a s0).mtu | Should -Be 1400
        (Get-IpLink $a s1).mtu | Should -Be 1500 -Because 'each end has its own MTU'
        Assert-AgentLinkMatchesIp $link
    }

    It '-MacAddress is what ip -j reports (<Text>)' -ForEach @(
        @{ Text = '02:00:00:00:00:01'; Expected = '02:00:00:00:00:01' }
        @{ Text = '02:AB:CD:EF:01:23'; Expected = '02:ab:cd:ef:01:23' }
        @{ Text = '0a-1b-2c-3d-4e-5f'; Expected = '0a:1b:2c:3d:4e:5f' }
    ) {
        $link = Set-AgentLink s0 -Namespace $a -MacAddress $Text -PassThru
        $link.MacAddress | Should -BeExactly $Expected
        (Get-IpLink $a s0).address | Should -BeExactly $Expected
    }

    It 'applies several changes in one call' {
        $link = Set-AgentLink s1 -Namespace $a -Mtu 1300 -MacAddress 02:00:00:00:00:02 -Up -PassThru
        $ip = Get-IpLink $a s1
        $ip.mtu | Should -Be 1300
        $ip.address | Should -BeExactly '02:00:00:00:00:02'
        $ip.flags | Should -Contain 'UP'
        Assert-AgentLinkMatchesIp $link
    }

    It '-Up and -Down change the administrative state' {
        Set-AgentLink s0 -Namespace $a -Up | Should -BeNullOrEmpty
        (Get-IpLink $a s0).flags | Should -Contain 'UP'
        (Set-AgentLink s0 -Namespace $a -Down -PassThru).State | Should -BeExactly 'Down'
        (Get-IpLink $a s0).flags | Should -Not -Contain 'UP'
    }

    It 'brings up every link piped from Get-AgentLink -Namespace' {
        Get-AgentLink -Namespace $a | Set-AgentLink -Down
        $up = @(Get-AgentLink -Namespace $a | Set-AgentLink -Up -PassThru)
        $up.Count | Should -Be 3
        $up.State | Sort-Object -Unique | Should -BeExactly 'Up'
        foreach ($l in Get-IpLink $a) { $l.flags | Should -Contain 'UP' -Because "$($l.ifname) was piped" }
    }

    It 'rejects the malformed MAC <Bad>, changing nothing (not even the MTU given with it)' -ForEach @(
        @{ Bad = 'zz:00:00:00:00:01' }
        @{ Bad = '02:00:00:00:00' }
        @{ Bad = '02:00:00:00:00:00:01' }
        @{ Bad = '0200.0000.0001' }
        @{ Bad = '02:00:00:00:00:100' }
        @{ Bad = '' }
    ) {
        $before = Get-IpLinkState $a
        Set-AgentLink s0 -Namespace $a -MacAddress $Bad -Mtu 1280 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'SetAgentLinkInvalidArgument,NvRedirect.Cmdlets.SetAgentLinkCommand' `
            -Category InvalidArgument -Message "'$Bad' is not a valid MAC address*"
        Get-IpLinkState $a | Should -Be $before
    }

    It 'rejects a <Kind> MAC address, changing nothing' -ForEach @(
        @{ Kind = 'multicast'; Bad = '01:00:5e:00:00:01' }
        @{ Kind = 'broadcast'; Bad = 'ff:ff:ff:ff:ff:ff' }
        @{ Kind = 'all-zero'; Bad = '00:00:00:00:00:00' }
    ) {
        $before = Get-IpLinkState $a
        Set-AgentLink s0 -Namespace $a -MacAddress $Bad -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'SetAgentLinkInvalidArgument,NvRedirect.Cmdlets.SetAgentLinkCommand' `
            -Category InvalidArgument -Message "*$Bad cannot be an interface's address*"
        Get-IpLinkState $a | Should -Be $before
    }

    It 'rejects the MTU <Mtu> before asking the kernel' -ForEach @(@{ Mtu = 67 }, @{ Mtu = 65536 }) {
        $before = Get-IpLinkState $a
        $err = Get-ErrorRecord { Set-AgentLink s0 -Namespace $a -Mtu $Mtu }
        Assert-AgentError $err -Id 'ParameterArgumentValidationError,NvRedirect.Cmdlets.SetAgentLinkCommand' -Category InvalidData -Message '*Mtu*'
        Get-IpLinkState $a | Should -Be $before
    }

    It 'refuses -Up together with -Down, and a call that changes nothing' {
        $before = Get-IpLinkState $a
        Assert-AgentError (Get-ErrorRecord { Set-AgentLink s0 -Namespace $a -Up -Down }) -Id 'SetAgentLinkUpAndDown,NvRedirect.Cmdlets.SetAgentLinkCommand' `
            -Category InvalidArgument -Message '*-Up and -Down*'
        Assert-AgentError (Get-ErrorRecord { Set-AgentLink s0 -Namespace $a }) -Id 'SetAgentLinkNothingToDo,NvRedirect.Cmdlets.SetAgentLinkCommand' `
            -Category InvalidArgument -Message 'Nothing to change*'
        Get-IpLinkState $a | Should -Be $before
    }

    It 'sets the MACs of several links from CSV-like rows (Name, Namespace, MacAddress) in one pipeline' {
        $rows = "Name,Namespace,MacAddress`ns0,$a,02:00:00:00:0a:01`ns1,$a,02:00:00:00:0a:02" | ConvertFrom-Csv
        $out = @($rows | Set-AgentLink -PassThru)
        $out.Count | Should -Be 2
        (Get-IpLink $a s0).address | Should -BeExactly '02:00:00:00:0a:01'
        (Get-IpLink $a s1).address | Should -BeExactly '02:00:00:00:0a:02'
        $out | ForEach-Object { Assert-AgentLinkMatchesIp $_ }
    }

    It 'Get-AgentLink | Set-AgentLink -Up binds each link''s own MAC and sends no MAC change' {
        $macs = @(Get-IpLink $a | ForEach-Object { "$($_.ifname)=$($_.address)" })
        $said = @(Get-AgentLink -Namespace $a | Set-AgentLink -Up -Verbose 4>&1 | ForEach-Object { "$_" })
        @($said | Where-Object { $_ -like '*"Set up"*' }).Count | Should -Be 3 -Because 'lo, s0 and s1 are brought up'
        @($said | Where-Object { $_ -like '*MAC*' }) | Should -BeNullOrEmpty -Because 'a MAC equal to the current one is no change'
        @(Get-IpLink $a | ForEach-Object { "$($_.ifname)=$($_.address)" }) | Should -Be $macs
        # a MAC-only item equal to the current MAC is a no-op: nothing to confirm, nothing sent
        $said = @(Get-AgentLink s0 -Namespace $a | Select-Object Name, Namespace, MacAddress | Set-AgentLink -Verbose 4>&1 | ForEach-Object { "$_" })
        @($said | Where-Object { $_ -like '*Performing the operation*' }) | Should -BeNullOrEmpty
        # an empty MacAddress from the pipeline (a link without one, an empty CSV cell) is absent, not an error
        "Name,Namespace,MacAddress`ns1,$a," | ConvertFrom-Csv | Set-AgentLink -Down -ErrorVariable err
        $err | Should -BeNullOrEmpty
        (Get-IpLink $a s1).flags | Should -Not -Contain 'UP'
        (Get-IpLink $a s1).address | Should -BeExactly '02:00:00:00:0a:02'
    }

    It 'reports a missing link and a missing namespace' {
        Set-AgentLink nope -Namespace $a -Up -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'SetAgentLinkLinkNotFound,NvRedirect.Cmdlets.SetAgentLinkCommand' -Category ObjectNotFound -Message "*'nope'*'$a'*"
        $missing = "$(Get-TestRunStem)missing"
        Set-AgentLink s0 -Namespace $missing -Up -ErrorVariable err2 -ErrorAction SilentlyContinue
        Assert-AgentError $err2 -Id 'SetAgentLinkNamespaceNotFound,NvRedirect.Cmdlets.SetAgentLinkCommand' -Category ObjectNotFound -Message "*'$missing'*"
    }

    It '-WhatIf changes nothing (<Change>)' -ForEach @(
        @{ Change = 'up'; Params = @{ Up = $true } }
        @{ Change = 'down'; Params = @{ Down = $true } }
        @{ Change = 'MTU'; Params = @{ Mtu = 9000 } }
        @{ Change = 'MAC'; Params = @{ MacAddress = '02:00:00:00:00:99' } }
    ) {
        $before = Get-IpLinkState $a
        Get-AgentLink -Namespace $a | Set-AgentLink @Params -PassThru -WhatIf | Should -BeNullOrEmpty
        Get-IpLinkState $a | Should -Be $before
    }
}

Describe 'Rename-AgentLink' {
    BeforeAll {
        $a = New-TestNamespace 'ren'
        Invoke-Ip -n $a link add name r0 type veth peer name r1
    }
    AfterAll { Remove-TestNamespace }

    It 'renames a link in place (same index and MAC); its peer sees the new name; -PassThru returns it' {
        $old = Get-IpLink $a r0
        $link = Rename-AgentLink r0 -NewName r0new -Namespace $a -PassThru
        $link.Name | Should -BeExactly 'r0new'
        $link.Index | Should -Be $old.ifindex
        $link.MacAddress | Should -BeExactly $old.address
        @(Get-IpLink $a r0).Count | Should -Be 0
        (Get-IpLink $a r1).link | Should -BeExactly 'r0new'
        (Get-AgentLink r1 -Namespace $a).PeerName | Should -BeExactly 'r0new'
        Assert-AgentLinkMatchesIp $link
        Rename-AgentLink r0new r0 -Namespace $a | Should -BeNullOrEmpty
        (Get-IpLink $a r0).ifindex | Should -Be $old.ifindex
    }

    It 'renames a link that is up' {
        Invoke-Ip -n $a link set r1 up
        (Rename-AgentLink r1 -NewName r1up -Namespace $a -PassThru).State | Should -BeExactly 'Up'
        (Get-IpLink $a r1up).flags | Should -Contain 'UP'
        Rename-AgentLink r1up r1 -Namespace $a
    }

    It 'refuses a name already taken, changing nothing' {
        $before = Get-IpLinkState $a
        Rename-AgentLink r0 -NewName r1 -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'RenameAgentLinkAlreadyExists,NvRedirect.Cmdlets.RenameAgentLinkCommand' `
            -Category ResourceExists -Message "*'r1' already exists in namespace '$a'*"
        Get-IpLinkState $a | Should -Be $before
    }

    It 'rejects the new name <Bad>, changing nothing' -ForEach @(
        @{ Bad = 'abcdefghijklmnop'; Problem = '*longer than 15 bytes*' }
        @{ Bad = 'a/b'; Problem = "*contains '/'*" }
        @{ Bad = 'a b'; Problem = '*contains white space*' }
    ) {
        $before = Get-IpLinkState $a
        Rename-AgentLink r0 -NewName $Bad -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RenameAgentLinkInvalidArgument,NvRedirect.Cmdlets.RenameAgentLinkCommand' -Category InvalidArgument -Message $Problem
        Get-IpLinkState $a | Should -Be $before
    }

    It 'reports a missing link' {
        Rename-AgentLink nope -NewName x -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RenameAgentLinkLinkNotFound,NvRedirect.Cmdlets.RenameAgentLinkCommand' -Category ObjectNotFound -Message "*'nope'*"
    }

    It '-WhatIf changes nothing' {
        $before = Get-IpLinkState $a
        Rename-AgentLink r0 -NewName r9 -Namespace $a -PassThru -WhatIf | Should -BeNullOrEmpty
        Get-IpLinkState $a | Should -Be $before
    }
}

Describe 'Move-AgentLink' {
    BeforeAll {
        $a = New-TestNamespace 'mv-a'
        $b = New-TestNamespace 'mv-b'
        $missing = "$(Get-TestRunStem)missing"
        Invoke-Ip -n $a link add name m0 type veth peer name m1
        Invoke-Ip -n $a link add name k0 type veth peer name k1
        Invoke-Ip -n $b link add name busy type veth peer name busy1
    }
    AfterAll { Remove-TestNamespace }

    It 'moves a link: it leaves its namespace and arrives with its MAC; the peer follows it' {
        $mac = (Get-IpLink $a m0).address
        Move-AgentLink m0 -Namespace $a -DestinationNamespace $b | Should -BeNullOrEmpty
        @(Get-IpLink $a m0).Count | Should -Be 0
        (Get-IpLink $b m0).address | Should -BeExactly $mac
        $peer = Get-AgentLink m1 -Namespace $a
        $peer.PeerName | Should -BeExactly 'm0'
        $peer.PeerNamespace | Should -BeExactly $b
        Assert-AgentLinkMatchesIp $peer
    }

    It 'moves and renames in one step with -NewName; -PassThru returns the link in its new place' {
        $mac = (Get-IpLink $b m0).address
        $link = Move-AgentLink m0 -Namespace $b -DestinationNamespace $a -NewName m0back -PassThru
        $link.Namespace | Should -BeExactly $a
        $link.Name | Should -BeExactly 'm0back'
        $link.MacAddress | Should -BeExactly $mac
        $link.PeerName | Should -BeExactly 'm1'
        $link.PeerNamespace | Should -BeExactly $a
        Assert-AgentLinkMatchesIp $link
        @(Get-IpLink $b m0).Count | Should -Be 0
        @(Get-IpLink $b m0back).Count | Should -Be 0
    }

    It 'moves links piped from Get-AgentLink' {
        Get-AgentLink k* -Namespace $a | Move-AgentLink -DestinationNamespace $b
        (Get-IpLink $b | Where-Object ifname -Like 'k*' | ForEach-Object ifname | Sort-Object) | Should -Be @('k0', 'k1')
        (Get-AgentLink k0 -Namespace $b).PeerNamespace | Should -BeExactly $b
    }

    It 'reports a missing destination namespace; the link stays where it was, with its name' {
        $beforeA = Get-IpLinkState $a
        Move-AgentLink m1 -Namespace $a -DestinationNamespace $missing -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'MoveAgentLinkNamespaceNotFound,NvRedirect.Cmdlets.MoveAgentLinkCommand' `
            -Category ObjectNotFound -Message "*'$missing' does not exist*"
        Get-IpLinkState $a | Should -Be $beforeA
        Test-Path "/run/netns/$missing" | Should -BeFalse
    }

    It 'reports a name taken in the destination (with and without -NewName); the link stays' {
        $beforeA = Get-IpLinkState $a; $beforeB = Get-IpLinkState $b
        Move-AgentLink m1 -Namespace $a -DestinationNamespace $b -NewName busy -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'MoveAgentLinkAlreadyExists,NvRedirect.Cmdlets.MoveAgentLinkCommand' `
            -Category ResourceExists -Message "*'busy' already exists in namespace '$b'*"
        Invoke-Ip -n $a link add name busy type veth peer name busy2
        $beforeA = Get-IpLinkState $a
        Move-AgentLink busy -Namespace $a -DestinationNamespace $b -ErrorVariable err2 -ErrorAction SilentlyContinue
        Assert-AgentError $err2 -Id 'MoveAgentLinkAlreadyExists,NvRedirect.Cmdlets.MoveAgentLinkCommand' -Category ResourceExists -Message "*'busy'*'$b'*"
        Get-IpLinkState $a | Should -Be $beforeA
        Get-IpLinkState $b | Should -Be $beforeB
    }

    It 'rejects an invalid -NewName and a move to the namespace the link is in; the link stays' {
        $before = Get-IpLinkState $a
        Move-AgentLink m1 -Namespace $a -DestinationNamespace $b -NewName 'bad name' -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'MoveAgentLinkInvalidArgument,NvRedirect.Cmdlets.MoveAgentLinkCommand' -Category InvalidArgument -Message '*contains white space*'
        Move-AgentLink m1 -Namespace $a -DestinationNamespace $a -ErrorVariable err2 -ErrorAction SilentlyContinue
        Assert-AgentError $err2 -Id 'MoveAgentLinkInvalidArgument,NvRedirect.Cmdlets.MoveAgentLinkCommand' -Category InvalidArgument -Message "*already in namespace '$a'*"
        Get-IpLinkState $a | Should -Be $before
    }

    It 'reports a missing link' {
        Move-AgentLink nope -Namespace $a -DestinationNamespace $b -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'MoveAgentLinkLinkNotFound,NvRedirect.Cmdlets.MoveAgentLinkCommand' -Category ObjectNotFound -Message "*'nope'*'$a'*"
    }

    It '-WhatIf moves nothing' {
        $beforeA = Get-IpLinkState $a; $beforeB = Get-IpLinkState $b
        Move-AgentLink m1 -Namespace $a -DestinationNamespace $b -NewName m1x -PassThru -WhatIf | Should -BeNullOrEmpty
        Get-IpLinkState $a | Should -Be $beforeA
        Get-IpLinkState $b | Should -Be $beforeB
    }
}

Describe 'Remove-AgentLink' {
    BeforeAll {
        $a = New-TestNamespace 'rml-a'
        $b = New-TestNamespace 'rml-b'
        Invoke-Ip -n $a link add name x0 type veth peer name x1 netns $b
        Invoke-Ip -n $a link add name y0 type veth peer name y1
    }
    AfterAll { Remove-TestNamespace }

    It '-WhatIf removes nothing' {
        $beforeA = Get-IpLinkState $a; $beforeB = Get-IpLinkState $b
        Get-AgentLink -Namespace $a -Kind veth | Remove-AgentLink -WhatIf
        Get-IpLinkState $a | Should -Be $beforeA
        Get-IpLinkState $b | Should -Be $beforeB
    }

    It 'removes a link piped from Get-AgentLink, and its peer in another namespace with it' {
        Get-AgentLink x0 -Namespace $a | Remove-AgentLink | Should -BeNullOrEmpty
        @(Get-IpLink $a x0).Count | Should -Be 0
        Wait-TestCondition { @(Get-IpLink $b x1).Count -eq 0 } | Should -BeTrue
    }

    It 'removes a link by name, and its peer in the same namespace' {
        Remove-AgentLink y1 -Namespace $a
        (Get-IpLink $a).ifname | Should -Be @('lo')
    }

    It 'removes both ends of every veth piped from Get-AgentLink without reporting the peer the kernel already removed' {
        Invoke-Ip -n $a link add name z0 type veth peer name z1
        Invoke-Ip -n $a link add name w0 type veth peer name w1
        Get-AgentLink -Namespace $a -Kind veth | Remove-AgentLink -ErrorVariable err -Verbose 4>&1 |
            Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -like "*already gone*" } | Should -HaveCount 2
        $err | Should -BeNullOrEmpty
        (Get-IpLink $a).ifname | Should -Be @('lo')
    }

    It 'reports a missing link' {
        Remove-AgentLink nope -Namespace $a -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RemoveAgentLinkLinkNotFound,NvRedirect.Cmdlets.RemoveAgentLinkCommand' `
            -Category ObjectNotFound -Message "*no link 'nope' in namespace '$a'*"
    }

    It 'reports a missing namespace' {
        $missing = "$(Get-TestRunStem)missing"
        Remove-AgentLink lo -Namespace $missing -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RemoveAgentLinkNamespaceNotFound,NvRedirect.Cmdlets.RemoveAgentLinkCommand' -Category ObjectNotFound -Message "*'$missing'*"
    }
}
