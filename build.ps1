<#
.SYNOPSIS
    Builds, tests and demonstrates NvRedirect.
.DESCRIPTION
    Tasks:
      Build  - builds the module (bin/) and the tests, and generates the MAML help (en-US/) and docs/cmdlets.md.
      Test   - Build, then xunit, then Pester in a fresh pwsh against the built module, then the stock-kernel
               Pester subset under Debian's own kernel (user-mode-linux; tests/stock-kernel/); prints
               "N passed, N failed, N skipped" summed over both as its last line; exits 1 on any failure or
               when no test ran.
      Demo   - Build, then runs the seed scenario (src/demo/SeedDemo.ps1) in a fresh pwsh and cleans up.
      Bench  - Build, then runs the benchmark scripts under bench/.
      Diagrams - Build, then draws the seed topology and a protected container as they run (src/demo/Diagrams.ps1:
               Get-AgentTopology | ConvertTo-TopologyDiagram) into docs/images/*.mmd, *.dot and *.svg, and cleans up.
      Install - Build, then installs the module system-wide (-ModuleDestination, default
               /usr/local/share/powershell/Modules/NvRedirect, where `Import-Module NvRedirect` finds it) and, when no
               pwsh is on PATH (or wherever -PwshDestination says), a `pwsh` wrapper (default /usr/local/bin/pwsh)
               that runs this PowerShell; what Ansible's nvredirect.core modules need on a target (docs/ansible.md).
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 Test
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Bench', 'Diagrams', 'Install')]
    [string]$Task = 'Build',
    [ValidateSet('Debug', 'Release')]
    [string]$Configuration = 'Release',
    # Extra arguments for the Pester run (a path or a tag filter), mostly for development.
    [string[]]$PesterPath,
    # Skip the stock-kernel stage (development only: CI runs it).
    [switch]$SkipStockKernel,
    # Install: the folder that gets the module (its parent must be in PSModulePath for `Import-Module NvRedirect`).
    [string]$ModuleDestination = '/usr/local/share/powershell/Modules/NvRedirect',
    # Install: where the pwsh wrapper goes when no pwsh is on PATH.
    [string]$PwshDestination = '/usr/local/bin/pwsh',
    # Install: copy what the last Build made, without building again (the Ansible tests install the build under test).
    [switch]$NoBuild
)

$ErrorActionPreference = 'Stop'
$env:NO_COLOR = '1'
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'
Set-StrictMode -Version Latest
$root = $PSScriptRoot
$pwshDll = Join-Path $PSHOME 'pwsh.dll'
$pwshGiven = $PSBoundParameters.ContainsKey('PwshDestination')

function Invoke-Native([string]$What, [scriptblock]$Command) {
    & $Command
    if ($LASTEXITCODE -ne 0) { throw "$What failed with exit code $LASTEXITCODE." }
}

# Debian packages the tests and the demo call (iproute2 for cross-checks, ping for traffic, strace for byte captures,
# tcpdump to read our pcap files back, ethtool to check offloads, python3 for the seed's client; podman with runc and
# a static busybox for real containers: tests/pester/Container.Podman.Tests.ps1 builds its image from busybox-static;
# setpriv (util-linux) to send as nobody, systemd-analyze to verify the shipped unit: the systemd package installs
# without systemd running; graphviz's dot draws the topology diagrams as SVG).
$prerequisites = [ordered]@{ ip = 'iproute2'; tc = 'iproute2'; ping = 'iputils-ping'; strace = 'strace'; python3 = 'python3'; tcpdump = 'tcpdump'; ethtool = 'ethtool'
    podman = 'podman'; runc = 'runc'; busybox = 'busybox-static'; nsenter = 'util-linux'; setpriv = 'util-linux'; 'systemd-analyze' = 'systemd'
    dot = 'graphviz'
    'ansible-playbook' = 'ansible-core' }   # tests/pester/Ansible.Tests.ps1 runs the collection (src/ansible) with Debian's ansible-core

function Install-Prerequisites {
    $missing = @($prerequisites.GetEnumerator() | Where-Object { -not (Get-Command $_.Key -CommandType Application -ErrorAction SilentlyContinue) } | ForEach-Object Value | Select-Object -Unique)
    if (-not $missing) { return }
    if ((id -u) -ne '0') { throw "Missing Debian packages: $($missing -join ', '). Install them (apt-get install $($missing -join ' ')) or run as root." }
    Write-Host "== installing $($missing -join ', ')"
    $env:DEBIAN_FRONTEND = 'noninteractive'
    Invoke-Native 'apt-get update' { apt-get update -qq | Out-Null }
    Invoke-Native 'apt-get install' { apt-get install -y -qq --no-install-recommends @missing | Out-Null }
}

function Invoke-Build {
    Write-Host "== build ($Configuration)"
    Invoke-Native 'dotnet build' { dotnet build (Join-Path $root 'tests/NvRedirect.Tests/NvRedirect.Tests.csproj') -c $Configuration -nologo -v quiet -clp:NoSummary }
    Write-Host '== help'
    & (Join-Path $root 'src/help/New-MamlHelp.ps1') -AssemblyPath (Join-Path $root 'bin/NvRedirect.dll') -OutputPath (Join-Path $root 'en-US/NvRedirect.dll-Help.xml') -MarkdownPath (Join-Path $root 'docs/cmdlets.md')
}

function Get-PesterManifest {
    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
    $psd1 = Join-Path $packages 'pester/5.7.1/tools/Pester.psd1'
    if (-not (Test-Path $psd1)) { throw "Pester 5.7.1 is missing at $psd1; 'dotnet restore tests/NvRedirect.Tests' downloads it." }
    $psd1
}

function Invoke-XunitTests {
    Write-Host '== xunit'
    $results = Join-Path $root 'artifacts/xunit'
    Remove-Item $results -Recurse -Force -ErrorAction SilentlyContinue
    dotnet test (Join-Path $root 'tests/NvRedirect.Tests/NvRedirect.Tests.csproj') -c $Configuration --no-build -nologo `
        --logger 'trx;LogFileName=xunit.trx' --logger 'console;verbosity=normal' --results-directory $results | Out-Host
    $trx = Join-Path $results 'xunit.trx'
    if (-not (Test-Path $trx)) { return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 } }
    $counters = ([xml](Get-Content $trx -Raw)).TestRun.ResultSummary.Counters
    $r = [pscustomobject]@{ Passed = [int]$counters.passed; Failed = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout + [int]$counters.aborted; Skipped = [int]$counters.notExecuted }
    if ($LASTEXITCODE -ne 0 -and $r.Failed -eq 0) { $r.Failed = 1 }   # the runner itself broke
    Write-Host "xunit: $($r.Passed) passed, $($r.Failed) failed, $($r.Skipped) skipped"
    $r
}

function Invoke-PesterTests {
    Write-Host '== pester'
    $summary = Join-Path $root 'artifacts/pester-summary.json'
    Remove-Item $summary -Force -ErrorAction SilentlyContinue
    $args = @('-NoProfile', '-NonInteractive', '-File', (Join-Path $root 'tests/run-pester.ps1'),
        '-PesterPsd1', (Get-PesterManifest), '-SummaryPath', $summary)
    if ($PesterPath) { $args += @('-Path', ($PesterPath -join ',')) }
    dotnet $pwshDll @args | Out-Host
    $code = $LASTEXITCODE
    if (-not (Test-Path $summary)) { return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 } }
    $r = Get-Content $summary -Raw | ConvertFrom-Json
    if ($code -ne 0 -and $r.Failed -eq 0) { $r.Failed = 1 }
    $r
}

function Invoke-StockKernelTests {
    # the Pester files of tests/stock-kernel/ under Debian 12's stock kernel, which has act_pedit (docs/stock-kernel.md)
    Write-Host '== stock kernel (user-mode-linux, Debian 12 kernel with act_pedit)'
    $summary = Join-Path $root 'artifacts/stock-kernel-summary.json'
    Remove-Item $summary -Force -ErrorAction SilentlyContinue
    bash (Join-Path $root 'tests/stock-kernel/pester.sh') -t 1800 | Out-Host
    $code = $LASTEXITCODE
    if (-not (Test-Path $summary)) { return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 } }
    $r = Get-Content $summary -Raw | ConvertFrom-Json
    if ($code -ne 0 -and -not $r.Failed) { $r.Failed = 1 }
    $r
}

# The module as a system-wide one: the manifest, bin/ (cmdlets, nvr-dp) and the help, replacing an older install; and
# a pwsh for scripts and Ansible (`#!pwsh` modules) when PATH has none: a wrapper that runs this PowerShell's pwsh.dll
# with this dotnet. A wrapper we wrote before (it carries the marker line) is rewritten; any other pwsh is left alone.
function Install-NvRedirect {
    $built = Join-Path $root 'bin/NvRedirect.dll'
    if (-not (Test-Path $built)) { throw "Nothing to install: $built is missing (run without -NoBuild)." }
    Write-Host "== install the module in $ModuleDestination"
    if (Test-Path $ModuleDestination) {
        if (-not (Test-Path (Join-Path $ModuleDestination 'NvRedirect.psd1'))) { throw "$ModuleDestination exists and is not an NvRedirect install: remove it or give another -ModuleDestination." }
        Remove-Item $ModuleDestination -Recurse -Force
    }
    New-Item -ItemType Directory -Path $ModuleDestination -Force | Out-Null
    Copy-Item (Join-Path $root 'NvRedirect.psd1') $ModuleDestination
    Copy-Item (Join-Path $root 'bin'), (Join-Path $root 'en-US') $ModuleDestination -Recurse
    $marker = '# pwsh wrapper written by NvRedirect build.ps1 Install'
    # PATH as the system has it: this pwsh put its own folder first, which others do not see
    $onPath = $env:PATH -split ':' | Where-Object { $_ -and -not $_.StartsWith($PSHOME) } | ForEach-Object { Join-Path $_ 'pwsh' } | Where-Object { Test-Path $_ -PathType Leaf } | Select-Object -First 1
    $ours = (Test-Path $PwshDestination) -and (Get-Content $PwshDestination -TotalCount 2) -contains $marker
    if ($onPath -and -not $pwshGiven -and -not ($ours -and $onPath -eq $PwshDestination)) { Write-Host "== pwsh on PATH: $onPath (left as it is)"; return }
    if ((Test-Path $PwshDestination) -and -not $ours) { throw "$PwshDestination exists and is not our wrapper: give another -PwshDestination." }
    # `dotnet pwsh` is the dotnet host running pwsh.dll; a pwsh started any other way is its own executable
    $self = (Get-Process -Id $PID).Path
    $run = if ((Split-Path $self -Leaf) -eq 'dotnet') { "'$self' '$pwshDll'" } else { "'$self'" }
    Write-Host "== pwsh wrapper $PwshDestination -> $run"
    New-Item -ItemType Directory -Path (Split-Path $PwshDestination) -Force | Out-Null
    Set-Content -Path $PwshDestination -Value "#!/bin/sh`n$marker`nexec $run `"`$@`"" -NoNewline:$false
    chmod 755 $PwshDestination
}

switch ($Task) {
    'Build' { Invoke-Build }
    'Test' {
        $failedBuild = $false
        try { Install-Prerequisites; Invoke-Build } catch { Write-Host "build failed: $_"; $failedBuild = $true }
        if ($failedBuild) { Write-Host '0 passed, 1 failed, 0 skipped'; exit 1 }
        $x = Invoke-XunitTests
        $p = Invoke-PesterTests
        $s = if ($SkipStockKernel) { [pscustomobject]@{ Passed = 0; Failed = 0; Skipped = 0 } } else { Invoke-StockKernelTests }
        $passed = $x.Passed + $p.Passed + $s.Passed; $failed = $x.Failed + $p.Failed + $s.Failed; $skipped = $x.Skipped + $p.Skipped + $s.Skipped
        Write-Host "stock-kernel: $($s.Passed) passed, $($s.Failed) failed, $($s.Skipped) skipped"
        Write-Host "pester: $($p.Passed) passed, $($p.Failed) failed, $($p.Skipped) skipped"
        Write-Host "xunit: $($x.Passed) passed, $($x.Failed) failed, $($x.Skipped) skipped"
        Write-Host "$passed passed, $failed failed, $skipped skipped"
        if ($failed -gt 0 -or $passed -eq 0) { exit 1 }
        exit 0
    }
    'Demo' {
        Install-Prerequisites
        Invoke-Build
        dotnet $pwshDll -NoProfile -NonInteractive -File (Join-Path $root 'src/demo/SeedDemo.ps1')
        exit $LASTEXITCODE
    }
    'Diagrams' {
        Install-Prerequisites
        Invoke-Build
        dotnet $pwshDll -NoProfile -NonInteractive -File (Join-Path $root 'src/demo/Diagrams.ps1')
        exit $LASTEXITCODE
    }
    'Install' {
        if (-not $NoBuild) { Invoke-Build }
        Install-NvRedirect
    }
    'Bench' {
        Invoke-Build
        $failedScripts = @()
        foreach ($script in Get-ChildItem (Join-Path $root 'bench') -Filter '*.ps1' | Sort-Object Name) {
            Write-Host "== $($script.Name)"
            dotnet $pwshDll -NoProfile -NonInteractive -File $script.FullName
            if ($LASTEXITCODE -ne 0) { $failedScripts += $script.Name }
        }
        if ($failedScripts) { Write-Host "benchmarks that failed: $($failedScripts -join ', ')"; exit 1 }
    }
}
