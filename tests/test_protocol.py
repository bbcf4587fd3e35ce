"""Protocol schema: strict validation, typo suggestions, every key documented and used."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from cdrscreen.core.errors import ConfigError
from cdrscreen.evaluation.protocol import DEFAULT_PROTOCOL, PROTOCOL_DIR, Protocol, load_protocol

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "protocols.md"


def _key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        ann = field.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if typing.get_origin(ann) is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            out += _key_paths(args[0], f"{path}[].")
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _key_paths(ann, f"{path}.")
    return out


KEYS = _key_paths(Protocol)


EVALUATION_PROTOCOLS = ("cdr_binary_loso.yaml", "cdr_3class_loso.yaml", "ablation_all_groups.yaml",
                        "fusion_compare.yaml", "cdr_binary_grouped_kfold.yaml")


def test_shipped_protocols_load_and_the_default_exists():
    for f in (PROTOCOL_DIR / n for n in EVALUATION_PROTOCOLS):
        p = load_protocol(f)
        assert p.name == f.stem
        assert load_protocol(p.model_dump()) == p  # resolved form round-trips
    assert DEFAULT_PROTOCOL.is_file()
    assert load_protocol(DEFAULT_PROTOCOL).labels.scheme == "cdr05_vs_1plus"  # written "binary" (alias)


@pytest.mark.parametrize("key", KEYS)
def test_every_key_is_documented(key):
    assert f"`{key}`" in DOC.read_text(encoding="utf-8"), f"{key} is not documented in docs/protocols.md"


def test_every_documented_key_exists():
    documented = {k for k in re.findall(r"^\| `([a-z_.\[\]]+)` \|", DOC.read_text(encoding="utf-8"), flags=re.M)
                  if not k.endswith(".yaml")}
    assert documented, "no key table found"
    assert documented <= set(KEYS), documented - set(KEYS)
    assert set(KEYS) <= documented, set(KEYS) - documented


@pytest.mark.parametrize("key", KEYS)
def test_every_key_is_read_by_the_code(key):
    field = key.rsplit(".", 1)[-1].replace("[]", "")
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "cdrscreen" / "evaluation").glob("*.py"))
    assert re.search(rf"\.{field}\b", code), f"protocol key {key} is never read by cdrscreen/evaluation"


def _write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_typo_names_the_key_and_suggests_the_close_match(tmp_path):
    p = _write(tmp_path, "name: x\nmodels:\n  - name: a\n    learnr: svm\nstatistcs: {n_bootstrap: 10}\n")
    with pytest.raises(ConfigError) as err:
        load_protocol(p)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(p))
    assert "unknown key 'models[0].learnr' - did you mean 'learner'?" in msg
    assert "unknown key 'statistcs' - did you mean 'statistics'?" in msg


def test_nested_typo_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'cv.inner_split' - did you mean 'inner_splits'"):
        load_protocol(_write(tmp_path, "name: x\nmodels: [{name: a}]\ncv: {inner_split: 3}\n"))
    with pytest.raises(ConfigError, match=r"models\[0\].fusion: Input should be 'early', 'late' or 'stacking'"):
        load_protocol(_write(tmp_path, "name: x\nmodels: [{name: a, fusion: middle}]\n"))
    with pytest.raises(ConfigError, match="repeats.*group_kfold"):
        load_protocol(_write(tmp_path, "name: x\nmodels: [{name: a}]\ncv: {repeats: 3}\n"))
    with pytest.raises(ConfigError, match="ablation.model 'svn' is not a model name \\(did you mean 'svm'"):
        load_protocol({"name": "x", "models": [{"name": "svm"}], "ablation": {"model": "svn"}})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_protocol(_write(tmp_path, "name: [x\n"))
    with pytest.raises(ConfigError, match="protocol file not found"):
        load_protocol(tmp_path / "none.yaml")


def test_custom_label_mapping(tmp_path):
    p = load_protocol({"name": "x", "models": [{"name": "a"}],
                       "labels": {"scheme": "custom", "mapping": {0.0: "normal", 0.5: "impaired", 1.0: "impaired"}}})
    assert p.labels.classes() == ["normal", "impaired"]
    with pytest.raises(ConfigError, match="needs a 'mapping'"):
        load_protocol({"name": "x", "models": [{"name": "a"}], "labels": {"scheme": "custom"}})
