"""Beyond one machine: the embed stage and the batch assignment on a Ray cluster.

An optional extra: ``pip install 'corpusmap[ray]'``. ``corpusmap run ... --ray auto`` joins the
running cluster (or starts a local one); ``--ray ray://HOST:10001`` or ``--ray HOST:6379`` joins
that one. Two stages go out to the cluster; everything else stays on the driver:

- embed: Ray Data ``map_batches`` over actors that each load the model once, one GPU per actor
  when the cluster has GPUs, CPU actors otherwise (:class:`RayEmbedder`);
- the assignment batches of the sample-and-assign path (UMAP ``transform``, HDBSCAN
  ``approximate_predict``), as Ray tasks that share the fitted models through the object
  store (:class:`RayBatchMapper`).

Results come back to the driver, which writes them into the store the run uses, chunk by
chunk, exactly as a single-process run does. Several machines writing one store need
PostgreSQL (``--db postgresql://...``); SQLite is for one machine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from clustering.embed import SentenceTransformerEmbedder
from corpusmap.errors import CorpusmapError

log = logging.getLogger(__name__)

__all__ = ["DistributedError", "RayBatchMapper", "RayEmbedder", "connect", "ray_available"]

INSTALL_HINT = "pip install 'corpusmap[ray]'"
EMBED_CHUNK_SIZE = 65_536
"""Texts per Ray Data job; each chunk's vectors are written to the store before the next one."""
EMBED_BATCH_SIZE = 1_024
"""Texts per ``map_batches`` call on an actor (the model then batches them itself)."""
MAX_IN_FLIGHT_PER_CPU = 2
"""Assignment tasks submitted ahead per CPU: enough to keep workers busy, few enough that the
batches waiting in the object store stay small."""

T = TypeVar("T")


class DistributedError(CorpusmapError):
    """Ray is missing, or the cluster cannot be reached."""


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise DistributedError(f"--ray needs Ray: {INSTALL_HINT}") from err
    return ray


def connect(address: str = "auto", *, num_cpus: int | None = None) -> dict[str, float]:
    """Join the Ray cluster at ``address``; ``auto`` joins the running one or starts a local one.

    ``num_cpus`` caps a local instance (CI: 2). Returns the cluster's resources.
    """
    ray = _ray()
    if not ray.is_initialized():
        try:
            if address in ("auto", "local"):
                _init_auto(ray, num_cpus)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise DistributedError(
                f"cannot reach the Ray cluster at {address!r} ({err}); start one with "
                "`ray start --head`, or pass --ray auto to run a local instance"
            ) from err
    resources = {k: float(v) for k, v in ray.cluster_resources().items()}
    log.info(
        "Ray: %d CPUs, %d GPUs, %d nodes",
        resources.get("CPU", 0),
        resources.get("GPU", 0),
        len(ray.nodes()),
    )
    return resources


def _init_auto(ray: Any, num_cpus: int | None) -> None:
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
        return
    try:
        ray.init(address="auto", log_to_driver=False)
    except ConnectionError:
        log.info("no running Ray cluster: starting a local instance")
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


# --- embed: Ray Data map_batches on actors ---------------------------------------------------


class _EmbedActor:
    """Holds one loaded model for the life of the actor; embeds a batch of texts per call."""

    def __init__(self, model: str | None, device: str, precision: str, threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.embedder = SentenceTransformerEmbedder(model, device=device, precision=precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.embed([str(t) for t in batch["text"]])
        return {"position": batch["position"], "vector": vectors}


class RayEmbedder:
    """An ``Embedder`` whose ``embed`` runs on a Ray cluster's actors.

    Its ``model_id`` is the local embedder's, so the store's embedding cache is shared: a text
    embedded on the cluster is never embedded again locally, and the other way round.
    ``embed_texts`` calls it with ``chunk_size`` texts at a time and stores each chunk.
    """

    chunk_size = EMBED_CHUNK_SIZE

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = EMBED_BATCH_SIZE,
        concurrency: int | None = None,
        use_gpus: bool | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.use_gpus = use_gpus
        self._local = SentenceTransformerEmbedder(model, precision=precision)

    @property
    def model_id(self) -> str:
        return self._local.model_id

    @property
    def cache_key(self) -> str:
        """The local embedder's: its precision is what the CPU actors choose on this machine."""
        return self._local.cache_key

    def _plan(self) -> dict[str, Any]:
        """Actor count and resources: one actor per GPU, else one single-threaded actor per CPU."""
        ray = _ray()
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        use_gpus = gpus > 0 if self.use_gpus is None else self.use_gpus
        if use_gpus:
            if gpus == 0:
                raise DistributedError("use_gpus=True but the Ray cluster has no GPU")
            device = "cuda" if self.device == "auto" else self.device
            return {
                "concurrency": self.concurrency or gpus,
                "num_gpus": 1,
                "num_cpus": 1,
                "device": device,
                "threads": None,
            }
        cpus = max(1, int(resources.get("CPU", 1)))
        return {
            "concurrency": self.concurrency or cpus,
            "num_gpus": 0,
            "num_cpus": 1,
            "device": "cpu" if self.device == "auto" else self.device,
            "threads": 1,
        }

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        ray = _ray()
        n = len(texts)
        if n == 0:
            return np.zeros((0, self._local.dimension), dtype=np.float32)
        plan = self._plan()
        dataset = ray.data.from_items(
            [{"position": i, "text": t} for i, t in enumerate(texts)],
            override_num_blocks=max(1, min(plan["concurrency"] * 4, -(-n // self.batch_size))),
        )
        embedded = dataset.map_batches(
            _EmbedActor,
            fn_constructor_kwargs={
                "model": self.model,
                "device": plan["device"],
                # CPU actors encode in the precision chosen here, the one the cache key names.
                "precision": self._local.precision if plan["device"] == "cpu" else self.precision,
                "threads": plan["threads"],
            },
            batch_size=self.batch_size,
            batch_format="numpy",
            concurrency=plan["concurrency"],
            num_cpus=plan["num_cpus"],
            num_gpus=plan["num_gpus"],
        )
        out: np.ndarray | None = None
        seen = 0
        # Rows may come back in any order; each carries its position.
        for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            vectors = np.asarray(batch["vector"], dtype=np.float32)
            if out is None:
                out = np.zeros((n, vectors.shape[1]), dtype=np.float32)
            out[np.asarray(batch["position"], dtype=np.int64)] = vectors
            seen += len(vectors)
        if out is None or seen != n:
            raise DistributedError(f"Ray returned {seen} vectors for {n} texts")
        return out


# --- assignment batches: Ray tasks -----------------------------------------------------------


def _run_batch(func: Callable[[Any, np.ndarray], T], shared: Any, batch: np.ndarray) -> T:
    return func(shared, batch)


class RayBatchMapper:
    """A ``BatchMapper`` that runs each batch as a Ray task, results in submission order.

    The fitted models are put in the object store once; at most ``max_in_flight`` batches are
    out at a time, so the driver's memory stays flat however many batches there are.
    """

    def __init__(self, max_in_flight: int | None = None, num_cpus: float = 1) -> None:
        self.max_in_flight = max_in_flight
        self.num_cpus = num_cpus

    def __call__(
        self, func: Callable[[Any, np.ndarray], T], shared: Any, batches: Iterable[np.ndarray]
    ) -> list[T]:
        ray = _ray()
        window = self.max_in_flight or max(
            2, MAX_IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1))
        )
        task = ray.remote(num_cpus=self.num_cpus)(_run_batch)
        shared_ref = ray.put(shared)
        pending: dict[Any, int] = {}
        results: dict[int, T] = {}

        def collect(wait_for: int) -> None:
            done, _ = ray.wait(list(pending), num_returns=wait_for)
            for ref in done:
                results[pending.pop(ref)] = ray.get(ref)

        count = 0
        for index, batch in enumerate(batches):
            if len(pending) >= window:
                collect(1)
            pending[task.remote(func, shared_ref, batch)] = index
            count += 1
        if pending:
            collect(len(pending))
        log.info("ran %d batches of %s as Ray tasks", count, getattr(func, "__name__", func))
        return [results[i] for i in range(count)]
