# The Ansible collection (issue 13) with the real ansible-playbook (Debian's ansible-core, installed by build.ps1
# Test) against this machine (connection local, no facts): the build under test is installed by `build.ps1 Install
# -NoBuild` into a HOME of this run (user scope, first in PSModulePath) with a pwsh wrapper that
# ansible_pwsh_interpreter names, so nothing outside this run's temporary folder is installed or left behind.
# The example playbooks (src/ansible/.../examples) run with inventories of this run: one host protecting a workload
# (nvredirect.core.workload), then a fleet of three nodes, each its own enforcer, datapath and workload (host vars),
# converged in parallel (forks 3) by nvredirect.core.config; and a real podman container (TestSupport's podman
# fixture) named by `container:`, protected and given back.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force

    $repo = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $examples = Join-Path $repo 'src/ansible/ansible_collections/nvredirect/core/examples'
    $stem = Get-TestRunStem
    $tmp = Join-Path ([System.IO.Path]::GetTempPath()) "$($stem)ansible"
    $home_ = Join-Path $tmp 'home'
    $pwshWrapper = Join-Path $tmp 'bin/pwsh'
    $sockets = [System.Collections.Generic.List[string]]::new()

    # the build under test, installed as a user would (build.ps1 Install), into this run's folder
    New-Item -ItemType Directory -Path $home_ -Force | Out-Null
    $host_ = [Environment]::ProcessPath
    $self = if ((Split-Path $host_ -Leaf) -eq 'dotnet') { @($host_, (Join-Path $PSHOME 'pwsh.dll')) } else { @($host_) }
    $installed = & $self[0] @($self | Select-Object -Skip 1) -NoProfile -NonInteractive -File (Join-Path $repo 'build.ps1') Install -NoBuild `
        -ModuleDestination (Join-Path $home_ '.local/share/powershell/Modules/NvRedirect') -PwshDestination $pwshWrapper 2>&1
    if ($LASTEXITCODE -ne 0) { throw "build.ps1 Install failed: $installed" }

    # ansible-playbook with this run's HOME (its module path and ~/.ansible), the collection from the repository;
    # returns the exit code, the output and the recap per host
    function Invoke-Ansible([Parameter(Mandatory)][string]$Command, [Parameter(Mandatory)][string[]]$Arguments) {
        $environment = @("HOME=$home_", "ANSIBLE_COLLECTIONS_PATH=$(Join-Path $repo 'src/ansible')", 'ANSIBLE_NOCOLOR=1', 'ANSIBLE_FORCE_COLOR=0',
            'ANSIBLE_HOST_KEY_CHECKING=0', 'ANSIBLE_RETRY_FILES_ENABLED=0', "ANSIBLE_LOCAL_TEMP=$(Join-Path $tmp 'local')", "ANSIBLE_REMOTE_TEMP=$(Join-Path $tmp 'remote')", 'ANSIBLE_DEPRECATION_WARNINGS=0')
        $output = (& env @environment $Command @Arguments 2>&1 | Out-String)
        $code = $LASTEXITCODE
        $recap = @{}
        foreach ($m in [regex]::Matches($output, '(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)')) {
            $recap[$m.Groups[1].Value] = [pscustomobject]@{ Ok = [int]$m.Groups[2].Value; Changed = [int]$m.Groups[3].Value; Failed = [int]$m.Groups[5].Value }
        }
        [pscustomobject]@{ ExitCode = $code; Output = $output; Recap = $recap }
    }
    function Invoke-Playbook([string]$Inventory, [string]$Playbook, [string[]]$More = @()) {
        Invoke-Ansible ansible-playbook (@('-i', $Inventory, (Join-Path $examples $Playbook)) + $More)
    }
    function Test-Tcp($Workload, [int]$Port) { (Invoke-TestTcpConnection $Workload.Host $Workload.Address $Port -TimeoutSeconds 1.5).Result }
}
AfterAll {
    if (Get-Command Stop-TestTraffic -ErrorAction Ignore) {
        Stop-TestTraffic
        foreach ($ns in @(Get-ChildItem /run/netns -Name -ErrorAction Ignore | Where-Object { $_.StartsWith("$($stem)ans-", [StringComparison]::Ordinal) -and $_.Contains('-enf') })) {
            Get-WorkloadInterception -Namespace $ns -ErrorAction Ignore | Remove-WorkloadInterception -ErrorAction Ignore
        }
        Stop-TestDp @($sockets)
        Clear-TestPodman
        Remove-TestNamespace
        if ($tmp -and (Test-Path $tmp)) { Remove-Item -LiteralPath $tmp -Recurse -Force }
    }
}

Describe 'nvredirect.core.workload on one host (the example playbook protect.yml)' {
    BeforeAll {
        Get-Command ansible-playbook -CommandType Application -ErrorAction Ignore | Should -Not -BeNullOrEmpty -Because 'build.ps1 Test installs ansible-core (apt) for this stage'
        $enforcer = New-TestNamespaceName 'ans-enf'
        $socket = New-TestDpPath '.sock'; $sockets.Add($socket)
        $web = New-TestWorkload 'ans-web' 10
        $null = Start-TestEchoServer -Namespace $web.Container -TcpPort 8080, 8081
        $inventory = Join-Path $tmp 'host.ini'
        @('[enforcers]', "web ansible_connection=local ansible_pwsh_interpreter=$pwshWrapper nvr_enforcer=$enforcer nvr_netns_path=$($web.NetnsPath) nvr_control_socket=$socket nvr_mode=protect") |
            Set-Content $inventory
        function Get-Rules([int]$Port) { @('-e', (@{ nvr_rules = @(@{ direction = 'ingress'; protocol = 'tcp'; port = $Port; action = 'allow' }) } | ConvertTo-Json -Depth 5 -Compress)) }
        $original = Get-IpLink $web.Container -Name eth0
    }

    It 'protects the workload on the first run (changed), and the policy holds: 8080 passes, 8081 is blocked' {
        $r = Invoke-Playbook $inventory protect.yml (Get-Rules 8080)
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Recap['web'].Changed | Should -Be 1
        $i = @(Get-WorkloadInterception -Namespace $enforcer -NetnsPath $web.NetnsPath)
        $i.Count | Should -Be 1
        $i[0].Mode | Should -Be 'Protect'
        $r.Output.Contains("['eth0'] in $enforcer") | Should -BeTrue -Because "the module returns the resulting interception: $($r.Output)"
        Test-Tcp $web 8080 | Should -Be 'connected'
        Test-Tcp $web 8081 | Should -Be 'timeout'
    }

    It 'changes nothing on the second run (changed=0)' {
        $version = (Get-DpPolicy -Mac $web.Mac -ControlSocket $socket).Version
        $r = Invoke-Playbook $inventory protect.yml (Get-Rules 8080)
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Recap['web'].Changed | Should -Be 0
        (Get-DpPolicy -Mac $web.Mac -ControlSocket $socket).Version | Should -Be $version
    }

    It 'reports the change in check mode (-C) and makes none' {
        $version = (Get-DpPolicy -Mac $web.Mac -ControlSocket $socket).Version
        $r = Invoke-Playbook $inventory protect.yml ((Get-Rules 8081) + '--check')
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Recap['web'].Changed | Should -Be 1
        $p = Get-DpPolicy -Mac $web.Mac -ControlSocket $socket
        $p.Version | Should -Be $version
        $p.Rules[0].Port | Should -Be '8080'
        Test-Tcp $web 8081 | Should -Be 'timeout'
    }

    It 'shows the rule change with --diff and makes it' {
        $r = Invoke-Playbook $inventory protect.yml ((Get-Rules 8081) + '--diff')
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Recap['web'].Changed | Should -Be 1
        $r.Output | Should -BeLike '*-rule 1: ingress tcp any -> any:8080 allow*'
        $r.Output | Should -BeLike '*+rule 1: ingress tcp any -> any:8081 allow*'
        (Get-DpPolicy -Mac $web.Mac -ControlSocket $socket).Rules[0].Port | Should -Be '8081'
        Test-Tcp $web 8081 | Should -Be 'connected'
        Test-Tcp $web 8080 | Should -Be 'timeout'
    }

    It 'fails a bad option with the error id and the message, changing nothing: <Case>' -ForEach @(
        @{ Case = 'a misspelt mode'; More = @('-e', 'nvr_mode=protct'); Id = 'SetNvRedirectConfigurationInvalidArgument,NvRedirect.Cmdlets.SetNvRedirectConfigurationCommand'; Message = "configuration.workloads[0].mode is 'protct': write one of none, discover, monitor, protect, custom." }
        @{ Case = 'a bad port'; More = @('-e', '{"nvr_rules":[{"protocol":"tcp","port":"80800"}]}'); Id = 'SetNvRedirectConfigurationInvalidArgument,NvRedirect.Cmdlets.SetNvRedirectConfigurationCommand'; Message = "configuration.workloads[0].rules[0]: The port '80800' is not a port or port range" }
    ) {
        $version = (Get-DpPolicy -Mac $web.Mac -ControlSocket $socket).Version
        $r = Invoke-Playbook $inventory protect.yml $More
        $r.ExitCode | Should -Be 2
        $r.Recap['web'].Failed | Should -Be 1
        $r.Output | Should -BeLike "*`"error_id`": `"$Id`"*"
        $r.Output.Contains($Message) | Should -BeTrue -Because $r.Output
        (Get-DpPolicy -Mac $web.Mac -ControlSocket $socket).Version | Should -Be $version
    }

    It 'fails an option the module does not have, naming it and the ones it has' {
        $r = Invoke-Ansible ansible @('-i', $inventory, 'web', '-m', 'nvredirect.core.workload', '-a', "netns_path=$($web.NetnsPath) namespace=$enforcer colour=red")
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -BeLike '*"error_id": "WorkloadUnsupportedParameter"*'
        $r.Output | Should -BeLike '*Unsupported parameters for nvredirect.core.workload: colour. Supported parameters: container, container_pid, control_socket, interfaces, mode, namespace, netns_path, rules, state.*'
    }

    It 'gives the container back with state: absent (changed), as it was; then changes nothing' {
        $r = Invoke-Playbook $inventory protect.yml @('-e', 'nvr_state=absent')
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Recap['web'].Changed | Should -Be 1
        @(Get-WorkloadInterception -Namespace $enforcer -NetnsPath $web.NetnsPath) | Should -BeNullOrEmpty
        $back = Get-IpLink $web.Container -Name eth0
        $back.ifindex | Should -Be $original.ifindex
        $back.address | Should -Be $original.address
        Test-Tcp $web 8080 | Should -Be 'connected'
        (Invoke-Playbook $inventory protect.yml @('-e', 'nvr_state=absent')).Recap['web'].Changed | Should -Be 0
    }
}

Describe 'A fleet: three nodes, each its own enforcer, datapath and workload, converged in parallel (enforcer.yml, forks 3)' {
    BeforeAll {
        $nodes = foreach ($n in 1..3) {
            $w = New-TestWorkload "ans-n$n" (10 + $n)
            $s = New-TestDpPath '.sock'; $sockets.Add($s)
            [pscustomobject]@{ Name = "node$n"; Enforcer = New-TestNamespaceName "ans-enf$n"; Socket = $s; Workload = $w; Mode = if ($n -eq 3) { 'monitor' } else { 'protect' } }
        }
        foreach ($n in $nodes) { $null = Start-TestEchoServer -Namespace $n.Workload.Container -TcpPort 8080, 8081 }
        function Write-Fleet([switch]$Empty) {
            $path = Join-Path $tmp 'fleet.ini'
            $lines = @('[enforcers]') + @(foreach ($n in $nodes) {
                    $workloads = @(if (-not $Empty) { @{ netnsPath = $n.Workload.NetnsPath; mode = $n.Mode; rules = @(@{ protocol = 'tcp'; port = 8080 }) } })
                    "$($n.Name) nvr_enforcer=$($n.Enforcer) nvr_control_socket=$($n.Socket) nvr_workloads='$(ConvertTo-Json -InputObject $workloads -Depth 6 -Compress)'"
                }) + @('[enforcers:vars]', 'ansible_connection=local', "ansible_pwsh_interpreter=$pwshWrapper")
            $lines | Set-Content $path
            $path
        }
    }

    It 'converges every node on the first run (changed on each, nodes at the same time), each with its own datapath in its enforcer' {
        $r = Invoke-Playbook (Write-Fleet) enforcer.yml @('--forks', '3', '-v')
        $r.ExitCode | Should -Be 0 -Because $r.Output
        # each module's start and end on this machine: with forks 3 the nodes' runs overlap (one after the other, none would)
        $runs = @([regex]::Matches($r.Output, '(?m)^changed: \[(node\d)\] => (\{.*\})\s*$') | ForEach-Object {
                $j = $_.Groups[2].Value | ConvertFrom-Json
                [pscustomobject]@{ Node = $_.Groups[1].Value; Start = [datetime]$j.start; End = [datetime]$j.end }
            })
        $runs.Count | Should -Be 3 -Because $r.Output
        $overlapping = @(foreach ($a in $runs) { foreach ($b in $runs) { if ($a.Node -lt $b.Node -and $a.Start -lt $b.End -and $b.Start -lt $a.End) { "$($a.Node)+$($b.Node)" } } })
        $overlapping.Count | Should -BeGreaterThan 0 -Because "forks 3 runs nodes at once: $($runs | ForEach-Object { "$($_.Node) $($_.Start.ToString('HH:mm:ss.fff'))-$($_.End.ToString('HH:mm:ss.fff'))" })"
        foreach ($n in $nodes) {
            $r.Recap[$n.Name].Changed | Should -Be 1
            (Get-Datapath -ControlSocket $n.Socket).Namespace | Should -Be $n.Enforcer
            $i = @(Get-WorkloadInterception -Namespace $n.Enforcer)
            $i.Count | Should -Be 1
            $i[0].NetnsPath | Should -Be $n.Workload.NetnsPath
            $i[0].Mode | Should -Be ($n.Mode.Substring(0, 1).ToUpperInvariant() + $n.Mode.Substring(1))
        }
        Test-Tcp $nodes[0].Workload 8081 | Should -Be 'timeout'     # protect: only 8080 is allowed
        Test-Tcp $nodes[0].Workload 8080 | Should -Be 'connected'
        Test-Tcp $nodes[2].Workload 8081 | Should -Be 'connected'   # monitor: reported, not blocked
    }

    It 'changes nothing on any node the second time (changed=0 everywhere)' {
        $r = Invoke-Playbook (Write-Fleet) enforcer.yml @('--forks', '3', '--diff')
        $r.ExitCode | Should -Be 0 -Because $r.Output
        foreach ($n in $nodes) { $r.Recap[$n.Name].Changed | Should -Be 0 }
    }

    It 'gives every workload back when the nodes list none (check mode first: reported, nothing changed)' {
        $check = Invoke-Playbook (Write-Fleet -Empty) enforcer.yml @('--forks', '3', '--check')
        $check.ExitCode | Should -Be 0 -Because $check.Output
        foreach ($n in $nodes) { $check.Recap[$n.Name].Changed | Should -Be 1; @(Get-WorkloadInterception -Namespace $n.Enforcer).Count | Should -Be 1 }
        $r = Invoke-Playbook (Write-Fleet -Empty) enforcer.yml @('--forks', '3')
        $r.ExitCode | Should -Be 0 -Because $r.Output
        foreach ($n in $nodes) {
            $r.Recap[$n.Name].Changed | Should -Be 1
            @(Get-WorkloadInterception -Namespace $n.Enforcer) | Should -BeNullOrEmpty
            Test-Tcp $n.Workload 8081 | Should -Be 'connected'
        }
    }
}

Describe 'nvredirect.core.workload on a real podman container, named by container: (protect.yml)' {
    BeforeAll {
        Get-Command podman -CommandType Application -ErrorAction Ignore | Should -Not -BeNullOrEmpty -Because 'build.ps1 Test installs podman (apt) for this stage'
        $image = New-TestPodmanImage
        $network = New-TestPodmanNetwork
        $pod = Start-TestPodmanContainer ansc $image $network.Name "$($network.Prefix).10"
        $null = Start-TestEchoServer -Container $pod.Name -TcpPort 8080, 8081
        $podEnforcer = New-TestNamespaceName 'ans-enfp'
        $podSocket = New-TestDpPath '.sock'; $sockets.Add($podSocket)
        $podInventory = Join-Path $tmp 'pod.ini'
        @('[enforcers]', "pod ansible_connection=local ansible_pwsh_interpreter=$pwshWrapper nvr_enforcer=$podEnforcer nvr_container=$($pod.Name) nvr_control_socket=$podSocket nvr_mode=protect") |
            Set-Content $podInventory
        $allow8080 = @('-e', (@{ nvr_rules = @(@{ direction = 'ingress'; protocol = 'tcp'; port = 8080; action = 'allow' }) } | ConvertTo-Json -Depth 5 -Compress))
        # from the host (the root namespace, where podman's bridge is)
        function Test-PodTcp([int]$Port) { (Test-AgentConnection $pod.Ip -Port $Port -Echo -TimeoutSeconds 1.5).Outcome }
        $podBefore = Get-TestPodmanContainerState $pod.Pid
    }

    It 'protects it on the first run (changed) and the policy holds: from the host 8080 passes, 8081 and ping are blocked' {
        Test-PodTcp 8081 | Should -Be 'Connected' -Because 'before protection the container answers on both ports'
        $r = Invoke-Playbook $podInventory protect.yml $allow8080
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Recap['pod'].Changed | Should -Be 1
        $i = @(Get-WorkloadInterception -Namespace $podEnforcer)
        $i.Count | Should -Be 1
        $i[0].Mode | Should -Be 'Protect'
        $i[0].ContainerName | Should -Be $pod.Name
        $i[0].ProcessId | Should -Be $pod.Pid
        Test-PodTcp 8080 | Should -Be 'Connected'
        Test-PodTcp 8081 | Should -Be 'TimedOut'
        (Test-AgentConnection $pod.Ip -Count 1 -TimeoutSeconds 1).Outcome | Should -Be 'TimedOut'
    }

    It 'changes nothing on the second run (changed=0)' {
        $version = (Get-DpPolicy -Mac $pod.Mac -ControlSocket $podSocket).Version
        $r = Invoke-Playbook $podInventory protect.yml $allow8080
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Recap['pod'].Changed | Should -Be 0
        (Get-DpPolicy -Mac $pod.Mac -ControlSocket $podSocket).Version | Should -Be $version
    }

    It 'gives it back with state: absent (changed): inside, the same ifindex, MAC, addresses, routes and offloads as before' {
        $r = Invoke-Playbook $podInventory protect.yml @('-e', 'nvr_state=absent')
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Recap['pod'].Changed | Should -Be 1
        @(Get-WorkloadInterception -Namespace $podEnforcer) | Should -BeNullOrEmpty
        Assert-TestPodmanContainerState $podBefore (Get-TestPodmanContainerState $pod.Pid)
        Test-PodTcp 8081 | Should -Be 'Connected'
    }
}
