"""The exceptions jobqueue raises, and the exit code each one maps to.

    JobQueueError                 base; carries a one-line message for the operator
    ├── UsageError        (2)    bad flags or a refused command (missing --yes, --dev)
    ├── ConfigError       (2)    invalid configuration; one line per problem
    └── OperationalError  (1)    the world failed us
        └── RedisUnavailable (1) Redis cannot be reached (credentials never in the text)

The CLI is the only place that turns these into exit codes; roles and the engine raise them
and never call ``sys.exit`` themselves.
"""

from __future__ import annotations


class JobQueueError(Exception):
    """Base of every error the CLI reports as one line instead of a traceback."""

    exit_code = 1


class UsageError(JobQueueError):
    """The command was understood but refused, for example without its safety flags."""

    exit_code = 2


class ConfigError(JobQueueError):
    """The configuration is invalid; ``problems`` holds one message per bad key."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class OperationalError(JobQueueError):
    """Something outside the config failed: a file, a handler, a server."""

    exit_code = 1


class RedisUnavailable(OperationalError):
    """Redis did not answer; the message names the redacted address and the reason."""
