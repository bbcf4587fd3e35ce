import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cdrscreen.core.errors import InputError
from fer_backbone.export import export_onnx, load_trained, parity, read_metadata
from fer_backbone.tasks import build_task
from tests.fixtures_fer import TINY_BACKBONE

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name", ["baseline", "scn", "slm_aea"])
def test_onnx_parity_and_metadata(tmp_path, name):
    torch.manual_seed(0)
    task = build_task(name, backbone={"name": TINY_BACKBONE}, num_classes=4, num_train=8)
    task.train()
    with torch.no_grad():  # give BN / anchor running statistics non-trivial values
        for _ in range(3):
            task(dict(image=torch.randn(8, 3, 40, 40), label=torch.arange(8) % 4, index=torch.arange(8)))
    task.eval()
    path = export_onnx(task, tmp_path / "e.onnx", input_size=40, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2),
                       class_names=["a", "b", "c", "neutral"], extra={"task": name})
    meta = read_metadata(path)
    assert meta["input_size"] == 40 and meta["class_names"][-1] == "neutral"
    assert meta["mean"] == [0.5, 0.4, 0.3] and meta["normalisation_in_graph"] is True
    assert meta["embedding_dim"] == task.backbone.num_features and meta["source"]["task"] == name
    # the embedder contract: not all classes are expression words -> domain "other"; default crop
    assert meta["format_version"] == 2 and meta["domain"] == "other"
    assert meta["crop"]["kind"] == "template" and meta["input_colour"] == "rgb"
    x = np.random.default_rng(0).random((5, 3, 40, 40), dtype=np.float32)
    diff = parity(task, path, x, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    assert diff["embedding"] < 1e-4 and diff["probs"] < 1e-5
    # batch-independent: one image alone gives the same output as inside a batch
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    alone = sess.run(["probs"], {"input": x[:1]})[0]
    np.testing.assert_allclose(alone, sess.run(["probs"], {"input": x})[0][:1], atol=1e-6)


def test_read_metadata_rejects_foreign_onnx(tmp_path):
    m = torch.nn.Linear(3, 2)
    p = tmp_path / "plain.onnx"
    torch.onnx.export(m, (torch.zeros(1, 3),), str(p), dynamo=False)
    with pytest.raises(InputError, match="plain.onnx: ONNX model has no 'cdrscreen_embedder'"):
        read_metadata(p)


@pytest.mark.slow
def test_cli_train_evaluate_export(tmp_path, capsys):
    from fer_backbone.cli import main

    run = tmp_path / "run"
    sets = ["--set", f"model.backbone={TINY_BACKBONE}", "--set", "data.train_limit=160",
            "--set", "train.epochs=1", "--set", "train.threads=1"]
    out = subprocess.run([sys.executable, "-m", "fer_backbone", "train", "recipes/fer_scn_digits.yaml",
                          "--out", str(run), *sets], cwd=REPO, capture_output=True, text=True, check=True)
    trained = json.loads(out.stdout.strip().splitlines()[-1])
    assert trained["best_epoch"] == 1 and 0 <= trained["test_accuracy"] <= 1
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(trained["test_accuracy"])
    assert main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["parity_max_abs_diff"]["probs"] < 1e-5
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["class_names"] == [str(i) for i in range(10)]
    assert meta["domain"] == "other" and meta["crop"] == {"kind": "image"}
    task, info = load_trained(run)
    assert info["task"] == "scn" and task.relabels.shape == (136,)  # 160 - 15 % validation
    assert main(["export", str(tmp_path / "nowhere"), "--out", "x.onnx"]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
