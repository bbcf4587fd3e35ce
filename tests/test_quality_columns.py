"""Quality/provenance columns stay out of the model inputs unless a protocol asks for them."""

import numpy as np
import pandas as pd
import pytest

from cdrscreen.evaluation.data import load_dataset
from cdrscreen.evaluation.protocol import Protocol
from cdrscreen.features.quality import is_quality_column, split_quality


@pytest.mark.parametrize("col", ["pupil__valid", "pupil__usable_fraction", "headpose__corr_pos_h_n",
                                 "headpose__corr_vel_v_p", "headpose__corr_vel_v_rho_p", "gemaps__quality_ok",
                                 "timing__analysed_s", "mfcc__patient_only", "expr__valid_fraction"])
def test_quality_columns_are_recognised(col):
    assert is_quality_column(col)


@pytest.mark.parametrize("col", ["headpose__corr_pos_h_r", "headpose__corr_vel_v_rho", "pupil__stft_eye_dh_b0",
                                 "timing__pause_count", "timing__phonation_s", "mfcc__c01_mean",
                                 "gemaps__F0semitoneFrom27.5Hz_sma3nz_amean", "expr__prob_mean_neutral"])
def test_feature_columns_are_not_quality(col):
    assert not is_quality_column(col)


def _table(n_subjects=8):
    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_tuples([(f"S{i:02d}", "1", f"S{i:02d}.mp4") for i in range(n_subjects)],
                                    names=["subject", "session", "file"])
    return pd.DataFrame({
        "pupil__eye_h_std": rng.normal(size=n_subjects),
        "pupil__valid": 1.0,
        "timing__pause_count": rng.normal(size=n_subjects),
        "timing__analysed_s": rng.uniform(60, 600, size=n_subjects),
        "timing__quality_ok": 1.0,
        "meta__cdr": [0.5, 1.0] * (n_subjects // 2),
    }, index=idx)


def test_evaluation_excludes_quality_columns_by_default_and_records_them():
    ds = load_dataset(Protocol.model_validate({"name": "q", "models": [{"name": "m", "learner": "logreg"}]}), _table())
    used = [c for cols in ds.groups.values() for c in cols]
    assert len(used) == 2 and ds.X.shape[1] == 2
    excluded = ds.inputs["features"]["quality_columns_excluded"]
    assert set(excluded) == {"pupil__valid", "timing__analysed_s", "timing__quality_ok"}


def test_protocol_can_include_quality_columns():
    ds = load_dataset(Protocol.model_validate({"name": "q", "models": [{"name": "m", "learner": "logreg"}],
                                                 "features": {"quality": "include"}}), _table())
    assert ds.X.shape[1] == 5
    assert "quality_columns_excluded" not in ds.inputs["features"]


def test_split_quality_keeps_order():
    feats, qual = split_quality(["a__x", "a__valid", "a__y", "a__n_segments"])
    assert feats == ["a__x", "a__y"] and qual == ["a__valid", "a__n_segments"]
