# The policy cmdlets against a real nvr-dp in the seed's topology (uniquely named namespaces, a control socket of this
# run): modes, learned connections turned into rules, rules added and removed, each proved by a ping from the host side.
# Every daemon started here is stopped in AfterAll (cleanly, then by pid), its files and namespaces removed.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $SeedMac = '1a:27:f3:87:3a:27'
    function Test-Ping([string]$Namespace, [int]$Count = 3) { Test-IcmpEcho $Namespace 10.10.10.88 -Count $Count }
    function Wait-Ping([string]$Namespace) { Wait-TestCondition { Test-Ping $Namespace -Count 1 } -TimeoutSeconds 15 }
}
AfterAll {
    if (Get-Command Stop-TestDp -ErrorAction Ignore) { Stop-TestDp $sock; Remove-TestNamespace }
}

Describe 'Workload modes and policies driven from PowerShell' {
    BeforeAll {
        $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
        $hostNs = $topo.HostNamespace
        $sock = New-TestDpPath '.sock'
        $null = Start-TestDp -Namespace $topo.AgentNamespace -ControlSocket $sock -LogPath (New-TestDpPath '.log')
        Add-DpServicePort vth -ControlSocket $sock
        Get-WorkloadInterception $topo.AgentNamespace | Add-DpMac -Tap $false -ControlSocket $sock
    }

    It 'a registered workload has no policy: Mode None, default Open, and traffic passes' {
        $p = Get-DpPolicy -Mac $SeedMac -ControlSocket $sock
        ($p.Mode, $p.DefaultAction, $p.Version, $p.Rules.Count) | Should -Be @('None', 'Open', 0, 0)
        (Get-Datapath -ControlSocket $sock).Workloads[0].Mode | Should -Be 'None'
        Wait-Ping $hostNs | Should -BeTrue
    }

    It 'Discover lets everything pass and records it as learned' {
        Clear-DpConnection -ControlSocket $sock
        Get-Datapath -ControlSocket $sock | Select-Object -ExpandProperty Workloads | Set-DpWorkloadMode -Mode Discover
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Mode | Should -Be 'Discover'
        Test-Ping $hostNs | Should -BeTrue
        $learned = @(Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock | Where-Object { $_.ProtocolName -eq 'ICMP' })
        $learned.Count | Should -Be 1
        ($learned[0].Direction, "$($learned[0].Client)", "$($learned[0].Server)", $learned[0].Action, $learned[0].RuleId) |
            Should -Be @('Ingress', '10.10.10.66', '10.10.10.88', 'Learn', 0)
    }

    It 'learned connections become the policy, and Protect then passes only what they allow' {
        Get-DpConnection -Mac $SeedMac -Learned -ControlSocket $sock | ConvertTo-DpRule | Set-DpPolicy
        $p = Get-DpPolicy $SeedMac -ControlSocket $sock
        $p.Mode | Should -Be 'Discover' -Because 'Set-DpPolicy keeps the default action'
        $icmp = @($p.Rules | Where-Object ProtocolName -EQ 'ICMP')
        $icmp.Count | Should -Be 1
        ($icmp[0].Source, $icmp[0].Destination, $icmp[0].Port, $icmp[0].Action) | Should -Be @('10.10.10.66', '10.10.10.88', 'any', 'Allow')
        $w = Set-DpWorkloadMode $SeedMac -Mode Protect -ControlSocket $sock -PassThru
        ($w.Mode, $w.Tap) | Should -Be @('Protect', $false)
        Test-Ping $hostNs | Should -BeTrue
    }

    It 'removing the rule blocks the traffic in Protect, and Get-DpConnection -Blocked shows it' {
        $id = (Get-DpPolicy $SeedMac -ControlSocket $sock).Rules | Where-Object ProtocolName -EQ 'ICMP' | ForEach-Object Id
        Remove-DpPolicyRule -Mac $SeedMac -Id $id -ControlSocket $sock
        Test-Ping $hostNs -Count 2 | Should -BeFalse
        $blocked = @(Get-DpConnection -Mac $SeedMac -Blocked -ControlSocket $sock | Where-Object ProtocolName -EQ 'ICMP')
        $blocked.Count | Should -Be 1
        $blocked[0].DroppedPackets | Should -BeGreaterThan 0
    }

    It 'an added rule lets it through again, and removing the policy opens everything' {
        New-DpRule -Source 10.10.10.0/24 -Protocol ICMP | Add-DpPolicyRule -Mac $SeedMac -ControlSocket $sock
        Wait-Ping $hostNs | Should -BeTrue
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Mode | Should -Be 'Protect'
        # policies piped into Set-DpPolicy: the default changes, the rules stay, -WhatIf changes nothing
        $before = Get-DpPolicy $SeedMac -ControlSocket $sock
        $before | Set-DpPolicy -DefaultAction Violate -WhatIf
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Version | Should -Be $before.Version
        $after = Get-DpPolicy $SeedMac -ControlSocket $sock | Set-DpPolicy -DefaultAction Violate -PassThru
        $after.Mode | Should -Be 'Monitor'
        @($after.Rules | ForEach-Object { "$_" }) | Should -Be @($before.Rules | ForEach-Object { "$_" })
        Set-DpWorkloadMode $SeedMac -Mode Protect -ControlSocket $sock
        Wait-Ping $hostNs | Should -BeTrue
        # saved and given back: rules through Export-Clixml / Import-Clixml and New-DpRule come back the same
        $saved = Join-Path ([System.IO.Path]::GetTempPath()) "$(Get-TestRunStem)rules-$(Get-Random).xml"
        try {
            $rules = (Get-DpPolicy $SeedMac -ControlSocket $sock).Rules
            $rules | Export-Clixml $saved
            Set-DpPolicy -Mac $SeedMac -Rule @() -ControlSocket $sock
            Import-Clixml $saved | New-DpRule | Set-DpPolicy -ControlSocket $sock
            @((Get-DpPolicy $SeedMac -ControlSocket $sock).Rules | ForEach-Object { "$_" }) | Should -Be @($rules | ForEach-Object { "$_" })
        }
        finally { Remove-Item -LiteralPath $saved -ErrorAction Ignore }
        Set-DpPolicy -Mac $SeedMac -Rule @() -ControlSocket $sock
        Test-Ping $hostNs -Count 2 | Should -BeFalse
        Remove-DpPolicy -Mac $SeedMac -ControlSocket $sock
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Mode | Should -Be 'None'
        Wait-Ping $hostNs | Should -BeTrue
    }

    It 'reports an unregistered MAC and a missing rule id with stable error ids' {
        $e = Get-ErrorRecord { Set-DpPolicy -Mac 02:00:00:00:00:99 -Rule (New-DpRule) -ControlSocket $sock }
        $e.FullyQualifiedErrorId | Should -BeLike 'SetDpPolicyNotFound,*'
        Set-DpWorkloadMode $SeedMac -Mode Monitor -ControlSocket $sock
        $e = Get-ErrorRecord { Remove-DpPolicyRule -Mac $SeedMac -Id 4242 -ControlSocket $sock }
        $e.FullyQualifiedErrorId | Should -BeLike 'RemoveDpPolicyRuleNotFound,*'
        (Get-DpPolicy $SeedMac -ControlSocket $sock).Mode | Should -Be 'Monitor'
    }
}
