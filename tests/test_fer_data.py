import numpy as np
import pytest
import torch

from cdrscreen.core.errors import InputError
from fer_backbone.data import (
    ClassBalancedSampler,
    EpochRandomSampler,
    FERDataset,
    Samples,
    inject_label_noise,
    load_digits_samples,
    read_affectnet,
    read_affwild2,
    read_ferplus,
    read_image_folder,
    read_rafdb,
    train_val_split,
)


def test_rafdb_layout(fer_layouts):
    tr = read_rafdb(fer_layouts["rafdb"], "train")
    te = read_rafdb(fer_layouts["rafdb"], "test")
    assert (len(tr), len(te)) == (14, 7)
    assert tr.class_names[6] == "neutral" and tr.labels.min() >= 0 and tr.labels.max() <= 6
    lines = (fer_layouts["rafdb"] / "EmoLabel" / "list_patition_label.txt").read_text().split("\n")
    assert int(lines[0].split()[1]) - 1 == tr.labels[0]  # labels 1..7 -> 0..6
    assert tr.images[0].name == "train_00001_aligned.jpg"
    item = FERDataset(tr, image_size=20, resize=24, train=True)[0]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 20, 20)


def test_rafdb_errors(tmp_path, fer_layouts):
    with pytest.raises(InputError, match="list_patition_label.txt: RAF-DB label list not found"):
        read_rafdb(tmp_path)
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 9\n")
    with pytest.raises(InputError, match="line 1"):
        read_rafdb(tmp_path)
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 3\n")
    with pytest.raises(InputError, match="train_00001_aligned.jpg: image listed"):
        read_rafdb(tmp_path)


def test_ferplus_modes(fer_layouts):
    csv_path = fer_layouts["ferplus_csv"]
    maj = read_ferplus(csv_path, split="train", mode="majority")
    # neutral 8/10 and anger 6/6 (single votes removed); tie, unknown, NF, 4/10 dropped
    assert [maj.class_names[y] for y in maj.labels] == ["neutral", "anger"]
    arg = read_ferplus(csv_path, split="train", mode="argmax")
    assert [arg.class_names[y] for y in arg.labels] == ["neutral", "surprise", "anger", "happiness"]
    prob = read_ferplus(csv_path, split="train", mode="probability")
    np.testing.assert_allclose(prob.soft[0][:2], [0.8, 0.2])
    np.testing.assert_allclose(prob.soft[3][[1, 2, 7]], [0.4, 0.3, 0.3])
    np.testing.assert_allclose(prob.soft.sum(1), 1.0, rtol=1e-6)
    assert prob.images[0].parent.name == "FER2013Train" and prob.images[0].exists()
    te = read_ferplus(csv_path, split="test")
    assert te.class_names[te.labels[0]] == "fear" and te.images[0].parent.name == "FER2013Test"
    item = FERDataset(prob, 16)[1]
    assert item["soft"].shape == (8,)


def test_affectnet(fer_layouts):
    csv_path, imgs = fer_layouts["affectnet_csv"], fer_layouts["affectnet_images"]
    import csv

    codes = [int(r["expression"]) for r in csv.DictReader(csv_path.open())]
    s7 = read_affectnet(csv_path, imgs, 7)
    s8 = read_affectnet(csv_path, imgs, 8)
    assert len(s7) == sum(c < 7 for c in codes) and len(s8) == sum(c < 8 for c in codes)
    assert s8.class_names[-1] == "contempt" and len(s7.class_names) == 7
    sub = read_affectnet(csv_path, imgs, 7, max_per_class=1, seed=0)
    assert np.bincount(sub.labels).max() == 1
    assert all(p.exists() for p in s8.images)


def test_affwild2(fer_layouts):
    s = read_affwild2(fer_layouts["affwild2_ann"], fer_layouts["affwild2_frames"])
    # v1: 5 annotated of 7 (two -1); v2: 4 annotated, one frame image missing -> 3
    assert len(s) == 8
    assert list(s.groups).count("v1") == 5 and list(s.frames[s.groups == "v1"]) == [1, 2, 4, 5, 7]
    assert list(s.labels[s.groups == "v2"]) == [5, 6, 2]
    with pytest.raises(InputError, match="00004.jpg: annotated frame image not found"):
        read_affwild2(fer_layouts["affwild2_ann"], fer_layouts["affwild2_frames"], skip_missing_frames=False)


def test_image_folder(fer_layouts, tmp_path):
    s = read_image_folder(fer_layouts["image_folder"])
    assert s.class_names == ["angry", "happy", "neutral"] and list(s.class_counts()) == [4, 4, 4]
    with pytest.raises(InputError, match="not one of the configured class names"):
        read_image_folder(fer_layouts["image_folder"], ["angry", "happy"])
    bad = tmp_path / "x" / "a" / "broken.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not an image")
    ds = FERDataset(read_image_folder(tmp_path / "x"), 16)
    with pytest.raises(InputError, match="broken.png: cannot read image"):
        ds[0]


def test_label_noise_protocol():
    y = np.repeat(np.arange(10), 100)
    noisy, rep = inject_label_noise(y, 0.2, 10, seed=3)
    again, _ = inject_label_noise(y, 0.2, 10, seed=3)
    np.testing.assert_array_equal(noisy, again)
    assert rep.flipped == int((noisy != y).sum()) and rep.realised_rate == rep.flipped / 1000
    assert 0.15 < rep.realised_rate < 0.25 and rep.requested_rate == 0.2
    # flips go to *other* classes, roughly uniformly
    changed = noisy[noisy != y] - y[noisy != y]
    assert (changed != 0).all()
    all_flipped, _ = inject_label_noise(np.zeros(9000, int), 1.0, 10, seed=0)
    counts = np.bincount(all_flipped, minlength=10)
    assert counts[0] == 0 and np.all(np.abs(counts[1:] - 1000) < 120)  # uniform over others
    clean, rep0 = inject_label_noise(y, 0.0, 10)
    assert rep0.flipped == 0 and (clean == y).all()
    assert (inject_label_noise(y, 1.0, 10)[0] != y).all()


def test_class_balanced_sampler_balances_and_is_resumable():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    s = ClassBalancedSampler(labels, num_samples=3000, seed=1)
    s.set_epoch(2)
    drawn = labels[list(s)]
    frac = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.all(np.abs(frac - 1 / 3) < 0.04)
    first = list(s)
    s2 = ClassBalancedSampler(labels, num_samples=3000, seed=1)
    s2.set_epoch(2)
    assert list(s2) == first
    s2.set_epoch(3)
    assert list(s2) != first
    r = EpochRandomSampler(50, seed=0)
    assert sorted(r) == list(range(50))


def test_train_val_split_stratified_and_grouped():
    s = load_digits_samples()
    tr, va = train_val_split(s, 0.2, seed=0)
    assert len(tr) + len(va) == len(s)
    assert np.allclose(np.bincount(va.labels) / len(va), np.bincount(s.labels) / len(s), atol=0.01)
    g = Samples(np.zeros((40, 4, 4), np.uint8), np.arange(40) % 3, ["a", "b", "c"],
                groups=np.repeat(np.arange(8), 5))
    gtr, gva = train_val_split(g, 0.25, seed=0)
    assert not set(gtr.groups) & set(gva.groups)


def test_digits_are_real_images():
    s = load_digits_samples()
    assert len(s) == 1797 and s.images.dtype == np.uint8 and s.images.max() == 255
    item = FERDataset(s, 32)[5]
    assert item["image"].shape == (3, 32, 32) and int(item["label"]) == s.labels[5]


def test_affwild2_label_file_keeps_frame_positions(tmp_path):
    from fer_backbone.data.readers import read_affwild2_labels

    f = tmp_path / "v.txt"
    f.write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n3\n\n-1\n7\n\n\n")
    assert read_affwild2_labels(f).tolist() == [3, -1, -1, 7]  # blank line 3 = frame 2, unlabeled
    f.write_text("Neutral,Anger\n1\n2\n")
    with pytest.raises(InputError, match=r"v\.txt.*line 3: label 2 out of range -1\.\.1"):
        read_affwild2_labels(f)
