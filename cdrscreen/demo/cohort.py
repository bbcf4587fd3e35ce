"""Build the SYNTHETIC demo cohort: real face photos and synthetic speech, planted effects.

:func:`build_cohort` writes::

    out_dir/
      README.txt              says the data are synthetic, for pipeline checking only
      cohort.json             build settings (seed, sizes, effect table) and file list
      build_time.json         wall time of the build (the only file that differs between runs)
      manifest.csv            subject,session,video,transcript,cdr,age,sex,mmse (cdrscreen.study format)
      videos/DEMO01.mp4 ...   H.264 video + AAC speech
      transcripts/DEMO01.cha  what was said (CHAT), and DEMO01.TextGrid (the same, Praat)
      ground_truth/
        subjects.csv          one row per subject: every planted parameter + realised stats
        DEMO01.frames.csv     per-frame planted trajectories and image positions
        DEMO01.json           clip metadata (fps, size, face, seed, parameters)
        DEMO01.speech.csv     planted speech and pause segments

Class effects (means per CDR and within-class SD) are in :data:`CLASS_EFFECTS` and
documented in ``docs/demo-cohort.md``; smile episodes (rate and intensity falling with
CDR) are rendered by :mod:`cdrscreen.demo.expressions`. Everything else (head motion
amplitudes, blink rate, brow raises, face photo, voice, lighting, noise) is drawn from the
same distribution in every class. The same arguments give byte-identical files whatever ``n_jobs`` is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.core.io import write_json, write_text
from cdrscreen.demo.content import (
    CONTENT_EFFECTS,
    ContentParams,
    content_summary,
    dialogue_track,
    draw_content,
    write_transcripts,
)
from cdrscreen.demo.expressions import ExpressionParams, expression_trajectories
from cdrscreen.demo.faces import FaceSource, load_face
from cdrscreen.demo.motion import MotionParams, make_trajectories
from cdrscreen.demo.render import render_face_video
from cdrscreen.demo.trajectories import GroundTruth
from cdrscreen.demo.voice import SpeechTrack, VoiceParams, speech_track

#: Bump when the generator changes in a way that changes the files.
#: 2: interviewer questions and planted speech content (fillers, repetitions, lexical
#: diversity, response latency); transcripts.
FORMAT_VERSION = 2

CLASSES: tuple[float, ...] = (0.5, 1.0, 2.0)

#: Planted class effects: mean per CDR class and the within-class standard deviation.
CLASS_EFFECTS: dict[str, dict[str, Any]] = {
    "vertical_coupling": {"means": {0.5: 0.15, 1.0: 0.35, 2.0: 0.55}, "sd": 0.18, "clip": (0.0, 0.95),
                          "unit": "Pearson r, upward gaze-in-head vs upward head pitch"},
    "saccade_rate": {"means": {0.5: 1.6, 1.0: 1.25, 2.0: 0.9}, "sd": 0.35, "clip": (0.2, 3.0),
                     "unit": "saccades per second"},
    "saccade_amp": {"means": {0.5: 0.18, 1.0: 0.155, 2.0: 0.13}, "sd": 0.03, "clip": (0.05, 0.3),
                    "unit": "SD of fixation targets, eye widths (x 1.4 eye heights vertically)"},
    "rate_wpm": {"means": {0.5: 175.0, 1.0: 155.0, 2.0: 135.0}, "sd": 18.0, "clip": (95.0, 230.0),
                 "unit": "espeak-ng speaking rate, words per minute"},
    "pause_mean_s": {"means": {0.5: 0.45, 1.0: 0.7, 2.0: 0.95}, "sd": 0.22, "clip": (0.15, 2.0),
                     "unit": "mean planted pause between phrases, seconds"},
    "pitch_sd": {"means": {0.5: 9.0, 1.0: 6.5, 2.0: 4.0}, "sd": 2.5, "clip": (0.5, 16.0),
                 "unit": "phrase-to-phrase SD of espeak-ng pitch (0-99 scale)"},
    "smile_rate": {"means": {0.5: 9.0, 1.0: 6.0, 2.0: 3.0}, "sd": 2.0, "clip": (0.0, 16.0),
                   "unit": "smile episodes per minute (Poisson; 1.2-2.6 s each)"},
    "smile_intensity": {"means": {0.5: 0.85, 1.0: 0.7, 2.0: 0.55}, "sd": 0.1, "clip": (0.3, 1.0),
                        "unit": "mean peak smile intensity (0-1, cdrscreen.demo.expressions)"},
    **CONTENT_EFFECTS,  # what is said: cdrscreen.demo.content
}
#: Effects drawn from a generator of their own (seeded by the subject's seed), so adding them
#: left every other planted parameter of a given cohort seed unchanged.
EXPRESSION_EFFECTS: tuple[str, ...] = ("smile_rate", "smile_intensity")

#: Covariates by class (mean, sd); MMSE is rounded and clipped to 0-30.
COVARIATES: dict[str, dict[float, tuple[float, float]]] = {
    "age": {0.5: (72.0, 6.0), 1.0: (76.0, 6.0), 2.0: (80.0, 6.0)},
    "mmse": {0.5: (25.0, 2.0), 1.0: (20.0, 3.0), 2.0: (14.0, 3.0)},
}

#: Face photographs used in rotation (name, mirrored). LFW faces are opt-in (see docs).
DEFAULT_FACES: tuple[tuple[str, bool], ...] = (
    ("astronaut", False), ("grace_hopper", False), ("astronaut", True), ("grace_hopper", True),
)

_PROTOTYPE = {0.5: 17, 1.0: 19, 2.0: 4}

README = """SYNTHETIC DEMO COHORT - FOR PIPELINE CHECKING ONLY
=================================================

Every video here was generated by cdrscreen.demo from real photographs that ship
inside installed software packages (scikit-image's astronaut and lfw_subset,
matplotlib's grace_hopper; "faces" below lists the ones used) and synthetic speech
(espeak-ng). The people shown are not patients;
the CDR labels, ages, sexes and MMSE scores are invented, and the class differences
were planted on purpose (see ground_truth/ and cdrscreen's docs/demo-cohort.md).

Results computed from these files check that the pipeline runs and recovers planted
effects. They are NOT evidence about dementia, and must never be reported as such.

Built with: {settings}
"""


@dataclass(frozen=True)
class SubjectSpec:
    """Everything drawn for one synthetic subject before rendering."""

    subject: str
    cdr: float
    age: int
    sex: str
    mmse: int
    face: str
    mirror: bool
    tint: tuple[float, float, float]
    face_height: float
    centre: tuple[float, float]
    motion: MotionParams
    voice: VoiceParams
    seed: int
    content: ContentParams | None = None
    expression: ExpressionParams = ExpressionParams()

    def flat(self) -> dict[str, Any]:
        """One flat dict (for ``subjects.csv``)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("motion", "voice", "content", "expression")}
        d["tint"] = ",".join(f"{t:.3f}" for t in self.tint)
        d["centre"] = ",".join(f"{c:.3f}" for c in self.centre)
        d.update({f"motion_{k}": v for k, v in self.motion.to_dict().items()})
        d.update({f"voice_{k}": v for k, v in asdict(self.voice).items()})
        if self.content is not None:
            d.update({f"content_{k}": v for k, v in self.content.to_dict().items()})
        d.update({f"expression_{k}": v for k, v in self.expression.to_dict().items()})
        return d


def class_counts(n_subjects: int, imbalance: Literal["balanced", "prototype"] = "balanced") -> dict[float, int]:
    """Subjects per CDR class: equal, or the clinical prototype's 17/19/4 proportions.

    Largest-remainder rounding; every class keeps at least one subject.
    """
    if n_subjects < 3:
        raise CdrscreenError(f"a demo cohort needs at least 3 subjects (one per CDR class), got {n_subjects}")
    if imbalance == "balanced":
        w = {c: 1.0 for c in CLASSES}
    elif imbalance == "prototype":
        w = {c: float(v) for c, v in _PROTOTYPE.items()}
    else:
        raise CdrscreenError(f"imbalance must be 'balanced' or 'prototype', got {imbalance!r}")
    tot = sum(w.values())
    exact = {c: n_subjects * w[c] / tot for c in CLASSES}
    counts = {c: max(int(np.floor(exact[c])), 1) for c in CLASSES}
    by_rem = sorted(CLASSES, key=lambda c: (-(exact[c] - np.floor(exact[c])), CLASSES.index(c)))
    i = 0
    while sum(counts.values()) < n_subjects:
        counts[by_rem[i % 3]] += 1
        i += 1
    while sum(counts.values()) > n_subjects:
        c = max(counts, key=lambda k: counts[k])
        counts[c] -= 1
    return counts


def _draw(rng: np.random.Generator, name: str, cdr: float) -> float:
    e = CLASS_EFFECTS[name]
    lo, hi = e["clip"]
    return float(np.clip(rng.normal(e["means"][cdr], e["sd"]), lo, hi))


def draw_subject(subject: str, cdr: float, rng: np.random.Generator, *, face_slot: int = 0,
                 faces: tuple[tuple[str, bool], ...] = DEFAULT_FACES) -> SubjectSpec:
    """Draw one subject's planted parameters for CDR class ``cdr``."""
    if cdr not in CLASSES:
        raise CdrscreenError(f"demo subjects have CDR 0.5, 1 or 2, got {cdr}")
    sex = "F" if rng.random() < 0.55 else "M"
    age = int(round(np.clip(rng.normal(*COVARIATES["age"][cdr]), 55, 95)))
    mmse = int(round(np.clip(rng.normal(*COVARIATES["mmse"][cdr]), 0, 30)))
    face, mirror = faces[face_slot % len(faces)]
    tint = tuple(float(x) for x in np.clip(rng.normal(1.0, 0.05, 3), 0.85, 1.15))
    motion = MotionParams(
        yaw_amp=float(rng.uniform(4, 9)), pitch_amp=float(rng.uniform(3, 6)),
        roll_amp=float(rng.uniform(1, 3)), shift_amp=float(rng.uniform(2, 6)),
        saccade_rate=_draw(rng, "saccade_rate", cdr), saccade_amp=_draw(rng, "saccade_amp", cdr),
        vertical_coupling=_draw(rng, "vertical_coupling", cdr),
        horizontal_coupling=float(np.clip(rng.normal(0.2, 0.1), 0, 0.6)),
        blink_rate=float(np.clip(rng.normal(17, 5), 6, 30)),
        occlusion_s=float(rng.uniform(0.12, 0.3)) if rng.random() < 0.25 else 0.0,
        gain_drift=float(rng.uniform(0.02, 0.06)), noise_sigma=float(rng.uniform(1.0, 3.0)),
    )
    variant = f"+f{rng.integers(1, 6)}" if sex == "F" else f"+m{rng.integers(1, 8)}"
    voice = VoiceParams(
        voice=("en-us" if rng.random() < 0.5 else "en-gb") + variant,
        rate_wpm=_draw(rng, "rate_wpm", cdr),
        pitch=float(np.clip(rng.normal(58 if sex == "F" else 42, 7), 10, 90)),
        pitch_sd=_draw(rng, "pitch_sd", cdr),
        pause_mean_s=_draw(rng, "pause_mean_s", cdr),
        amplitude=float(rng.uniform(0.45, 0.75)),
    )
    face_height = float(rng.uniform(0.56, 0.68))
    centre = (float(rng.uniform(0.45, 0.55)), float(rng.uniform(0.44, 0.5)))
    seed = int(rng.integers(0, 2**31 - 1))
    erng = np.random.default_rng([seed, 13])
    expression = ExpressionParams(
        smile_rate=_draw(erng, "smile_rate", cdr), smile_intensity=_draw(erng, "smile_intensity", cdr),
        brow_rate=float(np.clip(erng.normal(2.0, 0.8), 0, 5)), brow_intensity=float(erng.uniform(0.4, 0.7)),
    )
    return SubjectSpec(
        subject=subject, cdr=float(cdr), age=age, sex=sex, mmse=mmse, face=face, mirror=mirror,
        tint=tint, face_height=face_height, centre=centre, motion=motion, voice=voice, seed=seed,
        content=draw_content(cdr, seed), expression=expression,
    )


def parse_faces(faces: Sequence[str] | None) -> tuple[tuple[str, bool], ...]:
    """Face pool from names such as ``"astronaut"``, ``"grace_hopper/mirror"``, ``"lfw:40"``."""
    if faces is None:
        return DEFAULT_FACES
    out = tuple((f.removesuffix("/mirror"), f.endswith("/mirror")) for f in faces)
    if not out:
        raise CdrscreenError("the face pool is empty")
    return out


def draw_cohort(n_subjects: int = 24, seed: int = 0,
                imbalance: Literal["balanced", "prototype"] = "balanced",
                faces: Sequence[str] | None = None) -> list[SubjectSpec]:
    """Draw every subject's parameters (deterministic for ``seed``).

    Faces rotate within each class, so every class gets the photographs in equal shares
    (identity carries no label). ``faces`` overrides the pool (see :func:`parse_faces`).
    """
    pool = parse_faces(faces)
    counts = class_counts(n_subjects, imbalance)
    rng = np.random.default_rng([seed, FORMAT_VERSION])
    labels = [c for c in CLASSES for _ in range(counts[c])]
    order = rng.permutation(len(labels))
    width = max(2, len(str(n_subjects)))
    specs: list[SubjectSpec] = []
    slot = {c: int(rng.integers(0, len(pool))) for c in CLASSES}
    for i, j in enumerate(order):
        cdr = labels[j]
        specs.append(draw_subject(f"DEMO{i + 1:0{width}d}", cdr, rng, face_slot=slot[cdr], faces=pool))
        slot[cdr] += 1  # faces rotate within each class: identity carries no label
    return specs


def _prepare_face(spec: SubjectSpec, size: tuple[int, int]) -> FaceSource:
    return load_face(spec.face, size, face_height=spec.face_height, centre=spec.centre,
                     mirror=spec.mirror, tint=spec.tint)


def render_subject(spec: SubjectSpec, video: Path, *, duration_s: float, fps: float,
                   size: tuple[int, int], face: FaceSource | None = None, sr: int = 16000,
                   speech: bool = True) -> tuple[GroundTruth, SpeechTrack | None, dict[str, float]]:
    """Render one subject's video; return ground truth, speech track and realised stats."""
    import cv2

    cv2.setNumThreads(1)
    n_frames = int(round(duration_s * fps))
    if n_frames < 2:
        raise CdrscreenError(f"duration {duration_s} s at {fps} fps gives fewer than 2 frames")
    face = face if face is not None else _prepare_face(spec, size)
    track = None
    if speech:
        track = (dialogue_track(n_frames / fps, spec.voice, spec.content, seed=spec.seed, sr=sr)
                 if spec.content is not None else speech_track(n_frames / fps, spec.voice, seed=spec.seed, sr=sr))
    env = track.envelope(fps, n_frames) if track is not None else None
    rng = np.random.default_rng([spec.seed, 7])
    traj, realised = make_trajectories(spec.motion, n_frames, fps, rng, envelope=env)
    controls, planted_expr, episodes = expression_trajectories(spec.expression, n_frames, fps,
                                                               np.random.default_rng([spec.seed, 17]))
    traj = dataclasses.replace(traj, **controls)
    realised.update(planted_expr)
    gt = render_face_video(video, face, traj, fps=fps, audio=None if track is None else track.audio,
                           sr=sr, seed=spec.seed)
    if track is not None:
        realised.update({f"speech_{k}": v for k, v in track.summary().items()})
        if spec.content is not None:
            realised.update({f"content_{k}": v for k, v in content_summary(track.segments).items()})
        gt.meta["speech_segments"] = track.segments.to_dict(orient="list")
    gt.meta.update({"subject": spec.subject, "cdr": spec.cdr, "planted": spec.flat(), "realised": realised,
                    "expression_episodes": {k: [list(e) for e in v] for k, v in episodes.items()}})
    return gt, track, realised


def make_clip(path: str | Path, *, duration_s: float = 3.0, cdr: float = 1.0, seed: int = 0,
              size: tuple[int, int] = (320, 240), fps: float = 25.0, face: str = "astronaut",
              mirror: bool = False, speech: bool = True, occlusion_s: float = 0.0) -> GroundTruth:
    """Make one short synthetic clip of a CDR-``cdr`` subject (e.g. for tests).

    Parameters
    ----------
    path : path-like
        Output ``.mp4``.
    duration_s, fps, size : clip length, frame rate and ``(width, height)``.
    cdr : float
        Class whose effect distributions are drawn from (0.5, 1 or 2).
    seed : int
        Same seed, same bytes.
    face, mirror : built-in face photograph and whether to mirror it.
    speech : bool
        Mux espeak-ng speech (needs ``espeak-ng``); False gives a video without audio.
    occlusion_s : float
        Cover the face for this many seconds somewhere in the middle (0: never).

    Returns
    -------
    GroundTruth
        ``meta`` holds the planted parameters and (with speech) the speech segments.
    """
    rng = np.random.default_rng([seed, 11])
    spec = draw_subject("CLIP", cdr, rng, faces=((face, mirror),))
    spec = SubjectSpec(**{**asdict(spec), "motion": MotionParams(**{**spec.motion.to_dict(), "occlusion_s": occlusion_s}),
                          "voice": spec.voice, "content": spec.content, "expression": spec.expression,
                          "face_height": 0.62, "centre": (0.5, 0.47)})
    gt, _, _ = render_subject(spec, Path(path), duration_s=duration_s, fps=fps, size=size, speech=speech)
    return gt


def _job(spec: SubjectSpec, face: FaceSource, root: Path, duration_s: float, fps: float,
         size: tuple[int, int], key: str) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    video = root / "videos" / f"{spec.subject}.mp4"
    gt_dir = root / "ground_truth"
    done = _finished(gt_dir / f"{spec.subject}.json", video, key)
    if done is not None:  # resume: this subject was finished by an interrupted build
        return {**spec.flat(), **dict(sorted(done["realised"].items())), "render_s": 0.0,
                "cpu_s": 0.0, "n_frames": done["n_frames"]}
    gt, track, realised = render_subject(spec, video, duration_s=duration_s, fps=fps, size=size, face=face)
    meta = dict(gt.meta)
    meta.pop("speech_segments", None)
    meta["cohort_key"] = key
    gt.meta = meta
    if track is not None:
        write_text(gt_dir / f"{spec.subject}.speech.csv", track.segments.to_csv(index=False, float_format="%.4f"))
        write_transcripts(root / "transcripts" / spec.subject, track)
    gt.save(gt_dir / spec.subject)  # the JSON is written last: it marks the subject done
    return {**spec.flat(), **dict(sorted(realised.items())), "render_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "n_frames": gt.n_frames}


def _finished(meta_path: Path, video: Path, key: str) -> dict[str, Any] | None:
    """Return the saved metadata of a subject finished with these settings, else None."""
    if not (meta_path.exists() and video.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("cohort_key") != key or "realised" not in meta:
        return None
    return meta


def _settings(n_subjects: int, seed: int, imbalance: str, duration_s: float, fps: float,
              size: tuple[int, int], faces: Sequence[str] | None) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "n_subjects": n_subjects, "seed": seed,
            "faces": [f + ("/mirror" if m else "") for f, m in parse_faces(faces)],
            "imbalance": imbalance, "duration_s": duration_s, "fps": fps, "size": list(size),
            "class_effects": {k: {"means": {str(c): m for c, m in v["means"].items()}, "sd": v["sd"]}
                              for k, v in CLASS_EFFECTS.items()}}


def build_cohort(
    out_dir: str | Path,
    n_subjects: int = 24,
    seed: int = 0,
    imbalance: Literal["balanced", "prototype"] = "balanced",
    *,
    duration_s: float = 16.0,
    fps: float = 25.0,
    size: tuple[int, int] = (320, 240),
    n_jobs: int = 2,
    faces: Sequence[str] | None = None,
    force: bool = False,
) -> Path:
    """Build (or reuse) the synthetic demo cohort and return the manifest path.

    Parameters
    ----------
    out_dir : path-like
        Cohort folder (created).
    n_subjects : int
        Number of subjects (>= 3; 24 or more recommended), split over CDR 0.5 / 1 / 2.
    seed : int
        The same seed (and other arguments) gives byte-identical files.
    imbalance : {"balanced", "prototype"}
        Equal classes, or the clinical prototype's 17/19/4 proportions.
    duration_s, fps, size : float, float, (int, int)
        Length, frame rate and ``(width, height)`` of each video.
    n_jobs : int
        Worker processes (joblib) rendering subjects in parallel.
    faces : sequence of str, optional
        Face pool, e.g. ``["astronaut", "grace_hopper/mirror", "lfw:40"]``; default:
        astronaut and grace_hopper, each plain and mirrored.
    force : bool
        Rebuild even if ``out_dir`` already holds a complete cohort with these settings.
        Without it, an interrupted build resumes: subjects already finished with the
        same settings are kept.

    Returns
    -------
    Path
        ``out_dir/manifest.csv`` (accepted by :meth:`cdrscreen.study.Study.from_file`).
    """
    from joblib import Parallel, delayed

    from cdrscreen.core.progress import track

    root = Path(out_dir).resolve()
    if duration_s <= 0 or fps <= 0:
        raise CdrscreenError(f"duration_s and fps must be positive, got {duration_s} and {fps}")
    settings = _settings(n_subjects, seed, imbalance, duration_s, fps, size, faces)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    manifest = root / "manifest.csv"
    info_path = root / "cohort.json"
    if not force and manifest.exists() and info_path.exists():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("key") == key and all((root / v).exists() for v in info.get("videos", [])):
            return manifest
    if force and (root / "ground_truth").exists():
        for old in (root / "ground_truth").glob("*.json"):
            old.unlink()
    specs = draw_cohort(n_subjects, seed, imbalance, faces)
    faces = {(s.face, s.mirror, s.tint, s.face_height, s.centre): _prepare_face(s, size) for s in specs}
    (root / "videos").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jobs = (delayed(_job)(s, faces[(s.face, s.mirror, s.tint, s.face_height, s.centre)], root,
                          duration_s, fps, size, key) for s in specs)
    if n_jobs == 1:
        rows = [_job(s, faces[(s.face, s.mirror, s.tint, s.face_height, s.centre)], root, duration_s, fps,
                     size, key) for s in track(specs, description="rendering demo cohort")]
    else:
        rows = list(track(Parallel(n_jobs=n_jobs, return_as="generator")(jobs),
                          description="rendering demo cohort", total=len(specs)))
    wall = time.perf_counter() - t0
    subj = pd.DataFrame(rows)
    render_s = subj.pop("render_s")
    cpu_s = subj.pop("cpu_s")
    write_text(root / "ground_truth" / "subjects.csv", subj.to_csv(index=False, float_format="%.5g"))
    man = pd.DataFrame({
        "subject": [s.subject for s in specs], "session": "1",
        "video": [f"videos/{s.subject}.mp4" for s in specs],
        "transcript": [f"transcripts/{s.subject}.cha" for s in specs],
        "cdr": [s.cdr for s in specs], "age": [s.age for s in specs],
        "sex": [s.sex for s in specs], "mmse": [s.mmse for s in specs],
    })
    write_text(root / "README.txt", README.format(settings=json.dumps(
        {k: v for k, v in settings.items() if k != "class_effects"}, sort_keys=True)))
    write_json(info_path, {
        "synthetic": "SYNTHETIC demo cohort for pipeline checking only; not patient data",
        "key": key, "settings": settings, "videos": list(man.video),
        "class_counts": {str(c): int((man.cdr == c).sum()) for c in CLASSES},
    })
    n_rendered = int(subj.n_frames[render_s > 0].sum())
    # Timings vary between runs, so they live apart from the deterministic files.
    write_json(root / "build_time.json", {
        "wall_s": round(wall, 2), "n_jobs": n_jobs, "n_frames": int(subj.n_frames.sum()),
        "n_frames_rendered": n_rendered,
        "render_encode_s_per_frame": round(float(render_s.sum()) / max(n_rendered, 1), 5),
        "render_encode_cpu_s_per_frame": round(float(cpu_s.sum()) / max(n_rendered, 1), 5),
    })
    write_text(manifest, man.to_csv(index=False))
    return manifest
