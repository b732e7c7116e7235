"""Plotly figures of a run: the cluster map and the size chart. Shared by the app and the HTML
report, so both show the same picture. Every string drawn was escaped by ``corpusmap.explore``
(hover) or is a cluster title, which is escaped here: plotly renders a subset of HTML."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from clustering.types import NOISE

OUTLIER_COLOUR = "rgba(150,150,150,0.35)"
FADED_COLOUR = "rgba(200,200,200,0.25)"
"""Texts a search does not match: still drawn, in place, so the map keeps its shape."""
COLOUR_SCALE = "Turbo"
MARKER_SIZE = 5
TOOLBAR_MARGIN = 40
"""Pixels above a chart's plot area where plotly's toolbar sits."""
LEGEND_MAX = 40
"""Beyond this many clusters the legend hides: it would push the map off the screen."""


def cluster_colours(order: list[int]) -> dict[int, str]:
    """Colours along a continuous scale in similarity order: similar clusters, similar hues."""
    if not order:
        return {}
    positions = [0.05 + 0.9 * i / max(len(order) - 1, 1) for i in range(len(order))]
    return dict(zip(order, sample_colorscale(COLOUR_SCALE, positions), strict=True))


def cluster_map(
    points: pd.DataFrame,
    order: list[int],
    titles: dict[int, str],
    highlight: pd.Series | None = None,
) -> go.Figure:
    """A WebGL scatter of every text, one trace per cluster in similarity order, outliers grey.

    ``highlight`` (a boolean per row of ``points``, e.g. the texts a search matches) keeps the
    other texts in place, faint grey, instead of dropping them: the map does not move or
    re-zoom while a user searches (issue 15)."""
    colours = cluster_colours(order)
    figure = go.Figure()
    shown = points
    if highlight is not None:
        keep = highlight.to_numpy(dtype=bool)
        others = points[~keep]
        if len(others):
            figure.add_trace(_trace(others, "not matching", FADED_COLOUR, -2))
        shown = points[keep]
    outliers = shown[shown["cluster_id"] == NOISE]
    if len(outliers):
        figure.add_trace(_trace(outliers, "outliers", OUTLIER_COLOUR, -1))
    for cluster_id in order:
        members = shown[shown["cluster_id"] == cluster_id]
        if len(members):
            title = html.escape(titles.get(cluster_id, str(cluster_id)))
            figure.add_trace(_trace(members, title, colours[cluster_id], cluster_id))
    figure.update_layout(
        height=620,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        showlegend=len(order) <= LEGEND_MAX,
        # Below the top edge, where plotly's toolbar sits on hover.
        legend={"itemsizing": "constant", "font": {"size": 11}, "yanchor": "top", "y": 0.93},
        xaxis={"visible": False, "range": _extent(points["x"])},
        yaxis={"visible": False, "scaleanchor": "x", "range": _extent(points["y"])},
        plot_bgcolor="white",
        hoverlabel={"align": "left"},
        uirevision="map",  # keeps the user's zoom and pan across reruns
    )
    return figure


def _extent(values: pd.Series) -> list[float] | None:
    """The axis range of every point (with a margin), whatever a filter shows."""
    if not len(values):
        return None
    low, high = float(values.min()), float(values.max())
    pad = 0.03 * (high - low) or 1.0
    return [low - pad, high + pad]


def _trace(members: pd.DataFrame, title: str, colour: str, cluster_id: int) -> go.Scattergl:
    return go.Scattergl(
        x=members["x"],
        y=members["y"],
        mode="markers",
        name=title,
        marker={"size": MARKER_SIZE, "color": colour},
        text=members["hover"],
        customdata=members["document_id"],
        hovertemplate=f"<b>{title}</b><br>%{{text}}<extra></extra>",
        legendgroup=str(cluster_id),
    )


def size_chart(table: pd.DataFrame) -> go.Figure:
    """Horizontal bars of cluster sizes in the table's (similarity) order."""
    labels = [
        html.escape(f"{c}: {n}") for c, n in zip(table["cluster_id"], table["name"], strict=True)
    ]
    colours = cluster_colours(list(table["cluster_id"]))
    figure = go.Figure(
        go.Bar(
            x=table["size"],
            y=labels,
            orientation="h",
            marker={"color": [colours[c] for c in table["cluster_id"]]},
            hovertemplate="%{y}<br>%{x} texts<extra></extra>",
        )
    )
    figure.update_layout(
        height=max(240, 18 * len(table) + 90),
        # Room above the bars for plotly's toolbar, which covered the first ones (issue 15).
        margin={"l": 10, "r": 10, "t": TOOLBAR_MARGIN, "b": 10},
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis={"title": "texts"},
        plot_bgcolor="white",
    )
    return figure


def hierarchy_treemap(table: pd.DataFrame) -> go.Figure:
    """Parents and their clusters as nested boxes sized by texts; ``table`` is the cluster
    table with ``parent_id`` and ``parent_name`` (``corpusmap.service.cluster_table``)."""
    children = table[table["parent_id"].notna()]
    parent_sizes = children.groupby("parent_id")["size"].sum()
    parent_names = children.groupby("parent_id")["parent_name"].first()
    ids, labels, parents, values = [], [], [], []
    for pid, size in parent_sizes.items():
        ids.append(f"p{int(pid)}")
        labels.append(html.escape(f"{int(pid)}: {parent_names[pid]}"))
        parents.append("")
        values.append(int(size))
    for cid, name, pid, size in zip(
        children["cluster_id"],
        children["name"],
        children["parent_id"],
        children["size"],
        strict=True,
    ):
        ids.append(f"c{int(cid)}")
        labels.append(html.escape(f"{int(cid)}: {name}"))
        parents.append(f"p{int(pid)}")
        values.append(int(size))
    figure = go.Figure(
        go.Treemap(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            hovertemplate="%{label}<br>%{value} texts<extra></extra>",
        )
    )
    figure.update_layout(height=520, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return figure


def crosstab_heatmap(table: pd.DataFrame, limit: int = 40) -> go.Figure:
    """Counts of clusters (rows) × labels (columns), the ``limit`` largest of each."""
    top = table.iloc[:limit, :limit]
    figure = go.Figure(
        go.Heatmap(
            z=top.to_numpy(),
            x=[html.escape(str(c)) for c in top.columns],
            y=[html.escape(str(i)) for i in top.index],
            colorscale="Blues",
            hovertemplate="%{y}<br>%{x}: %{z}<extra></extra>",
        )
    )
    figure.update_layout(
        height=max(300, 16 * len(top) + 160),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis={"automargin": True},
    )
    return figure
