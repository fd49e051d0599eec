#!/usr/bin/env bash
# Proves the harness end to end and times it; the figures in docs/stock-kernel.md come from here.
#
#   tests/stock-kernel/selftest.sh [-b BACKEND]      (build the module on the host first)
#
# 1. host:  checks/tc-pedit.sh, expected to be rejected here (reported, not required), and the
#           host's times for steps 4-6 (for the slowdown)
# 2. guest: `true`                        -> the cost of a boot and a power-off
# 3. guest: checks/tc-pedit.sh            -> the seed's pedit filter is accepted and acts on traffic
# 4. guest: pwsh -Command 1+1             -> pwsh start-up
# 5. guest: the module creates, lists and removes a namespace
# 6. guest: pester.sh (tests/stock-kernel/StockKernel.Tests.ps1)
# Each guest step is one run.sh call (one VM). Prints one line per step with the wall time and
# run.sh's split into command time and boot+shutdown; exits 1 if a guest step failed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
export NO_COLOR=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
opts=()
[ "${1:-}" = -b ] && opts=(-b "${2:?}")
log=$(mktemp /tmp/nvsk-selftest.XXXXXX)
trap 'rm -f "$log"' EXIT
failed=0

# step NAME EXPECT COMMAND...: runs COMMAND, prints its wall time, the run.sh summary and the outcome
step() {
    local name=$1 expect=$2; shift 2
    local t0 t1 rc split
    t0=$(date +%s.%N)
    "$@" >"$log" 2>&1; rc=$?
    t1=$(date +%s.%N)
    split=$(grep -E '^nvsk: (uml|tcg) ' "$log" | tail -n 1 | sed 's/^nvsk: //')
    printf '%-34s exit %-3s %6.1fs  %s\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$split"
    if [ "$expect" = pass ] && [ $rc -ne 0 ]; then failed=1; sed 's/^/    | /' "$log" | tail -n 40; fi
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs; kernel $(uname -r)"
step 'host: tc pedit (rejected here)' info tests/stock-kernel/checks/tc-pedit.sh
step 'host: pwsh start (1+1)' info dotnet pwsh -NoProfile -Command '1+1'
step 'host: module namespace round trip' info \
    dotnet pwsh -NoProfile -Command "Import-Module ./NvRedirect.psd1; New-AgentNamespace nvsk-selftest-$$; Get-AgentNamespace nvsk-selftest-$$; Remove-AgentNamespace nvsk-selftest-$$"
step 'host: Pester (pedit test skipped)' info dotnet pwsh -NoProfile -NonInteractive -File tests/run-pester.ps1 \
    -PesterPsd1 "${NUGET_PACKAGES:-$HOME/.nuget/packages}/pester/5.7.1/tools/Pester.psd1" -Path tests/stock-kernel/StockKernel.Tests.ps1 \
    -SummaryPath "$log.json" -ResultPath "$log.xml"
rm -f "$log.json" "$log.xml"
step 'guest: true (boot + power-off)' pass tests/stock-kernel/run.sh "${opts[@]}" -- true
step 'guest: tc pedit accepted' pass tests/stock-kernel/run.sh "${opts[@]}" -- tests/stock-kernel/checks/tc-pedit.sh
step 'guest: pwsh start (1+1)' pass tests/stock-kernel/run.sh "${opts[@]}" -- dotnet pwsh -NoProfile -Command '1+1'
step 'guest: module namespace round trip' pass tests/stock-kernel/run.sh "${opts[@]}" -- \
    "dotnet pwsh -NoProfile -Command 'Import-Module ./NvRedirect.psd1; New-AgentNamespace nvsk-selftest; Get-AgentNamespace; Remove-AgentNamespace nvsk-selftest'"
step 'guest: Pester (StockKernel.Tests)' pass tests/stock-kernel/pester.sh "${opts[@]}"
exit $failed
