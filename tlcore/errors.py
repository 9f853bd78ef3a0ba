"""One exception family for everything `tlcore` refuses.

Every message says what was received, what was expected and how to fix it, so
that the CLI can print it as one line and a page can show it in ``st.error``
without a traceback.

``TLCoreError(message, received=..., fix=...)`` is the base; its kinds say what
kind of thing was wrong: ``ConfigError`` (a spec or setting), ``DatasetError``,
``ImageDecodeError``, ``PathNotAllowedError`` (outside the data roots),
``AugmentationError``, ``WorkspaceError`` (disk, permissions), ``StorageUnavailable`` (a
study's database stopped answering), ``NotFoundError``, ``UnsafeArchiveError``, ``TrainingDiverged`` (a run whose loss went non-finite or
whose accuracy stayed at chance; it carries ``reason`` and ``history``). Each also derives from the matching built-in exception
(``ValueError``, ``OSError``, ``KeyError``, ...). ``tlcore.cli.main`` turns any of
them into ``error: ...`` and exit status 2; ``tlui.common.show_error`` into an error
box.

Example:

>>> raise DatasetError(
...     "The dataset folder has no class sub-folders.",
...     received="/data/photos",
...     fix="Put each class's images in a sub-folder named after the class.",
... )
"""

from __future__ import annotations

__all__ = [
    "TLCoreError",
    "ConfigError",
    "DatasetError",
    "ImageDecodeError",
    "PathNotAllowedError",
    "AugmentationError",
    "WorkspaceError",
    "StorageUnavailable",
    "NotFoundError",
    "UnsafeArchiveError",
    "EscapingEntryError",
    "TrainingDiverged",
]


class TLCoreError(Exception):
    """Base class: a user-facing problem with a clear way out.

    Args:
        message: what went wrong, one sentence.
        received: the offending value, shown as ``Received: ...``.
        fix: what the user should do about it.
    """

    def __init__(self, message: str, *, received: object = None, fix: str | None = None):
        self.message = message
        self.received = received
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        message = self.message.rstrip()
        if (self.received is not None or self.fix) and not _ends_sentence(message):
            message += "."  # "Connection refused Received: ..." read as one run-on sentence
        parts = [message]
        if self.received is not None:
            parts.append(f"Received: {self.received!s}.")
        if self.fix:
            parts.append(self.fix.rstrip())
        return " ".join(parts)


# What may end a message already, before "Received: ..." or the fix follows: a sentence's end, or a
# colon (the value follows). Closing brackets and quotes after it are looked through: "(see the log.)"
_SENTENCE_ENDS = (".", "!", "?", ":", "\u2026")
_CLOSERS = ")]}\"'\u2019\u201d"


def _ends_sentence(message: str) -> bool:
    """Whether ``message`` ends a sentence (or with a colon), so no full stop is to be added after it."""
    return not message or message.rstrip(_CLOSERS).endswith(_SENTENCE_ENDS)


class ConfigError(TLCoreError, ValueError):
    """A spec or setting has a bad value."""


class DatasetError(TLCoreError, ValueError):
    """A dataset cannot be used as given."""


class ImageDecodeError(TLCoreError, ValueError):
    """An image file cannot be decoded."""


class PathNotAllowedError(TLCoreError, PermissionError):
    """A path lies outside the configured data roots."""


class AugmentationError(TLCoreError, ValueError):
    """An augmentation pipeline spec is invalid."""


class WorkspaceError(TLCoreError, OSError):
    """The workspace cannot be read or written."""


class StorageUnavailable(TLCoreError, ConnectionError):
    """A study's storage (its database) stopped answering while a worker used it."""


class NotFoundError(TLCoreError, KeyError):
    """A named object (dataset, pipeline, model, study) does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self._render()


class UnsafeArchiveError(TLCoreError, ValueError):
    """An uploaded archive is unsafe or too large to extract."""


class EscapingEntryError(UnsafeArchiveError):
    """An archive entry whose path leaves the target folder (absolute, or with ``..``): a crafted
    archive ("zip slip"). A reader that extracts nothing says so in its own terms."""


class TrainingDiverged(TLCoreError, ArithmeticError):
    """A run stopped because it diverged: its loss is not finite, or it learned nothing.

    Args:
        reason: one sentence, e.g. "validation accuracy 0.09 after epoch 1 is at chance (0.10)".
        history: the per-epoch records up to the stop.
    """

    def __init__(self, reason: str, *, history: list | None = None):
        self.reason = reason
        self.history = list(history or [])
        super().__init__(f"Training diverged: {reason}.",
                         fix="Lower the learning rate (or its upper bound in a search), freeze more blocks, "
                             "or add a learning-rate warm-up.")
