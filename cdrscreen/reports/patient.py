"""Per-patient report: one recording's quality, signals, prediction and cohort position.

Everything shown is either the patient's own data (their recording, their features,
their out-of-fold prediction) or an aggregate (the model's overall metrics, per-class
cohort distributions from :mod:`cdrscreen.reports.cohort`). See ``docs/reports.md``
for the privacy rule and how it is tested.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cdrscreen.reports import figures as F
from cdrscreen.reports.builder import Report
from cdrscreen.reports.cohort import FeatureDistribution
from cdrscreen.reports.rundata import RunData
from cdrscreen.reports.signals import (
    RecordingSignals,
    expression_timeline,
    frame_time,
    plottable_columns,
    pupil_head_motion,
    pupil_spectra,
    speech_activity,
)

MAX_KEY_FEATURES = 10

#: The predicted class's probability must exceed chance (1 / number of classes) by this
#: much before a card says the prediction agrees or differs; otherwise it says "uncertain".
AGREE_MARGIN = 0.15
#: Above this fraction of imputed model inputs a card warns that the prediction rests
#: mostly on imputed values.
IMPUTED_WARN = 0.30


def agreement(predicted: str, true: str, probability: float, n_classes: int,
              margin: float = AGREE_MARGIN) -> str:
    """Card text: "agrees"/"differs" only when the probability clears chance + ``margin``."""
    needed = 1.0 / n_classes + margin
    if not probability == probability or probability < needed:
        return (f"uncertain: the probability of class {predicted} is below {100 * needed:.0f}% "
                f"(chance {100 / n_classes:.0f}% + {100 * margin:.0f} points)")
    return "agrees with the rating" if predicted == true else "differs from the rating"

#: Per-recording quality columns shown when present (regular expression, display name).
QUALITY_FEATURES: tuple[tuple[str, str], ...] = (
    (r"^pupil__usable_fraction$", "usable-frame fraction (face tracked, eyes open)"),
    (r"__tracked_fraction$", "face-tracking success"),
    (r"__speech_seconds$", "speech analysed (s)"),
    (r"^timing__phonation_ratio$", "phonation ratio"),
    (r"__clipped_fraction$", "clipped audio fraction"),
    (r"__quality_ok$", "audio quality check passed (1 = yes)"),
    (r"__patient_only$", "speech restricted to the patient's turns (1 = yes)"),
)


def select_key_features(columns: Sequence[str], max_n: int = MAX_KEY_FEATURES,
                        hints: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Pick the features shown against the cohort: (column, display name) pairs.

    ``hints`` are the key features the extractors declared (``(column, name)``, most
    telling first per group; the feature table records them, see
    :func:`cdrscreen.reports.signals.key_feature_hints`). They are taken round-robin over
    feature groups so that every group present is represented before any group gets a
    second feature; if fewer than four are chosen, the first column of each remaining
    group fills up (``meta__`` columns never).
    """
    cols = [c for c in columns if "__" in c and not c.startswith("meta__")]
    present = set(cols)
    by_group: dict[str, list[tuple[str, str]]] = {}
    for col, name in hints:
        if col in present and all(col != c for q in by_group.values() for c, _ in q):
            by_group.setdefault(col.split("__")[0], []).append((col, name))
    chosen: list[tuple[str, str]] = []
    queues = list(by_group.values())
    while any(queues) and len(chosen) < max_n:
        for q in queues:
            if q and len(chosen) < max_n:
                chosen.append(q.pop(0))
    if len(chosen) < 4:
        seen = {c.split("__")[0] for c, _ in chosen}
        for c in cols:
            g = c.split("__")[0]
            if g not in seen and len(chosen) < max_n:
                chosen.append((c, c))
                seen.add(g)
    return chosen


def _ci(m: dict[str, Any] | None, pct: bool = False) -> str:
    if not m or m.get("value") is None:
        return "–"
    f = (lambda x: f"{100 * x:.0f}%") if pct else (lambda x: f"{x:.2f}")
    lo, hi = m.get("ci_low"), m.get("ci_high")
    if lo is None or hi is None:
        return f(m["value"])
    return f"{f(m['value'])} (95% CI {f(lo)}–{f(hi)})"


def _cdr_text(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != f:
        return "not given"
    return f"CDR {f:g}"


def model_summary(run: RunData, model: str) -> dict[str, str]:
    """Plain-language overall performance of a model (aggregates only)."""
    mm = run.metrics.get("models", {}).get(model, {})
    met = mm.get("metrics", {})
    base = mm.get("baseline", {})
    perm = mm.get("permutation") or {}
    out = {
        "subjects evaluated": str(mm.get("n_subjects", "–")),
        "accuracy": _ci(met.get("accuracy"), pct=True),
        "balanced accuracy": _ci(met.get("balanced_accuracy"), pct=True),
        "ROC AUC": _ci(met.get("roc_auc")),
        "majority-class baseline (accuracy)": (
            f"{100 * base['accuracy']:.0f}%" if base.get("accuracy") is not None else "–"),
        "permutation p-value": f"{perm['p_value']:.3g}" if perm.get("p_value") is not None else "not run",
    }
    return out


def _contributions(run: RunData | None, subject: str, predicted: str) -> pd.DataFrame | None:
    """Return each group's change in this subject's probability of the predicted class.

    The change when the group is left out; needs an ablation run with ``full`` and
    ``drop:<group>`` models.
    """
    if run is None:
        return None
    models = set(run.predictions.index.get_level_values("model"))
    drops = sorted(m for m in models if str(m).startswith("drop:"))
    full = "full" if "full" in models else None
    if not drops or full is None:
        return None
    col = f"proba__{predicted}"
    try:
        p_full = float(run.predictions.loc[(full, subject), col])
    except KeyError:
        return None
    rows = []
    for m in drops:
        try:
            p = float(run.predictions.loc[(m, subject), col])
        except KeyError:
            continue
        rows.append({"group": m.split(":", 1)[1], "contribution": p_full - p})
    if not rows:
        return None
    return pd.DataFrame(rows).sort_values("contribution", ascending=False).reset_index(drop=True)


def patient_values(features: pd.DataFrame | None, subject: str, session: str | None) -> pd.Series | None:
    """Return the recording's own feature values (mean over its files), or None."""
    if features is None:
        return None
    idx = features.index
    sel = idx.get_level_values("subject") == subject
    if session is not None and "session" in idx.names:
        sel &= idx.get_level_values("session") == session
    rows = features.loc[sel]
    if rows.empty:
        return None
    return rows.select_dtypes(include=[np.number, "bool"]).astype(float).mean(axis=0)


def build_patient_report(
    run: RunData,
    subject: str,
    session: str | None,
    cohort: dict[str, FeatureDistribution],
    key_features: Sequence[tuple[str, str]] = (),
    signals: RecordingSignals | None = None,
    banner: str | None = None,
    ablation: RunData | None = None,
    signals_problem: str | None = None,
) -> Report:
    """Build the report of one recording (subject × session).

    Parameters
    ----------
    run : RunData
        The loaded run folder.
    subject, session : str
        The recording; ``session=None`` when the feature table is not available.
    cohort : dict
        Aggregate cohort distributions (same object for every patient of the run).
    key_features : sequence of (column, name)
        Features placed against the cohort (:func:`select_key_features`).
    signals : RecordingSignals, optional
        The recording's signals (:func:`cdrscreen.reports.signals.load_recording_signals`)
        for the per-frame and speech-timing plots.
    banner : str, optional
        Highlighted line (e.g. synthetic-data notice).
    ablation : RunData, optional
        An ablation run of the same features (per-group contributions); default: ``run``
        itself when it is an ablation run.
    signals_problem : str, optional
        Why the signals could not be read (shown instead of the per-frame plots).

    Returns
    -------
    Report
    """
    model = run.primary_model
    ablation = ablation if ablation is not None else run
    preds = run.subject_predictions(model)
    classes = run.classes
    ses_txt = f", session {session}" if session is not None else ""
    rep = Report(
        title=f"Patient report: subject {subject}{ses_txt}",
        subtitle=f"Protocol {run.protocol_name} · model {model} · out-of-fold (leave-one-subject-out) prediction",
        banner=banner,
    )
    _footer(rep, run)

    # ---- prediction ------------------------------------------------------------------
    own = patient_values(run.features, subject, session)
    if subject in preds.index:
        row = preds.loc[subject]
        probs = [float(row.get(f"proba__{c}", np.nan)) for c in classes]
        predicted = str(row["y_pred"])
        true = str(row["y_true"])
        cdr = row.get("meta__cdr", own.get("meta__cdr") if own is not None else None)
        p_pred = probs[classes.index(predicted)] if predicted in classes else float("nan")
        verdict = agreement(predicted, true, p_pred, len(classes))
        imputed = float(row.get("imputed_fraction", np.nan)) if "imputed_fraction" in row.index else np.nan
        cards = [
            {"label": "Clinical rating", "value": _cdr_text(cdr), "detail": f"class {true} in this protocol"},
            {"label": "Model prediction", "value": "uncertain" if verdict.startswith("uncertain")
             else f"class {predicted}", "detail": verdict if verdict.startswith("uncertain")
             else f"class {predicted} {verdict}"},
            {"label": f"Probability of class {predicted}",
             "value": f"{100 * p_pred:.0f}%" if p_pred == p_pred else "–",
             "detail": "out-of-fold: the model never saw this person"},
        ]
        if imputed == imputed:
            cards.append({"label": "Imputed inputs", "value": f"{100 * imputed:.0f}%",
                          "detail": "of this person's model inputs were missing and filled in"})
        rep.add_metric_cards(cards, title="", section="Prediction")
        if imputed == imputed and imputed > IMPUTED_WARN:
            rep.add_text(f"This prediction rests mostly on imputed values: {100 * imputed:.0f}% of the model's "
                         "inputs for this person were missing (e.g. no usable speech or no tracked face) and "
                         "were filled in with the training subjects' medians. Do not read it as a measurement "
                         "of this person.", level="warning", section="Prediction")
        rep.add_figure(F.probability_figure(classes, probs, predicted),
                       "Class probabilities", section="Prediction",
                       caption="Model probabilities for this person, from the model trained on all other "
                               "subjects (leave-one-subject-out). A probability is not a certainty.")
        if run.row_predictions is not None and session is not None:
            _session_probs(rep, run, model, subject, session, classes)
        contrib = _contributions(ablation, subject, predicted)
    else:
        rep.add_text(f"No out-of-fold prediction for subject {subject} in this run "
                     "(excluded by the label scheme or missing a label).", level="warning",
                     section="Prediction")
        contrib = None
        predicted = None
    rep.add_key_values(model_summary(run, model), title="How reliable is the model overall?",
                       section="Prediction",
                       caption="Whole-cohort figures with 95% confidence intervals over subjects. "
                               "Wide intervals mean the true accuracy is uncertain.")
    verdict = ((run.metrics.get("models", {}).get(model) or {}).get("verdicts") or {}).get("summary")
    if verdict:
        rep.add_text(verdict, title="The model's results in words", section="Prediction",
                     level="plain" if "are distinguishable" in verdict else "warning")

    # ---- what drove it -----------------------------------------------------------------
    if contrib is not None and predicted is not None:
        rep.add_figure(
            F.bar_figure(list(contrib["group"]), list(contrib["contribution"]),
                         f"change in probability of class {predicted} when the group is used", signed=True),
            "Feature groups behind this prediction", section="What drove the prediction",
            caption="For each feature group: this person's out-of-fold probability of the predicted class "
                    "with all groups minus the probability when that group is left out (the ablation's "
                    "full and leave-one-group-out models). Positive bars pushed the model towards its "
                    "prediction. These are associations inside this model, not causes.")
    elif ablation is not None and ablation.ablation is not None:
        _global_groups(rep, ablation)
    else:
        rep.add_text("Per-group contributions need an ablation run ('cdrscreen ablate'); this run has none.",
                     section="What drove the prediction", level="plain")

    # ---- recording quality and signals -------------------------------------------------
    _signals(rep, own, signals, signals_problem)

    # ---- cohort position ---------------------------------------------------------------
    if own is not None and key_features:
        vals = {c: float(own[c]) for c, _ in key_features if c in own.index}
        # a feature is drawn when there is something to compare: a shown class or own value
        dists = [cohort[c] for c, _ in key_features if c in cohort
                 and (cohort[c].shown or np.isfinite(vals.get(c, np.nan)))]
        if not dists and cohort:
            rep.add_text("No cohort comparison can be shown: every CDR class has fewer recordings than "
                         "the privacy threshold, and this recording has no value for these features.",
                         section="Compared with the cohort", level="plain")
        if dists:
            png, w, h = _cohort_plot(dists, rep.dpi).png(vals)
            rep.add_png(
                png, w, h, "This recording against the cohort",
                section="Compared with the cohort",
                caption="Curves: smoothed distribution of each CDR class in the study cohort; triangles: "
                        "class means; red line: this recording. Each feature is drawn in cohort standard "
                        "deviations from its cohort mean; the table gives the values in their own units. "
                        "Only class summaries are shown; classes with too few people show only their count.")
            rep.add_table(_cohort_table(dists, vals), "Values", section="Compared with the cohort")
    return rep


_COHORT_PLOTS: dict[tuple, tuple[list[FeatureDistribution], F.CohortPlot]] = {}


def _cohort_plot(dists: list[FeatureDistribution], dpi: int) -> F.CohortPlot:
    """Return the cohort plot's shared background for these features (built once per process)."""
    key = (tuple(id(d) for d in dists), dpi)
    hit = _COHORT_PLOTS.get(key)
    if hit is None or any(a is not b for a, b in zip(hit[0], dists, strict=True)):
        if len(_COHORT_PLOTS) >= 4:
            _COHORT_PLOTS.pop(next(iter(_COHORT_PLOTS)))
        hit = (list(dists), F.CohortPlot(dists, dpi=dpi))  # keeps dists alive: ids stay unique
        _COHORT_PLOTS[key] = hit
    return hit[1]


def _footer(rep: Report, run: RunData) -> None:
    env = run.environment
    version = env.get("cdrscreen") or (env.get("packages", {}) or {}).get("cdrscreen") or "–"
    rep.set_footer(
        run=run.run_dir.name,
        protocol=run.protocol_name,
        **{"run started": str(run.run.get("started_at") or "–"),
           "cdrscreen": str(version)},
    )


def _session_probs(rep: Report, run: RunData, model: str, subject: str, session: str,
                   classes: list[str]) -> None:
    rp = run.row_predictions
    assert rp is not None
    try:
        rows = rp.xs((model, subject), level=("model", "subject"))
    except KeyError:
        return
    if rows.index.get_level_values("session").nunique() < 2:
        return
    mine = rows[rows.index.get_level_values("session").astype(str) == session]
    if "augmented" in mine:
        mine = mine[~mine["augmented"].astype(bool)]
    if mine.empty:
        return
    vals = {f"probability of {c} (this session)": float(mine[f"proba__{c}"].mean()) for c in classes}
    rep.add_key_values(vals, "This session", section="Prediction", float_format="{:.2f}",
                       caption="The prediction above is for the subject (all sessions); this is the session's own.")


def _global_groups(rep: Report, run: RunData) -> None:
    ab = run.ablation
    assert ab is not None
    single = ab[ab["kind"] == "single"] if "kind" in ab else ab
    if single.empty:
        return
    metric = "balanced_accuracy" if "balanced_accuracy" in single else single.columns[0]
    tab = pd.DataFrame({"label": single["groups"].astype(str), "value": single[metric]})
    if f"{metric}_ci_low" in single:
        tab["ci_low"] = single[f"{metric}_ci_low"].to_numpy()
        tab["ci_high"] = single[f"{metric}_ci_high"].to_numpy()
    rep.add_figure(F.interval_figure(tab, xlabel=metric.replace("_", " ")),
                   "Feature groups on their own (whole cohort)", section="What drove the prediction",
                   caption="How well each feature group alone separates the classes over the whole cohort "
                           "(not specific to this person).")


def _cohort_table(dists: list[FeatureDistribution], vals: dict[str, float]) -> pd.DataFrame:
    rows = []
    for d in dists:
        r = {"feature": d.name, "this recording": _num(vals.get(d.feature))}
        for c in d.classes:
            r[c.label] = (f"n={c.n}, too few to show" if c.suppressed
                          else f"{_num(c.mean)} ± {_num(c.sd)} (n={c.n})")
        rows.append(r)
    return pd.DataFrame(rows)


def _num(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:.3g}"


def _quality_values(own: pd.Series | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if own is None:
        return out
    for pattern, name in QUALITY_FEATURES:
        rx = re.compile(pattern, re.IGNORECASE)
        for c in own.index:
            if rx.search(c) and not c.startswith("meta__") and name not in out:
                out[name] = _num(float(own[c]))
    return out


def _signals(rep: Report, own: pd.Series | None, sig: RecordingSignals | None,
             problem: str | None = None) -> None:
    qual = _quality_values(own)
    sig = sig if sig is not None else RecordingSignals()
    pupil, head = sig.get("pupil", "frames"), sig.get("headpose", "frames")
    seg, vad = sig.get("timing", "segments"), sig.get("timing", "frames")
    sp = speech_activity(seg, vad) if seg is not None else None
    if sp is not None:
        speech_s = sum(e - s for s, e in sp.intervals)
        qual["speech detected (s)"] = f"{speech_s:.1f} of {sp.duration:.1f}"
        if np.isfinite(sp.level_gap_db):
            qual["speech-to-background level (SNR estimate, dB)"] = f"{sp.level_gap_db:.1f}"
    sec_q, sec_v, sec_s = "Recording quality", "Eye and head movement", "Speech"
    frames = pupil if pupil is not None else head
    if frames is not None:
        t, ok = frame_time(frames), frames["success"].to_numpy(bool)
        fps = float(frames.attrs.get("fps", np.nan))
        qual.setdefault("face-tracking success", f"{100 * ok.mean():.0f}% of frames" if ok.size else "–")
        qual["frames tracked"] = f"{int(ok.sum())} of {ok.size} ({fps:.3g} per s)"
    if qual:
        rep.add_key_values(qual, "Quality", section=sec_q)
    if frames is not None:
        rep.add_figure(F.tracking_figure(t, ok), "Face tracking over time", section=sec_q,
                       caption="Rolling fraction of frames in which the face was tracked; shaded: face lost.")
    if pupil is not None:
        spec = pupil_spectra(own)
        gaze_h = np.where(pupil["usable"].to_numpy(bool), pupil["eye_h"].to_numpy(float), np.nan)
        gaze_v = np.where(pupil["usable"].to_numpy(bool), pupil["eye_v"].to_numpy(float), np.nan)
        rep.add_figure(
            F.pupil_figure(frame_time(pupil), gaze_h, gaze_v, *(
                (spec["freqs"], spec["dh"], spec["dv"]) if spec is not None else (None, None, None))),
            "Pupil trajectory and its superposed spectrum", section=sec_v,
            caption="Left: pupil position relative to the eye corners (eye widths; gaps: face lost or "
                    "blink). Right: STFT of the frame-to-frame movement (dx, dy), magnitudes averaged "
                    "over all windows: the pupil features' own values (pupil__stft_eye_*).")
    if head is not None:
        rep.add_figure(F.headpose_figure(frame_time(head), head["yaw"].to_numpy(float),
                                         head["pitch"].to_numpy(float), head["roll"].to_numpy(float)),
                       "Head pose over time", section=sec_v,
                       caption="Yaw (turn), pitch (nod) and roll (tilt) in degrees.")
        mv = pupil_head_motion(head)
        r_h = own.get("headpose__corr_vel_h_r") if own is not None else None
        r_v = own.get("headpose__corr_vel_v_r") if own is not None else None
        eye_unit = {"corners": "pupil relative to the eye corners, eye widths",
                    "head": "iris in head coordinates, degrees",
                    "texture": "iris against the skin around each eye, degrees"}.get(
            mv["eye_in_head"], "pupil relative to the eye corners, eye widths")
        rep.add_figure(
            F.pupil_head_scatter(mv["pupil_h"], mv["head_h"], mv["pupil_v"], mv["head_v"],
                                 r_x=r_h, r_y=r_v),
            "Pupil and head movement together", section=sec_v,
            caption=f"Frame-to-frame eye-in-head movement ({eye_unit}) against head movement (yaw for "
                    "horizontal, pitch for vertical), on tracked frames without blinks; Pearson r per "
                    "axis as in the headpose__corr_vel features.")
    expr_frames = sig.get("expr", "frames")
    expr = expression_timeline(expr_frames) if expr_frames is not None else None
    if expr is not None:
        rep.add_figure(F.expression_figure(expr["time"], expr["probs"], labels=expr.get("smoothed")),
                       "Expression timeline", section="Facial expression",
                       caption="Class probabilities of the expression embedder on the embedded tracked frames "
                               "(face crops made as the embedder's metadata says, as in the expr features)"
                               + ("; the strip above shows the expression after the sliding-window majority "
                                  "vote, from which the expr episode and transition features are counted"
                                  if expr.get("smoothed") is not None else "")
                               + ". Expression models are trained on posed and in-the-wild photos (the demo's "
                               "on synthetic ones), not on older adults.")
    if frames is None:
        why = problem or ("the feature table has no per-frame signals for this recording (extract with the "
                          "pupil or headpose features and --out, which writes signals/ beside the table)")
        rep.add_text(f"Per-frame plots are not shown: {why}.", section=sec_v, level="plain")
    if sp is not None:
        rep.add_figure(F.speech_timing_figure(sp.duration, sp.intervals, pauses=sp.pauses),
                       "Speech and pauses over time", section=sec_s,
                       caption="Top: speech detected by the timing features' voice-activity detector"
                               + (" within the patient's turns" if sp.analysed is not None else "")
                               + "; bottom: length of each pause the timing features counted.")
    _other_signals(rep, sig)


#: Signals drawn by the dedicated figures above.
_DRAWN = {("pupil", "frames"), ("headpose", "frames"), ("timing", "segments"), ("timing", "frames"),
          ("expr", "frames")}


def _other_signals(rep: Report, sig: RecordingSignals) -> None:
    """Draw the per-frame signals of any other group (e.g. a newly registered one) as time series."""
    for (group, name), df in sorted(sig.tables.items()):
        if (group, name) in _DRAWN or "time" not in (df.index.names or []):
            continue
        cols = plottable_columns(df)
        if not cols:
            continue
        rep.add_figure(F.expression_figure(frame_time(df), {c: df[c].to_numpy(float) for c in cols},
                                           ylabel="value"),
                       f"{group}: {name} over time", section="Other signals",
                       caption=f"The {name} signal of the {group} features, as extraction wrote it.")
