"""A self-contained HTML report of a run: summary (with what a goal-driven mode found), the
map, the hierarchy when the run has one, and per cluster its name, description, inclusion
criterion, keyword rule with precision and recall, parent, keywords and examples.

Opens offline: plotly.js is embedded, nothing is fetched. Every corpus text and every LLM
output is HTML-escaped: they are data, and a text such as ``<script>`` must show as text.
"""

from __future__ import annotations

from html import escape

import plotly.io as pio

from corpusmap import explore, figures
from corpusmap.lens_report import context_section
from corpusmap.views import outcome_lines
from storage import ClusterInfo, Store

EXAMPLES_PER_CLUSTER = 5
EXAMPLE_CHARS = 400

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } .muted { color: #666; }
table.summary td { padding: 0.15rem 1rem 0.15rem 0; }
section.cluster { border-top: 1px solid #ddd; padding: 0.6rem 0; }
section.cluster h3 { margin: 0.2rem 0; } .swatch { display: inline-block; width: 0.8rem;
height: 0.8rem; border-radius: 2px; margin-right: 0.4rem; }
ul.examples li { margin: 0.2rem 0; white-space: pre-wrap; }
"""


def render_report(store: Store, run_id: int, context_column: str | None = None) -> str:
    """The report as one HTML document (about 4 MB, most of it plotly.js)."""
    run = store.get_run(run_id)
    corpus = store.get_corpus(run.corpus_id)
    clusters = {c.cluster_id: c for c in store.load_clusters(run_id)}
    order = explore.cluster_order(list(clusters.values()))
    points = explore.map_points(store, run_id)
    titles = {c: explore.cluster_title(c, clusters[c].name) for c in order}
    figure = figures.cluster_map(points, order, titles)
    map_html = pio.to_html(
        figure, include_plotlyjs=True, full_html=False, config={"responsive": True}
    )
    colours = figures.cluster_colours(order)
    metrics = run.metrics
    n_outliers = int((points["cluster_id"] == -1).sum())
    summary_rows = [
        ("Corpus", f"#{corpus.id} {corpus.name}"),
        ("Texts clustered", f"{len(points):,}"),
        ("Clusters", f"{len(order)}"),
        ("Outliers", f"{n_outliers:,} ({n_outliers / max(len(points), 1):.1%})"),
        ("Goal", run.goal or "—"),
        ("Mode", run.mode or "cluster"),
        ("Labels by", run.labeler),
        ("Embedding model", run.embedder),
        ("Seed", str(run.seed)),
    ]
    for key in ("silhouette", "faithfulness", "nmi", "ari", "acc"):
        if isinstance(metrics.get(key), int | float):
            summary_rows.append((key, f"{metrics[key]:.3f}"))
    summary = "\n".join(
        f"<tr><td class='muted'>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in summary_rows
    )
    findings = "".join(f"<li>{escape(line)}</li>" for line in outcome_lines(run))
    findings = f"<ul class='muted'>{findings}</ul>" if findings else ""
    parents = {c.cluster_id: c for c in store.load_clusters(run_id, level=1)}
    hierarchy = _hierarchy_section(parents, clusters, order)
    novel = explore.novel_clusters(run)
    sections = "\n".join(
        _cluster_section(
            clusters[c],
            colours[c],
            explore.rule_text(run, c),
            None if (parent := clusters[c].parent_id) is None else parents.get(parent),
            c in novel,
        )
        for c in order
    )
    title = f"corpusmap report — run {run.id} on {corpus.name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="muted">Run {run.id} {escape(run.name)}, {run.created_at:%Y-%m-%d %H:%M} UTC</p>
<table class="summary">{summary}</table>
{findings}
<h2>Map</h2>
<p class="muted">Each point is a text; similar texts lie close. Grey points are outliers.</p>
{map_html}
{hierarchy}
{context_section(store, run_id, context_column) if context_column else ""}
<h2>Clusters</h2>
{sections}
</body></html>
"""


def _hierarchy_section(
    parents: dict[int, ClusterInfo], clusters: dict[int, ClusterInfo], order: list[int]
) -> str:
    if not parents:
        return ""
    items = []
    for parent in parents.values():
        children = [clusters[c] for c in order if clusters[c].parent_id == parent.cluster_id]
        names = "; ".join(f"{c.cluster_id}: {c.name}" for c in children)
        items.append(
            f"<li><b>{parent.cluster_id}: {escape(parent.name)}</b> "
            f"<span class='muted'>({parent.size:,} texts)</span> — {escape(names)}</li>"
        )
    return f"<h2>Hierarchy</h2>\n<ul>{''.join(items)}</ul>"


def _cluster_section(
    cluster: ClusterInfo,
    colour: str,
    rule: str = "",
    parent: ClusterInfo | None = None,
    novel: bool = False,
) -> str:
    examples = "\n".join(
        f"<li>{escape(_cut(t))}</li>" for t in cluster.representatives[:EXAMPLES_PER_CLUSTER]
    )
    criterion = (
        f"<p><b>Inclusion:</b> {escape(cluster.inclusion_criterion)}</p>"
        if cluster.inclusion_criterion
        else ""
    )
    extra = ""
    if cluster.stale:
        extra += (
            "<p class='muted'>Named before an edit changed its texts: relabel it to refresh "
            "the name.</p>"
        )
    if rule:
        extra += f"<p><b>Keyword rule:</b> {escape(rule)}</p>"
    if parent is not None:
        extra += f"<p class='muted'>Parent: {parent.cluster_id}: {escape(parent.name)}</p>"
    if novel:
        extra += "<p class='muted'>New: no seed-labelled text is in this cluster.</p>"
    return f"""<section class="cluster">
<h3><span class="swatch" style="background:{escape(colour)}"></span>{cluster.cluster_id}: {escape(cluster.name)}</h3>
<p class="muted">{cluster.size:,} texts ({cluster.share:.1%}) · keywords: {escape(", ".join(cluster.keywords[:8]))}</p>
<p>{escape(cluster.description)}</p>
{criterion}
{extra}
<ul class="examples">{examples}</ul>
</section>"""


def _cut(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"
