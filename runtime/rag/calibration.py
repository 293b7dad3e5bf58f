"""A coverage rule fitted on one index's own questions (``rt eval --calibrate``).

The default rule (:class:`~runtime.rag.config.CoverageOptions`) was fitted on SQuAD articles; on
other documents its threshold may sit in the wrong place. :func:`calibrate` fits the numbers
that move with the documents and the embedding model, the key-term weight, the weight of the
top passage's lead over the next (``margin``) and the score threshold, on part of an index's
labelled questions (answerable, and about documents the index does not hold), and measures the
fitted rule and the default side by side on the rest. A rule is kept only when it is better than
the default there (balanced accuracy: the mean of the answered share of answerable questions
and the declined share of unanswerable ones), so a rule that only fits its own questions is refused.

The kept rule is stored in the index's settings (:meth:`Index.set_setting`) with its
size, date, scores and rt version; :func:`rule_for` gives the RAG the rule to use and a name for
``coverage.signals["rule"]``.
"""

from __future__ import annotations

import bisect
import datetime
import json
import random
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from runtime.rag.config import CoverageOptions
from runtime.rag.coverage import decide, signal_score

if TYPE_CHECKING:
    from runtime.index import Index

TERM_WEIGHTS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5)
# the margin lies in the search's score units (hybrid: about 0 to 1); on the Reddit dev split
# the best weight fitted on crowd questions was 1.5-2
MARGIN_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
FIT_SHARE = 0.6  # of each class, fitted on; the rest judges the fit
MIN_PER_CLASS = 5  # fewer labelled questions of either kind than this in the fit part: no fit
MAX_CUTS = 200  # thresholds tried per term weight


@dataclass(frozen=True)
class Labelled:
    """A question's coverage signals (:func:`runtime.rag.coverage.measure`) and whether the
    index should answer it."""

    signals: dict[str, Any]
    answerable: bool


@dataclass(frozen=True)
class Rates:
    answered: float  # share of answerable questions the rule lets through
    declined: float  # share of unanswerable questions the rule declines
    n_answerable: int
    n_unanswerable: int

    @property
    def balanced(self) -> float:
        return (self.answered + self.declined) / 2


@dataclass(frozen=True)
class CalibratedRule:
    """A fitted rule as stored in the index settings."""

    term_weight: float
    min_score: float
    n: int  # labelled questions it was fitted on
    date: str
    balanced_accuracy: float  # on the held-back part
    default_balanced_accuracy: float  # the default rule on that same part
    rt_version: str
    margin_weight: float = 0.0  # absent from rules stored before the margin was a signal

    def options(self, base: CoverageOptions = CoverageOptions()) -> CoverageOptions:
        return replace(base, term_weight=self.term_weight, min_score=self.min_score,
                       margin_weight=self.margin_weight)

    def describe(self) -> str:
        return (f"calibrated on {self.n} questions of this index on {self.date[:10]} "
                f"(balanced accuracy {self.balanced_accuracy:.3f}, default {self.default_balanced_accuracy:.3f})")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CalibratedRule | None:
        """The stored rule, or ``None`` for text that is not one (an index written by a newer rt)."""
        try:
            value = json.loads(text)
            # a field with a default may be absent: the rule was stored by an rt before that field
            fields = cls.__dataclass_fields__.items()
            return cls(**{k: value[k] for k, f in fields if k in value or f.default is MISSING})
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` found: the fitted rule, both rules' rates on the held-back part, and
    whether the fitted rule may be kept (``reason`` says why not)."""

    rule: CalibratedRule | None
    fitted: Rates | None
    default: Rates
    fit_n: int
    check_n: int
    kept: bool
    reason: str


def rates(items: Sequence[Labelled], options: CoverageOptions) -> Rates:
    answerable = [i for i in items if i.answerable]
    unanswerable = [i for i in items if not i.answerable]
    answered = sum(decide(i.signals, options).covered for i in answerable)
    declined = sum(not decide(i.signals, options).covered for i in unanswerable)
    return Rates(answered / max(1, len(answerable)), declined / max(1, len(unanswerable)),
                 len(answerable), len(unanswerable))


def fit(items: Sequence[Labelled], base: CoverageOptions = CoverageOptions(),
        margin_weights: Sequence[float] = MARGIN_WEIGHTS) -> CoverageOptions:
    """The term weight, margin weight and threshold that maximise the worse of the two rates
    (ties: the higher balanced accuracy, then the rule nearest the default's threshold)."""
    # the missing-terms test and keyword-only questions do not move with the weights: decided once
    scored = [i for i in items if i.signals.get("best_similarity") is not None
              and decide(i.signals, replace(base, min_score=float("-inf"))).covered]
    n_yes = sum(i.answerable for i in items) or 1
    n_no = sum(not i.answerable for i in items) or 1
    fixed_declined = sum(not i.answerable for i in items if i not in scored)
    best, best_key = base, (-1.0, -1.0, 0.0)
    for term_weight in TERM_WEIGHTS:
        for margin_weight in margin_weights:
            options = replace(base, term_weight=term_weight, margin_weight=margin_weight)
            yes = sorted(signal_score(i.signals, options) for i in scored if i.answerable)
            no = sorted(signal_score(i.signals, options) for i in scored if not i.answerable)
            for min_score in _cuts(sorted({round(v, 4) for v in yes + no})):
                answered = (len(yes) - bisect.bisect_left(yes, min_score)) / n_yes
                declined = (bisect.bisect_left(no, min_score) + fixed_declined) / n_no
                key = (min(answered, declined), (answered + declined) / 2, -abs(min_score - base.min_score))
                if key > best_key:
                    best, best_key = replace(options, min_score=round(min_score, 4)), key
    return best


def _cuts(scores: list[float]) -> list[float]:
    """Every distinct cut, each halfway between two neighbouring scores (the widest margin on
    both sides, so the rule is not set at the edge of the questions it was fitted on)."""
    if len(scores) > MAX_CUTS:  # evenly spaced quantiles: the fit stays small on big sets
        scores = [scores[round(j * (len(scores) - 1) / (MAX_CUTS - 1))] for j in range(MAX_CUTS)]
    if not scores:
        return []
    return [scores[0] - 1e-3] + [(a + b) / 2 for a, b in zip(scores, scores[1:])] + [scores[-1] + 1e-3]


def split(items: Sequence[Labelled], seed: int) -> tuple[list[Labelled], list[Labelled]]:
    """``FIT_SHARE`` of each class to fit on, the rest to check on, drawn with ``seed``."""
    rng = random.Random(seed)
    fit_part: list[Labelled] = []
    check_part: list[Labelled] = []
    for answerable in (True, False):
        group = [i for i in items if i.answerable is answerable]
        rng.shuffle(group)
        cut = round(len(group) * FIT_SHARE)
        fit_part += group[:cut]
        check_part += group[cut:]
    return fit_part, check_part


def calibrate(items: Sequence[Labelled], *, seed: int = 0, base: CoverageOptions = CoverageOptions(),
              version: str = "", margin_weights: Sequence[float] = MARGIN_WEIGHTS) -> Calibration:
    """Fit on part of ``items``, judge on the rest against ``base`` (see the module docstring);
    ``margin_weights=(0.0,)`` fits the rule without the margin, as before it was a signal."""
    fit_part, check_part = split(items, seed)
    default = rates(check_part, base)
    counts = [sum(i.answerable is a for i in fit_part) for a in (True, False)]
    if min(counts) < MIN_PER_CLASS:
        return Calibration(None, None, default, len(fit_part), len(check_part), False,
                           f"too few questions to fit a rule ({counts[0]} answerable and {counts[1]} "
                           f"unanswerable in the fitting part; needs {MIN_PER_CLASS} of each)")
    fitted_options = fit(fit_part, base, margin_weights)
    fitted = rates(check_part, fitted_options)
    rule = CalibratedRule(fitted_options.term_weight, fitted_options.min_score, len(fit_part),
                          datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                          round(fitted.balanced, 4), round(default.balanced, 4), version,
                          fitted_options.margin_weight)
    if fitted.balanced <= default.balanced:
        return Calibration(rule, fitted, default, len(fit_part), len(check_part), False,
                           f"the fitted rule is no better than the default on the held-back questions "
                           f"(balanced accuracy {fitted.balanced:.3f}, default {default.balanced:.3f}); "
                           f"the default stays")
    return Calibration(rule, fitted, default, len(fit_part), len(check_part), True, "kept")


SETTING = "coverage_rule"


def stored_rule(index: Index) -> CalibratedRule | None:
    """The rule ``rt eval --calibrate`` stored in the index's settings, if any."""
    text = index.setting(SETTING)
    return CalibratedRule.from_json(text) if text else None


def store_rule(index: Index, rule: CalibratedRule | None) -> None:
    """Keep ``rule`` in the index's settings; ``None`` returns the index to rt's default rule."""
    index.set_setting(SETTING, rule.to_json() if rule is not None else None)


def rule_for(index: Index, base: CoverageOptions = CoverageOptions()) -> tuple[CoverageOptions, str]:
    """The coverage rule the index's settings hold (else ``base``), and its name for the signals."""
    rule = stored_rule(index)
    if rule is None:
        return base, "default"
    return rule.options(base), "calibrated"
