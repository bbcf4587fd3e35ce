"""Accuracy of the speech measures against planted truth (the tables of ``docs/validation-speech.md``).

* Real human voice: the eight alsa-utils clips trimmed to their annotated words and joined
  by planted silences of 0.4-1.6 s (``tests.fixtures_speech.real_voice``), clean and with
  white noise at -60 and -50 dBFS: per planted pause the start, end and duration error of
  the matching measured pause; the syllable count against the 18 dictionary syllables.
* espeak-ng: the 57-syllable test text at 110/170/230 wpm and three voices: syllable count.
* Demo cohort (24 subjects x 16 s, seed 0; audio only, no video): every planted silence of
  at least 0.3 s between two utterances against its measured pause (whole track); with the
  speakers given as segments, the patient's pauses and articulation rate against the
  planted pause mean and espeak rate; class means.
* openSMILE: GeMAPS/eGeMAPS of a 48 kHz WAV (four alsa clips) against
  ``Smile.process_file`` on it, and how far the 16 kHz option lies from it.

Results go to ``benchmarks/results/validation_speech.json``.

Usage: ``python benchmarks/validate_speech.py``
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdrscreen.features import get_extractor  # noqa: E402
from cdrscreen.features.timing import (  # noqa: E402
    detect_speech,
    pause_intervals,
    syllable_nuclei,
    timing_features,
    timing_tables,
)
from tests.fixtures_speech import (  # noqa: E402
    ALSA_DIR,
    ALSA_SYLLABLES,
    PHRASES,
    SR,
    espeak,
    real_voice,
    silence,
    write_wav,
)

ESPEAK_SYLLABLES = 57


def real_pauses() -> dict:
    clips = sorted(ALSA_DIR.glob("*.wav"))
    out = {}
    for noise in (None, -60.0, -50.0):
        rv = real_voice(clips, noise_db=noise)
        p = timing_tables(rv.signal, rv.sr)["pauses"]
        rows = []
        for a, b in rv.planted:
            hit = p[(p.end > a) & (p.start < b)]
            if len(hit) != 1:
                rows.append({"planted_s": b - a, "found": int(len(hit))})
                continue
            rows.append({"planted_s": round(b - a, 3), "start_err_s": round(hit.start.item() - a, 3),
                         "end_err_s": round(hit.end.item() - b, 3),
                         "duration_err_s": round(hit.duration.item() - (b - a), 3)})
        errs = [max(abs(r["start_err_s"]), abs(r["end_err_s"]), abs(r["duration_err_s"]))
                for r in rows if "start_err_s" in r]
        nuclei = syllable_nuclei(rv.signal, rv.sr, detect_speech(rv.signal, rv.sr)).size
        out["clean" if noise is None else f"noise{int(noise)}dB"] = {
            "pauses": rows, "max_abs_err_s": max(errs) if errs else None,
            "n_matched": len(errs), "n_planted": len(rv.planted), "n_detected_pauses": int(len(p)),
            "syllables": int(nuclei), "syllables_true": rv.syllables,
            "syllable_err_pct": round(100 * (nuclei - rv.syllables) / rv.syllables, 1),
        }
    per_clip = {}
    import soundfile as sf

    from cdrscreen.media.audio import resample

    for c in clips:
        if c.stem in ALSA_SYLLABLES:
            x, sr = sf.read(str(c), dtype="float32")
            x = np.concatenate([silence(0.5), resample(x, sr, SR), silence(0.5)])
            per_clip[c.stem] = {"true": ALSA_SYLLABLES[c.stem][1],
                                "measured": int(syllable_nuclei(x, SR, detect_speech(x, SR)).size)}
    out["syllables_per_clip"] = per_clip
    return out


def espeak_syllables() -> dict:
    out = {}
    for label, kw in (("110wpm", {"speed": 110}), ("170wpm", {"speed": 170}), ("230wpm", {"speed": 230}),
                      ("m3_150wpm_low", {"voice": "en-us+m3", "speed": 150, "pitch": 25}),
                      ("f3_150wpm_high", {"voice": "en-us+f3", "speed": 150, "pitch": 80}),
                      ("en_150wpm", {"voice": "en", "speed": 150})):
        x = np.concatenate([np.concatenate([espeak(p, **kw), silence(0.4)]) for p in PHRASES])
        f, _ = timing_features(x, SR)
        out[label] = {"syllables": int(f["syllable_count"]), "true": ESPEAK_SYLLABLES,
                      "err_pct": round(100 * (f["syllable_count"] - ESPEAK_SYLLABLES) / ESPEAK_SYLLABLES, 1)}
    return out


def demo_cohort() -> dict:
    """The default cohort's audio (format 2: interviewer question, then answers), 24 x 16 s."""
    import pandas as pd

    from cdrscreen.demo import draw_cohort
    from cdrscreen.demo.content import dialogue_track
    from cdrscreen.features.timing import TimingExtractor

    rows = []
    for sp in draw_cohort(24, seed=0):
        tr = dialogue_track(16.0, sp.voice, sp.content, seed=sp.seed, sr=SR)
        seg = tr.segments
        # every planted silence between two utterances (answer-answer, question-answer, answer-question)
        planted = seg[seg.kind.isin(["pause", "latency"])][["start", "end"]].to_numpy()
        _, vad = timing_features(tr.audio, SR)
        found = pause_intervals(vad, None, 0.25)
        errs = []
        for s, e in planted:
            if e - s >= 0.3:
                i = int(np.argmin(np.abs(found[:, 0] - s))) if len(found) else -1
                errs.append(np.inf if i < 0 else max(abs(found[i, 0] - s), abs(found[i, 1] - e)))
        talk = seg[seg.kind.isin(["speech", "other"])]
        speakers = pd.DataFrame({"start": talk.start, "end": talk.end,
                                 "speaker": np.where(talk.kind == "speech", "patient", "interviewer")})
        whole = TimingExtractor().process_signal(tr.audio, SR).iloc[0]
        patient = TimingExtractor().process_signal(tr.audio, SR, segments=speakers).iloc[0]
        # the patient's own pauses as planted: silences between two consecutive answers, of at
        # least min_pause_s (0.25 s; shorter ones are bridged by definition)
        k = seg.kind.to_numpy()
        answer_pauses = [float(seg.end.iloc[i] - seg.start.iloc[i]) for i in range(1, len(seg) - 1)
                         if k[i] == "pause" and k[i - 1] == "speech" and k[i + 1] == "speech"
                         and seg.end.iloc[i] - seg.start.iloc[i] >= 0.25]
        rows.append({"cdr": sp.cdr, "wpm": sp.voice.rate_wpm,
                     "planted_pause_mean": float(np.mean(answer_pauses)) if answer_pauses else np.nan,
                     "errs": errs, "n_answer_pauses": len(answer_pauses),
                     "whole_pause_mean_s": whole["timing__pause_mean_s"],
                     "pat_pause_mean_s": patient["timing__pause_mean_s"],
                     "pat_pause_total_s": patient["timing__pause_total_s"],
                     "pat_articulation": patient["timing__articulation_rate_syl_per_s"],
                     "pat_speech_rate": patient["timing__speech_rate_syl_per_s"]})
    col = {k: np.array([r[k] for r in rows], float) for k in rows[0] if k != "errs"}
    errs = np.concatenate([r["errs"] for r in rows])
    classes = sorted(set(col["cdr"]))

    def r(a: str, b: str) -> float:
        ok = np.isfinite(col[a]) & np.isfinite(col[b])
        return round(float(np.corrcoef(col[a][ok], col[b][ok])[0, 1]), 3)

    def by_class(k: str) -> dict[str, float]:
        return {str(c): round(float(np.nanmean(col[k][col["cdr"] == c])), 2) for c in classes}

    return {
        "n_planted_gaps_ge_0.3s": int(errs.size), "max_abs_gap_err_s": round(float(errs.max()), 3),
        "r_patient_pause_mean_vs_planted_answer_pause_mean": r("pat_pause_mean_s", "planted_pause_mean"),
        "r_patient_articulation_vs_planted_wpm": r("pat_articulation", "wpm"),
        "subjects_with_answer_pauses": int(np.sum(col["n_answer_pauses"] > 0)),
        "class_mean_planted_answer_pause_s": by_class("planted_pause_mean"),
        "class_mean_patient_pause_s": by_class("pat_pause_mean_s"),
        "class_mean_whole_track_pause_s": by_class("whole_pause_mean_s"),
        "class_patient_articulation_syl_per_s": by_class("pat_articulation"),
        "class_patient_speech_rate_syl_per_s": by_class("pat_speech_rate"),
    }


def opensmile_48k() -> dict:
    import opensmile
    import soundfile as sf

    clips = [sf.read(str(p), dtype="float32")[0] for p in sorted(ALSA_DIR.glob("*.wav"))[:4]]
    x48 = np.concatenate([np.concatenate([c, np.zeros(24000, np.float32)]) for c in clips])
    out = {}
    with tempfile.TemporaryDirectory() as d:
        wav = write_wav(Path(d) / "voice48k.wav", x48, sr=48000)
        for group, fs in (("gemaps", "GeMAPSv01b"), ("egemaps", "eGeMAPSv02")):
            ref = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, fs)).process_file(str(wav))
            cols = [f"{group}__{c}" for c in ref.columns]
            b = ref.to_numpy(float)[0]
            res = {}
            for label, kw in (("native", {}), ("16k_option", {"opensmile_sr": 16000})):
                a = get_extractor(group, **kw).process_file(wav)[cols].to_numpy(float)[0]
                rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
                res[label] = {"max_rel_diff": float(rel.max()), "median_rel_diff": float(np.median(rel))}
            out[group] = res
    return out


def main() -> None:
    t0 = time.time()
    res = {
        "real_voice": real_pauses(),
        "espeak_syllables": espeak_syllables(),
        "demo_cohort": demo_cohort(),
        "opensmile_48k": opensmile_48k(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg()},
        "wall_s": round(time.time() - t0, 1),
    }
    out = ROOT / "benchmarks" / "results" / "validation_speech.json"
    from cdrscreen.core.io import write_text

    write_text(out, json.dumps(res, indent=1, default=float) + "\n")
    print(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
