#!/usr/bin/env python3
"""The figures of one run.sh run: the scaling curve of each path (aggregate MiB/s against
concurrent writers, per repetition and the median, and direct / server per repetition), then
what the links carried and where the CPU went, second by second, grouped by how many mount
hosts were writing in that second (sending at least 0.25 MiB/s and four times what they
received: a reader's acknowledgements never count).

    report.py OUT_DIR [--rate RATE]
"""
import json
import statistics
import sys
from pathlib import Path

PATHS = ("server", "direct")


def curves(out):
    """{path: {rep: {writers: MiB/s}}}; exits if any workload read back wrong data."""
    runs = {}
    for f in sorted(Path(out).glob("*.*.json")):
        path, rep = f.stem.rsplit(".", 1)
        if not f.read_text().strip():
            print(f"{f}: empty (an interrupted repetition): left out", file=sys.stderr)
            continue
        outcomes = json.loads(f.read_text())["outcomes"]
        wrong = [o["workload"] for o in outcomes if o.get("wrong")]
        if wrong:
            sys.exit(f"{f}: wrong data in {', '.join(wrong)}")
        points = {o["writers"]: o["value"] for o in outcomes if o.get("writers")}
        runs.setdefault(path, {})[int(rep)] = points
    return runs


def cell(vals):
    if not vals:
        return "-"
    return "/".join(f"{v:.1f}" for v in vals) + f" [{statistics.median(vals):.1f}]"


def print_curves(runs):
    paths = [p for p in PATHS if p in runs]
    counts = sorted({k for p in paths for r in runs[p].values() for k in r})
    print("Aggregate MiB/s, per repetition [median]")
    head = f"{'writers':<8}" + "".join(f"{p:>28}" for p in paths)
    both = len(paths) == 2
    print(head + (f"{'direct / server':>28}" if both else ""))
    for k in counts:
        line = f"{k:<8}"
        for p in paths:
            line += f"{cell([runs[p][r][k] for r in sorted(runs[p]) if k in runs[p][r]]):>28}"
        if both:
            reps = sorted(set(runs["direct"]) & set(runs["server"]))
            rs = [runs["direct"][r][k] / runs["server"][r][k] for r in reps
                  if k in runs["direct"][r] and k in runs["server"][r]]
            ratios = " ".join(f"{x:.2f}" for x in rs)
            line += f"{ratios + (f' [{statistics.median(rs):.2f}]' if rs else ''):>28}"
        print(line)


def writing(s, host):
    up, down = s["up"].get(host, 0), s["down"].get(host, 0)
    return up >= 0.25 and up > 4 * down


def phases(out, path):
    """{writers: [samples]} over every repetition of path."""
    got = {}
    for f in sorted(Path(out).glob(f"{path}.*.samples")):
        for line in f.read_text().splitlines():
            s = json.loads(line)
            k = sum(1 for h in s["up"] if h != "srv" and writing(s, h))
            if k:
                got.setdefault(k, []).append(s)
    return got


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def print_phases(out, paths):
    print("\nWhile k mount hosts wrote (means over those seconds, every repetition):")
    print("  MiB/s: the mounts' uplinks together, and the server host's link in / out;")
    print("  CPU in cores (2 in all): the machine busy, of which ceph (mon+osd), serve, the")
    print("  mounts and bench (the writers)")
    print(f"{'path':<8}{'k':>3}{'secs':>6}{'mounts up':>11}{'srv in':>8}{'srv out':>8}"
          f"{'busy':>7}{'ceph':>6}{'serve':>7}{'mounts':>8}{'bench':>7}")
    for p in paths:
        for k, ss in sorted(phases(out, p).items()):
            ups = [sum(v for h, v in s["up"].items() if h != "srv") for s in ss]
            cpu = lambda g: mean([s["cpu"].get(g, 0) for s in ss])
            print(f"{p:<8}{k:>3}{len(ss):>6}{mean(ups):>11.1f}"
                  f"{mean([s['down'].get('srv', 0) for s in ss]):>8.1f}"
                  f"{mean([s['up'].get('srv', 0) for s in ss]):>8.1f}"
                  f"{mean([s['busy'] for s in ss]):>7.2f}{cpu('ceph'):>6.2f}{cpu('serve'):>7.2f}"
                  f"{cpu('mount'):>8.2f}{cpu('bench'):>7.2f}")


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    out = argv[0]
    runs = curves(out)
    if not runs:
        sys.exit(f"no PATH.REP.json in {out}")
    if argv[1:2] == ["--rate"] and len(argv) > 2:
        print(f"Each host's link: {argv[2]} each way")
    print_curves(runs)
    print_phases(out, [p for p in PATHS if p in runs])


if __name__ == "__main__":
    main(sys.argv[1:])
