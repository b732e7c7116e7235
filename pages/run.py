"""Run: the goal, the mode and its parameters, the LLM budget, then the run in the background
with its progress read from the store (it goes on if this tab is closed)."""

import streamlit as st

from corpusmap import labelers, modes, plan, views, workspace
from corpusmap.estimate import estimate_llm
from corpusmap.runs import (
    DEFAULT_EMBEDDING_MODEL,
    GOAL_EXAMPLES,
    MODE_HELP,
    MODE_TITLES,
    STAGE_TITLES,
    build_request,
    finished_fraction,
    stage_table,
)
from ui import data, frame, keys, mode_form, resources, settings, widgets
from ui.errors import user_errors

frame.require(__file__)

store = resources.store()
registry = resources.run_registry()
corpus = widgets.need_corpus(store)
n_texts = corpus.n_rows - corpus.n_empty

st.title("Run")
st.caption(f"Corpus #{corpus.id} {corpus.name}: {n_texts:,} texts in column `{corpus.text_column}`")
if not resources.allows("edit"):
    st.info(
        "You are a viewer in this workspace: runs are started by its editors. Open the finished "
        "ones from Explore or History.",
        icon=":material/visibility:",
    )
    st.stop()

# Widgets forget their state when the page is left: the goal and the truth column are kept in
# session state of their own, so the form still holds them on the way back (issue 15).
goal = st.text_area(
    "Goal (optional)",
    value=st.session_state.get(keys.RUN_GOAL, ""),
    placeholder=GOAL_EXAMPLES[0],
    help="What the clusters should be about. The LLM names and explains clusters with it in mind.",
    height=80,
)
st.session_state[keys.RUN_GOAL] = goal
st.caption("Examples: " + " · ".join(f"“{g}”" for g in GOAL_EXAMPLES))

mode = st.radio("Mode", list(MODE_TITLES), format_func=MODE_TITLES.get, horizontal=True)
st.caption(MODE_HELP[mode])
categories: tuple[str, ...] = ()
selection = "greedy"

left, right = st.columns(2)
with left:
    count = st.radio(
        "Number of clusters",
        [
            "Automatic (HDBSCAN)" if mode == "cluster" else "Automatic",
            "Fixed K (k-means)" if mode == "cluster" else "Fixed K",
        ],
        horizontal=True,
        help="Automatic finds dense groups and leaves outliers; fixed K puts every text in one of K.",
    )
    fixed = count.startswith("Fixed")
    k = st.number_input(
        "K",
        min_value=2,
        max_value=1000,
        value=20,
        disabled=not fixed,
        help="How many clusters to make.",
    )
    min_size = st.number_input(
        "Minimum cluster size (0 = automatic)",
        min_value=0,
        max_value=10_000,
        value=0,
        disabled=fixed or mode != "cluster",
        help="Smallest group HDBSCAN calls a cluster; automatic grows with the corpus (5 for a few hundred texts, about 17 for 3,000).",
    )
    reassign = st.toggle(
        "Reassign outliers",
        value=False,
        disabled=mode == "classify",
        help="Give every outlier the cluster of the nearest centre instead of leaving it grey.",
    )
    if mode == "propose":
        selection = st.radio(
            "Select descriptions by",
            ["greedy", "milp"],
            format_func={"greedy": "Greedy cover", "milp": "Integer programme (exact)"}.get,
            horizontal=True,
            help="Keep the descriptions that cover the most texts with the least overlap.",
        )
    if mode == "classify":
        typed_categories = st.text_area(
            "Your categories (optional, one per line)",
            height=100,
            help="Classify into these instead of labels the LLM proposes.",
        )
        categories = tuple(
            dict.fromkeys(c.strip() for c in typed_categories.splitlines() if c.strip())
        )
with right:
    model = st.text_input(
        "Embedding model",
        value=DEFAULT_EMBEDDING_MODEL,
        help="The bundled all-MiniLM-L6-v2 works offline; a local sentence-transformers folder also works.",
    )
    seed = st.number_input(
        "Seed",
        min_value=0,
        max_value=2**31 - 1,
        value=42,
        help="Same seed, same data, same clusters.",
    )
    truth_options = ["(none)", *[c for c in corpus.columns if c != corpus.text_column]]
    kept = st.session_state.get(keys.TRUTH_COLUMN)
    truth_default = (
        kept if kept in truth_options else ("label" if "label" in truth_options else "(none)")
    )
    truth = st.selectbox(
        "Ground-truth column (optional)",
        truth_options,
        index=truth_options.index(truth_default),
        help="A column of known classes: the run then reports NMI, ARI and accuracy against it.",
    )
    st.session_state[keys.TRUTH_COLUMN] = truth
    name = st.text_input("Run name (optional)")

if mode == "cluster":
    steering = mode_form.steering_controls(corpus, data.corpus_texts(corpus.id))
else:
    steering = mode_form.Steering()
structure = mode_form.structure_controls()
goal_vectors = mode_form.goal_vector_controls()

st.subheader("LLM", divider="gray")
kind = st.radio(
    "Name clusters with",
    [labelers.KEYWORDS, labelers.LLM],
    format_func={
        labelers.KEYWORDS: "Keywords (offline, instant)",
        labelers.LLM: "An LLM (OpenAI-compatible endpoint)",
    }.get,
    horizontal=True,
)
endpoint = llm_model = None
api_key = settings.secret(settings.API_KEY_NAME)
if kind == labelers.LLM:
    c1, c2 = st.columns(2)
    endpoint = c1.text_input(
        "Endpoint",
        value=settings.default_llm_endpoint(),
        placeholder="https://api.openai.com/v1 or http://127.0.0.1:8080/v1",
        help="Any OpenAI-compatible server; empty means OpenAI. `corpusmap llm serve` starts a local one.",
    )
    llm_model = c2.text_input("Model", value=settings.default_llm_model())
    st.caption(
        "API key: "
        + (
            "found (OPENAI_API_KEY in the environment or Streamlit secrets); it is never stored."
            if api_key
            else "none found (set OPENAI_API_KEY or add it to .streamlit/secrets.toml; a local server needs none)."
        )
    )
    budget = st.number_input(
        "LLM call budget (empty = planned)",
        min_value=0,
        value=None,
        placeholder="planned",
        help="Most calls the goal-driven steps (proposals, checks, classification, parent choice) may make; 0 = embeddings only. Naming clusters is counted apart.",
    )
else:
    budget = None

options = modes.ModeOptions(
    mode=mode,
    seed_label_column=steering.seed_label_column,
    seed_labels=steering.seed_labels,
    must_link=steering.must_link,
    cannot_link=steering.cannot_link,
    llm_budget=None if budget is None else int(budget),
    hierarchy=structure.hierarchy,
    n_parents=structure.n_parents,
    k_method=structure.k_method,
    selection=selection,
    categories=categories,
    rules=structure.rules,
    instruction=goal_vectors.instruction,
    expand_keyphrases=goal_vectors.expand_keyphrases,
)
request = llm_settings = None
with user_errors("Check the settings"):
    llm_settings = labelers.llm_settings(kind, base_url=endpoint, model=llm_model, api_key=api_key)
    request = build_request(
        corpus_id=corpus.id,
        goal=goal,
        n_clusters=int(k) if fixed else None,
        min_cluster_size=int(min_size) or None,
        reassign_outliers=reassign,
        random_state=int(seed),
        embedder=None if model == DEFAULT_EMBEDDING_MODEL else model,
        labeler=kind,
        label_column=None if truth == "(none)" else truth,
        name=name,
        options=options,
        llm={"base_url": endpoint or None, "model": llm_model or None},
    )
# What needs an LLM (its labels, keyphrases, a call budget) is refused without an endpoint: said
# here, before Start, which stays disabled (the estimate below still shows what it would cost).
needs_llm = (
    request.conflicts(llm_configured=llm_settings is not None) if request is not None else []
)
for sentence in needs_llm:
    st.error(f"Cannot start the run: {sentence}", icon=":material/error:")
planned_calls = 0
if (
    request is not None
    and kind == labelers.LLM
    and (mode != "cluster" or options.expand_keyphrases)
):
    with user_errors("Cannot plan the run"):
        llm_plan = data.mode_plan(request, len(store.list_runs(corpus.id)), llm_settings)
        planned_calls = int(llm_plan.get("calls", 0))
        names = (
            f"{MODE_TITLES[mode]} names its clusters itself"
            if mode != "cluster"
            else "naming clusters comes on top"
        )
        st.info(
            f"{views.plan_text(llm_plan)}. {names}; cached calls cost nothing.",
            icon=":material/calculate:",
        )
if request is not None and kind == labelers.LLM and mode == "cluster":
    estimate = estimate_llm(
        data.corpus_sample(corpus.id),
        n_clusters=int(k) if fixed else None,
        min_cluster_size=int(min_size) or None,
        goal=goal,
        model=llm_model,
    )
    n_calls = (
        f"{estimate.calls}"
        if fixed
        else f"about {estimate.calls} ({estimate.clusters_low}–{estimate.clusters_high})"
    )
    cost = "unknown price" if estimate.cost_usd is None else f"about ${estimate.cost_usd:.3f}"
    planned_calls = estimate.calls
    st.info(
        f"Estimate: {n_calls} LLM calls, one per cluster; about {estimate.prompt_tokens:,} prompt and "
        f"{estimate.completion_tokens:,} completion tokens; {cost}. Repeated calls are answered from the cache.",
        icon=":material/calculate:",
    )
    if structure.hierarchy and structure.n_parents is None and budget != 0:
        st.caption(
            f"The number of parents: up to {plan.pair_calls(options)} more calls of pairwise questions."
        )
if kind == labelers.KEYWORDS and mode == "cluster":
    st.caption(
        "No LLM calls: clusters are named by their top keywords. You can relabel with an LLM later."
    )
elif kind == labelers.KEYWORDS:
    st.caption(
        f"No LLM: {MODE_TITLES[mode].lower()} runs on embeddings alone and names clusters by their keywords."
    )

# The workspace's storage quota and daily LLM calls (team mode), checked again when it starts.
over_limits = workspace.run_limit_refusal(store, planned_calls) if request is not None else None
if over_limits:
    st.error(f"Cannot start the run: {over_limits}", icon=":material/error:")

if st.button(
    "Start run",
    type="primary",
    icon=":material/play_arrow:",
    disabled=steering.invalid or request is None or bool(needs_llm) or bool(over_limits),
):
    with user_errors("Cannot start the run"):
        job = registry.start(
            store, request, embedder=resources.embedder(request.embedding.model), api_key=api_key
        )
        st.session_state[keys.JOB_ID] = job.job_id

job = registry.get(st.session_state.get(keys.JOB_ID), store.access)
live = job is not None and not job.done


@st.fragment(run_every=settings.POLL_SECONDS if live else None)
def progress_panel() -> None:
    job = registry.get(st.session_state.get(keys.JOB_ID), store.access)
    if job is None:
        return
    st.subheader("Progress", divider="gray")
    run = store.get_run(job.run_id) if job.run_id is not None else None
    if job.done:
        label = f"Run {job.run_id or '…'} · {'failed' if job.error else 'finished'} · {job.elapsed:.0f} s"
    else:
        title = STAGE_TITLES.get(job.stage, job.stage)
        label = f"Run {job.run_id or '…'} · {title} · {job.message} · {job.elapsed:.0f} s"
    bar = finished_fraction(run, job.stage, job.fraction)  # moves within a long stage too
    st.progress(bar if not job.done or job.error else 1.0, text=label)
    if (
        not job.done
        and not registry.reduce_compiled
        and job.stage in ("queued", "starting", "embed", "reduce")
    ):
        st.caption(
            "The first run in a fresh server process spends about 30 s compiling UMAP's code "
            "(numba) in the reduce stage; later runs skip it."
        )
    if job.plan and not job.done:
        st.caption(views.plan_text(job.plan))
    st.dataframe(
        stage_table(run, job.stage, job.message),
        hide_index=True,
        column_config={"detail": st.column_config.TextColumn("detail", width="large")},
    )
    if run is not None:
        widgets.run_warnings(run)  # long texts cut, other languages: known from the start
    if job.error:
        st.error(f"Run {job.run_id or ''} failed: {job.error}", icon=":material/error:")
    elif job.done and run is not None:
        if st.session_state.get(keys.RUN_ID) != run.id:
            widgets.select_run(run.id)
        n = run.metrics.get("n_clusters")
        noise = run.metrics.get("noise_share", 0.0)
        st.success(
            f"Run {run.id} finished in {job.elapsed:.0f} s: {n} clusters, {noise:.0%} outliers.",
            icon=":material/check_circle:",
        )
        for line in views.outcome_lines(run):
            st.text(line)
        st.page_link(
            widgets.PAGES["explore"], label="Explore the clusters", icon=":material/scatter_plot:"
        )
    if live and job.done:
        st.rerun()  # stop polling, refresh the sidebar's run list


progress_panel()

active = registry.active(store.access)
others = [j for j in active if j.job_id != st.session_state.get(keys.JOB_ID)]
running = [r for r in store.list_runs() if r.status == "running"]
if others or running:
    st.subheader("Other runs", divider="gray")
    for other in others:
        st.caption(
            f"Run {other.run_id or '(queued)'} on corpus #{other.corpus_id}: {other.stage}, {other.elapsed:.0f} s"
        )
    known = {j.run_id for j in active}
    for run in running:
        if run.id not in known:
            st.caption(
                f"Run {run.id} says `running` but no worker has it: the server stopped during it (stage {run.stage})."
            )
