"""Annotated task × task heatmaps (PNG), for affinity and gradient-cosine matrices.

Why: a matrix of a few tasks reads best as coloured, labelled cells; a diverging colour map
centred on 0 shows at a glance which pairs help (blue) and which hurt (red). The diagonal (a
task with itself) is annotated but grey, so that it does not set the colour scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from polytask.dependencies import require


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
