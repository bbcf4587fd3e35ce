import numpy as np
import pytest
import torch
from torch import nn

from cdrscreen.core.errors import ConfigError
from fer_backbone.tasks.semi_supervised import (
    SemiSupervisedDataset,
    SemiSupervisedTask,
    feedback_exact,
    feedback_first_order,
    strong_augment,
    weak_augment,
)


class TinyNet(nn.Module):
    """A real (small) backbone: flatten + linear + ReLU."""

    def __init__(self, in_dim=3 * 4 * 4, width=6):
        super().__init__()
        self.num_features = width
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, width), nn.ReLU())

    def forward(self, x):
        return self.body(x)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _task(feedback, seed=0, **kw):
    torch.manual_seed(seed)
    return SemiSupervisedTask(TinyNet(), TinyNet(), num_classes=3, feedback=feedback,
                              student_lr=0.5, student_momentum=0.0, **kw)


def _constructed_batch(teacher_class, task):
    """Labeled images all of class 0; the unlabeled images are the same images.

    The teacher is forced (large head bias) to pseudo-label every unlabeled image as
    ``teacher_class``: 0 makes the student's pseudo-label gradient agree with its labeled
    gradient, 1 makes it oppose it.
    """
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, 4, 4, generator=g)
    with torch.no_grad():
        task.teacher.fc.weight.zero_()
        task.teacher.fc.bias.copy_(torch.tensor([-10.0, -10.0, -10.0]))
        task.teacher.fc.bias[teacher_class] = 10.0
    return {"image": x, "label": torch.zeros(8, dtype=torch.long), "index": torch.arange(8),
            "unlabeled_weak": x.clone(), "unlabeled_strong": x.clone()}


@pytest.mark.parametrize("mode", ["first_order", "exact"])
def test_feedback_sign_flips_when_pseudo_gradient_opposes_labeled_gradient(mode):
    agree = _task(mode)
    out_a = agree(_constructed_batch(0, agree))
    oppose = _task(mode)
    out_o = oppose(_constructed_batch(1, oppose))
    assert float(out_a["feedback"]) > 0
    assert float(out_o["feedback"]) < 0
    # the teacher's feedback loss then reinforces (agree) or penalises (oppose) its labels
    assert float(out_a["feedback_loss"]) >= 0 >= float(out_o["feedback_loss"])


def test_exact_and_first_order_feedback_agree_for_a_small_sgd_step():
    torch.manual_seed(0)
    kw = dict(num_classes=3, student_lr=1e-3, student_momentum=0.0)
    t1 = SemiSupervisedTask(TinyNet(), TinyNet(), feedback="first_order", **kw)
    torch.manual_seed(0)
    t2 = SemiSupervisedTask(TinyNet(), TinyNet(), feedback="exact", **kw)
    f1 = float(t1(_constructed_batch(1, t1))["feedback"])
    f2 = float(t2(_constructed_batch(1, t2))["feedback"])
    assert f1 == pytest.approx(f2, rel=0.05)


def test_feedback_helpers_hand_computed():
    assert feedback_first_order(1.5, 1.2) == pytest.approx(0.3)
    g_l = [torch.tensor([1.0, -2.0]), torch.tensor([[0.5]])]
    g_u = [torch.tensor([3.0, 1.0]), torch.tensor([[-2.0]])]
    assert feedback_exact(g_l, g_u, 0.1) == pytest.approx(0.1 * (3 - 2 - 1))


def test_feedback_moving_average_baseline_as_google_research():
    task = _task("first_order")
    assert task.feedback_baseline == "moving_average"  # the default
    # m <- m - 0.01 (m - f), then f - m: f = 1, 1, -1
    assert task.baselined_feedback(1.0) == pytest.approx(0.99)
    assert task.baselined_feedback(1.0) == pytest.approx(1.0 - 0.0199)
    m = 0.0199 - 0.01 * (0.0199 + 1.0)
    assert task.baselined_feedback(-1.0) == pytest.approx(-1.0 - m)
    other = _task("first_order")
    other.load_extra_state(task.extra_state())
    assert other._feedback_avg == pytest.approx(m)  # checkpointed
    raw = _task("first_order", feedback_baseline="none")
    assert raw.baselined_feedback(0.3) == 0.3
    out = task(_constructed_batch(0, task))
    assert float(out["feedback"]) == pytest.approx(float(out["feedback_raw"]) - task._feedback_avg, abs=1e-6)
    with pytest.raises(ConfigError, match="feedback_baseline"):
        _task("first_order", feedback_baseline="ema")


def test_step_updates_student_inside_and_leaves_teacher_to_the_loop():
    task = _task("first_order", seed=1)
    teacher_ids = {id(p) for p in task.teacher.parameters()}
    assert {id(p) for p in task.optimizer_parameters()} == teacher_ids
    before_s = [p.detach().clone() for p in task.student.parameters()]
    before_t = [p.detach().clone() for p in task.teacher.parameters()]
    batch = _constructed_batch(0, task)
    with torch.no_grad():
        task.teacher.fc.bias.zero_()
    before_t = [p.detach().clone() for p in task.teacher.parameters()]
    out = task(batch)
    assert any(not torch.equal(a, b) for a, b in zip(before_s, task.student.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(before_t, task.teacher.parameters(), strict=True))
    out["loss"].backward()
    assert all(p.grad is None for p in task.student.parameters())
    assert task.teacher.fc.weight.grad is not None
    for key in ("ce_teacher", "consistency", "feedback", "feedback_loss", "student_ce_unlabeled",
                "student_ce_labeled", "mask_rate"):
        assert out[key].ndim == 0
    hist = task.epoch_metrics()
    assert sum(hist[f"pseudo_frac_{k}"] for k in range(3)) == pytest.approx(1.0)
    no_fb = _task("none")
    assert float(no_fb(_constructed_batch(1, no_fb))["feedback_loss"]) == 0.0


def test_threshold_masks_unconfident_pseudo_labels_and_missing_keys_error():
    task = _task("first_order", threshold=0.99)
    b = _constructed_batch(0, task)
    with torch.no_grad():
        task.teacher.fc.bias.zero_()  # uniform teacher: nothing passes the threshold
    out = task(b)
    assert float(out["mask_rate"]) == 0.0 and float(out["consistency"]) == 0.0
    with pytest.raises(ConfigError, match="unlabeled_weak"):
        task({"image": b["image"], "label": b["label"]})
    with pytest.raises(ConfigError):
        _task("bogus")


def test_student_cosine_schedule_and_extra_state_roundtrip():
    task = _task("first_order")
    task.on_epoch_start(0, 10)
    assert task.student_opt.param_groups[0]["lr"] == pytest.approx(0.5)
    task.on_epoch_start(5, 10)
    assert task.student_opt.param_groups[0]["lr"] == pytest.approx(0.25)
    task(_constructed_batch(0, task))
    st = task.extra_state()
    other = _task("first_order")
    other.load_extra_state(st)
    assert other.student_opt.param_groups[0]["lr"] == pytest.approx(0.25)
    np.testing.assert_allclose(other._hist, task._hist)


@pytest.mark.slow
def test_trains_with_the_one_loop_on_digits(tmp_path, one_thread):
    from fer_backbone.config import TrainConfig
    from fer_backbone.data import ClassBalancedSampler, FERDataset, digits_train_test
    from fer_backbone.train import fit

    train, test = digits_train_test(0.3, seed=0)
    lab_idx = np.concatenate([np.flatnonzero(train.labels == c)[:5] for c in range(10)])
    labeled = train.subset(lab_idx)
    unl = train.subset(np.setdiff1d(np.arange(len(train)), lab_idx))
    weak = weak_augment(flip=False, jitter=0.2, translate=0.1)
    ds = SemiSupervisedDataset(FERDataset(labeled, 16, train=True), FERDataset(unl, 16), 16,
                               weak, strong_augment(weak, erase_p=0.0))
    item = ds[0]
    assert item["unlabeled_weak"].dtype == torch.uint8 and item["unlabeled_strong"].shape == (3, 16, 16)
    torch.manual_seed(0)
    task = SemiSupervisedTask(TinyNet(3 * 16 * 16, 32), TinyNet(3 * 16 * 16, 32), num_classes=10,
                              student_lr=0.01)
    before = [p.detach().clone() for p in task.student.parameters()]
    cfg = TrainConfig(epochs=4, batch_size=16, optimizer="sgd", lr=0.01, scheduler="cosine",
                      flip=False, selection="last", device="cpu", threads=1, max_steps_per_epoch=8)
    res = fit(task, ds, cfg, tmp_path / "run", test_data=FERDataset(test, 16),
              sampler=ClassBalancedSampler(labeled.labels, num_samples=128, seed=0))
    hist = res.history
    assert len(hist) == 4
    assert {"train_ce_teacher", "train_feedback", "train_consistency", "pseudo_tv_uniform"} <= set(hist[0])
    assert all(np.isfinite(h["train_loss"]) for h in hist)
    assert any(not torch.equal(a, b) for a, b in zip(before, task.student.parameters(), strict=True))
    # the teacher (trained by the loop) learns from 50 labels in 32 steps: well above chance
    from fer_backbone.evaluate import evaluate
    from fer_backbone.train import make_loader

    task.predict_with = "teacher"
    m = evaluate(task, make_loader(FERDataset(test, 16), 128), torch.device("cpu"),
                 (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert m["accuracy"] > 0.25


@pytest.mark.slow
def test_semi_recipe_runs_end_to_end(tmp_path, one_thread):
    from fer_backbone.build import run_recipe
    from fer_backbone.config import load_recipe

    ov = ["model.backbone=test_resnet", "data.image_size=16", "train.epochs=1", "train.batch_size=16",
          "train.max_steps_per_epoch=3", "train.device=cpu", "train.threads=1",
          "task.params.student_wait_epochs=0", "semi.samples_per_epoch=48"]
    rec = load_recipe("recipes/fer_semi_digits.yaml", ov)
    assert rec.semi.labels_per_class == 5 and rec.task.name == "semi_supervised" and rec.kind == "semi"
    res = run_recipe(rec, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    assert "train_feedback" in res.history[0] and np.isfinite(res.history[0]["train_loss"])
    from fer_backbone.export import load_trained

    task, info = load_trained(tmp_path / "run")
    assert info["task"] == "semi_supervised"
    assert task.predict(torch.zeros(2, 3, 16, 16)).shape == (2, 10)


def test_cli_train_routes_semi_recipes_to_the_teacher_student_runner(tmp_path, one_thread, capsys):
    import json

    from fer_backbone.cli import main

    ov = ["model.backbone=test_resnet", "data.image_size=16", "train.epochs=1", "train.batch_size=16",
          "train.max_steps_per_epoch=2", "train.device=cpu", "train.threads=1",
          "task.params.student_wait_epochs=0", "semi.samples_per_epoch=32"]
    args = ["train", "recipes/fer_semi_digits.yaml", "--out", str(tmp_path / "run")]
    for o in [*ov, "semi.finetune_epochs=1"]:
        args += ["--set", o]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"] == str(tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["recipe"]["task"]["name"] == "semi_supervised" and info["semi"]["labels_per_class"] == 5
    # student fine-tuned on the labeled data after the teacher/student phase; best.pt holds it
    assert (tmp_path / "run" / "finetune" / "metrics.csv").exists()
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=False)
    ft = torch.load(tmp_path / "run" / "finetune" / "checkpoints" / "best.pt", weights_only=False)
    assert best["metadata"]["finetune_epochs"] == 1
    assert all(torch.equal(best["task"][k], v) for k, v in ft["task"].items())  # the student's weights
    assert main(["evaluate", str(tmp_path / "run"), "--split", "val"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] <= 1.0
    assert main(["train", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.yaml: recipe file not found" in capsys.readouterr().err


def test_semi_recipe_errors_name_the_file(tmp_path):
    from fer_backbone.config import load_recipe

    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ndata: {format: digits}\ntask: {name: semi_supervised}\nsemi: {}\n")
    with pytest.raises(ConfigError, match="bad.yaml.*exactly one"):
        load_recipe(p)
    p.write_text("name: x\ndata: {format: digits}\ntask: {name: semi_supervised}\n"
                 "semi: {labels_per_class: 2, weak: {jiter: 0.1}}\n")
    with pytest.raises(ConfigError, match="unknown key 'semi.weak.jiter' - did you mean 'jitter'"):
        load_recipe(p)
    p.write_text("name: x\ndata: {format: digits}\ntask: {name: semi_supervised}\n")
    with pytest.raises(ConfigError, match="needs a 'semi:' section"):
        load_recipe(p)
    p.write_text("name: x\ndata: {format: digits}\ntask: {name: scn}\nsemi: {labels_per_class: 2}\n")
    with pytest.raises(ConfigError, match="needs task.name semi_supervised"):
        load_recipe(p)


def test_labeled_half_of_semi_batches_is_class_balanced(one_thread):
    from fer_backbone.data import ClassBalancedSampler, FERDataset, load_digits_samples
    from fer_backbone.train import make_loader

    s = load_digits_samples()
    # heavily imbalanced labeled set: 150 of class 0, 10 of each other class
    idx = np.concatenate([np.flatnonzero(s.labels == 0)[:150]]
                         + [np.flatnonzero(s.labels == c)[:10] for c in range(1, 10)])
    labeled = s.subset(idx)
    weak = weak_augment(flip=False, jitter=0.0, translate=0.0)
    ds = SemiSupervisedDataset(FERDataset(labeled, 8), FERDataset(s, 8), 8, weak, weak)
    sampler = ClassBalancedSampler(labeled.labels, num_samples=1000, seed=0)
    counts = np.zeros(10)
    for batch in make_loader(ds, 100, sampler=sampler):
        counts += np.bincount(batch["label"].numpy(), minlength=10)
        assert batch["unlabeled_weak"].shape == (100, 3, 8, 8)
    frac = counts / counts.sum()
    assert np.abs(frac - 0.1).max() < 0.04  # without balancing class 0 would be 62%


def test_broken_yaml_recipe_is_one_line(tmp_path):
    from fer_backbone.config import load_recipe

    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\ntrain: {epochs: 3\n  lr: [1, 2\n")
    with pytest.raises(ConfigError) as ei:
        load_recipe(bad)
    msg = str(ei.value)
    assert msg.startswith(f"{bad}: not valid YAML at line ") and "\n" not in msg
