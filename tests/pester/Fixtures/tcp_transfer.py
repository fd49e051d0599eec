# A TCP transfer with its content checked end to end, for the datapath tests (no nc or socat on the machine).
#   python3 tcp_transfer.py recv ADDRESS PORT              -> listens, prints "listening", receives one connection
#                                                            until EOF, prints "BYTES SHA256"
#   python3 tcp_transfer.py send ADDRESS PORT BYTES SEED   -> connects (retrying while refused), sends BYTES bytes of
#                                                            a pseudo-random stream from SEED, prints "BYTES SHA256"
# Every wait is bounded (60 s), so a blackholed path ends in an error instead of a hang.
import hashlib
import random
import socket
import sys
import time

mode, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
digest = hashlib.sha256()
total = 0
if mode == 'recv':
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(1)
    server.settimeout(60)
    print('listening', flush=True)
    conn, _ = server.accept()
    conn.settimeout(60)
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    conn.close()
    server.close()
else:
    size, seed = int(sys.argv[4]), int(sys.argv[5])
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = socket.create_connection((address, port), timeout=5)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    conn.settimeout(60)
    rng = random.Random(seed)
    while total < size:
        chunk = rng.randbytes(min(1 << 20, size - total))
        conn.sendall(chunk)
        digest.update(chunk)
        total += len(chunk)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)  # wait for the receiver to close: everything was delivered
    conn.close()
print('%d %s' % (total, digest.hexdigest()), flush=True)
