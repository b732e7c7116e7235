"""Automatic granularity (clustering.granularity): HDBSCAN micro-clusters, Ward merge to the best
Calinski-Harabasz cut, confident noise. Small seeded synthetic data only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score

from clustering.cluster import HDBSCANClusterer, MergedHDBSCANClusterer
from clustering.grains import (
    coarse_labels,
    granularity_metrics,
    k_spread,
    k_spread_sentence,
    renumber_coarse,
)
from clustering.granularity import (
    Granularity,
    calinski_harabasz_path,
    choose_n_clusters,
    coarse_grain,
    cut_merges,
    merge_micro_clusters,
    nearest_centroid_labels,
    neighbor_agreement,
    second_cut,
    ward_merges,
)
from clustering.pipeline import PipelineConfig, cluster_space, make_clusterer
from clustering.resampling import (
    ResampledFit,
    adjusted_rand,
    consensus_k,
    cut_stability,
    joins_sections,
    stable_cut,
)
from clustering.types import NOISE
from clustering.ward import best_cut, cuts_of_merges


def blobs(centers: np.ndarray, sizes: list[int], spread: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack(
        [
            c + spread * rng.standard_normal((s, centers.shape[1]))
            for c, s in zip(centers, sizes, strict=True)
        ]
    )


def truth_of(sizes: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes)), sizes)


def test_ward_costs_are_the_rise_in_within_cluster_sum_of_squares() -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 3))
    labels = np.arange(60) % 6
    merges = ward_merges(X, labels)
    assert merges.n_start == 6 and len(merges.costs) == 5
    assert np.all(np.diff(merges.costs) >= -1e-9)  # Ward is monotone

    def wss(lab: np.ndarray) -> float:
        return sum(((X[lab == c] - X[lab == c].mean(0)) ** 2).sum() for c in np.unique(lab))

    for k in range(6, 1, -1):
        cut = cut_merges(labels, merges, k)
        assert len(np.unique(cut)) == k
        expected = wss(labels) + merges.costs[: 6 - k].sum()
        assert wss(cut) == pytest.approx(expected)


def test_variance_ratio_path_matches_sklearn() -> None:
    X = blobs(np.array([[0, 0], [4, 0], [0, 4], [9, 9]], float), [30, 20, 25, 15], 0.8, seed=2)
    micro = np.arange(len(X)) % 12  # any over-segmentation
    merges = ward_merges(X, micro)
    scores = calinski_harabasz_path(merges)
    assert sorted(scores) == list(range(2, 13))
    for k, value in scores.items():
        assert value == pytest.approx(calinski_harabasz_score(X, cut_merges(micro, merges, k)))


def test_merge_recovers_blobs_from_an_over_segmentation() -> None:
    sizes = [80, 60, 50, 40]
    centers = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], float)
    X = blobs(centers, sizes, 0.7, seed=3)
    # Each blob cut in two halves along x: eight micro-clusters, four real ones.
    micro = truth_of(sizes) * 2 + (X[:, 0] > centers[truth_of(sizes), 0])
    merges = ward_merges(X, micro)
    assert choose_n_clusters(merges) == 4
    labels, confidence, info = merge_micro_clusters(X, micro)
    assert info.n_micro == 8 and info.n_clusters == 4
    assert (labels != NOISE).all() and (confidence == 1).all()
    # Each found cluster is exactly one blob.
    for c in np.unique(labels):
        assert len(np.unique(truth_of(sizes)[labels == c])) == 1


def test_merge_keeps_fine_clusters_apart() -> None:
    """Many small well-separated groups (intent-like) must not be merged into few."""
    rng = np.random.default_rng(4)
    centers = rng.uniform(-50, 50, size=(20, 5))
    sizes = [25] * 20
    X = blobs(centers, sizes, 0.5, seed=4)
    labels, _, info = merge_micro_clusters(X, truth_of(sizes))
    assert info.n_clusters == 20


def test_noise_inside_a_cluster_joins_it_and_a_boundary_point_stays_noise() -> None:
    sizes = [50, 50, 50]
    centers = np.array([[0, 0], [20, 0], [10, 17.32]], float)  # an equilateral triangle
    X = blobs(centers, sizes, 1.0, seed=5)
    middle = centers.mean(axis=0)
    X = np.vstack([X, [[0.1, 0.1]], [middle]])
    micro = np.concatenate([truth_of(sizes), [NOISE, NOISE]])
    labels, confidence, info = merge_micro_clusters(X, micro)
    assert info.n_clusters == 3
    assert labels[-2] == labels[0] and confidence[-2] >= 0.5
    # Equally far from three clusters: its neighbours split three ways, so it stays noise.
    assert labels[-1] == NOISE and confidence[-1] < 0.5
    assert info.noise_share == pytest.approx(1 / len(X))


def test_nearest_centroid_and_agreement_helpers() -> None:
    X = np.array([[0.0], [0.2], [5.0], [5.2], [0.1], [4.9]])
    labels = np.array([0, 0, 1, 1, NOISE, NOISE])
    filled = nearest_centroid_labels(X, labels)
    assert filled.tolist() == [0, 0, 1, 1, 0, 1]
    share = neighbor_agreement(X, filled, np.array([4, 5]), n_neighbors=2)
    assert share.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("seed", [0, 1])
def test_clusterer_finds_the_blobs_and_orders_ids_by_size(seed: int) -> None:
    sizes = [120, 90, 70, 50, 40]
    centers = np.random.default_rng(seed).uniform(-20, 20, size=(5, 5))
    X = blobs(centers, sizes, 0.6, seed=seed).astype(np.float32)
    result = MergedHDBSCANClusterer().fit_predict(X)
    assert result.n_clusters == 5
    assert result.noise_share < 0.05
    counts = np.bincount(result.labels[result.labels != NOISE])
    assert list(counts) == sorted(counts, reverse=True)
    assert np.all((result.probabilities >= 0) & (result.probabilities <= 1))
    clusterer = MergedHDBSCANClusterer()
    again = clusterer.fit_predict(X)
    assert np.array_equal(result.labels, again.labels)
    raw = clusterer.model_.labels_
    mapped = [clusterer.micro_to_cluster_[int(r)] for r in raw if r != NOISE]
    assert mapped == [int(x) for x, r in zip(again.labels, raw, strict=True) if r != NOISE]


@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_tiny_inputs_do_not_crash(n: int) -> None:
    X = np.random.default_rng(0).standard_normal((n, 5)).astype(np.float32)
    result = MergedHDBSCANClusterer().fit_predict(X)
    assert len(result.labels) == n
    assert cluster_space(X, PipelineConfig()).labels.shape == (n,)


def test_identical_points_make_one_cluster() -> None:
    X = np.ones((40, 5), dtype=np.float32)
    assert set(cluster_space(X, PipelineConfig()).labels.tolist()) == {0}
    result = MergedHDBSCANClusterer().fit_predict(X)
    assert len(result.labels) == 40


def test_pipeline_defaults_use_the_merge_and_can_turn_it_off() -> None:
    assert isinstance(make_clusterer(PipelineConfig()), MergedHDBSCANClusterer)
    assert make_clusterer(PipelineConfig(min_samples=7)).min_samples == 7
    assert isinstance(make_clusterer(PipelineConfig(merge_clusters=False)), HDBSCANClusterer)


def test_resampled_fits_report_how_firm_k_is() -> None:
    sizes = [150, 120, 100, 80]
    centers = np.random.default_rng(3).uniform(-20, 20, size=(4, 5))
    X = blobs(centers, sizes, 0.6, seed=3).astype(np.float32)
    clusterer = MergedHDBSCANClusterer(n_resamples=4)
    result = clusterer.fit_predict(X)
    info = clusterer.granularity_
    assert result.n_clusters == 4
    assert len(info.resampled_k) == 4 and set(info.resampled_k) == {4}
    spread = k_spread(info)
    assert spread == {"k": 4, "min": 4, "max": 4, "resamples": 4, "resampled_k": [4, 4, 4, 4]}
    assert k_spread_sentence(spread) == "4 clusters; the same in all 4 resampled fits"
    assert MergedHDBSCANClusterer(n_resamples=0).fit_predict(X).n_clusters == 4


def test_spread_sentence_and_consensus_cut() -> None:
    spread = {"k": 9, "min": 7, "max": 10, "resamples": 6, "resampled_k": [7, 9, 10, 9, 8, 9]}
    assert k_spread_sentence(spread) == "9 clusters; 7–10 across 6 resampled fits"
    assert k_spread_sentence({"k": 1, "resamples": 0}) == "1 cluster"
    full = {2: 1.0, 3: 5.0, 9: 5.5}
    curves = [{2: 1.0, 3: 6.0, 9: 5.0}, {2: 1.0, 3: 6.0, 9: 5.0}, {2: 1.0, 3: 4.0, 9: 3.0}]
    assert consensus_k(full, curves, "full") == 9
    assert consensus_k(full, curves, "median") == 3
    assert consensus_k(full, [], "median") == 9


def two_grain_corpus(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three sources 20 apart: the first holds 8 tight intents (30 points each), the other two
    are one broad blob each, over-segmented into 4 micro-clusters. Returns the points, the
    micro-cluster labels and the fine truth (intents, and one label per broad source)."""
    rng = np.random.default_rng(seed)
    sources = np.eye(5)[:3] * 20
    intents = sources[0] + rng.uniform(-5, 5, size=(8, 5))
    parts = [c + 0.3 * rng.standard_normal((30, 5)) for c in intents]
    micro = list(np.repeat(np.arange(8), 30))
    for j, c in enumerate(sources[1:]):
        points = c + 2.0 * rng.standard_normal((240, 5))
        parts.append(points)
        micro += list(10 + 4 * j + 2 * (points[:, 0] > c[0]) + (points[:, 1] > c[1]))
    truth = np.concatenate([np.repeat(np.arange(8), 30), np.repeat([8, 9], 240)])
    return np.vstack(parts), np.array(micro), truth


def test_second_cut_finds_intents_inside_one_source_and_leaves_broad_sources_whole() -> None:
    """One variance ratio over the corpus cuts at the 3 sources; the source whose groups are
    as separate as the sources themselves is cut again (mix_3src's case), the others not."""
    X, micro, truth = two_grain_corpus()
    labels, _, info = merge_micro_clusters(X, micro, second=None)
    assert info.n_clusters == 3
    labels, _, info = merge_micro_clusters(X, micro)
    assert (info.first_cut, info.n_clusters, info.recut) == (3, 10, 1)
    for c in np.unique(labels):
        assert len(np.unique(truth[labels == c])) == 1
    sentence = granularity_metrics(info)["granularity"]
    assert "1 of the 3 was cut again" in sentence
    # No coarser cut of the tree keeps enough of its ratio: the first cut is the grain offered.
    assert info.coarse_k == 3 and "the first cut's 3 clusters, as 3 groups of the 10" in sentence
    grouped = coarse_labels(labels, info)
    assert grouped is not None
    sources = np.where(truth < 8, 0, truth - 7)  # the 8 intents are one source
    assert adjusted_rand_score(sources, grouped) == 1.0


def test_the_two_way_cut_splits_two_merged_topics_not_a_topic_with_sub_topics() -> None:
    """``TWO_WAY_SHARE``: a first-cut cluster of two lobes (AG News's Business + Sci/Tech) is cut
    in two; one of four lobes (a section and its sub-topics) is not, and neither reaches the plain
    second cut's bar. Only a section-size cluster (``TWO_WAY_MIN_SHARE`` of the points) is cut:
    the two lobes hold 120 of 420 points here (0.29)."""
    rng = np.random.default_rng(0)
    centres = [(0, 0), (0, 4), (25, -3), (25, 3), (22, 0), (28, 0), (12, 22)]
    X = np.vstack([np.asarray(c) + 0.5 * rng.standard_normal((60, 2)) for c in centres])
    micro = np.repeat(np.arange(7), 60)
    first = np.repeat([0, 0, 2, 2, 2, 2, 6], 60)
    scores = calinski_harabasz_path(ward_merges(X, first))
    # Inner separation per point against the corpus's: two lobes 0.61, four lobes 0.47.
    assert np.array_equal(second_cut(X, micro, first, scores, 3, two_way=None)[0], first)
    assert np.array_equal(second_cut(X, micro, first, scores, 3, two_way=0.25)[0], first)
    cut, two_way = second_cut(X, micro, first, scores, 3, two_way=0.25, two_way_min_share=0.28)
    assert two_way == 1
    assert len(np.unique(cut[first == 0])) == 2
    assert len(np.unique(cut[first == 2])) == 1
    assert np.array_equal(cut[first != 0], first[first != 0])
    assert np.array_equal(
        second_cut(X, micro, first, scores, 3, two_way=0.7, two_way_min_share=0.28)[0], first
    )


def sections_with_sub_topics(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BBC News's shape: 3 sections 20 apart, each of 3 sub-topics 4.8 apart (unit spread), the
    sub-topics as micro-clusters. Returns the points, the micro labels and the sections."""
    rng = np.random.default_rng(seed)
    parts, micro, section = [], [], []
    for i, centre in enumerate(np.eye(5)[:3] * 20):
        for j, sub in enumerate(centre + 4.8 * np.eye(5)[[1, 2, 3]]):
            n = 40 + 10 * i + 5 * j
            parts.append(sub + rng.standard_normal((n, 5)))
            micro += [3 * i + j] * n
            section += [i] * n
    return np.vstack(parts), np.array(micro), np.array(section)


def test_a_coarser_grain_of_whole_clusters_is_offered_beside_the_sub_topics() -> None:
    """The variance ratio picks the 9 sub-topics; the sections' cut keeps 0.92 of it, so it is
    offered as the coarser grain, each group a union of whole clusters, one per section."""
    X, micro, section = sections_with_sub_topics()
    labels, _, info = merge_micro_clusters(X, micro)
    assert (info.first_cut, info.n_clusters, info.coarse_k) == (9, 9, 3)
    grouped = coarse_labels(labels, info)
    assert grouped is not None
    for g in np.unique(grouped):
        assert len(np.unique(section[grouped == g])) == 1
    assert len(np.unique(grouped)) == 3
    facts = granularity_metrics(info)
    assert facts["coarse"]["k"] == 3
    assert set(facts["coarse"]["parent_of"]) == set(np.unique(labels).tolist())
    assert 0.85 <= facts["coarse"]["variance_ratio_share"] < 1
    assert "Coarser grain offered: 3 groups of the 9 clusters" in facts["granularity"]
    assert "default stays at 9 because its cut separates best." in facts["granularity"]


def test_coarse_grain_on_bbc_news_curve() -> None:
    """BBC News, UMAP seed 0: the ratio peaks at 10 (sub-sections); the coarsest cut keeping 85 %
    of it is 6 (its 5 sections with Sport in two); nothing when no cut is far enough below."""
    curve = {2: 3240.4, 3: 6246.8, 4: 6305.6, 5: 7452.4, 6: 11391.5, 7: 11695.3, 8: 11811.9}
    curve |= {9: 12153.9, 10: 12182.8, 11: 11979.4, 12: 11927.1}
    assert coarse_grain(curve, 10) == 6
    assert coarse_grain(curve, 10, share=0.6) == 5
    assert coarse_grain(curve, 7) == 0  # 6 is a neighbouring cut, not a grain of its own
    assert coarse_grain(curve, 10, share=0.99) == 0
    assert coarse_grain(curve, 40) == 0  # no ratio for the cut: nothing to compare with
    assert coarse_grain({}, 3) == 0


def test_renumbered_coarse_groups_follow_the_final_cluster_ids() -> None:
    raw = np.array([5, 5, 5, 7, 7, 2, NOISE, 2])
    ordered = np.array([0, 0, 0, 1, 1, 2, NOISE, 2])
    info = Granularity(3, 3, 0.0, 0.0, {}, coarse_k=2, coarse_of=((2, 10), (5, 11), (7, 10)))
    renumbered = renumber_coarse(info, raw, ordered)
    # Group 10 holds 4 points (clusters 7 and 2), group 11 holds 3: 10 becomes 0, 11 becomes 1.
    assert renumbered.coarse_of == ((0, 1), (1, 0), (2, 0))
    grouped = coarse_labels(ordered, renumbered)
    assert grouped is not None
    assert grouped.tolist() == [1, 1, 1, 0, 0, 0, NOISE, 0]
    plain = Granularity(3, 3, 0.0, 0.0, {})
    assert renumber_coarse(plain, raw, ordered) is plain
    assert coarse_labels(ordered, plain) is None


def two_close_groups() -> tuple[np.ndarray, np.ndarray]:
    """Four groups of 50: A and B far apart, C and D 2.5 apart (the ratio still prefers 4)."""
    rng = np.random.default_rng(0)
    centres = [(0, 0), (20, 0), (10, 15), (12.5, 15)]
    X = np.vstack([np.asarray(c) + rng.standard_normal((50, 2)) for c in centres])
    return X, np.repeat(np.arange(4), 50)


def resample_fit(X: np.ndarray, provisional: np.ndarray) -> ResampledFit:
    return ResampledFit(np.arange(len(X)), provisional, ward_merges(X, provisional), {}, 4)


def test_stable_cut_keeps_the_finest_cut_the_resamples_reproduce() -> None:
    """Resamples that split C and D another way each time do not reproduce the 4-cut (adjusted
    Rand 0.66) but all reproduce the 3-cut: 3 is kept. Resamples that find C and D keep 4."""
    X, micro = two_close_groups()
    scores = calinski_harabasz_path(ward_merges(X, micro))
    assert best_cut(scores) == 4 and scores[3] >= 0.9 * scores[4]
    unstable = []
    for r in range(4):
        provisional = micro.copy()
        cd = np.flatnonzero(micro >= 2)
        provisional[cd] = 2
        provisional[np.random.default_rng(r).permutation(cd)[:50]] = 3
        unstable.append(resample_fit(X, provisional))
    k, agreement, section = stable_cut(X, micro, 4, unstable)
    assert k == 3 and agreement[3] == 1.0 and agreement[4] < 0.8 and not section
    steady = [resample_fit(X, micro)] * 4
    assert stable_cut(X, micro, 4, steady, section_share=None) == (4, {3: 1.0, 4: 1.0}, False)
    assert stable_cut(X, micro, 4, unstable, share=None) == (4, {}, False)
    assert stable_cut(X, micro, 4, []) == (4, {}, False)
    # Only cuts keeping the share of the best ratio are weighed: at 0.99 the 3-cut is not.
    assert stable_cut(X, micro, 4, unstable, share=0.99) == (4, {}, False)


def test_of_two_equally_firm_cuts_the_section_rule_keeps_the_coarser() -> None:
    """Resamples that find C and D reproduce the 3-cut and the 4-cut alike (adjusted Rand 1.0):
    the 3-cut joins C and D, each a quarter of the points (section-size), so 3 is taken, as AG
    News's World + Sports is cut at its 2 sections, not at Sports's two lobes. Where C and D
    are under the section share, the finest firm cut (4) stays."""
    X, micro = two_close_groups()
    steady = [resample_fit(X, micro)] * 4
    assert stable_cut(X, micro, 4, steady) == (3, {3: 1.0, 4: 1.0}, True)
    assert stable_cut(X, micro, 4, steady, section_share=0.3) == (4, {3: 1.0, 4: 1.0}, False)


def test_joins_sections_looks_only_at_the_clusters_a_coarser_cut_joins() -> None:
    fine = np.repeat([0, 1, 2], [50, 45, 5])
    assert joins_sections(fine, np.repeat([0, 2], [95, 5]), 0.1)  # 50 and 45 of 100 joined
    assert not joins_sections(fine, np.repeat([0, 1], [50, 50]), 0.1)  # the 5 joined to the 45
    assert joins_sections(fine, np.repeat([0, 1], [50, 50]), 0.05)


def test_the_sentence_says_why_the_stable_cut_was_kept() -> None:
    info = Granularity(
        20,
        6,
        0.1,
        0.0,
        {6: 11391.5, 10: 12182.8},
        first_cut=6,
        ratio_cut=10,
        stability={6: 0.9961, 8: 0.9943, 10: 0.8664},
    )
    facts = granularity_metrics(info)
    assert "The cut at 10, the cut with the highest variance ratio" in facts["granularity"]
    assert "moved to 6: among the cuts keeping 90% of the best ratio" in facts["granularity"]
    assert "(adjusted Rand 1.00 against 0.87 at 10)." in facts["granularity"]
    assert facts["cut_stability"] == {6: 0.9961, 8: 0.9943, 10: 0.8664}
    sections = granularity_metrics(replace(info, section_cut=True))["granularity"]
    assert "6 is the coarsest the resampled fits reproduce as well as the finer ones" in sections
    assert "its clusters are section-size" in sections and "the finest" not in sections
    assert "cut_stability" not in granularity_metrics(Granularity(20, 6, 0.1, 0.0, {6: 1.0}))


def test_cut_stability_compares_two_resamples_on_the_points_they_share() -> None:
    """A resample's cut is weighed against another resample on their common rows only."""
    X, micro = two_close_groups()
    mine = np.arange(0, 200, 2)  # even rows
    theirs = np.arange(0, 200, 3)  # every third row: 34 shared with mine
    split = micro.copy()
    split[(micro >= 2) & (np.arange(200) % 2 == 0)] = 2  # C and D as one group on even rows
    reference = ResampledFit(theirs, micro[theirs], ward_merges(X[theirs], micro[theirs]), {}, 4)
    agreement = cut_stability(
        split[mine], ward_merges(X[mine], split[mine]), [reference], [3], mine
    )
    common = np.intersect1d(mine, theirs)
    expected = adjusted_rand_score(
        np.where(split[common] >= 2, 2, split[common]),
        np.where(micro[common] >= 2, 2, micro[common]),
    )
    assert agreement[3] == (pytest.approx(expected), 0.0)
    assert expected == 1.0  # at 3 both merge C and D: they agree on every shared row
    four = cut_stability(micro[mine], ward_merges(X[mine], micro[mine]), [reference], [4], mine)
    assert four[4][0] == pytest.approx(1.0)


def test_adjusted_rand_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    for t in range(60):
        n = int(rng.integers(2, 300))
        a = rng.integers(0, int(rng.integers(1, 20)), n) * 7 + 100
        b = np.where(rng.random(n) < 0.3 * (t % 3), rng.integers(0, 15, n) - 3, a)
        assert adjusted_rand(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    assert adjusted_rand(np.array([0, 0]), np.array([1, 1])) == 1.0
    assert adjusted_rand(np.array([0, 1, 2]), np.array([0, 0, 0])) == adjusted_rand_score(
        [0, 1, 2], [0, 0, 0]
    )


def test_cuts_at_several_k_match_one_cut_at_a_time() -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((120, 3))
    labels = np.arange(120) % 9
    labels[:5] = NOISE
    merges = ward_merges(X, labels)
    cuts = cuts_of_merges(labels, merges, [9, 6, 4, 2, 1])
    for k, cut in cuts.items():
        assert np.array_equal(cut, cut_merges(labels, merges, k))
        assert len(np.unique(cut[cut != NOISE])) == k
        assert np.all(cut[:5] == NOISE)


def two_lobes_beside_a_section() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two lobes holding half of the points, a section of four sub-topics and a small group:
    the points, the micro labels and the first cut (3 clusters)."""
    rng = np.random.default_rng(1)
    centres = [(0, 0), (0, 4), (25, -3), (25, 3), (22, 0), (28, 0), (12, 22)]
    sizes = [150, 150, 60, 60, 60, 60, 60]
    X = np.vstack(
        [
            np.asarray(c) + 0.5 * rng.standard_normal((n, 2))
            for c, n in zip(centres, sizes, strict=True)
        ]
    )
    return X, np.repeat(np.arange(7), sizes), np.repeat([0, 0, 2, 2, 2, 2, 6], sizes)


def test_a_section_size_cluster_of_two_lobes_is_cut_by_default() -> None:
    """On by default: two lobes holding half of the points (AG News's Business + Sci/Tech held
    43 %) are cut in two by ``second_cut`` with its defaults, and the rest is left whole."""
    X, micro, first = two_lobes_beside_a_section()
    scores = calinski_harabasz_path(ward_merges(X, first))
    cut, two_way = second_cut(X, micro, first, scores, 3)
    assert two_way == 1
    assert len(np.unique(cut[first == 0])) == 2
    assert np.array_equal(cut[first != 0], first[first != 0])


def test_the_run_says_a_cluster_was_cut_in_two_lobes_not_as_separate_groups() -> None:
    """The granularity sentence tells the two-way cut (AG News: 3 first, 4 in the end) from the
    plain second cut, whose groups are as separate as the clusters."""
    scores = {2: 0.5, 3: 1.0, 4: 0.9}
    two_lobes = Granularity(95, 4, 0.1, 0.0, scores, first_cut=3, recut=1, two_way=1)
    sentence = granularity_metrics(two_lobes)["granularity"]
    assert "1 of the 3, holding 30% of the texts or more, was cut in two" in sentence
    assert "as separate as" not in sentence
    plain = Granularity(95, 4, 0.1, 0.0, scores, first_cut=3, recut=1)
    sentence = granularity_metrics(plain)["granularity"]
    assert "1 of the 3 was cut again" in sentence and "cut in two" not in sentence


def test_a_cut_the_resamples_moved_is_not_split_again_into_lobes() -> None:
    """The two-way rule splits the lobes when the cut is the variance ratio's own; when
    ``stable_cut`` moved it to a coarser one (``ratio_cut``), the lobes it joined stay joined
    (BBC's politics + entertainment, fitted alone: 3 -> 2, not back to 3)."""
    X, micro, _ = two_lobes_beside_a_section()
    labels, _, info = merge_micro_clusters(X, micro, n_clusters=3)
    assert info.n_clusters == 4 and info.two_way == 1
    labels, _, info = merge_micro_clusters(X, micro, n_clusters=3, ratio_cut=5)
    assert info.n_clusters == 3 and info.two_way == 0
