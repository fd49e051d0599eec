# Desired state (issue 13): Get-/Test-/Set-NvRedirectConfiguration against the real kernel and nvr-dp. Two workloads
# (namespaces with a veth to a host namespace, taken over by their namespace files) in an enforcer of this run; the
# outcome is proved by traffic (an echo server in each workload, TCP probes from its host side), by the datapath's
# policies, and by a second Set that changes nothing.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force

    $enforcer = New-TestNamespaceName 'cfg-enf'
    $socket = New-TestDpPath '.sock'
    $log = New-TestDpPath '.log'
    $web = New-TestWorkload 'cfg-web' 10
    $db = New-TestWorkload 'cfg-db' 20
    $webServer = Start-TestEchoServer -Namespace $web.Container -TcpPort 8080, 8081
    $dbServer = Start-TestEchoServer -Namespace $db.Container -TcpPort 5432

    # a document as a user writes it (rules without ids, a port as a number)
    function New-Document([string]$WebMode = 'protect', [object[]]$WebRules = @(@{ protocol = 'tcp'; port = 8080 }), [hashtable[]]$Extra = @(), [bool]$RemoveUnlisted = $true) {
        $doc = [ordered]@{
            namespace = $enforcer; datapath = @{ controlSocket = $socket; logPath = $log }; removeUnlisted = $RemoveUnlisted
            workloads = @(@{ netnsPath = $web.NetnsPath; mode = $WebMode; rules = $WebRules }) + $Extra
        }
        $doc | ConvertTo-Json -Depth 8
    }
    function Test-Tcp($Workload, [int]$Port) { (Invoke-TestTcpConnection $Workload.Host $Workload.Address $Port -TimeoutSeconds 1.5).Result }
}
AfterAll {
    if (Get-Command Stop-TestTraffic -ErrorAction Ignore) {
        Stop-TestTraffic
        if (Test-Path "/run/netns/$enforcer") { Get-WorkloadInterception -Namespace $enforcer -ErrorAction Ignore | Remove-WorkloadInterception -ErrorAction Ignore }
        Stop-TestDp @($socket)
        Remove-TestNamespace
    }
}

Describe 'Set-NvRedirectConfiguration converges an enforcer and a second call changes nothing' {
    It 'Test says False, -Detailed lists the plan in a never-opening order, -WhatIf changes nothing' {
        $json = New-Document -Extra @(@{ netnsPath = $db.NetnsPath; mode = 'discover' })
        Test-NvRedirectConfiguration -Json $json | Should -BeFalse
        $plan = @(Test-NvRedirectConfiguration -Json $json -Detailed)
        ($plan | ForEach-Object { "$($_.Action)" }) | Should -Be @('StartDatapath', 'TakeOver', 'SetPolicy', 'TakeOver')
        $plan[1].After | Should -BeLike '*taken over*mode protect'   # taken over already closed: Protect with no rule yet
        $plan[2].After | Should -Be "mode protect`nrule 1: ingress tcp any -> any:8080 allow"
        ($plan | ForEach-Object Step) | Should -Be @(1, 2, 3, 4)
        Set-NvRedirectConfiguration -Json $json -WhatIf | Should -BeNullOrEmpty
        Test-Path "/run/netns/$enforcer" | Should -BeFalse
        (Get-IpLink $web.Container -Name eth0).ifindex | Should -Not -BeNullOrEmpty
        Test-Tcp $web 8081 | Should -Be 'connected'
    }

    It 'makes the changes it planned and returns them; the policy holds (8080 passes, 8081 is blocked); the unprotected workload learns' {
        $json = New-Document -Extra @(@{ netnsPath = $db.NetnsPath; mode = 'discover' })
        $made = @(Set-NvRedirectConfiguration -Json $json)
        ($made | ForEach-Object { "$($_.Action)" }) | Should -Be @('StartDatapath', 'TakeOver', 'SetPolicy', 'TakeOver')
        (Get-Datapath -ControlSocket $socket).Namespace | Should -Be $enforcer
        $policy = Get-DpPolicy -Mac $web.Mac -ControlSocket $socket
        $policy.Mode | Should -Be 'Protect'
        @($policy.Rules).Count | Should -Be 1
        $policy.Rules[0].Port | Should -Be '8080'
        (Get-DpPolicy -Mac $db.Mac -ControlSocket $socket).Mode | Should -Be 'Discover'
        Test-Tcp $web 8080 | Should -Be 'connected'
        Test-Tcp $web 8081 | Should -Be 'timeout'
        Test-Tcp $db 5432 | Should -Be 'connected'
    }

    It 'changes nothing the second time: Set returns nothing, Test says True, the policy keeps its version' {
        $json = New-Document -Extra @(@{ netnsPath = $db.NetnsPath; mode = 'discover' })
        $version = (Get-DpPolicy -Mac $web.Mac -ControlSocket $socket).Version
        @(Set-NvRedirectConfiguration -Json $json) | Should -BeNullOrEmpty
        Test-NvRedirectConfiguration -Json $json | Should -BeTrue
        @(Test-NvRedirectConfiguration -Json $json -Detailed) | Should -BeNullOrEmpty
        (Get-DpPolicy -Mac $web.Mac -ControlSocket $socket).Version | Should -Be $version
    }

    It 'exports what runs: applying the export changes nothing; edited and applied it makes exactly the edit, in one policy change' {
        $exported = Get-NvRedirectConfiguration -Namespace $enforcer
        $exported.Namespace | Should -Be $enforcer
        $exported.Datapath.ControlSocket | Should -Be $socket
        @($exported.Workloads).Count | Should -Be 2
        @($exported | Set-NvRedirectConfiguration) | Should -BeNullOrEmpty
        $text = Get-NvRedirectConfiguration -Namespace $enforcer -AsJson
        @(Set-NvRedirectConfiguration -Json $text) | Should -BeNullOrEmpty
        $file = New-TestDpPath '.json'
        Set-Content -Path $file -Value ($text.Replace('"port": "8080"', '"port": "8081"'))
        $web.Mac | Should -Not -BeNullOrEmpty
        $made = @(Set-NvRedirectConfiguration -Path $file)
        $made.Count | Should -Be 1
        "$($made[0].Action)" | Should -Be 'SetPolicy'
        $made[0].Before | Should -Be "mode protect`nrule 1: ingress tcp any -> any:8080 allow"
        $made[0].After | Should -Be "mode protect`nrule 1: ingress tcp any -> any:8081 allow"
        Test-Tcp $web 8081 | Should -Be 'connected'
        Test-Tcp $web 8080 | Should -Be 'timeout'
        @(Set-NvRedirectConfiguration -Path $file) | Should -BeNullOrEmpty
    }

    It 'gives back what the document marks absent (and, with removeUnlisted, what it leaves out), last; the workload reads as before' {
        $before = Get-IpLink $db.Container -Name eth0
        $json = New-Document -WebRules @(@{ protocol = 'tcp'; port = 8081 }) -Extra @(@{ netnsPath = $db.NetnsPath; state = 'absent' })
        $made = @(Set-NvRedirectConfiguration -Json $json)
        ($made | ForEach-Object { "$($_.Action)" }) | Should -Be @('GiveBack')
        $after = Get-IpLink $db.Container -Name eth0
        $after.ifindex | Should -Be $before.ifindex
        $after.address | Should -Be $before.address
        @(Get-WorkloadInterception -Namespace $enforcer -NetnsPath $db.NetnsPath) | Should -BeNullOrEmpty
        # taken over again; left out with removeUnlisted false: kept; left out with the default: given back
        $webRules = @(@{ protocol = 'tcp'; port = 8081 })
        ($(Set-NvRedirectConfiguration -Json (New-Document -WebRules $webRules -Extra @(@{ netnsPath = $db.NetnsPath; mode = 'monitor' }))) | ForEach-Object { "$($_.Action)" }) |
            Should -Be @('TakeOver')
        @(Set-NvRedirectConfiguration -Json (New-Document -WebRules $webRules -RemoveUnlisted $false)) | Should -BeNullOrEmpty
        @(Get-WorkloadInterception -Namespace $enforcer -NetnsPath $db.NetnsPath).Count | Should -Be 1
        $made = @(Set-NvRedirectConfiguration -Json (New-Document -WebRules $webRules))
        ($made | ForEach-Object { "$($_.Action)" }) | Should -Be @('GiveBack')
        $made[0].Reason | Should -BeLike '*removeUnlisted*'
        @(Get-WorkloadInterception -Namespace $enforcer -NetnsPath $db.NetnsPath) | Should -BeNullOrEmpty
        Test-Tcp $db 5432 | Should -Be 'connected'
    }

    It 'switches the mode and the rules in one atomic change (Protect -> Monitor with another rule): one step' {
        $json = New-Document -WebMode 'monitor' -WebRules @(@{ protocol = 'tcp'; port = 8080; action = 'deny' })
        $made = @(Set-NvRedirectConfiguration -Json $json)
        $made.Count | Should -Be 1
        $made[0].Reason | Should -Be 'the mode and the rules differ'
        $p = Get-DpPolicy -Mac $web.Mac -ControlSocket $socket
        $p.Mode | Should -Be 'Monitor'
        "$($p.Rules[0].Action)" | Should -Be 'Deny'
        Test-Tcp $web 8080 | Should -Be 'timeout'
        Test-Tcp $web 8081 | Should -Be 'connected'
    }

    It 'knows a workload by its namespace however it is named: the container by a pid of it is the one taken over by its path' {
        $sleeper = Start-TestProcess $web.Container 'sleep 60'
        try {
            $inode = & stat -L -c %i $web.NetnsPath
            Wait-TestCondition { (& stat -L -c %i "/proc/$($sleeper.Id)/ns/net" 2>$null) -eq $inode } | Should -BeTrue
            $text = (Get-NvRedirectConfiguration -Namespace $enforcer -AsJson).Replace("`"netnsPath`": `"$($web.NetnsPath)`"", "`"pid`": $($sleeper.Id)")
            $text | Should -BeLike "*`"pid`": $($sleeper.Id)*"
            @(Test-NvRedirectConfiguration -Json $text -Detailed) | Should -BeNullOrEmpty
            @(Set-NvRedirectConfiguration -Json $text) | Should -BeNullOrEmpty
        }
        finally { Stop-TestProcess $sleeper }
    }
}

Describe 'Configuration documents that cannot be converged' {
    It 'refuses <Case> with <Id> naming the field, and changes nothing' -ForEach @(
        @{ Case = 'an unknown field'; Json = '{"namespace":"NS","workloads":[{"netnsPath":"/run/netns/x","colour":"red"}]}'; Id = 'InvalidArgument'; Message = "*workloads[[]0[]] has an unknown field 'colour'*" }
        @{ Case = 'a misspelt mode'; Json = '{"namespace":"NS","workloads":[{"netnsPath":"/run/netns/x","mode":"protct"}]}'; Id = 'InvalidArgument'; Message = "*workloads[[]0[]].mode is 'protct': write one of none, discover, monitor, protect, custom*" }
        @{ Case = 'a bad port'; Json = '{"namespace":"NS","workloads":[{"netnsPath":"/run/netns/x","mode":"protect","rules":[{"port":"80800"}]}]}'; Id = 'InvalidArgument'; Message = "*rules[[]0[]]: The port '80800'*" }
        @{ Case = 'rules without a mode'; Json = '{"namespace":"NS","workloads":[{"netnsPath":"/run/netns/x","rules":[{"port":"80"}]}]}'; Id = 'InvalidArgument'; Message = '*rules are given with mode none*' }
        @{ Case = 'a workload named twice'; Json = '{"namespace":"NS","workloads":[{"pid":1},{"pid":1}]}'; Id = 'InvalidArgument'; Message = '*both name process 1*' }
        @{ Case = 'a workload that does not exist'; Json = '{"namespace":"NS","workloads":[{"netnsPath":"/run/netns/NS-none","mode":"protect"}]}'; Id = 'InvalidArgument'; Message = '*cannot be protected: There is no namespace file*' }
        @{ Case = 'text that is not JSON'; Json = '{"namespace":'; Id = 'InvalidArgument'; Message = '*not valid JSON*' }
    ) {
        $ns = New-TestNamespaceName 'cfg-bad'
        $text = $Json.Replace('NS', $ns)
        $e = @(Get-ErrorRecord { Set-NvRedirectConfiguration -Json $text })
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike "SetNvRedirectConfiguration$Id,*"
        $e[0].Exception.Message | Should -BeLike $Message
        (Get-ErrorRecord { Test-NvRedirectConfiguration -Json $text }).FullyQualifiedErrorId | Should -BeLike "TestNvRedirectConfiguration$Id,*"
        Test-Path "/run/netns/$ns" | Should -BeFalse
    }

    It 'refuses to export a namespace that does not exist (an empty document applied would create it)' {
        $ns = New-TestNamespaceName 'cfg-none'
        $e = @(Get-ErrorRecord { Get-NvRedirectConfiguration -Namespace $ns })
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'GetNvRedirectConfigurationNamespaceNotFound,*'
        $e[0].Exception.Message | Should -BeLike "*$ns*"
    }
}
