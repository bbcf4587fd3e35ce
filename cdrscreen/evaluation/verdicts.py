"""Plain-language verdicts next to every headline figure of a run.

A verdict is computed once, when the run is written (``metrics.json: models.<m>.verdicts``),
and shown as it is by the terminal summary, the study report and the methods paragraph,
so the three always say the same thing. Each verdict is a short sentence a clinician can
read; the rules are in ``docs/evaluation.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binomtest

#: Significance level of every verdict.
ALPHA = 0.05

#: The one-line overall verdicts.
DISTINGUISHABLE = "distinguishable from chance"
NOT_DISTINGUISHABLE = "not distinguishable from chance"

LOSO_BELOW_CHANCE = (
    "below chance: with leave-one-subject-out, a cohort without a usable signal gives results "
    "below chance (each held-out subject's class is under-represented in its training set); "
    "read this as no evidence of a signal, not as a reversed one"
)


def baseline_test(n_correct: int, n: int, baseline_accuracy: float) -> dict[str, Any]:
    """Exact one-sided binomial test of accuracy against the majority-class baseline.

    Parameters
    ----------
    n_correct, n : int
        Subjects predicted correctly, subjects scored.
    baseline_accuracy : float
        Accuracy of always predicting the majority class.

    Returns
    -------
    dict
        ``{"test": "binomial", "n_correct", "n", "baseline", "p_value"}``.
    """
    p0 = float(min(max(baseline_accuracy, 0.0), 1.0))
    if n == 0:
        pv = 1.0
    elif p0 >= 1.0:
        pv = 1.0  # a one-class cohort: nothing can beat the baseline
    else:
        pv = float(binomtest(int(n_correct), int(n), p0, alternative="greater").pvalue)
    return {"test": "binomial (exact, one-sided)", "n_correct": int(n_correct), "n": int(n),
            "baseline": p0, "p_value": pv}


def _ci_has(entry: dict[str, Any] | None, value: float) -> bool | None:
    if not entry or entry.get("ci_low") is None or entry.get("ci_high") is None:
        return None
    return bool(entry["ci_low"] <= value <= entry["ci_high"])


def metric_verdict(entry: dict[str, Any] | None, chance: float, p_value: float | None, loso: bool,
                   ci: float = 0.95) -> dict[str, Any]:
    """Verdict of one metric against its chance level.

    Parameters
    ----------
    entry : dict
        ``{"value", "ci_low", "ci_high"}`` of the metric.
    chance : float
        Chance level (0.5 for ROC AUC, 1/K for balanced accuracy).
    p_value : float, optional
        Permutation p-value of the metric (None: not run).
    loso : bool
        Whether the outer CV is leave-one-subject-out (adds the below-chance explanation).
    ci : float
        Confidence level of the interval (for the wording).

    Returns
    -------
    dict
        ``verdict`` (one of :data:`DISTINGUISHABLE`, :data:`NOT_DISTINGUISHABLE`),
        ``ci_includes_chance``, ``p_below_alpha``, ``below_chance`` and ``text`` (a sentence).
    """
    pct = int(round(100 * ci))
    if not entry or entry.get("value") is None:
        return {"verdict": NOT_DISTINGUISHABLE, "ci_includes_chance": None, "p_below_alpha": None,
                "below_chance": None, "text": "not computed (a class is missing among the scored subjects)"}
    value = float(entry["value"])
    has = _ci_has(entry, chance)
    sig = None if p_value is None else bool(p_value < ALPHA)
    below = value < chance
    parts = []
    if has is None:
        parts.append("no confidence interval")
    elif has:
        parts.append(f"the {pct}% CI includes chance ({chance:.2f})")
    else:
        side = "below" if entry["ci_high"] < chance else "above"
        parts.append(f"the {pct}% CI lies {side} chance ({chance:.2f})")
    if sig is None:
        parts.append("no permutation test was run")
    else:
        parts.append(f"permutation p = {p_value:.3g} ({'below' if sig else 'not below'} {ALPHA:g})")
    ok = (has is False and not below) and (sig is True)
    if has is None and sig is True and not below:
        ok = True
    verdict = DISTINGUISHABLE if ok else NOT_DISTINGUISHABLE
    text = f"{verdict}: " + "; ".join(parts)
    if below and loso:
        text += f". {LOSO_BELOW_CHANCE[0].upper()}{LOSO_BELOW_CHANCE[1:]}"
    return {"verdict": verdict, "ci_includes_chance": has, "p_below_alpha": sig, "below_chance": below,
            "text": text}


def baseline_verdict(test: dict[str, Any], accuracy: float | None) -> dict[str, Any]:
    """Whether accuracy beats the majority-class baseline (exact binomial test)."""
    if accuracy is None:
        return {"beats_baseline": None, "text": "accuracy not computed"}
    beats = test["p_value"] < ALPHA
    word = "above" if beats else "not above"
    return {"beats_baseline": bool(beats),
            "text": (f"accuracy {accuracy:.2f} is {word} the majority baseline {test['baseline']:.2f} "
                     f"(exact binomial p = {test['p_value']:.3g}, {test['n_correct']}/{test['n']} correct)")}


def model_verdicts(entry: dict[str, Any], n_classes: int, loso: bool, ci: float = 0.95) -> dict[str, Any]:
    """All verdicts of one ``metrics.json`` model entry (balanced accuracy, ROC AUC, baseline, overall)."""
    met = entry.get("metrics", {})
    perm = entry.get("permutation") or {}
    bal_p = perm.get("p_value") if perm.get("metric") in (None, "balanced_accuracy") else None
    out = {
        "balanced_accuracy": metric_verdict(met.get("balanced_accuracy"), 1.0 / n_classes, bal_p, loso, ci),
        "roc_auc": metric_verdict(met.get("roc_auc"), 0.5, perm.get("auc_p_value"), loso, ci),
        "baseline": baseline_verdict(entry["baseline_test"], (met.get("accuracy") or {}).get("value")),
    }
    if perm.get("metric") not in (None, "balanced_accuracy"):
        out["balanced_accuracy"]["text"] += (f" (the permutation test used {perm['metric'].replace('_', ' ')})")
    both = [out["balanced_accuracy"]["verdict"], out["roc_auc"]["verdict"]]
    overall = DISTINGUISHABLE if DISTINGUISHABLE in both else NOT_DISTINGUISHABLE
    out["overall"] = overall
    out["summary"] = (f"The model's results are {overall}"
                      + ("" if overall == DISTINGUISHABLE else
                         " (no headline figure has a confidence interval clear of chance and a permutation "
                         f"p below {ALPHA:g})")
                      + ("; accuracy is above the majority baseline." if out["baseline"]["beats_baseline"]
                         else "; accuracy is not above the majority baseline."))
    return out


def widen_with_null(entry: dict[str, Any], null: np.ndarray, ci: float) -> dict[str, Any]:
    """Widen a bootstrap CI to at least ``value ± z * SD(permutation null)``.

    The bootstrap over subjects treats out-of-fold predictions as independent, but in
    cross-validation they share training data, so on small cohorts its interval is too
    narrow (on shuffled labels it excludes chance far more often than 5 %). The
    permutation null repeats the whole procedure and measures that variability; the
    interval reported is the union of both (the bootstrap one is kept as
    ``ci_low_bootstrap`` / ``ci_high_bootstrap``).
    """
    from scipy.stats import norm

    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    if entry.get("value") is None or null.size < 2:
        return entry
    z = float(norm.ppf(1 - (1 - ci) / 2))
    half = z * float(null.std(ddof=1))
    v = float(entry["value"])
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    out = dict(entry, ci_low_bootstrap=lo, ci_high_bootstrap=hi)
    out["ci_low"] = max(0.0, min(v - half, lo if lo is not None else v - half))
    out["ci_high"] = min(1.0, max(v + half, hi if hi is not None else v + half))
    return out
