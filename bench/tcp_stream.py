"""Benchmark helper (not a test): an established TCP stream kept busy while a container is taken over and given back.

  recv PORT        accept one connection, read until the peer shuts down, then print
                   "received BYTES maxgap_ms MS error ERR" (the longest time between two reads) and close.
  send ADDR PORT   connect, write 1 KiB every 5 ms until SIGINT or SIGTERM, read the socket's retransmissions from
                   `ss -ti`, shut down, wait for the peer to close, then print "sent BYTES retrans N error ERR".
"""
import re
import signal
import socket
import subprocess
import sys
import time


def recv(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(1)
    print("listening", flush=True)
    c, _ = ls.accept()
    total, last, gap, err = 0, None, 0.0, "none"
    try:
        while True:
            b = c.recv(65536)
            now = time.monotonic()
            if not b:
                break
            if last is not None:
                gap = max(gap, now - last)
            last = now
            total += len(b)
    except OSError as e:
        err = e.strerror or str(e)
    print(f"received {total} maxgap_ms {gap * 1000:.1f} error {err.replace(' ', '_')}", flush=True)
    c.close()


def send(addr, port):
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    deadline = time.monotonic() + 5
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    s.settimeout(None)
    print("connected", flush=True)
    chunk, sent, err = b"x" * 1024, 0, "none"
    due = time.monotonic()
    while not stop:
        try:
            s.sendall(chunk)
            sent += len(chunk)
        except OSError as e:
            err = e.strerror or str(e)
            break
        due += 0.005
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    info = subprocess.run(["ss", "-tin", "dst", addr, "dport", "=", f":{port}"], capture_output=True, text=True).stdout
    m = re.search(r"\bretrans:\d+/(\d+)", info)
    retrans = int(m.group(1)) if m else 0
    if err == "none":
        try:
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            while s.recv(4096):
                pass
        except OSError as e:
            err = e.strerror or str(e)
    s.close()
    print(f"sent {sent} retrans {retrans} error {err.replace(' ', '_')}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(int(sys.argv[2]))
    else:
        send(sys.argv[2], int(sys.argv[3]))
