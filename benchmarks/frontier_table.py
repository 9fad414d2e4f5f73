"""The student frontier's result file, from a frontier run's leaderboard (presets/frontier.yaml).

    python benchmarks/frontier_table.py reports/leaderboard.json --wall-seconds 5400 \
        --out benchmarks/results/<date>-frontier          # writes <out>.json (the extract) and <out>.md
    python benchmarks/frontier_table.py --render benchmarks/results/<date>-frontier.json   # the .md again

The extract keeps what the tables need (rows' seed means and sds, speed-ups, published figures, the twin and
ablation tables, the CPU); the Markdown is rendered from the extract alone, so the README's tables
(benchmarks/readme_tables.py) come from a committed file and a test checks that they still do.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TARGETS = [(97.0, 3.0), (93.0, 8.0)]  # (% of the teacher's GLUE score, batch-1 speed-up), issue 14
TEACHER_FLOOR = 63.4  # the quick preset's teacher GLUE score before this work (dev, x100)


def extract(doc: dict, wall_seconds: float | None, jobs: int | None, command: str | None = None) -> dict:
    """The frontier's figures from a leaderboard.json."""
    rows = []
    for r in doc["rows"]:
        seeds = r.get("seeds") or {}
        pub = r.get("published") or {}
        rows.append({
            "model": r["model"], "method": r.get("method"), "is_teacher": r.get("is_teacher", False),
            "num_layers": r.get("num_layers"), "parameters": r.get("parameters"),
            "latency_b1_ms": ((r.get("latency_ms") or {}).get("batch_1") or {}).get("median"),
            "speedup_b1": (r.get("speedup") or {}).get("batch_1"),
            "speedup_b32": (r.get("speedup") or {}).get("batch_32"),
            "glue": r.get("glue_score"), "sd": seeds.get("sd"), "n_runs": seeds.get("n_runs", 1),
            "pct": r.get("pct_of_teacher"), "pct_sd": seeds.get("pct_of_teacher_sd"),
            "tasks": r.get("task_scores"), "task_sd": seeds.get("task_sd") or {},
            "published": {k: pub.get(k) for k in ("id", "citation", "pct_of_teacher", "speedup", "split",
                                                   "hardware")} if pub else None,
        })
    prov = doc.get("provenance") or {}
    return {"tasks": doc["tasks"], "split": doc.get("split"), "rows": rows, "twins": doc.get("twins") or [],
            "ablation": doc.get("seed_ablation"), "device": prov.get("device"),
            "instruction_sets": prov.get("instruction_sets"), "wall_seconds": wall_seconds, "jobs": jobs,
            "command": command,
            "generated_at": doc.get("generated_at")}


def _x100(v, sd=None) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}" + (f" ± {100 * sd:.1f}" if sd is not None else "")


def _pct(v, sd=None) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}%" + (f" ± {sd:.1f}" if sd is not None else "")


def _x(v) -> str:
    return "–" if v is None else f"{v:.2f}x"


def _targets(ex: dict) -> list[str]:
    students = [r for r in ex["rows"] if not r["is_teacher"]]
    lines = []
    for pct, speed in TARGETS:
        hit = [r for r in students if (r["pct"] or 0) >= pct and (r["speedup_b1"] or 0) >= speed]
        fast = [r for r in students if (r["speedup_b1"] or 0) >= speed]
        best = max(fast, key=lambda r: r["pct"] or 0, default=None)
        if hit:
            names = ", ".join(f"{r['model']} ({_pct(r['pct'])} at {_x(r['speedup_b1'])})" for r in hit)
            lines.append(f"- ≥ {pct:g}% of the teacher at ≥ {speed:g}x (batch 1): **met** by {names}.")
        elif best:
            lines.append(f"- ≥ {pct:g}% of the teacher at ≥ {speed:g}x (batch 1): **not met**; the best at ≥ {speed:g}x "
                         f"is {best['model']}, {_pct(best['pct'], best['pct_sd'])} at {_x(best['speedup_b1'])}.")
        else:
            top = max(students, key=lambda r: r["speedup_b1"] or 0, default=None)
            lines.append(f"- ≥ {pct:g}% of the teacher at ≥ {speed:g}x (batch 1): **not met**; no student reaches "
                         f"{speed:g}x (the fastest: {top['model']} at {_x(top['speedup_b1'])})." if top else "")
    for t in ex["twins"]:
        lines.append(f"- {t['kd']} against its twin {t['twin']}: Δ {_x100(t['delta'])} points, seeds' spread "
                     f"{_x100(t['spread'])}: **{t['verdict_text']}**.")
    teacher = next((r for r in ex["rows"] if r["is_teacher"]), None)
    if teacher and teacher["glue"] is not None:
        ok = 100 * teacher["glue"] >= TEACHER_FLOOR
        lines.append(f"- teacher GLUE (dev) ≥ {TEACHER_FLOOR}: {_x100(teacher['glue'])}, **{'met' if ok else 'not met'}**.")
    return lines


def render(ex: dict) -> str:
    tasks = ex["tasks"]
    dev = ex.get("device") or {}
    cpu = f"{dev.get('name') or 'CPU'}, {dev.get('threads') or '?'} threads" + (
        f" (flags: {', '.join(dev['cpu_flags'])})" if dev.get("cpu_flags") else "")
    wall = ex.get("wall_seconds")
    out = [f"# Student frontier ({ex.get('generated_at', '')[:10]}, presets/quick.yaml + presets/frontier.yaml)", "",
           f"Machine: {cpu}. Split: {ex.get('split') or 'dev'} (GLUE dev sets, x100). "
           + (f"Wall time: {wall / 60:.1f} min for {ex.get('jobs')} jobs (`{ex.get('command') or 'snakemake --cores 2'}`)."
              if wall else ""),
           "", "| row | method | layers | parameters | batch-1 ms | speed-up b1 / b32 | GLUE (mean ± sd) | seeds "
           "| % of teacher | published: % of teacher · speed-up |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ex["rows"]:
        pub = r["published"]
        pub_text = (f"{_pct(pub['pct_of_teacher'])} · {_x(pub['speedup'])} ({pub['citation']}, {pub['split']})"
                    if pub else "–")
        out.append(f"| {r['model']} | {r['method']} | {r['num_layers']} | {r['parameters'] / 1e6:.1f}M | "
                   f"{r['latency_b1_ms']:.1f} | {_x(r['speedup_b1'])} / {_x(r['speedup_b32'])} | "
                   f"{_x100(r['glue'], r['sd'])} | {r['n_runs']} | {_pct(r['pct'], r['pct_sd'])} | {pub_text} |")
    out += ["", "Per task (mean ± sd over seeds):", "", "| row | " + " | ".join(tasks) + " |",
            "|---|" + "---|" * len(tasks)]
    for r in ex["rows"]:
        cells = [_x100((r["tasks"] or {}).get(t), r["task_sd"].get(t)) for t in tasks]
        out.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    if ex.get("ablation"):
        a = ex["ablation"]
        out += ["", f"{a['title']}:", "", "| ingredient | row | GLUE (mean ± sd) | Δ from the row above | % of teacher |",
                "|---|---|---|---|---|"]
        for r in a["rows"]:
            delta = "–" if r.get("delta") is None else (f"{100 * r['delta']:+.1f}"
                                                       + (" (within noise)" if r.get("within_noise") else ""))
            out.append(f"| {r['label']} | {r['model']} | {_x100(r['glue_score'], r.get('sd'))} | {delta} | "
                       f"{_pct(r.get('pct_of_teacher'))} |")
    out += ["", "Targets (issue 14):", "", *_targets(ex), "", "End of the frontier tables.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("leaderboard", nargs="?", type=Path, help="a frontier run's reports/leaderboard.json")
    p.add_argument("--wall-seconds", type=float, default=None, help="the run's measured wall time")
    p.add_argument("--jobs", type=int, default=None, help="the run's number of jobs")
    p.add_argument("--command", default=None, help="the snakemake command line the run used (shown with the wall time)")
    p.add_argument("--out", type=Path, default=None, help="<out>.json and <out>.md")
    p.add_argument("--render", type=Path, default=None, help="print the Markdown of a committed extract")
    args = p.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text(encoding="utf-8"))), end="")
        return
    if not args.leaderboard or not args.out:
        p.error("give a leaderboard.json and --out, or --render")
    ex = extract(json.loads(args.leaderboard.read_text(encoding="utf-8")), args.wall_seconds, args.jobs, args.command)
    args.out.with_suffix(".json").write_text(json.dumps(ex, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(render(ex), encoding="utf-8")


if __name__ == "__main__":
    main()
