"""Issue 13 in one run: every figure of "Speed at real size", side by side, against its target.

    python benchmarks/issue13.py [--quick] [--memory-folder /work/bench-cache/scale/p100k] [--out DIR]

Runs, one after another on this machine (so run it idle; ~20 minutes, ~8 with ``--quick``):

- ``scale.py --sizes 100k,1M --skip nochange,add,disk,search``: the cold ``imgret query`` against the
  bare imports of its dependencies, its RSS and the time with the library's files evicted (the 10k
  and 100k libraries are made by real ``imgret index`` runs, the 1M one by the documented shortcut:
  see scale.py);
- ``reindex.py --sizes 10k,100k --runs 5`` and ``--sizes 1M --runs 1`` (not with ``--quick``): the
  no-change re-index against the bare walk beside it, and adding 100 pictures;
- ``throughput.py``'s comparison against the decode-only limit (12 MP JPEG, 4K PNG, small JPEGs) and
  the peak memory of a first index of 10,000 pictures (and of ``--memory-folder``, e.g. the 100k
  folder: ~4 more minutes);

then prints one table: each figure, its target, and whether it is met. The scripts' own output is kept
in ``--out`` (JSON lines and a markdown table) for the details.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable


def lines(path: Path) -> list[dict]:
    """The JSON lines a benchmark script wrote."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def run(script: str, args: list[str], out: Path) -> list[dict]:
    """Run ``benchmarks/script`` with ``args``; its stdout to ``out`` (JSON lines), its log to stderr."""
    print(f"# {time.strftime('%H:%M:%S')} {script} {' '.join(args)}", file=sys.stderr, flush=True)
    with open(out, "w") as fh:
        subprocess.run([PY, str(HERE / script), *args], stdout=fh, check=True)
    return lines(out)


def pick(rows: list[dict], what: str, size: str, arm: str | None = None) -> dict:
    """The row of ``what`` at ``size`` (and ``arm``: None is the default arm)."""
    for r in rows:
        if r.get("what") == what and r.get("size") == size and r.get("arm") == arm:
            return r
    return {}


def throughput(out: Path, quick: bool, memory_folder: str | None) -> tuple[dict, dict]:
    """Ratios against the decode-only limit by kind, and peak memory by library size (MB)."""
    sys.path.insert(0, str(HERE))
    import throughput as tp

    from imgret.runtime.batching import default_workers

    workers, ratios, memory = default_workers(), {}, {}
    counts = {"jpeg12mp": 120, "png4k": 80, "small": 600}
    for kind, count in counts.items():
        r = tp.compare(kind, count, workers, None, 2 if quick else 3)
        ratios[kind] = r
        print(f"# {time.strftime('%H:%M:%S')} throughput {kind}: {r['ratio']:.2f}x", file=sys.stderr, flush=True)
    memory["10,000"] = tp.peak_memory(10_000, workers)
    if memory_folder:
        memory[memory_folder] = tp.peak_memory(0, workers, memory_folder)
    (out / "throughput.json").write_text(json.dumps({"ratios": ratios, "memory": memory}, indent=1, default=str))
    return ratios, memory


def table(query: list[dict], reindex: list[dict], ratios: dict, memory: dict) -> list[tuple]:
    """``(figure, value, target, met)`` rows."""
    rows = []
    for size in ("100k", "1M"):
        nc = pick(reindex, "no-change re-index", size)
        if nc:
            rows.append((f"no-change re-index {size}, whole process", f"{nc['index_process_s']:.2f} s",
                         "≤ 1.5 s" if size == "100k" else "≤ 15 s",
                         nc["index_process_s"] <= (1.5 if size == "100k" else 15)))
            rows.append(("... in the run / bare walk beside it", f"{nc['index_in_run_s']:.2f} / "
                         f"{nc['walk_beside_s']:.2f} s ({nc['ratio_in_run']:.2f}x)", "≤ 1.3x", nc["ratio_in_run"] <= 1.3))
        add = pick(reindex, "add 100", size)
        if add and size == "1M":
            rows.append(("adding 100 pictures at 1M / (no-change + embedding them)", f"{add['ratio']:.2f}x", "≤ 1.3x",
                         add["ratio"] <= 1.3))
    q100, q1m = pick(query, "cold query (new process)", "100k"), pick(query, "cold query (new process)", "1M")
    if q100:
        rows.append(("cold query 100k / bare imports of its dependencies", f"{q100['query_s']:.3f} / "
                     f"{q100['bare_import_s']:.3f} s ({q100['ratio']:.2f}x)", "≤ 1.3x", q100["ratio"] <= 1.3))
    if q1m:
        rows.append(("cold query 1M", f"{q1m['query_s']:.3f} s", "≤ 0.40 s", q1m["query_s"] <= 0.40))
        rows.append(("cold query 1M, peak RSS", f"{q1m['rss_mb']} MB", "≤ 300 MB", q1m["rss_mb"] <= 300))
        rows.append(("cold query 1M, library evicted", f"{q1m['library_evicted_s']:.3f} s", "≤ 1.5 s",
                     q1m["library_evicted_s"] <= 1.5))
    for kind, target in (("jpeg12mp", 0.9), ("png4k", 0.9), ("small", 0.8)):
        if kind in ratios:
            r = ratios[kind]
            pairs = ", ".join(f"{x:.2f}" for x in r["pair_ratios"])
            rows.append((f"indexing {kind} / decode-only", f"{r['ratio']:.2f}x (pairs {pairs})", f"≥ {target}x",
                         r["ratio"] >= target))
    for size, m in memory.items():
        rows.append((f"first index {size}: peak RSS of all processes", f"{m['peak_mb']:.0f} MB", "≤ 300 MB",
                     m["peak_mb"] <= 300))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="no 1M re-index, 2 repeats of each throughput pair")
    ap.add_argument("--memory-folder", default=None, help="also the peak memory of a first index of this folder")
    ap.add_argument("--out", type=Path, default=Path("/tmp/imgret-issue13"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()
    query = run("scale.py", ["--sizes", "100k,1M", "--skip", "nochange,add,disk,search"], args.out / "scale.jsonl")
    reindex = run("reindex.py", ["--sizes", "10k,100k", "--runs", "5"], args.out / "reindex.jsonl")
    if not args.quick:
        reindex += run("reindex.py", ["--sizes", "1M", "--runs", "1"], args.out / "reindex1m.jsonl")
    ratios, memory = throughput(args.out, args.quick, args.memory_folder)
    print(f"# issue 13, {started} to {time.strftime('%H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"load at start {load[0]:.1f}; details in {args.out}")
    print("| figure | measured | target | |")
    print("|---|---|---|---|")
    for figure, value, target, met in table(query, reindex, ratios, memory):
        print(f"| {figure} | {value} | {target} | {'met' if met else '**not met**'} |")


if __name__ == "__main__":
    main()
