# Get-Help shows real text for every exported cmdlet: the MAML file (en-US/NvRedirect.dll-Help.xml) that
# src/help/New-MamlHelp.ps1 writes during the build from the C# doc comments. Without that file Get-Help still answers,
# but with a synopsis made of the syntax and no descriptions or examples, which is what these tests catch.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1')
    $cmdlets = @(Get-Command -Module NvRedirect -CommandType Cmdlet | ForEach-Object { @{ Name = $_.Name } })
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1')
    $script:Reference = Get-Content (Join-Path $PSScriptRoot '../../docs/cmdlets.md') -Raw
    function Get-Text($Paragraphs) { (@($Paragraphs | ForEach-Object { if ($_ -is [string]) { $_ } else { $_.Text } }) -join ' ').Trim() }
}

Describe 'Get-Help' {
    It 'finds cmdlets to check' {
        @(Get-Command -Module NvRedirect -CommandType Cmdlet).Count | Should -BeGreaterThan 0
    }

    It '<Name> has a synopsis, a description, a description for every parameter and an explained example' -ForEach $cmdlets {
        $help = Get-Help $Name -Full

        $help.Synopsis | Should -Not -BeNullOrEmpty
        # the synopsis PowerShell makes up when there is no help file is the syntax, which starts with the name
        $help.Synopsis.Trim() | Should -Not -BeLike "$Name*"
        Get-Text $help.description | Should -Not -BeNullOrEmpty

        $parameters = (Get-Command $Name).Parameters.Keys | Where-Object { $_ -notin [System.Management.Automation.Cmdlet]::CommonParameters }
        foreach ($parameter in $parameters) {
            Get-Text (Get-Help $Name -Parameter $parameter).description | Should -Not -BeNullOrEmpty -Because "-$parameter of $Name needs a description"
        }

        $examples = @($help.examples.example)
        $examples.Count | Should -BeGreaterThan 0
        foreach ($example in $examples) {
            $example.code | Should -Not -BeNullOrEmpty
            Get-Text $example.remarks | Should -Not -BeNullOrEmpty -Because "every example of $Name says what it does: $($example.code)"
        }
    }

    It '<Name> is in docs/cmdlets.md' -ForEach $cmdlets {
        $script:Reference | Should -Match "(?m)^## $([regex]::Escape($Name))$"
    }
}
