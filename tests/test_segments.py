"""Speaker-segments files (RTTM, CSV) and the patient's analysed intervals."""

from __future__ import annotations

import numpy as np
import pytest

from cdrscreen.core.errors import InputError
from cdrscreen.features.segments import (
    intervals_to_mask,
    merge_intervals,
    patient_intervals,
    read_segments,
    subtract_intervals,
)

RTTM = """\
;; a comment
SPKR-INFO rec1 1 <NA> <NA> <NA> unknown patient <NA> <NA>
SPEAKER rec1 1 2.50 3.00 <NA> <NA> patient <NA> <NA>
SPEAKER rec1 1 0.00 2.00 <NA> <NA> interviewer <NA> <NA>
SPEAKER rec1 1 5.00 1.50 <NA> <NA> interviewer <NA> <NA>
SPEAKER rec1 1 6.00 2.00 <NA> <NA> patient <NA> <NA>
"""


def test_rttm_and_csv_give_the_same_table(tmp_path):
    r = tmp_path / "s.rttm"
    r.write_text(RTTM)
    c = tmp_path / "s.csv"
    c.write_text("speaker,start,end\npatient,2.5,5.5\ninterviewer,0,2\ninterviewer,5,6.5\npatient,6,8\n")
    a, b = read_segments(r), read_segments(c)
    assert list(a.columns) == ["start", "end", "speaker"]
    assert a["start"].tolist() == [0.0, 2.5, 5.0, 6.0]
    np.testing.assert_allclose(a[["start", "end"]].to_numpy(), b[["start", "end"]].to_numpy())
    assert a["speaker"].tolist() == b["speaker"].tolist()


def test_patient_intervals_exclude_overlap(tmp_path):
    r = tmp_path / "s.rttm"
    r.write_text(RTTM)
    seg = read_segments(r)
    np.testing.assert_allclose(patient_intervals(seg), [[2.5, 5.0], [6.5, 8.0]])
    np.testing.assert_allclose(patient_intervals(seg, exclude_overlap=False), [[2.5, 5.5], [6.0, 8.0]])
    np.testing.assert_allclose(patient_intervals(seg, "interviewer"), [[0.0, 2.0], [5.5, 6.0]])


def test_patient_segments_split_at_pauses_form_one_turn(tmp_path):
    c = tmp_path / "s.csv"
    c.write_text("start,end,speaker\n0,1,patient\n1.8,3,patient\n3.5,4,interviewer\n"
                 "4.5,5,patient\n9,10,patient\n")
    seg = read_segments(c)
    # the 0.8 s and 4 s gaps hold no other speaker: pauses within the patient's turn
    np.testing.assert_allclose(patient_intervals(seg), [[0, 3], [4.5, 10]])
    np.testing.assert_allclose(patient_intervals(seg, max_gap_s=1.0), [[0, 3], [4.5, 5], [9, 10]])
    np.testing.assert_allclose(patient_intervals(seg, max_gap_s=0), [[0, 1], [1.8, 3], [4.5, 5], [9, 10]])


def test_unknown_patient_label_names_file_and_labels(tmp_path):
    r = tmp_path / "s.rttm"
    r.write_text(RTTM)
    with pytest.raises(InputError, match=r"s\.rttm: no segment has the patient's speaker label 'P1' "
                       r"\(labels: interviewer, patient\)"):
        patient_intervals(read_segments(r), "P1", source=r)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("a.csv", "start,end,speaker\n1,0.5,patient\n", "line 2: segment must have 0 <= start < end"),
        ("b.csv", "start,end,speaker\n1,x,patient\n", "line 2: end is not a number"),
        ("c.csv", "begin,end,who\n1,2,patient\n", "missing start, speaker"),
        ("d.rttm", "SPEAKER rec 1 1.0\n", "line 1: RTTM SPEAKER line needs at least 8 fields"),
        ("e.rttm", "", "segments file is empty"),
        ("f.json", "{}", "unsupported segments format"),
        ("g.csv", "start,end,speaker\n", "has no segments"),
    ],
)
def test_bad_segment_files(tmp_path, name, text, problem):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError) as info:
        read_segments(p)
    assert str(info.value).startswith(str(p)) and problem in str(info.value)


def test_interval_algebra():
    a = merge_intervals([[3, 4], [0, 1], [0.5, 2], [2, 2.5]])
    np.testing.assert_allclose(a, [[0, 2.5], [3, 4]])
    np.testing.assert_allclose(subtract_intervals(a, [[1, 3.5]]), [[0, 1], [3.5, 4]])
    mask = intervals_to_mask(a, np.array([0.0, 2.49, 2.5, 2.9, 3.0, 4.0]))
    assert mask.tolist() == [True, True, False, False, True, False]


def test_subtract_intervals_matches_a_sampled_grid():
    rng = np.random.default_rng(0)
    grid = np.arange(0, 100, 0.01) + 0.005
    for _ in range(100):
        a = np.sort(rng.uniform(0, 100, (rng.integers(1, 15), 2)), axis=1)
        b = np.sort(rng.uniform(0, 100, (rng.integers(0, 15), 2)), axis=1)
        expected = intervals_to_mask(a, grid) & ~intervals_to_mask(b, grid)
        assert (intervals_to_mask(subtract_intervals(a, b), grid) == expected).all()
