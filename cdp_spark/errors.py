"""Typed errors: each says what was wrong, where, and what to do."""

from __future__ import annotations

from collections.abc import Iterable


class CdpError(Exception):
    """Base class of every error cdp-spark raises on purpose."""


class ConfigError(CdpError):
    """The configuration is invalid; the message names the key path."""


class MissingColumnsError(CdpError):
    def __init__(self, columns: Iterable[str], where: str = "input") -> None:
        self.columns = sorted(columns)
        super().__init__(f"{where} is missing required column(s): {', '.join(self.columns)}")


class StorageError(CdpError):
    """A table operation failed; nothing was committed."""


class ConvergenceError(CdpError):
    def __init__(self, what: str, max_rounds: int) -> None:
        self.max_rounds = max_rounds
        super().__init__(
            f"{what} did not converge within max_rounds={max_rounds}; "
            "raise the bound or inspect the input for a pathological structure"
        )


class QualityGateError(CdpError):
    """A critical data-quality expectation failed; the target table was left unchanged."""


class SecretMissingError(CdpError):
    """A secret that must come from the environment is not set."""
