"""``python -m bench [name ...]``: run benchmarks and regenerate BENCHMARKS.md."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

from rich.console import Console

import bench
from bench.common import RESULTS_DIR, Result, make_context, quick, write_results
from bench.highlights import highlights
from onai_db.connection import scalar

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- results:start -->"
END = "<!-- results:end -->"
console = Console()


def available() -> list[str]:
    return sorted(
        m.name[len("bench_") :] for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )


def render_table() -> str:
    lines = [
        "| benchmark | workload | baseline | scale | workload value | baseline value | ratio | target | met"
        " | highlights | measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    machine_line = ""
    for path in sorted(RESULTS_DIR.glob("*.json")):
        doc = json.loads(path.read_text())
        m = doc["machine"]
        machine_line = (
            f"Machine: {m['cpu_count']} cores, {m['memory_gib']} GiB, "
            f"{m['platform']}, PostgreSQL {doc['postgres']}, Python {m['python']}."
        )
        for r in doc["results"]:
            met = {True: "yes", False: "**no**", None: "-"}[r.get("met")]
            lines.append(
                f"| {r['bench']} | {r['workload']} | {r['baseline']} | {r['scale']} | "
                f"{r['value']:.4g} {r['unit']} | {r['baseline_value']:.4g} {r['unit']} | "
                f"{r['ratio']:.3g}x | {r['target'] or '-'} | {met} | {highlights(r['bench'], r['details'])} |"
                f" {doc['measured_at']}"
                f"{' (' + doc['commit'] + ')' if doc.get('commit') else ''} |"
            )
    return "\n".join([machine_line, "", *lines])


def regenerate_markdown() -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{START}\n{render_table()}\n{END}{tail}")


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        console.print(
            f"[red]unknown benchmark(s): {', '.join(unknown)}[/red]; have: {', '.join(available())}"
        )
        return 2
    for name in names:
        console.rule(f"bench {name}")
        # a fresh database per benchmark: what one leaves behind (lead_intake's 84k leads)
        # must not change the next one's work or figures
        ctx = make_context()
        with ctx.connect() as conn:
            server = scalar(conn, "show server_version")
        module = importlib.import_module(f"bench.bench_{name}")
        results: list[Result] = module.run(ctx)
        path = write_results(name, results, server)
        for r in results:
            console.print(
                f"  {r.workload}: {r.value:.4g} {r.unit} vs {r.baseline_value:.4g} ({r.ratio:.3g}x)"
            )
        console.print(f"  wrote {path.relative_to(ROOT)}")
    if quick():
        console.print("quick (smoke) run: BENCHMARKS.md and bench/results are left as they were")
        return 0
    regenerate_markdown()
    console.print("BENCHMARKS.md regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
