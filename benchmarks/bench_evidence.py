"""Calibrate the evidence check (:mod:`runtime.rag.evidence`) on labelled claims from the eval set.

Run: ``python benchmarks/bench_evidence.py [--fit] [--per-split 300]`` (embedding only, no language
model; about 25 minutes at 300 questions per split on 2 shared cores, mostly packing's embeddings).

rt marks a sentence of an answer *supported* when the best sentence (or pair of adjacent
sentences) of a source it cites scores ``lexical_weight * overlap + (1 - lexical_weight) *
cosine >= min_support`` (:class:`runtime.rag.config.EvidenceOptions`). This script builds claims with
known labels from :mod:`benchmarks.eval_data` (SQuAD v1.1 dev articles, split dev/test by article
with a fixed seed), scores them with rt's own :func:`~runtime.rag.evidence.check_claims`, and with
``--fit`` grid-searches both numbers on DEV only; test is only ever evaluated.

The claim set needs no language model. For each sampled question, the sources are what rt itself
would give the model: the question is searched in the eval index with rt's defaults
(``Index.search(question, 10)``) and each passage used below is packed as ``rt ask`` packs it
(:func:`runtime.rag.packing.pack`: the sentences closest to the question, one neighbour each side).
The *gold source* is the packed gold passage (:meth:`EvalSet.is_gold`) and must still hold a gold
answer; a question whose gold passage is not in the first 10 hits, or whose excerpt lost the
answer, gives no items. Each claim is written as a small model writes one (rt's answers start
"According to ["): ``According to [1], <claim>.`` or, for every other question, ``<Claim> [1].``,
and checked against that one source, numbered 1. Three classes, each in two forms:

- **supported**: the claim against the gold source. Forms: *rewrite*, a crude declarative made
  from the question and the answer ("Who ruled the duchy of Normandy?" + "Richard I" -> "Richard I
  ruled the duchy of Normandy"), which shares the question's words but not the source's wording;
  *cut*, the source sentence holding the answer cut to at most 8 words either side of it (an
  extractive answer). The rewrite keeps the set from being trivial: a cut's words are always all in
  the source.
- **wrong source**: the same two claims against a passage retrieved for the question that holds
  none of its answers (a hard negative from rt's own search: the best-ranked such hit of the same
  article, else the best-ranked of any article). This is a model citing the wrong number.
- **wrong fact**: the two claims with the answer replaced by another sampled question's answer of
  the same kind (a year, another number, a capitalised name, other words), taken from the same
  article when one exists, against the gold source; the other answer must not occur in the source
  nor share a word with the gold answers. This is a model stating a fact its source does not hold,
  in the source's own words around it: the hard case for any word-overlap or embedding signal, so
  it is reported on its own.

Measures per rule and split: the share of each class judged right, balanced accuracy (the mean of
the supported class's accuracy and the unsupported classes' mean accuracy, so each of the three
classes weighs as the design made them, not by their counts) and the AUC of the score, supported
against all unsupported and against each unsupported class. ``--fit`` picks ``lexical_weight``
(0.1 steps) and ``min_support`` (0.01 steps) with the best dev balanced accuracy: a missed support
and a passed unsupported claim cost the same here, since the classes' real frequencies are unknown.
It also prints the rule fitted on dev without the wrong-fact class, to show how much the fitted
threshold owes to that class.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_data import EvalSet, Question, load_eval_set  # noqa: E402
from runtime.rag.answer import Source  # noqa: E402
from runtime.rag.config import EvidenceOptions  # noqa: E402
from runtime.rag.evidence import check_claims, claim_words, sentences, split_claims  # noqa: E402

if TYPE_CHECKING:
    from runtime.index import Index
    from runtime.index.embedders.base import Embedder

CLASSES = ("supported", "wrong source", "wrong fact")
FORMS = ("rewrite", "cut")
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(101))
WINDOW = 8  # words kept either side of the answer in a cut

_WH = {"who", "whom", "whose", "what", "which", "when", "where", "why", "how"}
_BE = {"is", "are", "was", "were"}
_AUX = _BE | {"did", "does", "do", "has", "have", "had", "can", "could", "will", "would", "should", "might"}
_LINK = {"when": "in", "where": "in", "why": "because", "how": ""}
_DO = {"did", "does", "do"}
_PREPOSITION = {"in", "at", "on", "by", "during", "from", "after", "before", "around", "because", "since", "to"}


@dataclass(frozen=True)
class Item:
    """One labelled claim: an answer sentence citing ``[1]`` and the source numbered 1."""

    label: str   # one of CLASSES
    form: str    # one of FORMS
    claim: str
    source: Source

    @property
    def supported(self) -> bool:
        return self.label == "supported"


# --- building the set ---------------------------------------------------------------------------

def declarative(question: str, answer: str) -> str:
    """A crude statement of ``answer`` as the answer to ``question`` ("Who ruled X?" + "Rollo" ->
    "Rollo ruled X"; "When did X happen?" + "911" -> "X happen in 911"; otherwise the question's
    words without the wh-word, then the answer)."""
    words = question.strip().rstrip("?. ").split()
    at = next((i for i, w in enumerate(words[:3]) if w.lower() in _WH), None)
    if at is None:
        return " ".join([w for w in words if w.lower() not in _WH] + [answer])
    if at:  # "In what year did ...": the preposition goes with the answer
        answer, words = " ".join([words[0].lower(), *words[1:at], answer]), words[at:]
    wh, rest = words[0].lower(), words[1:]
    if wh == "how" and rest and rest[0].lower() in {"many", "much"}:
        rest = rest[1:]
        aux = next((i for i, w in enumerate(rest) if w.lower() in _AUX), None)
        if aux is None:
            return " ".join([answer] + rest)
        return " ".join(rest[aux + 1:] + [answer] + rest[:aux])
    if not rest:
        return answer
    first = rest[0].lower()
    if wh in _LINK:
        tail = rest[1:] if first in _AUX else rest
        link = "" if at or answer.split()[0].lower() in _PREPOSITION else _LINK[wh]
        return " ".join(tail + [link, answer]).replace("  ", " ")
    if first in _BE:
        return " ".join(rest[1:] + [rest[0], answer])
    if first in _AUX:
        return " ".join(rest[1:] + [answer])
    aux = next((i for i, w in enumerate(rest[:4]) if w.lower() in _AUX), None)
    if aux is not None and rest[aux].lower() in _DO:  # "What century did the Normans ...": an object
        return " ".join(rest[aux + 1:] + [answer])
    if aux is not None:  # "Which theorem can be simplified ...": the subject
        return " ".join([answer] + rest[aux:])
    return " ".join([answer] + rest)


def cut(text: str, answer: str, window: int = WINDOW) -> str | None:
    """The sentence of ``text`` holding ``answer``, cut to ``window`` words either side of it
    (an exact slice of the sentence, trailing punctuation dropped)."""
    for span in sentences(text, prose=True):
        at = span.text.find(answer)
        if at < 0:
            continue
        starts = [m.start() for m in re.finditer(r"\S+", span.text[:at])]
        begin = starts[-window] if len(starts) >= window else 0
        ends = [m.end() for m in re.finditer(r"\S+", span.text[at + len(answer):])]
        end = at + len(answer) + (ends[window - 1] if len(ends) >= window else len(span.text) - at - len(answer))
        return " ".join(span.text[begin:end].split()).rstrip(".,;: ")
    return None


def answer_kind(answer: str) -> str:
    """``year``, ``number``, ``name`` (capitalised) or ``words``: what a stand-in answer must match."""
    if re.search(r"\b(1\d{3}|20\d{2})s?\b", answer) and len(answer.split()) <= 4:
        return "year"
    if re.search(r"\d", answer) or answer.lower().split()[0] in {"one", "two", "three", "four", "five", "six",
                                                               "seven", "eight", "nine", "ten", "hundreds"}:
        return "number"
    return "name" if answer[:1].isupper() else "words"


def cited(body: str, style: int) -> str:
    """``body`` as an answer sentence citing source 1, in one of two styles a model writes."""
    body = body.strip().rstrip(".")
    if style % 2 == 0:
        return f"According to [1], {body}."
    return f"{body[:1].upper()}{body[1:]} [1]."


def _contains(text: str, phrase: str) -> bool:
    return phrase.lower() in text.lower()


def _source(hit: Any) -> Source:
    return Source(1, hit.path, hit.page, hit.lines, hit.score, hit.similarity, hit.text,
                  getattr(hit, "location", None))


def stand_in(question: Question, answer: str, source: str, pool: Sequence[tuple[Question, str]],
             rng: random.Random) -> str | None:
    """Another question's answer of the same kind that ``source`` does not hold and that shares
    no word with ``question``'s answers; from the same article when one exists."""
    kind = answer_kind(answer)
    gold_words = set().union(*(claim_words(a) for a in question.answers))
    fits = [a for q, a in pool if q.id != question.id and answer_kind(a) == kind and not _contains(source, a)
            and not claim_words(a) & gold_words]
    same = [a for q, a in pool if q.title == question.title and a in fits]
    choices = sorted(set(same or fits))
    return rng.choice(choices) if choices else None


def build_items(data: EvalSet, index: Index, questions: Sequence[Question], embedder: Embedder,
                *, seed: int = 0) -> tuple[list[Item], Counter[str]]:
    """The labelled claims of ``questions`` (see the module docstring) and why any were skipped."""
    from runtime.rag.packing import pack

    rng = random.Random(seed)
    skipped: Counter[str] = Counter()
    prepared: list[tuple[Question, str, Source, Source | None]] = []
    for question in questions:
        hits = index.search(question.text, 10)
        gold = next((h for h in hits if data.is_gold(question, h.path, h.lines, h.text)), None)
        if gold is None:
            skipped["gold passage not in the first 10 hits"] += 1
            continue
        gold_source = _source(pack(question.text, [gold], embedder)[0])
        answer = next((a for a in question.answers if a in gold_source.text), None)
        if answer is None:
            skipped["packed excerpt lost the answer"] += 1
            continue
        others = [h for h in hits if h.chunk_id != gold.chunk_id
                  and not any(_contains(h.text, a) for a in question.answers)]
        wrong = next((h for h in others if h.path == gold.path), others[0] if others else None)
        prepared.append((question, answer, gold_source,
                         _source(pack(question.text, [wrong], embedder)[0]) if wrong is not None else None))
    pool = [(q, a) for q, a, _, _ in prepared]
    items: list[Item] = []
    for k, (question, answer, gold_source, wrong_source) in enumerate(prepared):
        forms = {"rewrite": declarative(question.text, answer), "cut": cut(gold_source.text, answer)}
        other = stand_in(question, answer, gold_source.text, pool, rng)
        skipped["no wrong source among the hits"] += wrong_source is None
        skipped["no stand-in answer of the same kind"] += other is None
        for form, body in forms.items():
            if body is None:
                continue
            candidates = [("supported", body, gold_source), ("wrong source", body, wrong_source),
                          ("wrong fact", _swap(form, body, question.text, answer, other), gold_source)]
            for label, text, source in candidates:
                if text is None or source is None:
                    continue
                claim = cited(text, k)
                if len(split_claims(claim)) != 1:  # an abbreviation split it: rt would check two claims
                    skipped[f"{form} claim is not one sentence"] += 1
                    continue
                items.append(Item(label, form, claim, source))
    return items, skipped


def _swap(form: str, body: str, question: str, answer: str, other: str | None) -> str | None:
    if other is None:
        return None
    return declarative(question, other) if form == "rewrite" else body.replace(answer, other, 1)


# --- scoring, measuring, fitting ----------------------------------------------------------------

class CachedEmbedder:
    """An embedder with each distinct text embedded once (scores are recomputed per weight).
    While ``recording``, unknown texts are only noted (zero vectors come back), so that
    :meth:`prefetch` can embed everything a pass will ask for in large batches."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens
        self.cache: dict[str, np.ndarray] = {}
        self.recording: set[str] | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if self.recording is not None:
            self.recording.update(missing)
            return np.zeros((len(texts), self.dimension), dtype=np.float32)
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing)))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts]).astype(np.float32)

    def prefetch(self, run: Callable[[], object]) -> None:
        """Note the texts ``run()`` embeds, then embed them all at once."""
        self.recording = set()
        try:
            run()
            wanted = sorted(self.recording)
        finally:
            self.recording = None
        self.embed(wanted)

    def embed_query(self, query: str) -> np.ndarray:
        method = getattr(self.inner, "embed_query", None)
        return np.asarray(method(query) if callable(method) else self.embed([query])[0])

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return self.inner.token_offsets(text)


def scores(items: Sequence[Item], embedder: Embedder | None, lexical_weight: float) -> list[float]:
    """Each item's score from rt's :func:`check_claims` (its single claim's best evidence)."""
    if isinstance(embedder, CachedEmbedder) and embedder.recording is None:
        embedder.prefetch(lambda: scores(items, embedder, lexical_weight))
    options = EvidenceOptions(lexical_weight=lexical_weight)
    return [check_claims(item.claim, [item.source], embedder, options)[0].score for item in items]


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """The chance that a positive outscores a negative (ties count half)."""
    if not positive or not negative:
        return float("nan")
    neg = np.sort(np.asarray(negative))
    pos = np.asarray(positive)
    below = np.searchsorted(neg, pos, side="left")
    equal = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * equal).sum() / (len(pos) * len(neg)))


def measure(items: Sequence[Item], values: Sequence[float], threshold: float) -> dict[str, float]:
    """Per-class accuracy, balanced accuracy and AUCs of ``values`` at ``threshold``."""
    by_class: dict[str, list[float]] = defaultdict(list)
    for item, value in zip(items, values):
        by_class[item.label].append(value)
    out = {label: _accuracy(by_class[label], threshold, label == "supported") for label in CLASSES}
    unsupported = [out[label] for label in CLASSES[1:] if by_class[label]]
    out["balanced"] = (out["supported"] + sum(unsupported) / max(len(unsupported), 1)) / 2
    positive = by_class["supported"]
    out["AUC"] = auc(positive, by_class["wrong source"] + by_class["wrong fact"])
    out["AUC wrong source"] = auc(positive, by_class["wrong source"])
    out["AUC wrong fact"] = auc(positive, by_class["wrong fact"])
    return out


def _accuracy(values: Sequence[float], threshold: float, supported: bool) -> float:
    if not values:
        return float("nan")
    return sum((v >= threshold) == supported for v in values) / len(values)


def fit(items: Sequence[Item], score_for: Callable[[float], Sequence[float]],
        weights: Iterable[float] = WEIGHTS, thresholds: Iterable[float] = THRESHOLDS) -> EvidenceOptions:
    """The ``lexical_weight`` and ``min_support`` with the best balanced accuracy on ``items``;
    ``score_for(weight)`` gives the items' scores. Ties go to the rule nearest rt's defaults."""
    default = EvidenceOptions()
    thresholds = tuple(thresholds)
    best, best_key = default, (-1.0, 0.0)
    for weight in weights:
        values = score_for(weight)
        for threshold in thresholds:
            balanced = measure(items, values, threshold)["balanced"]
            key = (balanced, -abs(weight - default.lexical_weight) - abs(threshold - default.min_support))
            if key > best_key:
                best, best_key = replace(default, lexical_weight=weight, min_support=threshold), key
    return best


# --- the report ---------------------------------------------------------------------------------

HEADER = ("| rule | split | supported | wrong source | wrong fact | balanced | AUC | AUC vs wrong source | "
          "AUC vs wrong fact |\n|---|---|---|---|---|---|---|---|---|")


def row(rule: str, split: str, m: dict[str, float]) -> str:
    keys = (*CLASSES, "balanced", "AUC", "AUC wrong source", "AUC wrong fact")
    return f"| {rule} | {split} | " + " | ".join(f"{m[k]:.3f}" for k in keys) + " |"


def rule_name(options: EvidenceOptions) -> str:
    return f"lexical_weight {options.lexical_weight:g}, min_support {options.min_support:g}"


def by_form(items: Sequence[Item], values: Sequence[float], threshold: float) -> str:
    cells = []
    for form in FORMS:
        for label in CLASSES:
            chosen = [v for i, v in zip(items, values) if i.form == form and i.label == label]
            cells.append(f"{label}/{form} {_accuracy(chosen, threshold, label == 'supported'):.3f} (n={len(chosen)})")
    return ", ".join(cells)


def _model_spec(name: str) -> str | None:
    from runtime.index.config import DEFAULT_EMBEDDING_MODEL

    return None if name == DEFAULT_EMBEDDING_MODEL else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="store_true", help="grid-search lexical_weight and min_support on dev")
    parser.add_argument("--per-split", type=int, default=300, help="questions drawn per split [default: 300]")
    parser.add_argument("--lexical-weight", type=float, default=None, help="evaluate this rule as well")
    parser.add_argument("--min-support", type=float, default=None, help="evaluate this rule as well")
    args = parser.parse_args()

    from benchmarks.bench_retrieval import index_for
    from runtime.index import IndexOptions
    from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder

    data = load_eval_set(per_split=args.per_split)
    index = index_for(data, IndexOptions())
    # sentence-transformers, batched (rt's query-time numpy embedder gives the same vectors, to
    # cosine >= 0.9999, one text at a time)
    embedder = CachedEmbedder(SentenceTransformerEmbedder(_model_spec(index.embedding_model)))
    index.embedder = embedder
    sets = {}
    for split, questions in (("dev", data.dev), ("test", data.test)):
        items, skipped = build_items(data, index, questions, embedder)
        sets[split] = items
        counts = Counter((i.label, i.form) for i in items)
        print(f"{split}: {len(questions)} questions -> {len(items)} claims "
              f"({', '.join(f'{label}/{form} {n}' for (label, form), n in sorted(counts.items()))}); "
              f"skipped: {dict(skipped) or 'none'}", file=sys.stderr)
    index.close()

    cache: dict[tuple[str, float], list[float]] = {}

    def values(split: str, weight: float) -> list[float]:
        if (split, weight) not in cache:
            cache[split, weight] = scores(sets[split], embedder, weight)
        return cache[split, weight]

    rules = [("rt's defaults", EvidenceOptions()),
             ("hand-set before the fit", replace(EvidenceOptions(), lexical_weight=0.5, min_support=0.5))]
    if args.lexical_weight is not None or args.min_support is not None:
        given = replace(EvidenceOptions(), **{k: v for k, v in (("lexical_weight", args.lexical_weight),
                                                                ("min_support", args.min_support)) if v is not None})
        rules.append(("given", given))
    if args.fit:
        rules.append(("fitted on dev", fit(sets["dev"], lambda w: values("dev", w))))
        # how much the fit owes to the wrong-fact class, whose real share in answers is unknown
        kept = [k for k, item in enumerate(sets["dev"]) if item.label != "wrong fact"]
        rules.append(("fitted on dev without wrong facts",
                      fit([sets["dev"][k] for k in kept], lambda w: [values("dev", w)[k] for k in kept])))
    print(f"## Evidence check: labelled claims from SQuAD ({len(sets['dev'])} dev, {len(sets['test'])} test)")
    print(HEADER)
    for name, options in rules:
        for split in ("dev", "test"):
            print(row(f"{name} ({rule_name(options)})", split,
                      measure(sets[split], values(split, options.lexical_weight), options.min_support)))
    print()
    for name, options in rules:
        for split in ("dev", "test"):
            print(f"{name}, {split}, per form: "
                  + by_form(sets[split], values(split, options.lexical_weight), options.min_support))


if __name__ == "__main__":
    main()
