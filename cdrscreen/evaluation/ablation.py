"""Feature-group ablation: which groups carry the signal.

Variants: the full set of groups, every group alone (``only:<g>``), every set with one
group left out (``drop:<g>``) and, optionally, every other non-empty subset
(``subset:<g1>+<g2>``). In early fusion, a variant is the ColumnTransformer with the
dropped blocks removed; in late fusion/stacking, the group classifiers removed.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from cdrscreen.evaluation.protocol import METRICS, AblationSpec


def variants(groups: list[str], spec: AblationSpec) -> list[tuple[str, str, list[str], str | None]]:
    """``(name, kind, groups, dropped)`` for every variant, full set first."""
    out: list[tuple[str, str, list[str], str | None]] = [("full", "full", list(groups), None)]
    seen = {tuple(groups)}
    if spec.singles and len(groups) > 1:
        for g in groups:
            out.append((f"only:{g}", "single", [g], None))
            seen.add((g,))
    if spec.leave_one_out and len(groups) > 2:
        for g in groups:
            rest = [x for x in groups if x != g]
            out.append((f"drop:{g}", "leave_one_out", rest, g))
            seen.add(tuple(rest))
    elif spec.leave_one_out and len(groups) == 2:
        # with two groups, leaving one out is the other one alone
        for g in groups:
            rest = [x for x in groups if x != g]
            if tuple(rest) not in seen:
                out.append((f"drop:{g}", "leave_one_out", rest, g))
                seen.add(tuple(rest))
    if spec.all_subsets:
        for r in range(1, len(groups)):
            for combo in combinations(groups, r):
                if combo not in seen:
                    out.append((f"subset:{'+'.join(combo)}", "subset", list(combo), None))
                    seen.add(combo)
    return out


def ablation_table(rows: list[dict[str, Any]], rank_by: str) -> pd.DataFrame:
    """Tidy table (one row per variant), ranked by ``rank_by`` (1 = best), sorted by rank."""
    records = []
    for r in rows:
        m = r["metrics"]
        rec: dict[str, Any] = {"variant": r["variant"], "kind": r["kind"], "groups": "+".join(r["groups"]),
                               "n_groups": len(r["groups"]), "dropped": r["dropped"] or ""}
        for name in METRICS:
            e = m[name]
            rec[name] = np.nan if e["value"] is None else e["value"]
            rec[f"{name}_ci_low"] = np.nan if e["ci_low"] is None else e["ci_low"]
            rec[f"{name}_ci_high"] = np.nan if e["ci_high"] is None else e["ci_high"]
        rec["p_value"] = np.nan if r["p_value"] is None else r["p_value"]
        records.append(rec)
    t = pd.DataFrame.from_records(records)
    full = t.loc[t["kind"] == "full", rank_by]
    t["delta_vs_full"] = t[rank_by] - (full.iloc[0] if len(full) else np.nan)
    # rank by point estimate; ties broken by fewer groups, then by name (deterministic)
    order = t.sort_values([rank_by, "n_groups", "variant"], ascending=[False, True, True], na_position="last")
    t.loc[order.index, "rank"] = np.arange(1, len(t) + 1)
    t["rank"] = t["rank"].astype(int)
    return t.sort_values("rank").reset_index(drop=True)
