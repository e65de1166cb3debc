"""`make bench`: run every bench/bench_*.py and print one table of ratios against the anchors.

Each bench script prints JSON lines on stdout, one per measured row:
{"bench": "model", "case": "lag n=10k", "uhi_s": 0.4, "anchor": "spreg ML_Lag", "anchor_s": 43.0,
 "target": ">=100x", "note": "..."}; ratio = anchor_s / uhi_s (or a given "ratio" for non-time rows).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
# the rows that need the 30 km demo city: the pipeline row writes and runs it once, then the
# compute and model rows reuse its demo and workspace (each wrote its own before: ~7 minutes)
CITY_ROWS = ("pipeline", "compute", "model")
CITY_ENV = ("BENCH_PIPELINE_DEMO", "BENCH_PIPELINE_KEEP", "BENCH_COMPUTE_FROM", "BENCH_MODEL_WORKSPACE")


def _order(scripts: list[Path]) -> list[Path]:
    """The pipeline row first, so the city rows after it can reuse its kept run."""
    return sorted(scripts, key=lambda p: (p.stem != "bench_pipeline", p.stem))


def _shared_city(names: set[str]) -> Path | None:
    """A folder for one 30 km demo run shared by the city rows, or None when fewer than two of
    them run or the user pointed any of them at a kept run already."""
    if len(names & set(CITY_ROWS)) < 2 or any(os.environ.get(k) for k in CITY_ENV):
        return None
    return Path(tempfile.mkdtemp(prefix="uhi-bench-city-"))


def main() -> int:
    rows = []
    only = set(sys.argv[1:])
    scripts = [s for s in _order(list(HERE.glob("bench_*.py")))
               if not only or s.stem.removeprefix("bench_") in only]
    city = _shared_city({s.stem.removeprefix("bench_") for s in scripts})
    env = dict(os.environ)
    if city is not None:
        env["BENCH_PIPELINE_KEEP"] = str(city)
    try:
        rows += _run(scripts, env, city)
    finally:
        if city is not None:
            shutil.rmtree(city, ignore_errors=True)
    _print(rows)
    return 0


def _run(scripts: list[Path], env: dict[str, str], city: Path | None) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        script_env = env
        if city is not None and name in CITY_ROWS and name != "pipeline" and (city / "ws" / "manifest.json").is_file():
            # the pipeline row's kept demo and workspace (read only for these rows)
            script_env = {**env, "BENCH_COMPUTE_FROM": str(city), "BENCH_MODEL_WORKSPACE": str(city / "ws"),
                          "BENCH_MODEL_CONFIG": str(city / "demo" / "config.yaml")}
        print(f"# running {script.name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=script_env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            rows.append({"bench": name, "case": "FAILED", "note": f"exit {proc.returncode}"})
            continue
        for line in proc.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def _print(rows: list[dict[str, object]]) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
