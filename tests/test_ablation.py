"""Feature-group ablation: variants, planted signal ranked first, table and plot; CLI verbs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cdrscreen.cli import main
from cdrscreen.evaluation import ablate
from cdrscreen.evaluation.ablation import variants
from cdrscreen.evaluation.protocol import AblationSpec
from tests.fixtures_evaluation import make_feature_table, small_protocol


def test_variants_enumeration():
    g = ["a", "b", "c", "d"]
    v = variants(g, AblationSpec())
    kinds = [k for _, k, _, _ in v]
    assert kinds.count("full") == 1 and kinds.count("single") == 4 and kinds.count("leave_one_out") == 4
    v_all = variants(g, AblationSpec(all_subsets=True))
    assert len(v_all) == 2 ** 4 - 1
    assert len({tuple(x[2]) for x in v_all}) == len(v_all)  # no duplicates
    assert [x[0] for x in variants(["a", "b"], AblationSpec())] == ["full", "only:a", "only:b"]


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_planted_signal_group_is_ranked_first(tmp_path, fusion):
    df = make_feature_table(24, signal={"headpose": 1.6}, augmented_copies=1, seed=11)
    proto = small_protocol(models=[{"name": "m", "fusion": fusion, "learner": "svm"}],
                           statistics={"n_bootstrap": 200, "n_permutations": 0})
    res = ablate(proto, df, tmp_path / "run", progress=False)
    t = res.ablation
    singles = t[t["kind"] == "single"].sort_values("rank")
    assert singles.iloc[0]["variant"] == "only:headpose"
    drops = t[t["kind"] == "leave_one_out"].sort_values("rank")
    assert drops.iloc[-1]["variant"] == "drop:headpose"  # removing the signal hurts most
    assert t.iloc[0]["groups"].count("headpose") == 1  # the best variant contains the signal group
    assert list(t["rank"]) == list(range(1, len(t) + 1))
    assert (tmp_path / "run" / "figures" / "ablation.png").stat().st_size > 1000
    on_disk = pd.read_parquet(tmp_path / "run" / "ablation.parquet")
    for col in ("variant", "kind", "groups", "n_groups", "dropped", "balanced_accuracy",
                "balanced_accuracy_ci_low", "balanced_accuracy_ci_high", "p_value", "delta_vs_full", "rank"):
        assert col in on_disk.columns
    assert (tmp_path / "run" / "ablation.csv").is_file()


def test_cli_evaluate_and_ablate(tmp_path, feature_parquet, capsys):
    proto = tmp_path / "p.yaml"
    proto.write_text("name: cli\nmodels:\n  - name: svm\n    learner: svm\n"
                     "statistics: {n_bootstrap: 100, n_permutations: 3}\n")
    assert main(["evaluate", str(proto), "--features", feature_parquet, "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "balanced acc" in out and "svm" in out and "run folder" in out
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["models"]["svm"]["permutation"]["n"] == 3
    assert main(["ablate", str(proto), "--features", feature_parquet, "--out", str(tmp_path / "a")]) == 0
    assert "only:pupil" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmodels: [{name: a, learnr: svm}]\n")
    assert main(["evaluate", str(bad), "--features", feature_parquet, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'learner'" in err
    assert main(["evaluate", str(proto), "--features", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "y")]) == 2
    assert "missing.parquet: feature table not found" in capsys.readouterr().err


@pytest.mark.slow  # starts a two-worker Dask cluster: 8 s at load 4, 29 s at load 8
def test_ablate_on_a_local_dask_cluster_equals_the_local_run():
    pytest.importorskip("distributed")
    df = make_feature_table(12, signal={"pupil": 1.2}, seed=4)
    proto = small_protocol(models=[{"name": "svm", "learner": "svm", "grid": {"C": [0.5, 2.0]}}],
                           statistics={"n_bootstrap": 50, "n_permutations": 0},
                           ablation={"singles": True, "leave_one_out": True, "n_permutations": 3})
    local = ablate(proto, df, progress=False)
    on_cluster = ablate(proto, df, progress=False, scheduler="local:2")
    assert on_cluster.metrics == local.metrics
    assert on_cluster.ablation.equals(local.ablation)
    assert on_cluster.predictions.equals(local.predictions)
    assert local.ablation["p_value"].notna().all() and local.ablation["p_value"].nunique() > 1
