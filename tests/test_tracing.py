"""Tracing: enqueue, claim and process spans are children of the job's own trace context."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobqueue.config import TracingConfig
from jobqueue.engine import Engine
from jobqueue.observe import tracing
from jobqueue.roles.producer import run_producer
from tests.conftest import make_settings
from tests.helpers import local_worker, settled, wait_for


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(tracing, "_process_provider", provider)
    return spans


def test_disabled_tracer_is_a_no_op() -> None:
    tracer = tracing.Tracer(TracingConfig())
    assert not tracer.enabled
    with tracer.span("process", "0" * 32, "0" * 16):
        pass


def test_a_jobs_life_is_one_trace(
    redis_url: str, tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    (tmp_path / "a.pdf").write_bytes(b"x")
    settings = make_settings(
        redis_url,
        producer={"scan_dir": str(tmp_path)},
        worker={"handler": {"type": "noop"}, "claim_timeout": "200ms"},
        observability={"tracing": {"enabled": True}},
    )
    engine = Engine.from_settings(settings)
    run_producer(settings, engine, threading.Event())
    with local_worker(settings):  # in this process, so its spans reach the test's exporter
        wait_for(lambda: settled(settings, engine, 1))
    (raw,) = engine.client.lrange(engine.keys.queue("high").completed, 0, -1)
    job = engine.decode("high", raw).job
    assert job is not None
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"enqueue", "claim", "process"}
    for span in spans.values():
        assert span.parent is not None and span.parent.is_remote
        assert format(span.context.trace_id, "032x") == job.trace_id
        assert format(span.parent.span_id, "016x") == job.span_id
    assert spans["process"].attributes["jobqueue.job_id"] == job.id
