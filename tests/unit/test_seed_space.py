"""The seeded space on corpora too small for LDA: a few seeds leave LDA's shrunk within-class
covariance singular (scipy raises LinAlgError); the space falls back to whitening."""

from __future__ import annotations

import numpy as np
import pytest

from clustering.constraints import FREE, Constraints
from clustering.seed_space import constrained_space, lda_space


def tiny(n: int = 15, dim: int = 384) -> tuple[np.ndarray, Constraints]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    seeds = np.full(n, FREE, dtype=np.int64)
    seeds[:6] = [0, 0, 1, 1, 2, 2]
    return vectors, Constraints(seeds, classes=("a", "b", "c"))


def test_lda_itself_fails_on_six_seeds() -> None:
    """The case the fallback exists for (if LDA stops failing here, the test says so)."""
    vectors, constraints = tiny()
    with pytest.raises(np.linalg.LinAlgError):
        lda_space(vectors, constraints.seeds)


@pytest.mark.parametrize("method", ["auto", "lda"])
def test_a_singular_lda_falls_back_to_whitening(method: str) -> None:
    vectors, constraints = tiny()
    space, used = constrained_space(vectors, constraints, method, n_clusters=3)
    assert used == "whiten"
    assert space.shape == vectors.shape and np.isfinite(space).all()
    assert np.allclose(np.linalg.norm(space, axis=1), 1.0)
