# Watch-AgentTraffic against real frames: iputils ping runs in the background between two namespaces of this run
# while the capture reads; the frames' fields are checked against `ip -j` (MACs) and what was sent, and pcap files
# against tcpdump's own reading of them.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force

    $left = New-TestNamespace 'cap-l'
    $right = New-TestNamespace 'cap-r'
    $l = New-TestLinkName 'cl'
    $r = New-TestLinkName 'cr'
    Invoke-Ip -n $left link add $l type veth peer name $r netns $right | Out-Null
    Invoke-Ip -n $left addr add 10.10.10.1/24 dev $l | Out-Null
    Invoke-Ip -n $right addr add 10.10.10.2/24 dev $r | Out-Null
    Invoke-Ip -n $left link set $l up | Out-Null
    Invoke-Ip -n $right link set $r up | Out-Null
    # a quiet link: up, but its peer is down (no carrier) and it has no IPv6 to announce
    Invoke-Ip -n $left link add tquiet0 type veth peer name tquiet1 | Out-Null
    & ip netns exec $left sysctl -qw net.ipv6.conf.tquiet0.disable_ipv6=1
    Invoke-Ip -n $left link set tquiet0 up | Out-Null
    Invoke-Ip -n $left link add tdown0 type veth peer name tdown1 | Out-Null
    Invoke-Ip -n $left link add tflap0 type veth peer name tflap1 | Out-Null
    Invoke-Ip -n $left link set tflap0 up | Out-Null
    Invoke-Ip -n $left link set lo up | Out-Null

    $leftMac = (Get-IpLink $left $l).address
    $rightMac = (Get-IpLink $right $r).address
    $ping = 'exec ping -n -i 0.2 10.10.10.2'
    $work = Join-Path ([System.IO.Path]::GetTempPath()) "$(Get-TestRunStem)capture"
    New-Item -ItemType Directory $work | Out-Null

    # Frames of a capture made while ping runs from the left namespace.
    function Watch-WhilePinging([Parameter(ValueFromPipeline)][object]$InputObject, [hashtable]$Watch) {
        begin { $process = Start-TestProcess $left $ping; $items = [System.Collections.Generic.List[object]]::new() }
        process { if ($null -ne $InputObject) { $items.Add($InputObject) } }
        end {
            try { if ($items.Count) { @($items | Watch-AgentTraffic @Watch) } else { @(Watch-AgentTraffic @Watch) } }
            finally { Stop-TestProcess $process }
        }
    }

    # tcpdump's reading of a pcap file: one "source > destination" per frame.
    function Read-Pcap([string]$Path) {
        $lines = @(& tcpdump -r $Path -nn -e 2>$null)
        $LASTEXITCODE | Should -Be 0 -Because "tcpdump must read $Path"
        foreach ($line in $lines) { if ($line -match '^\S+ ([0-9a-f:]{17}) > ([0-9a-f:]{17}), ') { "$($Matches[1]) > $($Matches[2])" } else { "unparsed: $line" } }
    }
}
AfterAll {
    if ($work -and (Test-Path $work)) { Remove-Item $work -Recurse -Force }
    if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace }
}

Describe 'Watch-AgentTraffic' {
    It 'returns the frames of a ping with MACs, IPs, protocol and direction Out on the sender' {
        $frames = @(Watch-WhilePinging -Watch @{ Interface = $l; Namespace = $left; Count = 12 })
        $frames | Should -Not -BeNullOrEmpty
        $frames | ForEach-Object { $_ | Should -BeOfType ([NvRedirect.Core.Packets.AgentPacket]); $_.Namespace | Should -BeExactly $left; $_.Interface | Should -BeExactly $l }
        $requests = @($frames | Where-Object { $_.Protocol -eq 'ICMP' -and $_.Summary -like '*echo request*' })
        $replies = @($frames | Where-Object { $_.Protocol -eq 'ICMP' -and $_.Summary -like '*echo reply*' })
        $requests.Count | Should -BeGreaterThan 0
        $replies.Count | Should -BeGreaterThan 0
        foreach ($f in $requests) {
            $f.Direction | Should -BeExactly 'Out'
            $f.SourceMac | Should -BeExactly $leftMac
            $f.DestinationMac | Should -BeExactly $rightMac
            "$($f.SourceIP)" | Should -BeExactly '10.10.10.1'
            "$($f.DestinationIP)" | Should -BeExactly '10.10.10.2'
            $f.EtherType | Should -BeExactly '0x0800'
            $f.Length | Should -Be 98 -Because 'ping sends 56 data bytes: 14 + 20 + 8 + 56'
            $f.Bytes.Length | Should -Be 98
            $f.VlanId | Should -BeNullOrEmpty
            $f.SourcePort | Should -BeNullOrEmpty -Because 'ICMP has no ports'
            $f.Summary | Should -BeLike "*$l Out $leftMac > $rightMac, ethertype 0x0800, length 98: 10.10.10.1 > 10.10.10.2: ICMP echo request*"
        }
        foreach ($f in $replies) {
            $f.Direction | Should -BeExactly 'In'
            $f.SourceMac | Should -BeExactly $rightMac
            $f.DestinationMac | Should -BeExactly $leftMac
            "$($f.SourceIP)" | Should -BeExactly '10.10.10.2'
            "$($f.DestinationIP)" | Should -BeExactly '10.10.10.1'
        }
        # frames come in the order they were seen
        $times = @($frames.Time)
        for ($i = 1; $i -lt $times.Count; $i++) { $times[$i] | Should -BeGreaterOrEqual $times[$i - 1] }
    }

    It 'sees the same ping the other way round on the receiver: requests In, replies Out' {
        $frames = @(Watch-WhilePinging -Watch @{ Interface = $r; Namespace = $right; Count = 12 } | Where-Object Protocol -EQ 'ICMP')
        $requests = @($frames | Where-Object { $_.Summary -like '*echo request*' })
        $replies = @($frames | Where-Object { $_.Summary -like '*echo reply*' })
        $requests.Count | Should -BeGreaterThan 0
        $replies.Count | Should -BeGreaterThan 0
        $requests | ForEach-Object { $_.Direction | Should -BeExactly 'In'; $_.DestinationMac | Should -BeExactly $rightMac }
        $replies | ForEach-Object { $_.Direction | Should -BeExactly 'Out'; $_.SourceMac | Should -BeExactly $rightMac }
    }

    It 'stops after -Count frames' {
        @(Watch-WhilePinging -Watch @{ Interface = $l; Namespace = $left; Count = 3; TimeoutSeconds = 30 }).Count | Should -Be 3
    }

    It 'returns nothing from a quiet interface once -TimeoutSeconds has passed' {
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $frames = @(Watch-AgentTraffic tquiet0 -Namespace $left -Count 1 -TimeoutSeconds 1.5 -ErrorVariable errors)
        $clock.Stop()
        $frames | Should -BeNullOrEmpty
        $errors | Should -BeNullOrEmpty
        $clock.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 1.4 -Because 'it waited for the timeout, not less'
    }

    It 'writes -PcapPath as a file tcpdump reads, frame for frame' {
        $path = Join-Path $work 'left.pcap'
        $frames = @(Watch-WhilePinging -Watch @{ Interface = $l; Namespace = $left; Count = 6; PcapPath = $path })
        $frames.Count | Should -Be 6
        @(Read-Pcap $path) | Should -Be @($frames | ForEach-Object { "$($_.SourceMac) > $($_.DestinationMac)" })
        (Get-Item $path).Length | Should -Be (24 + ($frames | ForEach-Object { 16 + $_.Bytes.Length } | Measure-Object -Sum).Sum)
    }

    It 'resolves a relative -PcapPath against the current location and overwrites an existing file' {
        Push-Location $work
        try {
            Set-Content -LiteralPath (Join-Path $work 'relative.pcap') -Value 'not a pcap file'
            $frames = @(Watch-WhilePinging -Watch @{ Interface = $l; Namespace = $left; Count = 2; PcapPath = './relative.pcap' })
            @(Read-Pcap (Join-Path $work 'relative.pcap')).Count | Should -Be $frames.Count
        }
        finally { Pop-Location }
    }

    It 'takes link objects from the pipeline (LinkName and Namespace)' {
        $frames = @(Get-AgentLink $l -Namespace $left | Watch-WhilePinging -Watch @{ Count = 2 })
        $frames.Count | Should -Be 2
        $frames | ForEach-Object { $_.Interface | Should -BeExactly $l; $_.Namespace | Should -BeExactly $left }
    }

    It 'captures each piped link in turn, and -PcapPath holds the frames of all of them' {
        $path = Join-Path $work 'both.pcap'
        $links = @((Get-AgentLink $l -Namespace $left), (Get-AgentLink $r -Namespace $right))
        $frames = @($links | Watch-WhilePinging -Watch @{ Count = 3; PcapPath = $path })
        $frames.Count | Should -Be 6
        @($frames | Select-Object -First 3 | ForEach-Object Interface | Sort-Object -Unique) | Should -Be @($l)
        @($frames | Select-Object -Last 3 | ForEach-Object Interface | Sort-Object -Unique) | Should -Be @($r)
        @(Read-Pcap $path) | Should -Be @($frames | ForEach-Object { "$($_.SourceMac) > $($_.DestinationMac)" })
    }

    It 'captures several interfaces of a namespace at the same time, -Count frames in all' {
        $process = Start-TestProcess $left 'ping -n -i 0.2 127.0.0.1 & exec ping -n -i 0.2 10.10.10.2'
        try { $frames = @(Watch-AgentTraffic $l, lo -Namespace $left -Count 16) }
        finally { Stop-TestProcess $process }
        $frames.Count | Should -Be 16
        @($frames.Interface | Sort-Object -Unique) | Should -Be @($l, 'lo' | Sort-Object)
        $frames | Where-Object Interface -EQ 'lo' | ForEach-Object { "$($_.DestinationIP)" | Should -BeExactly '127.0.0.1' }
        $frames | Where-Object Interface -EQ $l | Where-Object Protocol -EQ 'ICMP' | ForEach-Object { @("$($_.SourceIP)", "$($_.DestinationIP)") | Should -Contain '10.10.10.2' }
    }

    It 'reports a missing interface as WatchAgentTrafficLinkNotFound' {
        $err = Get-ErrorRecord { Watch-AgentTraffic nosuchlink0 -Namespace $left -Count 1 -TimeoutSeconds 1 }
        Assert-AgentError $err -Id 'WatchAgentTrafficLinkNotFound,NvRedirect.Cmdlets.WatchAgentTrafficCommand' -Category ObjectNotFound -Message '*nosuchlink0*'
    }

    It 'reports a missing namespace as WatchAgentTrafficNamespaceNotFound' {
        $missing = "$(Get-TestRunStem)missing"
        $err = Get-ErrorRecord { Watch-AgentTraffic $l -Namespace $missing -Count 1 -TimeoutSeconds 1 }
        Assert-AgentError $err -Id 'WatchAgentTrafficNamespaceNotFound,NvRedirect.Cmdlets.WatchAgentTrafficCommand' -Category ObjectNotFound -Message "*$missing*"
    }

    It 'reports a link that is down as WatchAgentTrafficLinkDown, saying how to bring it up' {
        $err = Get-ErrorRecord { Watch-AgentTraffic tdown0 -Namespace $left -Count 1 -TimeoutSeconds 1 }
        Assert-AgentError $err -Id 'WatchAgentTrafficLinkDown,NvRedirect.Cmdlets.WatchAgentTrafficCommand' -Category ResourceUnavailable -Message "*tdown0*down*Set-AgentLink*-Up*"
    }

    It 'stops with WatchAgentTrafficLinkDown when the link goes down during the capture' {
        $process = Start-TestProcess $left 'sleep 1; exec ip link set tflap0 down'
        try { $err = Get-ErrorRecord { Watch-AgentTraffic tflap0 -Namespace $left -Count 1 -TimeoutSeconds 60 } }
        finally { Stop-TestProcess $process }
        Assert-AgentError $err -Id 'WatchAgentTrafficLinkDown,NvRedirect.Cmdlets.WatchAgentTrafficCommand' -Category ResourceUnavailable -Message '*tflap0*down*Set-AgentLink -Up*'
    }

    It 'refuses a -PcapPath in a folder that does not exist before capturing anything' {
        $err = Get-ErrorRecord { Watch-AgentTraffic $l -Namespace $left -Count 1 -TimeoutSeconds 1 -PcapPath (Join-Path $work 'no/such/folder/x.pcap') }
        Assert-AgentError $err -Id 'WatchAgentTrafficPcapFolderNotFound,NvRedirect.Cmdlets.WatchAgentTrafficCommand' -Category ObjectNotFound -Message '*no/such/folder*does not exist*'
    }

    It 'writes no pcap file when the capture could not start' {
        $path = Join-Path $work 'never.pcap'
        Watch-AgentTraffic nosuchlink0 -Namespace $left -Count 1 -TimeoutSeconds 1 -PcapPath $path -ErrorAction SilentlyContinue
        Test-Path $path | Should -BeFalse
        Set-Content -LiteralPath $path -Value 'an earlier capture'
        Watch-AgentTraffic nosuchlink0 -Namespace $left -Count 1 -TimeoutSeconds 1 -PcapPath $path -ErrorAction SilentlyContinue
        Get-Content -LiteralPath $path | Should -BeExactly 'an earlier capture' -Because 'a typo in the link name must not wipe an existing file'
    }
}
