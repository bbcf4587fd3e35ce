"""Study report: cohort, data quality, results with CIs, ablation, fusion, provenance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from cdrscreen.reports import figures as F
from cdrscreen.reports.builder import Report
from cdrscreen.reports.rundata import RunData

METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
                "macro_f1": "macro-F1", "roc_auc": "ROC AUC"}


def _ci(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "–"
    lo, hi = m.get("ci_low"), m.get("ci_high")
    if lo is None or hi is None:
        return f"{m['value']:.2f}"
    return f"{m['value']:.2f} [{lo:.2f}, {hi:.2f}]"


def _per_recording(features: pd.DataFrame) -> pd.DataFrame:
    keys = [n for n in ("subject", "session") if n in features.index.names]
    num = features.select_dtypes(include=[np.number, "bool"]).astype(float)
    return num.groupby(level=keys).mean()


#: Study-level cells summarising fewer people than this show no summary (only "n < 3").
MIN_CELL_N = 3
SMALL_CELL = f"n < {MIN_CELL_N}"
SMALL_CELL_NOTE = (f"Cells with fewer than {MIN_CELL_N} people are not summarised (shown as '{SMALL_CELL}'): "
                   "a mean of one or two people gives their values away.")


def cohort_table(features: pd.DataFrame, min_n: int = MIN_CELL_N) -> pd.DataFrame:
    """Count subjects and recordings per CDR class, with covariate summaries.

    A covariate summary over fewer than ``min_n`` subjects is shown as ``"n < 3"``
    (small-cell suppression).
    """
    rec = _per_recording(features)
    if "meta__cdr" not in rec:
        return pd.DataFrame()
    subj = rec.groupby(level="subject").first()
    rows = []
    for cdr, g in subj.groupby("meta__cdr"):
        r: dict[str, object] = {"CDR": f"{cdr:g}", "subjects": len(g),
                                "recordings": int((rec["meta__cdr"] == cdr).sum())}
        for col, name in (("meta__age", "age"), ("meta__mmse", "MMSE")):
            if col in g and g[col].notna().any():
                n = int(g[col].notna().sum())
                r[f"{name} mean ± SD"] = (f"{g[col].mean():.1f} ± {g[col].std(ddof=1):.1f}" if n >= min_n
                                          else f"n < {min_n}")
        rows.append(r)
    return pd.DataFrame(rows)


def sex_table(features: pd.DataFrame, min_n: int = MIN_CELL_N) -> pd.DataFrame | None:
    """Count sex per CDR class (subject level), when the feature table carries it.

    Counts of 1 to ``min_n - 1`` are shown as ``"n < 3"`` (small-cell suppression).
    """
    if "meta__sex" not in features.columns or "meta__cdr" not in features.columns:
        return None
    subj = features.reset_index().groupby("subject")[["meta__cdr", "meta__sex"]].first()
    if subj["meta__sex"].isna().all():
        return None
    tab = pd.crosstab(subj["meta__cdr"].map(lambda v: f"CDR {v:g}"), subj["meta__sex"].fillna("not given"))
    tab = tab.astype(object).map(lambda v: f"n < {min_n}" if 0 < int(v) < min_n else int(v))
    tab.index.name = "class"
    return tab.reset_index()


def verdict_lines(run: RunData, model: str) -> dict[str, str]:
    """Return the run's verdicts in words for one model (``metrics.json: verdicts``)."""
    ver = (run.metrics.get("models", {}).get(model, {}) or {}).get("verdicts") or {}
    out = {}
    if ver.get("summary"):
        out["In short"] = ver["summary"]
    for key, label in (("balanced_accuracy", "Balanced accuracy"), ("roc_auc", "ROC AUC")):
        if key in ver:
            out[label] = ver[key]["text"]
    if "baseline" in ver:
        out["Accuracy vs majority baseline"] = ver["baseline"]["text"]
    return out


def excluded_table(run: RunData) -> pd.DataFrame:
    """Subjects the label scheme or the data left out of the evaluation, with the reason."""
    rows = [{"subject": e.get("subject"), "reason": e.get("reason")}
            for e in run.inputs.get("excluded_subjects") or []]
    return pd.DataFrame(rows, columns=["subject", "reason"])


def imputed_subjects(run: RunData, model: str, threshold: float) -> list[str]:
    """Subjects whose prediction rests mostly on imputed values (fraction above ``threshold``)."""
    preds = run.subject_predictions(model)
    if "imputed_fraction" not in preds:
        return []
    frac = pd.to_numeric(preds["imputed_fraction"], errors="coerce")
    return [str(s) for s in frac.index[frac > threshold]]


def quality_table(features: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """Per feature group: columns, recordings with every value / with any missing value."""
    rec_keys = [n for n in ("subject", "session") if n in features.index.names]
    rows = []
    for g, cols in groups.items():
        cols = [c for c in cols if c in features.columns]
        if not cols:
            continue
        per = features[cols].isna().groupby(level=rec_keys).mean()
        missing_any = (per > 0).any(axis=1)
        rows.append({"group": g, "columns": len(cols), "recordings": len(per),
                     "complete": int((~missing_any).sum()), "with missing values": int(missing_any.sum()),
                     "missing cells (%)": round(100 * float(per.to_numpy().mean()), 2)})
    return pd.DataFrame(rows)


def quality_columns(features: pd.DataFrame) -> pd.DataFrame:
    """Summarise quality-like columns (usable fraction, success, SNR): mean, SD, counts."""
    rec = _per_recording(features)
    cols = [c for c in rec.columns if not c.startswith("meta__")
            and any(k in c.lower() for k in ("usable", "success", "snr", "quality"))]
    rows = [{"column": c, "recordings": int(rec[c].notna().sum()), "mean": rec[c].mean(),
             "SD": rec[c].std(ddof=1),
             "recordings below 0.8": int((rec[c] < 0.8).sum()) if "snr" not in c.lower() else np.nan}
            for c in cols]
    return pd.DataFrame(rows)


def results_table(run: RunData) -> pd.DataFrame:
    """One row per model: metrics with CIs, baseline, permutation p-value, n per class."""
    rows = []
    for name, m in run.metrics.get("models", {}).items():
        met = m.get("metrics", {})
        base = m.get("baseline", {}) or {}
        perm = m.get("permutation") or {}
        r: dict[str, object] = {"model": name, "groups": " + ".join(m.get("groups", []))}
        for k, label in METRIC_NAMES.items():
            r[label] = _ci(met.get(k))
        r["baseline bal. acc."] = base.get("balanced_accuracy")
        r["p (perm.): bal. acc. / AUC"] = (f"{_num(perm.get('p_value'))} / {_num(perm.get('auc_p_value'))}"
                                           if perm else "not run")
        r["verdict"] = (m.get("verdicts") or {}).get("overall", "–")
        r["n per class"] = ", ".join(f"{k}: {v}" for k, v in (m.get("n_per_class") or {}).items())
        rows.append(r)
    return pd.DataFrame(rows)


def detailed_models(run: RunData) -> list[str]:
    """Return the models shown with their own confusion matrix and ROC.

    Every protocol model, but of an ablation's variants only the full model (the others
    are in the ablation table).
    """
    names = list(run.metrics.get("models", {}))
    plain = [n for n in names if not str(n).startswith(("only:", "drop:", "subset:"))]
    return plain or names[:1]


def build_study_report(run: RunData, banner: str | None = None, ablation: RunData | None = None) -> Report:
    """Build the study report of a run.

    Parameters
    ----------
    run : RunData
        The loaded run folder.
    banner : str, optional
        Highlighted line (e.g. synthetic-data notice).
    ablation : RunData, optional
        A separate ablation run of the same features, reported in the Ablation section
        (default: ``run`` itself when it is an ablation run).

    Returns
    -------
    Report
    """
    primary = run.primary_model
    rep = Report(title=f"Study report: {run.protocol_name}",
                 subtitle=f"Run {run.run_dir.name} · primary model {primary} · unit of analysis: "
                          f"{run.metrics.get('unit', 'subject')}",
                 banner=banner)
    env = run.environment
    rep.set_footer(run=run.run_dir.name, protocol=run.protocol_name,
                   **{"run started": str(run.run.get("started_at") or "–"),
                      "cdrscreen": str(env.get("cdrscreen") or (env.get("packages", {}) or {}).get("cdrscreen") or "–")})
    desc = str(run.metrics.get("description") or run.protocol.get("description") or "").strip()
    if desc:
        rep.add_text(desc, title="Protocol", section="Summary", level="plain")
    models = run.metrics.get("models", {})
    pm = models.get(primary, {})
    met = pm.get("metrics", {})
    perm = pm.get("permutation") or {}
    base = pm.get("baseline", {}) or {}
    rep.add_metric_cards([
        {"label": "Balanced accuracy", "value": _val(met.get("balanced_accuracy")),
         "detail": _ci_only(met.get("balanced_accuracy"))},
        {"label": "ROC AUC", "value": _val(met.get("roc_auc")),
         "detail": _ci_only(met.get("roc_auc"))
         + (f" · permutation p {_num(perm.get('auc_p_value'))}" if perm.get("auc_p_value") is not None else "")},
        {"label": "Majority baseline", "value": _num(base.get("balanced_accuracy")),
         "detail": f"balanced accuracy; accuracy {_num(base.get('accuracy'))}"},
        {"label": "Permutation p-value", "value": _num(perm.get("p_value")),
         "detail": f"{perm.get('n', 0)} label permutations" if perm else "not run"},
        {"label": "Subjects", "value": str(pm.get("n_subjects", "–")),
         "detail": ", ".join(f"{k}: {v}" for k, v in (pm.get("n_per_class") or {}).items())},
    ], title=f"Primary model: {primary}", section="Summary",
        caption="95% confidence intervals over subjects (bootstrap, widened to the spread of the permutation "
                "null when a permutation test was run); the p-value repeats the whole nested procedure with "
                "labels permuted across subjects.")
    verdicts = verdict_lines(run, primary)
    if verdicts:
        rep.add_table(pd.DataFrame({"figure": list(verdicts), "what it says": list(verdicts.values())}),
                      "What the figures say", section="Summary",
                      caption="Chance is 0.5 for ROC AUC and 1/(number of classes) for balanced accuracy; "
                                   "a result is called distinguishable from chance only when its CI excludes "
                                   "chance and its permutation p is below 0.05.")
    excl = excluded_table(run)
    scheme = (run.inputs.get("label_scheme") or {})
    if scheme:
        mapping = ", ".join(f"CDR {k} → {v}" for k, v in (scheme.get("mapping") or {}).items())
        rep.add_text(f"Label scheme '{scheme.get('name')}': {mapping}. "
                     + (f"{len(excl)} subject(s) were left out (listed under Cohort)." if len(excl)
                        else "No subject was left out."),
                     title="Classes", section="Summary", level="warning" if len(excl) else "plain")

    # ---- cohort ---------------------------------------------------------------------
    if run.features is not None:
        ct = cohort_table(run.features)
        if not ct.empty:
            rep.add_table(ct, "Cohort by CDR class", section="Cohort", caption=SMALL_CELL_NOTE)
            rep.add_figure(F.class_count_figure({f"CDR {r['CDR']}": int(r["subjects"]) for _, r in ct.iterrows()}),
                           "Subjects per CDR class", section="Cohort")
        st = sex_table(run.features)
        if st is not None:
            rep.add_table(st, "Sex by CDR class (subjects)", section="Cohort", caption=SMALL_CELL_NOTE)
    if len(excl):
        rep.add_table(excl, "Subjects left out of the evaluation", section="Cohort",
                      caption="Left out by the protocol's label scheme or for lack of data; they have no "
                              "prediction and no patient report from this run.")
        groups = run.groups or _groups_from_columns(run.features.columns)
        qt = quality_table(run.features, groups)
        if not qt.empty:
            rep.add_table(qt, "Missing values per feature group", section="Data quality")
        qc = quality_columns(run.features)
        if not qc.empty:
            rep.add_table(qc, "Recording-quality measures", section="Data quality", float_format="{:.3g}")
    excl_rows = run.inputs.get("excluded_rows")
    if excl_rows:
        rep.add_key_values({k.replace("_", " "): v for k, v in excl_rows.items()},
                           "Rows excluded from the evaluation", section="Data quality")
    from cdrscreen.reports.patient import IMPUTED_WARN

    mostly = imputed_subjects(run, primary, IMPUTED_WARN)
    if mostly:
        rep.add_text(f"{len(mostly)} subject(s) have predictions resting mostly on imputed values (more than "
                     f"{100 * IMPUTED_WARN:.0f}% of the model's inputs missing): {', '.join(mostly)}.",
                     title="Predictions resting on imputed values", section="Data quality", level="warning")

    # ---- results ---------------------------------------------------------------------
    shown = detailed_models(run)
    rt = results_table(run)
    if not rt.empty:
        rt = rt[rt["model"].isin(shown)]
    if not rt.empty:
        rep.add_table(rt, "Models of the protocol", section="Results", float_format="{:.3f}",
                      caption="Values with [95% CI]. Baseline: always predicting the majority class.")
    for name in detailed_models(run):
        m = models[name]
        figs, labels = [], []
        cm = m.get("confusion_matrix")
        if cm:
            figs.append(F.confusion_matrix_figure(np.asarray(cm["matrix"]), cm["labels"]))
            labels.append("Confusion matrix (subjects; rows: clinical class, columns: prediction)")
        if run.roc is not None and "model" in run.roc:
            sub = run.roc[run.roc["model"] == name]
            if not sub.empty:
                multi = sub["class"].nunique() > 1
                curves = [{"label": f"{c} vs rest" if multi else f"class {c}",
                           "fpr": g["fpr"], "tpr": g["tpr"], "auc": float(g["auc"].iloc[0])}
                          for c, g in sub.groupby("class", sort=False)]
                figs.append(F.roc_figure(curves))
                ranked = ((m.get("metrics") or {}).get("roc_auc") or {}).get("ranked_by", "probability")
                labels.append(f"ROC curve from out-of-fold subject scores (ranked by {ranked})")
        if figs:
            rep.add_figure_row(figs, f"Model {name}", labels=labels, section="Results")
        rec = (m.get("metrics") or {}).get("recall")
        vals = {f"recall of class {k}": _ci(v) for k, v in (rec or {}).items()}
        for c in m.get("chosen_params") or []:
            vals[f"chosen in {c.get('n_folds')} outer folds"] = json.dumps(c.get("params"), sort_keys=True)
        if vals:
            rep.add_key_values(vals, f"Per-class recall and tuned hyperparameters: {name}",
                               section="Results")

    # ---- fusion comparison --------------------------------------------------------------
    if len(shown) > 1:
        tab = pd.DataFrame([{"label": n, "value": (mm.get("metrics", {}).get("balanced_accuracy") or {}).get("value"),
                             "ci_low": (mm.get("metrics", {}).get("balanced_accuracy") or {}).get("ci_low"),
                             "ci_high": (mm.get("metrics", {}).get("balanced_accuracy") or {}).get("ci_high")}
                            for n, mm in models.items() if n in shown]).astype({"value": float, "ci_low": float, "ci_high": float})
        rep.add_figure(F.interval_figure(tab, reference=base.get("balanced_accuracy")),
                       "Models compared (balanced accuracy, 95% CI)", section="Model comparison")
    comps = run.metrics.get("comparisons") or []
    if comps:
        rows = [{"A": c.get("a"), "B": c.get("b"), "test": c.get("test"), "n": c.get("n"),
                 "only A correct": c.get("n_a_only_correct"), "only B correct": c.get("n_b_only_correct"),
                 "p-value": c.get("p_value"),
                 f"difference in {str(c.get('metric', '')).replace('_', ' ')}": _ci(c.get("difference"))}
                for c in comps]
        rep.add_table(pd.DataFrame(rows), "Paired comparisons", section="Model comparison")

    # ---- ablation --------------------------------------------------------------------
    abl = ablation if ablation is not None else run
    if abl.ablation is not None and not abl.ablation.empty:
        _ablation(rep, abl)

    # ---- provenance ------------------------------------------------------------------
    if run.protocol_text:
        rep.add_code(run.protocol_text, "Resolved protocol (protocol.yaml)", section="Provenance")
    feats = run.inputs.get("features") or {}
    if feats:
        rep.add_code(json.dumps(feats, indent=2, sort_keys=True, default=str), "Input feature table (inputs.json)",
                     section="Provenance")
    if env:
        rep.add_code(json.dumps(env, indent=2, sort_keys=True), "Versions (environment.json)",
                     section="Provenance")
    return rep


def _ablation(rep: Report, run: RunData) -> None:
    ab = run.ablation
    assert ab is not None
    metric = "balanced_accuracy" if "balanced_accuracy" in ab else "accuracy"
    order = ab.sort_values("rank") if "rank" in ab else ab
    tab = pd.DataFrame({
        "label": [f"{v}" for v in order.get("variant", order.index)],
        "value": order[metric].to_numpy(float),
        "ci_low": order.get(f"{metric}_ci_low", order[metric]).to_numpy(float),
        "ci_high": order.get(f"{metric}_ci_high", order[metric]).to_numpy(float),
    })
    models = run.metrics.get("models", {})
    base = next((m.get("baseline", {}).get(metric) for m in models.values() if m.get("baseline")), None)
    info = run.metrics.get("ablation") or {}
    rep.add_figure(F.interval_figure(tab, reference=base, xlabel=metric.replace("_", " "),
                                     highlight=["full"]),
                   "Ablation: feature-group sets with 95% CIs", section="Ablation",
                   caption=f"Protocol {run.protocol_name}, model {info.get('model', '–')}, same folds for every "
                           "variant. only:<g> uses one group; drop:<g> all groups but one; full uses all.")
    disp = pd.DataFrame({"rank": order["rank"] if "rank" in order else range(1, len(order) + 1),
                         "variant": order.get("variant", order.index).astype(str),
                         "groups used": order["groups"].astype(str).str.replace("+", " + ", regex=False)
                         if "groups" in order else ""})
    for m in ("balanced_accuracy", "accuracy", "roc_auc"):
        if m in order:
            disp[METRIC_NAMES[m] + " [95% CI]"] = [
                _ci({"value": v, "ci_low": lo, "ci_high": hi} if v == v else None)
                for v, lo, hi in zip(order[m], order.get(f"{m}_ci_low", order[m]),
                                     order.get(f"{m}_ci_high", order[m]), strict=True)]
    if "delta_vs_full" in order:
        disp["difference from full"] = order["delta_vs_full"].to_numpy(float)
    if "p_value" in order and order["p_value"].notna().any():
        disp["p (permutation)"] = [_num(v) for v in order["p_value"]]
    rep.add_table(disp, "Ablation table", section="Ablation", float_format="{:+.3f}")


def _groups_from_columns(cols: pd.Index) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in cols:
        if "__" in c and not c.startswith("meta__"):
            out.setdefault(c.split("__")[0], []).append(c)
    return out


def _val(m: dict | None) -> str:
    return "–" if not m or m.get("value") is None else f"{m['value']:.2f}"


def _ci_only(m: dict | None) -> str:
    if not m or m.get("ci_low") is None or m.get("ci_high") is None:
        return ""
    return f"95% CI {m['ci_low']:.2f}–{m['ci_high']:.2f}"


def _num(v: object) -> str:
    if v is None:
        return "–"
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return "–" if f != f else f"{f:.3g}"
