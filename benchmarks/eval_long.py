"""A long-document evaluation set: git's manuals and design notes, with generated questions.

Issue 18 §4 asks why long technical documents retrieve worse than encyclopedia articles. No
long-document question set can be fetched here (only PyPI, Debian and npm are reachable), so
the documents come from Debian's ``git-doc`` package (GPL-2; the AsciiDoc sources of git's
manual pages, tutorials and technical design notes) and the questions are made from them by
rt eval's deterministic "terms" method (:mod:`runtime.rag.eval_set`), with one change: word
rarity is counted over the corpus's paragraphs, not over an index's chunks, so the questions do
not depend on the chunking being measured. Such questions name three rare words of a sentence
and take a fourth as the answer: they reward lexical matching more than people's questions do,
so the figures measure where the right *passage* lands in long files, not how well rt
understands a paraphrase.

The corpus: every ``.txt`` file of the package of 20,000 to 100,000 characters (38 files,
1.2 MB; the 172 kB user manual is left out to keep indexing short), written under the eval
cache as they are (AsciiDoc: headings underlined with ``-`` or ``~``, ``[[anchors]]``,
``----`` listing blocks). The ``.deb`` is looked for in the eval cache, then ``../shared/data``,
then fetched with ``apt-get download`` (Debian's own client), and checked against its SHA-256.

Split by file with a fixed seed: half the files' questions are dev, half test; all files are
indexed together. A question's gold passage is a chunk of its file whose line range holds the
question's sentence and whose text holds its answer (:meth:`EvalSet.is_gold`).

``python benchmarks/eval_long.py`` finds the data and prints the set's sizes.
"""

from __future__ import annotations

import io
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_data import (  # noqa: E402
    EvalDataMissing,
    EvalSet,
    Question,
    cache_folder,
    find_at_hand,
    sha256_of,
)
from runtime.rag.coverage import idf, informative_terms  # noqa: E402

PACKAGE = "git-doc"
VERSION = "1:2.39.5-0+deb12u3"
DEB_NAME = "git-doc_2.39.5-0+deb12u3_all.deb"
DEB_SHA256 = "3c89668a11053a6bafade3de1f611f4613db31e082af63f43d8c5b69ad8795ec"
MEMBER_FOLDER = "./usr/share/doc/git-doc/"
MIN_CHARS, MAX_CHARS = 20_000, 100_000
SEED = 18
PER_FILE = 12  # questions drawn from each file (fewer where a file has fewer usable sentences)
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
_PARAGRAPH = re.compile(r"\S(?:.*?\S)??(?=\n[ \t]*\n|\s*\Z)", re.S)


def fetch_deb(cache: Path | None = None, *, registry: bool = True) -> Path:
    """The ``git-doc`` package file with the expected SHA-256: from the cache, ``../shared/data``,
    or (with ``registry``) ``apt-get download``, whose copy is kept in the cache."""
    cache = cache or cache_folder()
    found, looked = find_at_hand(DEB_NAME, DEB_SHA256, cache)
    if found is not None:
        return found
    if registry:
        try:
            return _download(cache)
        except subprocess.CalledProcessError as exc:
            said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
            looked.append(f"apt-get download {PACKAGE}={VERSION} (failed: {said[-1] if said else exc.returncode})")
        except (OSError, RuntimeError, StopIteration) as exc:
            looked.append(f"apt-get download {PACKAGE}={VERSION} ({type(exc).__name__}: {exc})")
    raise EvalDataMissing(f"long-document data {DEB_NAME} (sha256 {DEB_SHA256[:12]}...) is not at hand; "
                          f"looked in: {'; '.join(looked)}")


def _download(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=tmp, check=True, capture_output=True)
        got = next(Path(tmp).glob("*.deb"))
        if sha256_of(got) != DEB_SHA256:
            raise RuntimeError(f"{got.name} does not have the expected SHA-256")
        return got.replace(cache / DEB_NAME)


def deb_members(deb: Path) -> dict[str, bytes]:
    """The regular files of a ``.deb``'s data archive, by path (an ``ar`` archive holding a
    compressed tar; read here so that no ``dpkg`` is needed)."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise EvalDataMissing(f"{deb} is not a Debian package")
    at = 8
    while at + 60 <= len(raw):
        name = raw[at:at + 16].decode().strip().rstrip("/")
        size = int(raw[at + 48:at + 58])
        body = raw[at + 60:at + 60 + size]
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                        for m in tar.getmembers() if m.isfile()}
        at += 60 + size + size % 2
    raise EvalDataMissing(f"{deb} holds no data archive")


def write_corpus(folder: Path) -> list[Path]:
    """The corpus files under ``folder`` (written once from the package)."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.txt"))
    if existing:
        return existing
    written = []
    for name, data in sorted(deb_members(fetch_deb()).items()):
        relative = name.removeprefix(MEMBER_FOLDER)
        if name.startswith(MEMBER_FOLDER) and relative.endswith(".txt") and MIN_CHARS <= len(data) <= MAX_CHARS:
            target = folder / relative.replace("/", "__")
            target.write_bytes(data)
            written.append(target)
    return written


def _paragraphs(text: str) -> list[tuple[int, str]]:
    """Paragraphs (blank-line separated) with the line each starts on."""
    return [(text.count("\n", 0, m.start()) + 1, m.group()) for m in _PARAGRAPH.finditer(text)]


def _is_prose(paragraph: str) -> bool:
    # listing blocks (opened by a delimiter line; a heading's underline is not one), tables and
    # indented examples give no sentence a person would ask about
    lines = paragraph.splitlines()
    return not lines[0].startswith(("----", "....")) and not any(
        line.startswith(("|", " ", "\t", "$ ")) for line in lines)


def make_questions(files: list[Path], rng: random.Random) -> dict[str, list[Question]]:
    """Questions per file, by the "terms" method with rarity over the corpus's paragraphs."""
    paragraphs = {f.name: _paragraphs(f.read_text(encoding="utf-8")) for f in files}
    words = {name: [set(informative_terms(text)) for _, text in items] for name, items in paragraphs.items()}
    frequency: Counter[str] = Counter()
    for sets in words.values():
        for held in sets:
            frequency.update(held)
    n = sum(len(items) for items in paragraphs.values())

    def rarity(word: str) -> float:
        return idf(frequency[word], n)

    out: dict[str, list[Question]] = {}
    for name in sorted(paragraphs):
        made: list[Question] = []
        items = [p for p in paragraphs[name] if _is_prose(p[1])]
        for line, text in rng.sample(items, len(items)):
            if len(made) >= PER_FILE:
                break
            q = _question(name, line, text, rarity, len(made))
            if q is not None and not _elsewhere(q, name, words):
                made.append(q)
        out[name] = made
    return out


def _question(name: str, line: int, paragraph: str, rarity, n: int) -> Question | None:  # type: ignore[no-untyped-def]
    best: tuple[float, str, list[str], int] | None = None
    for m in _SENTENCE.finditer(paragraph):
        sentence = m.group().strip()
        words = [w for w in informative_terms(sentence) if len(w) >= 3 or any(c.isdigit() for c in w)]
        if len(sentence.split()) < 6 or len(words) < 4:
            continue
        ranked = sorted(words, key=lambda w: (-rarity(w), w))
        score = sum(rarity(w) for w in ranked[:4])
        if best is None or score > best[0]:
            best = (score, sentence, ranked, line + paragraph.count("\n", 0, m.start()))
    if best is None:
        return None
    _, sentence, ranked, sentence_line = best
    answer, asked = ranked[0], ranked[1:4]
    # the answer as the sentence spells it: the gold check matches it case-sensitively
    spelled = re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", sentence, re.I)
    answer = spelled.group() if spelled else answer
    asked.sort(key=lambda w: sentence.lower().find(w))
    text = f"What do the documents say about {', '.join(asked[:-1])} and {asked[-1]}?"
    return Question(f"{name}#{n}", text, (answer,), name, name, sentence_line)


def _elsewhere(q: Question, name: str, words: dict[str, list[set[str]]]) -> bool:
    """Whether a paragraph of another file holds all the question's words and its answer (the
    question would then be answerable elsewhere by a simple term check: dropped, as rt eval does)."""
    wanted = set(informative_terms(q.text.removeprefix("What do the documents say about"))) | set(q.answers)
    return any(other != name and wanted <= held for other, sets in words.items() for held in sets)


def load_long_set(folder: Path | None = None, *, seed: int = SEED) -> EvalSet:
    """The corpus (written under ``folder``, default the eval cache) and its dev and test questions."""
    corpus = (folder or cache_folder()) / "corpus-gitdoc"
    files = write_corpus(corpus)
    rng = random.Random(seed)
    by_file = make_questions(files, rng)
    names = sorted(by_file)
    rng.shuffle(names)
    dev_names, test_names = sorted(names[:len(names) // 2]), sorted(names[len(names) // 2:])
    dev = tuple(q for n in dev_names for q in by_file[n])
    test = tuple(q for n in test_names for q in by_file[n])
    return EvalSet(corpus, dev, test, (), (), tuple(dev_names), tuple(test_names), (), "gitdoc")


def main() -> None:
    try:
        data = load_long_set()
    except EvalDataMissing as exc:
        sys.exit(f"eval_long: {exc}")
    files = sorted(data.corpus.glob("*.txt"))
    size = sum(f.stat().st_size for f in files) // 1000
    print(f"{data.name}: corpus {data.corpus} ({len(files)} documents, {size} kB)")
    print(f"dev: {len(data.dev)} questions from {len(data.dev_titles)} files; "
          f"test: {len(data.test)} questions from {len(data.test_titles)} files")
    for q in data.dev[:5]:
        print(f"  {q.path}:{q.line} {q.text} -> {q.answers[0]}")


if __name__ == "__main__":
    main()
