#!/usr/bin/env bash
# Runs Pester files under the stock kernel (run.sh) against the module built on the host.
#
#   tests/stock-kernel/pester.sh [-b BACKEND] [-t SECONDS] [PATH...]
#
# PATH: Pester files or folders, relative to the repository root (default: tests/stock-kernel).
# Build first, on the host (the guest has no network and builds ~6-20x slower):
#   dotnet tool restore && dotnet build tests/NvRedirect.Tests -c Release
# Results come back through a writable share of artifacts/: stock-kernel-summary.json and
# stock-kernel-results.xml (JUnit). The last line is "stock-kernel: N passed, N failed, N skipped";
# the exit code is 0 only when tests ran and none failed (124/125/126: see run.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
opts=()
while [ $# -gt 0 ]; do
    case $1 in
    -b|-t) opts+=("$1" "${2:?}"); shift 2 ;;
    --) shift; break ;;
    *) break ;;
    esac
done
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(tests/stock-kernel)
cd "$root"
packages=${NUGET_PACKAGES:-$HOME/.nuget/packages}
psd1=$packages/pester/5.7.1/tools/Pester.psd1
[ -f "$psd1" ] || { echo "stock-kernel: Pester 5.7.1 is missing at $psd1 (dotnet restore tests/NvRedirect.Tests)" >&2; exit 126; }
[ -f bin/NvRedirect.dll ] || { echo "stock-kernel: bin/NvRedirect.dll is missing: build on the host first" >&2; exit 126; }

mkdir -p artifacts
summary=$root/artifacts/stock-kernel-summary.json
rm -f "$summary"
export NO_COLOR=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
set +e
"$root/tests/stock-kernel/run.sh" "${opts[@]}" -w "$root/artifacts" -- \
    dotnet pwsh -NoProfile -NonInteractive -File tests/run-pester.ps1 -PesterPsd1 "$psd1" \
    -Path "$(IFS=,; echo "${paths[*]}")" -SummaryPath "$summary" -ResultPath "$root/artifacts/stock-kernel-results.xml"
rc=$?
set -e
if [ -s "$summary" ]; then
    count() { grep -oE "\"$1\": *[0-9]+" "$summary" | grep -oE '[0-9]+$' || echo 0; }
    passed=$(count Passed) failed=$(count Failed) skipped=$(count Skipped)
else
    passed=0 failed=1 skipped=0
fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "stock-kernel: $passed passed, $failed failed, $skipped skipped"
if [ "$rc" -ne 0 ]; then exit "$rc"; fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
