"""Figures as PNG files, drawn headless with matplotlib (the optional extra `clipfit[plots]`).

Two shapes cover the papers' figures that are tables drawn: grouped bars (`bars`: methods across regimes or
datasets) and lines (`lines`: accuracy against shots, or any value against a swept setting). Both take panels
(one subplot each, in a row or a grid) and write one small PNG.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ClipfitError

Values = Sequence[float | None]


def pyplot():
    """matplotlib's pyplot on the headless Agg backend, or a one-line error saying what to install."""
    try:  # here, not at the top: matplotlib is an optional extra, and slow to import
        import matplotlib
    except ImportError:
        raise ClipfitError("drawing figures needs matplotlib: pip install 'clipfit[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _save(fig, path: str | Path, title: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    pyplot().close(fig)
    return path


def bars(path: str | Path, panels: Mapping[str, tuple[Sequence[str], Mapping[str, Values]]], title: str = "",
         ylabel: str = "", max_cols: int = 2) -> Path:
    """Grouped bars: each panel is (group names, {series: one value per group}); None draws no bar."""
    plt = pyplot()
    rows, cols = _grid(len(panels), max_cols)
    widest = max(len(groups) for groups, _ in panels.values())
    fig, axes = plt.subplots(rows, cols, figsize=(min(4.5, 1.0 + 0.9 * widest) * cols, 3.0 * rows), squeeze=False)
    for ax, (name, (groups, series)) in zip(axes.flat, panels.items()):
        width = 0.8 / max(1, len(series))
        for i, (label, values) in enumerate(series.items()):
            xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
            ax.bar([x for x, v in zip(xs, values) if v is not None], [v for v in values if v is not None], width,
                   label=label, color=f"C{i % 10}")
        ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right", fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, ncol=2)
    return _save(fig, path, title)


def lines(path: str | Path, panels: Mapping[str, Mapping[str, tuple[Sequence[float], Values]]], title: str = "",
          xlabel: str = "", ylabel: str = "", logx: bool = False, styles: Mapping[str, Mapping[str, Any]] | None = None,
          max_cols: int = 4) -> Path:
    """Lines: each panel is {series: (xs, ys)}; None leaves a gap. `styles` gives matplotlib keywords per series."""
    plt = pyplot()
    rows, cols = _grid(len(panels), max_cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows), squeeze=False)
    for ax, (name, series) in zip(axes.flat, panels.items()):
        for i, (label, (xs, ys)) in enumerate(series.items()):
            style = {"color": f"C{i % 10}", "marker": "o", "markersize": 3, **(styles or {}).get(label, {})}
            ax.plot(xs, [float("nan") if y is None else y for y in ys], label=label, linewidth=1, **style)
        if logx:
            ax.set_xscale("log", base=2)
        elif all(float(x).is_integer() for xs, _ in series.values() for x in xs):
            from matplotlib.ticker import MaxNLocator  # matplotlib: optional, loaded by `pyplot()` above

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.set_ylabel(ylabel, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=5)
    return _save(fig, path, title)


def scatter(path: str | Path, panels: Mapping[str, tuple[Sequence[Sequence[float]], Sequence[int]]],
            title: str = "", names: Sequence[str] | None = None, max_cols: int = 2) -> Path:
    """Points coloured by class: each panel is (xy points, class index per point); `names` labels the classes."""
    plt = pyplot()
    rows, cols = _grid(len(panels), max_cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (name, (xy, labels)) in zip(axes.flat, panels.items()):
        cmap = plt.get_cmap("tab20")
        ax.scatter([p[0] for p in xy], [p[1] for p in xy], c=[cmap(int(c) % 20) for c in labels], s=6, linewidths=0)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return _save(fig, path, title)
