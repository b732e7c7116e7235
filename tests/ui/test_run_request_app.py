"""The app builds the same ``RunRequest`` the CLI and the API build (issue 12): every setting the
Run page offers reaches the stored run and changes what its stage does; a setting that does not
apply is refused on the page with its sentence, and the run cannot start."""

from __future__ import annotations

import pytest

from clustering.types import NOISE
from corpusmap.modes import ModeOptions
from corpusmap.request import build_request, stored_request
from tests.ui.conftest import app_with_corpus, assert_clean, open_app, start_run, widget
from ui import resources

pytestmark = pytest.mark.slow  # a real run of 303 texts in the background; CI runs it

GOAL = "what the customer wants the bank to do"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, small_rows: list[dict]):
    with app_with_corpus(tmp_path_factory.mktemp("request_app"), small_rows):
        yield resources.store()


def test_every_setting_of_the_run_page_reaches_the_stored_run(corpus) -> None:
    at = open_app("run")
    widget(at.text_area, "Goal (optional)").set_value(GOAL)
    widget(at.number_input, "Minimum cluster size (0 = automatic)").set_value(12)
    widget(at.toggle, "Reassign outliers").set_value(True)
    widget(at.number_input, "Seed").set_value(7)
    widget(at.selectbox, "Ground-truth column (optional)").set_value("label")
    widget(at.text_input, "Run name (optional)").set_value("from the app")
    widget(at.toggle, "Group clusters into parents").set_value(True)
    at.run()
    widget(at.number_input, "Parents (0 = automatic)").set_value(3)
    widget(at.toggle, "Keyword rules").set_value(False)
    at.run()
    assert_clean(at)
    run = corpus.get_run(start_run(at))
    expected = build_request(
        corpus_id=run.corpus_id,
        goal=GOAL,
        min_cluster_size=12,
        reassign_outliers=True,
        random_state=7,
        label_column="label",
        name="from the app",
        options=ModeOptions(hierarchy=True, n_parents=3, rules=False),
    )
    assert stored_request(run) == expected
    assignments = corpus.load_assignments(run.id)
    assert run.status == "completed" and run.seed == 7 and run.goal == GOAL
    assert not (assignments["cluster_id"] == NOISE).any()
    assert len(corpus.load_clusters(run.id, level=1)) == 3 and run.rules == {}
    assert run.name == "from the app" and run.metrics["nmi"] > 0.3


def test_a_setting_that_does_not_apply_blocks_the_run_with_its_sentence(corpus) -> None:
    at = open_app("run")
    widget(at.radio, "Number of clusters").set_value("Fixed K (k-means)")
    at.run()
    widget(at.toggle, "Group clusters into parents").set_value(False)
    at.run()
    assert_clean(at)
    assert not at.error  # a valid request
    # Parents without a hierarchy cannot be typed (the field is disabled); k-means with a
    # minimum cluster size can only come from a stale form: the request refuses it.
    assert widget(at.number_input, "Minimum cluster size (0 = automatic)").disabled
    assert widget(at.number_input, "Parents (0 = automatic)").disabled
