# nvr-dp's counters in Prometheus text format: the --metrics listener (Start-Datapath -MetricsEndpoint) scraped over
# real HTTP on a loopback port of this machine, its counters moved by real traffic between this run's namespaces, its
# answers to garbage; and Export-DpMetrics's node_exporter textfile. The daemon runs on a control socket of this run
# and is stopped in AfterAll (by pid if need be); the textfiles live under /tmp with the run's stem.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../NvRedirect.psd1') -Force
    Import-Module (Join-Path $PSScriptRoot 'TestSupport.psm1') -Force
    $SeedMac = '1a:27:f3:87:3a:27'

    # a TCP port on 127.0.0.1 that nothing listens on right now
    function Get-FreeLoopbackPort {
        $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $l.Start()
        try { $l.LocalEndpoint.Port } finally { $l.Stop() }
    }

    # Start-Datapath with a metrics listener, its pids registered for Stop-TestDp as Start-TestDp does
    function Start-MetricsDp([string]$Namespace, [string]$Socket, [string]$Log, [string]$Endpoint) {
        $dp = Start-Datapath -Namespace $Namespace -ControlSocket $Socket -LogPath $Log -MetricsEndpoint $Endpoint
        if ($dp) {
            if (Get-TestDpSupervisor $dp.Pid) { Register-TestDp -ProcessId (Get-TestDpSupervisor $dp.Pid) }
            Register-TestDp -ProcessId $dp.Pid
        }
        $dp
    }

    # GET /metrics: the response and its samples by series ('name{labels}' -> value)
    function Invoke-Scrape {
        $r = Invoke-WebRequest "http://127.0.0.1:$Port/metrics" -TimeoutSec 10 -SkipHttpErrorCheck
        $samples = @{}
        foreach ($line in ($r.Content -split "`n")) {
            if ($line -and -not $line.StartsWith('#')) {
                $at = $line.LastIndexOf(' ')
                $samples[$line.Substring(0, $at)] = [double]$line.Substring($at + 1)
            }
        }
        [pscustomobject]@{ Status = [int]$r.StatusCode; ContentType = "$($r.Headers['Content-Type'])"; Text = $r.Content; Samples = $samples }
    }

    function Get-Series([hashtable]$Samples, [string]$Name, [hashtable]$Labels = @{}) {
        $keys = @($Samples.Keys | Where-Object {
                $k = $_
                $k.StartsWith("$Name{", [StringComparison]::Ordinal) -and -not @($Labels.GetEnumerator() | Where-Object { -not $k.Contains("$($_.Key)=`"$($_.Value)`"") })
            })
        if ($keys.Count -ne 1) { throw "expected one series $Name $($Labels | ConvertTo-Json -Compress), found $($keys.Count)" }
        $Samples[$keys[0]]
    }

    # one raw HTTP exchange over TCP: sends $Bytes (then nothing more), returns the status line ('' when closed without one)
    function Send-RawRequest([byte[]]$Bytes, [int]$ReadTimeoutMilliseconds = 10000) {
        $client = [System.Net.Sockets.TcpClient]::new()
        try {
            $client.Connect([System.Net.IPAddress]::Loopback, $Port)
            $stream = $client.GetStream()
            $stream.ReadTimeout = $ReadTimeoutMilliseconds
            if ($Bytes.Length) { $stream.Write($Bytes, 0, $Bytes.Length) }
            $reader = [System.IO.StreamReader]::new($stream, [System.Text.Encoding]::ASCII)
            "$($reader.ReadLine())"
        }
        catch [System.IO.IOException] { '' }
        finally { $client.Dispose() }
    }

    $topo = New-SeedTopology -AgentNamespace (New-TestNamespaceName 'agent') -ContainerNamespace (New-TestNamespaceName 'cont') -HostNamespace (New-TestNamespaceName 'host')
    $agent = $topo.AgentNamespace
    $hostNs = $topo.HostNamespace
    $sock = New-TestDpPath '.sock'
    $log = New-TestDpPath '.log'
    $Port = Get-FreeLoopbackPort
    $dp = Start-MetricsDp $agent $sock $log "127.0.0.1:$Port"
    Add-DpServicePort vth -ControlSocket $sock
    Set-DpInternalNetwork -Subnet 10.10.10.0/24 -DeviceAddress 10.10.10.66/24, 10.10.10.88/24 -ControlSocket $sock
    Get-WorkloadInterception $agent | Add-DpMac -ControlSocket $sock
    Set-DpMac $SeedMac -Tap $false -ControlSocket $sock
    $workload = @{ mac = $SeedMac }
    $TextfileDirectories = [System.Collections.Generic.List[string]]::new()
}
AfterAll {
    foreach ($d in $TextfileDirectories) { Remove-Item -LiteralPath $d -Recurse -Force -ErrorAction Ignore }
    if (Get-Command Stop-TestDp -ErrorAction Ignore) { Stop-TestDp @($sock) }
    if (Get-Command Remove-TestNamespace -ErrorAction Ignore) { Remove-TestNamespace }
}

Describe 'nvr-dp --metrics (Start-Datapath -MetricsEndpoint)' {
    It 'serves GET /metrics in Prometheus text format with the datapath''s and the workload''s series' {
        $dp.Pid | Should -BeGreaterThan 0
        $s = Invoke-Scrape
        $s.Status | Should -Be 200
        $s.ContentType | Should -BeLike 'text/plain; version=0.0.4*'
        Get-Series $s.Samples nvr_dp_workloads | Should -Be 1
        Get-Series $s.Samples nvr_dp_workload_info @{ mac = $SeedMac; tap = 'false'; interface = 'vth' } | Should -Be 1
        Get-Series $s.Samples nvr_dp_info @{ pid = "$($dp.Pid)" } | Should -Be 1
        $s.Text | Should -Match "(?m)^# TYPE nvr_dp_workload_packets_total counter$"
        # the listener describes the daemon without sending it requests: scraping moves no request counter
        $before = Get-Series $s.Samples nvr_dp_control_requests_total @{ outcome = 'accepted' }
        Get-Series (Invoke-Scrape).Samples nvr_dp_control_requests_total @{ outcome = 'accepted' } | Should -Be $before
    }

    It 'counts the traffic that passes: workload packets both ways, frames read and written, ICMP sessions' {
        $a = (Invoke-Scrape).Samples
        Wait-TestCondition { Test-IcmpEcho $hostNs 10.10.10.88 -Count 1 } -TimeoutSeconds 15 | Should -BeTrue
        1..3 | ForEach-Object { Test-IcmpEcho $hostNs 10.10.10.88 -Count 1 | Should -BeTrue }   # three echoes, each answered
        $b = (Invoke-Scrape).Samples
        foreach ($direction in 'in', 'out') {
            (Get-Series $b nvr_dp_workload_packets_total ($workload + @{ direction = $direction })) |
                Should -BeGreaterOrEqual ((Get-Series $a nvr_dp_workload_packets_total ($workload + @{ direction = $direction })) + 3)
            (Get-Series $b nvr_dp_workload_bytes_total ($workload + @{ direction = $direction })) |
                Should -BeGreaterThan (Get-Series $a nvr_dp_workload_bytes_total ($workload + @{ direction = $direction }))
        }
        (Get-Series $b nvr_dp_rx_packets_total) | Should -BeGreaterOrEqual ((Get-Series $a nvr_dp_rx_packets_total) + 6)
        (Get-Series $b nvr_dp_tx_packets_total) | Should -BeGreaterOrEqual ((Get-Series $a nvr_dp_tx_packets_total) + 6)
        (Get-Series $b nvr_dp_sessions_created_total @{ protocol = 'icmp' }) | Should -BeGreaterThan (Get-Series $a nvr_dp_sessions_created_total @{ protocol = 'icmp' })
        (Get-Series $b nvr_dp_table_entries @{ table = 'sessions' }) | Should -BeGreaterThan 0
    }

    It 'counts policy verdicts: in Protect the pings are withheld and the denied counters move; the mode label follows' {
        $a = (Invoke-Scrape).Samples
        Set-DpWorkloadMode -Mac $SeedMac -Mode Protect -ControlSocket $sock
        try {
            Test-IcmpEcho $hostNs 10.10.10.88 -Count 2 -TimeoutMilliseconds 500 | Should -BeFalse
            $b = (Invoke-Scrape).Samples
            Get-Series $b nvr_dp_workload_info ($workload + @{ mode = 'Protect' }) | Should -Be 1
            (Get-Series $b nvr_dp_policy_denied_packets_total) | Should -BeGreaterOrEqual ((Get-Series $a nvr_dp_policy_denied_packets_total) + 2)
            (Get-Series $b nvr_dp_policy_denied_sessions_total) | Should -BeGreaterThan (Get-Series $a nvr_dp_policy_denied_sessions_total)
        }
        finally { Set-DpWorkloadMode -Mac $SeedMac -Mode Monitor -ControlSocket $sock }   # everything passes again
    }

    It 'answers garbage, oversized, silent, wrong-method and wrong-path requests with an error, and keeps serving' {
        Send-RawRequest ([byte[]](1..200 | ForEach-Object { Get-Random -Minimum 0 -Maximum 256 }) + [byte[]](13, 10, 13, 10)) | Should -BeLike 'HTTP/1.1 400 *'
        Send-RawRequest ([System.Text.Encoding]::ASCII.GetBytes('GET /metrics HTTP/1.1' + "`r`nX: " + ('a' * 9000))) | Should -Be 'HTTP/1.1 431 Request Header Fields Too Large'
        Send-RawRequest ([byte[]]@()) | Should -Be 'HTTP/1.1 408 Request Timeout'   # a client that sends nothing is cut off after 3 s
        Send-RawRequest ([System.Text.Encoding]::ASCII.GetBytes("POST /metrics HTTP/1.1`r`nHost: x`r`n`r`n")) | Should -Be 'HTTP/1.1 405 Method Not Allowed'
        Send-RawRequest ([System.Text.Encoding]::ASCII.GetBytes("GET /../etc/passwd HTTP/1.1`r`n`r`n")) | Should -Be 'HTTP/1.1 404 Not Found'
        Send-RawRequest ([System.Text.Encoding]::ASCII.GetBytes("GET /metrics HTTP/1.0`r`n`r`n")) | Should -Be 'HTTP/1.1 200 OK'
        # the daemon is the same process, still answers its control socket and still forwards
        (Get-Datapath -ControlSocket $sock).Pid | Should -Be $dp.Pid
        $s = Invoke-Scrape
        $s.Status | Should -Be 200
        Get-Series $s.Samples nvr_dp_restarts_total | Should -Be 0   # garbage killed nothing
        Test-IcmpEcho $hostNs 10.10.10.88 -Count 2 | Should -BeTrue
    }

    It 'serves again on the same port after the supervisor restarted a killed daemon, and counts the restart' {
        $null = Invoke-Scrape   # a connection closed by the daemon: its TIME_WAIT must not keep the restarted one from binding
        Stop-Process -Id $dp.Pid -Force
        Wait-TestCondition { (Get-Datapath -ControlSocket $sock -ErrorAction Ignore).Restarts -eq 1 } -TimeoutSeconds 30 | Should -BeTrue
        $restarted = Get-Datapath -ControlSocket $sock
        Register-TestDp -ProcessId $restarted.Pid
        $s = Invoke-Scrape
        $s.Status | Should -Be 200
        Get-Series $s.Samples nvr_dp_restarts_total | Should -Be 1
        Get-Series $s.Samples nvr_dp_info @{ pid = "$($restarted.Pid)" } | Should -Be 1
        Get-Series $s.Samples nvr_dp_workloads | Should -Be 1   # the saved configuration came back
    }

    It 'refuses an address that is not loopback, and a port already taken, with a clear error and no daemon left' {
        $other = New-TestDpPath '.sock'
        $e = Get-ErrorRecord { Start-Datapath -Namespace $agent -ControlSocket $other -MetricsEndpoint "0.0.0.0:$Port" }
        $e.FullyQualifiedErrorId | Should -BeLike 'StartDatapathInvalidArgument,*'
        $e.Exception.Message | Should -Match 'not a loopback address'
        $e = Get-ErrorRecord { Start-MetricsDp $agent $other (New-TestDpPath '.log') "127.0.0.1:$Port" }   # registered, should it start
        $e.FullyQualifiedErrorId | Should -BeLike 'StartDatapathStartFailed,*'
        $e.Exception.Message | Should -Match "cannot serve metrics on 127.0.0.1:$Port"
        @(Get-Datapath | Where-Object ControlSocket -EQ $other) | Should -BeNullOrEmpty
        Test-Path $other | Should -BeFalse
    }
}

Describe 'Export-DpMetrics' {
    It 'writes the same series as the listener into a node_exporter textfile, atomically, leaving no temporary file' {
        $dir = New-TestDpPath '.d'
        $TextfileDirectories.Add($dir)
        $null = New-Item -ItemType Directory $dir
        $file = Join-Path $dir 'nvr-dp.prom'
        $written = Get-Datapath -ControlSocket $sock | Export-DpMetrics $file -PassThru
        $written.FullName | Should -Be $file
        $text = Get-Content $file -Raw
        $text | Should -Match ([regex]::Escape("nvr_dp_workload_packets_total{socket=`"$sock`",namespace=`"$agent`",mac=`"$SeedMac`",direction=`"in`"} "))
        # the family lines equal the listener's: one definition
        $families = { param($t) @($t -split "`n" | Where-Object { $_.StartsWith('# ') }) -join "`n" }
        & $families $text | Should -Be (& $families (Invoke-Scrape).Text)
        @(Get-ChildItem $dir -Force -Name) | Should -Be @('nvr-dp.prom')
    }

    It '-WhatIf writes nothing; a missing directory is an error naming it' {
        $dir = New-TestDpPath '.w'
        $TextfileDirectories.Add($dir)
        $null = New-Item -ItemType Directory $dir
        Export-DpMetrics (Join-Path $dir 'x.prom') -ControlSocket $sock -WhatIf
        @(Get-ChildItem $dir -Force) | Should -BeNullOrEmpty
        $missing = New-TestDpPath '.missing'
        $e = Get-ErrorRecord { Export-DpMetrics (Join-Path $missing 'x.prom') -ControlSocket $sock }
        $e.FullyQualifiedErrorId | Should -BeLike 'ExportDpMetricsDirectoryNotFound,*'
        $e.Exception.Message | Should -Match ([regex]::Escape($missing))
    }
}
