#!pwsh -NoProfile -NonInteractive
# WANT_JSON
# nvredirect.core.config: converges a whole enforcer to a configuration document (documentation: config.yml beside
# this file, docs/ansible.md, docs/configuration.md). Run as `pwsh -NoProfile -NonInteractive config.ps1 ARGS.json`
# (ansible_pwsh_interpreter names another pwsh). Test-NvRedirectConfiguration -Detailed (check mode) or
# Set-NvRedirectConfiguration return the planned or made changes, which decide `changed`; the diff is the running
# document before and the document after (or, in check mode, the changes planned).
param([Parameter(Mandatory)][string]$ArgumentsPath)
$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue'; $WarningPreference = 'SilentlyContinue'

# the result and failure shapes both modules print (Ansible reads one JSON object from stdout); start, end and delta
# as ansible.builtin.command reports them (a fleet run shows its nodes converging at the same time)
$started = [DateTime]::Now
function Exit-Module([hashtable]$Result) {
    $ended = [DateTime]::Now
    $Result.start = $started.ToString('yyyy-MM-dd HH:mm:ss.ffffff'); $Result.end = $ended.ToString('yyyy-MM-dd HH:mm:ss.ffffff'); $Result.delta = ($ended - $started).ToString()
    $Result | ConvertTo-Json -Depth 12 -Compress; exit 0
}
function Exit-Failure([string]$Message, [string]$ErrorId, [hashtable]$Extra = @{}) {
    $Extra.failed = $true; $Extra.msg = $Message; $Extra.error_id = $ErrorId
    $Extra | ConvertTo-Json -Depth 12 -Compress; exit 1
}

$options = @{ config = 'dict'; path = 'string' }
$raw = Get-Content -LiteralPath $ArgumentsPath -Raw | ConvertFrom-Json -AsHashtable
$check = [bool]$raw['_ansible_check_mode']; $diffMode = [bool]$raw['_ansible_diff']
$unknown = @($raw.Keys | Where-Object { -not $_.StartsWith('_ansible_') -and -not $options.ContainsKey($_) } | Sort-Object)
if ($unknown) { Exit-Failure "Unsupported parameters for nvredirect.core.config: $($unknown -join ', '). Supported parameters: $(($options.Keys | Sort-Object) -join ', ')." 'ConfigUnsupportedParameter' }
if (($null -ne $raw['config']) -eq ($null -ne $raw['path'])) { Exit-Failure 'Give the configuration either as config (the document) or as path (a JSON file on the target), not both and not neither.' 'ConfigDocumentRequired' }

try {
    Import-Module NvRedirect
    $text = if ($null -ne $raw['config']) { $raw.config | ConvertTo-Json -Depth 12 } else { Get-Content -LiteralPath ([string]$raw.path) -Raw }
    $namespace = (ConvertFrom-Json $text -AsHashtable)['namespace'] ?? 'nvr-enforcer'
    $source = @{ Json = $text }
    $exists = (Get-AgentNamespace).Name -contains $namespace
    $before = if ($diffMode -and $exists) { Get-NvRedirectConfiguration -Namespace $namespace -AsJson } else { '' }
    $changes = if ($check) { @(Test-NvRedirectConfiguration @source -Detailed) } else { @(Set-NvRedirectConfiguration @source -Confirm:$false) }
    $exists = (Get-AgentNamespace).Name -contains $namespace
    $after = if ($exists) { Get-NvRedirectConfiguration -Namespace $namespace -AsJson } else { '' }
} catch {
    $message = if ($_.ErrorDetails -and $_.ErrorDetails.Message) { $_.ErrorDetails.Message } else { $_.Exception.Message }
    Exit-Failure $message $_.FullyQualifiedErrorId
}

$result = @{
    changed = $changes.Count -gt 0
    changes = @($changes | ForEach-Object { [ordered]@{ step = $_.Step; action = "$($_.Action)"; target = $_.Target; reason = $_.Reason; before = $_.Before; after = $_.After } })
    configuration = if ($after) { $after | ConvertFrom-Json -AsHashtable } else { $null }
}
if ($diffMode) {
    $result.diff = if ($check) {
        @{ before_header = "$namespace (planned steps: before)"; after_header = "$namespace (planned steps: after)"
            before = (@($changes | ForEach-Object Before) -join "`n") + "`n"; after = (@($changes | ForEach-Object After) -join "`n") + "`n" }
    } else { @{ before_header = "$namespace (running configuration before)"; after_header = "$namespace (running configuration after)"; before = "$before`n"; after = "$after`n" } }
}
Exit-Module $result
