"""The CLI contract, in-process with click's CliRunner, on a real SQLite file and model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from corpusmap.cli import main


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, banking_slice_path, embedder):
    folder = tmp_path_factory.mktemp("cli")
    db = folder / "cli.db"
    out = folder / "out.parquet"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(banking_slice_path),
            "--out",
            str(out),
            "--db",
            str(db),
            "--label-column",
            "label",
            "--json",
            "-q",
        ],
    )
    return result, db, out


def test_run_writes_every_row_once_in_order_and_prints_metrics(cli_run, banking_slice_path):
    result, _, out = cli_run
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["metrics"]["nmi"] > 0.6
    assert {"nmi", "ari", "acc", "n_clusters", "noise_share", "faithfulness"} <= set(
        summary["metrics"]
    )
    frame = pd.read_parquet(out)
    original = pd.read_json(banking_slice_path, lines=True)
    assert frame["text"].tolist() == original["text"].tolist()
    assert frame["cluster_id"].dtype.kind == "i" and frame["cluster_probability"].dtype.kind == "f"
    assert frame["cluster_label"].map(type).eq(str).all()


def test_runs_show_and_export(cli_run, tmp_path):
    result, db, out = cli_run
    run_id = json.loads(result.stdout)["run_id"]
    runner = CliRunner()
    listed = runner.invoke(main, ["runs", "--db", str(db)])
    assert listed.exit_code == 0 and f"{run_id:>5}  completed" in listed.output
    shown = runner.invoke(main, ["show", str(run_id), "--db", str(db)])
    assert shown.exit_code == 0 and "clusters" in shown.output.splitlines()[0]
    # Below the table, how the run chose its number of clusters (issue 14).
    assert json.loads(result.stdout)["metrics"]["granularity"] in shown.output.splitlines()
    again = tmp_path / "again.parquet"
    exported = runner.invoke(main, ["export", str(run_id), "--out", str(again), "--db", str(db)])
    assert exported.exit_code == 0, exported.output
    pd.testing.assert_frame_equal(pd.read_parquet(again), pd.read_parquet(out))
    clusters = tmp_path / "clusters.csv"
    assert (
        runner.invoke(
            main, ["export", str(run_id), "--clusters", "--out", str(clusters), "--db", str(db)]
        ).exit_code
        == 0
    )
    assert len(pd.read_csv(clusters)) == json.loads(result.stdout)["metrics"]["n_clusters"]


def test_edit_coarser_says_why_it_cannot(cli_run):
    result, db, _ = cli_run
    run_id = json.loads(result.stdout)["run_id"]
    offered = json.loads(result.stdout)["metrics"].get("coarse")
    done = CliRunner().invoke(main, ["edit", str(run_id), "coarser", "--db", str(db)])
    if offered:  # this small run's own offer: taken as one edit
        assert done.exit_code == 0 and done.output.startswith("Took the coarser grain offered")
    else:
        assert done.exit_code != 0 and "offers no coarser grain" in done.output


def test_rerun_with_other_min_cluster_size_embeds_nothing(cli_run, banking_slice_path, tmp_path):
    _, db, _ = cli_run
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(banking_slice_path),
            "--out",
            str(tmp_path / "o.csv"),
            "--db",
            str(db),
            "--min-cluster-size",
            "30",
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    timings = json.loads(result.stdout)["timings"]
    assert timings["embed_embedded"] == 0 and timings["embed_cache_hits"] > 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text-column", "nope"], "no column 'nope'"),
        (["--label-column", "nope"], "no label column 'nope'"),
        (["--out", "x.docx"], "export format"),
    ],
)
def test_bad_input_exits_2_with_one_line(banking_slice_path, tmp_path, args, message):
    base = [
        "run",
        str(banking_slice_path),
        "--out",
        str(tmp_path / "o.csv"),
        "--db",
        str(tmp_path / "e.db"),
    ]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_input_file(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(tmp_path / "none.csv"),
            "--out",
            str(tmp_path / "o.csv"),
            "--db",
            str(tmp_path / "e.db"),
        ],
    )
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_every_command_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, command in main.commands.items():
        assert f"corpusmap {name}" in readme, f"README lacks an example of `corpusmap {name}`"
        if hasattr(command, "commands"):
            for sub in command.commands:
                assert f"corpusmap {name} {sub}" in readme
