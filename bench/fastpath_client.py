#!/usr/bin/env python3
"""Traffic for bench/fastpath.ps1 (run as root inside the host namespace with `ip netns exec`; not on its own).

  --mode revoke    one TCP connection to --address:--port (an echo server) that sends 16-byte messages and waits for
                   each echo, back to back. After --warmup round trips it prints `ready LOCALPORT` and keeps going
                   until the connection fails; then it prints one JSON line: the CLOCK_MONOTONIC time (ns) at which it
                   saw the failure (reset_ns), the time its last echo came back (last_answer_ns), the error, and the
                   round trips made. The caller times its policy change on the same clock (.NET's Stopwatch is
                   CLOCK_MONOTONIC on Linux).
  --mode sessions  --count UDP request/reply exchanges with the echo server at --address:--port, each from its own
                   source port (--base-port + i): every exchange is a new session in nvr-dp (the request its first
                   packet, the reply the first packet the other way). Sent in windows of --window sockets (all
                   requests of a window, then their replies). Prints one JSON line: exchanges answered, seconds.
"""
import argparse, json, resource, select, socket, sys, time


def revoke(a):
    s = socket.create_connection((a.address, a.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(2)
    msg = b"fastpath-revoke\n"
    n, last, err = 0, 0, None
    while True:
        try:
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    raise ConnectionError("closed by the peer (FIN)")
                got += chunk
            last = time.monotonic_ns()
            n += 1
            if n == a.warmup:
                print(f"ready {s.getsockname()[1]}", flush=True)
        except (OSError, ConnectionError) as e:
            err = f"{type(e).__name__}: {e}"
            break
    reset = time.monotonic_ns()
    s.close()
    print(json.dumps({"reset_ns": reset, "last_answer_ns": last, "error": err, "round_trips": n}), flush=True)


def sessions(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, a.window + 64)), hard))
    answered, start = 0, time.monotonic()
    for w in range(0, a.count, a.window):
        socks = []
        for i in range(w, min(a.count, w + a.window)):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.bind(("", a.base_port + i))
            socks.append(s)
        for s in socks:
            s.sendto(b"fastpath-session", (a.address, a.port))
        pending, deadline = set(socks), time.monotonic() + 2
        while pending and time.monotonic() < deadline:
            ready, _, _ = select.select(list(pending), [], [], 0.2)
            for s in ready:
                s.recv(64)
                answered += 1
                pending.discard(s)
        for s in socks:
            s.close()
    print(json.dumps({"answered": answered, "seconds": time.monotonic() - start}), flush=True)


p = argparse.ArgumentParser()
p.add_argument("--mode", choices=["revoke", "sessions"], required=True)
p.add_argument("--address", required=True)
p.add_argument("--port", type=int, required=True)
p.add_argument("--warmup", type=int, default=200)
p.add_argument("--count", type=int, default=2000)
p.add_argument("--base-port", type=int, default=20000)
p.add_argument("--window", type=int, default=250)
a = p.parse_args()
revoke(a) if a.mode == "revoke" else sessions(a)
