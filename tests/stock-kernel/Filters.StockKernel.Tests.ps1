# The filter cmdlets' pedit path, proven under Debian's stock kernel (act_pedit as a module): the seed's six filters
# (four with pedit), given as tc text and typed, install, read back as MAC rewrites exactly as `tc filter show` prints their
# keys, stay single on a second add, and survive a Get | Remove | Add round trip unchanged. Runs inside
#   tests/stock-kernel/pester.sh tests/stock-kernel/Filters.StockKernel.Tests.ps1
# (the mirred-only half of the story and every error case run on this machine: tests/pester/Filters.Tests.ps1, which
# also passes whole under the stock kernel). On a kernel without act_pedit each test is skipped with that reason.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot '../pester/TestSupport.psm1') -Force
    $script:pedit = Test-TcAction pedit
    if ($pedit) {
        $script:ns = New-TestNamespaceName 'skf'
        New-AgentNamespace $ns | Out-Null
        New-AgentLink vex -PeerName vex-peer -Namespace $ns | Out-Null
        New-AgentLink vin -PeerName vin-peer -Namespace $ns | Out-Null
        New-AgentLink vbr -PeerName vth -Namespace $ns | Out-Null
        Add-AgentQdisc vex, vin, vbr -Namespace $ns | Out-Null
    }
    function Get-Shape { foreach ($l in 'vex', 'vin', 'vbr') { "${l}: " + ((Get-TcFilterShape $ns $l) -join ' || ') } }
}

AfterAll { if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace } }

Describe 'Redirect filters with pedit (stock kernel)' {
    BeforeEach {
        if (-not $pedit) { Set-ItResult -Skipped -Because 'this kernel has no act_pedit; the test runs under tests/stock-kernel/pester.sh' }
    }

    It 'installs the seed''s six filters (four with pedit), as tc text and typed; tc shows exactly them' {
        if (-not $pedit) { return }
        $added = @(
            Add-RedirectFilter vex -Namespace $ns -Priority 10001 -Protocol ip -Match 'u8 0 1 at -14', 'u16 0x1a27 0xffff at -14', 'u32 0xf3873a27 0xffffffff at -12' `
                -Action 'pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe', 'mirred egress mirror dev vbr'
            Add-RedirectFilter vbr -Namespace $ns -Priority 5 -Match 'u16 0x4e65 0xffff at -14', 'u32 0x755600b4 0xffffffff at -12' `
                -Action 'pedit munge offset -14 u16 set 0x1a27 munge offset -12 u32 set 0xf3873a27 pipe', 'mirred egress mirror dev vin'
            Add-RedirectFilter vin -Namespace $ns -Priority 10001 -Protocol ip -UnicastOnly -SourceMac 1a:27:f3:87:3a:27 -RewriteSourceMac 4e:65:75:56:00:b4 -MirrorTo vbr
            Add-RedirectFilter vbr -Namespace $ns -Priority 172 -SourceMac 4e:65:75:56:00:b4 -RewriteSourceMac 1a:27:f3:87:3a:27 -MirrorTo vex
            Add-RedirectFilter vex -Namespace $ns -Priority 10002 -Protocol all -Match 'u8 0 0' -Action 'mirred egress mirror dev vin'
            Add-RedirectFilter vin -Namespace $ns -Priority 10002 -Protocol all -Match 'u8 0 0' -Action 'mirred egress mirror dev vex'
        )
        $added.Change | Should -Be @('Added', 'Added', 'Added', 'Added', 'Added', 'Added')
        $added | ForEach-Object { $_.IsOwned | Should -BeTrue }
        # exactly these nodes, nothing else, as tc itself lists them
        foreach ($case in @(@{ L = 'vex'; P = '10001 10002' }, @{ L = 'vin'; P = '10001 10002' }, @{ L = 'vbr'; P = '5 172' })) {
            ((@(Get-TcFilter $ns $case.L | Where-Object Handle -Match '::') | ForEach-Object Priority | Sort-Object) -join ' ') | Should -Be (($case.P -split ' ' | ForEach-Object { [int]$_ } | Sort-Object) -join ' ')
        }
    }

    It 'reads their keys back as MAC rewrites, as tc prints them' {
        if (-not $pedit) { return }
        $vex = Get-RedirectFilter vex -Namespace $ns -Priority 10001
        $vex.Matches | Should -Be @('dst-mac 1a:27:f3:87:3a:27')
        $vex.Actions | Should -Be @('pedit dst-mac := 4e:65:75:56:00:b4 pipe', 'mirred egress mirror dev vbr')
        (Get-RedirectFilter vin -Namespace $ns -Priority 10001).Actions | Should -Be @('pedit src-mac := 4e:65:75:56:00:b4 pipe', 'mirred egress mirror dev vbr')
        (Get-RedirectFilter vbr -Namespace $ns -Priority 5).Actions | Should -Be @('pedit dst-mac := 1a:27:f3:87:3a:27 pipe', 'mirred egress mirror dev vin')
        (Get-RedirectFilter vbr -Namespace $ns -Priority 172).Actions | Should -Be @('pedit src-mac := 1a:27:f3:87:3a:27 pipe', 'mirred egress mirror dev vex')
        $tc = @(Get-TcFilter $ns vex)[0]
        $tc.Actions[0].Kind | Should -BeExactly 'pedit'
        $tc.Actions[0].Keys | Should -Be @('at -16: val 00004e65 mask ffff0000', 'at -12: val 755600b4 mask 00000000')
        $tc.Actions[0].Cookie | Should -BeExactly ('6e76726564697231' + ('0' * 16))
        $ours = (Get-RedirectFilter vex -Namespace $ns -Priority 10001).Filter.Actions[0]
        @($ours.Keys | ForEach-Object { '{0}' -f $_ }) | Should -Be @($tc.Actions[0].Keys)
        @(Get-TcFilter $ns vin)[0].Actions[0].Keys | Should -Be @('at -8: val 4e657556 mask 00000000', 'at -4: val 00b40000 mask 0000ffff')
    }

    It 'adds the same pedit filter twice: Unchanged, one node' {
        if (-not $pedit) { return }
        $before = Get-Shape
        (Add-RedirectFilter vex -Namespace $ns -Priority 10001 -Protocol ip -UnicastOnly -DestinationMac 1a:27:f3:87:3a:27 -RewriteDestinationMac 4e:65:75:56:00:b4 -MirrorTo vbr).Change | Should -Be 'Unchanged'
        Get-Shape | Should -Be $before
    }

    It 'round trip: Get | Remove, then the saved objects added again, give the same tc filter show' {
        if (-not $pedit) { return }
        $before = Get-Shape
        $saved = @(Get-RedirectFilter -Namespace $ns)
        $saved.Count | Should -Be 6
        $saved | Remove-RedirectFilter
        @(Get-RedirectFilter -Namespace $ns) | Should -BeNullOrEmpty
        @($saved | Add-RedirectFilter).Change | Should -Be @('Added', 'Added', 'Added', 'Added', 'Added', 'Added')
        Get-Shape | Should -Be $before
    }
}
