#!/usr/bin/env bash
# Does this kernel take the seed's pedit filter, and does the filter act on traffic?
#
#   tests/stock-kernel/checks/tc-pedit.sh            # exit 0: accepted and working; 1: rejected or broken
#
# Builds, in two namespaces of its own (unique names, removed on exit):
#   nsA: vex-peer 192.0.2.1/24  <-veth->  nsB: vex 192.0.2.2/24, MAC 1a:27:f3:87:3a:27
#                                         nsB: vbr <-veth-> vth (the "dp" side)
# then adds the seed's first tc filter (vex pref 10001; docs/kernel-interfaces.md, "The seed's pedit filter, field by field")
# on vex's ingress: unicast IPv4 to 1a:27:f3:87:3a:27 gets that MAC rewritten to 4e:65:75:56:00:b4
# (pedit) and a copy mirrored out of vbr (mirred). It then pings 192.0.2.2 from nsA and checks that
# the kernel installed the pedit keys as tc encodes them and that both actions counted the packets.
# The host kernel of this project's machines rejects the filter ("Failed to load TC action
# module"); Debian's stock kernel under tests/stock-kernel/run.sh accepts it.
set -uo pipefail
suffix=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
a=nvsk-a-$suffix b=nvsk-b-$suffix
cleanup() { ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; }
trap cleanup EXIT
fail() { echo "tc-pedit: FAIL: $*"; exit 1; }
step() { echo "+ $*"; "$@"; }

set -e
ip netns add "$a"
ip netns add "$b"
ip -n "$a" link add vex-peer type veth peer name vex netns "$b"
ip -n "$b" link add vbr type veth peer name vth
ip -n "$b" link set vex address 1a:27:f3:87:3a:27
ip -n "$a" addr add 192.0.2.1/24 dev vex-peer
ip -n "$b" addr add 192.0.2.2/24 dev vex
for l in "$a vex-peer" "$a lo" "$b vex" "$b vbr" "$b vth" "$b lo"; do ip -n ${l% *} link set ${l#* } up; done
ip netns exec "$b" tc qdisc add dev vex ingress
set +e

echo "kernel $(uname -r)"
step ip netns exec "$b" tc filter add dev vex pref 10001 parent ffff: protocol ip u32 \
    match u8 0 1 at -14 match u16 0x1a27 0xffff at -14 match u32 0xf3873a27 0xffffffff at -12 \
    action pedit munge offset -14 u16 set 0x4e65 munge offset -12 u32 set 0x755600b4 pipe \
    action mirred egress mirror dev vbr
rc=$?
[ $rc -eq 0 ] || fail "tc filter add exited $rc: the kernel rejected the pedit filter"

ip netns exec "$a" ping -c 3 -i 0.2 -W 2 -q 192.0.2.2 || fail "no ping replies through the filtered link"
shown=$(ip netns exec "$b" tc -s filter show dev vex ingress)
echo "$shown"
# tc aligns pedit keys to 32-bit words: dst MAC = bytes -14..-9 -> word -16 (low half) and word -12
grep -Eq 'key #0 +at -16: val 00004e65 mask ffff0000' <<<"$shown" || fail "pedit key #0 is not as encoded"
grep -Eq 'key #1 +at -12: val 755600b4 mask 00000000' <<<"$shown" || fail "pedit key #1 is not as encoded"
hits=$(awk '/action order 1: +pedit/ { p = 1 } p && /Sent/ { print $4; exit }' <<<"$shown")
mirrored=$(awk '/action order 2: mirred/ { p = 1 } p && /Sent/ { print $4; exit }' <<<"$shown")
[ "${hits:-0}" -ge 3 ] || fail "pedit counted ${hits:-no} packets, expected at least 3 echo requests"
[ "${mirrored:-0}" -ge 3 ] || fail "mirred counted ${mirrored:-no} packets, expected at least 3"
vth_rx=$(ip -n "$b" -s link show vth | awk '/RX:/ { getline; print $2; exit }')
[ "${vth_rx:-0}" -ge 3 ] || fail "vth received ${vth_rx:-no} mirrored frames, expected at least 3"
echo "tc-pedit: OK: filter accepted; pedit rewrote $hits packets, mirred copied $mirrored, vth received $vth_rx"
