"""Plotly figures of the Context screen: the map coloured by any column, and cluster shares
over time. Every string drawn is escaped here (plotly renders a subset of HTML); hover texts
come escaped from ``corpusmap.explore.hover_text``."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from clustering import lens as stats
from corpusmap.figures import MARKER_SIZE

MISSING_COLOUR = "rgba(150,150,150,0.35)"
MAP_GROUPS = 20
"""Groups with a colour of their own on the map; the rarest others share ``OTHER``'s."""
TIME_LINES = 8
"""Clusters drawn in the time chart: those whose share changed most."""
PALETTE = qualitative.Dark24


def column_map(points: pd.DataFrame, column: str, kind: str) -> go.Figure:
    """Every text of ``points`` (a ``corpusmap.lens.context_frame``) at its map position,
    coloured by ``column``: one legend entry per group, or a colour bar for numbers and dates.
    Texts with no value are grey."""
    figure = go.Figure()
    if kind == "categorical":
        groups = stats.as_groups(points[column], MAP_GROUPS)
        order = [g for g in pd.Series(groups).value_counts().index if g != stats.MISSING]
        if stats.MISSING in set(groups):
            order.append(stats.MISSING)
        for i, group in enumerate(order):
            members = points[groups == group]
            colour = MISSING_COLOUR if group == stats.MISSING else PALETTE[i % len(PALETTE)]
            figure.add_trace(_trace(members, html.escape(str(group)), colour))
    else:
        if kind == "datetime":
            dates = stats.as_dates(points[column])
            values = ((dates - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86_400).to_numpy()
        else:
            values = stats.as_numbers(points[column])
        present = ~np.isnan(values)
        if (~present).any():
            figure.add_trace(_trace(points[~present], "(missing)", MISSING_COLOUR))
        figure.add_trace(
            _trace(
                points[present],
                html.escape(column),
                values[present],
                colour_bar=_colour_bar(column, values[present], kind),
            )
        )
    figure.update_layout(
        height=620,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={
            "itemsizing": "constant",
            "font": {"size": 11},
            "yanchor": "top",
            "y": 0.93,
            "title": {"text": html.escape(column)},
        },
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        plot_bgcolor="white",
        hoverlabel={"align": "left"},
    )
    return figure


def _colour_bar(column: str, values: np.ndarray, kind: str) -> dict:
    bar: dict = {"title": {"text": html.escape(column)}}
    if kind == "datetime" and len(values):
        ticks = np.quantile(values, [0, 0.25, 0.5, 0.75, 1])
        bar["tickvals"] = list(ticks)
        bar["ticktext"] = [
            f"{pd.Timestamp('1970-01-01') + pd.Timedelta(days=float(t)):%Y-%m-%d}" for t in ticks
        ]
    return bar


def _trace(
    members: pd.DataFrame, title: str, colour: object, colour_bar: dict | None = None
) -> go.Scattergl:
    marker: dict = {"size": MARKER_SIZE, "color": colour}
    if colour_bar is not None:
        marker.update(colorscale="Viridis", showscale=True, colorbar=colour_bar)
    clusters = [html.escape(str(c)) for c in members["cluster"]]
    return go.Scattergl(
        x=members["x"],
        y=members["y"],
        mode="markers",
        name=title,
        marker=marker,
        text=members["hover"],
        customdata=np.column_stack([members["document_id"], clusters]) if len(members) else None,
        hovertemplate=f"<b>{title}</b> · %{{customdata[1]}}<br>%{{text}}<extra></extra>",
        showlegend=colour_bar is None,
    )


def time_chart(shares: pd.DataFrame, changes: pd.DataFrame, n: int = TIME_LINES) -> go.Figure:
    """Share per period of the ``n`` clusters whose share changed most (``TimeView``)."""
    changes = changes[changes["cluster_id"] != -1]
    top = changes.reindex(changes["change"].abs().sort_values(ascending=False).index).head(n)
    figure = go.Figure()
    for i, row in enumerate(top.itertuples()):
        series = shares[shares["cluster_id"] == row.cluster_id].sort_values("period")
        title = html.escape(f"{row.cluster_id}: {row.name}"[:60])
        figure.add_trace(
            go.Scatter(
                x=series["period"],
                y=series["share"],
                mode="lines+markers",
                name=title,
                line={
                    "color": PALETTE[i % len(PALETTE)],
                    "dash": "solid" if row.significant else "dot",
                },
                hovertemplate=f"{title}<br>%{{x|%Y-%m-%d}}: %{{y:.1%}}<extra></extra>",
            )
        )
    figure.update_layout(
        height=480,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"title": "share of the period's texts", "tickformat": ".0%"},
        plot_bgcolor="white",
        # Below the chart: the top right is where plotly's toolbar shows on hover.
        legend={"font": {"size": 11}, "orientation": "h", "yanchor": "top", "y": -0.12},
    )
    return figure
