"""Admin commands as data: each returns plain values; the CLI renders them."""

from __future__ import annotations

from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector, Stats


def open_engine(settings: Settings) -> Engine:
    """An engine whose Redis answered a PING, or RedisUnavailable with one clear line."""
    engine = Engine.from_settings(settings)
    engine.ping()
    return engine


def queue_labels(settings: Settings) -> dict[str, str]:
    """Priority -> queue name, in configured priority order."""
    return {p: settings.worker.queue_of(p) for p in settings.worker.priorities}


def stats(settings: Settings) -> Stats:
    engine = open_engine(settings)
    try:
        return Inspector(engine).stats(queue_labels(settings))
    finally:
        engine.close()
