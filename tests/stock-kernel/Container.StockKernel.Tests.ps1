# The container take-over (issue 11) with the Pedit backend, under Debian's stock kernel (act_pedit as a module): a
# container made as a runtime makes it (`unshare --net sleep`, eth0 a veth on a bridge), taken over by -ProcessId,
# traffic through nvr-dp in Discover then Protect, and given back with identical `ip -d -j link`, `ip -j addr`,
# routes, permanent neighbours and `ethtool -k` inside it. Runs inside
#   tests/stock-kernel/pester.sh tests/stock-kernel/Container.StockKernel.Tests.ps1
# On a kernel without act_pedit (this project's machines) each test is skipped with that reason
# (tests/pester/Container.Tests.ps1 proves the same with the Bpf backend there).
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    $script:suffix = [guid]::NewGuid().ToString('N').Substring(0, 6)
    $script:hostNs = "nvski-ch-$suffix"; $script:enf = "nvski-ce-$suffix"; $script:sock = "/tmp/nvski-c-$suffix.sock"
    $script:stock = [bool]$env:NVREDIRECT_STOCK_KERNEL
    $script:container = $null

    function Invoke-In([string[]]$Command) {
        $out = & nsenter -t $container.Id -n @Command 2>&1
        if ($LASTEXITCODE -ne 0) { throw "nsenter $($Command -join ' '): $out" }
        $out
    }
    function Get-State {
        $ok = $false
        for ($i = 0; $i -lt 100 -and -not $ok; $i++) {
            $ok = -not ((Invoke-In ip, -j, addr) -join '').Contains('tentative') -and ((Invoke-In ip, -j, link, show, eth0) | ConvertFrom-Json)[0].operstate -eq 'UP'
            if (-not $ok) { Start-Sleep -Milliseconds 100 }
        }
        [ordered]@{
            Link = (Invoke-In ip, -d, -j, link) -join ''; Address = (Invoke-In ip, -j, addr) -join ''
            Route4 = (Invoke-In ip, -4, -j, route, show, table, all) -join ''; Route6 = (Invoke-In ip, -6, -j, route, show, table, all) -join ''
            Neighbour = (Invoke-In ip, -j, neigh, show, nud, permanent) -join ''; Offload = (Invoke-In ethtool, -k, eth0) -join "`n"
        }
    }
    if ($stock) {
        ip netns add $hostNs
        ip -n $hostNs link add br0 type bridge
        ip -n $hostNs addr add 172.31.63.1/24 dev br0
        ip -n $hostNs link set br0 up
        $script:container = [System.Diagnostics.Process]::Start('unshare', [string[]]@('--net', 'sleep', '3600'))
        Start-Sleep -Milliseconds 500
        ip -n $hostNs link add "nvskp$suffix" type veth peer name eth0 netns $container.Id
        ip -n $hostNs link set "nvskp$suffix" master br0 up
        Invoke-In ip, link, set, lo, up | Out-Null
        Invoke-In ip, addr, add, 172.31.63.10/24, dev, eth0 | Out-Null
        Invoke-In ip, -6, addr, add, fd00:63::10/64, dev, eth0, nodad | Out-Null
        Invoke-In ip, link, set, eth0, up | Out-Null
        Invoke-In ip, route, add, default, via, 172.31.63.1 | Out-Null
        Invoke-In ip, route, add, 203.0.113.0/24, via, 172.31.63.1, table, 100 | Out-Null
        Invoke-In ip, neigh, add, 172.31.63.99, lladdr, 02:00:00:00:63:99, dev, eth0, nud, permanent | Out-Null
        $script:before = Get-State
    }
}

AfterAll {
    if ($stock) {
        Stop-Datapath -ControlSocket $sock -ErrorAction SilentlyContinue
        if ($container -and -not $container.HasExited) { $container.Kill(); [void]$container.WaitForExit(10000) }
        ip netns del $hostNs 2>$null
        ip netns del $enf 2>$null
    }
}

Describe 'Container take-over with the Pedit backend (stock kernel)' {
    BeforeEach {
        if (-not $stock) { Set-ItResult -Skipped -Because 'this kernel has no act_pedit; the test runs under tests/stock-kernel/pester.sh' }
    }

    It 'takes the container over by -ProcessId with Pedit rules and carries its traffic through nvr-dp in Discover' {
        if (-not $stock) { return }
        $r = @(Add-WorkloadInterception -ProcessId $container.Id -Namespace $enf -ControlSocket $sock -Backend Pedit -Mode Discover)
        $r.Count | Should -Be 1
        $r[0].Backend | Should -Be 'Pedit'
        $r[0].InterfaceIndex | Should -Be ((Invoke-In ip, -j, link, show, eth0) | ConvertFrom-Json)[0].ifindex
        (tc -n $enf filter show dev $r[0].EntryLink ingress) -join "`n" | Should -Match 'pedit action pipe keys 2'
        & ip netns exec $hostNs ping -c 3 -i 0.2 -W 1 172.31.63.10 | Out-Null
        $LASTEXITCODE | Should -Be 0
        @(Get-DpConnection -Mac $r[0].WorkloadMac -Learned -ControlSocket $sock | Where-Object ProtocolName -EQ 'ICMP').Count | Should -Be 1
    }

    It 'Protect set through the pipeline blocks it' {
        if (-not $stock) { return }
        (Get-WorkloadInterception -ProcessId $container.Id -Namespace $enf | Set-DpWorkloadMode -Mode Protect -PassThru).Mode | Should -Be 'Protect'
        & ip netns exec $hostNs ping -c 2 -i 0.2 -W 1 172.31.63.10 | Out-Null
        $LASTEXITCODE | Should -Not -Be 0
    }

    It 'gives it back with everything as before (ifindex included)' {
        if (-not $stock) { return }
        Remove-WorkloadInterception -ProcessId $container.Id -Namespace $enf
        $after = Get-State
        foreach ($k in $before.Keys) { $after[$k] | Should -BeExactly $before[$k] -Because "$k inside the container must read as before" }
        & ip netns exec $hostNs ping -c 2 -i 0.2 -W 1 172.31.63.10 | Out-Null
        $LASTEXITCODE | Should -Be 0
    }
}
