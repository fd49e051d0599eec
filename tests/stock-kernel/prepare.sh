#!/usr/bin/env bash
# Prepares a backend of the stock-kernel harness and prints what run.sh needs to boot it.
#
#   prepare.sh qemu|uml
#
# Installs the Debian packages the backend needs (apt-get, as root; nothing else is downloaded: the
# kernel comes from Debian's archive too) and builds the backend's artefacts once, into the cache
# directory $NVSK_CACHE (default /var/cache/nvredirect-stock-kernel). Later calls find them and return
# at once. Building is serialised with flock and every artefact is renamed into place when complete,
# so parallel first runs neither collide nor see half-built files.
#
# Output (stdout, KEY=VALUE lines, meant for `eval`):
#   qemu: NVSK_KVER, NVSK_KDIR (the unpacked linux-image package, with modules.dep), NVSK_KERNEL
#         (the uncompressed vmlinux, booted through PVH), NVSK_INITRD (busybox + the 9p/overlay modules)
#   uml:  NVSK_KVER, NVSK_UML (linux.uml), NVSK_KDIR (/usr/lib/uml/modules/<version>)
# Progress goes to stderr. Exit code 0, or 1 when something could not be installed or built.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
backend=${1:?usage: prepare.sh qemu|uml}
cache=${NVSK_CACHE:-/var/cache/nvredirect-stock-kernel}

say() { printf 'nvsk: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q "$@"
}

# install_missing PKG... : apt-get install the packages that dpkg does not report as installed
install_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (apt-get install them, or run as root)"
    say "installing ${missing[*]}"
    # the package lists may be absent or stale on a fresh machine: try as they are, then update
    if ! apt_get install -y --no-install-recommends "${missing[@]}" >&2; then
        apt_get update >&2 || die "apt-get update failed"
        apt_get install -y --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
    fi
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # one builder at a time; readers of finished artefacts need no lock

case "$backend" in
uml)
    install_missing user-mode-linux busybox-static kmod
    uml=$(command -v linux.uml) || die "linux.uml not found after installing user-mode-linux"
    kver=$(ls /usr/lib/uml/modules | sort -V | tail -n 1)
    [ -n "$kver" ] || die "no module tree under /usr/lib/uml/modules"
    [ -f "/usr/lib/uml/modules/$kver/kernel/fs/overlayfs/overlay.ko" ] || die "the UML package has no overlay module"
    printf 'NVSK_KVER=%q\nNVSK_UML=%q\nNVSK_KDIR=%q\n' "$kver" "$uml" "/usr/lib/uml/modules/$kver"
    ;;
qemu)
    install_missing qemu-system-x86 busybox-static cpio kmod xz-utils
    # the ABI package behind Debian's linux-image-amd64 metapackage, e.g. linux-image-6.1.0-56-amd64
    abi_package() { apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'; }
    pkg=$(abi_package)
    if [ -z "$pkg" ]; then apt_get update >&2 || die "apt-get update failed"; pkg=$(abi_package); fi
    [ -n "$pkg" ] || die "apt-cache knows no linux-image-amd64"
    kver=${pkg#linux-image-}
    kdir=$cache/$pkg

    # 1. the stock kernel package, unpacked, with the modules.dep its postinst would have made
    if [ ! -f "$kdir/lib/modules/$kver/modules.dep" ]; then
        say "downloading and unpacking $pkg"
        tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
        chown _apt "$tmp" 2>/dev/null || chmod 0777 "$tmp"   # apt downloads as its _apt user
        trap 'rm -rf "$tmp"' EXIT
        (cd "$tmp" && apt-get -q download "$pkg" >&2) || die "apt-get download $pkg failed"
        dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/root" || die "dpkg-deb -x failed"
        depmod -b "$tmp/root" "$kver" || die "depmod failed"
        rm -rf "$kdir"
        mv "$tmp/root" "$kdir"
        rm -rf "$tmp"
        trap - EXIT
    fi

    # 2. the kernel as an uncompressed ELF: qemu boots that through its PVH entry note, which skips
    #    the firmware and the in-guest XZ decompression (seconds under TCG). The bzImage's payload is
    #    a single XZ stream; find its magic and decompress from there.
    vmlinux=$cache/vmlinux-$kver
    if [ ! -s "$vmlinux" ]; then
        say "extracting vmlinux-$kver"
        bz=$kdir/boot/vmlinuz-$kver
        off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n 1 | cut -d: -f1 || true)
        [ -n "$off" ] || die "no XZ payload in $bz"
        tail -c +$((off + 1)) "$bz" | xz -dc --single-stream > "$vmlinux.tmp" 2>/dev/null || true
        [ "$(head -c 4 "$vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] || { rm -f "$vmlinux.tmp"; die "the XZ payload of $bz is not an ELF kernel"; }
        mv "$vmlinux.tmp" "$vmlinux"
    fi

    # 3. the initramfs: static busybox, our /init and the modules needed to reach the host's files
    #    (virtio PCI, 9p over virtio, overlayfs; they are =m in Debian's config). Every other module
    #    stays in the unpacked tree, which the guest reaches over 9p. The file name carries a hash of
    #    its inputs, so an edited init gets a new initramfs.
    roots=(virtio_pci 9pnet_virtio 9p overlay virtio-rng)
    key=$( { cat "$here/guest/qemu-init" /bin/busybox; echo "$kver ${roots[*]}"; } | sha256sum | cut -c1-16)
    initrd=$cache/initramfs-$kver-$key.cpio
    if [ ! -s "$initrd" ]; then
        say "building the initramfs"
        tmp=$(mktemp -d "$cache/.initramfs.XXXXXX")
        trap 'rm -rf "$tmp"' EXIT
        mkdir -p "$tmp"/{bin,proc,sys,dev,mods,lib/modules}
        cp /bin/busybox "$tmp/bin/busybox"
        ln -s busybox "$tmp/bin/sh"
        install -m 0755 "$here/guest/qemu-init" "$tmp/init"
        for m in "${roots[@]}"; do
            modprobe -d "$kdir" -S "$kver" --show-depends "$m" || die "modprobe --show-depends $m failed"
        done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' > "$tmp/ko.list"
        while read -r ko; do
            cp "$ko" "$tmp/mods/"
            basename "$ko" >> "$tmp/mods/order"
        done < "$tmp/ko.list"
        rm "$tmp/ko.list"
        (cd "$tmp" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$initrd.tmp"
        mv "$initrd.tmp" "$initrd"
        rm -rf "$tmp"
        trap - EXIT
        # initramfs builds from older inputs are of no further use (an hour's grace for running VMs)
        find "$cache" -maxdepth 1 -name "initramfs-$kver-*.cpio" ! -name "${initrd##*/}" -mmin +60 -delete
    fi
    printf 'NVSK_KVER=%q\nNVSK_KDIR=%q\nNVSK_KERNEL=%q\nNVSK_INITRD=%q\n' "$kver" "$kdir" "$vmlinux" "$initrd"
    ;;
*)
    die "unknown backend '$backend' (qemu or uml)"
    ;;
esac
