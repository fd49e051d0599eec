# Protecting real podman containers (issue 11): two containers on a bridge network of this run, from an image built
# here from Debian's busybox-static (no registry is reachable), by TestSupport's podman fixture (New-TestPodmanImage,
# New-TestPodmanNetwork, Start-TestPodmanContainer: --runtime runc, --cgroup-manager=cgroupfs, lowered ulimits, NET_RAW;
# reference/containers.md). The containers are named by -Container (podman inspect) and by podman-ps objects from the
# pipeline. AfterAll (Clear-TestPodman) removes the containers, the network and the image, and puts back the sysctl
# and takes out the iptables rules podman added.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force

    $stem = Get-TestRunStem
    $Podman = Get-TestPodmanOption

    # ping from the root namespace, where podman's bridge is (the host side)
    function Test-HostPing([string]$Address) { & ping -n -q -c 2 -i 0.2 -W 1 $Address 2>&1 | Out-Null; $LASTEXITCODE -eq 0 }
}
AfterAll {
    if (Get-Command Clear-TestPodman -ErrorAction Ignore) {
        Clear-TestPodman
        Stop-TestDp @($sock)
        Remove-TestNamespace
    }
}

Describe 'Protecting real podman containers (an image imported from busybox-static, a bridge network of the test''s own)' {
    BeforeAll {
        Get-Command podman -CommandType Application -ErrorAction Ignore | Should -Not -BeNullOrEmpty -Because 'build.ps1 Test installs podman (apt) for this stage'
        (& ldd /bin/busybox 2>&1 | Out-String) | Should -BeLike '*not a dynamic executable*' -Because 'the image is made from Debian''s static busybox (busybox-static)'
        $image = New-TestPodmanImage
        $network = New-TestPodmanNetwork
        $Net = $network.Prefix
        $c = @(Start-TestPodmanContainer c1 $image $network.Name "$Net.10"; Start-TestPodmanContainer c2 $image $network.Name "$Net.11")
        $enf = New-TestNamespaceName 'penf'
        $sock = New-TestDpPath '.sock'
        $before = @($c | ForEach-Object { Get-TestPodmanContainerState $_.Pid })
        $gateway = $network.Gateway
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
        for ($i = 0; $i -lt 2; $i++) { Assert-TestPodmanContainerState $before[$i] (Get-TestPodmanContainerState $c[$i].Pid) }
        & podman @Podman exec $c[1].Name ping -c 1 -W 2 $c[0].Ip | Out-Null
        $LASTEXITCODE | Should -Be 0
        (Get-Datapath -ControlSocket $sock).Workloads | Should -BeNullOrEmpty
    }
}
