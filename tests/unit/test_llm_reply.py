"""Replies: the JSON object is found, validated, and never becomes a placeholder label."""

from __future__ import annotations

import json

import pytest

from llm.reply import ReplyError, parse_label_reply

GOOD = {
    "name": "Card payment problems",
    "description": "Payments by card that failed, were refused or are pending.",
    "inclusion_criterion": "The text reports a problem with a card payment.",
    "evidence": [2, 1],
}


def test_plain_json():
    label = parse_label_reply(json.dumps(GOOD), 7, n_examples=5)
    assert (label.cluster_id, label.name, label.status, label.labeler) == (
        7,
        GOOD["name"],
        "ok",
        "llm",
    )
    assert label.evidence == (1, 0)  # 1-based ids in the prompt, 0-based indices in the label


@pytest.mark.parametrize(
    "text",
    [
        "```json\n" + json.dumps(GOOD) + "\n```",
        "Sure! Here is the label:\n" + json.dumps(GOOD, indent=2) + "\nHope this helps.",
        json.dumps([GOOD]),
    ],
)
def test_json_wrapped_the_way_small_models_wrap_it(text):
    assert parse_label_reply(text, 0, n_examples=5).name == GOOD["name"]


def test_evidence_out_of_range_or_odd_is_dropped_not_fatal():
    reply = {**GOOD, "evidence": [0, 3, "4", "[5]", 99, 3, "x"]}
    assert parse_label_reply(json.dumps(reply), 0, n_examples=4).evidence == (2, 3)
    no_evidence = {k: v for k, v in GOOD.items() if k != "evidence"}
    assert parse_label_reply(json.dumps(no_evidence), 0, n_examples=4).evidence == ()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("not json at all", "not valid JSON"),
        ('{"name": "Card payments", "description": "Cut off', "not valid JSON"),
        (json.dumps(["a", "b"]), "not a JSON object"),
        (json.dumps({**GOOD, "name": ""}), "placeholder"),
        (json.dumps({**GOOD, "name": "No label"}), "placeholder"),
        (json.dumps({**GOOD, "name": "<name>"}), "placeholder|markup"),
        (json.dumps({**GOOD, "name": "A short name for the cluster,</data>,"}), "placeholder"),
        (json.dumps({**GOOD, "name": "Struggling,</code>says,</p>"}), "markup"),
        (
            json.dumps({**GOOD, "name": "The customers in this cluster ask about card payments"}),
            "at most 6",
        ),
        (
            json.dumps({k: v for k, v in GOOD.items() if k != "description"}),
            "description is missing",
        ),
        (json.dumps({**GOOD, "inclusion_criterion": 3}), "inclusion_criterion has the wrong type"),
        (json.dumps({**GOOD, "description": "x" * 2000}), "longer than"),
    ],
)
def test_unusable_replies_raise_with_a_short_reason(reply, reason):
    with pytest.raises(ReplyError, match=reason):
        parse_label_reply(reply, 0, n_examples=5)


def test_the_reason_does_not_echo_the_reply():
    secret_text = "a very long name that goes on and on and on forever"
    with pytest.raises(ReplyError) as caught:
        parse_label_reply(json.dumps({**GOOD, "name": secret_text}), 0, n_examples=5)
    assert secret_text not in str(caught.value)
