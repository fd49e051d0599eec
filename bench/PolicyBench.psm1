# What the benchmarks with policy rules share: a deterministic policy of N rules for the seed's workload, sent to
# nvr-dp the way NeuVector's agent sends one (ctrl_cfg_policy chunks of at most 8120 bytes), and a check of the
# daemon's state that the policy is in force. Needs the NvRedirect module (Send-DpMessage) to be imported.
Set-StrictMode -Version Latest

$script:Inv = [Globalization.CultureInfo]::InvariantCulture

<#
.SYNOPSIS
    N rules in ctrl_cfg_policy's wire form (ordered dictionaries), the last three allowing the benchmark's traffic.
.DESCRIPTION
    Rules 1 .. N-3 never match the benchmark's traffic (TCP and UDP from HostIp to WorkloadIp port 5201, ICMP echo
    from HostIp to WorkloadIp); they cycle through ten kinds, a mix of what a workload's policy holds:
      0 exact   ingress TCP  HostIp -> WorkloadIp, one port of 6000-8999
      1 exact   ingress UDP  10.30.x.y -> WorkloadIp:53
      2 range   ingress TCP  10.20.x.0-255 -> WorkloadIp:8000-8099
      3 range   ingress UDP  HostIp -> WorkloadIp, a 21-port range within 10000-49999
      4 range   ingress any  192.168.x.0-255 -> WorkloadIp, any port
      5 range   ingress any  10.10.10.0-255 -> WorkloadIp:5202-5300 (ICMP's port 0 is outside)
      6 range   ingress TCP  10.10.10.0-255 -> WorkloadIp:1-5200
      7 range   ingress UDP  10.10.11.0-255 -> WorkloadIp:5201
      8 range   ingress any  10.10.10.100-200 -> WorkloadIp, any port
      9 range   egress  TCP  WorkloadIp -> 172.16.x.0-255:443
    Actions alternate between ALLOW (2) and DENY (7). Then, last: ALLOW ingress TCP and UDP HostIp -> WorkloadIp:5201
    and ICMP HostIp -> WorkloadIp (all three single-address rules). nvr-dp finds single-address rules with a hash
    lookup and scans the range rules of the session's direction and protocol in order up to the matching rule, so a
    new TCP or UDP session of the benchmark scans every range rule that could apply to it (about half the list).
#>
function New-BenchPolicyRule {
    param([Parameter(Mandatory)][ValidateRange(0, 100000)][int]$Count,
        [string]$HostIp = '10.10.10.66', [string]$WorkloadIp = '10.10.10.88')
    if ($Count -eq 0) { return }
    if ($Count -lt 3) { throw 'A policy for the benchmark needs at least the three rules that allow its traffic (Count 0 or >= 3).' }
    function Rule([int]$Id, [string]$Sip, [string]$Sipr, [string]$Dip, [string]$Dipr, [int]$Port, [int]$Portr, [int]$Proto, [int]$Action, [bool]$Ingress) {
        [ordered]@{ id = $Id; sip = $Sip; sipr = $Sipr; dip = $Dip; dipr = $Dipr; port = $Port; portr = $Portr; proto = $Proto; action = $Action; ingress = $Ingress }
    }
    for ($i = 1; $i -le $Count - 3; $i++) {
        $a = ($i % 3 -eq 0) ? 7 : 2
        $x = $i % 250; $y = ($i * 7) % 250 + 1
        switch ($i % 10) {
            0 { $p = 6000 + $i % 3000; Rule $i $HostIp $HostIp $WorkloadIp $WorkloadIp $p $p 6 $a $true }
            1 { Rule $i "10.30.$x.$y" "10.30.$x.$y" $WorkloadIp $WorkloadIp 53 53 17 $a $true }
            2 { Rule $i "10.20.$x.0" "10.20.$x.255" $WorkloadIp $WorkloadIp 8000 8099 6 $a $true }
            3 { $p = 10000 + ($i * 37) % 39980; Rule $i $HostIp $HostIp $WorkloadIp $WorkloadIp $p ($p + 20) 17 $a $true }
            4 { Rule $i "192.168.$x.0" "192.168.$x.255" $WorkloadIp $WorkloadIp 0 65535 0 $a $true }
            5 { Rule $i '10.10.10.0' '10.10.10.255' $WorkloadIp $WorkloadIp 5202 5300 0 $a $true }
            6 { Rule $i '10.10.10.0' '10.10.10.255' $WorkloadIp $WorkloadIp 1 5200 6 $a $true }
            7 { Rule $i '10.10.11.0' '10.10.11.255' $WorkloadIp $WorkloadIp 5201 5201 17 $a $true }
            8 { Rule $i '10.10.10.100' '10.10.10.200' $WorkloadIp $WorkloadIp 0 65535 0 $a $true }
            9 { Rule $i $WorkloadIp $WorkloadIp "172.16.$x.0" "172.16.$x.255" 443 443 6 $a $false }
        }
    }
    Rule ($Count - 2) $HostIp $HostIp $WorkloadIp $WorkloadIp 5201 5201 6 2 $true
    Rule ($Count - 1) $HostIp $HostIp $WorkloadIp $WorkloadIp 5201 5201 17 2 $true
    Rule $Count $HostIp $HostIp $WorkloadIp $WorkloadIp 0 0 1 2 $true
}

<#
.SYNOPSIS
    How the policy is laid out for nvr-dp's lookup: single-address rules (hashed) and, per protocol, the ingress range
    rules a new session of the benchmark scans before it reaches its allow rule.
#>
function Get-BenchPolicyShape([object[]]$Rules) {
    $exact = @($Rules | Where-Object { $_.sip -eq $_.sipr -and $_.dip -eq $_.dipr -and $_.port -eq $_.portr -and $_.proto -ne 0 }).Count
    $ranges = @($Rules | Where-Object { -not ($_.sip -eq $_.sipr -and $_.dip -eq $_.dipr -and $_.port -eq $_.portr -and $_.proto -ne 0) })
    $scan = { param($proto) @($ranges | Where-Object { $_.ingress -and ($_.proto -eq 0 -or $_.proto -eq $proto) }).Count }
    [pscustomobject]@{ Rules = @($Rules).Count; Exact = $exact; Range = $ranges.Count
        Egress = @($Rules | Where-Object { -not $_.ingress }).Count
        ScannedTcp = & $scan 6; ScannedUdp = & $scan 17; ScannedIcmp = & $scan 1 }
}

<#
.SYNOPSIS
    ctrl_cfg_policy datagrams (JSON strings) of at most MaxBytes bytes each: flag 1 START, 0 middle, 2 END (3 when one
    datagram holds them all), every chunk with cmd, defact, dir and mac, as NeuVector's agent writes them.
#>
function ConvertTo-BenchPolicyChunk {
    param([Parameter(Mandatory)][AllowEmptyCollection()][object[]]$Rules, [Parameter(Mandatory)][string]$Mac,
        [int]$Command = 1, [int]$DefaultAction = 7, [int]$Direction = 3, [int]$MaxBytes = 8120)
    $ruleJson = @($Rules | ForEach-Object { $_ | ConvertTo-Json -Compress })
    $wrap = { param([int]$flag, [string[]]$items)
        "{`"ctrl_cfg_policy`":{`"cmd`":$Command,`"flag`":$flag,`"defact`":$DefaultAction,`"dir`":$Direction,`"mac`":[`"$Mac`"],`"rules`":[$($items -join ',')]}}" }
    $chunks = [Collections.Generic.List[string[]]]::new()
    $current = [Collections.Generic.List[string]]::new()
    foreach ($r in $ruleJson) {
        $current.Add($r)
        if ([Text.Encoding]::UTF8.GetByteCount((& $wrap 1 $current.ToArray())) -gt $MaxBytes) {
            $current.RemoveAt($current.Count - 1)
            if ($current.Count -eq 0) { throw "A single rule does not fit into $MaxBytes bytes." }
            $chunks.Add($current.ToArray()); $current.Clear(); $current.Add($r)
        }
    }
    $chunks.Add($current.ToArray())
    for ($i = 0; $i -lt $chunks.Count; $i++) {
        $flag = ($i -eq 0 ? 1 : 0) -bor ($i -eq $chunks.Count - 1 ? 2 : 0)
        & $wrap $flag $chunks[$i]
    }
}

<#
.SYNOPSIS
    The JSON reply of one of nvr-dp's queries (nvr_get_state kind 200, nvr_list_connection kind 202; the JSON may span
    several datagrams, More=1 until the last), read straight from the control socket.
#>
function Invoke-BenchDpQuery([Parameter(Mandatory)][string]$ControlSocket, [Parameter(Mandatory)][string]$Message, [Parameter(Mandatory)][byte]$Kind) {
    $s = [System.Net.Sockets.Socket]::new([System.Net.Sockets.AddressFamily]::Unix, [System.Net.Sockets.SocketType]::Dgram,
        [System.Net.Sockets.ProtocolType]::Unspecified)
    try {
        $s.Bind([System.Net.Sockets.UnixDomainSocketEndPoint]::new("`0nvb-query-$PID-$([guid]::NewGuid().ToString('n').Substring(0, 8))"))
        $s.ReceiveTimeout = 5000
        [void]$s.SendTo([Text.Encoding]::UTF8.GetBytes($Message), [System.Net.Sockets.UnixDomainSocketEndPoint]::new($ControlSocket))
        $buf = [byte[]]::new(65536)
        $json = [IO.MemoryStream]::new()
        while ($true) {
            $n = $s.Receive($buf)
            if ($n -lt 4 -or $buf[0] -ne $Kind) { continue }
            $json.Write($buf, 4, $n - 4)
            if ($buf[1] -eq 0) { break }
        }
        [Text.Encoding]::UTF8.GetString($json.ToArray()) | ConvertFrom-Json
    }
    finally { $s.Dispose() }
}

<#
.SYNOPSIS
    nvr-dp's state (nvr_get_state).
#>
function Get-BenchDpState([Parameter(Mandatory)][string]$ControlSocket) { Invoke-BenchDpQuery $ControlSocket '{"nvr_get_state":{}}' 200 }

<#
.SYNOPSIS
    The connections nvr-dp has seen (nvr_list_connection): which rule decided each and what it dropped.
#>
function Get-BenchDpConnection([Parameter(Mandatory)][string]$ControlSocket) { (Invoke-BenchDpQuery $ControlSocket '{"nvr_list_connection":{}}' 202).connections }

<#
.SYNOPSIS
    Installs the benchmark's policy of Count rules on the workload Mac through Send-DpMessage (a rejected chunk is a
    terminating error) and checks in nvr_get_state that the workload's policy has Count rules, defact DENY, dir 3.
    Returns the policy's shape, the chunk count and sizes and the version.
#>
function Install-BenchPolicy {
    param([Parameter(Mandatory)][string]$ControlSocket, [Parameter(Mandatory)][string]$Mac, [Parameter(Mandatory)][int]$Count)
    $rules = @(New-BenchPolicyRule -Count $Count)
    $chunks = @(ConvertTo-BenchPolicyChunk -Rules $rules -Mac $Mac)
    foreach ($c in $chunks) { Send-DpMessage $c -ControlSocket $ControlSocket -ErrorAction Stop -Confirm:$false }
    $state = Get-BenchDpState $ControlSocket
    $w = @($state.workloads | Where-Object mac -eq $Mac)
    if ($w.Count -ne 1) { throw "nvr_get_state lists no workload $Mac." }
    $p = $w[0].policy
    if ($null -eq $p -or $p.rules -ne $Count -or $p.defact -ne 7 -or $p.dir -ne 3) {
        throw "nvr_get_state shows the policy of $Mac as $($p | ConvertTo-Json -Compress), not $Count rules with defact 7 and dir 3."
    }
    $shape = Get-BenchPolicyShape $rules
    $shape | Add-Member -NotePropertyMembers ([ordered]@{ Chunks = $chunks.Count
            LargestChunk = ($chunks | ForEach-Object { [Text.Encoding]::UTF8.GetByteCount($_) } | Measure-Object -Maximum).Maximum
            Version = $p.version }) -PassThru
}

Export-ModuleMember -Function New-BenchPolicyRule, Get-BenchPolicyShape, ConvertTo-BenchPolicyChunk, Invoke-BenchDpQuery, Get-BenchDpState, Get-BenchDpConnection, Install-BenchPolicy
