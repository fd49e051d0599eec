# The seed's tc section with the filter cmdlets, on the seed topology built with the module's cmdlets in uniquely named
# namespaces (a "host" namespace stands in for the root namespace). `tc -s filter show` is the independent witness.
# On a kernel without act_pedit (this project's machines) the four pedit filters must fail cleanly; on one with it
# (Debian's stock kernel) they must install and read back as MAC rewrites: Test-TcAction decides which branch runs.
BeforeAll { Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force; Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force }
AfterAll { if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace } }

Describe 'The seed''s tc filters on the seed topology' {
    BeforeAll {
        $hostNs = New-TestNamespaceName 'host'
        $agentNs = New-TestNamespaceName 'agent'
        $containerNs = New-TestNamespaceName 'container'
        New-AgentNamespace $hostNs, $agentNs, $containerNs | Out-Null
        New-AgentLink vex -PeerName vex-peer -Namespace $agentNs -PeerNamespace $hostNs | Out-Null
        New-AgentLink vin -PeerName vin-peer -Namespace $agentNs -PeerNamespace $containerNs | Out-Null
        New-AgentLink vbr -PeerName vth -Namespace $agentNs | Out-Null
        Rename-AgentLink vin-peer -NewName eth0 -Namespace $containerNs
        foreach ($ns in $hostNs, $agentNs, $containerNs) { Get-AgentLink -Namespace $ns | Set-AgentLink -Up }
        Add-AgentAddress vex-peer 10.10.10.66/24 -Namespace $hostNs | Out-Null
        Add-AgentAddress eth0 10.10.10.88/24 -Namespace $containerNs | Out-Null
        $peditAvailable = Test-TcAction pedit

        $ourCookie = '6e76726564697231' + ('0' * 16)   # "nvredir1" + 8 zero tag bytes
        # the seed's MACs: M (the container's) and U (NeuVector's "NeuV" unicast MAC for it)
        $seedPedit = @(
            @{ Link = 'vex'; Priority = 10001; Protocol = 'ip'; Match = @('u8 0 1 at -14', 'u16 0x1a27 0xffff at -14', 'u32 0xf3873a27 0xffffffff at -12')
               Action = @('pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe', 'mirred egress mirror dev vbr') }
            @{ Link = 'vbr'; Priority = 5; Protocol = 'all'; Match = @('u16 0x4e65 0xffff at -14', 'u32 0x755600b4 0xffffffff at -12')
               Action = @('pedit munge offset -14 u16 set 0x1a27 munge offset -12 u32 set 0xf3873a27 pipe', 'mirred egress mirror dev vin') }
        )
        $seedPeditTyped = @(
            @{ LinkName = 'vin'; Priority = 10001; Protocol = 'ip'; UnicastOnly = $true; SourceMac = '1a:27:f3:87:3a:27'; RewriteSourceMac = '4e:65:75:56:00:b4'; MirrorTo = 'vbr' }
            @{ LinkName = 'vbr'; Priority = 172; SourceMac = '4e:65:75:56:00:b4'; RewriteSourceMac = '1a:27:f3:87:3a:27'; MirrorTo = 'vex' }
        )
        function Get-Shape { param([string[]]$Link) foreach ($l in $Link) { "${l}: " + ((Get-TcFilterShape $agentNs $l) -join ' || ') } }
        function Assert-SameAsTc([object[]]$Ours, [string]$Link) {
            $theirs = @(Get-TcFilter $agentNs $Link)
            @($Ours).Count | Should -Be $theirs.Count -Because "Get-RedirectFilter and tc list the same filters of $Link"
            for ($i = 0; $i -lt $theirs.Count; $i++) {
                $o = $Ours[$i]; $t = $theirs[$i]
                $o.LinkName | Should -BeExactly $Link
                $o.Namespace | Should -BeExactly $agentNs
                $o.Priority | Should -Be $t.Priority
                $o.Protocol | Should -BeExactly $t.Protocol
                $o.Kind | Should -BeExactly $t.Kind
                $o.Handle | Should -BeExactly $t.Handle
                $o.Parent | Should -BeExactly $t.Parent
                @($o.Filter.Keys | ForEach-Object ToString) | Should -Be @($t.Matches)
                @($o.Filter.Actions).Count | Should -Be $t.Actions.Count
                for ($j = 0; $j -lt $t.Actions.Count; $j++) {
                    $a = $o.Filter.Actions[$j]; $ta = $t.Actions[$j]
                    $a.Kind | Should -BeExactly $ta.Kind
                    $a.Index | Should -Be $ta.Index
                    $cookie = if ($a.Cookie) { [Convert]::ToHexString($a.Cookie).ToLowerInvariant() } else { $null }
                    $cookie | Should -Be $ta.Cookie
                    if ($a.Kind -eq 'mirred') {
                        $a.Direction.ToString().ToLowerInvariant() | Should -BeExactly $ta.Direction
                        $a.Mode.ToString().ToLowerInvariant() | Should -BeExactly $ta.Mode
                        $a.TargetName | Should -BeExactly $ta.Device
                        [NvRedirect.Core.Tc.TcAction]::ControlName($a.EffectiveControl) | Should -BeExactly $ta.Control
                        $o.Actions[$j] | Should -BeExactly "mirred $($ta.Direction) $($ta.Mode) dev $($ta.Device)$(if ($ta.Control -notin 'pipe', 'stolen') { " $($ta.Control)" })"
                    }
                }
            }
        }
    }
    AfterAll { Remove-TestNamespace }

    It 'tc qdisc add dev vin|vex|vbr ingress: Add-AgentQdisc adds each once' {
        $q = @(Add-AgentQdisc vin, vex, vbr -Namespace $agentNs)
        $q.LinkName | Should -Be @('vin', 'vex', 'vbr')
        $q.Change | Should -Be @('Added', 'Added', 'Added')
        @(Add-AgentQdisc vin, vex, vbr -Namespace $agentNs).Change | Should -Be @('Unchanged', 'Unchanged', 'Unchanged')
        foreach ($l in 'vin', 'vex', 'vbr') {
            @(Get-TcQdisc $agentNs $l | Where-Object kind -EQ 'ingress').Count | Should -Be 1
        }
        @(Get-TcQdisc $agentNs vth | Where-Object kind -EQ 'ingress').Count | Should -Be 0
    }

    It 'installs the two mirred-only filters (pref 10002 on vex and vin) exactly as tc -s filter show reports them' {
        $vex = Add-RedirectFilter vex -Namespace $agentNs -Priority 10002 -Action 'mirred egress mirror dev vin'
        $vin = Add-RedirectFilter vin -Namespace $agentNs -Priority 10002 -MirrorTo vex
        foreach ($f in $vex, $vin) {
            $f | Should -BeOfType ([NvRedirect.Core.Tc.RedirectFilter])
            $f.Change | Should -Be 'Added'
            $f.IsOwned | Should -BeTrue
            $f.Matches | Should -Be @('all')
        }
        Assert-SameAsTc @(Get-RedirectFilter vex -Namespace $agentNs) vex
        Assert-SameAsTc @(Get-RedirectFilter vin -Namespace $agentNs) vin
        # the returned objects are the kernel's filters too
        Assert-SameAsTc @($vex) vex
        $t = @(Get-TcFilter $agentNs vex)[0]
        $t | Should -Not -BeNullOrEmpty
        $t.Matches | Should -Be @('00000000/00000000 at 0')
        $t.Protocol | Should -BeExactly 'all'
        $t.Actions[0].Cookie | Should -BeExactly $ourCookie
        $t.Actions[0].Device | Should -BeExactly 'vin'
        (@(Get-TcFilter $agentNs vin)[0]).Actions[0].Device | Should -BeExactly 'vex'
        @(Get-RedirectFilter -Namespace $agentNs).Count | Should -Be 2
    }

    It 'moves their counters with real frames: ping from the host namespace to the container and back' {
        $before = @{}
        foreach ($l in 'vex', 'vin') { $before[$l] = (Get-RedirectFilter $l -Namespace $agentNs -Priority 10002).Packets }
        & ip netns exec $hostNs ping -c 2 -W 1 10.10.10.88 2>&1 | Out-Null
        $LASTEXITCODE | Should -Be 0 -Because 'the two catch-all mirrors join vex and vin'
        foreach ($l in 'vex', 'vin') {
            $ours = Get-RedirectFilter $l -Namespace $agentNs -Priority 10002
            $ours.Packets | Should -BeGreaterOrEqual ($before[$l] + 2) -Because "two echo requests and two replies crossed $l"
            $ours.Bytes | Should -BeGreaterThan 0
            # counters may move between two reads (neighbour and router solicitations): tc's value lies between ours
            $tc = (@(Get-TcFilter $agentNs $l)[0]).Actions[0]
            $after = Get-RedirectFilter $l -Namespace $agentNs -Priority 10002
            $tc.Packets | Should -BeGreaterOrEqual $ours.Packets
            $tc.Packets | Should -BeLessOrEqual $after.Packets
            $tc.Bytes | Should -BeGreaterOrEqual $ours.Bytes
            $tc.Bytes | Should -BeLessOrEqual $after.Bytes
        }
    }

    It 'the four pedit filters: without act_pedit (this kernel) a clear error naming it, the kernel''s text and the way out, and no change; with it, MAC rewrites read back' {
        if (-not $peditAvailable) {
            $before = Get-Shape vex, vin, vbr
            foreach ($f in $seedPedit) {
                $result = Add-RedirectFilter $f.Link -Namespace $agentNs -Priority $f.Priority -Protocol $f.Protocol -Match $f.Match -Action $f.Action -ErrorVariable err -ErrorAction SilentlyContinue
                $result | Should -BeNullOrEmpty
                Assert-AgentError $err -Id 'AddRedirectFilterActionUnavailable,NvRedirect.Cmdlets.AddRedirectFilterCommand' -Category NotInstalled `
                    -Message '*act_pedit*', '*Failed to load TC action module*', '*modprobe act_pedit*', '*Bpf backend*', '*Nothing was installed*'
                $err[0].ErrorDetails.RecommendedAction | Should -BeLike '*Failed to load TC action module*'
            }
            foreach ($f in $seedPeditTyped) {
                $result = Add-RedirectFilter -Namespace $agentNs @f -ErrorVariable err -ErrorAction SilentlyContinue
                $result | Should -BeNullOrEmpty
                Assert-AgentError $err -Id 'AddRedirectFilterActionUnavailable,NvRedirect.Cmdlets.AddRedirectFilterCommand' -Category NotInstalled -Message '*act_pedit*'
            }
            Get-Shape vex, vin, vbr | Should -Be $before
            return
        }
        # a kernel with act_pedit (Debian's stock kernel, tests/stock-kernel)
        foreach ($f in $seedPedit) { (Add-RedirectFilter $f.Link -Namespace $agentNs -Priority $f.Priority -Protocol $f.Protocol -Match $f.Match -Action $f.Action).Change | Should -Be 'Added' }
        foreach ($f in $seedPeditTyped) { (Add-RedirectFilter -Namespace $agentNs @f).Change | Should -Be 'Added' }
        (Get-RedirectFilter vex -Namespace $agentNs -Priority 10001).Actions | Should -Be @('pedit dst-mac := 4e:65:75:56:00:b4 pipe', 'mirred egress mirror dev vbr')
        (Get-RedirectFilter vin -Namespace $agentNs -Priority 10001).Actions | Should -Be @('pedit src-mac := 4e:65:75:56:00:b4 pipe', 'mirred egress mirror dev vbr')
        (Get-RedirectFilter vbr -Namespace $agentNs -Priority 5).Matches | Should -Be @('dst-mac 4e:65:75:56:00:b4')
        foreach ($x in @(@{ L = 'vex'; P = 10001 }, @{ L = 'vbr'; P = 5 }, @{ L = 'vin'; P = 10001 }, @{ L = 'vbr'; P = 172 })) { Remove-RedirectFilter $x.L $x.P -Namespace $agentNs }
    }

    It 'installs the seed''s other four rules in mirred-only form (same matches) and reads their MACs back' {
        $M = '1a:27:f3:87:3a:27'; $U = '4e:65:75:56:00:b4'
        (Add-RedirectFilter vex -Namespace $agentNs -Priority 10001 -Protocol ip -UnicastOnly -DestinationMac $M -MirrorTo vbr).Change | Should -Be 'Added'
        (Add-RedirectFilter vbr -Namespace $agentNs -Priority 5 -Match 'u16 0x4e65 0xffff at -14', 'u32 0x755600b4 0xffffffff at -12' -Action 'mirred egress mirror dev vin').Change | Should -Be 'Added'
        (Add-RedirectFilter vin -Namespace $agentNs -Priority 10001 -Protocol ip -Match 'u8 0 1 at -14', 'u32 0x1a27f387 0xffffffff at -8', 'u16 0x3a27 0xffff at -4' -Action 'mirred egress mirror dev vbr').Change | Should -Be 'Added'
        (Add-RedirectFilter vbr -Namespace $agentNs -Priority 172 -SourceMac $U -MirrorTo vex).Change | Should -Be 'Added'
        (Get-RedirectFilter vex -Namespace $agentNs -Priority 10001).Matches | Should -Be @("dst-mac $M")
        (Get-RedirectFilter vin -Namespace $agentNs -Priority 10001).Matches | Should -Be @('dst-mac-unicast', "src-mac $M")
        (Get-RedirectFilter vbr -Namespace $agentNs -Priority 5).Matches | Should -Be @("dst-mac $U")
        (Get-RedirectFilter vbr -Namespace $agentNs -Priority 172).Matches | Should -Be @("src-mac $U")
        @(Get-TcFilter $agentNs vin | Where-Object Priority -EQ 10001)[0].Matches | Should -Be @('00000000/00000100 at -16', '1a27f387/ffffffff at -8', '3a270000/ffff0000 at -4')
        foreach ($l in 'vex', 'vin', 'vbr') { Assert-SameAsTc @(Get-RedirectFilter $l -Namespace $agentNs) $l }
        @(Get-RedirectFilter -Namespace $agentNs).Count | Should -Be 6
    }

    It 'adds the same filter twice: Unchanged, and tc still shows one node' {
        $before = Get-Shape vex
        $again = Add-RedirectFilter vex -Namespace $agentNs -Priority 10002 -Action 'mirred egress mirror dev vin'
        $again.Change | Should -Be 'Unchanged'
        Get-Shape vex | Should -Be $before
        @(Get-TcFilter $agentNs vex | Where-Object Priority -EQ 10002).Count | Should -Be 1
        # the typed form of the same filter is the same filter
        (Add-RedirectFilter vex -Namespace $agentNs -Priority 10002 -MirrorTo vin).Change | Should -Be 'Unchanged'
    }

    It 'replaces a different filter at a taken pref (Replaced) and tc shows one node' {
        $r = Add-RedirectFilter vbr -Namespace $agentNs -Priority 172 -SourceMac 4e:65:75:56:00:b4 -RedirectTo vex
        $r.Change | Should -Be 'Replaced'
        $r.Actions | Should -Be @('mirred egress redirect dev vex')
        $nodes = @(Get-TcFilter $agentNs vbr | Where-Object Priority -EQ 172)
        $nodes.Count | Should -Be 1
        $nodes[0].Actions[0].Mode | Should -BeExactly 'redirect'
        (Add-RedirectFilter vbr -Namespace $agentNs -Priority 172 -SourceMac 4e:65:75:56:00:b4 -MirrorTo vex).Change | Should -Be 'Replaced'
    }

    It 'removes one pref of one device and leaves every other filter in place' {
        $before = @{}
        foreach ($l in 'vex', 'vin', 'vbr') { $before[$l] = @(Get-TcFilterShape $agentNs $l) }
        Remove-RedirectFilter vex 10001 -Namespace $agentNs | Should -BeNullOrEmpty
        @(Get-TcFilter $agentNs vex).Priority | Should -Be @(10002)
        @(Get-TcFilterShape $agentNs vex) | Should -Be @($before['vex'] | Where-Object { $_ -notlike '* pref 10001 *' })
        @(Get-TcFilterShape $agentNs vin) | Should -Be $before['vin']
        @(Get-TcFilterShape $agentNs vbr) | Should -Be $before['vbr']
        (Add-RedirectFilter vex -Namespace $agentNs -Priority 10001 -Protocol ip -UnicastOnly -DestinationMac 1a:27:f3:87:3a:27 -MirrorTo vbr).Change | Should -Be 'Added'
    }

    It 'round trip: the objects read back, removed and added again, give the same tc filter show' {
        $before = Get-Shape vex, vin, vbr
        $saved = @(Get-RedirectFilter -Namespace $agentNs)
        $saved.Count | Should -Be 6
        $saved | Remove-RedirectFilter
        @(Get-RedirectFilter -Namespace $agentNs) | Should -BeNullOrEmpty
        foreach ($l in 'vex', 'vin', 'vbr') { @(Get-TcFilter $agentNs $l) | Should -BeNullOrEmpty }
        $added = @($saved | Add-RedirectFilter)
        $added.Change | Should -Be (@('Added') * 6)
        Get-Shape vex, vin, vbr | Should -Be $before
    }

    It 'tells its filters from a filter added with tc: Remove and Add refuse it without -Force, -Owned leaves it out' {
        Invoke-Tc -n $agentNs filter add dev vbr pref 300 parent ffff: protocol arp u32 match u8 0 0 action mirred egress mirror dev vth | Out-Null
        $theirs = Get-RedirectFilter vbr -Namespace $agentNs -Priority 300
        $theirs.IsOwned | Should -BeFalse
        $theirs.Tag | Should -BeNullOrEmpty
        $theirs.Protocol | Should -BeExactly 'arp'
        @(Get-RedirectFilter -Namespace $agentNs -Owned).Priority | Should -Not -Contain 300

        Remove-RedirectFilter vbr 300 -Namespace $agentNs -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RemoveRedirectFilterNotOwned,NvRedirect.Cmdlets.RemoveRedirectFilterCommand' -Category PermissionDenied -Message '*pref 300*', '*not installed by NvRedirect*', '*-Force*'
        $theirs | Remove-RedirectFilter -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RemoveRedirectFilterNotOwned,NvRedirect.Cmdlets.RemoveRedirectFilterCommand' -Category PermissionDenied
        Add-RedirectFilter vbr -Namespace $agentNs -Priority 300 -MirrorTo vth -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-AgentError $err -Id 'AddRedirectFilterNotOwned,NvRedirect.Cmdlets.AddRedirectFilterCommand' -Category PermissionDenied -Message '*not replaced*'
        @(Get-TcFilter $agentNs vbr | Where-Object Priority -EQ 300).Count | Should -Be 1
        (@(Get-TcFilter $agentNs vbr | Where-Object Priority -EQ 300)[0]).Actions[0].Cookie | Should -BeNullOrEmpty

        # cleaning up NvRedirect's filters of vbr leaves the other one
        Get-RedirectFilter vbr -Namespace $agentNs -Owned | Remove-RedirectFilter
        @(Get-TcFilter $agentNs vbr).Priority | Should -Be @(300)
        Remove-RedirectFilter vbr 300 -Namespace $agentNs -Force
        @(Get-TcFilter $agentNs vbr) | Should -BeNullOrEmpty
    }

    It 'stores a tag in the cookie and lists by it' {
        $a = Add-RedirectFilter vbr -Namespace $agentNs -Priority 5 -Match 'u16 0x4e65 0xffff at -14', 'u32 0x755600b4 0xffffffff at -12' -Action 'mirred egress mirror dev vin' -Tag web-1
        $b = Add-RedirectFilter vbr -Namespace $agentNs -Priority 172 -SourceMac 4e:65:75:56:00:b4 -MirrorTo vex -Tag 'a tag longer than eight bytes'
        $a.Tag | Should -BeExactly 'web-1'
        $b.Tag | Should -Match '^0x[0-9a-f]{16}$'
        (@(Get-TcFilter $agentNs vbr | Where-Object Priority -EQ 5)[0]).Actions[0].Cookie | Should -BeExactly ('6e76726564697231' + '7765622d31000000')
        @(Get-RedirectFilter -Namespace $agentNs -Tag web-1).Priority | Should -Be @(5)
        @(Get-RedirectFilter -Namespace $agentNs -Tag 'a tag longer than eight bytes').Priority | Should -Be @(172)
        # the same filter with another tag is another filter: replaced
        (Add-RedirectFilter vbr -Namespace $agentNs -Priority 5 -Match 'u16 0x4e65 0xffff at -14', 'u32 0x755600b4 0xffffffff at -12' -Action 'mirred egress mirror dev vin').Change | Should -Be 'Replaced'
    }

    It 'sends nothing with -WhatIf' {
        $before = Get-Shape vex, vin, vbr
        Add-RedirectFilter vex -Namespace $agentNs -Priority 20 -Action 'mirred egress mirror dev vbr' -WhatIf | Should -BeNullOrEmpty
        Add-RedirectFilter vex -Namespace $agentNs -Priority 10002 -RedirectTo vin -WhatIf | Should -BeNullOrEmpty
        Get-RedirectFilter -Namespace $agentNs | Remove-RedirectFilter -WhatIf
        Remove-RedirectFilter vex 10002 -Namespace $agentNs -WhatIf
        Get-Shape vex, vin, vbr | Should -Be $before
    }

    It 'reports <Case> as <Id>, changing nothing' -ForEach @(
        @{ Case = 'a device that does not exist'; Cmd = 'Add-RedirectFilter'; Id = 'LinkNotFound'; Category = 'ObjectNotFound'; Message = '*nope*'
           Params = @{ LinkName = 'nope'; Priority = 1; Action = 'mirred egress mirror dev vin' } }
        @{ Case = 'a mirred target that does not exist'; Cmd = 'Add-RedirectFilter'; Id = 'LinkNotFound'; Category = 'ObjectNotFound'; Message = '*gone*'
           Params = @{ LinkName = 'vex'; Priority = 1; Action = 'mirred egress mirror dev gone' } }
        @{ Case = 'a namespace that does not exist'; Cmd = 'Add-RedirectFilter'; Id = 'NamespaceNotFound'; Category = 'ObjectNotFound'; Message = '*does not exist*'
           Params = @{ LinkName = 'vex'; Priority = 1; Action = 'mirred egress mirror dev vin'; Namespace = 'missing' } }
        @{ Case = 'a match that is not tc syntax'; Cmd = 'Add-RedirectFilter'; Id = 'InvalidArgument'; Category = 'InvalidArgument'; Message = @("*'u17'*", '*Example:*')
           Params = @{ LinkName = 'vex'; Priority = 1; Match = 'u17 1 1'; Action = 'mirred egress mirror dev vin' } }
        @{ Case = 'an action that is not tc syntax'; Cmd = 'Add-RedirectFilter'; Id = 'InvalidArgument'; Category = 'InvalidArgument'; Message = @("*'sideways'*", '*Example:*')
           Params = @{ LinkName = 'vex'; Priority = 1; Action = 'mirred sideways mirror dev vin' } }
        @{ Case = 'a protocol that is not one'; Cmd = 'Add-RedirectFilter'; Id = 'InvalidArgument'; Category = 'InvalidArgument'; Message = "*'ipx'*"
           Params = @{ LinkName = 'vex'; Priority = 1; Protocol = 'ipx'; Action = 'mirred egress mirror dev vin' } }
        @{ Case = 'a MAC that is not one'; Cmd = 'Add-RedirectFilter'; Id = 'InvalidArgument'; Category = 'InvalidArgument'; Message = '*-DestinationMac*'
           Params = @{ LinkName = 'vex'; Priority = 1; DestinationMac = '1a:27'; MirrorTo = 'vin' } }
        @{ Case = 'a device without ingress qdisc'; Cmd = 'Add-RedirectFilter'; Id = 'InvalidArgument'; Category = 'InvalidArgument'; Message = '*no ingress qdisc*'
           Params = @{ LinkName = 'vth'; Priority = 1; MirrorTo = 'vbr' } }
        @{ Case = 'a typed filter without target'; Cmd = 'Add-RedirectFilter'; Id = 'InvalidTypedForm'; Category = 'InvalidArgument'; Message = '*-MirrorTo or -RedirectTo*'
           Params = @{ LinkName = 'vex'; Priority = 1; DestinationMac = '1a:27:f3:87:3a:27' } }
        @{ Case = 'a typed filter with two targets'; Cmd = 'Add-RedirectFilter'; Id = 'InvalidTypedForm'; Category = 'InvalidArgument'; Message = '*one of them*'
           Params = @{ LinkName = 'vex'; Priority = 1; MirrorTo = 'vin'; RedirectTo = 'vbr' } }
        @{ Case = 'a pref that holds nothing'; Cmd = 'Remove-RedirectFilter'; Id = 'NotFound'; Category = 'ObjectNotFound'; Message = '*pref 4242*'
           Params = @{ LinkName = 'vex'; Priority = 4242 } }
        @{ Case = 'removing from a device without ingress qdisc'; Cmd = 'Remove-RedirectFilter'; Id = 'NotFound'; Category = 'ObjectNotFound'; Message = '*vth*'
           Params = @{ LinkName = 'vth'; Priority = 1 } }
        @{ Case = 'listing a device that does not exist'; Cmd = 'Get-RedirectFilter'; Id = 'LinkNotFound'; Category = 'ObjectNotFound'; Message = '*nope*'
           Params = @{ LinkName = 'nope' } }
    ) {
        $p = $Params.Clone()
        $p.Namespace = if ($p.ContainsKey('Namespace')) { "$(Get-TestRunStem)$($p.Namespace)" } else { $agentNs }
        $before = Get-Shape vex, vin, vbr, vth
        $records = Get-ErrorRecord { & $Cmd @p }
        $noDash = $Cmd -replace '-', ''
        Assert-AgentError $records -Id "$noDash$Id,NvRedirect.Cmdlets.${noDash}Command" -Category $Category -Message $Message
        Get-Shape vex, vin, vbr, vth | Should -Be $before
    }

    It 'binds links from Get-AgentLink and filters from Get-RedirectFilter by property name' {
        $q = @(Get-AgentLink vth -Namespace $agentNs | Add-AgentQdisc)
        $q.Change | Should -Be @('Added')
        (Get-AgentLink vth -Namespace $agentNs | Add-RedirectFilter -Priority 9 -MirrorTo vbr).LinkName | Should -BeExactly 'vth'
        @(Get-AgentLink vth -Namespace $agentNs | Get-RedirectFilter).Priority | Should -Be @(9)
        Get-AgentLink vth -Namespace $agentNs | Get-RedirectFilter | Remove-RedirectFilter
        @(Get-TcFilter $agentNs vth) | Should -BeNullOrEmpty
        Remove-AgentQdisc vth -Namespace $agentNs
    }

    It 'formats filters as a table of device, pref, protocol, matches, actions, packets and ownership' {
        $text = (Get-RedirectFilter vex -Namespace $agentNs | Out-String -Width 250) -split "`n" | ForEach-Object TrimEnd
        ($text | Where-Object { $_ -match '^\s*LinkName\s' }) | Should -Match 'LinkName\s+Pref\s+Protocol\s+Matches\s+Actions\s+Packets\s+Owned\s+Change'
        ($text | Where-Object { $_ -match '^vex\s+10002\b' }) | Should -Match 'all\s+all\s+mirred egress mirror dev vin\s+\d+\s+True'
    }
}
