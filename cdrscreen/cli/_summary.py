"""Rich summary tables printed at the end of ``evaluate`` and ``ablate``."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table


def _console() -> Console:
    con = Console()
    # in logs/pipes (no terminal) use a wide console so the table does not wrap
    return con if con.is_terminal else Console(width=160)


def _fmt(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    v, lo, hi = entry["value"], entry.get("ci_low"), entry.get("ci_high")
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else f"{v:.2f}"


def _p(p: float | None) -> str:
    return "-" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"


def print_metrics(metrics: dict[str, Any], out_dir: Any, console: Console | None = None) -> None:
    """One row per model: n per class, metrics with 95% CIs, baseline, permutation p."""
    con = console or _console()
    ci = int(round(100 * metrics["bootstrap"]["ci"]))
    table = Table(title=f"{metrics['protocol']}: subject-level, out-of-fold ({ci}% bootstrap CI)")
    for col in ("model", "n per class", "accuracy", "balanced acc.", "macro F1", "ROC-AUC", "majority baseline", "perm. p"):
        table.add_column(col)
    for name, m in metrics["models"].items():
        n = ", ".join(f"{c}: {k}" for c, k in m["n_per_class"].items())
        perm = m.get("permutation") or {}
        mm = m["metrics"]
        table.add_row(name, n, _fmt(mm["accuracy"]), _fmt(mm["balanced_accuracy"]), _fmt(mm["macro_f1"]),
                      _fmt(mm["roc_auc"]), f"{m['baseline']['accuracy']:.2f} ({m['baseline']['majority_class']})",
                      _p(perm.get("p_value")))
    con.print(table)
    for name, m in metrics["models"].items():
        ver = m.get("verdicts") or {}
        if not ver:
            continue
        con.print(f"[bold]{name}[/]: {ver.get('summary', '')}", highlight=False)
        for key, label in (("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC AUC")):
            if key in ver:
                con.print(f"  {label}: {ver[key]['text']}", highlight=False, markup=False)
        if "baseline" in ver:
            con.print(f"  {ver['baseline']['text']}", highlight=False, markup=False)
    for c in metrics.get("comparisons", []):
        d = c["difference"]
        con.print(f"{c['a']} vs {c['b']}: {c['test']} p = {_p(c['p_value'])}, "
                  f"difference in {c['metric']} = {_fmt(d)}")
    if out_dir is not None:
        con.print(f"run folder: {out_dir}")


def print_ablation(table_df: Any, metric: str, console: Console | None = None) -> None:
    """Ranked ablation variants with the ranking metric and its CI."""
    con = console or _console()
    table = Table(title=f"ablation ranked by {metric.replace('_', ' ')} (95% CI)")
    for col in ("rank", "variant", "groups", metric, "delta vs full", "perm. p"):
        table.add_column(col)
    for r in table_df.itertuples(index=False):
        d = r._asdict()
        entry = {"value": d[metric], "ci_low": d[f"{metric}_ci_low"], "ci_high": d[f"{metric}_ci_high"]}
        entry = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in entry.items()}
        delta = d["delta_vs_full"]
        table.add_row(str(d["rank"]), d["variant"], d["groups"], _fmt(entry),
                      "-" if math.isnan(delta) else f"{delta:+.2f}", _p(d["p_value"]))
    con.print(table)


def print_excluded(inputs: dict[str, Any] | None, console: Console | None = None) -> None:
    """List every subject the label scheme or the data left out, grouped by reason."""
    from cdrscreen.evaluation.data import excluded_summary

    excluded = (inputs or {}).get("excluded_subjects") or []
    if not excluded:
        return
    con = console or _console()
    for line in excluded_summary(excluded):
        con.print(f"[yellow]note:[/] {line}", highlight=False)
