# Runs the Pester suite against the built module in this (fresh) pwsh process and writes a JSON summary.
# Usage: pwsh -NoProfile -NonInteractive -File tests/run-pester.ps1 -PesterPsd1 <root>/pester/5.7.1/tools/Pester.psd1
param(
    [Parameter(Mandatory)][string]$PesterPsd1,
    # docs/examples first (a user's suite, kept from rotting), then our own files, whose zz-Leftovers runs last
    [string[]]$Path = @((Join-Path $PSScriptRoot '../docs/examples'), (Join-Path $PSScriptRoot 'pester')),
    [string]$SummaryPath = (Join-Path $PSScriptRoot '../artifacts/pester-summary.json'),
    [string]$ResultPath = (Join-Path $PSScriptRoot '../artifacts/pester-results.xml')
)
$ErrorActionPreference = 'Stop'
$env:NO_COLOR = '1'
Import-Module $PesterPsd1 -Force
$c = New-PesterConfiguration
$c.Run.Path = @($Path | ForEach-Object { $_ -split ',' })
$c.Run.PassThru = $true
$c.Output.Verbosity = 'Detailed'
$c.Output.RenderMode = 'Plaintext'
$c.TestResult.Enabled = $true
$c.TestResult.OutputFormat = 'JUnitXml'
$c.TestResult.OutputPath = $ResultPath
$r = Invoke-Pester -Configuration $c
if ($null -eq $r) {
    # no test file at all: that is a failure, not an empty success
    New-Item -ItemType Directory -Force (Split-Path $SummaryPath) | Out-Null
    [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 } | ConvertTo-Json | Set-Content $SummaryPath
    'pester: 0 passed, 1 failed, 0 skipped (no test files found)'
    exit 1
}
$failed = $r.FailedCount + $r.FailedBlocksCount + $r.FailedContainersCount
New-Item -ItemType Directory -Force (Split-Path $SummaryPath) | Out-Null
[pscustomobject]@{ Passed = $r.PassedCount; Failed = $failed; Skipped = $r.SkippedCount } | ConvertTo-Json | Set-Content $SummaryPath
"pester: $($r.PassedCount) passed, $failed failed, $($r.SkippedCount) skipped"
if ($failed -gt 0 -or $r.TotalCount -eq 0) { exit 1 }
exit 0
