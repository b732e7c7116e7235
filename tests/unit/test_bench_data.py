"""bench.data's external corpora (issue 14): converted from a git repository at a recorded
commit, loaded from the external folder when present, refused with a clear message when not."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

import bench.data as data


def git_repo(root: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    """A real git repository holding ``files`` in one commit: (its git dir, the commit)."""
    root.mkdir()
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    env = ["-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)
    subprocess.run(["git", "-C", str(root), *env, "commit", "-q", "-m", "data"], check=True)
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return root / ".git", head


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "shared")
    monkeypatch.setattr(data, "EXTERNAL_DIR", tmp_path / "external")
    return tmp_path / "external"


def test_bbc_converts_from_its_commit_and_loads(tmp_path: Path, folders: Path) -> None:
    git_dir, commit = git_repo(
        tmp_path / "bbc-repo",
        {
            "bbc/sport/001.txt": b"Title one\n\nBody  of\tthe first.\n",
            # Some of the original files are Latin-1 (a pound sign): read, not dropped.
            "bbc/business/001.txt": b"Profit up\n\nIt rose to \xa35m.\n",
            "bbc/README.TXT": b"not an article",
        },
    )
    assert not data.available("bbc_news")
    with pytest.raises(FileNotFoundError, match="dejanbatanjac/bbc-article-classify-bert"):
        data.load_base("bbc_news")

    path = data.convert_external("bbc_news", git_dir, commit=commit)

    assert path == folders / "bbc_news.jsonl.gz"
    assert data.available("bbc_news")
    corpus = data.load_corpus("bbc_news")
    assert corpus.texts == ["Profit up It rose to £5m.", "Title one Body of the first."]
    assert corpus.labels == ["business", "sport"]
    source = json.loads((folders / "bbc_news.source.json").read_text())
    assert source["repository"] == "dejanbatanjac/bbc-article-classify-bert"
    assert source["commit"] == commit
    assert (source["rows"], source["labels"]) == (2, 2)


def test_clinc_takes_test_and_out_of_scope(tmp_path: Path, folders: Path) -> None:
    full = {
        "train": [["train only", "translate"]],
        "test": [["how do you say fly in italian", "translate"], ["what is my balance", "balance"]],
        "oos_test": [["how much has the dow changed today", "oos"]],
    }
    git_dir, commit = git_repo(
        tmp_path / "clinc-repo", {"data/data_full.json": json.dumps(full).encode()}
    )
    data.convert_external("clinc150", git_dir, commit=commit)
    with gzip.open(folders / "clinc150.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert [r["label"] for r in rows] == ["translate", "balance", "oos"]
    assert "train only" not in {r["text"] for r in rows}


def test_tweet_clusters_become_labels(tmp_path: Path, folders: Path) -> None:
    lines = (
        b'{"text": "brain fluid buildup", "cluster": 37}\n{"text": "trailer talk", "cluster": 14}\n'
    )
    git_dir, commit = git_repo(tmp_path / "tweet-repo", {"data/Tweet": lines})
    data.convert_external("tweet89", git_dir, commit=commit)
    corpus = data.load_corpus("tweet89")
    assert corpus.labels == ["37", "14"]
    assert corpus.n_classes == 2


def test_googlenews_titles_read_their_own_file_of_the_same_repository(
    tmp_path: Path, folders: Path
) -> None:
    files = {
        "data/Tweet": b'{"text": "trailer talk", "cluster": 14}\n',
        "data/T": b'{"text": "mourinho seek killer instinct", "cluster": 96}\n',
    }
    git_dir, commit = git_repo(tmp_path / "gsdmm", files)
    data.convert_external("googlenews_t", git_dir, commit=commit)
    corpus = data.load_corpus("googlenews_t")
    assert corpus.texts == ["mourinho seek killer instinct"]
    assert corpus.labels == ["96"]


def test_a_missing_commit_fails_loudly(tmp_path: Path, folders: Path) -> None:
    git_dir, _ = git_repo(tmp_path / "other", {"README": b"x"})
    with pytest.raises(subprocess.CalledProcessError):
        data.convert_external("tweet89", git_dir)  # the recorded commit is not in this repo
    assert not data.available("tweet89")
