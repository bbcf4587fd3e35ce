"""Files for the paper, written into every run folder.

* ``predictions.csv``: the per-subject out-of-fold predictions (as ``predictions.parquet``).
* ``metrics.csv``: one row per model and metric: value, CI, permutation p, verdict.
* ``excluded_subjects.csv``: every subject the label scheme or the data left out, and why.
* ``results.md`` / ``results.tex``: the results table (Markdown and LaTeX).
* ``methods.md``: a generated methods paragraph (n per class, CV scheme, tuning,
  statistics, software versions).

All are built from the run's own ``metrics.json`` and ``inputs.json`` content, so they
say what the study report says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cdrscreen.core.io import write_text

METRIC_LABELS = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy",
                 "macro_f1": "Macro-F1", "roc_auc": "ROC AUC"}


def _f(v: Any, nd: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and v != v) else f"{float(v):.{nd}f}"


def _p(v: Any) -> str:
    return "–" if v is None else f"{float(v):.3g}"


def _ci(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "–"
    if entry.get("ci_low") is None:
        return _f(entry["value"])
    return f"{_f(entry['value'])} [{_f(entry['ci_low'])}, {_f(entry['ci_high'])}]"


def metrics_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """Long table: one row per (model, metric) with CI, permutation p and verdict."""
    rows = []
    for name, m in metrics.get("models", {}).items():
        perm = m.get("permutation") or {}
        ver = m.get("verdicts") or {}
        for key, label in METRIC_LABELS.items():
            e = (m.get("metrics") or {}).get(key) or {}
            p = None
            if key == "roc_auc":
                p = perm.get("auc_p_value")
            elif key == perm.get("metric", "balanced_accuracy"):
                p = perm.get("p_value")
            verdict = (ver.get(key) or {}).get("text")
            if key == "accuracy":
                verdict = (ver.get("baseline") or {}).get("text")
            rows.append({"model": name, "metric": label, "value": e.get("value"),
                         "ci_low": e.get("ci_low"), "ci_high": e.get("ci_high"),
                         "ci_low_bootstrap": e.get("ci_low_bootstrap", e.get("ci_low")),
                         "ci_high_bootstrap": e.get("ci_high_bootstrap", e.get("ci_high")),
                         "permutation_p": p, "n_subjects": m.get("n_subjects"), "verdict": verdict})
    return pd.DataFrame(rows)


def results_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """One row per model: the figures of the results table as text."""
    rows = []
    for name, m in metrics.get("models", {}).items():
        met = m.get("metrics") or {}
        perm = m.get("permutation") or {}
        bt = m.get("baseline_test") or {}
        rows.append({
            "Model": name,
            "n per class": ", ".join(f"{c}: {k}" for c, k in (m.get("n_per_class") or {}).items()),
            "Balanced accuracy [95% CI]": _ci(met.get("balanced_accuracy")),
            "p (perm.)": _p(perm.get("p_value")),
            "ROC AUC [95% CI]": _ci(met.get("roc_auc")),
            "p (perm., AUC)": _p(perm.get("auc_p_value")),
            "Accuracy": _f((met.get("accuracy") or {}).get("value")),
            "Majority baseline": _f(bt.get("baseline")),
            "p (binomial)": _p(bt.get("p_value")),
            "Verdict": (m.get("verdicts") or {}).get("overall", "–"),
        })
    return rows


def results_markdown(metrics: dict[str, Any]) -> str:
    """Return the results table as Markdown."""
    rows = results_rows(metrics)
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    ci = int(round(100 * metrics.get("bootstrap", {}).get("ci", 0.95)))
    note = (f"\nSubject-level, out-of-fold. [{ci}% CI]: percentile bootstrap over subjects, widened to at least "
            "± z·SD of the permutation null when a permutation test was run. p (perm.): the whole nested "
            "procedure repeated with labels permuted across subjects. p (binomial): exact one-sided test of "
            "accuracy against always predicting the majority class.\n")
    return "\n".join(lines) + "\n" + note


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("–", "--"), ("±", r"$\pm$"), ("·", r"$\cdot$")):
        s = s.replace(a, b)
    return s


def results_latex(metrics: dict[str, Any]) -> str:
    """Return the results table as a LaTeX ``tabular`` (booktabs)."""
    rows = results_rows(metrics)
    if not rows:
        return ""
    cols = list(rows[0])
    out = [r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule",
           " & ".join(_tex(c) for c in cols) + r" \\", r"\midrule"]
    out += [" & ".join(_tex(r[c]) for c in cols) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


def methods_paragraph(metrics: dict[str, Any], protocol: Any, inputs: dict[str, Any], env: dict[str, Any]) -> str:
    """Return a methods paragraph generated from the run (to be edited, not pasted blindly)."""
    primary = metrics.get("primary_model")
    m = metrics.get("models", {}).get(primary, {})
    n_per = m.get("n_per_class") or {}
    scheme = inputs.get("label_scheme") or {}
    mapping = scheme.get("mapping") or {}
    cls_of: dict[str, list[str]] = {}
    for cdr, c in mapping.items():
        cls_of.setdefault(c, []).append(f"CDR {cdr}")
    classes = "; ".join(f"class {c} ({' and '.join(v)}): n = {n_per.get(c, 0)}" for c, v in cls_of.items())
    excluded = inputs.get("excluded_subjects") or []
    cvp = protocol.cv
    if cvp.outer == "loso":
        cv_txt = "leave-one-subject-out cross-validation"
    else:
        cv_txt = (f"subject-grouped {cvp.n_splits}-fold cross-validation"
                  + (f" repeated {cvp.repeats} times" if cvp.repeats > 1 else ""))
    models = []
    for spec in protocol.models:
        grid = ", ".join(f"{k} in {{{', '.join(map(str, v))}}}" for k, v in spec.grid.items())
        models.append(f"{spec.name} ({spec.fusion} fusion, {spec.learner}"
                      + (f"; {grid} tuned by a nested {cvp.inner_splits}-fold subject-grouped inner CV on "
                         f"{cvp.inner_scoring.replace('_', ' ')}" if grid else "") + ")")
    st = protocol.statistics
    pk = env.get("packages") or {}
    fk = {k: v for k, v in (env.get("feature_packages") or {}).items() if v}
    soft = ", ".join([f"cdrscreen {env.get('cdrscreen')}", f"Python {env.get('python')}"]
                     + [f"{k} {v}" for k, v in {**pk, **fk}.items() if v])
    groups = ", ".join(m.get("groups") or [])
    n_subj = m.get("n_subjects", 0)
    text = (
        f"Subjects were assigned to classes by the label scheme '{scheme.get('name', '?')}' ({classes}; "
        f"{n_subj} subjects in all"
        + (f"; {len(excluded)} subject(s) were left out: " + "; ".join(
            sorted({e['reason'] for e in excluded})) if excluded else "") + "). "
        f"Features of the groups {groups} were imputed (training-fold median) and standardised within each "
        f"training fold. Models were evaluated with {cv_txt}, with all scaling, selection and tuning inside "
        f"the training folds: " + "; ".join(models) + ". "
        f"Predictions were aggregated per subject ({protocol.subject_aggregation} over a subject's recordings) "
        f"and every metric is computed over subjects. Confidence intervals ({int(round(100 * st.ci))}%) are "
        f"percentile bootstrap intervals over subjects ({st.n_bootstrap} resamples)"
        + (f", widened to at least ± z·SD of the permutation null; significance was assessed by repeating the "
           f"whole nested procedure with labels permuted across subjects ({st.n_permutations} permutations) for "
           f"{st.permutation_metric.replace('_', ' ')} and for ROC AUC" if st.n_permutations else "")
        + ". ROC AUC ranks subjects by the decision value without its intercept (two classes), so that the "
          "training folds' class balance cannot make it anti-predictive. Accuracy was compared with always "
          "predicting the majority class by an exact one-sided binomial test. "
        f"Software: {soft}."
    )
    ver = (m.get("verdicts") or {}).get("summary")
    if ver:
        text += f"\n\nResult in words ({primary}): {ver}"
    return text + "\n"


def write_exports(out: Path, protocol: Any, data: Any, result: Any, env: dict[str, Any]) -> list[str]:
    """Write the paper files into a run folder; return their names."""
    preds = result.predictions.reset_index()
    write_text(out / "predictions.csv", preds.to_csv(index=False))
    write_text(out / "metrics.csv", metrics_frame(result.metrics).to_csv(index=False))
    excl = pd.DataFrame(data.inputs.get("excluded_subjects") or [], columns=["subject", "cdr", "reason"])
    write_text(out / "excluded_subjects.csv", excl.to_csv(index=False))
    write_text(out / "results.md", results_markdown(result.metrics))
    write_text(out / "results.tex", results_latex(result.metrics))
    write_text(out / "methods.md", methods_paragraph(result.metrics, protocol, data.inputs, env))
    return ["predictions.csv", "metrics.csv", "excluded_subjects.csv", "results.md", "results.tex", "methods.md"]
