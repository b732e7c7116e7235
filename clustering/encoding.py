"""The encoding of a text file: byte-order marks, UTF-16 without one, UTF-8, else cp1252.

``detect_encoding`` guesses from a file's first bytes (``HEAD_BYTES``), so a corpus can be read
as a stream (``clustering.ingest``); ``candidate_encodings`` lists what to try after the guess
when a later byte does not decode, and ``refuse_if_last`` says why a file cannot be read.
"""

from __future__ import annotations

import codecs

from clustering.errors import IngestError

BOM_ENCODINGS = ("utf-8-sig", "utf-16", "utf-32")
"""What a byte-order mark names (``detect_encoding``)."""
HEAD_BYTES = 1 << 16
"""How much of a file the encoding is detected from (BOMs, NULs of UTF-16, UTF-8 validity); a
byte later in the file that the guess cannot decode starts the reading again in cp1252."""


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Text and encoding name of ``data``: BOMs first, then UTF-8, UTF-16 without BOM, cp1252
    (``candidate_encodings``)."""
    head = data[:HEAD_BYTES]
    encodings = candidate_encodings(head)
    for number, encoding in enumerate(encodings):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as err:
            refuse_if_last(encodings, number, head, err)
    raise AssertionError("unreachable")  # pragma: no cover


def mostly_printable(text: str) -> bool:
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\t\n\r")
    return printable >= 0.95 * len(text)


def looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 13))
    return controls > max(8, len(sample) // 20)


def candidate_encodings(head: bytes) -> list[str]:
    """The encodings to try, in turn, on a file whose first bytes are ``head``."""
    first = detect_encoding(head)
    return [first, *{"utf-8": ["cp1252", "latin-1"], "cp1252": ["latin-1"]}.get(first, [])]


def refuse_if_last(encodings: list[str], number: int, head: bytes, err: UnicodeDecodeError) -> None:
    """Raise the reason the text cannot be read when ``encodings[number]``, the one that just
    failed, is the last to try, or when the next (cp1252) would read a binary file as text."""
    encoding = encodings[number]
    if number + 1 == len(encodings):
        bom = encoding in BOM_ENCODINGS
        raise IngestError(
            (f"the file starts with a {encoding} byte-order mark but " if bom else "")
            + f"{'it' if bom else 'the file'} is not valid {encoding} ({err.reason} at "
            f"byte {err.start}); re-save it as UTF-8"
        ) from err
    if encodings[number + 1] == "cp1252" and looks_binary(head[:4096]):
        raise IngestError(
            "the file looks binary, not text: is it really a text file? Export it as CSV, "
            "JSONL or XLSX and upload that"
        ) from err


def detect_encoding(head: bytes) -> str:
    """The encoding of a file whose first bytes are ``head`` (the rules of ``decode_bytes``):
    a BOM's, UTF-16 where NULs fill every other byte, UTF-8 where the head decodes, else cp1252.
    """
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if head.startswith(bom):
            return encoding
    sample = head[:4096]
    if sample and sample.count(0) > len(sample) // 4:
        even_nuls = sample[0::2].count(0)
        odd_nuls = sample[1::2].count(0)
        encoding = "utf-16-le" if odd_nuls > even_nuls else "utf-16-be"
        text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head[:4096])
        if text and mostly_printable(text[:2048]):
            return encoding
        raise IngestError(
            "the file looks binary, not text (it is full of NUL bytes): is it really a "
            "text file? Export it as CSV, JSONL or XLSX and upload that"
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if looks_binary(sample):
        raise IngestError(
            "the file looks binary, not text: is it really a text file? Export it as CSV, "
            "JSONL or XLSX and upload that"
        )
    return "cp1252"
