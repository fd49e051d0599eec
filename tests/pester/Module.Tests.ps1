# The module's PowerShell surface: exports, ShouldProcess, output types, format views and argument completers.
BeforeAll { Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force; Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force }
AfterAll { if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace } }

Describe 'Module surface' {
    BeforeAll {
        $manifest = Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../NvRedirect.psd1')
        $module = Get-Module NvRedirect
        # Get, Watch and Test only read (Test-AgentConnection sends probes and changes nothing; a connection it keeps
        # open is closed by Disconnect-AgentConnection, which has -WhatIf); every other verb changes state
        # New-DpRule and ConvertTo-DpRule only build rule objects in memory (sending them is Set-DpPolicy's or
        # Add-DpPolicyRule's job), so they change nothing and have no -WhatIf
        $changing = $manifest.CmdletsToExport | Where-Object { ($_ -split '-')[0] -notin 'Get', 'Watch', 'Test' -and $_ -notin 'New-DpRule', 'ConvertTo-DpRule', 'ConvertTo-TopologyDiagram' }
        $outputTypes = $manifest.CmdletsToExport | ForEach-Object { (Get-Command $_).OutputType.Type } |
            Where-Object { $_ -and $_.Namespace -like 'NvRedirect*' } | Sort-Object FullName -Unique
    }

    It 'exports exactly the cmdlets the manifest lists, and nothing else' {
        ($module.ExportedCmdlets.Keys | Sort-Object) | Should -Be ($manifest.CmdletsToExport | Sort-Object)
        $module.ExportedFunctions.Count | Should -Be 0
        $module.ExportedAliases.Count | Should -Be 0
        $module.ExportedVariables.Count | Should -Be 0
    }

    It 'lists every cmdlet class of the assembly in the manifest' {
        $attribute = [System.Management.Automation.CmdletAttribute]
        $inAssembly = [NvRedirect.Cmdlets.NewAgentNamespaceCommand].Assembly.GetExportedTypes() |
            Where-Object { $_.IsDefined($attribute, $false) } |
            ForEach-Object { $a = $_.GetCustomAttributes($attribute, $false)[0]; "$($a.VerbName)-$($a.NounName)" }
        ($inAssembly | Sort-Object) | Should -Be ($manifest.CmdletsToExport | Sort-Object)
    }

    It 'supports -WhatIf and -Confirm on every cmdlet that changes state, and only there' {
        foreach ($name in $manifest.CmdletsToExport) {
            $parameters = (Get-Command $name).Parameters
            $expected = $name -in $changing
            $parameters.ContainsKey('WhatIf') | Should -Be $expected -Because "$name $(if ($expected) { 'changes' } else { 'only reads' }) state"
            $parameters.ContainsKey('Confirm') | Should -Be $expected
        }
    }

    It 'declares an output type on every cmdlet' {
        foreach ($name in $manifest.CmdletsToExport) {
            @((Get-Command $name).OutputType).Count | Should -BeGreaterThan 0 -Because "$name needs [OutputType]"
        }
    }

    It 'has a table view for <Type>' -ForEach @(
        @{ Type = 'NvRedirect.Core.Model.AgentNamespace' }
        @{ Type = 'NvRedirect.Core.Model.AgentLink' }
        @{ Type = 'NvRedirect.Core.Model.AgentAddress' }
        @{ Type = 'NvRedirect.Core.Tc.AgentQdisc' }
        @{ Type = 'NvRedirect.Core.Tc.RedirectFilter' }
        @{ Type = 'NvRedirect.Core.Datapath.DpPolicy' }
        @{ Type = 'NvRedirect.Core.Datapath.DpRule' }
        @{ Type = 'NvRedirect.Core.Datapath.DpConnection' }
        @{ Type = 'NvRedirect.Core.Probes.ProbeResult' }
        @{ Type = 'NvRedirect.Core.Probes.HeldConnection' }
        @{ Type = 'NvRedirect.Core.Probes.EchoServer' }
        @{ Type = 'NvRedirect.Core.Probes.EchoServerEvent' }
    ) {
        $data = Get-FormatData -TypeName $Type
        $data | Should -Not -BeNullOrEmpty
        $views = @($data.FormatViewDefinition)
        $views.Count | Should -BeGreaterThan 0
        $views[0].Control | Should -BeOfType ([System.Management.Automation.TableControl])
    }

    It 'has a format view for every output type of every cmdlet' {
        $outputTypes.Count | Should -BeGreaterThan 3
        foreach ($type in $outputTypes) {
            @((Get-FormatData -TypeName $type.FullName).FormatViewDefinition).Count | Should -BeGreaterThan 0 -Because "$($type.FullName) is a cmdlet output type"
        }
    }
}

Describe 'Formatting live objects' {
    BeforeAll {
        $a = New-TestNamespace 'fmt-a'
        $b = New-TestNamespace 'fmt-b'
        Invoke-Ip -n $a link add name f0 type veth peer name f1 netns $b
        Invoke-Ip -n $a addr add 10.10.10.40/24 dev f0
        function Format-Plain([Parameter(ValueFromPipeline)]$InputObject) {
            begin { $items = @() } process { $items += $InputObject } end { ($items | Out-String -Width 250) -split "`n" | ForEach-Object TrimEnd }
        }
    }
    AfterAll { Remove-TestNamespace }

    It 'shows namespaces as a table of name, id, mount state and path' {
        $text = Get-AgentNamespace $a | Format-Plain
        $header = $text | Where-Object { $_ -match '^\s*Name\s' } | Select-Object -First 1
        $header | Should -Match '^Name\s+Id\s+Mounted\s+Path$'
        $text | Should -Contain ($text | Where-Object { $_ -like "$a *" } | Select-Object -First 1)
        ($text -join "`n") | Should -BeLike "*/run/netns/$a*"
    }

    It 'shows links grouped by namespace, with the peer as name@namespace and the addresses' {
        $text = Get-AgentLink -Namespace $a | Format-Plain
        ($text -join "`n") | Should -BeLike "*Namespace: $a*"
        ($text | Where-Object { $_ -match '^\s*Index\s' }) | Should -Match 'Index\s+Name\s+Kind\s+State\s+MacAddress\s+Mtu\s+Peer\s+Addresses'
        $row = $text | Where-Object { $_ -match '\bf0\b' }
        $row | Should -Match "\bveth\b"
        $row | Should -BeLike "*f1@$b*"
        $row | Should -BeLike '*10.10.10.40/24*'
        $row | Should -BeLike "*$((Get-IpLink $a f0).address)*"
    }

    It 'shows addresses as a table of namespace, link, family, address and scope' {
        $text = Get-AgentAddress f0 -Namespace $a -Family IPv4 | Format-Plain
        ($text | Where-Object { $_ -match '^\s*Namespace\s' }) | Should -Match 'Namespace\s+LinkName\s+Family\s+Address\s+Scope'
        ($text | Where-Object { $_ -like "$a*" }) | Should -Match 'f0\s+IPv4\s+10\.10\.10\.40/24\s+global'
    }
}

Describe 'Argument completers' {
    BeforeAll {
        $ns = New-TestNamespace 'comp'
        $ns2 = New-TestNamespace 'comp'
        $prefix = "$(Get-TestRunStem)comp-"
        Invoke-Ip -n $ns link add name vex type veth peer name vex-peer
        Invoke-Ip -n $ns link add name wan type veth peer name wan-peer
        function Get-CompletionText([string]$Line) { @((TabExpansion2 $Line $Line.Length).CompletionMatches | ForEach-Object CompletionText) }
        $sorted = [string[]]@($ns, $ns2)
        [Array]::Sort($sorted, [StringComparer]::Ordinal)
    }
    AfterAll { Remove-TestNamespace }

    It 'completes -Namespace with the live namespaces starting with the typed prefix' {
        Get-CompletionText "Get-AgentLink -Namespace $prefix" | Should -Be $sorted
    }

    It 'completes namespace names on <Line>' -ForEach @(
        @{ Line = 'Remove-AgentNamespace ' }
        @{ Line = 'Get-AgentNamespace ' }
        @{ Line = 'New-AgentLink x y -PeerNamespace ' }
        @{ Line = 'Move-AgentLink vex -DestinationNamespace ' }
        @{ Line = 'Add-AgentAddress vex 10.10.10.1/24 -Namespace ' }
    ) {
        Get-CompletionText "$Line$prefix" | Should -Be $sorted
    }

    It 'completes nothing for a prefix no namespace has' {
        Get-CompletionText "Get-AgentLink -Namespace $(Get-TestRunStem)none-" | Should -BeNullOrEmpty
    }

    It 'completes link names in the namespace given by name' {
        Get-CompletionText "Get-AgentLink -Namespace $ns v" | Should -Be @('vex', 'vex-peer')
        Get-CompletionText "Get-AgentLink -Namespace $ns " | Should -Be @('lo', 'vex', 'vex-peer', 'wan', 'wan-peer')
    }

    It 'completes link names in the namespace given by a variable' {
        Get-CompletionText 'Get-AgentLink -Namespace $ns v' | Should -Be @('vex', 'vex-peer')
        Get-CompletionText 'Set-AgentLink -Namespace $ns -Name w' | Should -Be @('wan', 'wan-peer')
        Get-CompletionText 'Remove-AgentAddress -Namespace $ns -LinkName w' | Should -Be @('wan', 'wan-peer')
    }

    It 'completes nothing (and does not throw) for a namespace that does not exist' {
        Get-CompletionText "Get-AgentLink -Namespace $(Get-TestRunStem)missing v" | Should -BeNullOrEmpty
    }
}
