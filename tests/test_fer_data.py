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


def test_ferplus_modes_follow_microsofts_reference(fer_layouts):
    csv_path = fer_layouts["ferplus_csv"]
    names = lambda s: [s.class_names[y] for y in s.labels]  # noqa: E731
    maj = read_ferplus(csv_path, split="train", mode="majority")
    assert names(maj) == ["neutral", "anger"] and maj.soft is None
    ce = read_ferplus(csv_path, split="train", mode="crossentropy")
    # kept: 8/2 (one-hot: 75 % reached by the top class), 5/5 tie, anger, 4/3/3; dropped: unknown,
    # NF, five tied classes, and the row where unknown stops integration below 50 %
    assert names(ce) == ["neutral", "surprise", "anger", "happiness"]
    np.testing.assert_allclose(ce.soft[0], np.eye(8)[0])
    np.testing.assert_allclose(ce.soft[1][[2, 3]], [0.5, 0.5])
    np.testing.assert_allclose(ce.soft[3][[1, 2, 7]], [0.4, 0.3, 0.3])
    np.testing.assert_allclose(ce.soft.sum(1), 1.0, rtol=1e-6)
    assert not ce.sample_soft_label and FERDataset(ce, 16, train=True)[1]["soft"].shape == (8,)
    prob = read_ferplus(csv_path, split="train", mode="probability")
    assert names(prob) == names(ce) and prob.sample_soft_label
    np.testing.assert_array_equal(prob.soft, ce.soft)
    ds = FERDataset(prob, 16, train=True)
    drawn = {int(ds[(3, seed)]["label"]) for seed in range(40)}  # one-hot drawn from 0.4/0.3/0.3
    assert drawn == {1, 2, 7} and "soft" not in ds[3]
    assert ds[(3, 5)]["label"] == ds[(3, 5)]["label"]  # a seeded draw is reproducible
    for mode in ("majority", "crossentropy", "probability"):  # standard splits whatever the mode
        te = read_ferplus(csv_path, split="test", mode=mode)
        va = read_ferplus(csv_path, split="valid", mode=mode)
        assert names(te) == ["fear"] and names(va) == ["sadness", "contempt"] and te.soft is None
        assert te.images[0].parent.name == "FER2013Test" and va.images[0].parent.name == "FER2013Valid"
    with pytest.raises(ValueError, match="mode must be one of"):
        read_ferplus(csv_path, mode="argmax")


def test_ferplus_distribution_edge_cases():
    from fer_backbone.data.readers import ferplus_distribution

    assert ferplus_distribution([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "crossentropy") is None
    # NF's share is removed when an emotion came first; kept only if that emotion has > 50 %
    np.testing.assert_allclose(ferplus_distribution([6, 0, 0, 0, 0, 0, 0, 0, 0, 4], "crossentropy"), np.eye(8)[0])
    assert ferplus_distribution([5, 0, 0, 0, 0, 0, 0, 0, 0, 5], "crossentropy") is None
    assert ferplus_distribution([5, 0, 0, 0, 0, 0, 0, 0, 0, 5], "majority") is None


def test_ferplus_validation_split_and_missing_images(fer_layouts, tmp_path):
    from fer_backbone.build import build_data
    from fer_backbone.config import DataConfig

    csv_path = fer_layouts["ferplus_csv"]
    b = build_data(DataConfig(format="ferplus", train_path=csv_path, ferplus_mode="crossentropy"))
    assert len(b.train) == 4 and len(b.val) == 2 and len(b.test) == 1  # FER2013Valid, not carved
    import shutil

    copy = tmp_path / "ferplus"
    shutil.copytree(csv_path.parent, copy)
    for name in ("fer0000000.png", "fer0000002.png"):  # the two majority-mode training images
        (copy / "FER2013Train" / name).unlink()
    with pytest.raises(InputError, match=r"FER2013Train/fer0000000.png: image listed in fer2013new.csv not "
                                         r"found \(2 of 2 missing\)"):
        read_ferplus(copy / "fer2013new.csv", split="train")
    shutil.rmtree(copy / "FER2013Valid")
    shutil.copytree(csv_path.parent / "FER2013Train", copy / "FER2013Train", dirs_exist_ok=True)
    b = build_data(DataConfig(format="ferplus", train_path=copy / "fer2013new.csv", val_fraction=0.5))
    assert len(b.train) + len(b.val) == 2  # no FER2013Valid folder: carved from training


def test_affectnet_training_and_headerless_validation(fer_layouts, tmp_path):
    csv_path, imgs = fer_layouts["affectnet_csv"], fer_layouts["affectnet_images"]
    import csv

    codes = [int(r["expression"]) for r in csv.DictReader(csv_path.open())]
    s7 = read_affectnet(csv_path, imgs, 7)
    s8 = read_affectnet(csv_path, imgs, 8)
    assert len(s7) == sum(c < 7 for c in codes) and len(s8) == sum(c < 8 for c in codes)
    assert s8.class_names[-1] == "contempt" and len(s7.class_names) == 7
    sub = read_affectnet(csv_path, imgs, 7, max_per_class=1, seed=0)
    assert np.bincount(sub.labels).max() == 1
    val_csv = csv_path.parent / "validation.csv"
    assert not val_csv.read_text().startswith("subDirectory")  # headerless, as released
    val_codes = [int(r[6]) for r in csv.reader(val_csv.open())]
    val = read_affectnet(val_csv, imgs, 8)
    assert len(val) == sum(c < 8 for c in val_codes) > 0
    # face box: the 32 px image cropped to its 24 px box is the digit itself
    boxed = read_affectnet(val_csv, imgs, 8, crop_face=True)
    assert boxed.boxes.tolist()[0] == [4, 6, 24, 24]
    whole = FERDataset(val, 24).raw_image(0)
    face = FERDataset(boxed, 24).raw_image(0)
    assert whole.shape == (3, 32, 32) and face.shape == (3, 24, 24)
    assert torch.equal(face, FERDataset(val, 24).raw_image(0)[:, 6:30, 4:28])
    assert FERDataset(boxed, 16)[0]["image"].shape == (3, 16, 16)


def test_affectnet_errors_are_one_line(fer_layouts, tmp_path):
    imgs = fer_layouts["affectnet_images"]
    bad = tmp_path / "validation.csv"
    bad.write_text("a,b,c\n")
    with pytest.raises(InputError, match="validation.csv: expected a header .* or 9 headerless columns"):
        read_affectnet(bad, imgs)
    rows = (fer_layouts["affectnet_csv"].parent / "validation.csv").read_text().splitlines()
    bad.write_text("\n".join(rows + ["9/missing.jpg,0,0,10,10,,3,0,0", "9/gone.jpg,0,0,10,10,,2,0,0"]) + "\n")
    with pytest.raises(InputError, match=r"9/missing.jpg: image listed in validation.csv not found \(2 of \d+ missing\)"):
        read_affectnet(bad, imgs, 8)
    bad.write_text("\n".join(rows[:1] + ["9/x.jpg,0,0,0,10,,3,0,0"]) + "\n")
    with pytest.raises(InputError, match="line 2: face box .* has no area"):
        read_affectnet(bad, imgs, 8, crop_face=True)


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


def test_shrunk_image_cache_matches_decoding_and_is_reused(fer_layouts, tmp_path):
    from fer_backbone.build import build_data, datasets
    from fer_backbone.config import DataConfig
    from fer_backbone.data.cache import build_shrunk_cache, cache_path

    s = read_rafdb(fer_layouts["rafdb"], "train")
    path = build_shrunk_cache(s, 20, tmp_path / "cache")
    assert path == cache_path(s, 20, tmp_path / "cache") and path.exists()
    mtime = path.stat().st_mtime_ns
    assert build_shrunk_cache(s, 20, tmp_path / "cache") == path and path.stat().st_mtime_ns == mtime  # reused
    assert cache_path(s, 24, tmp_path / "cache") != path  # another side, another file
    plain = FERDataset(s, 16, resize=20, train=False)
    cached = FERDataset(s, 16, resize=20, train=False, cache=path)
    for i in range(len(s)):
        assert torch.equal(plain[i]["image"], cached[i]["image"])  # same pixels, decoded once
    assert torch.equal(FERDataset(s, 16, resize=20, train=True)[(3, 7)]["image"],
                       FERDataset(s, 16, resize=20, train=True, cache=path)[(3, 7)]["image"])  # same crop
    with pytest.raises(InputError, match="image cache holds"):
        FERDataset(s, 16, resize=24, cache=path)[0]
    cfg = DataConfig(format="rafdb", root=fer_layouts["rafdb"], image_size=16, resize=20,
                     cache_dir=tmp_path / "c2", val_fraction=0.3)
    tr, va, te = datasets(build_data(cfg), cfg)
    assert tr.cache is not None and te.cache is not None and len(list((tmp_path / "c2").glob("*.npy"))) == 3
