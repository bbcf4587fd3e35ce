"""Shipped protocols and extraction presets are package data, found by name from anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.evaluation.protocol import DEFAULT_PROTOCOL, load_protocol, shipped_protocols
from cdrscreen.resources import list_resources, resource_path

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_files_live_inside_the_package() -> None:
    pkg = ROOT / "cdrscreen"
    assert DEFAULT_PROTOCOL.is_relative_to(pkg) and DEFAULT_PROTOCOL.is_file()
    assert resource_path("extraction", "default.yaml").is_file()
    assert set(shipped_protocols()) == {"cdr_binary_loso", "cdr_3class_loso", "cdr_binary_grouped_kfold",
                                        "ablation_all_groups", "fusion_compare", "demo_fusion_loso"}
    assert list_resources("extraction") == ["default"]
    globs = (ROOT / "pyproject.toml").read_text()
    assert '"resources/protocols/*.yaml"' in globs and '"resources/extraction/*.yaml"' in globs
    # openSMILE's streamed audio source (GeMAPS/eGeMAPS read long recordings in blocks)
    assert resource_path("opensmile", "external_wave_input_stream.conf.inc").is_file()
    assert '"resources/opensmile/*.conf.inc"' in globs


def test_protocol_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in shipped_protocols():
        assert load_protocol(name).name == name
    assert load_protocol("cdr_3class_loso.yaml").labels.scheme == "cdr_3class"
    # a file of that name in the working folder wins over the shipped one
    (tmp_path / "cdr_binary_loso.yaml").write_text(
        "name: mine\nmodels: [{name: lr, learner: logreg}]\n")
    assert load_protocol("cdr_binary_loso.yaml").name == "mine"
    with pytest.raises(CdrscreenError, match="cdr_binry_loso: protocol file not found"):
        load_protocol("cdr_binry_loso")


def test_cli_evaluate_defaults_to_the_shipped_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from cdrscreen.cli import main

    monkeypatch.chdir(tmp_path)  # no protocols/ folder here
    code = main(["evaluate", "--features", "absent.parquet", "--out", "run"])
    err = capsys.readouterr().err
    assert code == 2 and "absent.parquet" in err and "protocol" not in err  # the protocol was found
