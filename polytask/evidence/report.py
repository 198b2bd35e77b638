"""The comparison's HTML report: tables plus plots from every run's ``metrics.jsonl``, in one self-contained file.

Why: Δm and verdicts say *whether* multi-task learning helped; the dev curves, the task weights
a method chose and the pairwise gradient cosines over training suggest *why*. The plots are
embedded as base64 PNG data URIs (the file can be mailed or archived alone) and also written
beside it as PNG files.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polytask.dependencies import require
from polytask.errors import PolytaskError
from polytask.evidence.compare import (
    COMPARE_JSON,
    STL,
    delta_m_text,
    mean_std_text,
    run_labels,
    setup_line,
)
from polytask.training.run_dir import METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_HTML = "report.html"
Records = dict[str, list[list[dict[str, Any]]]]  # run group -> one record list per seed


@dataclass
class Plot:
    """A section of the report: a PNG written beside the report, or a note saying why there is none."""

    title: str
    file: str
    caption: str
    png: bytes | None = None
    note: str | None = None


def load_comparison(out: str | Path) -> dict[str, Any]:
    path = Path(out) / COMPARE_JSON
    if not path.is_file():
        raise PolytaskError(f"{out} holds no {COMPARE_JSON}: run 'polytask compare' into it first")
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise PolytaskError(f"{path}: not valid JSON ({error})") from None


def read_records(path: Path) -> list[dict[str, Any]]:
    """A run's ``metrics.jsonl`` records (empty when the file is missing)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_report(out: str | Path, result: Mapping[str, Any] | None = None) -> Path:
    """Render ``out/report.html`` (and the PNGs beside it) from ``out/compare.json`` and the runs' metrics."""
    out = Path(out)
    result = result if result is not None else load_comparison(out)
    records: Records = {group: [read_records(out / relative / METRICS) for relative in seeds.values()]
                        for group, seeds in result["runs"].items()}
    plots = [delta_m_plot(result), dev_curve_plot(result, records), weight_plot(result, records),
             cosine_plot(result, records)]
    for plot in plots:
        if plot.png is not None:
            (out / plot.file).write_bytes(plot.png)
    path = out / REPORT_HTML
    path.write_text(render_html(result, plots), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------
# Series from the records


def dev_curve(runs: Sequence[list[dict[str, Any]]], task: str, metric: str) -> tuple[list[int], list[float]]:
    """Epoch -> the dev metric averaged over the seeds that reached that epoch (early stopping may end some sooner)."""
    per_epoch: dict[int, list[float]] = defaultdict(list)
    for records in runs:
        for record in records:
            value = record.get("tasks", {}).get(task, {}).get(metric) if record.get("kind") == "eval" else None
            if record.get("split") == "dev" and value is not None:
                per_epoch[record["epoch"]].append(float(value))
    epochs = sorted(per_epoch)
    return epochs, [sum(per_epoch[e]) / len(per_epoch[e]) for e in epochs]


def step_series(runs: Sequence[list[dict[str, Any]]], key: str) -> dict[str, tuple[list[int], list[float]]]:
    """``record[key][name]`` over the logged steps (``weights``, ``cosines``), averaged over seeds per step."""
    per_name: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for records in runs:
        for record in records:
            if record.get("kind") != "step":
                continue
            for name, value in (record.get(key) or {}).items():
                if value is not None and math.isfinite(value):
                    per_name[name][record["step"]].append(float(value))
    series = {}
    for name, by_step in per_name.items():
        steps = sorted(by_step)
        series[name] = (steps, [sum(by_step[s]) / len(by_step[s]) for s in steps])
    return series


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (shorter at the start), so noisy per-step diagnostics show their trend."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def cosine_matrix(series: Mapping[str, tuple[list[int], list[float]]], tasks: Sequence[str]) -> list[list[float]]:
    """Mean cosine per task pair over training (1 on the diagonal, NaN for a pair never seen together)."""
    index = {task: i for i, task in enumerate(tasks)}
    matrix = [[1.0 if i == j else math.nan for j in range(len(tasks))] for i in range(len(tasks))]
    for pair, (_, values) in series.items():
        first, _, second = pair.partition("|")
        if first in index and second in index and values:
            mean = sum(values) / len(values)
            matrix[index[first]][index[second]] = matrix[index[second]][index[first]] = mean
    return matrix


# --------------------------------------------------------------------------------------
# Plots


def _figure(rows: int, columns: int, width: float = 4.4, height: float = 3.2) -> tuple[Figure, list]:
    matplotlib_figure = require("matplotlib.figure", "report plots", "report")
    figure = matplotlib_figure.Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, [axis for row in axes for axis in row]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _marker(points: Sequence[object]) -> str | None:
    """Dots where a line has so few points that it could be invisible (a single logged step)."""
    return "." if len(points) < 20 else None


def _grid(n: int, max_columns: int = 3) -> tuple[int, int]:
    columns = min(n, max_columns)
    return math.ceil(n / columns), columns


def delta_m_plot(result: Mapping[str, Any]) -> Plot:
    plot = Plot("Δm per method", "delta-m.png",
                "Mean relative change of the primary metrics against single-task (%, > 0: multi-task better); "
                "bars: mean over seeds, error bars: 95% confidence interval (t distribution).")
    methods = [m for m in result["methods"] if result["delta_m"][m]["mean"] is not None]
    if not methods:
        plot.note = "Δm is undefined (a single-task baseline scored 0)."
        return plot
    figure, (axis, *_) = _figure(1, 1, width=max(4.0, 1.1 * len(methods) + 2))
    means = [result["delta_m"][m]["mean"] for m in methods]
    lows = [result["delta_m"][m]["ci95"][0] for m in methods]
    highs = [result["delta_m"][m]["ci95"][1] for m in methods]
    colours = ["tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:gray" for lo, hi in zip(lows, highs)]
    errors = [[m - lo for m, lo in zip(means, lows)], [hi - m for m, hi in zip(means, highs)]]
    axis.bar(methods, means, color=colours, yerr=errors, capsize=6)
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_ylabel("Δm (%)")
    axis.set_title("Δm vs single-task (95% CI)")
    plot.png = _png(figure)
    if len(result["seeds"]) == 1:
        plot.caption += " One seed: no interval (error bars of zero length)."
    return plot


def dev_curve_plot(result: Mapping[str, Any], records: Records) -> Plot:
    plot = Plot("Dev curves", "dev-curves.png",
                "Each task's primary dev metric after every epoch, single-task (stl, dashed) and each method, "
                "averaged over the seeds that reached that epoch.")
    tasks = list(result["primary"])
    figure, axes = _figure(*_grid(len(tasks)))
    drawn = False
    for axis, task in zip(axes, tasks):
        primary = result["primary"][task]
        groups = [(STL, f"{STL}-{task}")] + [(m, m) for m in result["methods"]]
        for label, group in groups:
            epochs, values = dev_curve(records.get(group, []), task, primary["metric"])
            if epochs:
                axis.plot(epochs, values, marker=".", linestyle="--" if label == STL else "-", label=label)
                drawn = True
        axis.set_title(f"{task}: dev {primary['metric']} {'↑' if primary['higher_is_better'] else '↓'}")
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.legend(fontsize="small")
    for axis in axes[len(tasks):]:
        axis.set_visible(False)
    if not drawn:
        plot.note = "No run logged dev evaluations."
        return plot
    plot.png = _png(figure)
    return plot


def weight_plot(result: Mapping[str, Any], records: Records) -> Plot:
    plot = Plot("Task weights over training", "task-weights.png",
                "The weight each method put on each task's loss (or gradient) at the logged steps, "
                "averaged over seeds, moving average over about 1/25 of training.")
    series = {m: step_series(records.get(m, []), "weights") for m in result["methods"]}
    methods = [m for m in result["methods"] if series[m]]
    if not methods:
        plot.note = "No run logged task weights."
        return plot
    figure, axes = _figure(*_grid(len(methods)))
    for axis, method in zip(axes, methods):
        for task, (steps, values) in series[method].items():
            axis.plot(steps, smooth(values, max(1, len(values) // 25)), marker=_marker(steps), label=task)
        axis.set_title(f"{method}: task weights")
        axis.set_xlabel("step")
        axis.legend(fontsize="small")
    for axis in axes[len(methods):]:
        axis.set_visible(False)
    plot.png = _png(figure)
    return plot


def cosine_plot(result: Mapping[str, Any], records: Records) -> Plot:
    plot = Plot("Pairwise gradient cosines", "gradient-cosines.png",
                "Cosine between the tasks' gradients on the shared parameters, as logged by gradient methods: "
                "left the mean over training and seeds, right each pair over training (moving average). "
                "Negative cosines are conflicting gradients.")
    tasks = list(result["primary"])
    series = {m: step_series(records.get(m, []), "cosines") for m in result["methods"]}
    methods = [m for m in result["methods"] if series[m]]
    if not methods:
        plot.note = ("No run logged gradient cosines: only methods that compute per-task gradients "
                     "(gradient aggregators such as pcgrad or upgrad) log them.")
        return plot
    figure, axes = _figure(len(methods), 2)
    for row, method in enumerate(methods):
        heat, lines = axes[2 * row], axes[2 * row + 1]
        matrix = cosine_matrix(series[method], tasks)
        image = heat.imshow(matrix, vmin=-1.0, vmax=1.0, cmap="RdBu")
        heat.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
        heat.set_yticks(range(len(tasks)), tasks)
        for i, values in enumerate(matrix):
            for j, value in enumerate(values):
                if i != j and not math.isnan(value):
                    heat.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="small")
        heat.set_title(f"{method}: mean cosine")
        figure.colorbar(image, ax=heat, shrink=0.8)
        for pair, (steps, values) in series[method].items():
            lines.plot(steps, smooth(values, max(1, len(values) // 25)), marker=_marker(steps),
                       label=pair.replace("|", " · "))
        lines.axhline(0.0, color="black", linewidth=0.8)
        lines.set_ylim(-1.05, 1.05)
        lines.set_title(f"{method}: cosine over training")
        lines.set_xlabel("step")
        lines.legend(fontsize="small")
    plot.png = _png(figure)
    return plot


# --------------------------------------------------------------------------------------
# HTML

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.8em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
.positive { color: #17803d; } .negative { color: #b42318; } .neutral { color: #8a6d00; }
img { max-width: 100%; } .note { color: #666; font-style: italic; } figcaption { color: #444; font-size: 0.9em; }
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell if cell.startswith("<td") else f"<td>{html.escape(cell)}</td>" for cell in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(plot: Plot) -> str:
    parts = [f"<h2>{html.escape(plot.title)}</h2>"]
    if plot.png is None:
        parts.append(f'<p class="note">{html.escape(plot.note or "not available")}</p>')
    else:
        data = base64.b64encode(plot.png).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(plot.title)}">'
                     f"<figcaption>{html.escape(plot.caption)} ({html.escape(plot.file)})</figcaption></figure>")
    return "\n".join(parts)


def render_html(result: Mapping[str, Any], plots: Sequence[Plot]) -> str:
    methods, labels = result["methods"], run_labels(result)
    delta_rows = [[m, delta_m_text(result["delta_m"][m]),
                   ", ".join("–" if v is None else f"{v:+.2f}" for v in result["delta_m"][m]["per_seed"])]
                  for m in methods]
    verdict_rows = []
    for task, primary in result["primary"].items():
        arrow = "↑" if primary["higher_is_better"] else "↓"
        row = [task, f"{primary['metric']} {arrow} ({primary['split']})",
               mean_std_text(result["tasks"][task][STL][primary["metric"]])]
        for method in methods:
            test = result["tests"][method][task]
            p = "" if test["p_value"] is None else f", p={test['p_value']:.3g}"
            text = f"{mean_std_text(result['tasks'][task][method][primary['metric']])} · {test['verdict']}{p}"
            row.append(f'<td class="{test["verdict"]}">{html.escape(text)}</td>')
        verdict_rows.append(row)
    metric_tables = []
    for task, runs in result["tasks"].items():
        rows = [[metric] + [mean_std_text(runs[label][metric]) for label in labels] for metric in runs[STL]]
        metric_tables.append(f"<h3>{html.escape(task)}</h3>" + _table(["metric", *labels], rows))
    by_file = {plot.file: plot for plot in plots}
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.get("notes", []))
    sections = [
        "<h1>Did multi-task learning help?</h1>",
        (f"<p>{html.escape(setup_line(result))}. Methods: {html.escape(', '.join(methods))}; "
         f"single-task baselines (stl) trained with the same encoder, budget, early stopping and seeds.</p>"),
        "<h2>Δm (% vs single-task; &gt; 0: multi-task better)</h2>",
        ("<p>Δm = (1/T) Σ<sub>t</sub> (−1)<sup>l<sub>t</sub></sup> (M<sub>mtl,t</sub> − M<sub>stl,t</sub>) / "
         "M<sub>stl,t</sub> × 100 over each task's primary metric (l<sub>t</sub> = 1 when lower is better), "
         "per seed, then the mean and its 95% confidence interval (Maninis et al. 2019).</p>"),
        _table(["method", "Δm [95% CI]", "per seed"], delta_rows),
        _figure_html(by_file["delta-m.png"]),
        "<h2>Primary metric and verdict per task</h2>",
        ("<p>Verdict: paired t-test over seeds on the primary metric; positive or negative when p &lt; 0.05, "
         "else neutral (always neutral with one seed).</p>"),
        _table(["task", "metric", STL, *methods], verdict_rows),
        *(_figure_html(plot) for plot in plots if plot.file != "delta-m.png"),
        "<h2>Every metric (mean ± std over seeds)</h2>", *metric_tables,
    ]
    if notes:
        sections.append(f"<h2>Notes</h2><ul>{notes}</ul>")
    body = "\n".join(sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>polytask compare</title>'
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")
