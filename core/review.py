"""Review statistics: sample sizes for spot checks, error-rate estimates with confidence
intervals, and agreement (Cohen's kappa). Pure functions; the data comes from core.store."""

from __future__ import annotations

import math
from collections import Counter
from statistics import NormalDist

VERDICTS = ("accept", "correct", "reject_rationale", "flag")
REASON_CODES = ("wrong label", "unfaithful rationale", "right label, wrong reason", "unclear input", "other")


def z_score(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def sample_size(margin: float, confidence: float = 0.95, p: float = 0.5, population: int | None = None) -> int:
    """Rows to review to estimate an error rate within ±margin at this confidence
    (Cochran's formula, with the finite-population correction when N is known)."""
    if not 0 < margin < 1 or not 0 < confidence < 1:
        raise ValueError("margin and confidence must be between 0 and 1")
    n0 = z_score(confidence) ** 2 * p * (1 - p) / margin ** 2
    if population:
        n0 = n0 / (1 + (n0 - 1) / population)
        return min(population, math.ceil(n0))
    return math.ceil(n0)


def wilson_interval(errors: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = z_score(confidence)
    phat = errors / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def error_estimate(outcomes: list[dict], confidence: float = 0.95) -> dict:
    """outcomes: reviewed spot-check rows with teacher_label, label_error, rationale_error."""
    n = len(outcomes)
    out = {"reviewed": n}
    for key in ("label_error", "rationale_error"):
        k = sum(bool(o[key]) for o in outcomes)
        low, high = wilson_interval(k, n, confidence)
        out[key] = {"rate": k / n if n else None, "low": low, "high": high, "errors": k}
    per_label: dict[str, list] = {}
    for o in outcomes:
        per_label.setdefault(o["teacher_label"] or "(none)", []).append(o)
    out["per_label"] = {
        label: {"reviewed": len(rows), "label_error_rate": sum(bool(r["label_error"]) for r in rows) / len(rows)}
        for label, rows in sorted(per_label.items())
    }
    return out


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Agreement of two raters beyond chance: (p_o - p_e) / (1 - p_e)."""
    return kappa_from_counts([(a, b, n) for (a, b), n in Counter(pairs).items()])


def kappa_from_counts(counts: list[tuple[str, str, int]]) -> float | None:
    """Cohen's kappa from a contingency table given as (label a, label b, count) rows."""
    n = sum(c for _, _, c in counts)
    if not n:
        return None
    observed = sum(c for a, b, c in counts if a == b) / n
    left, right = Counter(), Counter()
    for a, b, c in counts:
        left[a] += c
        right[b] += c
    expected = sum(left[k] * right[k] for k in set(left) | set(right)) / (n * n)
    if expected == 1:
        return 1.0
    return (observed - expected) / (1 - expected)
