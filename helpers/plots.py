"""The few plot shapes the notebooks share: latency distributions, QPS vs concurrency,
recall vs threshold, bars per store, and a scaling curve. Each takes the DataFrame a
``helpers.bench`` function returned and draws on a new figure (or the axes given)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

COLORS = {"Chroma": "#F2A541", "Milvus Lite": "#4C72B0", "Milvus server": "#2E8B57",
          "exact (numpy)": "#7F7F7F"}


def _color(name: str) -> str:
    return COLORS.get(name, "#8172B2")


def latency_distributions(samples: pd.DataFrame, ks: Sequence[int] = (5, 20)) -> plt.Figure:
    """Box plots of single-query latency (ms, log scale) per store, one panel per k."""
    fig, axes = plt.subplots(1, len(ks), figsize=(5 * len(ks), 3.4), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], ks):
        part = samples[samples["k"] == k]
        names = list(dict.fromkeys(part["store"]))
        box = ax.boxplot([part.loc[part["store"] == n, "ms"] for n in names], whis=(5, 99),
                         showfliers=True, patch_artist=True, flierprops={"markersize": 2})
        for patch, n in zip(box["boxes"], names):
            patch.set_facecolor(_color(n))
        ax.set_xticks(range(1, len(names) + 1), names, rotation=15)
        ax.set(yscale="log", title=f"top-{k}, one query per call", ylabel="latency (ms, log)")
    fig.suptitle("Single-query latency (box: quartiles, whiskers: p5–p99)")
    fig.tight_layout()
    return fig


def qps_vs_concurrency(qps: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Queries per second (log scale) against the number of concurrent clients, one line per store."""
    ax = ax or plt.subplots(figsize=(5.5, 3.4))[1]
    for name, row in qps.iterrows():
        ax.plot(list(qps.columns), row.values, marker="o", label=name, color=_color(name))
    ax.set(xlabel="concurrent clients", ylabel="queries / s (log)", yscale="log",
           xticks=list(qps.columns), title="Throughput vs concurrency")
    ax.legend(fontsize=8)
    return ax


def recall_vs_threshold(recall: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Recall@k against exact search at each similarity threshold, one line per store."""
    ax = ax or plt.subplots(figsize=(5.5, 3.4))[1]
    part = recall.dropna(subset=["threshold"])
    for name, grp in part.groupby("store", sort=False):
        ax.plot(grp["threshold"], grp["recall"], marker="o", label=name, color=_color(name))
    ax.set(xlabel="similarity threshold", ylabel="recall vs exact search", ylim=(0, 1.05),
           title="Recall at the guide's thresholds")
    ax.legend(fontsize=8)
    return ax


def bars(values: pd.Series, title: str, ylabel: str, ax: plt.Axes | None = None) -> plt.Axes:
    """One bar per store (the Series' index), labelled with its value."""
    ax = ax or plt.subplots(figsize=(4.5, 3.2))[1]
    shown = values.dropna()
    rects = ax.bar(list(shown.index), shown.values, color=[_color(n) for n in shown.index])
    ax.bar_label(rects, fmt="%.0f", fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=15)
    return ax


def scaling(df: pd.DataFrame, value: str, ylabel: str, ax: plt.Axes | None = None) -> plt.Axes:
    """``value`` against collection size (log-log), one line per store (columns: store, rows, value)."""
    ax = ax or plt.subplots(figsize=(5.5, 3.4))[1]
    for name, grp in df.dropna(subset=[value]).groupby("store", sort=False):
        ax.plot(grp["rows"], grp[value], marker="o", label=name, color=_color(name))
    ax.set(xscale="log", yscale="log", xlabel="rows in the collection (log)", ylabel=ylabel)
    ax.legend(fontsize=8)
    return ax
