#!/usr/bin/env python3
"""Datapath CPU per forwarded frame of nvr-dp (run as root from the worktree after a build).

Creates a namespace with a veth pair vbr<->vth, starts bin/nvr-dp.dll on vth, configures it with the seed's
messages (tap off), sends N small frames with the workload's NeuV alias as source MAC into vbr and reads them back
there. Reports the packet thread's CPU time (utime+stime from /proc) divided by the frames it forwarded, plus the
machine. Everything it creates is removed at the end.

usage: dp_bench.py [--frames N] [--size BYTES]
"""
import argparse, json, os, platform, signal, socket, struct, subprocess, sys, time, uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
UC, HOST = bytes.fromhex("4e65755600b4"), bytes.fromhex("06829c025491")


def frame(size, i):
    ip_len = size - 14
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 17, 0, bytes([10, 10, 10, 88]), bytes([10, 10, 10, 66]))
    udp = struct.pack(">HHHH", 40000 + (i % 64), 9, ip_len - 20, 0)
    return HOST + UC + b"\x08\x00" + ip + udp + bytes(ip_len - 28)


def thread_cpu(pid, name):
    """(user, system) CPU seconds of the threads whose name starts with name."""
    user = system = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if not f.read().startswith(name):
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11]) / os.sysconf("SC_CLK_TCK")
            system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
        except FileNotFoundError:
            pass
    return user, system


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=400000)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    ns = "nvrdp-bench-" + uuid.uuid4().hex[:8]
    sock_path = f"/tmp/nvr-bench-{uuid.uuid4().hex[:8]}.sock"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    daemon = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "vbr", "type", "veth", "peer", "name", "vth"], check=True)
        for l in ("vbr", "vth"):
            subprocess.run(["ip", "-n", ns, "link", "set", l, "up"], check=True)
        daemon = subprocess.Popen(["dotnet", os.path.join(ROOT, "bin", "nvr-dp.dll"), "--netns", ns, "--socket", sock_path,
                                   "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            if os.path.exists(sock_path):
                break
            time.sleep(0.1)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        c.bind("\0nvr-bench-" + uuid.uuid4().hex)
        c.settimeout(10)
        for m in ({"ctrl_add_srvc_port": {"iface": "vth"}},
                  {"ctrl_add_mac": {"iface": "vth", "mac": "1a:27:f3:87:3a:27", "ucmac": "4e:65:75:56:00:b4"}},
                  {"ctrl_cfg_mac": {"tap": False, "macs": ["1a:27:f3:87:3a:27"]}},
                  {"ctrl_keep_alive": {"seq_num": 1}}):
            c.sendto(json.dumps(m).encode(), sock_path)
        c.recv(64)

        setns = __import__("ctypes").CDLL("libc.so.6", use_errno=True).setns
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        setns(fd, 0x40000000)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
        s.bind(("vbr", 3))
        s.setblocking(False)
        frames = [frame(args.size, i) for i in range(64)]
        for f in frames:  # warm-up
            s.send(f)
        time.sleep(0.5)
        while True:
            try:
                s.recv(65535)
            except BlockingIOError:
                break
        cpu0 = thread_cpu(daemon.pid, "nvr-dp packets")
        received = 0
        t0 = time.time()
        for i in range(args.frames):
            s.send(frames[i & 63])
            if i % 64 == 63:
                while True:
                    try:
                        s.recv(65535)
                        received += 1
                    except BlockingIOError:
                        break
        deadline = time.time() + 5
        while received < args.frames and time.time() < deadline:
            try:
                s.recv(65535)
                received += 1
            except BlockingIOError:
                time.sleep(0.001)
        elapsed = time.time() - t0
        cpu1 = thread_cpu(daemon.pid, "nvr-dp packets")
        user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        cpu = user + system
        cpus = os.cpu_count()
        model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        print(f"machine: {model}, {cpus} CPUs, kernel {platform.release()}")
        print(f"frames: {args.frames} x {args.size} bytes sent, {received} received back in {elapsed:.2f} s "
              f"({received / elapsed / 1000:.0f} kpps, limited by the Python sender)")
        print(f"packet thread CPU: {cpu:.2f} s = {cpu / max(received, 1) * 1e6:.2f} us per forwarded frame "
              f"({user / max(received, 1) * 1e6:.2f} user + {system / max(received, 1) * 1e6:.2f} kernel)")
        c.sendto(json.dumps({"ctrl_counter_device": {}}).encode(), sock_path)
        counters = struct.unpack(">6Q", c.recv(1024)[4:4 + 48])
        print("dp counters: rx %d, rx drops %d, tx %d, tx drops %d, errors %d, no workload %d" % counters)
    finally:
        if daemon:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    main()
