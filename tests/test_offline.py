"""The offline guarantee: the demo pipeline runs with networking disabled, and nothing tries to connect.

The demo's expression-model training (its own code and default model settings, on a smaller
image set for 2 epochs), then ``cdrscreen demo`` with that model (cohort -> extract ->
evaluate -> reports, with worker processes), run in subprocesses whose every Python process,
workers included, loads a socket guard through a ``sitecustomize.py`` on ``PYTHONPATH``: a
connection, datagram or name lookup to anything but loopback or a Unix socket raises
``OSError`` and is logged with the code path that tried it. Where the kernel allows it
(``unshare -rn``), the runs also get their own network namespace with only a loopback
device, so a connection from native code (outside Python's ``socket``) fails too. The test
asserts both runs finished and the guard logged zero attempts.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

GUARD = r'''
"""Socket guard for tests: no network except loopback and Unix sockets (logs attempts)."""
import ipaddress
import os
import socket
import traceback

_LOG = os.environ["CDRSCREEN_NET_LOG"]
_real_connect, _real_connect_ex = socket.socket.connect, socket.socket.connect_ex
_real_sendto, _real_getaddrinfo = socket.socket.sendto, socket.getaddrinfo
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}

with open(_LOG + ".loaded", "a") as fh:
    fh.write(f"{os.getpid()}\n")


def _local(host):
    if host is None:
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _block(what, where):
    stack = "".join(traceback.format_stack(limit=12)[:-2]).replace("\n", " | ")
    with open(_LOG, "a") as fh:
        fh.write(f"{os.getpid()} {what} {where!r} :: {stack}\n")
    raise OSError(f"network access blocked by the offline test guard: {what} {where!r}")


def _check(sock, address, what):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _block(what, address)


def connect(self, address):
    _check(self, address, "connect")
    return _real_connect(self, address)


def connect_ex(self, address):
    _check(self, address, "connect_ex")
    return _real_connect_ex(self, address)


def sendto(self, data, *args):
    _check(self, args[-1], "sendto")
    return _real_sendto(self, data, *args)


def getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        _block("getaddrinfo", host)
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.getaddrinfo = getaddrinfo
'''


def _guarded_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "network.log"
    env = {**os.environ, "CDRSCREEN_NET_LOG": str(log), "CDRSCREEN_NO_PROGRESS": "1",
           "PYTHONPATH": os.pathsep.join([str(guard_dir), str(REPO), os.environ.get("PYTHONPATH", "")])}
    return env, log


def _netns_prefix() -> list[str]:
    """``unshare -rn`` (own network namespace, loopback up) when the kernel allows it, else nothing."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return []
    probe = subprocess.run([unshare, "-rn", ip, "link", "set", "lo", "up"], capture_output=True)
    if probe.returncode != 0:
        return []
    return [unshare, "-rn", "sh", "-c", f'"{ip}" link set lo up && exec "$@"', "netns"]


def _blocked(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_guard_blocks_and_logs_a_connection(tmp_path: Path) -> None:
    env, log = _guarded_env(tmp_path)
    code = ("import socket\n"
            "try:\n    socket.create_connection(('198.51.100.7', 443), timeout=2)\n"
            "except OSError as e:\n    print('blocked' if 'offline test guard' in str(e) else e)\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "c = socket.create_connection(s.getsockname(), timeout=2); c.close(); print('loopback ok')\n")
    proc = subprocess.run([*_netns_prefix(), sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.splitlines() == ["blocked", "loopback ok"], proc.stdout + proc.stderr
    lines = _blocked(log)
    assert len(lines) == 1 and "198.51.100.7" in lines[0] and "connect" in lines[0]


def test_no_network_library_is_imported_by_the_packages() -> None:
    banned = {"urllib.request", "urllib3", "requests", "httpx", "aiohttp", "http.client",
              "huggingface_hub", "torch.hub", "ftplib"}
    offenders = []
    for pkg in ("cdrscreen", "fer_backbone"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                offenders += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n in banned]
    assert not offenders, offenders


#: The demo expression model trained in the guarded run: the demo's own training code and
#: default model settings, on a smaller image set and for fewer epochs (the full set and 16
#: epochs cost minutes and open no more connections than this).
TRAIN_SMALL = (
    "import dataclasses, sys\n"
    "from cdrscreen.demo.expression_model import ExpressionModelConfig, train_expression_model\n"
    "from cdrscreen.demo.expression_set import ExpressionSetConfig\n"
    "s = train_expression_model(sys.argv[1], n_jobs=2,\n"
    "    set_config=dataclasses.replace(ExpressionSetConfig(), n_train_per_class=8, n_test_per_class=2,\n"
    "                                   variants_per_photo=1),\n"
    "    config=dataclasses.replace(ExpressionModelConfig(), epochs=2, relabel_epoch=1))\n"
    "print(s['onnx'])\n"
)


@pytest.mark.slow
def test_demo_pipeline_runs_offline(tmp_path: Path) -> None:
    env, log = _guarded_env(tmp_path)
    env["CDRSCREEN_CACHE"] = str(tmp_path / "user-cache")
    out = tmp_path / "demo"
    # stage 1 of the demo (its expression model), then every other stage with that model
    train = subprocess.run([*_netns_prefix(), sys.executable, "-c", TRAIN_SMALL, str(out / "expression_model")],
                           env=env, capture_output=True, text=True, timeout=840, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    onnx = Path(train.stdout.split()[-1])
    assert onnx.is_file() and onnx.parent == out / "expression_model"
    assert _blocked(log) == [], _blocked(log)
    proc = subprocess.run(
        [*_netns_prefix(), sys.executable, "-m", "cdrscreen", "demo", "--out", str(out),
         "--subjects", "6", "--jobs", "2", "--no-ablation", "--embedder", str(onnx)],
        env=env, capture_output=True, text=True, timeout=840, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "demo finished" in proc.stderr
    assert (out / "features.parquet").is_file() and (out / "run" / "metrics.json").is_file()
    assert any((out / "run" / "reports").rglob("*.html"))
    loaded = set((tmp_path / "network.log.loaded").read_text().split())
    assert len(loaded) >= 2, "the guard must be active in the worker processes too"
    assert _blocked(log) == [], _blocked(log)
