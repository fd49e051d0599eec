#!/usr/bin/env python3
"""Wake-up cost of this machine, for reading the datapath benchmark's ping figures (bench/datapath.ps1).

Two processes bounce one byte over a pair of pipes; each round trip is two sleeps and two wake-ups. Measured with
both pinned to one CPU (a wake-up is a context switch there) and with one on each CPU (a wake-up reaches an idle or
busy other CPU: an inter-processor interrupt, which in a VM is a trip through the hypervisor). No privileges needed,
nothing is left behind.

usage: wakeup_latency.py [--rounds N] [--repeat R]
"""
import argparse
import os
import statistics
import time


def round_trip_us(cpu_a, cpu_b, rounds):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.sched_setaffinity(0, {cpu_b})
            for _ in range(rounds):
                os.read(r1, 1)
                os.write(w2, b"x")
        finally:
            os._exit(0)
    try:
        os.sched_setaffinity(0, {cpu_a})
        start = time.perf_counter()
        for _ in range(rounds):
            os.write(w1, b"x")
            os.read(r2, 1)
        return (time.perf_counter() - start) / rounds * 1e6
    finally:
        os.waitpid(pid, 0)
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    original = set(cpus)
    pairs = [(cpus[0], cpus[0])] + ([(cpus[0], cpus[1])] if len(cpus) > 1 else [])
    try:
        for a, b in pairs:
            runs = [round_trip_us(a, b, args.rounds) for _ in range(args.repeat)]
            where = "one CPU" if a == b else "two CPUs"
            print(f"pipe round trip (2 wake-ups) on {where} (CPU {a} <-> CPU {b}): "
                  f"median {statistics.median(runs):.1f} us, runs {', '.join(f'{r:.1f}' for r in runs)}")
    finally:
        os.sched_setaffinity(0, original)
    with open("/proc/loadavg") as f:
        print("load average:", " ".join(f.read().split()[:3]))


if __name__ == "__main__":
    main()
