# A user's Pester suite for a protected workload: "after this change, the web tier still reaches the database on
# 5432, and nothing else does". It builds a small lab of its own (the seed topology: a "web" namespace on the host
# side, the "db" workload in its container namespace behind nvr-dp), so it runs anywhere as root; against a real
# workload, replace the BeforeAll with your namespaces (-Namespace, -ProcessId or -Container) and datapath.
#   Invoke-Pester ./docs/examples/ProtectedWorkload.Tests.ps1
# The project's own test command runs this file too (tests/run-pester.ps1), so the example never rots.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1')
    $lab = "nvr-example-$(Get-Random -Maximum 99999)"       # unique names: several runs never collide
    $ControlSocket = "/tmp/$lab.sock"
    $DbAddress = '10.10.10.88'                              # the seed's container address
    $DbMac = '1a:27:f3:87:3a:27'                            # the seed's container MAC

    $topology = New-SeedTopology -AgentNamespace "$lab-agent" -ContainerNamespace "$lab-db" -HostNamespace "$lab-web"
    $Web = $topology.HostNamespace
    $null = Start-Datapath -Namespace $topology.AgentNamespace -ControlSocket $ControlSocket -LogPath "/tmp/$lab.log"
    Add-DpServicePort vth -ControlSocket $ControlSocket
    Get-WorkloadInterception $topology.AgentNamespace | Add-DpMac -Tap $false -ControlSocket $ControlSocket

    # the database listens on 5432; 6379 is a port someone opens later, which the policy must not allow
    $db = Start-AgentEchoServer -Namespace $topology.ContainerNamespace -TcpPort 5432, 6379
}
AfterAll {
    $db | Stop-AgentEchoServer
    Stop-Datapath -ControlSocket $ControlSocket -ErrorAction Continue
    if ($topology) { $topology | Remove-SeedTopology -Confirm:$false }
    Remove-Item "/tmp/$lab.log" -ErrorAction Ignore
}

Describe 'The db workload' {
    It 'Discover: the web tier reaches the database on 5432, and the datapath learns it' {
        Set-DpWorkloadMode -Mac $DbMac -Mode Discover -ControlSocket $ControlSocket
        Test-AgentConnection $DbAddress -Port 5432 -Namespace $Web -Echo -Quiet | Should -BeTrue
        $learned = @(Get-DpConnection -Mac $DbMac -Learned -ControlSocket $ControlSocket | Where-Object ServerPort -EQ 5432)
        $learned.Count | Should -Be 1
    }

    It 'Protect with the learned rules: 5432 still connects, a new port is blocked' {
        Get-DpConnection -Mac $DbMac -Learned -ControlSocket $ControlSocket | ConvertTo-DpRule | Set-DpPolicy -ControlSocket $ControlSocket
        Set-DpWorkloadMode -Mac $DbMac -Mode Protect -ControlSocket $ControlSocket

        (Test-AgentConnection $DbAddress -Port 5432 -Namespace $Web -Echo).Outcome | Should -Be 'Connected'
        $new = Test-AgentConnection $DbAddress -Port 6379 -Namespace $Web -TimeoutSeconds 1
        $new.Outcome | Should -Be 'TimedOut' -Because 'Protect drops what no rule allows, silently'
        @(Get-DpConnection -Mac $DbMac -Blocked -ControlSocket $ControlSocket | Where-Object ServerPort -EQ 6379).Count | Should -Be 1
    }

    It 'Monitor: the new port passes again, and is reported as a violation' {
        Set-DpWorkloadMode -Mac $DbMac -Mode Monitor -ControlSocket $ControlSocket
        (Test-AgentConnection $DbAddress -Port 6379 -Namespace $Web -Echo).Outcome | Should -Be 'Connected'
        # -Violation lists what the rules do not allow: the earlier Deny, and now a Violate that let it pass
        $violations = @(Get-DpConnection -Mac $DbMac -Violation -ControlSocket $ControlSocket | Where-Object { $_.ServerPort -eq 6379 -and "$($_.Action)" -eq 'Violate' })
        $violations.Count | Should -Be 1
        "$($violations[0].Client)" | Should -Be '10.10.10.66'
    }
}
