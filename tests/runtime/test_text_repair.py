"""One surrogate repair (runtime.text.repair_surrogates) for the index's lossless path keys and
for queries, arguments and input lines that carry bytes that are not UTF-8."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from runtime.cli.text_input import repair_text as cli_repair
from runtime.index.scan import key_path, path_key, shown
from runtime.index.search import repair_text
from runtime.text import repair_surrogates

ROOT = Path(__file__).resolve().parents[2]


def test_valid_text_is_returned_as_it_is() -> None:
    text = "Zürich 東京 🙂"
    assert repair_surrogates(text) is text
    assert repair_surrogates(text, lambda c: "?") is text


def test_bytes_that_were_not_utf8_become_the_replacement_character() -> None:
    argument = os.fsdecode(b"memory \xff caf\xc3\xa9")  # what Python makes of such an argv entry
    assert repair_surrogates(argument) == "memory \ufffd café"  # the escaped UTF-8 bytes are é again
    assert repair_surrogates("a\ud800b") == "a\ufffd\ufffd\ufffdb"  # a surrogate no byte made
    assert repair_text(argument) == cli_repair(argument) == repair_surrogates(argument)


def test_an_escape_keeps_every_surrogate_recoverable() -> None:
    name = os.fsdecode(b"bad\xff.txt") + "\ud800"
    escaped = repair_surrogates(name, lambda c: f"<{ord(c):x}>")
    assert escaped == "bad<dcff>.txt<d800>"
    key = path_key(name)
    assert key.encode("utf-8") and key_path(key) == Path(name) and shown(key) == "bad\\xff.txt\\ud800"


def test_no_other_module_repairs_surrogates_itself() -> None:
    """Decoding escaped bytes again and spotting lone surrogates live in runtime/text.py only
    (store.py's hash encodes with "surrogatepass" to fingerprint text, which repairs nothing)."""
    found = []
    for package in ("runtime", "convert"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in ("surrogateescape", "\ud800"):
                    found.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(found)) == ["runtime/text.py"]
