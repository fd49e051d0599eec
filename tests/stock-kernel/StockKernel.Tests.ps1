# Pester tests that show the stock-kernel harness carries a whole Pester run: the module loads, its
# cmdlets work against the guest's kernel, and the seed's pedit filter, which this machine's kernel
# rejects, is accepted on a veth pair the module made. Run them inside the guest with
#   tests/stock-kernel/run.sh -- dotnet pwsh -NoProfile -File tests/run-pester.ps1 \
#       -PesterPsd1 ~/.nuget/packages/pester/5.7.1/tools/Pester.psd1 -Path tests/stock-kernel/StockKernel.Tests.ps1
# On the host the kernel-dependent test is skipped: run.sh sets NVREDIRECT_STOCK_KERNEL in the guest.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    $script:suffix = [guid]::NewGuid().ToString('N').Substring(0, 8)
    $script:made = [System.Collections.Generic.List[string]]::new()
    function New-TestNamespace([string]$Role) {
        $name = "nvsk-$Role-$script:suffix"
        New-AgentNamespace $name | Out-Null
        $script:made.Add($name)
        $name
    }
}

AfterAll {
    foreach ($name in $script:made) { Remove-AgentNamespace $name -Confirm:$false -ErrorAction SilentlyContinue }
}

Describe 'NvRedirect on the kernel it runs on' {
    It 'creates, lists and removes a namespace' {
        $name = New-TestNamespace 'ns'
        (Get-AgentNamespace -Name $name).Name | Should -Be $name
        Remove-AgentNamespace $name -Confirm:$false
        Get-AgentNamespace | Where-Object Name -EQ $name | Should -BeNullOrEmpty
    }

    It 'accepts the seed pedit filter on a veth pair made by New-AgentLink' -Skip:(-not $env:NVREDIRECT_STOCK_KERNEL) {
        $ns = New-TestNamespace 'agent'
        New-AgentLink vex -PeerName vbr -Namespace $ns | Out-Null
        Set-AgentLink vex -Namespace $ns -Up
        Set-AgentLink vbr -Namespace $ns -Up
        ip netns exec $ns tc qdisc add dev vex ingress
        $LASTEXITCODE | Should -Be 0
        # the seed's vex pref 10001 filter (docs/kernel-interfaces.md, "The seed's pedit filter, field by field"), through iproute2 for now
        $out = ip netns exec $ns tc filter add dev vex pref 10001 parent ffff: protocol ip u32 `
            match u8 0 1 at -14 match u16 0x1a27 0xffff at -14 match u32 0xf3873a27 0xffffffff at -12 `
            action pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe `
            action mirred egress mirror dev vbr 2>&1
        $LASTEXITCODE | Should -Be 0 -Because "tc said: $out"
        $shown = (ip netns exec $ns tc filter show dev vex ingress) -join "`n"
        $shown | Should -Match 'pedit action pipe keys 2'
        $shown | Should -Match 'key #0 +at -16: val 00004e65 mask ffff0000'
        $shown | Should -Match 'mirred \(Egress Mirror to device vbr\)'
    }
}
