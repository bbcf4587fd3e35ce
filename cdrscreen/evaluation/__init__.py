"""Evaluation engine: protocols, subject-wise nested CV, honest statistics, ablation.

Main entry points::

    from cdrscreen.evaluation import evaluate, ablate, load_protocol
    result = evaluate("cdr_binary_loso", "features.parquet", "runs/r1")

See ``docs/evaluation.md`` (method), ``docs/protocols.md`` (protocol keys) and
``docs/run-folder.md`` (what a run writes).
"""

from __future__ import annotations

from cdrscreen.evaluation.protocol import DEFAULT_PROTOCOL, PROTOCOL_DIR, Protocol, load_protocol
from cdrscreen.evaluation.runner import RunResult, ablate, evaluate

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOL_DIR", "Protocol", "RunResult", "ablate", "evaluate", "load_protocol"]
