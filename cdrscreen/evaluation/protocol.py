"""Protocol files: a YAML file that fully determines an evaluation run.

Validated with pydantic (``extra="forbid"``): an unknown key is an error that names the
key and suggests the closest valid one. Every key is documented in ``docs/protocols.md``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from cdrscreen.core.config import FrozenModel, read_yaml, validate
from cdrscreen.core.errors import ConfigError
from cdrscreen.resources import list_resources, resource_path

#: Built-in label schemes: CDR value -> class name. A CDR value a scheme does not list
#: leaves its subjects out of the evaluation; they are listed with the reason in the
#: terminal, ``inputs.json`` and the study report.
LABEL_SCHEMES: dict[str, dict[float, str]] = {
    # controls vs any impairment: what most screening studies ask
    "cdr0_vs_impaired": {0.0: "0", 0.5: "0.5+", 1.0: "0.5+", 2.0: "0.5+", 3.0: "0.5+"},
    # the clinical prototype's binary scheme (its cohort had no controls)
    "cdr05_vs_1plus": {0.5: "0.5", 1.0: "1+", 2.0: "1+", 3.0: "1+"},
    # the prototype's three classes; CDR 0 and 3 are left out
    "cdr_3class": {0.5: "0.5", 1.0: "1", 2.0: "2"},
    # four classes with controls; CDR 2 and 3 merged
    "cdr_4class": {0.0: "0", 0.5: "0.5", 1.0: "1", 2.0: "2+", 3.0: "2+"},
}

#: Older scheme names, still accepted (``docs/protocols.md``): old name -> scheme.
SCHEME_ALIASES: dict[str, str] = {"binary": "cdr05_vs_1plus", "3class": "cdr_3class"}

SchemeName = Literal["cdr0_vs_impaired", "cdr05_vs_1plus", "cdr_3class", "cdr_4class", "custom"]

#: Metrics computed for every model (subject level).
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")

#: Folder holding the evaluation protocols shipped with the package (package data).
PROTOCOL_DIR = resource_path("protocols")
#: The protocol ``cdrscreen demo`` and reports use by default.
DEFAULT_PROTOCOL = PROTOCOL_DIR / "cdr_binary_loso.yaml"


_Strict = FrozenModel


class FeaturesSpec(_Strict):
    """Which feature groups (column prefixes) a run uses."""

    groups: list[str] = Field(default_factory=lambda: ["all"], min_length=1)
    missing_groups: Literal["error", "skip"] = "error"
    quality: Literal["exclude", "include"] = "exclude"


class LabelsSpec(_Strict):
    """How the label column maps to classes."""

    column: str = "meta__cdr"
    scheme: SchemeName = "cdr05_vs_1plus"
    mapping: dict[float, str] | None = None

    @field_validator("scheme", mode="before")
    @classmethod
    def _alias(cls, v: Any) -> Any:
        if isinstance(v, str) and v in SCHEME_ALIASES:
            return SCHEME_ALIASES[v]
        if isinstance(v, str) and v not in LABEL_SCHEMES and v != "custom":
            known = [*LABEL_SCHEMES, "custom"]
            close = difflib.get_close_matches(v, known + list(SCHEME_ALIASES), n=1, cutoff=0.5)
            hint = f" (did you mean '{SCHEME_ALIASES.get(close[0], close[0])}'?)" if close else ""
            raise ValueError(f"unknown label scheme '{v}'{hint}; use one of {', '.join(known)}")
        return v

    @field_validator("mapping", mode="after")
    @classmethod
    def _mapping_values(cls, v: dict[float, str] | None) -> dict[float, str] | None:
        if v is None:
            return v
        bad = [k for k in v if k not in (0.0, 0.5, 1.0, 2.0, 3.0)]
        if bad:
            raise ValueError(f"mapping keys must be CDR values 0, 0.5, 1, 2 or 3, got {bad[0]:g}")
        if len(set(v.values())) < 2:
            raise ValueError("mapping must name at least 2 classes")
        return {float(k): str(c) for k, c in v.items()}

    @model_validator(mode="after")
    def _mapping_only_for_custom(self) -> LabelsSpec:
        if self.scheme == "custom" and not self.mapping:
            raise ValueError("scheme 'custom' needs a 'mapping' (CDR value -> class name)")
        if self.scheme != "custom" and self.mapping:
            raise ValueError(f"'mapping' is only used with scheme 'custom', not '{self.scheme}'")
        return self

    def class_map(self) -> dict[float, str]:
        """CDR value -> class name for this scheme."""
        return dict(self.mapping) if self.scheme == "custom" else dict(LABEL_SCHEMES[self.scheme])

    def classes(self) -> list[str]:
        """Class names in their canonical order (order of first appearance)."""
        return list(dict.fromkeys(self.class_map().values()))


class AugmentationSpec(_Strict):
    """How augmented rows (flagged by a boolean column) are used."""

    column: str = "meta__augmented"
    train: bool = True
    test: bool = False


class ModelSpec(_Strict):
    """One classifier configuration."""

    name: str
    fusion: Literal["early", "late", "stacking"] = "early"
    learner: Literal["svm", "logreg", "rf", "ridge"] = "svm"
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    select_k: int | None = Field(default=None, ge=1)
    weights: dict[str, float] | None = None
    meta_learner: Literal["logreg", "rf"] = "logreg"
    stacking_splits: int = Field(default=3, ge=2)
    groups: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.weights is not None and self.fusion != "late":
            raise ValueError("'weights' is only used with fusion 'late'")
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid '{key}' has no values")
        return self


class CVSpec(_Strict):
    """Outer and inner cross-validation."""

    outer: Literal["loso", "group_kfold"] = "loso"
    n_splits: int = Field(default=5, ge=2)
    repeats: int = Field(default=1, ge=1)
    inner_splits: int = Field(default=3, ge=2)
    inner_scoring: Literal["accuracy", "balanced_accuracy", "macro_f1"] = "balanced_accuracy"

    @model_validator(mode="after")
    def _repeats_need_kfold(self) -> CVSpec:
        if self.repeats > 1 and self.outer == "loso":
            raise ValueError("'repeats' > 1 needs outer 'group_kfold' (LOSO has only one split)")
        return self


class StatisticsSpec(_Strict):
    """Uncertainty and significance settings."""

    n_bootstrap: int = Field(default=1000, ge=0)
    ci: float = Field(default=0.95, gt=0.0, lt=1.0)
    n_permutations: int = Field(default=1000, ge=0)
    permutation_metric: Literal["accuracy", "balanced_accuracy", "macro_f1"] = "balanced_accuracy"
    compare: Literal["mcnemar", "paired_permutation"] = "mcnemar"
    n_compare_permutations: int = Field(default=1000, ge=0)


class AblationSpec(_Strict):
    """Which feature-group combinations ``ablate`` evaluates."""

    model: str | None = None
    singles: bool = True
    leave_one_out: bool = True
    all_subsets: bool = False
    n_permutations: int = Field(default=0, ge=0)
    rank_by: Literal["accuracy", "balanced_accuracy", "macro_f1", "roc_auc"] = "balanced_accuracy"


class Protocol(_Strict):
    """A complete, validated evaluation protocol."""

    name: str
    description: str = ""
    seed: int = 0
    subject_aggregation: Literal["mean", "median"] = "mean"
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    labels: LabelsSpec = Field(default_factory=LabelsSpec)
    augmentation: AugmentationSpec = Field(default_factory=AugmentationSpec)
    models: list[ModelSpec] = Field(min_length=1)
    cv: CVSpec = Field(default_factory=CVSpec)
    statistics: StatisticsSpec = Field(default_factory=StatisticsSpec)
    ablation: AblationSpec = Field(default_factory=AblationSpec)

    @model_validator(mode="after")
    def _names(self) -> Protocol:
        names = [m.name for m in self.models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dup)}")
        if self.ablation.model is not None and self.ablation.model not in names:
            close = difflib.get_close_matches(self.ablation.model, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"ablation.model '{self.ablation.model}' is not a model name{hint}")
        return self

    def to_yaml(self) -> str:
        """Return the resolved protocol (defaults filled in) as YAML text."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def shipped_protocols() -> list[str]:
    """Names of the evaluation protocols shipped with the package (``cdr_binary_loso``, ...)."""
    return list_resources("protocols")


def resolve_protocol_path(source: str | os.PathLike[str]) -> Path:
    """Path of a protocol file, or of a shipped protocol given by name (``cdr_binary_loso``).

    An existing file always wins; a bare name without a folder that is not a file is looked
    up among :func:`shipped_protocols`.
    """
    path = Path(source)
    if path.exists() or len(path.parts) != 1:
        return path
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if stem in shipped_protocols():
        return PROTOCOL_DIR / f"{stem}.yaml"
    return path


def load_protocol(source: str | os.PathLike[str] | dict[str, Any] | Protocol) -> Protocol:
    """Load and validate a protocol from a YAML path, a shipped protocol's name, a dict, or pass one through.

    Raises
    ------
    ConfigError
        One line naming the file and every problem (unknown keys with a suggestion).
    """
    if isinstance(source, Protocol):
        return source
    if isinstance(source, dict):
        proto = validate(Protocol, source, "protocol")
        check_model_params(proto, "protocol")
        return proto
    path = resolve_protocol_path(source)
    data = read_yaml(path, "protocol file")
    data.setdefault("name", path.stem)
    proto = validate(Protocol, data, str(path))
    check_model_params(proto, str(path))
    return proto


def check_model_params(proto: Protocol, source: str) -> None:
    """Check every model's ``params`` and every ``grid`` value against the estimator's constraints.

    Done when the protocol is loaded, so that a negative ``C`` or an unknown kernel is one
    line naming the file, the model and the value, before any work starts.

    Raises
    ------
    ConfigError
    """
    from sklearn.base import BaseEstimator, clone
    from sklearn.model_selection import ParameterGrid
    from sklearn.utils._param_validation import InvalidParameterError

    from cdrscreen.models import build_model, grid_param_name

    for m in proto.models:
        where = f"{source}: model '{m.name}'"
        try:
            select_k = m.select_k if m.select_k is not None else (
                int(m.grid["select_k"][0]) if "select_k" in m.grid else None)
            est, prefix = build_model(m.fusion, {"g": [0]}, m.learner, m.params, select_k, m.weights,
                                      m.stacking_splits, proto.seed, m.meta_learner)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: params: {err}") from None
        valid = est.get_params(deep=True)
        names = {grid_param_name(k, prefix): k for k in m.grid}
        for pname, key in names.items():
            if pname not in valid:
                close = difflib.get_close_matches(key, [k.split("__")[-1] for k in valid if "clf__" in k], n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(f"{where}: grid key '{key}' is not a parameter of learner '{m.learner}'{hint}")
        points = list(ParameterGrid({p: m.grid[k] for p, k in names.items()})) if m.grid else [{}]
        for point in points:
            if "select__k" in "".join(point):
                continue  # k is checked against the number of columns at fit time
            try:
                cand = clone(est).set_params(**point)
                parts = [cand] + [v for v in cand.get_params(deep=True).values() if isinstance(v, BaseEstimator)]
                for part in parts:
                    if hasattr(part, "_parameter_constraints"):
                        part._validate_params()
            except (InvalidParameterError, ValueError, TypeError) as err:
                shown = ", ".join(f"{names[k]}={v!r}" for k, v in point.items()) or "params"
                msg = str(err).splitlines()[0]
                raise ConfigError(f"{where}: {shown}: {msg}") from None
