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
function Invoke-Ip {
    # stderr apart from stdout: `ip netns list` warns on stderr about a namespace another process removes meanwhile
    $all = @(& ip @args 2>&1)
    $stderr = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] } | ForEach-Object { "$_" })
    if ($LASTEXITCODE -ne 0) { throw "ip $($args -join ' ') failed ($LASTEXITCODE): $($stderr -join ' ')" }
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
    Sends ICMP echo requests to an address from inside a namespace (`ip netns exec NS ...`); true when one is answered.
.DESCRIPTION
    With iputils ping installed (build.ps1 installs it), `ping -c COUNT -i 0.2 -W TIMEOUT`; otherwise .NET's Ping (a
    raw ICMP socket, we are root) in a child pwsh started under `ip netns exec`: the child's sockets live in that
    namespace, exactly as ping's would.
#>
function Test-IcmpEcho([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][string]$Address, [int]$Count = 3, [int]$TimeoutMilliseconds = 1000) {
    if (Get-Command ping -CommandType Application -ErrorAction Ignore) {
        $wait = ([double]$TimeoutMilliseconds / 1000).ToString([System.Globalization.CultureInfo]::InvariantCulture)
        & ip netns exec $Namespace ping -n -q -c $Count -i 0.2 -W $wait $Address 2>&1 | Out-Null
        return $LASTEXITCODE -eq 0
    }
    $dotnet = (Get-Process -Id $PID).Path
    $pwshDll = Join-Path $PSHOME 'pwsh.dll'
    $script = "`$p = [System.Net.NetworkInformation.Ping]::new(); foreach (`$i in 1..$Count) { if (`$p.Send('$Address', $TimeoutMilliseconds).Status -eq 'Success') { exit 0 } }; exit 1"
    & ip netns exec $Namespace $dotnet $pwshDll -NoProfile -NonInteractive -Command $script 2>&1 | Out-Null
    $LASTEXITCODE -eq 0
}

<#
.SYNOPSIS
    tc's view of the ingress filters of a device (`tc -j -n NS filter show dev DEV ingress`): one object per rule
    (a u32 key node or a bpf program; the chain and hash-table header lines are left out) with Priority, Protocol,
    Kind, BpfName (bpf) and Cookie and MirredTo of the first action (u32).
#>
function Get-TcFilter([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][string]$LinkName) {
    $json = (& tc -j -n $Namespace filter show dev $LinkName ingress 2>&1 | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] }) -join "`n"
    if ($LASTEXITCODE -ne 0) { throw "tc -n $Namespace filter show dev $LinkName ingress failed ($LASTEXITCODE)" }
    foreach ($f in @(if ($json.Trim()) { $json | ConvertFrom-Json } else { @() })) {
        $o = if ($f.PSObject.Properties['options']) { $f.options } else { $null }
        if (-not $o) { continue }
        $isRule = ($f.kind -eq 'bpf' -and $o.PSObject.Properties['bpf_name']) -or ($f.kind -eq 'u32' -and $o.PSObject.Properties['fh'] -and $o.fh -match '::')
        if (-not $isRule) { continue }
        $action = if ($o.PSObject.Properties['actions']) { @($o.actions)[0] } else { $null }
        [pscustomobject]@{
            LinkName = $LinkName; Priority = [int]$f.pref; Protocol = $f.protocol; Kind = $f.kind
            BpfName  = if ($o.PSObject.Properties['bpf_name']) { $o.bpf_name } else { $null }
            Cookie   = if ($action -and $action.PSObject.Properties['cookie']) { $action.cookie } else { $null }
            MirredTo = if ($action -and $action.PSObject.Properties['to_dev']) { $action.to_dev } else { $null }
        }
    }
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

Export-ModuleMember -Function Get-TestRunStem, Get-TestLinkStem, New-TestLinkName, New-TestNamespaceName, New-TestNamespace,
    Remove-TestNamespace, Invoke-Ip, Get-IpLink, Get-IpLinkState, Get-IpAddress, Get-IpNamespaceName, Get-IpNamespaceIdMap, Assert-AgentLinkMatchesIp,
    Wait-TestCondition, Test-IcmpEcho, Get-TcFilter, Get-TcIngressLinkName, Start-TestProcess, Stop-TestProcess, Assert-AgentError, Get-ErrorRecord
