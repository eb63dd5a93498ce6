"""Typed errors raised by the library. Only the command-line layer turns them into exit codes."""

from __future__ import annotations

from pathlib import Path


class StylecastError(Exception):
    """Base class of every error the library raises on purpose."""

    exit_code = 1


class UsageError(StylecastError):
    """Bad input from the user: a missing or unreadable file, a bad value, an existing output."""

    exit_code = 2


class InputFileError(UsageError):
    """An input file is missing, unreadable, or not what it should be."""


class OutputExistsError(UsageError):
    """The output exists and ``--overwrite`` was not given, or it would overwrite the input."""


class ModelFolderError(UsageError):
    """A model folder, manifest, graph or style file fails validation."""


class CheckpointError(UsageError):
    """A training checkpoint is missing, corrupt, or from something else."""


class ParityError(UsageError):
    """An exported graph disagrees with PyTorch by more than the allowed tolerance."""


class PartialFailureError(StylecastError):
    """Some inputs of a batch (a folder of photos) failed, each reported as it happened; the
    others were done. ``done``: the outputs written; ``failed``: (input, why) pairs."""

    exit_code = 4

    def __init__(self, message: str, *, done: list[Path], failed: list[tuple[Path, str]]) -> None:
        super().__init__(message)
        self.done = done
        self.failed = failed


class BackendUnavailableError(StylecastError):
    """Missing hardware or backend: a camera, CUDA, a virtual camera, an optional package."""

    exit_code = 3
