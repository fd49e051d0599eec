# Runs last (files run in name order): proves that the suite left nothing of THIS run behind. The run's stems come
# from TestSupport.psm1 through environment variables set on its first import in this process.
BeforeAll { Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force; Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force }

Describe 'After the suite' {
    BeforeAll {
        $stem = Get-TestRunStem
        $linkStem = Get-TestLinkStem
    }
    AfterAll {
        # only after the assertions: sweep whatever this run left, so a failure here does not leave it for the next run
        $left = @(Get-ChildItem /run/netns -Name -ErrorAction Ignore | Where-Object { $_.StartsWith($stem, [StringComparison]::Ordinal) })
        if ($left) { Remove-TestNamespace $left }
    }

    It 'has a run stem of the recognisable form' {
        $stem | Should -Match '^nvt-\d+-[a-z0-9]{4}-$'
        $linkStem | Should -Match '^t[a-z0-9]{4}$'
    }

    It 'leaves no namespace of this run: not in ip netns list, not in Get-AgentNamespace, not in /run/netns' {
        @(Get-IpNamespaceName | Where-Object { $_.StartsWith($stem, [StringComparison]::Ordinal) }) | Should -BeNullOrEmpty
        @(Get-AgentNamespace "$stem*") | Should -BeNullOrEmpty
        @(Get-ChildItem /run/netns -Name -ErrorAction Ignore | Where-Object { $_.StartsWith($stem, [StringComparison]::Ordinal) }) | Should -BeNullOrEmpty
    }

    It 'leaves nothing of this run in nvr-dp''s private directory /run/nvredirect (pid locks, saved configurations, sockets, client sockets)' {
        # this run's names there: its sockets' escaped paths (%2Ftmp%2F<stem>...) and dp-<stem>... for default sockets of its namespaces
        @(Get-ChildItem /run/nvredirect -Name -ErrorAction Ignore | Where-Object { $_.StartsWith("%2Ftmp%2F$stem", [StringComparison]::Ordinal) -or $_.StartsWith("dp-$stem", [StringComparison]::Ordinal) -or $_.StartsWith("client.$PID.", [StringComparison]::Ordinal) }) |
            Should -BeNullOrEmpty
    }

    It 'leaves no fast-path map of this run pinned once gone namespaces are swept (as the next interception or Remove-AgentNamespace does)' {
        # namespaces deleted with ip netns while intercepted leave their pins; the product's sweep must find every one
        $null = [NvRedirect.Core.Bpf.FastPathMap]::SweepGoneNamespaces()
        @(Get-ChildItem /sys/fs/bpf/nvredirect -Name -ErrorAction Ignore | Where-Object { $_.StartsWith($stem, [StringComparison]::Ordinal) }) | Should -BeNullOrEmpty
    }

    It 'leaves no link of this run in the root namespace' {
        # links die with their namespaces asynchronously: poll, bounded
        $clean = Wait-TestCondition { @(Get-IpLink '' | Where-Object { $_.ifname.StartsWith($linkStem, [StringComparison]::Ordinal) }).Count -eq 0 }
        $clean | Should -BeTrue -Because "no link named $linkStem* may remain: $(@(Get-IpLink '' | ForEach-Object ifname) -join ', ')"
        @(Get-AgentLink "$linkStem*" -Namespace '') | Should -BeNullOrEmpty
    }
}
