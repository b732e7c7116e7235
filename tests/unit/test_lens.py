"""clustering.lens on seeded synthetic vectors: planted effects are found, noise is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clustering import lens

N = 1200
K = 6


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(-1, K, N)


def test_benjamini_hochberg_matches_scipy() -> None:
    p = np.random.default_rng(1).uniform(0, 0.2, 50)
    np.testing.assert_allclose(lens.benjamini_hochberg(p), stats.false_discovery_control(p))
    with_nan = np.array([0.01, np.nan, 0.04])
    q = lens.benjamini_hochberg(with_nan)
    assert np.isnan(q[1]) and q[0] == pytest.approx(0.02) and q[2] == pytest.approx(0.04)


def test_two_by_two_uses_fisher_for_small_counts_and_agrees_with_scipy() -> None:
    p, tests = lens.two_by_two_p(
        np.array([3, 60]), np.array([1, 40]), np.array([2, 50]), np.array([9, 70])
    )
    assert list(tests) == ["fisher", "chi2"]
    assert p[0] == pytest.approx(stats.fisher_exact([[3, 1], [2, 9]]).pvalue)
    assert p[1] == pytest.approx(
        stats.chi2_contingency([[60, 40], [50, 70]], correction=True).pvalue
    )


def test_categorical_lens_finds_a_planted_group_and_nothing_in_random_groups(
    labels: np.ndarray,
) -> None:
    rng = np.random.default_rng(2)
    groups = rng.choice(["north", "south", "east"], N)
    groups[labels == 2] = np.where(rng.random((labels == 2).sum()) < 0.9, "north", "south")
    table = lens.categorical_lens(labels, pd.Series(groups))
    hits = table[table["significant"] & (table["direction"] == "over")]
    assert set(hits[hits["cluster_id"] == 2]["group"]) == {"north"}
    assert hits.sort_values("lift").iloc[-1][["cluster_id", "group"]].tolist() == [2, "north"]
    # The other clusters differ from the rest only by cluster 2's pull on the corpus shares.
    assert table[table["cluster_id"] != 2]["lift"].max() < 1.35
    cell = table[(table["cluster_id"] == 2) & (table["group"] == "north")].iloc[0]
    assert cell["share_in_cluster"] > 0.85 and cell["lift"] > 2.0
    assert (
        table.groupby("cluster_id")["count"].sum().to_dict()
        == pd.Series(labels).value_counts().to_dict()
    )

    random = lens.categorical_lens(labels, pd.Series(rng.choice(["a", "b", "c", "d"], N)))
    assert not random["significant"].any()


def test_many_groups_are_pooled_and_missing_values_named(labels: np.ndarray) -> None:
    values = pd.Series([f"g{i}" for i in range(N)], dtype=object)
    values[:10] = None
    groups = lens.as_groups(values, max_groups=5)
    assert set(groups) == {lens.MISSING, lens.OTHER, *set(groups) - {lens.MISSING, lens.OTHER}}
    assert len(set(groups)) == 5
    assert (groups == lens.MISSING).sum() == 10


def test_numeric_lens_finds_the_shifted_cluster_with_its_effect_size(labels: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, N)
    values[labels == 4] += 3
    table = lens.numeric_lens(labels, pd.Series(values)).set_index("cluster_id")
    assert table.loc[4, "significant"] and table.loc[4, "effect"] > 0.8
    assert table.loc[4, "direction"] == "higher"
    x, y = values[labels == 4], values[labels != 4]
    cliff = np.mean(np.sign(x[:, None] - y[None, :]))
    assert table.loc[4, "effect"] == pytest.approx(cliff, abs=1e-9)
    # The others are only "lower" for cluster 4 being in their rest: small effects.
    assert table.drop(index=4)["effect"].abs().max() < 0.3


def test_balance_is_least_first_and_zero_for_a_missing_group(labels: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    groups = rng.choice(["f", "m"], N)
    groups[labels == 1] = "f"
    table = lens.balance_table(labels, pd.Series(groups))
    assert table.iloc[0]["cluster_id"] == 1 and table.iloc[0]["balance"] == 0
    assert table.iloc[0]["least_group"] == "m"
    assert list(table["balance"]) == sorted(table["balance"])
    assert -1 not in set(table["cluster_id"])
    assert table["balance"].iloc[1:].min() > 0.6


def test_period_follows_the_span_and_the_number_of_texts() -> None:
    start = pd.Timestamp("2024-01-01")
    for days, period in ((20, "day"), (120, "week"), (700, "month"), (3000, "quarter")):
        dates = pd.Series(start + pd.to_timedelta(np.linspace(0, days, 5000), unit="D"))
        assert lens.choose_period(dates) == period
    # 150 texts over half a year: 26 weeks of 6 texts are too few, 6 months of 25 are not.
    few = pd.Series(start + pd.to_timedelta(np.linspace(0, 180, 150), unit="D"))
    assert lens.choose_period(few) == "month"
    assert lens.choose_period(few, min_per_period=1) == "week"


def test_time_view_flags_a_late_cluster_and_nothing_in_shuffled_dates(labels: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    days = rng.integers(0, 365, N)
    days[labels == 3] = rng.integers(300, 365, (labels == 3).sum())
    dates = pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D"))
    changes = lens.time_changes(labels, dates, lens.choose_period(dates))
    rose = changes[changes["significant"] & (changes["direction"] == "rose")]
    assert list(rose["cluster_id"]) == [3]
    assert changes.iloc[0]["cluster_id"] == 3  # largest rise first
    shares = lens.shares_over_time(labels, dates, "month")
    assert len(shares["period"].unique()) == 12
    np.testing.assert_allclose(shares.groupby("period")["share"].sum(), 1.0)

    shuffled = pd.Series(rng.permutation(dates.to_numpy()))
    assert not lens.time_changes(labels, shuffled, "month")["significant"].any()


def test_column_kinds() -> None:
    assert lens.column_kind(pd.Series(["2024-01-03", "2024-02-11"] * 10)) == "datetime"
    assert lens.column_kind(pd.Series(np.arange(100) * 1.5)) == "numeric"
    assert lens.column_kind(pd.Series(["1", "2", "3"] * 10)) == "categorical"
    assert lens.column_kind(pd.Series(["north", "south"])) == "categorical"
    assert lens.column_kind(pd.Series([True, False])) == "categorical"
    assert lens.column_kind(pd.Series([str(i) for i in range(50)])) == "numeric"


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(lens.LensError, match="3 cluster ids but 2"):
        lens.categorical_lens(np.array([0, 1, 1]), pd.Series(["a", "b"]))
