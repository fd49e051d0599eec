#!pwsh -NoProfile -NonInteractive
# WANT_JSON
# nvredirect.core.workload: protects one container with NvRedirect (documentation: workload.yml beside this file and
# docs/ansible.md). Ansible runs it as `pwsh -NoProfile -NonInteractive workload.ps1 ARGS.json` (the shebang's first
# word is the interpreter, so the variable ansible_pwsh_interpreter can name another pwsh). It builds a one-workload
# configuration document (removeUnlisted false: the enforcer's other workloads are left alone) and lets
# Test-NvRedirectConfiguration (check mode) or Set-NvRedirectConfiguration converge it; the planned or made changes
# decide `changed` and make the diff.
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

$options = @{ container = 'string'; container_pid = 'int'; netns_path = 'string'; namespace = 'string'; interfaces = 'list'; mode = 'string'
    rules = 'list'; state = 'string'; control_socket = 'string' }
$raw = Get-Content -LiteralPath $ArgumentsPath -Raw | ConvertFrom-Json -AsHashtable
$check = [bool]$raw['_ansible_check_mode']; $diffMode = [bool]$raw['_ansible_diff']
$unknown = @($raw.Keys | Where-Object { -not $_.StartsWith('_ansible_') -and -not $options.ContainsKey($_) } | Sort-Object)
if ($unknown) { Exit-Failure "Unsupported parameters for nvredirect.core.workload: $($unknown -join ', '). Supported parameters: $(($options.Keys | Sort-Object) -join ', ')." 'WorkloadUnsupportedParameter' }
$named = @('container', 'container_pid', 'netns_path' | Where-Object { $null -ne $raw[$_] })
if ($named.Count -ne 1) { Exit-Failure "Name the workload with exactly one of container, container_pid or netns_path$(if ($named) { " (got $($named -join ', '))" })." 'WorkloadTargetRequired' }
$state = if ($raw['state']) { [string]$raw['state'] } else { 'present' }
if ($state -notin 'present', 'absent') { Exit-Failure "state is '$state': write present or absent." 'WorkloadInvalidState' }
$namespace = if ($raw['namespace']) { [string]$raw['namespace'] } else { 'nvr-enforcer' }

$workload = [ordered]@{}
switch ($named[0]) {
    'container' { $workload.container = [string]$raw.container }
    'container_pid' { $workload.pid = $raw.container_pid }
    'netns_path' { $workload.netnsPath = [string]$raw.netns_path }
}
# a list, or (ad hoc: -a interfaces=eth0,eth1) its comma-separated text
if ($null -ne $raw['interfaces']) { $workload.interfaces = @($raw.interfaces | ForEach-Object { if ($_ -is [string]) { $_ -split ',' | ForEach-Object Trim } else { $_ } }) }
if ($state -eq 'absent') { $workload.state = 'absent' }
else {
    $workload.mode = if ($raw['mode']) { [string]$raw['mode'] } else { 'none' }
    if ($null -ne $raw['rules']) { $workload.rules = @($raw.rules) }
}
$document = [ordered]@{ namespace = $namespace; removeUnlisted = $false; workloads = @($workload) }
if ($raw['control_socket']) { $document.datapath = @{ controlSocket = [string]$raw.control_socket } }
$json = $document | ConvertTo-Json -Depth 10

try {
    Import-Module NvRedirect
    $changes = if ($check) { @(Test-NvRedirectConfiguration -Json $json -Detailed) } else { @(Set-NvRedirectConfiguration -Json $json -Confirm:$false) }
} catch {
    $message = if ($_.ErrorDetails -and $_.ErrorDetails.Message) { $_.ErrorDetails.Message } else { $_.Exception.Message }
    Exit-Failure $message $_.FullyQualifiedErrorId
}

$result = @{
    changed = $changes.Count -gt 0
    changes = @($changes | ForEach-Object { [ordered]@{ step = $_.Step; action = "$($_.Action)"; target = $_.Target; reason = $_.Reason; before = $_.Before; after = $_.After } })
    namespace = $namespace
}
# the resulting interceptions of this workload, as Get-WorkloadInterception reports them (none when absent)
$selector = switch ($named[0]) { 'container' { @{ Container = $workload.container } } 'container_pid' { @{ ProcessId = $workload.pid } } 'netns_path' { @{ NetnsPath = $workload.netnsPath } } }
$result.interceptions = @(if ((Get-AgentNamespace).Name -contains $namespace) {
        Get-WorkloadInterception -Namespace $namespace @selector -ErrorAction SilentlyContinue |
            ForEach-Object { [ordered]@{ interface = $_.Interface; workload_mac = $_.WorkloadMac; entry_link = $_.EntryLink; inner_link = $_.InnerLink; mode = $_.Mode; control_socket = $_.ControlSocket; backend = $_.Backend } }
    })
if ($diffMode) {
    $result.diff = @{
        before_header = "$($named[0]) $($raw[$named[0]]) in $namespace (before)"; after_header = "$($named[0]) $($raw[$named[0]]) in $namespace (after)"
        before = (@($changes | ForEach-Object Before) -join "`n") + "`n"; after = (@($changes | ForEach-Object After) -join "`n") + "`n"
    }
}
Exit-Module $result
