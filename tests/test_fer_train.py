import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cdrscreen.core.errors import ConfigError, InputError
from fer_backbone.augment import BatchAugment, prepare_batch
from fer_backbone.config import TrainConfig, load_recipe
from fer_backbone.data import FERDataset, load_digits_samples
from fer_backbone.models import Backbone
from fer_backbone.tasks import build_task
from fer_backbone.train import fit
from tests.fixtures_fer import TINY_BACKBONE


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

REPO = Path(__file__).resolve().parent.parent


def _digits(n, size=32, seed=0):
    s = load_digits_samples()
    idx = np.random.default_rng(seed).permutation(len(s))[:n]
    return s.subset(np.sort(idx))


@pytest.mark.parametrize("name,params", [("baseline", {}), ("scn", {"relabel_epoch": 1}), ("slm_aea", {})])
def test_each_task_loss_decreases(name, params):
    torch.manual_seed(0)
    s = _digits(32)
    ds = FERDataset(s, 32)
    raw = {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ("image", "label", "index")}
    task = build_task(name, backbone={"name": TINY_BACKBONE}, num_classes=10, num_train=len(s), **params)
    task.on_epoch_start(0, 2)
    opt = torch.optim.Adam(task.optimizer_parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        batch = prepare_batch(raw, torch.device("cpu"), (0.5,) * 3, (0.25,) * 3)
        out = task(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        task.after_optimizer_step(batch, out)
        losses.append(out["loss"].item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_slm_label_logits_excluded_from_optimizer():
    task = build_task("slm_aea", backbone={"name": TINY_BACKBONE}, num_classes=3, num_train=5,
                      train_labels=[0, 1, 2, 0, 1])
    ids = {id(p) for p in task.optimizer_parameters()}
    assert id(task.anchor.weight) in ids
    assert "label_logits" in task.state_dict() and not task.label_logits.requires_grad


def test_batch_augment_is_seeded_and_erases():
    x = torch.rand(8, 3, 16, 16)
    aug = BatchAugment(flip=True, noise_std=0.05, erase_p=1.0)
    a, ma = aug(x, torch.Generator().manual_seed(0))
    b, mb = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(ma, mb)
    frac = ma.float().mean(dim=(1, 2, 3))
    assert ((frac >= 0.01) & (frac <= 0.3)).all()  # one 2-25 % rectangle per image


def test_fit_writes_metrics_selects_on_val_and_tests_once(tmp_path):
    s = _digits(240)
    tr, va, te = s.subset(range(160)), s.subset(range(160, 200)), s.subset(range(200, 240))
    task = build_task("scn", backbone={"name": TINY_BACKBONE}, num_classes=10, num_train=len(tr),
                      relabel_epoch=2)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=3e-3, scheduler="exponential", threads=1)
    res = fit(task, FERDataset(tr, 32, train=True), cfg, tmp_path, val_data=FERDataset(va, 32),
              test_data=FERDataset(te, 32), class_names=[str(i) for i in range(10)])
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert list(df["epoch"]) == [1, 2, 3]
    assert {"train_loss", "train_wce", "train_rr", "val_accuracy", "relabeled", "lr"} <= set(df.columns)
    assert not any(c.startswith("test_") for c in df.columns)  # test set not looked at per epoch
    assert df["lr"].iloc[1] == pytest.approx(3e-3 * 0.9)
    assert res.best_epoch == int(df["val_accuracy"].idxmax()) + 1
    assert res.test_metrics["n"] == 40 and len(res.test_metrics["confusion"]) == 10
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=False)
    assert best["epoch"] == res.best_epoch and best["class_names"][3] == "3"


def test_fit_is_deterministic_on_cpu(tmp_path):
    s = _digits(96)
    def run(d):
        torch.manual_seed(0)
        task = build_task("baseline", backbone={"name": TINY_BACKBONE}, num_classes=10, num_train=64)
        cfg = TrainConfig(epochs=1, batch_size=32, noise_std=0.02, erase_p=0.5, selection="last", threads=1)
        fit(task, FERDataset(s.subset(range(64)), 32, resize=36, train=True), cfg, d, resume=False)
        return task.state_dict()
    a, b = run(tmp_path / "a"), run(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted(tmp_path):
    args = ["train", "recipes/fer_slm_aea_digits.yaml", "--set", f"model.backbone={TINY_BACKBONE}",
            "--set", "data.train_limit=200", "--set", "train.epochs=3", "--set", "train.threads=1"]
    env = {**os.environ, "CDRSCREEN_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    cmd = lambda out: [sys.executable, "-m", "fer_backbone", *args, "--out", str(out)]  # noqa: E731
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd(killed), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(pd.read_csv(killed / "metrics.csv"))
    assert 1 <= done_before < 3
    subprocess.run(cmd(killed), cwd=REPO, env=env, check=True, capture_output=True)
    full = tmp_path / "full"  # uninterrupted, in this process
    from fer_backbone.build import run_recipe

    overrides = [a for a in args[2:] if a != "--set"]
    run_recipe(load_recipe(REPO / args[1], overrides), full)
    a = pd.read_csv(killed / "metrics.csv")
    b = pd.read_csv(full / "metrics.csv")
    assert list(a["epoch"]) == [1, 2, 3]
    pd.testing.assert_frame_equal(a.drop(columns="train_seconds"), b.drop(columns="train_seconds"))
    wa = torch.load(killed / "checkpoints" / "last.pt", weights_only=False)["task"]
    wb = torch.load(full / "checkpoints" / "last.pt", weights_only=False)["task"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # label logits included


def test_checkpoint_report_and_missing_path(tmp_path):
    src = Backbone(TINY_BACKBONE)
    sd = {f"module.{k}": v for k, v in src.net.state_dict().items()}
    sd["module.fc.weight"] = torch.zeros(1000, 96)  # an old classifier
    first = next(iter(src.net.state_dict()))
    sd.pop(f"module.{first}")
    path = tmp_path / "w.pth"
    torch.save({"state_dict": sd}, path)
    dst = Backbone(TINY_BACKBONE, checkpoint=path)
    rep = dst.load_report
    assert first in rep.missing and "fc.weight" in rep.unexpected
    assert len(rep.matched) == len(src.net.state_dict()) - 1
    k = rep.matched[0]
    assert torch.equal(dst.net.state_dict()[k], src.net.state_dict()[k])
    assert "matched" in rep.summary() and str(path) in rep.summary()
    with pytest.raises(InputError, match="nope.pth: backbone checkpoint not found"):
        Backbone(TINY_BACKBONE, checkpoint=tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(InputError, match="junk.pth: cannot read checkpoint"):
        Backbone(TINY_BACKBONE, checkpoint=tmp_path / "junk.pth")


def test_recipe_files_validate_and_name_their_runner(tmp_path):
    kinds = {}
    for p in sorted((REPO / "recipes").glob("fer_*.yaml")):
        rec = load_recipe(p)
        kinds[p.stem] = rec.kind
        if rec.kind == "supervised":
            assert rec.task.name in ("baseline", "scn", "slm_aea")
    assert kinds["fer_semi_digits"] == "semi" and kinds["fer_temporal_affwild2"] == "temporal"
    assert kinds["fer_scn_rafdb"] == "supervised" and len(kinds) >= 9
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {format: digits, imge_size: 32}\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown key 'data.imge_size' - did you mean 'image_size'"):
        load_recipe(bad)
    bad.write_text("name: x\ndata: {format: digits}\ntrain: {epochs: 2, batch_sise: 8}\n")
    with pytest.raises(ConfigError, match="'train.batch_sise' - did you mean 'batch_size'"):
        load_recipe(bad)
    bad.write_text("name: x\ntemporal: {student: r, annotations: {train: a, val: b, frames_root: c}}\n"
                   "data: {format: digits}\n")
    with pytest.raises(ConfigError, match="temporal recipe takes only.*remove data"):
        load_recipe(bad)
    bad.write_text("name: x\ntask: {name: scn}\n")
    with pytest.raises(ConfigError, match="missing key 'data'"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="unknown FER task 'scnn'"):
        build_task("scnn", backbone={"name": TINY_BACKBONE}, num_classes=3, num_train=1)


def test_resume_with_loader_workers_is_bit_exact(tmp_path):
    """Interrupted after epoch 2 and resumed, with 2 persistent workers, equals the uninterrupted run."""
    s = _digits(96)
    data = FERDataset(s.subset(range(64)), 16, resize=20, train=True)  # random crops in the workers

    def run(d, workers, stop_at=None):
        torch.manual_seed(0)
        task = build_task("slm_aea", backbone={"name": TINY_BACKBONE}, num_classes=10, num_train=64,
                          train_labels=s.labels[:64].tolist())
        if stop_at is not None:
            start = task.on_epoch_start

            def interrupt(epoch, n):
                if epoch == stop_at:
                    raise KeyboardInterrupt
                start(epoch, n)
            task.on_epoch_start = interrupt
        cfg = TrainConfig(epochs=3, batch_size=16, lr=3e-3, noise_std=0.02, erase_p=0.5, selection="last",
                          threads=1, num_workers=workers, deterministic=True, log_every=2)
        fit(task, data, cfg, d)
        return task.state_dict()

    full = run(tmp_path / "full", 2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", 2, stop_at=2)
    assert len(pd.read_csv(tmp_path / "cut" / "metrics.csv")) == 2
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["loader_rng"] is not None and ckpt["sampler"] == {"seed": 0, "epoch": 1}
    resumed = run(tmp_path / "cut", 2)
    assert all(torch.equal(full[k], resumed[k]) for k in full)  # label logits included
    in_process = run(tmp_path / "w0", 0)  # item seeds make the worker count irrelevant
    assert all(torch.equal(full[k], in_process[k]) for k in full)
    a = pd.read_csv(tmp_path / "full" / "metrics.csv").drop(columns="train_seconds")
    b = pd.read_csv(tmp_path / "cut" / "metrics.csv").drop(columns="train_seconds")
    pd.testing.assert_frame_equal(a, b)
