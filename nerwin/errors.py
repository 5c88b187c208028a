"""Errors a user can cause; the CLI prints each as one line and exits 2."""

from __future__ import annotations


class NerwinError(Exception):
    """Base of every user-facing error. ``str(err)`` is the whole message."""


class DataError(NerwinError):
    """Malformed input data: the message starts with ``FILE:LINE:``."""

    def __init__(self, path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(NerwinError):
    """A bad config key, value or type; the message names the key."""


class ModelError(NerwinError):
    """A model directory or checkpoint that is missing, unreadable or of another format
    version, or a model that training could not make (it diverged)."""


class OutputError(NerwinError):
    """A file nerwin writes (model, checkpoint, log, predictions) that cannot be written."""

    @classmethod
    def of(cls, path, err: OSError) -> OutputError:
        """The error of failing to write ``path`` because of ``err``."""
        return cls(f"{path}: cannot write ({err.strerror or err})")
