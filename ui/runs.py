"""Runs in background threads, owned by the server process (one registry, held by
``ui.resources.run_registry``), so a run completes even if its browser tab is closed.

A job keeps only what the store does not: the live progress message and the error text. The
stages and their timings are stored by the run itself; the Run page reads both.

In team mode a job runs with the store scoped to the user who started it (its role and
workspace are checked by every store call the run makes), and a job is visible only to sessions
acting in the job's workspace.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from clustering.types import Embedder
from corpusmap import workflow
from corpusmap.request import RunRequest
from storage import Store
from storage.access import Access
from ui.errors import USER_ERRORS

log = logging.getLogger(__name__)


@dataclass
class RunJob:
    job_id: int
    corpus_id: int
    workspace_id: int | None = None
    """The workspace of the store it runs with (None: single-user mode)."""
    queued_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    run_id: int | None = None
    stage: str = "queued"
    fraction: float = 0.0
    message: str = "waiting for the run before it to finish"
    error: str | None = None
    plan: dict[str, Any] = field(default_factory=dict)
    """The LLM budget the run planned before its first call (empty until then)."""
    created: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at

    def on_progress(self, stage: str, fraction: float, message: str) -> None:
        self.stage, self.fraction, self.message = stage, fraction, message

    def on_plan(self, plan: dict[str, Any]) -> None:
        self.plan = dict(plan)

    def on_created(self, run_id: int) -> None:
        self.run_id = run_id
        self.created.set()


class RunRegistry:
    """Starts runs one at a time (two runs would share two cores and both crawl) and keeps
    their jobs for the life of the process."""

    def __init__(self) -> None:
        self._jobs: dict[int, RunJob] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._one_at_a_time = threading.Lock()
        self.reduce_compiled = False
        """Whether a run in this process got past UMAP (numba compiles ~30 s the first time)."""

    def start(
        self,
        store: Store,
        request: RunRequest,
        *,
        embedder: Embedder | None = None,
        api_key: str | None = None,
    ) -> RunJob:
        """Queue ``request`` (on a stored corpus) to run with ``store`` (in team mode the store
        scoped to the user starting it); ``embedder`` is the server's loaded encoder,
        ``api_key`` reaches the run's LLM session only."""
        if store.access is not None:
            store.access.require("edit")  # refused now, not in a thread no one watches
        with self._lock:
            job = RunJob(
                next(self._ids),
                request.corpus_id,
                store.access.workspace_id if store.access is not None else None,
            )
            if not self.reduce_compiled:
                job.message = (
                    "waiting for the warm-up (model load, UMAP compilation; once per server)"
                )
            self._jobs[job.job_id] = job
        thread = threading.Thread(
            target=self._work,
            args=(job, store, request, embedder, api_key),
            name=f"corpusmap-run-{job.job_id}",
            daemon=True,
        )
        thread.start()
        return job

    def exclusive(self) -> threading.Lock:
        """The lock runs take one at a time (the warm-up takes it too)."""
        return self._one_at_a_time

    def _work(
        self,
        job: RunJob,
        store: Store,
        request: RunRequest,
        embedder: Embedder | None,
        api_key: str | None,
    ) -> None:
        with self._one_at_a_time:
            job.started_at = time.time()
            job.stage, job.message = "starting", "loading the corpus"
            try:
                workflow.execute(
                    store,
                    request,
                    api_key=api_key,
                    embedder=embedder,
                    progress=self._progress(job),
                    on_created=job.on_created,
                    on_plan=job.on_plan,
                )
                job.stage, job.fraction, job.message = "done", 1.0, "done"
            except USER_ERRORS as err:
                job.error = str(err)
            except Exception as err:  # noqa: BLE001 - a thread has no one else to tell
                log.exception("run job %d failed", job.job_id)
                job.error = f"{type(err).__name__}: {err}"
            finally:
                job.finished_at = time.time()
                job.created.set()

    def _progress(self, job: RunJob) -> Any:
        def progress(stage: str, fraction: float, message: str) -> None:
            if job.stage == "reduce" and stage != "reduce":
                self.reduce_compiled = True
            job.on_progress(stage, fraction, message)

        return progress

    def get(self, job_id: int | None, who: Access | None = None) -> RunJob | None:
        """The job this session started (its id is kept in the session), if ``who`` may see
        it: a user who switched workspace no longer sees the job of the other one."""
        job = self._jobs.get(job_id) if job_id is not None else None
        return job if job is not None and _visible(job, who) else None

    def for_run(self, run_id: int, who: Access | None) -> RunJob | None:
        return next(
            (j for j in self._jobs.values() if j.run_id == run_id and _visible(j, who)), None
        )

    def active(self, who: Access | None) -> list[RunJob]:
        """The jobs not done yet that ``who`` may see (all of them in single-user mode)."""
        return [j for j in self._jobs.values() if not j.done and _visible(j, who)]

    def wait(self, job: RunJob, timeout: float | None = None) -> bool:
        """Block until the job ends (tests, and the CLI-like path); True if it ended."""
        deadline = None if timeout is None else time.time() + timeout
        while not job.done:
            if deadline is not None and time.time() > deadline:
                return False
            time.sleep(0.1)
        return True


def _visible(job: RunJob, who: Access | None) -> bool:
    return who is None or job.workspace_id == who.workspace_id
