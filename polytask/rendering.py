"""Rendering results for people: terminal tables, Markdown, the HTML report and its plots, heatmaps.

Why: one room for presentation, apart from the arithmetic (``evaluation``) and the runners
(``evidence``), so the numbers can be tested without drawing and the drawing changed without
touching the numbers. matplotlib is imported inside the functions that plot.

The comparison's HTML report holds tables plus plots from every run's ``metrics.jsonl`` in one
self-contained file: Δm and verdicts say *whether* multi-task learning helped; the dev curves,
the task weights a method chose and the pairwise gradient cosines over training suggest *why*.
The plots are embedded as base64 PNG data URIs (the file can be mailed or archived alone) and
also written beside it as PNG files.
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

from rich import box
from rich.table import Table

from polytask.dependencies import require
from polytask.evaluation.comparison import STL
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


def read_records(path: Path) -> list[dict[str, Any]]:
    """A run's ``metrics.jsonl`` records (empty when the file is missing)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_report(out: str | Path, result: Mapping[str, Any]) -> Path:
    """Render ``out/report.html`` (and the PNGs beside it) from a comparison's result and its runs' metrics."""
    out = Path(out)
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
    costs = result.get("costs") or {}
    delta_rows = [[m, delta_m_text(result["delta_m"][m]),
                   ", ".join("–" if v is None else f"{v:+.2f}" for v in result["delta_m"][m]["per_seed"]),
                   parameters_text(costs.get(m)), time_ratio_text(costs.get(m))]
                  for m in methods]
    if STL in costs:
        delta_rows.append([f"{STL} (one model per task)", "", "", parameters_text(costs[STL]), ""])
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
        _table(["run", "Δm [95% CI]", "per seed", "parameters", "time/step ÷ hard"], delta_rows),
        ("<p>Time per step: each run's training seconds (dev evaluations and checkpoints included) over its steps, "
         "mean over seeds, as a ratio to the hard-sharing row with the same method.</p>"),
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

# --------------------------------------------------------------------------------------
# Comparison tables and Markdown


def run_labels(result: Mapping[str, Any]) -> list[str]:
    return [STL, *result["methods"]]


def format_value(value: float | None, like: float | None = None) -> str:
    """Two decimals, four below 1 (MSE, Pearson); ``like`` picks the precision (a std shown as its mean)."""
    if value is None:
        return "–"
    reference = value if like is None else like
    return f"{value:.2f}" if abs(reference) >= 1 else f"{value:.4f}"


def mean_std_text(cell: Mapping[str, Any]) -> str:
    if cell["mean"] is None:
        return "–"
    return f"{format_value(cell['mean'])} ± {format_value(cell['std'], like=cell['mean'])}"


def delta_m_text(entry: Mapping[str, Any]) -> str:
    if entry["mean"] is None:
        return "–"
    low, high = entry["ci95"]
    return f"{entry['mean']:+.2f}% [{low:+.2f}, {high:+.2f}]"


def setup_line(result: Mapping[str, Any]) -> str:
    seeds = result["seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}–{seeds[-1]} ({len(seeds)})"
    splits = sorted({p["split"] for p in result["primary"].values()})
    return f"{seed_text}; {' and '.join(splits)} split; mean ± std over seeds"


_VERDICT_MARKS = {"positive": ("green", "▲"), "negative": ("red", "▼"), "neutral": ("yellow", "·")}


def comparison_table(result: Mapping[str, Any]) -> Table:
    """Each task's primary metric per run (mean ± std), the verdict against single-task, and Δm."""
    table = Table(title=f"single-task (stl) vs multi-task · {setup_line(result)}", box=box.SIMPLE_HEAD,
                  caption="▲ positive, ▼ negative, · neutral: paired t-test over seeds, p < 0.05")
    labels = run_labels(result)
    table.add_column("task")
    table.add_column("metric")
    for label in labels:
        table.add_column(label, justify="right")
    for task, primary in result["primary"].items():
        arrow = "↑" if primary["higher_is_better"] else "↓"
        cells = [mean_std_text(result["tasks"][task][STL][primary["metric"]])]
        for method in result["methods"]:
            style, mark = _VERDICT_MARKS[result["verdicts"][method][task]]
            text = mean_std_text(result["tasks"][task][method][primary["metric"]])
            cells.append(f"[{style}]{text} {mark}[/]")
        table.add_row(task, f"{primary['metric']} {arrow}", *cells)
    table.add_row("Δm", "% [95% CI]", "", *(delta_m_text(result["delta_m"][m]) for m in result["methods"]),
                  end_section=not result.get("costs"))
    if result.get("costs"):
        costs = result["costs"]
        table.add_row("parameters", "", *(parameters_text(costs.get(label)) for label in labels))
        table.add_row("time/step", "÷ hard", *(time_ratio_text(costs.get(label)) for label in labels),
                      end_section=True)
    return table


def parameters_text(cost: Mapping[str, Any] | None) -> str:
    """A parameter count in thousands or millions (``–`` when unknown)."""
    count = (cost or {}).get("parameters")
    if count is None:
        return "–"
    return f"{count / 1e6:.2f}M" if count >= 1e6 else f"{count / 1e3:.1f}k"


def time_ratio_text(cost: Mapping[str, Any] | None) -> str:
    """The training time per step as a ratio to hard sharing's with the same method (``–`` without one)."""
    ratio = (cost or {}).get("time_ratio_to_hard")
    return "–" if ratio is None else f"{ratio:.2f}×"


def comparison_markdown(result: Mapping[str, Any]) -> str:
    """compare.md: Δm, verdicts and every metric per task, as Markdown tables."""
    labels = run_labels(result)
    lines = ["# Did multi-task learning help?", "", setup_line(result) + ".", ""]
    costs = result.get("costs") or {}
    lines += ["## Δm (% vs single-task; > 0: multi-task better)", "",
              "| run | Δm | 95% CI | per seed | parameters | time/step ÷ hard |", "|---|---:|---|---|---:|---:|"]
    for method in result["methods"]:
        entry = result["delta_m"][method]
        interval = "–" if entry["mean"] is None else f"[{entry['ci95'][0]:+.2f}, {entry['ci95'][1]:+.2f}]"
        per_seed = ", ".join("–" if v is None else f"{v:+.2f}" for v in entry["per_seed"])
        mean = "–" if entry["mean"] is None else f"{entry['mean']:+.2f}"
        cost = costs.get(method)
        lines.append(f"| {method} | {mean} | {interval} | {per_seed} | {parameters_text(cost)} | "
                     f"{time_ratio_text(cost)} |")
    if STL in costs:
        lines.append(f"| {STL} (one model per task) | | | | {parameters_text(costs[STL])} | |")
    lines += ["", "Time per step: each run's training seconds (dev evaluations and checkpoints included) over its "
              "steps, mean over seeds, as a ratio to the hard-sharing row with the same method."]
    lines += ["", "## Verdicts (paired t-test over seeds on the primary metric, p < 0.05)", "",
              "| task | metric | " + " | ".join(result["methods"]) + " |",
              "|---|---|" + "---|" * len(result["methods"])]
    for task, primary in result["primary"].items():
        cells = []
        for method in result["methods"]:
            test = result["tests"][method][task]
            p = "" if test["p_value"] is None else f", p={test['p_value']:.3g}"
            cells.append(f"{test['verdict']} ({test['mean_difference']:+.3g}{p})")
        arrow = "↑" if primary["higher_is_better"] else "↓"
        lines.append(f"| {task} | {primary['metric']} {arrow} | " + " | ".join(cells) + " |")
    lines += ["", "## Every metric (mean ± std over seeds)", ""]
    for task, runs in result["tasks"].items():
        split = result["primary"][task]["split"]
        lines += [f"### {task} ({split})", "", "| metric | " + " | ".join(labels) + " |",
                  "|---|" + "---:|" * len(labels)]
        for metric in runs[STL]:
            mark = " (primary)" if metric == result["primary"][task]["metric"] else ""
            cells = " | ".join(mean_std_text(runs[label][metric]) for label in labels)
            lines.append(f"| {metric}{mark} | {cells} |")
        lines.append("")
    if result.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in result["notes"]] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Heatmaps


def save_heatmap(matrix: Sequence[Sequence[float | None]], labels: Sequence[str], path: str | Path, title: str,
                 *, row_label: str = "source task i", column_label: str = "target task j") -> Path:
    """Write ``matrix`` (rows: ``row_label``, columns: ``column_label``) as an annotated PNG; NaN/None: '–'."""
    matplotlib = require("matplotlib", "heatmaps", "report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.array([[math.nan if x is None else float(x) for x in row] for row in matrix], dtype=float)
    off_diagonal = values.copy()
    np.fill_diagonal(off_diagonal, np.nan)
    finite = off_diagonal[np.isfinite(off_diagonal)]
    bound = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    size = max(4.0, 0.9 * len(labels) + 2.5)
    figure, axes = plt.subplots(figsize=(size + 1.0, size))
    try:
        colours = matplotlib.colormaps["RdBu"].with_extremes(bad="0.85")
        image = axes.imshow(np.ma.masked_invalid(off_diagonal), cmap=colours, vmin=-bound, vmax=bound)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        axes.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
        axes.set_yticks(range(len(labels)), labels=labels)
        axes.set_xlabel(column_label)
        axes.set_ylabel(row_label)
        axes.set_title(title, fontsize=10)
        for i in range(len(labels)):
            for j in range(len(labels)):
                value = values[i, j]
                text = "–" if not math.isfinite(value) else _format(value)
                dark = i != j and math.isfinite(value) and abs(value) > 0.6 * bound
                axes.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        figure.tight_layout()
        path = Path(path)
        figure.savefig(path, dpi=120)
    finally:
        plt.close(figure)
    return path


def _format(value: float) -> str:
    return f"{value:.2g}" if value != 0 and abs(value) < 0.01 else f"{value:.2f}"


# --------------------------------------------------------------------------------------
# Affinity tables


def matrix_table(tasks: Sequence[str], matrix: Sequence[Sequence[float | None]], title: str) -> Table:
    """A task × task table, rows = source task i, columns = target task j."""
    table = Table(title=title)
    table.add_column("i \\ j")
    for task in tasks:
        table.add_column(task, justify="right")
    for task, row in zip(tasks, matrix):
        table.add_row(task, *("–" if x is None or not math.isfinite(x) else _signed(x) for x in row))
    return table


def grouping_table(result: Mapping[str, Any]) -> Table:
    """The best groupings into at most ``max_groups`` models, best first."""
    table = Table(title=f"task groupings into at most {result['max_groups']} models (score: Σ affinity onto each task "
                        "from its group, best first)")
    table.add_column("rank", justify="right")
    table.add_column("groups")
    table.add_column("score", justify="right")
    for rank, grouping in enumerate(result["all_groupings"], start=1):
        text = "  ".join("{" + ", ".join(group) + "}" for group in grouping["groups"])
        table.add_row(str(rank), text, _signed(grouping["score"]))
    return table


def _signed(x: float) -> str:
    return f"{x:+.2e}" if x != 0 and abs(x) < 1e-3 else f"{x:+.4f}"


# --------------------------------------------------------------------------------------
# Training, evaluation and fine-tuning tables


def metrics_table(title: str, results: dict[str, dict[str, float]]) -> Table:
    table = Table(title=title)
    for column in ("task", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for task, metrics in results.items():
        for metric, value in metrics.items():
            table.add_row(task, metric, f"{value:.2f}")
    return table


def retention_table(retention: dict[str, Any]) -> Table:
    """Old tasks' dev metrics before and after fine-tuning; a change is green where it is an improvement."""
    setting = f"freeze encoder: {'yes' if retention['freeze_encoder'] else 'no'} · replay {retention['replay']:g}"
    table = Table(title="retention on dev", caption=setting)
    for column in ("task", "metric", "before", "after", "change"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for task, metrics in retention["tasks"].items():
        for metric, v in metrics.items():
            arrow = "↑" if v["higher_is_better"] else "↓"
            change = v["change"] or 0.0
            colour = "default" if change == 0 else ("green" if (change > 0) == v["higher_is_better"] else "red")
            table.add_row(task, f"{metric} {arrow}", f"{v['before']:.2f}", f"{v['after']:.2f}", f"[{colour}]{change:+.2f}[/]")
    return table


def summary_table(summary: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("task", "metric", "dev", "test"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for task, metrics in summary["tasks"].items():
        for metric, values in metrics.items():
            table.add_row(task, metric, *(f"{values[s]:.2f}" if values[s] is not None else "–" for s in ("dev", "test")))
    return table
