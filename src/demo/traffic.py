# Traffic for the policy tests (no nc or socat on the machine); run it inside a namespace with `ip netns exec NS`.
#   serve --log FILE [--tcp P,P..] [--udp P,P..]   echo server: every TCP byte and UDP datagram comes back unchanged;
#        appends one line per event to FILE ("listening", "accept|close|reset tcp PORT PEER:PEERPORT", "udp PORT PEER:PEERPORT",
#        "error tcp PORT PEER:PEERPORT ERRNO" for any other socket error, which ends that connection only)
#   tcp  --to A --port P [--source S] [--timeout T]   one connection with one round trip; prints a JSON result line
#   udp  --to A --port P [--source S] [--timeout T]   one request answered or not; prints a JSON result line
#   hold --to A --port P [--source S] [--timeout T]   like tcp, then keeps the connection open and obeys stdin:
#        "send" -> one more round trip, prints its result; "close" or end of input -> closes and exits
# Results: {"result": "connected"|"answered"|"refused"|"reset"|"closed"|"timeout", "stage": ..., "local": "ip:port", "detail": ...}
#   refused = ECONNREFUSED (an RST answering the SYN, or ICMP port unreachable for UDP); reset = ECONNRESET or EPIPE on
#   an established connection; closed = the peer closed (FIN); timeout = nothing came back within --timeout seconds.
# Every wait is bounded, and every process ends by itself after --lifetime seconds (default 900) even if nobody stops it.
import argparse
import errno
import json
import select
import socket
import sys
import time


def ports(text):
    return [int(p) for p in text.split(',') if p] if text else []


def say(result, **extra):
    extra['result'] = result
    print(json.dumps(extra), flush=True)


def serve(args):
    deadline = time.monotonic() + args.lifetime
    log = open(args.log, 'a', buffering=1)

    def event(text):
        log.write(text + '\n')

    listeners, udp, conns = {}, {}, {}
    for p in ports(args.tcp):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((args.address, p))
        s.listen(16)
        listeners[s] = p
    for p in ports(args.udp):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((args.address, p))
        udp[s] = p
    event('listening tcp=%s udp=%s' % (args.tcp or '', args.udp or ''))
    while time.monotonic() < deadline:
        ready, _, _ = select.select(list(listeners) + list(udp) + list(conns), [], [], 1.0)
        for s in ready:
            if s in listeners:
                c, peer = s.accept()
                conns[c] = (listeners[s], '%s:%d' % peer)
                event('accept tcp %d %s' % conns[c])
            elif s in udp:
                data, peer = s.recvfrom(65536)
                event('udp %d %s:%d' % (udp[s], peer[0], peer[1]))
                s.sendto(data, peer)
            else:
                port, peer = conns[s]
                try:
                    data = s.recv(65536)
                    if data:
                        s.sendall(data)
                        continue
                    event('close tcp %d %s' % (port, peer))
                except (ConnectionResetError, BrokenPipeError):
                    event('reset tcp %d %s' % (port, peer))
                except OSError as e:  # anything else ends this connection, never the server
                    event('error tcp %d %s %s' % (port, peer, errno.errorcode.get(e.errno, str(e.errno))))
                s.close()
                del conns[s]


def bound_socket(args, kind):
    s = socket.socket(socket.AF_INET, kind)
    if args.source:
        s.bind((args.source, 0))
    s.settimeout(args.timeout)
    return s


def local_of(s):
    try:
        return '%s:%d' % s.getsockname()
    except OSError:
        return ''


def round_trip(s, stage, payload):
    """Sends payload and waits for all of it to come back; returns the result (and says it)."""
    try:
        s.sendall(payload)
        got = b''
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                say('closed', stage=stage, local=local_of(s))
                return 'closed'
            got += chunk
        # acknowledge the echo now, not after the delayed-ACK timer (up to 200 ms in interactive mode): a held
        # connection is then quiet until told to send, so a policy change meets its next packet only then
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        say('connected' if stage == 'connect' else 'answered', stage=stage, local=local_of(s))
        return 'ok'
    except socket.timeout:
        say('timeout', stage=stage, local=local_of(s))
        return 'timeout'
    except (ConnectionResetError, BrokenPipeError) as e:
        say('reset', stage=stage, local=local_of(s), detail=errno.errorcode.get(e.errno, str(e.errno)))
        return 'reset'


def connect(args):
    s = bound_socket(args, socket.SOCK_STREAM)
    try:
        s.connect((args.to, args.port))
    except socket.timeout:
        say('timeout', stage='connect', local=local_of(s))
        return None
    except ConnectionRefusedError:
        say('refused', stage='connect', local=local_of(s))
        return None
    except ConnectionResetError:
        say('reset', stage='connect', local=local_of(s), detail='ECONNRESET')
        return None
    if round_trip(s, 'connect', b'hello %d\n' % args.port) != 'ok':
        s.close()
        return None
    return s


def tcp(args):
    s = connect(args)
    if s:
        s.close()


def hold(args):
    deadline = time.monotonic() + args.lifetime
    s = connect(args)
    if not s:
        return
    n = 0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if not ready:
            continue
        line = sys.stdin.readline()
        if not line or line.strip() == 'close':
            break
        if line.strip() == 'send':
            n += 1
            if round_trip(s, 'send', b'more %d\n' % n) != 'ok':
                break
    s.close()


def udp_request(args):
    s = bound_socket(args, socket.SOCK_DGRAM)
    s.connect((args.to, args.port))
    deadline = time.monotonic() + args.timeout
    n = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            say('timeout', stage='request', local=local_of(s))
            return
        n += 1
        payload = b'request %d' % n
        try:
            s.send(payload)
            s.settimeout(min(0.5, left))
            while True:
                if s.recv(65536) == payload:
                    say('answered', stage='request', local=local_of(s))
                    return
        except socket.timeout:
            continue
        except ConnectionRefusedError:
            say('refused', stage='request', local=local_of(s))
            return


parser = argparse.ArgumentParser()
parser.add_argument('mode', choices=['serve', 'tcp', 'udp', 'hold'])
parser.add_argument('--log')
parser.add_argument('--tcp')
parser.add_argument('--udp')
parser.add_argument('--address', default='0.0.0.0')
parser.add_argument('--to')
parser.add_argument('--port', type=int)
parser.add_argument('--source')
parser.add_argument('--timeout', type=float, default=3.0)
parser.add_argument('--lifetime', type=float, default=900.0)
a = parser.parse_args()
{'serve': serve, 'tcp': tcp, 'udp': udp_request, 'hold': hold}[a.mode](a)
