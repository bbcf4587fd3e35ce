"""Extraction on a Dask cluster: same table and cache as one process, also after a worker is killed.

Everything is real: a ``distributed.LocalCluster`` of worker processes on 127.0.0.1,
MediaPipe and openSMILE on the demo cohort's videos. The kill is made deterministic by a
worker plugin that stops (SIGSTOP) the worker process the moment one chosen task starts
executing for the first time; the test then SIGKILLs that process while the other worker
is busy with the rest of the study.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("distributed")

from distributed import Client, LocalCluster  # noqa: E402
from distributed.diagnostics.plugin import WorkerPlugin  # noqa: E402

from cdrscreen.cli import main  # noqa: E402
from cdrscreen.cluster import SchedulerError, parse_scheduler  # noqa: E402
from cdrscreen.core.errors import CdrscreenError  # noqa: E402
from cdrscreen.extract import extract_study  # noqa: E402

FEATURES = "pupil,headpose,egemaps"
GROUPS = ("pupil", "headpose", "egemaps", "facetrack")
NOISE = ("INFO: Created TensorFlow Lite", "W0000 ", "I0000 ", "WARNING: All log messages before absl")


@pytest.fixture(scope="module")
def single(demo_cohort_small: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """The single-process reference table and its cache folder."""
    cache = tmp_path_factory.mktemp("single-cache")
    return extract_study(demo_cohort_small, FEATURES, None, cache_dir=cache, progress=False), cache


def _entries(cache: Path) -> dict[str, list[str]]:
    """Cache entry names per group (sorted; duplicates would show as repeats)."""
    return {g: sorted(p.name for p in (cache / g).glob("*.parquet")) for g in GROUPS}


class StopFirstAttempt(WorkerPlugin):
    """Stop this worker process when the task matching ``pattern`` first starts executing.

    The first attempt writes ``first`` (the worker's pid) into ``flags`` and SIGSTOPs its
    own process, so the task is certainly in flight when the test kills it; every later
    attempt writes ``attempt-<pid>`` and runs normally.
    """

    idempotent = True

    def __init__(self, pattern: str, flags: str) -> None:
        self.pattern = pattern
        self.flags = flags

    def transition(self, key, start, finish, **kwargs) -> None:  # noqa: ANN001
        if finish != "executing" or not re.match(self.pattern, str(key)):
            return
        flags, pid = Path(self.flags), os.getpid()
        first = flags / "first"
        if first.exists():
            (flags / f"attempt-{pid}").write_text(str(pid))
            return
        tmp = flags / "first.tmp"
        tmp.write_text(str(pid))
        tmp.rename(first)  # atomic: the test reads a complete pid
        os.kill(pid, signal.SIGSTOP)


def _run_and_kill_one_worker(manifest: Path, cache: Path, flags: Path) -> tuple[pd.DataFrame | Exception, int, set[int]]:
    """Extract on a 2-worker LocalCluster; SIGKILL the worker that first runs recording #2.

    Returns the table (or the exception extract_study raised), the killed pid and the
    workers' pids at the start.
    """
    flags.mkdir()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2
        # task keys are cdrscreen-extracting-<manifest position>-<token>; stop recording #2
        client.register_plugin(StopFirstAttempt(r"^cdrscreen-extracting-2-", str(flags)))
        killed: list[int] = []

        def killer() -> None:
            first = flags / "first"
            for _ in range(6000):  # up to 10 min; the run below fails first if it never comes
                if first.exists():
                    pid = int(first.read_text())
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
                time.sleep(0.1)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        try:
            result: pd.DataFrame | Exception = extract_study(
                manifest, FEATURES, None, cache_dir=cache, progress=False,
                scheduler=cluster.scheduler_address)
        except CdrscreenError as err:
            result = err
        thread.join(timeout=5)
    assert len(killed) == 1 and killed[0] in pids, "the chosen task never started on a worker"
    return result, killed[0], pids


@pytest.mark.slow
def test_worker_killed_mid_task_gives_the_single_process_table_and_cache(
    demo_cohort_small: Path, single: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    ref, ref_cache = single
    flags, cache = tmp_path / "flags", tmp_path / "cache"
    df, killed, _ = _run_and_kill_one_worker(demo_cohort_small, cache, flags)
    assert isinstance(df, pd.DataFrame), df
    reruns = [int(p.name.removeprefix("attempt-")) for p in flags.glob("attempt-*")]
    assert len(reruns) == 1 and reruns[0] != killed, "the killed task was not rerun elsewhere"
    assert df.index.is_unique and len(df) == len(ref)
    pd.testing.assert_frame_equal(df, ref)
    assert _entries(cache) == _entries(ref_cache)  # one entry per (recording, group), same keys
    assert all(len(v) == len(ref) for g, v in _entries(cache).items() if g != "facetrack")
    assert not list(cache.rglob("*.tmp"))


@pytest.mark.slow
def test_a_task_whose_workers_keep_dying_is_one_failed_line_the_rest_cached(
    demo_cohort_small: Path, single: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    import dask

    ref, ref_cache = single
    flags, cache = tmp_path / "flags", tmp_path / "cache"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # no second chance
        err, _, _ = _run_and_kill_one_worker(demo_cohort_small, cache, flags)
    assert isinstance(err, CdrscreenError)
    lines = str(err).splitlines()
    target = str(ref.index.get_level_values("file")[2])
    lost = [ln for ln in lines if ln.startswith(target + ":")]
    assert len(lost) == 1 and "died 1 time (last: tcp://127.0.0.1:" in lost[0], lines
    assert not list(flags.glob("attempt-*")), "the task was rerun despite allowed-failures=0"
    # the recordings that did not fail are cached, all groups (a task the killed worker had
    # finished but not yet reported fails too, but its entries are there)
    files = [str(f) for f in ref.index.get_level_values("file")]
    n_failed = sum(any(ln.startswith(f + ":") for f in files) for ln in lines)
    assert 1 <= n_failed < len(ref)
    got, want = _entries(cache), _entries(ref_cache)
    for group in ("pupil", "headpose", "egemaps"):
        assert set(got[group]) <= set(want[group]) and len(got[group]) >= len(ref) - n_failed
    # and a rerun (here in one process) completes the table from the cache
    again = extract_study(demo_cohort_small, FEATURES, None, cache_dir=cache, progress=False)
    pd.testing.assert_frame_equal(again, ref)
    assert again.attrs["extract"]["cached"] >= 3 * (len(ref) - n_failed)


@pytest.mark.slow
def test_cli_local_cluster_end_to_end(
    demo_cohort_small: Path, single: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    ref, _ = single
    out = tmp_path / "f.parquet"
    cmd = [sys.executable, "-m", "cdrscreen", "extract", str(demo_cohort_small), "--features", FEATURES,
           "--out", str(out), "--cache", str(tmp_path / "cache"), "--scheduler", "local:2", "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "CDRSCREEN_NATIVE_LOGS": ""})
    assert run.returncode == 0, run.stderr
    assert f"{len(ref)} recordings" in run.stderr
    assert not [ln for ln in run.stderr.splitlines() if ln.startswith(NOISE)], run.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out), ref)
    # the workers' signals reach signals/ beside the table (through the shared cache)
    assert len(list((tmp_path / "signals").rglob("*.frames.parquet"))) == 2 * len(ref)  # pupil, headpose


@pytest.mark.parametrize("value", ["local:0", "local:two", "local:", "tcp://host", "tcp://h:99999",
                                   "http://h:8786", "dask", ""])
def test_bad_scheduler_value_is_one_line_exit_2(
    value: str, demo_cohort_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["extract", str(demo_cohort_small), "--out", str(tmp_path / "f.parquet"),
                 "--cache", str(tmp_path / "c"), "--scheduler", value, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: --scheduler") and repr(value) in err[0]
    assert not (tmp_path / "f.parquet").exists() and not (tmp_path / "c").exists()


def test_parse_scheduler_accepts_the_two_forms() -> None:
    assert parse_scheduler("local:3").n_workers == 3
    assert parse_scheduler("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    assert str(parse_scheduler("tcp://[::1]:8786/")) == "tcp://[::1]:8786"


def test_unreachable_scheduler_names_the_address(
    demo_cohort_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    monkeypatch.setenv("CDRSCREEN_SCHEDULER_TIMEOUT", "1")
    with pytest.raises(SchedulerError, match=re.escape(f"cannot reach the Dask scheduler at {address} within 1 s")):
        extract_study(demo_cohort_small, "pupil", None, cache_dir=tmp_path / "c", progress=False,
                      scheduler=address)
    code = main(["extract", str(demo_cohort_small), "--features", "pupil", "--out", str(tmp_path / "f.parquet"),
                 "--cache", str(tmp_path / "c"), "--scheduler", address, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and address in err[0], err


def test_scheduler_without_workers_is_one_clear_line(
    demo_cohort_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDRSCREEN_SCHEDULER_TIMEOUT", "1")
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        with pytest.raises(SchedulerError, match=re.escape(f"scheduler at {address} has no workers")):
            extract_study(demo_cohort_small, "pupil", None, cache_dir=tmp_path / "c", progress=False,
                          scheduler=address)


def test_jobs_and_scheduler_exclude_each_other(demo_cohort_small: Path, tmp_path: Path) -> None:
    with pytest.raises(CdrscreenError, match="scheduler local:N"):
        extract_study(demo_cohort_small, "pupil", None, cache_dir=tmp_path, n_jobs=2, scheduler="local:2")


def test_without_the_cluster_extra_the_error_says_what_to_install(
    demo_cohort_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask.distributed were not installed
    with pytest.raises(CdrscreenError, match=re.escape("pip install 'cdrscreen[cluster]'")):
        extract_study(demo_cohort_small, "pupil", None, cache_dir=tmp_path, scheduler="local:2")


def test_info_lists_the_cluster_part() -> None:
    from cdrscreen.cli.info import PARTS, _version

    extra, mods = PARTS["extraction and evaluation on a Dask cluster (--scheduler)"]
    assert extra == "cluster" and set(mods) == {"dask", "distributed"}
    assert all(_version(m)[0] is not None for m in mods)


def _sigint_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_local_workers_leave_ctrl_c_to_the_client() -> None:
    from cdrscreen.cluster import open_client

    # a suite started in the background (nohup, `cmd &`) inherits an ignored SIGINT: install
    # Python's own handler first, so the test sees what the cluster does to it
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with open_client("local:1") as client:
            assert list(client.run(_sigint_ignored).values()) == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # this process still handles Ctrl-C
    finally:
        signal.signal(signal.SIGINT, previous)
