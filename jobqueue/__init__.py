"""jobqueue: a Redis-backed, at-least-once job queue (files, or any JSON payload).

The public names below are imported on first use (PEP 562), so that importing a submodule
costs only that submodule: the worker's fork server is started before pydantic, redis and
the CLI are imported (``jobqueue.launch``).
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from jobqueue.client import Client, Duplicate
    from jobqueue.config import Settings, load_settings
    from jobqueue.engine.records import JobRecord
    from jobqueue.errors import (
        ConfigError,
        JobQueueError,
        OperationalError,
        RedisUnavailable,
        UsageError,
    )
    from jobqueue.job import Job, new_job

    __version__: str

_EXPORTS = {
    "Client": "jobqueue.client",
    "Duplicate": "jobqueue.client",
    "JobRecord": "jobqueue.engine.records",
    "Settings": "jobqueue.config",
    "load_settings": "jobqueue.config",
    "ConfigError": "jobqueue.errors",
    "JobQueueError": "jobqueue.errors",
    "OperationalError": "jobqueue.errors",
    "RedisUnavailable": "jobqueue.errors",
    "UsageError": "jobqueue.errors",
    "Job": "jobqueue.job",
    "new_job": "jobqueue.job",
}

__all__ = [
    "Client",
    "ConfigError",
    "Duplicate",
    "Job",
    "JobQueueError",
    "JobRecord",
    "OperationalError",
    "RedisUnavailable",
    "Settings",
    "UsageError",
    "__version__",
    "load_settings",
    "new_job",
]


def __getattr__(name: str) -> _typing.Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("jobqueue")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+unknown"
    if name in _EXPORTS:
        return getattr(_importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'jobqueue' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
