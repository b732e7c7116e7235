"""The report of ``bench.llm_value``: tables, the chart and the published methods beside ours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
MODES = ("classify", "propose", "keyphrases")


def fmt(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


PUBLISHED = [
    # (method, paper and where its figures were read, corpora, LLM queries its method spends,
    # reported gain, our modes and budgets at the same number of calls). What could not be
    # read from a reachable source reads "not found".
    (
        "ClusterLLM: triplet queries fine-tune the embedder, pairwise queries pick the granularity",
        "Zhang, Wang & Shang, EMNLP 2023 (arXiv 2305.14871). Queries from the authors' code, "
        "github.com/zhang-yu-wei/ClusterLLM at commit b3bc54c: perspective/1_predict_triplet/"
        "scripts/triplet_sampling.sh (`--max_query 1024`, banking77) and predict_triplet.sh "
        "(gpt-3.5-turbo-0301, temperature 0); granularity/sample_pairs.py (one pair per merge "
        "step from 2 to 200 clusters, `--k` rounds; scripts/sample_pairs.sh runs k = 1 and 3). "
        "Gains as restated by others: Huang & He's Table 2 in github.com/AkramChaabnia/"
        "text-clustering-llm at commit 6ae8d48, RESEARCH_ASSESSMENT.md; a reading note of the "
        "paper's section 4.4 that the code index holds without naming its repository",
        "Banking77, CLINC and 12 more (14 datasets)",
        "1,024 triplet queries (GPT-3.5) to fine-tune the embedder, then 198 (k = 1) or 594 "
        "(k = 3) pairwise queries for the granularity: 1,222-1,618 per dataset; about $0.6 per "
        "dataset on average (abstract)",
        "its Banking77 / CLINC table: not found in a reachable source (the official README has "
        "no figures). Restated: on Bank77 'ClusterLLM-E increases the performance by 9.19' (E5 "
        "embedder, metric not named; unattributed note, not checked against the paper). Huang "
        "& He's Table 2, k-means on Instructor → ClusterLLM (no Banking77 / CLINC there): "
        "Massive-I NMI 74.49 → 77.64 (+3.15), ACC 56.55 → 60.69; MTOP-I NMI 71.46 → 73.83; "
        "Massive-D 67.31 → 68.67; GoEmo 21.54 → 23.89; ArxivS2S 48.48 → 50.45",
        (("classify", 1000), ("keyphrases", 1000), ("propose", 1000)),
    ),
    (
        "Clustering as classification: label generation in batches of 15, one merge, then "
        "classification",
        "Huang & He 2024 (arXiv 2410.00927); datasets and table as restated by a third-party "
        "reproduction (github.com/AkramChaabnia/text-clustering-llm, RESEARCH_ASSESSMENT.md, "
        "'Table 2 — small split, GPT-3.5-turbo'), not checked against the paper",
        "ArxivS2S, GoEmo, Massive-D, Massive-I, MTOP-I (not Banking77 or CLINC)",
        "one classification query per text (per the restated algorithm) plus n/15 label "
        "generation batches and one merge: about 1,070 per 1,000 texts",
        "on Banking77 / CLINC not evaluated; restated: Massive-I ACC 71.75 against "
        "56.55 for k-means on Instructor, NMI 78.00 against 74.49 (the same source labels "
        "these figures Massive-D elsewhere); uses 20% of the gold label names as seeds",
        (("classify", 1000),),
    ),
    (
        "GoalEx: propose / assign / select",
        "Wang, Shang & Zhong, EMNLP 2023 (arXiv 2305.13749, Goal-Driven Explainable Clustering "
        "via Language Descriptions); the authors' code, github.com/ZihanWangKi/GoalEx at commit "
        "a38275e: README.md (its AG News run) and src/iterative_cluster.py (defaults and its "
        "cost estimate); its labelled corpora in processed_data/",
        "AG News, DBpedia, NYT (topic, location), synthetic sets (processed_data/); not "
        "Banking77 or CLINC",
        "per iteration 30 // 8 + 1 = 4 proposer calls (gpt-3.5-turbo) and one assigner query "
        "per (text, description): 30 × 1,024 = 30,720 on the README's AG News run of 1,024 "
        "texts, answered by a local flan-t5-xl (no API cost); at most 5 iterations "
        "(`--iterative_max_rounds`): up to 20 API calls and 153,600 local queries",
        "not found: the repository holds data and code, no result table; the paper's table is "
        "not in a reachable source",
        (
            ("propose", 50),
            ("propose", 200),
            ("propose", 50, "ag_news"),
            ("propose", 200, "ag_news"),
        ),
    ),
    (
        "k-LLMmeans: k-means whose centroids are LLM summaries",
        "Diaz-Rodriguez 2025 (arXiv 2502.09667); figures from the authors' results notebook "
        "(github.com/jairoadiazr/k-LLMmeans, results/process_offline_results.ipynb at commit "
        "5f736f3: its printed LaTeX table, NMI x 100, mean of 10 seeds); calls from the "
        "same repository's kLLMmeans.py (one summarize_cluster call per cluster in each LLM "
        "iteration, gpt-4o)",
        "Bank77, CLINC, GoEmo, Massive-I, Massive-D (the notebook's list)",
        "one summary per cluster per LLM iteration: Banking77 77 calls with 1 iteration, "
        "385 with 5; CLINC 150 / 750",
        "NMI over k-means on the same embedder: SBERT, Banking77 80.9 → 81.7 (1 iteration) / "
        "81.8 (5) / 82.2 (5, 'FS' variant), CLINC 91.0 → 91.6 / 91.9 / 92.5; e5-large, "
        "Banking77 76.7 → 78.6 / 79.0 / 79.5, CLINC 90.8 → 91.6 / 92.0 / 92.5; OpenAI "
        "embeddings, Banking77 83.0 → 83.6 / 83.6 / 84.1, CLINC 92.0 → 92.5 / 92.8 / 93.1: "
        "+0.004 to +0.019 NMI with 77 calls, +0.004 to +0.028 with 385 (distilbert 64.4 → "
        "64.8 / 64.8 / 64.9 included)",
        (
            ("classify", 200),
            ("keyphrases", 200),
            ("propose", 77, "banking77", "llm_value.lit_b77"),
            ("propose", 385, "banking77", "llm_value.lit_b77"),
        ),
    ),
]


def notes(stem: str) -> list[str]:
    """The hand-written reading of the figures (``<stem>.notes.md``), kept across rewrites."""
    path = RESULTS / f"{stem}.notes.md"
    return [path.read_text().rstrip(), ""] if path.exists() else []


def write_report(report: dict[str, Any], stem: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    chart = write_chart(report, RESULTS / f"{stem}.png")
    m = report["machine"]
    grid = report["grid"]
    lines = [
        "# What the LLM modes are worth (issue 18)",
        "",
        f"{m['date']}; {m['platform']}, {m['cpus']} CPUs (shared). Produced by "
        f"`python -m bench.llm_value{' --quick' if report['quick'] else ''}`: a seeded "
        f"subsample of {grid['n']:,} texts per corpus, K given (its number of classes), judges "
        f"of accuracy p ∈ {{{', '.join(map(str, grid['p']))}}} (`bench.judge.SimulatedJudge`: "
        "each text perceived as its gold class with probability p, else as the class whose "
        "centroid is nearest; answers from the gold labels of the texts in the prompt only), "
        f"call budgets {{{', '.join(map(str, grid['budgets']))}}}. Every run through "
        "`corpusmap.api.run`; NMI / ARI / ACC against the gold labels; calls and tokens "
        "as the judge counted them (4 characters a token); gain: NMI minus the budget-0 run of "
        "the same mode (no LLM).",
        "",
        *notes(stem),
        "## Quality by mode, p and budget",
        "",
        "| corpus | mode | p | budget | calls | tokens | NMI | ARI | ACC | gain NMI |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report["corpora"]:
        for mode, base in c["baselines"].items():
            lines.append(
                f"| {c['dataset']} | {mode} | – | 0 | 0 | 0 | {fmt(base['nmi'])} | "
                f"{fmt(base['ari'])} | {fmt(base['acc'])} | – |"
            )
        for r in c["runs"]:
            if "skipped" in r:
                lines.append(
                    f"| {c['dataset']} | {r['mode']} | {r['p']} | {r['budget']} | – | – | "
                    f"needs {r['skipped']} calls | | | |"
                )
                continue
            same = f" (= {r['same_as']})" if "same_as" in r else ""
            lines.append(
                f"| {c['dataset']} | {r['mode']} | {r['p']} | {r['budget']}{same} | "
                f"{r['calls']} | {r['tokens']:,} | {fmt(r['nmi'])} | {fmt(r['ari'])} | "
                f"{fmt(r['acc'])} | {r['gain_nmi']:+.3f} |"
            )
    lines += [
        "",
        "A budget marked (= B) is the run of budget B: the mode plans the same calls with both "
        "budgets (`corpusmap.plan.plan_llm`), so it asks the same questions of the same seeded "
        "judge (not re-run).",
    ]
    lines += worst_section(report)
    lines += [
        "",
        "## The classify guard, on and off",
        "",
        "`llm.classify.label_then_classify` in-process on the same vectors and judge. The guard "
        "as it was when this table was measured (issue 18's fifth round weighs answers against "
        "the embedding's own clusters instead: `llm.classify_guard.guard_by_clusters`) "
        "(`llm.guard`, steps 4-5 of `llm.classify`): the LLM first classifies 15 near-duplicate "
        "pairs; from the share s it puts in one category its accuracy q solves "
        "s = q² + (1 - q)² (its two mistakes on a pair alike). From q = 0.8 up every answer "
        "stands; under it an answer that disagrees with the embedding stands only where q beats "
        "the embedding's estimated accuracy at that text's margin, and the run falls back to the "
        "offline categories when the LLM's answers fit them better than its own ('answers "
        "dropped' counts the former; 'offline' marks the latter, which shows as the no-LLM "
        "figure). Guard off: every answer replaces the embedding's, no prototype refinement.",
        "",
        "| corpus | p | budget | NMI guard on | NMI guard off | ACC on | ACC off | answers dropped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report["corpora"]:
        for g in c["guard"]:
            dropped = "offline" if g.get("fallback_on") else g["dropped_on"]
            lines.append(
                f"| {c['dataset']} | {g['p']} | {g['budget']} | {fmt(g['nmi_on'])} | "
                f"{fmt(g['nmi_off'])} | {fmt(g['acc_on'])} | {fmt(g['acc_off'])} | "
                f"{dropped} |"
            )
    lines += keyphrase_guard_section(report)
    lines += [
        "",
        "## Labels: LLM explanations against keyword ones",
        "",
        "The LLM labeler (`llm.labeler.LLMLabeler`, one call per cluster) on the clusters of the "
        "K-given cluster run; explanation faithfulness (`clustering.faithfulness`) of the LLM's "
        "labels, of the keyword labels, and of what `prefer_faithful` shows (the keyword label "
        "where the LLM's is less faithful by more than 0.10; measured before "
        "`FAITHFULNESS_RATIO`, which also asks it to score under half the keyword one: see "
        "the notes).",
        "",
        "| corpus | p | clusters | calls | faithfulness LLM | keywords | shown | kept keyword label |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report["corpora"]:
        for r in c["labels"]:
            lines.append(
                f"| {c['dataset']} | {r['p']} | {r['clusters']} | {r['calls']} | "
                f"{fmt(r['faithfulness_llm'])} | {fmt(r['faithfulness_keywords'])} | "
                f"{fmt(r['faithfulness_shown'])} | {r['kept_keywords']} |"
            )
    lines += ["", "## Gain against calls", ""]
    lines.append(f"![gain against calls]({chart.name})" if chart else "(matplotlib not installed)")
    lines += hierarchy_section()
    lines += published_section(report)
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def hierarchy_section() -> list[str]:
    """The hierarchy's pairwise checks on gold parents (``bench.llm_value_hierarchy``), when
    its results are there."""
    path = RESULTS / "llm_value_hierarchy.json"
    if not path.exists():
        return []
    from bench.llm_value_hierarchy import hierarchy_table

    report = json.loads(path.read_text())
    m = report["machine"]
    return [
        "",
        "## The hierarchy's pairwise checks, on gold parents",
        "",
        f"`python -m bench.llm_value_hierarchy` ({m['date']}): {report['n']:,} posts of "
        f"{report['corpus']} (cached embeddings and UMAP space); gold parents: the newsgroup "
        f"prefixes ({report['gold_parents']['7']}: comp, rec, sci, talk, alt, misc, soc; or "
        f"{report['gold_parents']['5']} with alt/misc/soc as one). Leaves: the cluster mode with "
        "K given (20) and with K chosen; parents by `corpusmap.structure.choose_hierarchy`: "
        "offline (silhouette) and with the LLM's pairwise checks (at most "
        f"{report['max_calls']} calls) answered by the judge at parent level, "
        f"{report['judge_seeds']} judge seeds averaged (parents and calls are means). NMI: "
        "every clustered text's parent against its gold parent; sibling purity: the share of "
        "leaf pairs under one parent whose majority gold parents agree.",
        "",
        *hierarchy_table(report),
    ]


def worst_section(report: dict[str, Any]) -> list[str]:
    """The least gain of each mode at each p over the budgets: the issue's bar is -0.01."""
    lines = [
        "",
        "### The least gain over the budgets (the bar: never under -0.01)",
        "",
        "| corpus | mode | " + " | ".join(f"p={p}" for p in report["grid"]["p"]) + " |",
        "|---|---|" + "---:|" * len(report["grid"]["p"]),
    ]
    for c in report["corpora"]:
        for mode in MODES:
            cells = []
            for p in report["grid"]["p"]:
                gains = [
                    r["gain_nmi"]
                    for r in c["runs"]
                    if r.get("mode") == mode and r.get("p") == p and "gain_nmi" in r
                ]
                cells.append(f"{min(gains):+.3f}" if gains else "–")
            lines.append(f"| {c['dataset']} | {mode} | " + " | ".join(cells) + " |")
    return lines


def keyphrase_guard_section(report: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## The keyphrase guard, on and off",
        "",
        "Every text expanded by the judge in-process (`llm.keyphrases.KeyphraseEmbedder`), then "
        "the cluster mode's stages (`reduce_vectors`, `fit_clusters`, K given) on the vectors "
        "without expansion, with the guard (`llm.keyphrases.guard_expansion`) and without it. "
        "The guard reads each text's keyphrase vector back from its expanded and own vectors, "
        "groups them (k-means, K groups): the group is the LLM's answer; 100 near-duplicate "
        "pairs give its accuracy q as for classify; the group most of the text's 15 nearest "
        "neighbours (own vectors) got is the embedding's answer, the vote's lead its margin. "
        "From q = 0.8 up every expansion stays; under it, if the embedding is estimated more "
        "accurate than the LLM over all texts every text gets its own vector back ('all'), "
        "else `llm.guard.guard_answers` picks the texts that keep their expansion.",
        "",
        "| corpus | p | NMI no LLM | guard on | guard off | q estimated | embedding est. | "
        "expansions undone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report["corpora"]:
        for g in c.get("keyphrase_guard", []):
            info = g["guard"]
            undone = "all" if info.get("dropped_all") else info.get("dropped", 0)
            lines.append(
                f"| {c['dataset']} | {g['p']} | {fmt(g['nmi_none'])} | {fmt(g['nmi_on'])} | "
                f"{fmt(g['nmi_off'])} | {fmt(info.get('llm_accuracy'))} | "
                f"{fmt(info.get('embedding_accuracy'))} | {undone} |"
            )
    return lines


def published_section(report: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Beside the published methods",
        "",
        "The number of LLM queries each method spends by design, its reported gain where a "
        "reachable source states it (cited in the row; 'not found' otherwise: no figure here "
        "is from memory), and ours at p = 0.9 with a budget near that number of calls (or "
        "exactly it, run apart: `--modes propose --p 0.9 --budgets 77 385 --stem "
        "llm_value.lit_b77`), on "
        "Banking77 or on the corpus the method was measured on (corpus mode, budget: calls "
        "spent → NMI gain over the same mode without an LLM). Their "
        "gains are over their own baselines and embedders (Instructor, E5), ours over "
        "all-MiniLM-L6-v2 on a 1,000-text sample: the columns sit side by side, they do not "
        "rank the methods.",
        "",
        "| method | source | corpora | LLM queries | reported gain | ours, p = 0.9 |",
        "|---|---|---|---|---|---|",
    ]
    for method, paper, corpus, queries, gain, ours_at in PUBLISHED:
        cells = []
        for mode, budget, *on in ours_at:
            prefix = on[0] if on else "banking77"
            # A run outside this grid (the method's exact call count) comes from its own stem.
            corpora = (
                json.loads((RESULTS / f"{on[1]}.json").read_text())["corpora"]
                if len(on) > 1
                else report["corpora"]
            )
            found = next((c for c in corpora if c["dataset"].startswith(prefix)), None)
            rows = [
                r
                for r in (found or {}).get("runs", [])
                if r.get("mode") == mode
                and r.get("p") == 0.9
                and r.get("budget") == budget
                and "gain_nmi" in r
            ]
            name = (found or {}).get("dataset", prefix).split("_test")[0]
            cells += [f"{name} {mode}, {budget}: {r['calls']} → {r['gain_nmi']:+.3f}" for r in rows]
        ours = "; ".join(cells) or "–"
        lines.append(f"| {method} | {paper} | {corpus} | {queries} | {gain} | {ours} |")
    return lines


def write_chart(report: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [(c, mode) for c in report["corpora"] for mode in MODES]
    fig, axes = plt.subplots(
        len(report["corpora"]), len(MODES), figsize=(4 * len(MODES), 3.2 * len(report["corpora"]))
    )
    axes = np.atleast_2d(axes)
    for (c, mode), ax in zip(panels, axes.flat, strict=True):
        for p in report["grid"]["p"]:
            rows = [
                r
                for r in c["runs"]
                if r.get("mode") == mode and r.get("p") == p and "gain_nmi" in r
            ]
            if rows:
                ax.plot(
                    [0] + [r["calls"] for r in rows],
                    [0.0] + [r["gain_nmi"] for r in rows],
                    marker="o",
                    label=f"p={p}",
                )
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(-0.01, color="red", lw=0.6, ls="--")
        ax.set_title(f"{c['dataset']}: {mode}", fontsize=9)
        ax.set_xlabel("judge calls")
        ax.set_ylabel("NMI gain over no LLM")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
