"""Whether a corpus looks English: the default embedding model is English-first, so a run on
another language gets a warning that says which model to choose instead."""

from __future__ import annotations

import re

LANGUAGE_SAMPLE = 2_000
"""Texts looked at by the language heuristic: enough for a stable share, cheap at any size."""
LANGUAGE_CHARS = 1_000
"""Characters of each sampled text looked at (a 10 MB text must not cost seconds)."""
MIN_WORDS_FOR_LANGUAGE = 50
"""Fewer words than this (in the sample) are too few to judge a corpus's language."""
NON_ASCII_LETTER_SHARE = 0.3
"""Above this share of non-ASCII letters the corpus is not (mostly) English."""
MIN_OTHER_SHARE = 0.05
"""Prose in Spanish, French, German... has 20-40 % of its words in ``OTHER_STOPWORDS``; English
keyword lists ("card declined") have neither kind, and must not be flagged."""
ENGLISH_STOPWORDS = frozenset(
    "the a an and or of to in on at for with from by is are was were be been it its this that "
    "these those i you he she we they my your our their me him her us them not no do does did "
    "have has had can could will would should how what why when where which who there here "
    "if but so as about into than then up out just get all any my".split()
)
OTHER_STOPWORDS = frozenset(
    # Spanish, French, German, Portuguese, Italian and Dutch function words that are not
    # English words: more hits than English ones means another language in Latin script.
    "de la el los las que y en un una por con para es del se su al lo como pero sus mi "
    "le les des et est une pour pas dans qui sur du au ce je vous nous "
    "der das und ist nicht ein eine zu mit sich auf für ich sie wir ihr ihre mein meine "
    "o os um uma não com mais da do em "
    "il di che per non sono della gli ho "
    "het een van ik je niet op dat ze".split()
)


def language_warning(texts: list[str]) -> str | None:
    """A note when the texts do not look English: the default embedding model is English-first.

    A cheap heuristic on a sample: the share of non-ASCII letters (other scripts, accents) and
    the share of words that are common English function words.
    """
    sample = [t[:LANGUAGE_CHARS] for t in texts if t][:LANGUAGE_SAMPLE]
    letters = [ch for t in sample for ch in t if ch.isalpha()]
    words = [w.lower() for t in sample for w in _WORD.findall(t)]
    if len(letters) < MIN_WORDS_FOR_LANGUAGE * 3:
        return None
    non_ascii = sum(1 for ch in letters if not ch.isascii()) / len(letters)
    english = sum(1 for w in words if w in ENGLISH_STOPWORDS) / max(len(words), 1)
    other = sum(1 for w in words if w in OTHER_STOPWORDS) / max(len(words), 1)
    if non_ascii > NON_ASCII_LETTER_SHARE:
        why = f"{non_ascii:.0%} of the letters are not ASCII"
    elif len(words) >= MIN_WORDS_FOR_LANGUAGE and other > max(english, MIN_OTHER_SHARE):
        why = (
            f"{english:.0%} of the words are common English words, {other:.0%} common words "
            "of other languages"
        )
    else:
        return None
    return (
        f"the texts do not look English ({why}); the default embedding model is English-first, "
        "so clusters may be weaker. For other languages choose a multilingual "
        "sentence-transformers model (--embedder, e.g. paraphrase-multilingual-MiniLM-L12-v2)"
    )


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
