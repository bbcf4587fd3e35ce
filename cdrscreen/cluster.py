"""Run per-recording extraction tasks (and evaluation tasks) on a Dask distributed cluster (``--scheduler``).

``cdrscreen extract ... --scheduler local:N`` starts a throw-away cluster of ``N`` worker
processes (one thread each) on 127.0.0.1; ``--scheduler tcp://HOST:PORT`` connects to a
running ``dask scheduler``. Either way the tasks are the ones the local path runs, one per
recording (all its feature groups, so visual groups share one face track), and each
worker writes its results into the same content-hashed cache. The feature table is
assembled on the client in the manifest's order, so it is identical to a single-process
run.

A worker that dies while running a task (killed, out of memory) is detected by the
scheduler, which reruns the task on another worker (up to the scheduler's
``distributed.scheduler.allowed-failures``, default 3). Exceptions raised inside a task are
retried ``retries`` times. Because each task's cache entries are written atomically and
keyed by content, a rerun never duplicates or tears a result.

``cdrscreen evaluate`` / ``ablate ... --scheduler`` use the same clients and
:func:`run_tasks` for their fold, label-permutation and ablation-variant tasks
(:mod:`cdrscreen.evaluation.engine`); those tasks read and write no files.

Dask is an optional dependency (the ``cluster`` extra) and is imported only here, lazily.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdrscreen.core.errors import CdrscreenError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

#: The accepted forms of ``--scheduler``, quoted in error messages.
FORMS = "local:N (N worker processes on this machine) or tcp://HOST:PORT (a running Dask scheduler)"

#: Seconds to wait for a ``tcp://`` scheduler (override with ``$CDRSCREEN_SCHEDULER_TIMEOUT``).
DEFAULT_TIMEOUT = 10.0

_TCP = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/\s\[\]]+):(?P<port>\d{1,5})/?$")


class SchedulerError(CdrscreenError):
    """A ``--scheduler`` value is malformed, or its cluster cannot be reached or used."""


@dataclass(frozen=True)
class SchedulerSpec:
    """A parsed ``--scheduler`` value.

    Attributes
    ----------
    kind : {"local", "tcp"}
        Start a local cluster, or connect to a running scheduler.
    n_workers : int or None
        Worker processes of a local cluster.
    address : str or None
        ``tcp://HOST:PORT`` of a running scheduler.
    """

    kind: str
    n_workers: int | None = None
    address: str | None = None

    def __str__(self) -> str:
        return f"local:{self.n_workers}" if self.kind == "local" else str(self.address)


def parse_scheduler(spec: str) -> SchedulerSpec:
    """Parse ``local:N`` or ``tcp://HOST:PORT``.

    Parameters
    ----------
    spec : str
        The ``--scheduler`` value.

    Returns
    -------
    SchedulerSpec

    Raises
    ------
    SchedulerError
        One line naming the value and the accepted forms.
    """
    text = str(spec).strip()
    if text.startswith("local:"):
        n = text.removeprefix("local:")
        if not n.isdigit() or int(n) < 1:
            raise SchedulerError(f"--scheduler {spec!r}: N in local:N must be a whole number >= 1; expected {FORMS}")
        return SchedulerSpec("local", n_workers=int(n))
    m = _TCP.match(text)
    if m:
        port = int(m["port"])
        if not 1 <= port <= 65535:
            raise SchedulerError(f"--scheduler {spec!r}: port {port} is out of range 1-65535")
        return SchedulerSpec("tcp", address=f"tcp://{m['host']}:{port}")
    raise SchedulerError(f"--scheduler {spec!r} is not understood; expected {FORMS}")


def require_dask(what: str = "extraction") -> None:
    """Raise a one-line :class:`MissingDependencyError` unless dask.distributed imports.

    ``what`` names the work that needed the cluster (``"extraction"``, ``"evaluation"``).
    """
    try:
        import distributed  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(f"{what} on a Dask cluster (--scheduler)", "cluster", err) from None


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return float(timeout)
    env = os.environ.get("CDRSCREEN_SCHEDULER_TIMEOUT")
    try:
        return float(env) if env else DEFAULT_TIMEOUT
    except ValueError:
        raise SchedulerError(f"$CDRSCREEN_SCHEDULER_TIMEOUT={env!r} is not a number of seconds") from None


@contextlib.contextmanager
def open_client(spec: str | SchedulerSpec, *, timeout: float | None = None) -> Iterator[Client]:
    """Yield a connected ``distributed.Client``; a local cluster is shut down afterwards.

    Parameters
    ----------
    spec : str or SchedulerSpec
        ``local:N`` or ``tcp://HOST:PORT``.
    timeout : float, optional
        Seconds to wait for a ``tcp://`` scheduler (default ``$CDRSCREEN_SCHEDULER_TIMEOUT``
        or 10).

    Raises
    ------
    SchedulerError
        If the scheduler cannot be reached within ``timeout`` (the message names it).
    """
    sched = parse_scheduler(spec) if isinstance(spec, str) else spec
    require_dask()
    from distributed import Client, LocalCluster

    if sched.kind == "local":
        cluster = LocalCluster(
            n_workers=sched.n_workers, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
        )
        try:
            with Client(cluster) as client:
                client.register_plugin(_leave_ctrl_c_to_the_client())
                yield client
        finally:
            cluster.close()
        return
    wait = _timeout(timeout)
    try:
        client = Client(sched.address, timeout=wait)
    except (OSError, TimeoutError) as err:
        why = " ".join(str(err).split()) or type(err).__name__
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {sched.address} within {wait:g} s ({why[:160]})"
        ) from None
    try:
        yield client
    finally:
        client.close()


def _leave_ctrl_c_to_the_client() -> Any:
    """Worker plugin for local clusters: workers ignore SIGINT.

    Ctrl-C in a terminal reaches the whole process group; without this, every worker
    process of a ``local:N`` cluster prints a KeyboardInterrupt traceback while the client
    is already shutting the cluster down cleanly.
    """
    import signal

    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreSigint(WorkerPlugin):
        idempotent = True
        name = "cdrscreen-ignore-sigint"

        def setup(self, worker: Any) -> None:
            with contextlib.suppress(ValueError):  # only possible in the main thread
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreSigint()


def _sees_probe(path: str) -> bool:
    return Path(path).is_file()


def wait_for_workers(client: Client, *, timeout: float | None = None) -> None:
    """Wait until the cluster has a worker.

    Raises
    ------
    SchedulerError
        If none joined within ``timeout`` seconds (default as in :func:`open_client`).
    """
    wait = _timeout(timeout)
    try:
        client.wait_for_workers(1, timeout=wait)
    except (TimeoutError, OSError):
        raise SchedulerError(
            f"the Dask scheduler at {client.scheduler.address} has no workers (none joined within {wait:g} s)"
        ) from None


def check_shared_folder(
    client: Client, folder: str | os.PathLike[str], *, timeout: float | None = None
) -> None:
    """Check that the cluster has workers and every worker sees ``folder`` as the same folder.

    The client writes a probe file into ``folder``; each worker must find it at the same
    path. Catches a cache folder that exists on the workers but is not the one shared
    with this machine.

    Parameters
    ----------
    client : distributed.Client
    folder : path-like
        The cache folder.
    timeout : float, optional
        Seconds to wait for a first worker (default as in :func:`open_client`).

    Raises
    ------
    SchedulerError
        No worker joined in time, or naming the folder and the first worker that cannot
        see it.
    """
    address = client.scheduler.address
    wait_for_workers(client, timeout=timeout)
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".cdrscreen-probe-{uuid.uuid4().hex}"
    probe.write_text("cdrscreen shared-folder probe\n")
    try:
        seen = client.run(_sees_probe, str(probe))
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    if not seen:
        raise SchedulerError(f"the Dask scheduler at {address} has no workers")
    blind = sorted(w for w, ok in seen.items() if not ok)
    if blind:
        raise SchedulerError(
            f"cache folder {root} is not visible to {len(blind)} of {len(seen)} Dask workers "
            f"(first: {blind[0]}); use a folder on a file system shared at the same path "
            "with every worker (--cache)"
        )


def run_tasks(
    client: Client,
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    *,
    labels: Sequence[str] | None = None,
    retries: int = 1,
    progress: bool = True,
    description: str = "extracting",
    on_lost: Callable[[str], Any] | None = None,
) -> list[Any]:
    """Run ``fn(*a)`` for every ``a`` in ``args`` on the cluster; results in input order.

    Each call is one task with a unique key (``cdrscreen-<description>-<i>-<token>``, so
    the same study submitted twice never shares stale results). Results are collected
    as they complete (with a progress bar) and returned in the order of ``args``.

    Parameters
    ----------
    client : distributed.Client
    fn : callable
        Module-level function importable on the workers.
    args : sequence of tuple
        Positional arguments of each task.
    labels : sequence of str, optional
        Names of the tasks for error messages (e.g. the media path of each recording).
    retries : int, default 1
        Reruns of a task whose function raised. A task whose *worker died* is rerun by
        the scheduler regardless (``distributed.scheduler.allowed-failures``).
    progress : bool, default True
        Show a progress bar on a terminal.
    description : str
        Progress-bar text.
    on_lost : callable, optional
        ``on_lost(reason)`` gives the result of a task whose workers died more often than
        the scheduler allows (``KilledWorker``); by default that raises.

    Returns
    -------
    list
        ``fn``'s return values, in the order of ``args``.

    Raises
    ------
    SchedulerError
        If a task's workers died more often than the scheduler allows (and no
        ``on_lost`` is given), or the scheduler went away; the message names the task.
    """
    from distributed import as_completed

    from cdrscreen.core.progress import track

    labels = list(labels) if labels is not None else [f"task {i}" for i in range(len(args))]
    token = uuid.uuid4().hex[:12]
    prefix = re.sub(r"[^A-Za-z0-9_]+", "_", description) or "task"
    futures = [
        client.submit(fn, *a, key=f"cdrscreen-{prefix}-{i}-{token}", pure=False, retries=retries)
        for i, a in enumerate(args)
    ]
    position = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    try:
        done = as_completed(futures, with_results=False)
        for fut in track(done, description=description, total=len(futures), disable=not progress):
            i = position[fut.key]
            results[i] = _result(fut, labels[i], client, on_lost)
    finally:
        client.cancel(futures)
    return results


def _result(fut: Any, label: str, client: Client, on_lost: Callable[[str], Any] | None) -> Any:
    """Return the future's value, or raise a one-line :class:`SchedulerError` for cluster failures."""
    from distributed import KilledWorker

    status = fut.status
    if status == "finished":
        return fut.result()
    if status == "cancelled":
        raise SchedulerError(
            f"{label}: the task was cancelled (lost contact with the Dask scheduler at "
            f"{client.scheduler.address}?)"
        )
    exc = fut.exception()
    if isinstance(exc, KilledWorker):
        last = getattr(getattr(exc, "last_worker", None), "address", None) or "?"
        times = getattr(exc, "allowed_failures", None)
        times = f"{times + 1} time{'s' if times else ''}" if isinstance(times, int) else "too often"
        why = (f"the Dask workers running it died {times} (last: {last}); "
               "out of memory? see the worker logs")
        if on_lost is not None:
            return on_lost(why)
        raise SchedulerError(f"{label}: {why}")
    return fut.result()  # re-raises the task's own exception with its traceback
