# What the benchmark scripts share: the median of a series and a description of the machine the figures come from.
Set-StrictMode -Version Latest

<#
.SYNOPSIS
    The median of a series of numbers.
#>
function Get-Median([Parameter(Mandatory)][double[]]$Values) {
    $s = @($Values | Sort-Object)
    if ($s.Count % 2) { $s[($s.Count - 1) / 2] } else { ($s[$s.Count / 2 - 1] + $s[$s.Count / 2]) / 2 }
}

<#
.SYNOPSIS
    The 1-minute load average (other work on a small VM skews the figures; before and after says how much).
#>
function Get-LoadAverage { (Get-Content /proc/loadavg -Raw).Split(' ')[0] }

<#
.SYNOPSIS
    The machine, as an ordered dictionary: date, CPUs, memory, kernel, PowerShell, .NET, iproute2, and the load average
    before (given) and now.
#>
function Get-BenchMachine([string]$LoadBefore) {
    $cpu = (Select-String -Path /proc/cpuinfo -Pattern '^model name\s*:\s*(.+)$' | Select-Object -First 1).Matches[0].Groups[1].Value.Trim()
    $memKb = [long]((Select-String -Path /proc/meminfo -Pattern '^MemTotal:\s+(\d+)').Matches[0].Groups[1].Value)
    [ordered]@{
        Date           = [DateTime]::UtcNow.ToString('yyyy-MM-dd HH:mm') + ' UTC'
        CPUs           = "$(& nproc) ($cpu)"
        Memory         = '{0:N1} GiB' -f ($memKb / 1MB)
        Kernel         = (& uname -r)
        PowerShell     = $PSVersionTable.PSVersion.ToString()
        '.NET'         = [System.Runtime.InteropServices.RuntimeInformation]::FrameworkDescription
        iproute2       = ((& ip -V) -join ' ').Trim()
        'Load (1 min)' = "$LoadBefore before, $(Get-LoadAverage) after"
    }
}

Export-ModuleMember -Function Get-Median, Get-LoadAverage, Get-BenchMachine
