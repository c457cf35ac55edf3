"""jobqueue: a Redis-backed, at-least-once file-processing job queue."""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from jobqueue.config import Settings, load_settings
from jobqueue.errors import (
    ConfigError,
    JobQueueError,
    OperationalError,
    RedisUnavailable,
    UsageError,
)
from jobqueue.job import Job, new_job

try:
    __version__ = _version("jobqueue")
except _PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ConfigError",
    "Job",
    "JobQueueError",
    "OperationalError",
    "RedisUnavailable",
    "Settings",
    "UsageError",
    "__version__",
    "load_settings",
    "new_job",
]
