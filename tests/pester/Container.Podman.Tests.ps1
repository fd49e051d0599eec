# Protecting real podman containers (issue 11): an image built here from Debian's busybox-static (no registry is
# reachable: `podman import` of a root filesystem), two containers on a bridge network the test creates, run with what
# this kind of VM needs (reference/containers.md): --runtime runc, --cgroup-manager=cgroupfs, and ulimits no higher than
# the current ones (root here lacks CAP_SYS_RESOURCE, so runc cannot raise nofile or nproc), and NET_RAW for busybox ping. The containers are named
# by -Container (podman inspect) and by podman-ps objects from the pipeline. AfterAll removes the containers, the
# network and the image, and puts back the sysctl and iptables rules podman changed.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force

    $stem = Get-TestRunStem
    $Podman = @('--runtime', 'runc', '--cgroup-manager=cgroupfs')
    function Invoke-Podman {
        $out = & podman @Podman @args 2>&1
        if ($LASTEXITCODE -ne 0) { throw "podman $($args -join ' ') failed: $out" }
        $out
    }

    function Invoke-InContainer([int]$ProcessId) {
        $out = & nsenter -t $ProcessId -n @args 2>&1
        if ($LASTEXITCODE -ne 0) { throw "nsenter -t $ProcessId -n $($args -join ' ') failed: $out" }
        $out
    }

    # What iproute2 and ethtool say inside the container once its links settled.
    function Get-ContainerState([int]$ProcessId) {
        Wait-TestCondition {
            $l = Invoke-InContainer $ProcessId ip -j link | ConvertFrom-Json
            -not (Invoke-InContainer $ProcessId ip -j addr | Out-String).Contains('tentative') -and -not @($l | Where-Object { $_.flags -contains 'UP' -and $_.ifname -ne 'lo' -and $_.operstate -ne 'UP' })
        } -TimeoutSeconds 15 | Should -BeTrue
        [ordered]@{
            Link      = (Invoke-InContainer $ProcessId ip -d -j link | Out-String).Trim()
            Address   = (Invoke-InContainer $ProcessId ip -j addr | Out-String).Trim()
            Route4    = (Invoke-InContainer $ProcessId ip -4 -j route show table all | Out-String).Trim()
            Route6    = (Invoke-InContainer $ProcessId ip -6 -j route show table all | Out-String).Trim()
            Neighbour = (Invoke-InContainer $ProcessId ip -j neigh show nud permanent | Out-String).Trim()
            Offload   = (Invoke-InContainer $ProcessId ethtool -k eth0 | Out-String).Trim()
        }
    }

    # ping from the root namespace, where podman's bridge is (the host side)
    function Test-HostPing([string]$Address) { & ping -n -q -c 2 -i 0.2 -W 1 $Address 2>&1 | Out-Null; $LASTEXITCODE -eq 0 }

    function Assert-SameState($Before, $After) {
        foreach ($k in $Before.Keys) { $After[$k] | Should -BeExactly $Before[$k] -Because "$k inside the container must read as before" }
    }

    $state = @{ Containers = @(); Network = $null; Image = $null; Root = $null; Forward = $null; Iptables = $null; Ip6tables = $null }

    function Clear-PodmanTest {
        foreach ($c in $state.Containers) { & podman @Podman rm -f -t 0 $c 2>&1 | Out-Null }
        if ($state.Network) { & podman network rm -f $state.Network 2>&1 | Out-Null }
        if ($state.Image) { & podman rmi -f $state.Image 2>&1 | Out-Null }
        if ($state.Root) { Remove-Item -LiteralPath $state.Root -Recurse -Force -ErrorAction Ignore }
        Stop-TestDp @($sock)
        Remove-TestNamespace
        # what podman changed on the host: forwarding and its firewall chains
        if ($null -ne $state.Forward) { & sysctl -q -w "net.ipv4.ip_forward=$($state.Forward)" }
        foreach ($t in @(@{ Saved = $state.Iptables; Save = 'iptables-save'; Restore = 'iptables-restore'; Cmd = 'iptables' },
                @{ Saved = $state.Ip6tables; Save = 'ip6tables-save'; Restore = 'ip6tables-restore'; Cmd = 'ip6tables' })) {
            if ($null -eq $t.Saved) { continue }
            if ($t.Saved.Trim()) { $t.Saved | & $t.Restore }
            else {
                # nothing was loaded before: empty every table podman filled (policies stay ACCEPT)
                foreach ($table in 'filter', 'nat') { & $t.Cmd -t $table -F 2>&1 | Out-Null; & $t.Cmd -t $table -X 2>&1 | Out-Null }
            }
        }
    }
}
AfterAll { if (Get-Command Clear-PodmanTest -ErrorAction Ignore) { Clear-PodmanTest } }

Describe 'Protecting real podman containers (an image imported from busybox-static, a bridge network of the test''s own)' {
    BeforeAll {
        Get-Command podman -CommandType Application -ErrorAction Ignore | Should -Not -BeNullOrEmpty -Because 'build.ps1 Test installs podman (apt) for this stage'
        (& ldd /bin/busybox 2>&1 | Out-String) | Should -BeLike '*not a dynamic executable*' -Because 'the image is made from Debian''s static busybox (busybox-static)'
        $state.Forward = (Get-Content /proc/sys/net/ipv4/ip_forward -Raw).Trim()
        $state.Iptables = (& iptables-save | Out-String)
        $state.Ip6tables = (& ip6tables-save | Out-String)

        $state.Root = Join-Path ([System.IO.Path]::GetTempPath()) "$($stem)rootfs"
        New-Item -ItemType Directory -Path (Join-Path $state.Root 'bin') -Force | Out-Null
        Copy-Item /bin/busybox (Join-Path $state.Root 'bin/busybox')
        & chroot $state.Root /bin/busybox --install -s /bin
        $LASTEXITCODE | Should -Be 0
        $state.Image = "localhost/$($stem)bb:1"
        & bash -c "tar -C '$($state.Root)' -c . | podman import - '$($state.Image)'" | Out-Null
        $LASTEXITCODE | Should -Be 0

        $octet = 100 + [System.Security.Cryptography.RandomNumberGenerator]::GetInt32(100)
        $Net = "172.31.$octet"
        $state.Network = "$($stem)net"
        Invoke-Podman network create --subnet "$Net.0/24" $state.Network | Out-Null
        # lower than the defaults podman asks for: without CAP_SYS_RESOURCE runc may lower limits, not raise them
        $ulimits = @('--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096')
        $names = "$($stem)c1", "$($stem)c2"
        $ips = "$Net.10", "$Net.11"
        for ($i = 0; $i -lt 2; $i++) {
            $state.Containers += $names[$i]
            Invoke-Podman run -d --cap-add NET_RAW --name $names[$i] @ulimits --network $state.Network --ip $ips[$i] $state.Image sleep 3600 | Out-Null
        }
        $c = foreach ($i in 0, 1) {
            $j = (Invoke-Podman inspect --type container $names[$i] | Out-String | ConvertFrom-Json)[0]
            [pscustomobject]@{ Name = $names[$i]; Id = $j.Id; Pid = $j.State.Pid; Ip = $ips[$i]; Mac = (Invoke-InContainer $j.State.Pid ip -j link show eth0 | ConvertFrom-Json)[0].address }
        }
        $enf = New-TestNamespaceName 'penf'
        $sock = New-TestDpPath '.sock'
        $before = @($c | ForEach-Object { Get-ContainerState $_.Pid })
        $gateway = "$Net.1"
    }

    It 'takes a podman container over by -Container (resolved with podman inspect) and carries host-to-container and container-to-container traffic through nvr-dp' {
        $r = @(Add-WorkloadInterception -Container $c[0].Name -Namespace $enf -ControlSocket $sock -Mode Discover)
        Register-TestDp -ProcessId (Get-Datapath -ControlSocket $sock).Pid
        $r.Count | Should -Be 1
        $r[0].Runtime | Should -Be 'podman'
        $r[0].ContainerName | Should -Be $c[0].Name
        $r[0].ContainerId | Should -Be $c[0].Id.Substring(0, 12)
        $r[0].ProcessId | Should -Be $c[0].Pid
        $r[0].WorkloadMac | Should -Be $c[0].Mac
        $r[0].Mode | Should -Be 'Discover'
        Test-HostPing $c[0].Ip | Should -BeTrue -Because 'the host reaches the container through the enforcer'
        & podman @Podman exec $c[1].Name ping -c 2 -W 2 $c[0].Ip | Out-Null
        $LASTEXITCODE | Should -Be 0 -Because 'the other container reaches it too'
        # the same, probed from inside the other container named as users name it (Test-AgentConnection -Container)
        $probe = Test-AgentConnection $c[0].Ip -Container $c[1].Name -Count 1 -TimeoutSeconds 2
        $probe.Outcome | Should -Be 'Answered'
        $learned = @(Get-DpConnection -Mac $c[0].Mac -Learned -ControlSocket $sock)
        @($learned | Where-Object { "$($_.Client)" -eq $gateway -and $_.ProtocolName -eq 'ICMP' }).Count | Should -Be 1
        @($learned | Where-Object { "$($_.Client)" -eq $c[1].Ip -and $_.ProtocolName -eq 'ICMP' }).Count | Should -Be 1
    }

    It 'takes the second one from podman ps objects in the pipeline, in Protect; the first stays in Discover' {
        $objects = @(& podman ps --format json | ConvertFrom-Json | Where-Object { $_.Names -contains $c[1].Name })
        $objects.Count | Should -Be 1
        $r = @($objects | Add-WorkloadInterception -Namespace $enf -ControlSocket $sock -Mode Protect)
        $r.Count | Should -Be 1
        $r[0].ContainerName | Should -Be $c[1].Name
        & podman @Podman exec $c[0].Name ping -c 2 -W 1 $c[1].Ip | Out-Null
        $LASTEXITCODE | Should -Not -Be 0 -Because 'the container in Protect mode without rules is unreachable'
        (Test-AgentConnection $c[1].Ip -Container $c[0].Name -Count 1 -TimeoutSeconds 1).Outcome | Should -Be 'TimedOut' -Because 'a probe from the other container is dropped too'
        Test-HostPing $c[0].Ip | Should -BeTrue -Because 'the one in Discover is not'
        @(Get-DpConnection -Mac $c[1].Mac -Blocked -ControlSocket $sock).Count | Should -BeGreaterThan 0
        (@(Get-WorkloadInterception -Namespace $enf).Mode | Sort-Object) -join ',' | Should -Be 'Discover,Protect'
    }

    It 'completes -Container with the names of the running containers' {
        $line = "Add-WorkloadInterception -Container $stem"
        $names = @((TabExpansion2 $line $line.Length).CompletionMatches | ForEach-Object CompletionText)
        ($names | Sort-Object) -join ',' | Should -Be (($c.Name | Sort-Object) -join ',')
    }

    It 'gives both back by -Container: inside each, ip -d link, addresses, routes, neighbours and ethtool -k are as before' {
        Remove-WorkloadInterception -Container $c.Name -Namespace $enf
        @(Get-WorkloadInterception -Namespace $enf) | Should -BeNullOrEmpty
        for ($i = 0; $i -lt 2; $i++) { Assert-SameState $before[$i] (Get-ContainerState $c[$i].Pid) }
        & podman @Podman exec $c[1].Name ping -c 1 -W 2 $c[0].Ip | Out-Null
        $LASTEXITCODE | Should -Be 0
        (Get-Datapath -ControlSocket $sock).Workloads | Should -BeNullOrEmpty
    }
}
