"""Noisy-label benchmark on scikit-learn digits: baseline vs SCN vs SLM-AEA.

Real handwritten digit images (1,797, 10 classes) stand in for a face data set. For each
seed: a stratified 70/30 train/test split; training labels flipped with probability p to
a uniformly random other class (the SCN protocol, seeded); 15 % of the (noisy) training
data held out for model selection; the clean test set evaluated once with the selected
weights. All methods share the split, the noisy labels, the initial weights, the loop and
its settings. Diagnostics: for SCN the precision of its relabelling (relabels that
restore the clean label) and its importance weights on flipped vs. kept samples; for SLM
the accuracy of the mined labels against the clean ones.

Methods: ``baseline``; ``scn`` (relabel scope ``low``, the paper) and ``scn_all`` (every
sample of the batch, the public code); ``slm_aea`` (the authors' ramps, ``beta`` = epoch 7
of the run) and ``slm_aea_ts`` (the opt-in time-scaled ramps: the run spans the authors'
40 epochs).

    python benchmarks/bench_fer_noisy_labels.py [--seeds 3] [--epochs 8] [--size 16] [--noise 0 0.1 0.2 0.3]
    # partial runs in parallel, then: --merge part1.json part2.json

Writes benchmarks/results/fer_noisy_labels.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("CDRSCREEN_NO_PROGRESS", "1")

import numpy as np
import torch

from fer_backbone.config import TrainConfig
from fer_backbone.data import FERDataset, digits_train_test, inject_label_noise, train_val_split
from fer_backbone.tasks import build_task
from fer_backbone.train import fit, make_loader, seed_everything

OUT = Path(__file__).parent / "results" / "fer_noisy_labels.json"


METHODS = {"baseline": ("baseline", {}), "scn": ("scn", {"relabel_scope": "low"}),
           "scn_all": ("scn", {"relabel_scope": "all"}), "slm_aea": ("slm_aea", {"ramp_schedule": "official"}),
           "slm_aea_ts": ("slm_aea", {"ramp_schedule": "time_scaled"})}


def task_params(method: str, epochs: int, labels: np.ndarray) -> tuple[str, dict]:
    task, extra = METHODS[method]
    if task == "scn":
        # relabel from ~1/3 of training (the paper: epoch 10 of 70 with a pretrained backbone)
        return task, {"relabel_epoch": max(2, epochs // 3 + 1), "margin_1": 0.07, "margin_2": 0.2, **extra}
    if task == "slm_aea":
        return task, {"train_labels": labels.tolist(), **extra}
    return task, extra


@torch.no_grad()
def scn_importance(task, ds) -> np.ndarray:
    from fer_backbone.augment import prepare_batch

    task.eval()
    out = []
    for b in make_loader(ds, 256):
        x = prepare_batch(b, torch.device("cpu"), (0.5,) * 3, (0.25,) * 3)
        out.append(task.importance(task.embed(x["image"])).squeeze(1))
    return torch.cat(out).numpy()


def one_run(method: str, noise: float, seed: int, args, workdir: Path) -> dict:
    train_all, test = digits_train_test(0.3, seed)
    clean_all = train_all.labels.copy()
    noisy, rep = inject_label_noise(clean_all, noise, 10, seed) if noise > 0 else (clean_all.copy(), None)
    noisy_set = train_all.with_labels(noisy)
    noisy_set.frames = np.arange(len(noisy_set))  # carries original positions through the split
    # split on the noisy labels (what a user has); remember the clean labels of the train part
    tr, va = train_val_split(noisy_set, 0.15, seed)
    clean_tr = clean_all[tr.frames]
    seed_everything(seed)
    name, params = task_params(method, args.epochs, tr.labels)
    task = build_task(name, backbone={"name": args.backbone}, num_classes=10, num_train=len(tr), **params)
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=args.lr, weight_decay=1e-4,
                      scheduler="cosine", min_lr=1e-5, flip=False, seed=seed, threads=args.threads,
                      num_workers=0, deterministic=True)
    t0 = time.perf_counter()
    res = fit(task, FERDataset(tr, args.size, train=True), cfg, workdir / f"{method}_{noise}_{seed}",
              val_data=FERDataset(va, args.size), test_data=FERDataset(test, args.size), resume=False,
              mean=(0.5,) * 3, std=(0.25,) * 3)
    out = {"method": method, "noise": noise, "seed": seed, "test_accuracy": res.test_metrics["accuracy"],
           "test_macro_f1": res.test_metrics["macro_f1"], "best_epoch": res.best_epoch,
           "realised_noise": rep.realised_rate if rep else 0.0, "seconds": time.perf_counter() - t0}
    flipped = tr.labels != clean_tr
    # test accuracy uses the selected (best validation) weights; the label diagnostics use the
    # state at the end of training, where SCN's relabels and SLM's mined labels have accrued
    final = torch.load(workdir / f"{method}_{noise}_{seed}" / "checkpoints" / "last.pt",
                       weights_only=False)["task"]
    if name == "scn":
        r = final["relabels"].numpy()
        changed = r >= 0
        out["relabeled_fraction"] = float(changed.mean())
        out["relabel_precision"] = float((r[changed] == clean_tr[changed]).mean()) if changed.any() else None
        out["noisy_fixed_fraction"] = float((r[flipped] == clean_tr[flipped]).mean()) if flipped.any() else None
        task.load_state_dict(final)
        a = scn_importance(task, FERDataset(tr, args.size))
        out["alpha_flipped"] = float(a[flipped].mean()) if flipped.any() else None
        out["alpha_kept"] = float(a[~flipped].mean())
    if name == "slm_aea":
        mined = final["label_logits"].argmax(1).numpy()
        out["mined_label_accuracy"] = float((mined == clean_tr).mean())
        out["given_label_accuracy"] = float((tr.labels == clean_tr).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--backbone", default="test_resnet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--merge", type=Path, nargs="+", help="combine result files of partial runs")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        rows = [r for p in parts for r in p["runs"]]
        args.noise = sorted({r["noise"] for r in rows})
        args.seeds = max(r["seed"] for r in rows) + 1
        cfg = {**parts[0]["config"], "noise": args.noise, "merged_from": [str(p) for p in args.merge]}
        table = summarise(rows, args)
        diag = diagnostics(rows)
        args.out.write_text(json.dumps({"config": cfg, "torch": torch.__version__,
                                        "total_seconds": sum(p["total_seconds"] for p in parts),
                                        "runs": rows, "table_markdown": table, "diagnostics_markdown": diag},
                                       indent=1))
        print(table)
        print(diag)
        return
    import tempfile

    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for noise in args.noise:
            for seed in range(args.seeds):
                for m in args.methods:
                    r = one_run(m, noise, seed, args, Path(tmp))
                    rows.append(r)
                    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}),
                          flush=True)
    total = time.perf_counter() - t0
    table = summarise(rows, args)
    diag = diagnostics(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                    "torch": torch.__version__, "total_seconds": total,
                                    "runs": rows, "table_markdown": table,
                                    "diagnostics_markdown": diag}, indent=1))
    print(table)
    print(diag)
    print(f"total {total:.0f} s")


def diagnostics(rows: list[dict]) -> str:
    """Mean SCN and SLM diagnostics per noise level and method variant (Markdown)."""
    lines = ["| noise p | method | relabelled | relabel precision | flipped labels restored | "
             "alpha flipped / kept | mined-label acc. | given-label acc. |",
             "|---|---|---|---|---|---|---|---|"]
    mean = lambda xs: float(np.mean([x for x in xs if x is not None])) if any(x is not None for x in xs) else float("nan")  # noqa: E731
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    for noise in sorted({r["noise"] for r in rows}):
        for m in methods:
            rs = [r for r in rows if r["noise"] == noise and r["method"] == m]
            if METHODS[m][0] == "scn":
                lines.append(
                    f"| {noise:.1f} | {m} | {mean([r['relabeled_fraction'] for r in rs]):.3f} | "
                    f"{mean([r['relabel_precision'] for r in rs]):.2f} | "
                    f"{mean([r.get('noisy_fixed_fraction') for r in rs]):.2f} | "
                    f"{mean([r['alpha_flipped'] for r in rs]):.3f} / {mean([r['alpha_kept'] for r in rs]):.3f} | | |")
            elif METHODS[m][0] == "slm_aea":
                lines.append(f"| {noise:.1f} | {m} | | | | | {mean([r['mined_label_accuracy'] for r in rs]):.3f} | "
                             f"{mean([r['given_label_accuracy'] for r in rs]):.3f} |")
    return "\n".join(lines)


def summarise(rows: list[dict], args) -> str:
    lines = ["| noise p (realised) | " + " | ".join(args.methods) + " |",
             "|---|" + "---|" * len(args.methods)]
    for noise in args.noise:
        rs = [r for r in rows if r["noise"] == noise]
        real = np.mean([r["realised_noise"] for r in rs])
        cells = []
        for m in args.methods:
            acc = np.array([r["test_accuracy"] for r in rs if r["method"] == m]) * 100
            cells.append(f"{acc.mean():.1f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.1f}")
        lines.append(f"| {noise:.1f} ({real:.3f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
