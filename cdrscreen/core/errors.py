"""Error types whose message is one clear line naming the file and the problem.

Every error a user can cause (bad manifest, unreadable video, missing model path, a
typo in a protocol file) is raised as a :class:`CdrscreenError`. The CLI prints
``str(err)`` on one line and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations

from os import PathLike


def printable(text: str) -> str:
    r"""``text`` with undecodable file-name bytes shown as ``\xNN`` (always valid UTF-8).

    A path whose bytes are not UTF-8 reaches Python as a string with surrogate escapes,
    which cannot be printed or written to UTF-8 files; error messages name such a file by
    its bytes instead.
    """
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class CdrscreenError(Exception):
    """Base class of all user-facing errors; ``str(err)`` is a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(printable(" ".join(str(message).split())))


class InputError(CdrscreenError):
    """A specific input file is missing, unreadable or has bad content.

    Parameters
    ----------
    path : path-like or str
        The offending file.
    problem : str
        What is wrong with it, in plain words.
    """

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ManifestError(CdrscreenError):
    """One or more problems in a study manifest (all listed, one per line)."""

    def __init__(self, path: str | PathLike[str], problems: list[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        # One line per problem: each names the manifest, the row and the field.
        Exception.__init__(self, printable("\n".join(f"{self.path}: {p}" for p in self.problems)))


class ConfigError(CdrscreenError):
    """A protocol or configuration file is invalid (unknown key, bad value)."""


class MissingDependencyError(CdrscreenError):
    """An optional part of the package is needed but its extra is not installed."""

    def __init__(self, feature: str, extra: str, cause: BaseException | None = None) -> None:
        why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        super().__init__(
            f"{feature} needs the '{extra}' extra: pip install 'cdrscreen[{extra}]'{why}"
        )
