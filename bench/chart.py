"""bench/proxy.py's table as a PNG: for each scenario, every path's throughput as a share
of the app served directly, and the proxy's CPU seconds per 10,000 requests.

matplotlib is a laptop tool (the `bench` extra: pip install -e '.[bench]'); without it the
benchmark still prints its table and says the chart was skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rounds import ScenarioResult, median

COLORS = {"nginx": "#888888", "nginx-fresh": "#c8c8c8", "asyncio": "#4c72b0", "uvloop": "#dd8452"}


def _color(name: str) -> str:
    base = name.split("@", maxsplit=1)[0]
    if ":" in base:
        return "#55a868"  # more than one process
    return COLORS.get(base, "#8172b3")


def draw(results: Sequence[ScenarioResult], out: Path, subtitle: str) -> str:
    """Write the chart to `out`; the line to print about it."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install -e '.[bench]')"
    names = [
        n for n in (results[0].rounds[0] if results and results[0].rounds else {}) if n != "direct"
    ]
    figure, (speed, cpu) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    width = 0.8 / max(1, len(names))
    for index, name in enumerate(names):
        ratios, costs, labels = [], [], []
        for res in results:
            rounds = [r for r in res.rounds if name in r and "direct" in r]
            ratios.append(
                median(
                    [r[name].wrk.rps / r["direct"].wrk.rps for r in rounds if r["direct"].wrk.rps]
                )
            )
            costs.append(median([r[name].cpu_per_10k for r in rounds]))
            labels.append(res.name)
        positions = [i + (index - (len(names) - 1) / 2) * width for i in range(len(results))]
        # Another checkout's package (PATH@DIR, a "before") is hatched.
        style = {"label": name, "color": _color(name), "hatch": "//" if "@" in name else None}
        speed.bar(positions, ratios, width, **style)
        cpu.bar(positions, costs, width, **style)
    for axis, title in (
        (speed, "throughput, x the app served directly (higher is better)"),
        (cpu, "proxy CPU seconds per 10k requests (lower is better)"),
    ):
        axis.set_xticks(range(len(results)), [res.name for res in results])
        axis.set_title(title, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    # Under the plots, where it cannot hide a bar.
    handles, labels = speed.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    figure.suptitle(f"tee proxy vs nginx mirror, 2 vCPU, medians of {subtitle}", fontsize=10)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return f"chart: {out}"
