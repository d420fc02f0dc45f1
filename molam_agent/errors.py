"""Exceptions and exit codes of the agent."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ROLLBACK_FAILED = 2
EXIT_USAGE = 64


class AgentError(Exception):
    """Base class of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """The configuration file or environment is unusable (exit 64)."""


class UsageError(AgentError):
    """The command line is unusable (exit 64)."""


class VerificationError(AgentError):
    """A release failed its checksum, signature, version or archive checks."""


class DownloadError(AgentError):
    """The release package could not be fetched."""


class UnsafeArchiveError(VerificationError):
    """A release archive tries to escape its directory or expands beyond the limits."""


class SmokeTestError(AgentError):
    """The smoke test did not report the plugin healthy."""


class MigrationError(AgentError):
    """A release migration failed."""


class RollbackError(AgentError):
    """Restoring the previous version failed: the worst outcome, exit 2."""


class ControlPlaneError(AgentError):
    """The control plane could not be reached or answered with an error."""

    def __init__(self, message: str, status: int | None = None, body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        """Network errors, throttling and server errors are worth retrying; 4xx are not."""
        return self.status is None or self.status in (408, 425, 429) or self.status >= 500


class LockedError(AgentError):
    """Another agent run holds the state directory lock."""
