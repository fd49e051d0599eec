# The interception's Pedit backend, proven under Debian's stock kernel (act_pedit as a module): the same
# ping-and-capture story as the Bpf proof in tests/pester/, with Auto choosing Pedit. Runs inside
#   tests/stock-kernel/pester.sh tests/stock-kernel/Interception.StockKernel.Tests.ps1
# On a kernel without act_pedit (this project's machines) each test is skipped with that reason.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    $script:suffix = [guid]::NewGuid().ToString('N').Substring(0, 6)
    $script:agent = "nvski-a-$suffix"; $script:container = "nvski-c-$suffix"; $script:hostNs = "nvski-h-$suffix"
    $script:stock = [bool]$env:NVREDIRECT_STOCK_KERNEL
    function Watch-During([scriptblock]$Traffic, [string[]]$Interface, [string]$Namespace, [int]$Count = 12) {
        # start the traffic in the background, capture meanwhile: the traffic lasts longer than the capture needs
        # (under user-mode-linux on a loaded host the job and the capture sockets can take seconds to start), and the
        # capture ends as soon as it has -Count frames
        $job = Start-ThreadJob -ScriptBlock $Traffic
        try { Watch-AgentTraffic $Interface -Namespace $Namespace -Count $Count -TimeoutSeconds 15 }
        finally { $job | Wait-Job -Timeout 15 | Out-Null; $job | Remove-Job -Force }
    }
    if ($stock) {
        $script:lab = New-SeedTopology -AgentNamespace $agent -ContainerNamespace $container -HostNamespace $hostNs
    }
}

AfterAll {
    if ($stock) { Remove-SeedTopology -AgentNamespace $agent -ContainerNamespace $container -HostNamespace $hostNs -ErrorAction SilentlyContinue }
}

Describe 'Interception with the Pedit backend (stock kernel)' {
    BeforeEach {
        if (-not $stock) { Set-ItResult -Skipped -Because 'this kernel has no act_pedit; the test runs under tests/stock-kernel/pester.sh' }
    }

    It 'Auto chooses Pedit because the kernel has act_pedit' {
        if (-not $stock) { return }
        $lab.Interception.Backend | Should -Be 'Pedit'
        $lab.Interception.BackendReason | Should -Match 'has act_pedit'
        $shown = (tc -n $agent filter show dev vex ingress) -join "`n"
        $shown | Should -Match 'pedit action pipe keys 2'
        $shown | Should -Match 'key #0 +at -16: val 00004e65 mask ffff0000'
        $shown | Should -Match 'mirred \(Egress Mirror to device vbr\)'
        (tc -n $agent filter show dev vbr ingress) -join "`n" | Should -Match 'pref 172 u32'
    }

    It 'steers pings to vbr with the ucmac and they get no reply while nothing runs on vth' {
        if (-not $stock) { return }
        $frames = Watch-During { ip netns exec $using:hostNs ping -c 15 -i 0.3 -W 1 10.10.10.88 } vex, vbr $agent
        $icmp = $frames | Where-Object Protocol -EQ ICMP
        ($icmp | Where-Object Interface -EQ vex | Select-Object -First 1).DestinationMac | Should -Be '1a:27:f3:87:3a:27'
        ($icmp | Where-Object Interface -EQ vbr | Select-Object -First 1).DestinationMac | Should -Be '4e:65:75:56:00:b4'
        ip netns exec $hostNs ping -c 1 -W 1 10.10.10.88 | Out-Null
        $LASTEXITCODE | Should -Not -Be 0
    }

    It 'passes pings once vth bounces frames back, with the real MAC restored in both directions' {
        if (-not $stock) { return }
        tc -n $agent qdisc add dev vth ingress
        tc -n $agent filter add dev vth parent ffff: pref 1 u32 match u8 0 0 action mirred egress redirect dev vth
        $inside = Watch-During { ip netns exec $using:hostNs ping -c 15 -i 0.3 -W 1 10.10.10.88 } eth0 $container
        $icmp = $inside | Where-Object Protocol -EQ ICMP
        ($icmp | Where-Object Direction -EQ In | Select-Object -First 1).DestinationMac | Should -Be '1a:27:f3:87:3a:27'
        ($icmp | Where-Object Direction -EQ Out | Select-Object -First 1).SourceMac | Should -Be '1a:27:f3:87:3a:27'
        ip netns exec $hostNs ping -c 2 -W 1 10.10.10.88 | Out-Null
        $LASTEXITCODE | Should -Be 0
    }

    It 'removing the interception leaves no filter of ours' {
        if (-not $stock) { return }
        Get-WorkloadInterception $agent | Remove-WorkloadInterception
        foreach ($dev in 'vex', 'vin', 'vbr') { (tc -n $agent filter show dev $dev ingress) | Should -BeNullOrEmpty }
        Get-WorkloadInterception $agent | Should -BeNullOrEmpty
    }
}
