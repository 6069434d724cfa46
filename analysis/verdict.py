"""The one verdict on the target: a graded word from the one headline probability.

The headline probability is trajectory.json `headline.p_exceeds_target`: the
probability that the true share in the target year exceeds the target. In the
target year it comes from that year's direct survey estimate (logit scale, on
the t distribution with the interval's degrees of freedom); before it, from the
chosen trend model's predictive distribution. The summary, the indicator table
and the recommendations all take their verdict from `target_verdict`, so they
cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .settings import (
    DEFAULT_P_ACHIEVED,
    DEFAULT_P_LIKELY_MISSED,
    DEFAULT_P_MISSED,
    DEFAULT_P_TARGET_SECURED,
)
from .vocabulary import term

VERDICTS = ("achieved", "likely_achieved", "uncertain", "likely_missed", "missed")
# the indicator of the plan that the headline probability is about (progress indicators, plan file)
HEADLINE_INDICATOR = "literacy_rate"


@dataclass(frozen=True)
class Thresholds:
    """Cut-offs on P(target) (the plan file's report: p_achieved, p_target_secured, p_likely_missed, p_missed)."""

    achieved: float = DEFAULT_P_ACHIEVED
    likely_achieved: float = DEFAULT_P_TARGET_SECURED
    likely_missed: float = DEFAULT_P_LIKELY_MISSED
    missed: float = DEFAULT_P_MISSED

    def __post_init__(self) -> None:
        if not 0 <= self.missed < self.likely_missed < self.likely_achieved < self.achieved <= 1:
            raise ValueError(f"verdict thresholds must increase: {self}")

    @classmethod
    def from_settings(cls, report: Any) -> Thresholds:
        """From plan.settings.report."""
        return cls(report.p_achieved, report.p_target_secured, report.p_likely_missed, report.p_missed)


def headline_probability(traj: dict[str, Any]) -> float:
    """The one probability that the target year's share exceeds the target (trajectory.json headline)."""
    return float((traj.get("headline") or traj)["p_exceeds_target"])


def is_forecast(traj: dict[str, Any]) -> bool:
    """True when the probability is a trend forecast (a monitoring year), not the target year's survey."""
    basis = (traj.get("headline") or {}).get("basis")
    if basis:
        return basis == "model_forecast"
    return not traj.get("target_year_observed", traj["latest_year"] >= traj["target_year"])


def target_verdict(p: float, thresholds: Thresholds | None = None) -> str:
    """The verdict code for P(target) = p."""
    t = thresholds or Thresholds()
    if not 0 <= p <= 1:
        raise ValueError(f"a probability must lie in [0, 1], not {p}")
    if p >= t.achieved:
        return "achieved"
    if p >= t.likely_achieved:
        return "likely_achieved"
    if p <= t.missed:
        return "missed"
    if p <= t.likely_missed:
        return "likely_missed"
    return "uncertain"


def verdict_code(traj: dict[str, Any], thresholds: Thresholds | None = None) -> str:
    return target_verdict(headline_probability(traj), thresholds)


def verdict_label(traj: dict[str, Any], lang: str = "zh", thresholds: Thresholds | None = None) -> str:
    """The verdict in words: '很可能未达到' in the target year, '很可能不能如期达到' before it."""
    return term("target_outlook" if is_forecast(traj) else "target_verdict", verdict_code(traj, thresholds), lang)


def secured(traj: dict[str, Any], thresholds: Thresholds | None = None) -> bool:
    """Achieved or very likely achieved: no finding on the target is needed."""
    return verdict_code(traj, thresholds) in ("achieved", "likely_achieved")


def grading(lang: str = "zh", thresholds: Thresholds | None = None, forecast: bool = False) -> list[tuple[str, str]]:
    """(words, range of P) for each verdict, for the methods appendix."""
    t = thresholds or Thresholds()
    kind = "target_outlook" if forecast else "target_verdict"
    ranges = {"achieved": f"P ≥ {t.achieved:.1%}", "likely_achieved": f"{t.likely_achieved:.0%} ≤ P < {t.achieved:.1%}",
              "uncertain": f"{t.likely_missed:.0%} < P < {t.likely_achieved:.0%}",
              "likely_missed": f"{t.missed:.1%} < P ≤ {t.likely_missed:.0%}", "missed": f"P ≤ {t.missed:.1%}"}
    return [(term(kind, v, lang), ranges[v]) for v in VERDICTS]
