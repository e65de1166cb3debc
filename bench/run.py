"""`make bench`: run every bench/bench_*.py and print one table of ratios against the anchors.

Each bench script prints JSON lines on stdout, one per measured row:
{"bench": "model", "case": "lag n=10k", "uhi_s": 0.4, "anchor": "spreg ML_Lag", "anchor_s": 43.0,
 "target": ">=100x", "note": "..."}; ratio = anchor_s / uhi_s (or a given "ratio" for non-time rows).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    rows = []
    only = set(sys.argv[1:])
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        print(f"# running {script.name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            rows.append({"bench": name, "case": "FAILED", "note": f"exit {proc.returncode}"})
            continue
        for line in proc.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    (HERE.parent / "build").mkdir(exist_ok=True)
    (HERE.parent / "build" / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    header = f"{'bench':<10} {'case':<42} {'uhi s':>9} {'anchor':<28} {'anchor s':>9} {'ratio':>9} {'target':<10} note"
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = r.get("ratio")
        uhi_s, anchor_s = r.get("uhi_s"), r.get("anchor_s")
        if ratio is None and isinstance(uhi_s, (int, float)) and isinstance(anchor_s, (int, float)) and uhi_s > 0:
            ratio = anchor_s / uhi_s
        fmt = lambda v: f"{v:9.3f}" if isinstance(v, (int, float)) else f"{str(v or ''):>9}"  # noqa: E731
        print(
            f"{r.get('bench',''):<10} {r.get('case',''):<42} {fmt(r.get('uhi_s'))} "
            f"{str(r.get('anchor','')):<28} {fmt(r.get('anchor_s'))} "
            f"{(f'{ratio:8.1f}x' if isinstance(ratio, (int, float)) else ''):>9} "
            f"{str(r.get('target','')):<10} {r.get('note','')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
