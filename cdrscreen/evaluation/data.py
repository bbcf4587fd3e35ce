"""Load a feature table and turn it into arrays for evaluation.

A feature table is indexed by ``(subject, session, file)``; feature columns are prefixed
by their group (``pupil__``, ``mfcc__``, ...); ``meta__`` columns (label, covariates,
augmentation flag) are never features.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cdrscreen.core.errors import ConfigError, InputError
from cdrscreen.core.io import file_sha256
from cdrscreen.evaluation.protocol import Protocol
from cdrscreen.features.quality import split_quality

INDEX = ("subject", "session", "file")
META_PREFIX = "meta__"
COVARIATES = ("meta__cdr", "meta__age", "meta__sex", "meta__mmse")


@dataclass
class Dataset:
    """Arrays of one evaluation: rows, labels, subjects, feature groups."""

    X: np.ndarray  #: (n_rows, n_features) float64, NaN = missing
    y: np.ndarray  #: (n_rows,) int class codes into ``classes``
    subjects: np.ndarray  #: (n_rows,) int subject codes into ``subject_ids``
    augmented: np.ndarray  #: (n_rows,) bool
    classes: list[str]
    subject_ids: np.ndarray  #: subject id (str) per subject code
    columns: list[str]
    groups: dict[str, list[int]]  #: group -> column positions in ``X``
    default_groups: list[str]  #: groups of ``features.groups`` (models without their own)
    index: pd.MultiIndex  #: (subject, session, file) per row
    covariates: pd.DataFrame  #: per subject (index = subject id), meta__ columns
    inputs: dict = field(default_factory=dict)  #: provenance for inputs.json
    #: what the feature table records about its extraction (``attrs``: ``extractors``,
    #: ``extract``); copied into the run folder as extraction.json
    extraction: dict = field(default_factory=dict)

    @property
    def subject_y(self) -> np.ndarray:
        """Class code per subject code."""
        out = np.empty(len(self.subject_ids), dtype=int)
        out[self.subjects] = self.y
        return out

    def select_groups(self, names: list[str]) -> dict[str, list[int]]:
        """Column positions for the named groups (in the given order)."""
        return {g: self.groups[g] for g in names}


def _hash_frame(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    h.update("\x1f".join(map(str, df.columns)).encode())
    return h.hexdigest()


def read_features(features: str | os.PathLike[str] | pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Read a feature table (Parquet path or DataFrame); return it and its provenance."""
    if isinstance(features, pd.DataFrame):
        df, where = features, "<DataFrame>"
        prov = {"path": None, "sha256": _hash_frame(df)}
    else:
        path = Path(features)
        where = str(path)
        if not path.is_file():
            raise InputError(path, "feature table not found")
        try:
            df = pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - any reader failure is a bad input file
            raise InputError(path, f"not a readable Parquet feature table ({type(err).__name__}: {err})".splitlines()[0]) from None
        prov = {"path": str(path.resolve()), "sha256": file_sha256(path)}
    if "subject" not in (df.index.names or []):
        if "subject" in df.columns:
            df = df.set_index([c for c in INDEX if c in df.columns])
        else:
            raise InputError(where, "feature table has no 'subject' index level or column")
    df = df.reset_index()
    for col in INDEX:
        if col not in df.columns:
            df[col] = ""
    df = df.set_index(list(INDEX))
    prov.update(n_rows=int(len(df)), n_columns=int(df.shape[1]))
    return df, prov


def table_groups(df: pd.DataFrame) -> dict[str, list[str]]:
    """Feature groups (column prefixes before ``__``) -> columns; ``meta__`` excluded."""
    groups: dict[str, list[str]] = {}
    for col in map(str, df.columns):
        if col.startswith(META_PREFIX) or "__" not in col:
            continue
        groups.setdefault(col.split("__", 1)[0], []).append(col)
    return groups


def resolve_groups(requested: list[str], available: dict[str, list[str]], where: str, missing: str) -> list[str]:
    """Expand ``all`` and check requested groups exist in the table."""
    if requested == ["all"] or "all" in requested:
        names = sorted(available)
    else:
        names = list(dict.fromkeys(requested))
    absent = [g for g in names if g not in available]
    if absent and missing == "error":
        raise InputError(where, f"feature group(s) {', '.join(absent)} not in the table "
                                f"(available: {', '.join(sorted(available)) or 'none'})")
    names = [g for g in names if g in available]
    if not names:
        raise InputError(where, "none of the requested feature groups is in the table "
                                f"(available: {', '.join(sorted(available)) or 'none'})")
    return names


def load_dataset(protocol: Protocol, features: str | os.PathLike[str] | pd.DataFrame) -> Dataset:
    """Build the evaluation arrays for ``protocol`` from a feature table.

    Rows whose label is missing or not in the label scheme, and rows with no value in any
    used feature column (all NaN), are dropped and counted in ``inputs["excluded_rows"]``;
    subjects left with no row are listed in ``inputs["subjects_without_features"]``. A
    subject must have one label over all its rows.
    """
    df, prov = read_features(features)
    extraction = {k: df.attrs[k] for k in ("extractors", "extract") if k in df.attrs}
    where = prov["path"] or "<DataFrame>"
    available = table_groups(df)
    if protocol.features.quality == "exclude":
        quality_cols: list[str] = []
        for g, cols in list(available.items()):
            kept, dropped = split_quality(cols)
            quality_cols += dropped
            if kept:
                available[g] = kept
            else:
                del available[g]
        prov["quality_columns_excluded"] = quality_cols
    wanted = list(protocol.features.groups)
    for m in protocol.models:
        if m.groups:
            wanted += [g for g in m.groups if g not in wanted]
    if "all" in wanted:
        wanted = ["all"] + [g for g in wanted if g != "all"]
    group_names = resolve_groups(wanted, available, where, protocol.features.missing_groups)
    default_groups = resolve_groups(list(protocol.features.groups), available, where,
                                    protocol.features.missing_groups)

    label_col = protocol.labels.column
    if label_col not in df.columns:
        raise InputError(where, f"label column '{label_col}' not in the feature table")
    raw = pd.to_numeric(df[label_col], errors="coerce")
    class_map = protocol.labels.class_map()
    scheme_classes = protocol.labels.classes()
    mapped = raw.map(lambda v: class_map.get(float(v)) if pd.notna(v) else None)
    keep = mapped.notna().to_numpy()
    excluded = {"missing_label": int(raw.isna().sum()), "unmapped_label": int((raw.notna() & mapped.isna()).sum())}
    excluded_subjects = _excluded_by_label(df, raw, keep, protocol)
    df, mapped = df.loc[keep], mapped[keep]

    columns = [c for g in group_names for c in available[g]]
    feat = df[columns]
    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(feat[c]) and not pd.api.types.is_bool_dtype(feat[c])]
    if bad:
        raise InputError(where, f"feature column(s) {', '.join(bad[:5])} are not numeric")
    X = feat.to_numpy(dtype=np.float64, na_value=np.nan)
    X[~np.isfinite(X)] = np.nan
    # a row without a single feature value (e.g. no face and no speech found) would be
    # "predicted" from the training medians: not a measurement, so it is left out
    empty = np.isnan(X).all(axis=1)
    excluded["no_features"] = int(empty.sum())
    subjects_without_features: list[str] = []
    if empty.any():
        s_all = df.index.get_level_values("subject").astype(str)
        subjects_without_features = sorted(set(s_all[empty]) - set(s_all[~empty]))
        cdr_of = pd.Series(raw.loc[df.index].to_numpy(), index=s_all)
        for s in subjects_without_features:
            excluded_subjects.append({"subject": s, "cdr": _num(cdr_of.get(s)),
                                      "reason": "no feature value in any used column"})
        df, mapped, X = df.loc[~empty], mapped[~empty], X[~empty]

    subj = df.index.get_level_values("subject").astype(str)
    labels_per_subject = pd.Series(mapped.to_numpy(), index=subj).groupby(level=0).nunique()
    conflicting = labels_per_subject[labels_per_subject > 1].index.tolist()
    if conflicting:
        raise InputError(where, f"subject(s) {', '.join(conflicting[:5])} have rows with different labels; "
                                "a subject needs one label")
    subject_ids, subject_codes = np.unique(np.asarray(subj), return_inverse=True)
    # classes of the scheme that no subject has are dropped (order kept)
    classes = [c for c in scheme_classes if c in set(mapped)]
    if len(classes) < 2:
        raise InputError(where, f"need subjects of at least 2 classes, found {classes}")
    y = np.array([classes.index(c) for c in mapped], dtype=int)
    subj_class = pd.Series(y, index=np.asarray(subj)).groupby(level=0).first()
    per_class = subj_class.value_counts()
    lonely = [classes[i] for i in range(len(classes)) if per_class.get(i, 0) < 2]
    if lonely:
        raise InputError(where, f"class(es) {', '.join(lonely)} have fewer than 2 subjects; a held-out subject's "
                                "class must exist in the training subjects (merge classes with labels.scheme, "
                                "or add subjects)")
    if len(subject_ids) < 3:
        raise InputError(where, f"need at least 3 subjects with labels, found {len(subject_ids)}")

    aug_col = protocol.augmentation.column
    if aug_col in df.columns:
        augmented = df[aug_col].fillna(False).astype(bool).to_numpy()
    else:
        augmented = np.zeros(len(df), dtype=bool)
    per_subject_original = pd.Series(~augmented).groupby(subject_codes).any()
    if not protocol.augmentation.test and not per_subject_original.all():
        only_aug = subject_ids[~per_subject_original.to_numpy()]
        raise InputError(where, f"subject(s) {', '.join(only_aug[:5])} have only augmented rows, "
                                "but augmentation.test is false")

    cov_cols = [c for c in df.columns if str(c).startswith(META_PREFIX)]
    cov = df[cov_cols].copy()
    cov.index = subj
    cov = cov[~cov.index.duplicated(keep="first")].reindex(subject_ids)
    cov.index.name = "subject"

    media = media_paths(df)
    pos = {c: i for i, c in enumerate(columns)}
    groups = {g: [pos[c] for c in available[g]] for g in group_names}
    prov.update(n_subjects=int(len(subject_ids)), n_rows_used=int(len(df)))
    inputs = {
        "features": prov,
        "groups": {g: available[g] for g in group_names},
        "label_column": label_col,
        "excluded_rows": excluded,
        "subjects_without_features": subjects_without_features,
        "label_scheme": {"name": protocol.labels.scheme,
                         "mapping": {f"{k:g}": v for k, v in class_map.items()}},
        "excluded_subjects": excluded_subjects,
        "media": media,
    }
    return Dataset(
        X=X, y=y, subjects=subject_codes.astype(int), augmented=augmented, classes=classes,
        subject_ids=subject_ids.astype(str), columns=columns, groups=groups,
        default_groups=default_groups, index=df.index,
        covariates=cov, inputs=inputs, extraction=extraction,
    )


def media_paths(df: pd.DataFrame) -> list[dict[str, str | None]]:
    """Media files per recording: the table's ``file`` entry and its ``meta__*_path`` columns."""
    out = []
    seen = set()
    for key, row in zip(df.index, df.reset_index(drop=True).to_dict("records"), strict=True):
        subject, session, file = (str(k) for k in key)
        if (subject, session, file) in seen:
            continue
        seen.add((subject, session, file))
        entry: dict[str, str | None] = {"subject": subject, "session": session, "file": file}
        for m in ("video", "audio", "segments"):
            v = row.get(f"meta__{m}_path")
            entry[m] = None if v is None or (isinstance(v, float) and v != v) or v is pd.NA else str(v)
        out.append(entry)
    return out


def _num(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _excluded_by_label(df: pd.DataFrame, raw: pd.Series, keep: np.ndarray, protocol: Protocol) -> list[dict]:
    """Subjects with no row left after label mapping, each with the reason (one entry per subject)."""
    subj = df.index.get_level_values("subject").astype(str)
    kept = set(subj[keep])
    scheme = protocol.labels.scheme
    out = []
    for s, value in pd.Series(raw.to_numpy(), index=subj).groupby(level=0).first().items():
        if s in kept:
            continue
        v = _num(value)
        reason = ("no CDR label" if v is None
                  else f"CDR {v:g} is not in label scheme '{scheme}'")
        out.append({"subject": str(s), "cdr": v, "reason": reason})
    return out


def excluded_summary(excluded: list[dict]) -> list[str]:
    """One line per reason: the reason and the subjects it left out."""
    by_reason: dict[str, list[str]] = {}
    for e in excluded:
        by_reason.setdefault(e["reason"], []).append(e["subject"])
    return [f"{len(s)} subject(s) left out, {r}: {', '.join(s)}" for r, s in by_reason.items()]


def check_model_groups(protocol: Protocol, data: Dataset) -> None:
    """Raise ConfigError if a model names a group the run does not have."""
    for m in protocol.models:
        for g in m.groups or []:
            if g not in data.groups:
                raise ConfigError(f"model '{m.name}': feature group '{g}' is not available "
                                  f"(have: {', '.join(data.groups)})")
