#!/usr/bin/env python3
"""The figures of one run.sh run side by side: each workload's value per system and
repetition, then the medians, and the ratios of the systems named after `--against`
(per repetition: repetition k of one over repetition k of the other, which ran minutes apart
at most, so the machine's moods cancel out).

    ratios.py OUT_DIR [--against A:B ...]     e.g. ratios.py /tmp/peers --against rwxfs-direct:rwxfs
"""
import json
import statistics
import sys
from pathlib import Path


def load(out):
    """{system: {rep: {workload: value}}}, from OUT_DIR/NAME.REP.json."""
    runs = {}
    for f in sorted(Path(out).glob("*.*.json")):
        name, rep = f.stem.rsplit(".", 1)
        outcomes = json.loads(f.read_text())["outcomes"]
        wrong = [o["workload"] for o in outcomes if o.get("wrong")]
        if wrong:
            sys.exit(f"{f}: wrong data in {', '.join(wrong)}")
        runs.setdefault(name, {})[int(rep)] = {o["workload"]: o["value"] for o in outcomes}
    return runs


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    runs = load(argv[0])
    pairs = [a.split(":", 1) for a in argv[2:]] if argv[1:2] == ["--against"] else []
    for a, b in pairs:
        for s in (a, b):
            if s not in runs:
                sys.exit(f"no system {s} in {argv[0]} (there are: {', '.join(runs)})")
    workloads = list(next(iter(next(iter(runs.values())).values())))
    systems = list(runs)
    print("MiB/s per repetition [median]")
    print(f"{'workload':<40}" + "".join(f"{s:>26}" for s in systems))
    for w in workloads:
        cells = []
        for s in systems:
            vals = [runs[s][r].get(w) for r in sorted(runs[s])]
            vals = [v for v in vals if v is not None]
            cell = "/".join(f"{v:.0f}" for v in vals) + f" [{statistics.median(vals):.0f}]"
            cells.append(f"{cell:>26}")
        print(f"{w:<40}" + "".join(cells))
    for a, b in pairs:
        print(f"\n{a} / {b}, per repetition [median]")
        for w in workloads:
            reps = sorted(set(runs[a]) & set(runs[b]))
            rs = [runs[a][r][w] / runs[b][r][w] for r in reps if w in runs[a][r] and w in runs[b][r]]
            line = " ".join(f"{x:.2f}" for x in rs)
            print(f"  {w:<40} {line}  [{statistics.median(rs):.2f}]")


if __name__ == "__main__":
    main(sys.argv[1:])
