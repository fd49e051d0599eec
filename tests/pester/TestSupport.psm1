# Shared helpers of the Pester suite: unique names, cleanup that never depends on the module under test,
# iproute2's own view (`ip -j`) as the independent witness, bounded polling and error-record assertions.
#
# Every name the suite makes carries this run's stem, so parallel runs (and other helpers' tests on the same
# machine) never collide, and zz-Leftovers.Tests.ps1 can prove that nothing of THIS run remains.
#   namespaces: nvt-<pid>-<rand>-<role>-<rand>     (the stem is in $env:NVT_RUN_STEM)
#   links that are not seed names: t<rand4><suffix> (<= 15 bytes; the stem is in $env:NVT_LINK_STEM)
# Both stems are set once per process, on the first import, and survive the -Force re-imports of later files.

Set-StrictMode -Version Latest

function New-RandomToken([int]$Length) {
    $chars = 'abcdefghijklmnopqrstuvwxyz0123456789'
    -join (1..$Length | ForEach-Object { $chars[[System.Security.Cryptography.RandomNumberGenerator]::GetInt32($chars.Length)] })
}

if (-not $env:NVT_RUN_STEM) { $env:NVT_RUN_STEM = "nvt-$PID-$(New-RandomToken 4)-" }
if (-not $env:NVT_LINK_STEM) { $env:NVT_LINK_STEM = "t$(New-RandomToken 4)" }

# Namespaces reserved by this import of the module (one import per test file); Remove-TestNamespace deletes them.
$script:Reserved = [System.Collections.Generic.List[string]]::new()

<#
.SYNOPSIS
    The stem every namespace of this run starts with (e.g. 'nvt-4242-k3x9-').
#>
function Get-TestRunStem { $env:NVT_RUN_STEM }

<#
.SYNOPSIS
    The stem of this run's non-seed link names (5 bytes, leaving 10 for a suffix).
#>
function Get-TestLinkStem { $env:NVT_LINK_STEM }

<#
.SYNOPSIS
    A unique link name of this run: the link stem plus a suffix (at most 15 bytes in all).
#>
function New-TestLinkName([Parameter(Mandatory)][string]$Suffix) {
    $name = (Get-TestLinkStem) + $Suffix
    if ([System.Text.Encoding]::UTF8.GetByteCount($name) -gt 15) { throw "Test link name '$name' is longer than 15 bytes; use a shorter suffix." }
    $name
}

<#
.SYNOPSIS
    Reserves a unique namespace name of this run (not created) and registers it for Remove-TestNamespace.
#>
function New-TestNamespaceName([Parameter(Mandatory)][string]$Role) {
    $name = "$(Get-TestRunStem)$Role-$(New-RandomToken 4)"
    $script:Reserved.Add($name)
    $name
}

<#
.SYNOPSIS
    Reserves and creates a namespace with iproute2 (`ip netns add`), independent of the module under test.
#>
function New-TestNamespace([Parameter(Mandatory)][string]$Role) {
    $name = New-TestNamespaceName $Role
    Invoke-Ip netns add $name | Out-Null
    $name
}

<#
.SYNOPSIS
    Deletes namespaces with iproute2: the given names, or every name this import reserved. Never throws for a name
    that is already gone; collects other failures and throws them at the end, after trying every name.
#>
function Remove-TestNamespace([string[]]$Name) {
    $names = if ($PSBoundParameters.ContainsKey('Name')) { $Name } else { @($script:Reserved) }
    $failures = [System.Collections.Generic.List[string]]::new()
    foreach ($n in $names) {
        if (-not $n.StartsWith((Get-TestRunStem), [StringComparison]::Ordinal)) { $failures.Add("refusing to delete '$n': not a namespace of this run"); continue }
        if (Test-Path -LiteralPath "/run/netns/$n") {
            $out = & ip netns delete $n 2>&1
            if ($LASTEXITCODE -ne 0) { $failures.Add("ip netns delete ${n}: $out") }
        }
        [void]$script:Reserved.Remove($n)
    }
    if ($failures.Count -gt 0) { throw ($failures -join '; ') }
}

<#
.SYNOPSIS
    Runs `ip ARGS`; throws with ip's own error text on a non-zero exit. Returns the standard output lines.
#>
function Invoke-Ip { Invoke-Checked ip @args }

# Runs a program; throws with its own error text on a non-zero exit; returns the standard output lines. stderr is
# kept apart from stdout: `ip netns list` warns on stderr about a namespace another process removes meanwhile.
function Invoke-Checked {
    $program, $arguments = $args
    $arguments = @($arguments)
    $all = @(& $program @arguments 2>&1)
    $stderr = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] } | ForEach-Object { "$_" })
    if ($LASTEXITCODE -ne 0) { throw "$program $($arguments -join ' ') failed ($LASTEXITCODE): $($stderr -join ' ')" }
    $all | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] } | ForEach-Object { "$_" }
}

function Get-NamespaceArgument([string]$Namespace) { if ($Namespace) { @('-n', $Namespace) } else { @() } }

<#
.SYNOPSIS
    iproute2's view of the links of a namespace ('' = the root namespace): `ip -j -d [-n NS] link show`, as objects.
    With -Name, only that link (nothing when it does not exist).
#>
function Get-IpLink([string]$Namespace = '', [string]$Name) {
    $json = (Invoke-Ip -j -d @(Get-NamespaceArgument $Namespace) link show) -join "`n"
    $links = if ($json.Trim()) { @($json | ConvertFrom-Json) } else { @() }
    if ($Name) { $links = @($links | Where-Object ifname -CEQ $Name) }
    $links
}

<#
.SYNOPSIS
    A comparable fingerprint of every link of a namespace (index, name, MAC, MTU, flags, peer, IPv4 addresses), one
    string per link: equal fingerprints before and after a failed command prove it left no partial state.
#>
# Flags that follow carrier and operstate, which the kernel updates asynchronously (linkwatch): not part of a fingerprint.
$script:AsyncFlags = @('LOWER_UP', 'NO-CARRIER', 'M-DOWN')

function Get-IpLinkState([string]$Namespace = '') {
    $addresses = @(Get-IpAddress $Namespace -Family IPv4)
    foreach ($l in Get-IpLink $Namespace) {
        $peer = if ($l.PSObject.Properties['link_index']) { "$($l.link_index)@$($l.link_netnsid)" } elseif ($l.PSObject.Properties['link']) { $l.link } else { '' }
        $v4 = ($addresses | Where-Object LinkIndex -EQ $l.ifindex | ForEach-Object Address | Sort-Object) -join ','
        "$($l.ifindex) $($l.ifname) $($l.address) mtu=$($l.mtu) flags=$(($l.flags | Where-Object { $_ -notin $script:AsyncFlags }) -join ',') peer=$peer v4=$v4"
    }
}

<#
.SYNOPSIS
    iproute2's view of the addresses of a namespace: `ip -j [-n NS] addr show`, flattened to one object per address
    (LinkName, Family 'IPv4'/'IPv6', Address 'a.b.c.d/len', Scope).
#>
function Get-IpAddress([string]$Namespace = '', [string]$LinkName, [ValidateSet('IPv4', 'IPv6')][string]$Family) {
    $json = (Invoke-Ip -j @(Get-NamespaceArgument $Namespace) addr show) -join "`n"
    $links = if ($json.Trim()) { @($json | ConvertFrom-Json) } else { @() }
    foreach ($l in $links) {
        if ($LinkName -and $l.ifname -cne $LinkName) { continue }
        foreach ($a in @($l.addr_info)) {
            $fam = if ($a.family -eq 'inet') { 'IPv4' } else { 'IPv6' }
            if ($Family -and $fam -ne $Family) { continue }
            [pscustomobject]@{ LinkName = $l.ifname; LinkIndex = $l.ifindex; Family = $fam; Address = "$($a.local)/$($a.prefixlen)"; Scope = $a.scope }
        }
    }
}

<#
.SYNOPSIS
    The namespace names iproute2 lists (`ip -j netns list`).
#>
function Get-IpNamespaceName {
    $json = (Invoke-Ip -j netns list) -join "`n"
    if ($json.Trim()) { @($json | ConvertFrom-Json | ForEach-Object name) } else { @() }
}

<#
.SYNOPSIS
    The namespace ids as seen from inside a namespace (`ip -j -n NS netns list`): a hashtable id -> name.
#>
function Get-IpNamespaceIdMap([Parameter(Mandatory)][string]$Namespace) {
    $json = (Invoke-Ip -j -n $Namespace netns list) -join "`n"
    $map = @{}
    if ($json.Trim()) { foreach ($n in ($json | ConvertFrom-Json)) { if ($n.PSObject.Properties['id']) { $map[[int]$n.id] = $n.name } } }
    $map
}

<#
.SYNOPSIS
    Asserts that an AgentLink says what iproute2 says about the same link: index, MTU, MAC, admin state, kind,
    veth peer (index, name and namespace, resolved through `ip -n NS netns list` ids) and IPv4 addresses.
.DESCRIPTION
    The operational state is left out (the kernel's linkwatch updates it asynchronously); IPv6 addresses too
    (an up link gains a link-local address asynchronously). Callers check those after waiting for them.
#>
function Assert-AgentLinkMatchesIp([Parameter(Mandatory, ValueFromPipeline)][object]$Link) {
    process {
        $ns = $Link.Namespace
        $ip = @(Get-IpLink $ns $Link.Name)
        $ip.Count | Should -Be 1 -Because "ip -n '$ns' link show must list '$($Link.Name)'"
        $ip = $ip[0]
        $Link.Index | Should -Be $ip.ifindex
        $Link.Mtu | Should -Be $ip.mtu
        $Link.MacAddress | Should -BeExactly $ip.address
        $Link.State | Should -BeExactly $(if ($ip.flags -contains 'UP') { 'Up' } else { 'Down' })
        $Link.Kind | Should -BeExactly $(if ($ip.PSObject.Properties['linkinfo']) { $ip.linkinfo.info_kind } else { '' })
        if ($ip.PSObject.Properties['link_netnsid']) {
            $peerNs = (Get-IpNamespaceIdMap $ns)[[int]$ip.link_netnsid]
            $Link.PeerIndex | Should -Be $ip.link_index
            $Link.PeerNamespace | Should -BeExactly $peerNs
            $Link.PeerName | Should -BeExactly (@(Get-IpLink $peerNs | Where-Object ifindex -EQ $ip.link_index)[0].ifname)
        }
        elseif ($ip.PSObject.Properties['link'] -and $ip.link) {
            $Link.PeerName | Should -BeExactly $ip.link
            $Link.PeerNamespace | Should -BeExactly $ns
            $Link.PeerIndex | Should -Be (@(Get-IpLink $ns $ip.link)[0].ifindex)
        }
        else {
            $Link.PeerIndex | Should -Be 0
        }
        $mine = @($Link.Addresses | Where-Object { $_ -notlike '*:*' } | Sort-Object)
        $theirs = @(Get-IpAddress $ns -LinkName $Link.Name -Family IPv4 | ForEach-Object Address | Sort-Object)
        $mine | Should -Be $theirs
    }
}

<#
.SYNOPSIS
    Polls a condition every 100 ms until it holds or the timeout passes; returns whether it held.
    For kernel work that completes asynchronously (namespace teardown, operstate via linkwatch).
#>
function Wait-TestCondition([Parameter(Mandatory)][scriptblock]$Condition, [double]$TimeoutSeconds = 10) {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ($true) {
        if (& $Condition) { return $true }
        if ([DateTime]::UtcNow -gt $deadline) { return $false }
        Start-Sleep -Milliseconds 100
    }
}

<#
.SYNOPSIS
    Sends ICMP echo requests to an address from inside a namespace, one after another (Test-AgentConnection -Quiet,
    in this process); true when one is answered. -Source picks the sender's address, for rules on address ranges.
#>
function Test-IcmpEcho([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][string]$Address, [int]$Count = 3, [int]$TimeoutMilliseconds = 1000, [string]$Source) {
    $a = Get-ProbeArgument $Namespace $Source ($TimeoutMilliseconds / 1000)
    Test-AgentConnection $Address -Count $Count -Quiet @a
}

<#
.SYNOPSIS
    The devices of a namespace that have an ingress qdisc, by tc (`tc -j -n NS qdisc show`).
#>
function Get-TcIngressLinkName([Parameter(Mandatory)][string]$Namespace) {
    $json = (& tc -j -n $Namespace qdisc show 2>&1 | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] }) -join "`n"
    if ($LASTEXITCODE -ne 0) { throw "tc -n $Namespace qdisc show failed ($LASTEXITCODE)" }
    @(if ($json.Trim()) { $json | ConvertFrom-Json } else { @() }) | Where-Object kind -EQ 'ingress' | ForEach-Object dev | Sort-Object
}

<#
.SYNOPSIS
    Starts a shell command inside a namespace in the background (`ip netns exec NS sh -c COMMAND`, output discarded)
    and returns its process: traffic that must flow while a capture runs. Stop it with Stop-TestProcess.
.DESCRIPTION
    `ip netns exec` execs the shell in place (no fork), so the returned process is the shell itself; a command that
    starts with `exec` (e.g. 'exec ping -i 0.2 10.10.10.88') makes it that program.
#>
function Start-TestProcess([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][string]$Command) {
    $psi = [System.Diagnostics.ProcessStartInfo]::new('ip')
    foreach ($a in @('netns', 'exec', $Namespace, 'sh', '-c', "exec >/dev/null 2>&1; $Command")) { $psi.ArgumentList.Add($a) }
    $psi.UseShellExecute = $false
    [System.Diagnostics.Process]::Start($psi)
}

<#
.SYNOPSIS
    Ends processes started by Start-TestProcess, with their children (by process id, never by name), and waits
    for them. Ignores nulls and processes that already ended.
#>
function Stop-TestProcess([Parameter(ValueFromPipeline)][AllowNull()][System.Diagnostics.Process[]]$Process) {
    process {
        foreach ($p in @($Process | Where-Object { $null -ne $_ })) {
            try { if (-not $p.HasExited) { $p.Kill($true) } } catch [System.InvalidOperationException] { }
            [void]$p.WaitForExit(10000)
            $p.Dispose()
        }
    }
}

<#
.SYNOPSIS
    Asserts that exactly one error record was reported, with the given fully qualified id, category, and a message
    matching every pattern (wildcards, case-insensitive).
#>
function Assert-AgentError {
    param(
        [AllowNull()][AllowEmptyCollection()][object[]]$ErrorRecord,
        [Parameter(Mandatory)][string]$Id,
        [Parameter(Mandatory)][System.Management.Automation.ErrorCategory]$Category,
        [string[]]$Message = @()
    )
    $records = @($ErrorRecord | Where-Object { $null -ne $_ })
    $records.Count | Should -Be 1 -Because "exactly one error is expected, got: $($records | ForEach-Object { $_.FullyQualifiedErrorId })"
    $r = $records[0]
    $r | Should -BeOfType [System.Management.Automation.ErrorRecord]
    $r.FullyQualifiedErrorId | Should -BeExactly $Id
    $r.CategoryInfo.Category | Should -Be $Category
    foreach ($m in $Message) { $r.Exception.Message | Should -BeLike $m }
}

<#
.SYNOPSIS
    Runs a script block and returns every error record it produced, non-terminating or terminating (its other
    output is discarded). For terminating errors; per-item errors are best caught with -ErrorVariable.
#>
function Get-ErrorRecord([Parameter(Mandatory)][scriptblock]$ScriptBlock) {
    $records = [System.Collections.Generic.List[object]]::new()
    try {
        & $ScriptBlock 2>&1 | ForEach-Object { if ($_ -is [System.Management.Automation.ErrorRecord]) { $records.Add($_) } }
    }
    catch { $records.Add($_) }
    $records.ToArray()
}

<#
.SYNOPSIS
    Runs `tc ARGS`; throws with tc's own error text on a non-zero exit. Returns the standard output lines.
#>
function Invoke-Tc { Invoke-Checked tc @args }

<#
.SYNOPSIS
    tc's view of the ingress filters of a device: `tc -s [-n NS] filter show dev DEV ingress`, one object per rule (a
    u32 key node or a bpf program; the pref and hash-table header lines are left out) with LinkName, Parent, Priority,
    Protocol, Kind, Handle, BpfName (bpf), Matches as tc prints them ('00001a27/0000ffff at -16'), Actions (Order, Kind,
    Direction, Mode, Device, Control, Index, Cookie, Packets, Bytes, and pedit's Keys as tc prints them), and Cookie and
    MirredTo of the first action.
.DESCRIPTION
    Read from tc's text output: `tc -j` prints one "match" key per u32 key in the same JSON object, and a JSON reader
    keeps only the last of them.
#>
function Get-TcFilter([string]$Namespace = '', [Parameter(Mandatory)][string]$LinkName) {
    $lines = @(Invoke-Tc -s @(Get-NamespaceArgument $Namespace) filter show dev $LinkName ingress)
    $node = $null; $action = $null
    foreach ($line in $lines) {
        if ($line -match '^filter parent (\S+) protocol (\S+) pref (\d+) (\S+) chain (\d+)(.*)$') {
            $head = $Matches.Clone()
            $handle = if ($head[6] -match '\b(?:fh|handle) (\S+)') { $Matches[1] } else { $null }
            $bpfName = if ($head[4] -eq 'bpf' -and $head[6] -match '\bhandle \S+ (\S+)' -and $Matches[1] -notin 'direct-action', 'not_in_hw', 'in_hw', 'skip_hw', 'skip_sw', 'id') { $Matches[1] } else { $null }
            if ($node) { $node }
            $node = $null
            # every pref is announced apart from its rules, and u32 also lists its hash table: only u32 nodes (800::800)
            # and programs with a handle are rules
            if ($null -eq $handle -or ($head[4] -eq 'u32' -and $handle -notlike '*::*')) { continue }
            $node = [pscustomobject]@{ LinkName = $LinkName; Parent = $head[1]; Priority = [int]$head[3]; Protocol = $head[2]; Kind = $head[4]; Handle = $handle
                BpfName = $bpfName; Matches = [System.Collections.Generic.List[string]]::new(); Actions = [System.Collections.Generic.List[object]]::new() }
            $node | Add-Member -MemberType ScriptProperty -Name Cookie -Value { if ($this.Actions.Count) { $this.Actions[0].Cookie } }
            $node | Add-Member -MemberType ScriptProperty -Name MirredTo -Value { if ($this.Actions.Count) { $this.Actions[0].Device } }
            $action = $null
        }
        elseif (-not $node) { continue }
        elseif ($line -match '^\s+match (\S+/\S+ at -?\d+)') { $node.Matches.Add($Matches[1]) }
        elseif ($line -match '^\s+action order (\d+):\s+(\S+)\s*(.*)$') {
            $action = [pscustomobject]@{ Order = [int]$Matches[1]; Kind = $Matches[2]; Text = $Matches[3].Trim(); Direction = $null; Mode = $null; Device = $null
                Control = $null; Index = $null; Cookie = $null; Packets = $null; Bytes = $null; Keys = [System.Collections.Generic.List[string]]::new() }
            if ($action.Text -match '^\((\w+) (\w+) to device (\S+)\) (\S+)') {
                $action.Direction = $Matches[1].ToLowerInvariant(); $action.Mode = $Matches[2].ToLowerInvariant(); $action.Device = $Matches[3]; $action.Control = $Matches[4]
            }
            $node.Actions.Add($action)
        }
        elseif ($action -and $line -match '^\s+index (\d+) ref') { $action.Index = [int]$Matches[1] }
        elseif ($action -and $line -match '^\s+key #\d+\s+(.+?)\s*$') { $action.Keys.Add($Matches[1]) }   # pedit: "at -16: val 00004e65 mask ffff0000"
        elseif ($action -and $line -match '^\s+Sent (\d+) bytes (\d+) pkt') { $action.Bytes = [long]$Matches[1]; $action.Packets = [long]$Matches[2] }
        elseif ($action -and $line -match '^\s+cookie ([0-9a-f]+)') { $action.Cookie = $Matches[1] }
    }
    if ($node) { $node }
}

<#
.SYNOPSIS
    The part of Get-TcFilter's view that stays the same when the same filters are installed again (no handles, action
    indexes or counters), one string per filter, for comparing two states of a device.
#>
function Get-TcFilterShape([string]$Namespace = '', [Parameter(Mandatory)][string]$LinkName) {
    foreach ($f in Get-TcFilter $Namespace $LinkName) {
        $actions = ($f.Actions | ForEach-Object { "$($_.Order): $($_.Kind) $($_.Text) $($_.Keys -join '; ') cookie=$($_.Cookie)" }) -join ' | '
        "$($f.Parent) $($f.Protocol) pref $($f.Priority) $($f.Kind) $($f.BpfName) match $($f.Matches -join ', ') action $actions"
    }
}

<#
.SYNOPSIS
    tc's view of the qdiscs of a namespace: `tc -j [-n NS] qdisc show [dev DEV]`, as objects (dev, kind, handle, parent...).
#>
function Get-TcQdisc([string]$Namespace = '', [string]$LinkName) {
    $dev = if ($LinkName) { @('dev', $LinkName) } else { @() }
    $json = (Invoke-Tc -j @(Get-NamespaceArgument $Namespace) qdisc show @dev) -join "`n"
    if ($json.Trim()) { @($json | ConvertFrom-Json) } else { @() }
}

<#
.SYNOPSIS
    Whether this kernel has a tc action kind (act_pedit is missing on this project's machines): tries to add a filter
    with that action, `tc` only, on a veth pair in a namespace made for the purpose and removed again.
#>
function Test-TcAction([ValidateSet('pedit', 'mirred')][string]$Kind = 'pedit') {
    $ns = New-TestNamespace 'probe'
    try {
        Invoke-Ip -n $ns link add p0 type veth peer name p1 | Out-Null
        Invoke-Tc -n $ns qdisc add dev p0 ingress | Out-Null
        $action = if ($Kind -eq 'pedit') { @('pedit', 'munge', 'offset', '-14', 'u8', 'set', '0', 'pipe') } else { @('mirred', 'egress', 'mirror', 'dev', 'p1') }
        & tc -n $ns filter add dev p0 pref 1 parent ffff: protocol all u32 match u8 0 0 action @action 2>&1 | Out-Null
        $LASTEXITCODE -eq 0
    }
    finally { Remove-TestNamespace $ns }
}

# ---- Datapath daemons of a test file: paths of this run, pids remembered, everything stopped and removed ----
$script:DpPids = [System.Collections.Generic.List[int]]::new()
$script:DpFiles = [System.Collections.Generic.List[string]]::new()

<#
.SYNOPSIS
    A control socket or log path of this run under /tmp ('/tmp/<run stem>dp-<random><Suffix>'), registered for Stop-TestDp.
#>
function New-TestDpPath([string]$Suffix) {
    $path = "/tmp/$(Get-TestRunStem)dp-$(New-RandomToken 6)$Suffix"
    $script:DpFiles.Add($path)
    $path
}

<#
.SYNOPSIS
    Start-Datapath (of the NvRedirect module the test file imported; supervised unless -Unsupervised; strict unless
    -AgentCompatible), its pid and its
    supervisor's registered for Stop-TestDp.
#>
function Start-TestDp([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][string]$ControlSocket, [Parameter(Mandatory)][string]$LogPath, [switch]$Unsupervised,
    [switch]$AgentCompatible) {
    $dp = Start-Datapath -Namespace $Namespace -ControlSocket $ControlSocket -LogPath $LogPath -Unsupervised:$Unsupervised -AgentCompatible:$AgentCompatible
    if ($dp) {
        if (Get-TestDpSupervisor $dp.Pid) { $script:DpPids.Add((Get-TestDpSupervisor $dp.Pid)) }
        $script:DpPids.Add($dp.Pid)
    }
    $dp
}

<#
.SYNOPSIS
    The pid of the nvr-dp --supervise process that runs daemon $ProcessId, or nothing.
#>
function Get-TestDpSupervisor([int]$ProcessId) {
    $stat = Get-Content "/proc/$ProcessId/stat" -Raw -ErrorAction Ignore
    if (-not $stat) { return }
    $parent = [int]($stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')[1])
    $cmdline = Get-Content "/proc/$parent/cmdline" -Raw -ErrorAction Ignore
    if ($cmdline -and $cmdline.Contains('nvr-dp.dll') -and $cmdline.Contains("`0--supervise`0")) { $parent }
}

<#
.SYNOPSIS
    Registers a daemon pid (started some other way than Start-TestDp) or a file for Stop-TestDp.
#>
function Register-TestDp([int[]]$ProcessId = @(), [string[]]$Path = @()) {
    foreach ($p in $ProcessId) { $script:DpPids.Add($p) }
    foreach ($f in $Path) { $script:DpFiles.Add($f) }
}

<#
.SYNOPSIS
    Whether a process is a live nvr-dp daemon (its command line runs nvr-dp.dll and it is no zombie).
#>
function Test-TestDpProcess([int]$ProcessId) {
    $cmdline = Get-Content "/proc/$ProcessId/cmdline" -Raw -ErrorAction Ignore
    $stat = Get-Content "/proc/$ProcessId/stat" -Raw -ErrorAction Ignore
    [bool]($cmdline -and $cmdline.Contains('nvr-dp.dll') -and $stat -and $stat.Substring($stat.LastIndexOf(')') + 2, 1) -ne 'Z')
}

<#
.SYNOPSIS
    Stops the daemons Start-TestDp started: cleanly through the given control sockets where they answer, then every
    one still running by SIGKILL to its pid (only pids whose command line is nvr-dp's); removes the registered files.
#>
function Stop-TestDp([string[]]$ControlSocket = @()) {
    foreach ($s in $ControlSocket | Where-Object { $_ }) { Stop-Datapath -ControlSocket $s -ErrorAction Ignore }
    # supervisors first (each registered before its daemon), or they would start a killed daemon again
    foreach ($p in @($script:DpPids)) { if (Get-TestDpSupervisor $p) { Stop-Process -Id (Get-TestDpSupervisor $p) -Force -ErrorAction Ignore } }
    foreach ($p in @($script:DpPids)) { if (Test-TestDpProcess $p) { Stop-Process -Id $p -Force -ErrorAction Ignore } }
    foreach ($p in @($script:DpPids)) { $null = Wait-TestCondition { -not (Test-TestDpProcess $p) } -TimeoutSeconds 10 }
    $script:DpPids.Clear()
    foreach ($f in @($script:DpFiles)) {
        Remove-Item -LiteralPath $f -Force -ErrorAction Ignore
        # what a killed daemon leaves in its private directory: its pid lock, saved configuration, refused ones set aside
        $companion = (($f -replace '%', '%25') -replace '/', '%2F')
        Get-ChildItem /run/nvredirect -ErrorAction Ignore | Where-Object { $_.Name -in "$companion.pid", "$companion.state", "$companion.state.tmp" -or $_.Name.StartsWith("$companion.state.refused-", [StringComparison]::Ordinal) } |
            Remove-Item -Force -ErrorAction Ignore
    }
    $script:DpFiles.Clear()
}

# ---- Traffic between namespaces, for verdicts proved by their outcome: the module's own Test-AgentConnection and
# Start-AgentEchoServer (issue 16; in this process, no python), behind the result words the policy tests were written
# in ('connected', 'answered', 'refused', 'reset', 'closed', 'timeout'). Every server and kept connection made here is
# registered and closed by Stop-TestTraffic (call it in AfterAll); removing the module closes them too.
$script:TrafficServers = [System.Collections.Generic.List[object]]::new()
$script:TrafficConnections = [System.Collections.Generic.List[object]]::new()
$script:ResultWord = @{ Connected = 'connected'; Answered = 'answered'; NotRefused = 'answered'; Refused = 'refused'; Reset = 'reset'; Closed = 'closed'; TimedOut = 'timeout'; Unreachable = 'unreachable' }

function ConvertTo-TrafficResult([Parameter(Mandatory)][object]$Probe, [string]$Stage) {
    [pscustomobject]@{
        Result = $script:ResultWord["$($Probe.Outcome)"]
        Stage  = $Stage
        Local  = if ($Probe.SourcePort) { "$($Probe.Source):$($Probe.SourcePort)" } else { '' }
        Detail = $Probe.Detail
    }
}

function Get-ProbeArgument([string]$Namespace, [string]$Source, [double]$TimeoutSeconds) {
    $a = @{ Namespace = $Namespace; TimeoutSeconds = $TimeoutSeconds; ErrorAction = 'Stop' }
    if ($Source) { $a.Source = $Source }
    $a
}

<#
.SYNOPSIS
    Starts an echo server (Start-AgentEchoServer) in a namespace (or in a podman container's, -Container) on TCP
    and/or UDP ports and returns an object with Namespace, TcpPort, UdpPort and Server (its events: Get-TestEchoServerEvent).
#>
function Start-TestEchoServer([string]$Namespace, [int[]]$TcpPort = @(), [int[]]$UdpPort = @(), [string]$Container) {
    $target = if ($Container) { @{ Container = $Container } } elseif ($Namespace) { @{ Namespace = $Namespace } } else { throw 'Start-TestEchoServer needs -Namespace or -Container.' }
    $server = Start-AgentEchoServer @target -TcpPort $TcpPort -UdpPort $UdpPort -ErrorAction Stop
    $script:TrafficServers.Add($server)
    [pscustomobject]@{ Namespace = $Namespace; TcpPort = $TcpPort; UdpPort = $UdpPort; Server = $server }
}

<#
.SYNOPSIS
    The events an echo server saw, as objects: Event (accept, close, reset, error, udp), Protocol, Port, Peer ('ip:port').
#>
function Get-TestEchoServerEvent([Parameter(Mandatory)][object]$Server) {
    foreach ($e in $Server.Server.Events) {
        $word = if ("$($e.Kind)" -eq 'Datagram') { 'udp' } else { "$($e.Kind)".ToLowerInvariant() }
        [pscustomobject]@{ Event = $word; Protocol = "$($e.Protocol)"; Port = $e.Port; Peer = "$($e.Peer):$($e.PeerPort)" }
    }
}

<#
.SYNOPSIS
    One TCP connection from a namespace with one round trip through an echo server (Test-AgentConnection -Echo).
    Returns Result: 'connected' (the echo came back), 'refused' (RST to the SYN), 'reset', 'closed' or 'timeout'
    (nothing within TimeoutSeconds); Stage ('connect'), Local ('ip:port' of the client) and Detail.
#>
function Invoke-TestTcpConnection([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][string]$Address, [Parameter(Mandatory)][int]$Port,
    [string]$Source, [double]$TimeoutSeconds = 3) {
    $a = Get-ProbeArgument $Namespace $Source $TimeoutSeconds
    ConvertTo-TrafficResult (Test-AgentConnection $Address -Port $Port -Echo @a) 'connect'
}

<#
.SYNOPSIS
    One UDP datagram from a namespace to an echo server (Test-AgentConnection -Protocol UDP -Echo). Result:
    'answered', 'refused' (ICMP port unreachable) or 'timeout'; Local is the client's 'ip:port'.
#>
function Invoke-TestUdpRequest([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][string]$Address, [Parameter(Mandatory)][int]$Port,
    [string]$Source, [double]$TimeoutSeconds = 3) {
    $a = Get-ProbeArgument $Namespace $Source $TimeoutSeconds
    ConvertTo-TrafficResult (Test-AgentConnection $Address -Port $Port -Protocol UDP -Echo @a) 'request'
}

<#
.SYNOPSIS
    Opens a TCP connection from a namespace to an echo server and keeps it open (Test-AgentConnection -Echo
    -KeepOpen): returns an object with Result (of the first round trip, as Invoke-TestTcpConnection), Local and
    Connection. Send-TestTcpData makes it send again later; Close-TestTcpConnection (or Stop-TestTraffic) ends it.
    After each echo the client acknowledges at once (TCP_QUICKACK), so the connection is quiet until told to send:
    a policy change meets its next packet only then.
#>
function Open-TestTcpConnection([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][string]$Address, [Parameter(Mandatory)][int]$Port,
    [string]$Source, [double]$TimeoutSeconds = 3) {
    $a = Get-ProbeArgument $Namespace $Source $TimeoutSeconds
    $probe = Test-AgentConnection $Address -Port $Port -Echo -KeepOpen @a
    if ($probe.Connection) { $script:TrafficConnections.Add($probe.Connection) }
    $first = ConvertTo-TrafficResult $probe 'connect'
    [pscustomobject]@{ Namespace = $Namespace; Address = $Address; Port = $Port; TimeoutSeconds = $TimeoutSeconds; Result = $first.Result; Local = $first.Local; Connection = $probe.Connection }
}

<#
.SYNOPSIS
    Makes a connection opened by Open-TestTcpConnection send more data and wait for its echo. Result: 'answered',
    'reset' (ECONNRESET or EPIPE: the client saw a reset), 'closed' (FIN) or 'timeout' (it hangs: nothing came back).
#>
function Send-TestTcpData([Parameter(Mandatory)][object]$Connection) {
    if (-not $Connection.Connection -or -not $Connection.Connection.IsOpen) { throw "the connection to $($Connection.Address):$($Connection.Port) is closed already" }
    $r = ConvertTo-TrafficResult ($Connection.Connection | Test-AgentConnection -Echo -TimeoutSeconds $Connection.TimeoutSeconds -ErrorAction Stop) 'send'
    if ($r.Result -eq 'connected') { $r.Result = 'answered' }
    $r
}

<#
.SYNOPSIS
    Closes a connection opened by Open-TestTcpConnection.
#>
function Close-TestTcpConnection([Parameter(Mandatory, ValueFromPipeline)][AllowNull()][object]$Connection) {
    process {
        if ($Connection -and $Connection.Connection) { $Connection.Connection | Disconnect-AgentConnection }
    }
}

<#
.SYNOPSIS
    Closes every connection and stops every echo server this import started.
#>
function Stop-TestTraffic {
    foreach ($c in @($script:TrafficConnections)) { $c | Disconnect-AgentConnection -ErrorAction Ignore }
    $script:TrafficConnections.Clear()
    foreach ($s in @($script:TrafficServers)) { $s | Stop-AgentEchoServer -ErrorAction Ignore }
    $script:TrafficServers.Clear()
}

# ---- A workload for the desired-state tests (Configuration, Ansible): a "container" namespace whose eth0 is a veth
# to a "host" namespace, both addressed in TEST-NET-1 (192.0.2.0/24). Take-over works on it as on a container, by
# its namespace file; the namespaces are this run's (Remove-TestNamespace deletes them).
<#
.SYNOPSIS
    Creates a container namespace (eth0, 192.0.2.<Octet>/24) and a host namespace (veth0, 192.0.2.1/24) joined by a
    veth pair, both up; returns Container, Host, NetnsPath ('/run/netns/<container>'), Address and Mac.
#>
function New-TestWorkload([Parameter(Mandatory)][string]$Role, [Parameter(Mandatory)][ValidateRange(2, 254)][int]$Octet) {
    $c = New-TestNamespace "$Role-c"
    $h = New-TestNamespace "$Role-h"
    Invoke-Ip -n $h link add veth0 type veth peer name eth0 netns $c | Out-Null
    Invoke-Ip -n $c addr add "192.0.2.$Octet/24" dev eth0 | Out-Null
    Invoke-Ip -n $h addr add 192.0.2.1/24 dev veth0 | Out-Null
    Invoke-Ip -n $c link set eth0 up | Out-Null
    Invoke-Ip -n $h link set veth0 up | Out-Null
    [pscustomobject]@{ Container = $c; Host = $h; NetnsPath = "/run/netns/$c"; Address = "192.0.2.$Octet"; Mac = (Get-IpLink $c -Name eth0).address }
}

# ---- Real podman containers (Container.Podman, Ansible): an image imported from Debian's busybox-static (no registry
# is reachable), a bridge network and containers of this run, run with what this kind of VM needs
# (reference/containers.md): --runtime runc, --cgroup-manager=cgroupfs, ulimits no higher than the current ones (root
# here lacks CAP_SYS_RESOURCE, so runc cannot raise nofile or nproc) and NET_RAW for busybox ping. Everything made is
# registered; Clear-TestPodman (call it in AfterAll) removes it and puts back the ip_forward sysctl and the iptables and
# ip6tables rules podman changed, as they were before this import's first image or network.
$script:Podman = @{ Containers = [System.Collections.Generic.List[string]]::new(); Networks = [System.Collections.Generic.List[string]]::new()
    Images = [System.Collections.Generic.List[string]]::new(); Roots = [System.Collections.Generic.List[string]]::new(); Forward = $null; Iptables = $null; Ip6tables = $null
    Addresses = [System.Collections.Generic.List[string]]::new(); NetworkNames = [System.Collections.Generic.List[string]]::new() }

<#
.SYNOPSIS
    The global options every podman call of the suite passes: --runtime runc --cgroup-manager=cgroupfs.
#>
function Get-TestPodmanOption { @('--runtime', 'runc', '--cgroup-manager=cgroupfs') }

<#
.SYNOPSIS
    Runs `podman <Get-TestPodmanOption> ARGS`; throws with podman's own text on a non-zero exit. Returns its output.
#>
function Invoke-TestPodman {
    $out = & podman @(Get-TestPodmanOption) @args 2>&1
    if ($LASTEXITCODE -ne 0) { throw "podman $($args -join ' ') failed: $out" }
    $out
}

# what podman will change on the host, saved once per import before the first image or network
function Save-TestPodmanHost {
    if ($null -ne $script:Podman.Forward) { return }
    $script:Podman.Iptables = (& iptables-save | Out-String)
    $script:Podman.Ip6tables = (& ip6tables-save | Out-String)
    $script:Podman.Forward = (Get-Content /proc/sys/net/ipv4/ip_forward -Raw).Trim()
}

<#
.SYNOPSIS
    Builds an image of this run from /bin/busybox (static) by `podman import` of a root filesystem with busybox's
    applets; returns its name (localhost/<stem>bb:1).
#>
function New-TestPodmanImage {
    Save-TestPodmanHost
    $root = Join-Path ([System.IO.Path]::GetTempPath()) "$(Get-TestRunStem)rootfs"
    $script:Podman.Roots.Add($root)
    New-Item -ItemType Directory -Path (Join-Path $root 'bin') -Force | Out-Null
    Copy-Item /bin/busybox (Join-Path $root 'bin/busybox')
    Invoke-Checked chroot $root /bin/busybox --install -s /bin | Out-Null
    $image = "localhost/$(Get-TestRunStem)bb:1"
    $script:Podman.Images.Add($image)
    $out = & bash -c "tar -C '$root' -c . | podman import - '$image'" 2>&1
    if ($LASTEXITCODE -ne 0) { throw "podman import of $root as $image failed: $out" }
    $image
}

<#
.SYNOPSIS
    Creates a podman bridge network of this run (<stem>net) on a random 172.31.<100..199>.0/24; returns Name, Prefix
    ('172.31.N', for addresses Prefix.10 and so on) and Gateway (Prefix.1, the host's side).
#>
function New-TestPodmanNetwork {
    Save-TestPodmanHost
    $prefix = "172.31.$(100 + [System.Security.Cryptography.RandomNumberGenerator]::GetInt32(100))"
    $name = "$(Get-TestRunStem)net"
    $script:Podman.Networks.Add($name); $script:Podman.NetworkNames.Add($name)
    Invoke-TestPodman network create --subnet "$prefix.0/24" $name | Out-Null
    [pscustomobject]@{ Name = $name; Prefix = $prefix; Gateway = "$prefix.1" }
}

<#
.SYNOPSIS
    Runs a container of this run (<stem><Suffix>, `sleep 3600`) from the image on the network at the address; returns
    Name, Id, Pid, Ip and Mac (of its eth0, read inside).
#>
function Start-TestPodmanContainer([Parameter(Mandatory)][string]$Suffix, [Parameter(Mandatory)][string]$Image, [Parameter(Mandatory)][string]$Network,
    [Parameter(Mandatory)][string]$Address) {
    $name = "$(Get-TestRunStem)$Suffix"
    $script:Podman.Containers.Add($name); $script:Podman.Addresses.Add($Address)
    # lower than the defaults podman asks for: without CAP_SYS_RESOURCE runc may lower limits, not raise them
    Invoke-TestPodman run -d --cap-add NET_RAW --name $name --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --network $Network --ip $Address $Image sleep 3600 | Out-Null
    $j = (Invoke-TestPodman inspect --type container $name | Out-String | ConvertFrom-Json)[0]
    [pscustomobject]@{ Name = $name; Id = $j.Id; Pid = $j.State.Pid; Ip = $Address; Mac = (Invoke-Checked nsenter -t $j.State.Pid -n ip -j link show eth0 | ConvertFrom-Json)[0].address }
}

<#
.SYNOPSIS
    What iproute2 and ethtool say inside a container (by its pid) once its links settled: ip -d link, addresses,
    IPv4 and IPv6 routes of every table, permanent neighbours and ethtool -k eth0, one string each.
#>
function Get-TestPodmanContainerState([Parameter(Mandatory)][int]$ProcessId) {
    Wait-TestCondition {
        $l = Invoke-Checked nsenter -t $ProcessId -n ip -j link | ConvertFrom-Json
        -not (Invoke-Checked nsenter -t $ProcessId -n ip -j addr | Out-String).Contains('tentative') -and -not @($l | Where-Object { $_.flags -contains 'UP' -and $_.ifname -ne 'lo' -and $_.operstate -ne 'UP' })
    } -TimeoutSeconds 15 | Should -BeTrue
    [ordered]@{
        Link      = (Invoke-Checked nsenter -t $ProcessId -n ip -d -j link | Out-String).Trim()
        Address   = (Invoke-Checked nsenter -t $ProcessId -n ip -j addr | Out-String).Trim()
        Route4    = (Invoke-Checked nsenter -t $ProcessId -n ip -4 -j route show table all | Out-String).Trim()
        Route6    = (Invoke-Checked nsenter -t $ProcessId -n ip -6 -j route show table all | Out-String).Trim()
        Neighbour = (Invoke-Checked nsenter -t $ProcessId -n ip -j neigh show nud permanent | Out-String).Trim()
        Offload   = (Invoke-Checked nsenter -t $ProcessId -n ethtool -k eth0 | Out-String).Trim()
    }
}

<#
.SYNOPSIS
    Asserts that a container reads as before: every part of two Get-TestPodmanContainerState results is equal.
#>
function Assert-TestPodmanContainerState([Parameter(Mandatory)]$Before, [Parameter(Mandatory)]$After) {
    foreach ($k in $Before.Keys) { $After[$k] | Should -BeExactly $Before[$k] -Because "$k inside the container must read as before" }
}

# Takes out of the firewall (iptables or ip6tables) what podman put there for this run's networks and containers, not
# a snapshot: other runs on this machine may have containers of their own meanwhile. Drops the rules that name this
# run's networks (CNI's comments) or addresses, then every CNI chain that was not there before ($Before, the
# -save text before the first image or network) and is left empty, with the jumps into it (CNI-ADMIN, then
# CNI-FORWARD and FORWARD's jump once no other run's rules are in them).
function Clear-TestPodmanFirewall([Parameter(Mandatory)][string]$Command, [AllowEmptyString()][string]$Before) {
    $now = @(& "$Command-save" 2>$null)
    $mine = { param($l) $l.StartsWith('-A ') -and (@($script:Podman.NetworkNames | Where-Object { $l.Contains("$_\`"") }).Count -or @($script:Podman.Addresses | Where-Object { $l -match " -[sd] $([regex]::Escape($_))/32 " }).Count) }
    $kept = [System.Collections.Generic.List[string]]::new()
    foreach ($l in $now) { if (-not (& $mine $l)) { $kept.Add($l) } }
    do {
        $dropped = $false
        foreach ($chain in @($kept | Where-Object { $_ -match '^:(CNI-\S+) ' } | ForEach-Object { $Matches[1] })) {
            if ($Before -and $Before.Contains(":$chain ")) { continue }
            if (@($kept | Where-Object { $_.StartsWith("-A $chain ", [StringComparison]::Ordinal) }).Count) { continue }
            $null = $kept.RemoveAll({ param($l) $l.StartsWith(":$chain ", [StringComparison]::Ordinal) -or ($l.StartsWith('-A ') -and $l -match " -j $([regex]::Escape($chain))(\s|$)") })
            $dropped = $true
        }
    } while ($dropped)
    if ($kept.Count -ne $now.Count) { ($kept -join "`n") + "`n" | & "$Command-restore" }
}

<#
.SYNOPSIS
    Removes the containers, networks, images and root filesystems this import made, puts back the ip_forward sysctl
    and takes podman's iptables/ip6tables rules and chains for them out again. Never throws for what is already gone.
#>
function Clear-TestPodman {
    foreach ($c in $script:Podman.Containers) { & podman @(Get-TestPodmanOption) rm -f -t 0 $c 2>&1 | Out-Null }
    foreach ($n in $script:Podman.Networks) { & podman network rm -f $n 2>&1 | Out-Null }
    foreach ($i in $script:Podman.Images) { & podman rmi -f $i 2>&1 | Out-Null }
    foreach ($r in $script:Podman.Roots) { Remove-Item -LiteralPath $r -Recurse -Force -ErrorAction Ignore }
    $script:Podman.Containers.Clear(); $script:Podman.Networks.Clear(); $script:Podman.Images.Clear(); $script:Podman.Roots.Clear()
    if ($null -eq $script:Podman.Forward) { return }
    & sysctl -q -w "net.ipv4.ip_forward=$($script:Podman.Forward)"
    Clear-TestPodmanFirewall iptables $script:Podman.Iptables
    Clear-TestPodmanFirewall ip6tables $script:Podman.Ip6tables
    $script:Podman.Addresses.Clear(); $script:Podman.NetworkNames.Clear()
    $script:Podman.Forward = $null; $script:Podman.Iptables = $null; $script:Podman.Ip6tables = $null
}

Export-ModuleMember -Function Get-TestRunStem, Get-TestLinkStem, New-TestLinkName, New-TestNamespaceName, New-TestNamespace,
    Remove-TestNamespace, Invoke-Ip, Get-IpLink, Get-IpLinkState, Get-IpAddress, Get-IpNamespaceName, Get-IpNamespaceIdMap, Assert-AgentLinkMatchesIp,
    Wait-TestCondition, Test-IcmpEcho, Get-TcIngressLinkName, Start-TestProcess, Stop-TestProcess, Assert-AgentError, Get-ErrorRecord,
    Invoke-Tc, Get-TcFilter, Get-TcFilterShape, Get-TcQdisc, Test-TcAction,
    Start-TestEchoServer, Get-TestEchoServerEvent, Invoke-TestTcpConnection, Invoke-TestUdpRequest, Open-TestTcpConnection, Send-TestTcpData,
    Close-TestTcpConnection, Stop-TestTraffic, New-TestDpPath, Start-TestDp, Register-TestDp, Test-TestDpProcess, Get-TestDpSupervisor, Stop-TestDp,
    New-TestWorkload,
    Get-TestPodmanOption, Invoke-TestPodman, New-TestPodmanImage, New-TestPodmanNetwork, Start-TestPodmanContainer, Get-TestPodmanContainerState,
    Assert-TestPodmanContainerState, Clear-TestPodman
