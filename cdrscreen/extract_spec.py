"""Extraction specs: one YAML file (or CLI options) that sets every extractor parameter.

A spec names the feature groups and their settings::

    features: [pupil, headpose, mfcc, gemaps, timing]
    tracking:            # the face track the visual groups share
      stride: 1
      max_faces: 2
    audio:               # every speech group (mfcc, gemaps, egemaps, timing)
      patient: patient
    groups:              # per group (keys: that extractor's Params)
      pupil: {nperseg: 10, noverlap: 5}
      expr: {embedder: scn.onnx, every: 5}

It is validated like every configuration file (:mod:`cdrscreen.core.config`): an unknown
key is one error line naming the file and the key, with the closest valid one
(``unknown key 'groups.pupil.npersg' - did you mean 'nperseg'?``). The valid keys of
``groups.<name>`` are the fields of that extractor's :attr:`~cdrscreen.features.base.Extractor.Params`,
so a newly registered group is configurable without touching this module.

The shipped preset ``cdrscreen/resources/extraction/default.yaml`` is the default;
:func:`load_spec` applies ``key.path=value`` overrides (``cdrscreen extract --set``) on
top of a file or the preset.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pydantic import Field, create_model, field_validator

from cdrscreen.core.config import StrictModel, apply_overrides, read_yaml, validate
from cdrscreen.core.errors import CdrscreenError, MissingDependencyError
from cdrscreen.features.audio_input import SpeechParams
from cdrscreen.features.base import Extractor, TrackingParams
from cdrscreen.features.registry import REGISTRY, extractor_class
from cdrscreen.resources import resource_path

#: The preset used when no spec is given.
DEFAULT_SPEC = resource_path("extraction", "default.yaml")


class ExtractionSpec(StrictModel):
    """What ``cdrscreen extract`` computes, with which settings (see the module docstring)."""

    features: list[str] = Field(min_length=1, description="Feature groups, in column order.")
    tracking: TrackingParams = Field(default_factory=TrackingParams)
    audio: SpeechParams = Field(default_factory=SpeechParams)
    groups: Any = None  # replaced by a model with one optional field per registered group

    @field_validator("features")
    @classmethod
    def _known_groups(cls, v: list[str]) -> list[str]:
        import difflib

        names = list(dict.fromkeys(s.strip() for s in v if s and s.strip()))
        for n in names:
            if n not in REGISTRY:
                hint = difflib.get_close_matches(n, REGISTRY, n=1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise ValueError(f"unknown feature group '{n}'{extra}; available: {', '.join(REGISTRY)}")
        if not names:
            raise ValueError(f"no feature groups given; available: {', '.join(REGISTRY)}")
        return names

    def group_params(self, name: str) -> dict[str, Any]:
        """Return the settings given for group ``name`` (only the keys that were set)."""
        g = getattr(self.groups, name, None) if self.groups is not None else None
        return g.model_dump(exclude_unset=True) if g is not None else {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded in the feature table)."""
        from cdrscreen.features.base import jsonable

        groups = self.groups.model_dump(exclude_unset=True) if self.groups is not None else {}
        return jsonable({"features": self.features, "tracking": self.tracking.model_dump(),
                         "audio": self.audio.model_dump(), "groups": groups})


def spec_model() -> type[ExtractionSpec]:
    """:class:`ExtractionSpec` whose ``groups`` has one field per registered group (its Params)."""
    fields: dict[str, Any] = {}
    for name in REGISTRY:
        try:
            params = extractor_class(name).Params
        except MissingDependencyError:
            continue
        fields[name] = (params | None, None)
    groups = create_model("Groups", __base__=StrictModel, **fields)  # type: ignore[call-overload]
    return create_model("ExtractionSpec", __base__=ExtractionSpec,
                        groups=(groups, Field(default_factory=groups)))  # type: ignore[call-overload]


def load_spec(
    source: str | os.PathLike[str] | dict[str, Any] | ExtractionSpec | None = None,
    overrides: Sequence[str] | None = None,
    *,
    features: str | Sequence[str] | None = None,
    stride: int | None = None,
    max_faces: int | None = None,
) -> ExtractionSpec:
    """Read and validate a spec: a YAML path, a dict, a spec, or None (the shipped preset).

    ``overrides`` are ``key.path=value`` strings (YAML values); ``features`` (a list or a
    comma-separated string), ``stride`` and ``max_faces`` replace the spec's values, as the
    CLI options of the same names do.

    Raises
    ------
    ConfigError
        One line naming the file and every problem, with close-match suggestions.
    """
    if isinstance(source, ExtractionSpec) and not (overrides or features or stride or max_faces):
        return source
    if isinstance(source, ExtractionSpec):
        data, where = source.model_dump(exclude_unset=True), "extraction spec"
        if source.groups is not None:
            data["groups"] = {k: v for k, v in source.groups.model_dump(exclude_unset=True).items()}
    elif isinstance(source, dict):
        data, where = dict(source), "extraction spec"
    else:
        path = DEFAULT_SPEC if source is None else source
        data = read_yaml(path, "extraction spec")
        where = "extraction preset 'default'" if source is None else str(path)
    if overrides:
        apply_overrides(data, list(overrides))
        where += " (with --set overrides)"
    if features is not None:
        data["features"] = features.split(",") if isinstance(features, str) else list(features)
    if stride is not None:
        data.setdefault("tracking", {})["stride"] = stride
    if max_faces is not None:
        data.setdefault("tracking", {})["max_faces"] = max_faces
    return validate(spec_model(), data, where)


def make_extractors(
    spec: ExtractionSpec | Sequence[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    stride: int | None = None,
    max_faces: int | None = None,
) -> list[Extractor]:
    """Instantiate the spec's extractors (a list of group names uses the preset's settings).

    A group whose :attr:`~cdrscreen.features.base.Extractor.shared` section is
    ``"tracking"`` gets ``spec.tracking`` (and ``cache_dir``, where its face tracks are
    cached), ``"audio"`` gets the ``spec.audio`` keys that were set; then the group's own
    ``groups.<name>`` keys.
    """
    if not isinstance(spec, ExtractionSpec):
        spec = load_spec(None, features=list(spec), stride=stride, max_faces=max_faces)
    out = []
    for name in spec.features:
        cls = extractor_class(name)
        kw: dict[str, Any] = {}
        if cls.shared == "tracking":
            kw |= spec.tracking.model_dump()
            if cache_dir is not None:
                kw["cache_dir"] = str(cache_dir)
        elif cls.shared == "audio":
            kw |= spec.audio.model_dump(exclude_unset=True)
        elif cls.shared is not None:
            raise CdrscreenError(f"feature group '{name}': unknown shared spec section {cls.shared!r}")
        kw |= spec.group_params(name)
        out.append(cls(**kw))
    return out


__all__ = ["DEFAULT_SPEC", "ExtractionSpec", "load_spec", "make_extractors", "spec_model"]
