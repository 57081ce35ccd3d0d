#!/usr/bin/env python3
"""Once a second, until SIGTERM, one JSON line: what each host's link carried and where the
machine's CPU went. Run in the hub's network namespace (run.sh does), where every host's
bridge port is.

    sample.py STATE_DIR [NAME=PID ...]

Each line: {"t": seconds since the start,
            "busy": cores busy, the whole machine (from /proc/stat; 2.0 is all of 2 cores),
            "cpu": {group: cores}, for the processes STATE_DIR/pids lists ("NAME PID START")
                   and the NAME=PID given, grouped by NAME up to its first "-" or digit,
            "up": {host: MiB/s}, what the host sent (its bridge port received),
            "down": {host: MiB/s}, what it received}
Hosts come from STATE_DIR/links ("NAME NAMESPACE PORT IP").
"""
import json
import os
import re
import signal
import sys
import time

MIB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def machine():
    """(busy, total) jiffies of all cores."""
    f = open("/proc/stat").readline().split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


def ports():
    """{port: (rx_bytes, tx_bytes)} of this namespace's interfaces."""
    out = {}
    for line in open("/proc/net/dev").readlines()[2:]:
        name, rest = line.split(":", 1)
        f = rest.split()
        out[name.strip()] = (int(f[0]), int(f[8]))
    return out


def jiffies(pid):
    """utime + stime of every thread of pid so far, or None once it is gone."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    f = stat.rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def group(name):
    return re.split(r"[-0-9]", name, maxsplit=1)[0] or name


def main(argv):
    if not argv:
        sys.exit(__doc__)
    state = argv[0]
    hosts = {}
    for line in open(os.path.join(state, "links")):
        name, _ns, port, _ip = line.split()
        hosts[port] = name
    procs = []
    for line in open(os.path.join(state, "pids")):
        name, pid = line.split()[:2]
        procs.append((group(name), int(pid)))
    for a in argv[1:]:
        name, pid = a.split("=", 1)
        procs.append((group(name), int(pid)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    start = time.monotonic()
    last_t, last_m, last_p = start, machine(), ports()
    last_j = {pid: jiffies(pid) for _, pid in procs}
    while True:
        time.sleep(1)
        now, m, p = time.monotonic(), machine(), ports()
        dt = now - last_t
        cpu = {}
        for g, pid in procs:
            j = jiffies(pid)
            if j is not None and last_j.get(pid) is not None:
                cpu[g] = cpu.get(g, 0) + (j - last_j[pid]) / TICK / dt
            last_j[pid] = j
        up, down = {}, {}
        for port, name in hosts.items():
            if port in p and port in last_p:
                up[name] = (p[port][0] - last_p[port][0]) / MIB / dt
                down[name] = (p[port][1] - last_p[port][1]) / MIB / dt
        busy = (m[0] - last_m[0]) / max(1, m[1] - last_m[1]) * os.cpu_count()
        line = {"t": round(now - start, 1), "busy": round(busy, 2)}
        line["cpu"] = {g: round(c, 2) for g, c in sorted(cpu.items())}
        line["up"] = {h: round(v, 2) for h, v in up.items()}
        line["down"] = {h: round(v, 2) for h, v in down.items()}
        print(json.dumps(line), flush=True)
        last_t, last_m, last_p = now, m, p


if __name__ == "__main__":
    main(sys.argv[1:])
