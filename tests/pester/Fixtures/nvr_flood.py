#!/usr/bin/env python3
"""Floods for the robustness tests (tests/pester/Robustness.Tests.ps1), run inside a test namespace:

  syn      TCP SYNs through the kernel's routing (raw IPv4, IP_HDRINCL): a port scan from --source over --ports, or
           never-answered flows from many --sources (addresses no one owns, so nothing answers them)
  control  malformed control datagrams to an nvr-dp control socket (AF_UNIX datagrams, unbound: no replies)
  frames   malformed Ethernet frames written with an AF_PACKET socket to --iface (the service port's peer), most of
           them to the workload's NeuV MAC so they reach the datapath's parser

Random inputs come from --seed, so a failing run can be repeated. Prints one JSON line: what was sent."""
import argparse, ipaddress, json, random, socket, struct, sys

def checksum(data):
    if len(data) % 2: data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def syn_packet(src, dst, sport, dport, seq):
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack('!H', checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), seq & 0xffff, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack('!H', checksum(ip)) + ip[12:]
    return ip + tcp

def cmd_syn(a, rng):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    sources = [a.source] if a.source else [str(ipaddress.IPv4Address(a.sources_from) + i) for i in range(a.sources)]
    first, count = (int(x) for x in a.ports.split(':'))
    sent = 0
    for src in sources:
        ports = list(range(first, first + count))
        if a.shuffle: rng.shuffle(ports)
        for port in ports:
            s.sendto(syn_packet(src, a.to, 40000 + rng.randrange(20000), port, rng.randrange(1 << 32)), (a.to, 0))
            sent += 1
    print(json.dumps({'sent': sent, 'sources': len(sources)}))

VALID = [
    b'{"ctrl_keep_alive": {"seq_num": 7}}',
    b'{"ctrl_add_srvc_port": {"iface": "vth", "jumboframe": false}}',
    b'{"ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27", "ucmac": "4e:65:75:56:00:b4", "bcmac": "ff:ff:ff:00:00:b4"}}',
    b'{"ctrl_cfg_policy": {"cmd": 2, "flag": 3, "defact": 1, "dir": 3, "mac": ["1a:27:f3:87:3a:27"], "rules": [{"id": 1, "sip": "10.10.10.66", "dip": "10.10.10.88", "port": 80, "proto": 6, "action": 2, "ingress": true}]}}',
    b'{"ctrl_cfg_internal_net": {"flag": 3, "subnet_addr": [{"ip": "10.10.10.0", "mask": "255.255.255.0"}]}}',
    b'{"ctrl_set_debug": {"categories": ["ctrl"]}}',
    b'{"ctrl_del_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27"}}',
]

def malformed_datagram(rng):
    kind = rng.randrange(5)
    if kind == 0: return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    d = bytearray(rng.choice(VALID))
    if kind == 1: return bytes(d[:rng.randrange(1, len(d))])                      # cut short (never complete)
    if kind == 2:                                                                  # a required value of the wrong type
        return d.replace(b'"vth"', b'["vth"]').replace(b'"ctrl"', b'7').replace(b'"1a:27', b'"zz:27') + b'x' if rng.random() < 0.5 \
            else b'{"ctrl_add_mac": {"iface": "vth\\n\\u0000forged", "mac": "' + bytes(rng.randrange(32, 127) for _ in range(20)) + b'"}}'
    if kind == 3: return b'[' + bytes(d) + b']' if rng.random() < 0.5 else b'{"no_such_command": ' + bytes(d) + b'}'
    i = rng.randrange(len(d))                                                      # a structural character broken
    d[i:i + 1] = rng.choice([b'\x00', b'\xff', b'{', b'"', b'\\', b'\n{'])
    return bytes(d) + b'}}}' if rng.random() < 0.3 else b'{' + bytes(d)

def cmd_control(a, rng):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sent = 0
    for _ in range(a.count):
        d = malformed_datagram(rng)
        s.sendto(d, a.socket)
        sent += 1
        if sent % 200 == 0: s.sendto(b'{"ctrl_keep_alive": {"seq_num": 1}}', a.socket)  # valid ones in between (they change nothing)
    print(json.dumps({'sent': sent}))

def mac_bytes(text): return bytes(int(x, 16) for x in text.split(':'))

def base_frames(workload, peer):
    def ip(proto, l4, src='10.10.10.66', dst='10.10.10.88'):
        h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
        return h[:10] + struct.pack('!H', checksum(h)) + h[12:] + l4
    tcp = struct.pack('!HHIIBBHHH', 41000, 5001, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    udp = struct.pack('!HHHH', 41000, 6001, 16, 0) + b'12345678'
    icmp = struct.pack('!BBHHH', 8, 0, 0, 7, 1) + b'abcdefgh'
    eth_in = workload + peer + b'\x08\x00'
    v6 = b'\x60\0\0\0\0\x14\x06\x40' + b'\xfd' + b'\0' * 14 + b'\x01' + b'\xfd' + b'\0' * 14 + b'\x02' + tcp
    return [eth_in + ip(6, tcp), eth_in + ip(17, udp), eth_in + ip(1, icmp), workload + peer + b'\x86\xdd' + v6,
            workload + peer + b'\x81\x00\x00\x64\x08\x00' + ip(6, tcp)]

def malformed_frame(rng, bases):
    f = bytearray(rng.choice(bases))
    kind = rng.randrange(4)
    if kind == 0: return bytes(f[:rng.randrange(14, len(f))])                      # truncated (a veth carries no less than 14 bytes)
    if kind == 1:                                                                  # a length/offset field at an extreme
        for at in rng.sample([14, 16, 17, 18, 19, 12, 13, 46, 26, 32], 2):
            if at < len(f): f[at] = rng.choice([0, 0xff, 0x0f, 0x4f, 0x50, 0xf0])
        return bytes(f)
    if kind == 2:                                                                  # header bytes overwritten (MACs kept)
        for _ in range(rng.randrange(1, 6)): f[rng.randrange(12, min(len(f), 70))] = rng.randrange(256)
        return bytes(f)
    return bytes(f[:12]) + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))  # junk after the MACs

def cmd_frames(a, rng):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    bases = base_frames(mac_bytes(a.workload), mac_bytes(a.peer))
    sent = refused = 0
    while sent < a.count:
        f = malformed_frame(rng, bases)
        try:
            s.send(f)
            sent += 1
        except OSError:  # a frame the driver will not take: not sent, not counted
            refused += 1
            if refused > a.count: raise
    print(json.dumps({'sent': sent, 'refused': refused}))

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seed', type=int, default=1)
    sub = p.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('syn')
    s.add_argument('--to', required=True)
    s.add_argument('--source')
    s.add_argument('--sources-from', default='10.10.10.100')
    s.add_argument('--sources', type=int, default=1)
    s.add_argument('--ports', required=True, help='FIRST:COUNT')
    s.add_argument('--shuffle', action='store_true')
    c = sub.add_parser('control')
    c.add_argument('--socket', required=True)
    c.add_argument('--count', type=int, required=True)
    f = sub.add_parser('frames')
    f.add_argument('--iface', required=True)
    f.add_argument('--workload', required=True, help='the NeuV MAC frames are sent to')
    f.add_argument('--peer', required=True, help='the source MAC')
    f.add_argument('--count', type=int, required=True)
    a = p.parse_args()
    rng = random.Random(a.seed)
    {'syn': cmd_syn, 'control': cmd_control, 'frames': cmd_frames}[a.cmd](a, rng)

if __name__ == '__main__':
    sys.exit(main())
