#!/usr/bin/env bash
# Runs one command under Debian 12's stock kernel, which has the tc actions this machine's kernel
# lacks (act_pedit, act_gact, cls_matchall, ...), with this machine's filesystem as the guest's root.
#
#   tests/stock-kernel/run.sh [-b BACKEND] [-t SECONDS] [-w DIR]... [-m MODULES] [-k] [-q] -- COMMAND...
#
#   COMMAND     one argument: a bash command line ('cd x && make'); several: a program and its
#               arguments, passed exactly. It runs in the caller's current directory with the caller's
#               exported environment (PATH, HOME, DOTNET_*, NUGET_PACKAGES, ...), as root, with
#               NVREDIRECT_STOCK_KERNEL=<kernel version> added. Its stdout and stderr stream to our
#               stdout as it runs (merged); stdin is /dev/null.
#   -b BACKEND  auto (default; $NVSK_BACKEND overrides): uml, then tcg if the UML VM fails before
#               the command starts.
#               uml: Debian's user-mode-linux build of the 6.1 kernel; 1 CPU; .NET runs ~6x slower than
#                    on the host; boots in ~2 s.
#               tcg: qemu emulating the CPU, Debian's stock x86 image of 6.1; 2 CPUs; .NET runs
#                    ~20-40x slower; boots in ~5 s.
#   -t SECONDS  wall-clock limit for the VM (default 3600; 0: none)
#   -w DIR      share the host's DIR writable at the same path (repeatable). Everything else the
#               command writes lands in a RAM overlay and is gone when the VM stops.
#   -m MODULES  comma-separated modules to load before the command (autoload works anyway)
#   -k          keep the run directory (console log, command script) for inspection
#   -q          no summary line on stderr
#
# Exit code: the command's; 124 when the VM hit the time limit; 125 when the VM ended without a
# result (guest init failed, kernel panic, qemu/UML error: the console log's tail is printed);
# 126 when the harness could not be installed or built; 2 for a usage error.
#
# The first run installs Debian packages and builds the VM's artefacts into $NVSK_CACHE (default
# /var/cache/nvredirect-stock-kernel); see prepare.sh and docs/stock-kernel.md. Runs are independent:
# each has its own VM, kernel, network namespaces and run directory, so parallel runs never collide
# (mind the CPU: a tcg VM keeps two cores busy).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '4,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { [ -n "$quiet" ] || printf 'nvsk: %s\n' "$*" >&2; }

backend=${NVSK_BACKEND:-auto} limit=3600 mods= keep= quiet= shares=()
while [ $# -gt 0 ]; do
    case $1 in
    -b) backend=${2:?}; shift 2 ;;
    -t) limit=${2:?}; shift 2 ;;
    -w) [ -d "${2:?}" ] || { echo "nvsk: -w $2: not a directory" >&2; exit 2; }
        shares+=("$(realpath "$2")"); shift 2 ;;
    -m) mods=${2:?}; shift 2 ;;
    -k) keep=1; shift ;;
    -q) quiet=1; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) echo "nvsk: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || usage
[[ $limit =~ ^[0-9]+$ ]] || { echo "nvsk: -t wants whole seconds" >&2; exit 2; }
case $backend in
auto) backends=(uml tcg) ;;
uml|tcg) backends=("$backend") ;;
*) echo "nvsk: unknown backend $backend (auto, uml, tcg)" >&2; exit 2 ;;
esac
for d in "${shares[@]}"; do
    [[ $d != *[[:space:],:]* ]] || { echo "nvsk: -w $d: paths with blanks, commas or colons are not supported" >&2; exit 2; }
done

# sq WORD: WORD in single quotes, safe for any POSIX shell whatever it contains
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

if [ $# -eq 1 ]; then command_line=$1; else command_line=$(printf '%q ' "$@"); fi

# --- the run directory: shared with the guest, private to this run -----------------------------
run=$(mktemp -d "${NVSK_RUNS:-/tmp}/nvsk-run.XXXXXX")
[[ $run != *[[:space:],:]* ]] || { rmdir "$run"; echo "nvsk: run directory $run has an unusable name" >&2; exit 2; }
chmod 0755 "$run"
vm= tailer=
cleanup() {
    local rc=$?
    if [ -n "$vm" ] && kill -0 "$vm" 2>/dev/null; then
        kill -TERM -- "-$vm" 2>/dev/null || true     # timeout(1) leads the VM's own process group
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$vm" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$vm" 2>/dev/null || true
    fi
    [ -z "$tailer" ] || kill "$tailer" 2>/dev/null || true
    if [ -n "$keep" ]; then say "run directory kept: $run"; else rm -rf "$run"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cmd.sh: the caller's environment, the caller's directory, then the command under bash
{
    echo '# written by tests/stock-kernel/run.sh'
    while IFS= read -r name; do
        case $name in PWD|OLDPWD|SHLVL|_|TERM|HOSTNAME|TMUX|TMUX_PANE) continue ;; esac
        printf 'export %s=%s\n' "$name" "$(sq "${!name}")"
    done < <(compgen -e)
    echo 'export NVREDIRECT_STOCK_KERNEL="$(uname -r)"'
    printf 'cd %s || { echo "nvsk: the guest cannot enter %s" >&2; exit 97; }\n' "$(sq "$PWD")" "$(sq "$PWD")"
    printf 'exec /bin/bash -c %s nvsk\n' "$(sq "$command_line")"
} > "$run/cmd.sh"

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# boot BACKEND: starts the VM in the background (its pid in $vm); returns 1 if it cannot be set up
boot() {
    local b=$1 env
    case $b in
    tcg)
        env=$("$here/prepare.sh" qemu) || return 2
        eval "$env"
        local fs=() tags= n=0 d
        for d in "${shares[@]}"; do
            fs+=(-virtfs "local,path=$d,mount_tag=rw$n,security_model=none,multidevs=remap")
            tags+="rw$n:$d "; n=$((n + 1))
        done
        printf 'NVSK_KDIR=%s\nNVSK_MODS=%s\nNVSK_SHARES=%s\n' "$(sq "$NVSK_KDIR")" "$(sq "${mods//,/ }")" "$(sq "$tags")" > "$run/guest.env"
        # PVH boot of the uncompressed kernel through qboot: no BIOS POST, no decompression
        local bios=()
        [ -f /usr/share/qemu/qboot.rom ] && bios=(-bios /usr/share/qemu/qboot.rom)
        timeout -k 10 "$limit" qemu-system-x86_64 -accel tcg,thread=multi -cpu max \
            -m "${NVSK_MEM:-4G}" -smp "${NVSK_SMP:-2}" \
            -nodefaults -no-user-config -display none -no-reboot -nic none \
            -serial "file:$run/console.log" \
            "${bios[@]}" -kernel "$NVSK_KERNEL" -initrd "$NVSK_INITRD" \
            -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off nvsk.run=$run" \
            -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
            -virtfs "local,path=$run,mount_tag=run,security_model=none,multidevs=remap" \
            "${fs[@]}" -device virtio-rng-pci \
            </dev/null >"$run/vm.log" 2>&1 &
        vm=$!
        ;;
    uml)
        env=$("$here/prepare.sh" uml) || return 2
        eval "$env"
        local tags= d
        for d in "${shares[@]}"; do tags+="hostfs:$d "; done
        printf 'NVSK_MODS=%s\nNVSK_SHARES=%s\n' "$(sq "${mods//,/ }")" "$(sq "$tags")" > "$run/guest.env"
        mkdir "$run/uml"
        # UML backs the guest's RAM with a file in $TMPDIR: keep it in tmpfs. uml_dir/umid keep its
        # control socket inside the run directory.
        TMPDIR=/dev/shm timeout -k 10 "$limit" "$NVSK_UML" mem="${NVSK_MEM:-4G}" \
            root=/dev/root rootfstype=hostfs rootflags=/ ro init="$here/guest/uml-init" \
            uml_dir="$run/uml" umid=vm con0=null,fd:1 con=null quiet nvsk.run="$run" \
            </dev/null >"$run/console.log" 2>"$run/vm.log" &
        vm=$!
        ;;
    esac
}

for b in "${backends[@]}"; do
    rm -f "$run"/{out.log,rc,uptime.start,uptime.end,console.log,vm.log}
    : > "$run/out.log"
    started=$(now)
    set +e
    boot "$b"; brc=$?
    set -e
    if [ $brc -ne 0 ]; then
        [ $brc -eq 2 ] && { echo "nvsk: could not prepare the $b backend" >&2; exit 126; }
        continue
    fi
    tail -s 0.2 -n +1 -f --pid="$vm" "$run/out.log" &   # stream the command's output as it comes
    tailer=$!
    set +e
    { wait "$vm"; } 2>/dev/null; vrc=$?   # (no job-status noise when the VM dies of a signal)
    set -e
    vm=
    wait "$tailer" 2>/dev/null || true
    tailer=
    ended=$(now)
    if [ -s "$run/rc" ]; then
        rc=$(cat "$run/rc")
        if [ -n "$NVSK_KVER" ] && [ -s "$run/uptime.start" ] && [ -s "$run/uptime.end" ]; then
            read -r u0 _ < "$run/uptime.start"; read -r u1 _ < "$run/uptime.end"
            total=$(seconds "$started" "$ended"); cmd=$(seconds "$u0" "$u1")
            say "$b $NVSK_KVER: exit $rc; command ${cmd}s, boot+shutdown $(seconds "$cmd" "$total")s, total ${total}s"
        fi
        exit "$rc"
    fi
    if [ $vrc -eq 124 ] || [ $vrc -eq 137 ]; then
        echo "nvsk: $b VM stopped after the ${limit}s limit" >&2
        exit 124
    fi
    echo "nvsk: $b VM ended without a result (exit $vrc); its last words:" >&2
    tail -n 30 "$run/vm.log" "$run/console.log" >&2 2>/dev/null || true
    if [ -e "$run/uptime.start" ]; then exit 125; fi   # the command ran: never run it twice
    [ "$b" = "${backends[-1]}" ] || say "trying the next backend"
done
exit 125
