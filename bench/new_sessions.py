#!/usr/bin/env python3
"""Frame sender for bench/policy.ps1 (run as root; not on its own): CPU of nvr-dp's packet thread per frame when
every frame opens a new session, and when all frames belong to one session.

The daemon (pid --pid, control socket --socket) serves vth in namespace --netns, whose veth peer is vbr, and knows
the seed's workload (ucmac 4e:65:75:56:00:b4). This script joins the namespace, sends 60-byte UDP frames
10.10.10.66 -> 10.10.10.88:5201 addressed to the ucmac into vbr (nvr-dp sees them as ingress traffic of the
workload, forwards them out of vth, and they come back on vbr, where they are read and discarded).

  --mode new   frame j of a batch has source port 1024 + j: every frame is a new session (a policy lookup)
  --mode same  every frame has source port 1024: one session, every frame after the first an established packet

Frames go out in batches of --batch; between batches (outside the measured windows) the daemon's sessions are
cleared with ctrl_clear_session, so every batch starts from an empty table. Per batch the packet thread's CPU is
read before and after (schedstat's ns on a CPU, and utime+stime), and the daemon's counters (forwarded, ring drops,
sessions created). Prints one JSON object with the sums over the measured batches (after --warmup unmeasured ones).
"""
import argparse, ctypes, json, os, socket, struct, time, uuid

UC, HOST = bytes.fromhex("4e65755600b4"), bytes.fromhex("06829c025491")
CLK = os.sysconf("SC_CLK_TCK")


def checksum(b):
    s = sum(struct.unpack(f">{len(b) // 2}H", b))
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def frame(sport):
    payload = bytes(18)
    ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0x4000, 64, 17, 0,
                               bytes([10, 10, 10, 66]), bytes([10, 10, 10, 88])))
    ip[10:12] = struct.pack(">H", checksum(bytes(ip)))
    udp = struct.pack(">HHHH", sport, 5201, 8 + len(payload), 0)
    return UC + HOST + b"\x08\x00" + bytes(ip) + udp + payload  # to the ucmac: ingress, the workload is the server


def packet_thread(pid):
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().startswith("nvr-dp packets"):
                return tid
    raise SystemExit("nvr-dp has no packet thread")


def thread_cpu(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        on_cpu_ns = int(f.read().split()[0])
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return on_cpu_ns, int(fields[11]), int(fields[12])


class Control:
    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind("\0nvb-sessions-" + uuid.uuid4().hex)
        self.s.settimeout(10)
        self.seq = 1000

    def send(self, message):
        self.s.sendto(json.dumps(message).encode(), self.path)

    def receive(self, kind):
        while True:
            d = self.s.recv(65536)
            if d[0] == kind:
                return d

    def sync(self):
        """Keep-alive round trip: every earlier message of ours has been applied."""
        self.seq += 1
        self.send({"ctrl_keep_alive": {"seq_num": self.seq}})
        while struct.unpack(">I", self.receive(10)[4:8])[0] != self.seq:
            pass

    def counters(self):
        self.send({"ctrl_counter_device": {}})
        v = struct.unpack(">19Q", self.receive(4)[4:4 + 19 * 8])
        return {"rx": v[0], "rx_drops": v[1], "tx": v[2], "sessions": v[18]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--netns", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--mode", choices=("new", "same"), required=True)
    ap.add_argument("--batch", type=int, default=50000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    if not 1 <= args.batch <= 60000:
        raise SystemExit("--batch: 1 to 60000 (distinct source ports, within the session table)")

    control = Control(args.socket)
    tid = packet_thread(args.pid)
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{args.netns}", os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        raise SystemExit(f"setns: errno {ctypes.get_errno()}")
    os.close(fd)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
    s.bind(("vbr", 3))
    s.setblocking(False)
    frames = [frame(1024 + j) for j in range(args.batch)] if args.mode == "new" else [frame(1024)] * args.batch

    def drain():
        n = 0
        while True:
            try:
                s.recv(65535)
                n += 1
            except BlockingIOError:
                return n

    total = {"frames": 0, "received": 0, "forwarded": 0, "rx_drops": 0, "sessions": 0, "on_cpu_ns": 0, "ticks": 0,
             "utime_ticks": 0, "stime_ticks": 0, "wall_s": 0.0}
    for b in range(args.warmup + args.batches):
        control.send({"ctrl_clear_session": {"filter_id": 0}})
        control.sync()
        time.sleep(0.2)
        drain()
        c0 = control.counters()
        cpu0 = thread_cpu(args.pid, tid)
        t0 = time.monotonic()
        received = 0
        for j, f in enumerate(frames):
            s.send(f)
            if j % 64 == 63:
                received += drain()
        # until every frame is back, or none came for 0.5 s (ring drops); the counters are not polled meanwhile,
        # since the daemon reads them on the packet thread, whose CPU is being measured
        quiet = time.monotonic()
        while received < args.batch and time.monotonic() - quiet < 0.5:
            n = drain()
            if n:
                received += n
                quiet = time.monotonic()
            else:
                time.sleep(0.001)
        cpu1 = thread_cpu(args.pid, tid)
        wall = time.monotonic() - t0
        c1 = control.counters()
        if b < args.warmup:
            time.sleep(1)  # lets the runtime finish compiling what the warm-up made hot
            continue
        total["frames"] += args.batch
        total["received"] += received
        total["forwarded"] += c1["tx"] - c0["tx"]
        total["rx_drops"] += c1["rx_drops"] - c0["rx_drops"]
        total["sessions"] += c1["sessions"] - c0["sessions"]
        total["on_cpu_ns"] += cpu1[0] - cpu0[0]
        total["utime_ticks"] += cpu1[1] - cpu0[1]
        total["stime_ticks"] += cpu1[2] - cpu0[2]
        total["wall_s"] += wall
    control.send({"ctrl_clear_session": {"filter_id": 0}})
    control.sync()
    total["ticks"] = total["utime_ticks"] + total["stime_ticks"]
    total["clock_ticks_per_s"] = CLK
    print(json.dumps(total))


if __name__ == "__main__":
    main()
