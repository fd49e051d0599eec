# An independent dp query client (no NvRedirect code): binds a unique socket path as NeuVector's agent does, sends
# one keep-alive, ctrl_count_session and nvr-dp's nvr_get_state, decodes the binary replies with struct and prints
# them as one JSON object. Usage: python3 dp_query.py CONTROL_SOCKET
import json
import os
import random
import socket
import struct
import sys

server = sys.argv[1]
path = '/tmp/nvr-dp-pyquery.%d.%08x' % (os.getpid(), random.getrandbits(32))
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
try:
    os.chmod(path, 0o600)
    sock.settimeout(5)
    seq = random.randint(1, 2**31)
    request = {'ctrl_keep_alive': {'seq_num': seq}, 'ctrl_count_session': {}, 'nvr_get_state': {}}
    sock.sendto(json.dumps(request).encode(), server)

    def reply():
        data = sock.recv(65536)
        kind, more, length = struct.unpack('!BBH', data[:4])
        if length != len(data):
            raise ValueError('reply length %d != datagram %d' % (length, len(data)))
        return kind, more, data[4:]

    kind, _, body = reply()
    assert kind == 10, kind
    (answered,) = struct.unpack('!I', body)
    kind, _, body = reply()
    assert kind == 3, kind
    total, tcp, udp, icmp, other = struct.unpack('!5I', body)
    state = b''
    while True:
        kind, more, body = reply()
        assert kind == 200, kind
        state += body
        if not more:
            break
    print(json.dumps({'keep_alive': {'sent': seq, 'answered': answered},
                      'sessions': {'total': total, 'tcp': tcp, 'udp': udp, 'icmp': icmp, 'other': other},
                      'state': json.loads(state.decode())}))
finally:
    sock.close()
    os.unlink(path)
