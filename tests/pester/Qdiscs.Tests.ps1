# Ingress qdisc management (Add/Get/Remove-AgentQdisc) against `tc -j qdisc show`, in uniquely named namespaces whose
# devices are made with iproute2. Nothing may ever remove a qdisc from a device the user did not name.
BeforeAll { Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force; Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force }
AfterAll { if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace } }

Describe 'Ingress qdiscs' {
    BeforeAll {
        $ns = New-TestNamespace 'qdisc'
        Invoke-Ip -n $ns link add q0 type veth peer name q1 | Out-Null
        Invoke-Ip -n $ns link add q2 type veth peer name q3 | Out-Null
        foreach ($l in 'q0', 'q1', 'q2', 'q3') { Invoke-Ip -n $ns link set $l up | Out-Null }
        # every qdisc of the namespace, one comparable line each
        function Get-QdiscState { @(Get-TcQdisc $ns | ForEach-Object { "$($_.dev) $($_.kind) $($_.handle) $(if ($_.PSObject.Properties['parent']) { $_.parent } else { 'root' })" } | Sort-Object) }
        function Get-Ingress([string]$Link) { @(Get-TcQdisc $ns $Link | Where-Object kind -EQ 'ingress') }
    }
    AfterAll { Remove-TestNamespace }

    It 'adds an ingress qdisc (Added) and reports Unchanged the second time, as tc shows it' {
        $q = Add-AgentQdisc q0 -Namespace $ns
        $q | Should -BeOfType ([NvRedirect.Core.Tc.AgentQdisc])
        $q.Change | Should -Be 'Added'
        $q.Namespace | Should -BeExactly $ns
        $q.LinkName | Should -BeExactly 'q0'
        $q.Kind | Should -BeExactly 'ingress'
        $q.Handle | Should -BeExactly 'ffff:'
        $q.Parent | Should -BeExactly 'ffff:fff1'
        $q.LinkIndex | Should -Be (Get-IpLink $ns q0).ifindex
        $tc = Get-Ingress q0
        $tc.Count | Should -Be 1
        $tc[0].handle | Should -BeExactly 'ffff:'
        $tc[0].parent | Should -BeExactly 'ffff:fff1'
        (Add-AgentQdisc q0 -Namespace $ns).Change | Should -Be 'Unchanged'
        (Get-Ingress q0).Count | Should -Be 1
    }

    It 'keeps the filters of a qdisc that is already there' {
        Invoke-Tc -n $ns filter add dev q0 pref 7 parent ffff: protocol all u32 match u8 0 0 action mirred egress mirror dev q2 | Out-Null
        (Add-AgentQdisc q0 -Namespace $ns).Change | Should -Be 'Unchanged'
        @(Get-TcFilter $ns q0).Priority | Should -Be @(7)
    }

    It 'lists every qdisc of the namespace exactly as tc does' {
        $mine = @(Get-AgentQdisc -Namespace $ns | ForEach-Object { "$($_.LinkName) $($_.Kind) $($_.Handle) $($_.Parent)" } | Sort-Object)
        $mine | Should -Be (Get-QdiscState)
        @(Get-AgentQdisc -Namespace $ns -Kind ingress).LinkName | Should -Be @('q0')
        @(Get-AgentQdisc q0 -Namespace $ns).Kind | Should -Contain 'ingress'
        @(Get-AgentQdisc 'q*' -Namespace $ns | Select-Object -ExpandProperty LinkName -Unique | Sort-Object) | Should -Be @('q0', 'q1', 'q2', 'q3')
        @(Get-AgentQdisc q1 -Namespace $ns -Kind ingress) | Should -BeNullOrEmpty
    }

    It 'takes links from Get-AgentLink by LinkName and Namespace' {
        $added = @(Get-AgentLink q1, q2 -Namespace $ns | Add-AgentQdisc)
        $added.LinkName | Should -Be @('q1', 'q2')
        $added.Change | Should -Be @('Added', 'Added')
        @(Get-AgentLink q1 -Namespace $ns | Get-AgentQdisc -Kind ingress).Count | Should -Be 1
        (Get-Ingress q1).Count | Should -Be 1
        (Get-Ingress q2).Count | Should -Be 1
    }

    It 'removes the ingress qdisc of the named device only' {
        (Get-Ingress q3).Count | Should -Be 0
        $others = @(Get-QdiscState | Where-Object { $_ -notlike 'q1 ingress *' })
        Remove-AgentQdisc q1 -Namespace $ns | Should -BeNullOrEmpty
        (Get-Ingress q1).Count | Should -Be 0
        Get-QdiscState | Should -Be $others
    }

    It 'does not remove a qdisc holding a filter NvRedirect did not install, unless -Force' {
        $before = Get-QdiscState
        Remove-AgentQdisc q0 -Namespace $ns -ErrorVariable err -ErrorAction SilentlyContinue
        Assert-AgentError $err -Id 'RemoveAgentQdiscNotOwned,NvRedirect.Cmdlets.RemoveAgentQdiscCommand' -Category PermissionDenied -Message '*pref 7*', '*-Force*'
        Get-QdiscState | Should -Be $before
        @(Get-TcFilter $ns q0).Priority | Should -Be @(7)
        Remove-AgentQdisc q0 -Namespace $ns -Force
        (Get-Ingress q0).Count | Should -Be 0
        Get-QdiscState | Should -Be @($before | Where-Object { $_ -notlike 'q0 ingress *' })
    }

    It 'removes a qdisc holding only filters NvRedirect installed, with them' {
        Add-AgentQdisc q0 -Namespace $ns | Out-Null
        Add-RedirectFilter q0 -Namespace $ns -Priority 3 -MirrorTo q2 | Out-Null
        Remove-AgentQdisc q0 -Namespace $ns
        (Get-Ingress q0).Count | Should -Be 0
        @(Get-Ingress q2).Count | Should -Be 1
    }

    It 'is not an error to remove an ingress qdisc that is not there (nothing to do, said with -Verbose)' {
        $before = Get-QdiscState
        $verbose = Remove-AgentQdisc q3 -Namespace $ns -Verbose -ErrorVariable err 4>&1
        $err | Should -BeNullOrEmpty
        "$verbose" | Should -BeLike '*no ingress qdisc*'
        Get-QdiscState | Should -Be $before
    }

    It 'changes nothing with -WhatIf' {
        $before = Get-QdiscState
        Add-AgentQdisc q3 -Namespace $ns -WhatIf | Should -BeNullOrEmpty
        Remove-AgentQdisc q2 -Namespace $ns -WhatIf
        Get-AgentQdisc -Namespace $ns -Kind ingress | Remove-AgentQdisc -WhatIf
        Get-QdiscState | Should -Be $before
    }

    It 'reports <Case> as <Id>' -ForEach @(
        @{ Case = 'a device that does not exist'; Cmd = 'Add-AgentQdisc'; Id = 'LinkNotFound'; Category = 'ObjectNotFound'; Params = @{ LinkName = 'nope' } }
        @{ Case = 'a namespace that does not exist'; Cmd = 'Add-AgentQdisc'; Id = 'NamespaceNotFound'; Category = 'ObjectNotFound'; Params = @{ LinkName = 'q0'; Namespace = 'missing' } }
        @{ Case = 'removing from a device that does not exist'; Cmd = 'Remove-AgentQdisc'; Id = 'LinkNotFound'; Category = 'ObjectNotFound'; Params = @{ LinkName = 'nope' } }
        @{ Case = 'listing a device that does not exist'; Cmd = 'Get-AgentQdisc'; Id = 'LinkNotFound'; Category = 'ObjectNotFound'; Params = @{ LinkName = 'nope' } }
        @{ Case = 'listing a namespace that does not exist'; Cmd = 'Get-AgentQdisc'; Id = 'NamespaceNotFound'; Category = 'ObjectNotFound'; Params = @{ Namespace = 'missing' } }
    ) {
        $p = $Params.Clone()
        $p.Namespace = if ($p.ContainsKey('Namespace')) { "$(Get-TestRunStem)$($p.Namespace)" } else { $ns }
        $before = Get-QdiscState
        $noDash = $Cmd -replace '-', ''
        Assert-AgentError (Get-ErrorRecord { & $Cmd @p }) -Id "$noDash$Id,NvRedirect.Cmdlets.${noDash}Command" -Category $Category
        Get-QdiscState | Should -Be $before
    }

    It 'formats qdiscs as a table of device, kind, handle, parent and change' {
        $text = (Get-AgentQdisc q2 -Namespace $ns -Kind ingress | Out-String -Width 200) -split "`n" | ForEach-Object TrimEnd
        ($text | Where-Object { $_ -match '^\s*LinkName\s' }) | Should -Match 'LinkName\s+Kind\s+Handle\s+Parent\s+Change'
        ($text | Where-Object { $_ -match '^q2\s' }) | Should -Match '^q2\s+ingress\s+ffff:\s+ffff:fff1$'
    }
}
