"""Optional OpenTelemetry tracing (the ``tracing`` extra, ``observability.tracing.enabled``).

Every job carries a W3C trace context (``trace_id``, ``span_id``) from the moment it is
created. The enqueue, claim and process spans are children of that remote parent, so one
job's life shows as one trace however many processes and retries it crosses. When tracing is
off (the default) or the extra is not installed, :class:`Tracer` is a no-op whose ``span``
costs one attribute check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobqueue.config import TracingConfig
from jobqueue.errors import ConfigError

SERVICE_NAME = "jobqueue"
_process_provider: Any = None


class Tracer:
    """Spans per job; ``provider`` is injectable (tests pass one with an in-memory exporter)."""

    def __init__(self, cfg: TracingConfig, provider: Any = None) -> None:
        self.enabled = cfg.enabled
        self._tracer: Any = None
        if self.enabled:
            self._tracer = _otel_tracer(cfg, provider)

    @contextmanager
    def span(self, name: str, trace_id: str, span_id: str, **attributes: Any) -> Iterator[None]:
        """A span named ``name`` under the job's context; records an exception that escapes."""
        if self._tracer is None:
            yield
            return
        from opentelemetry import trace  # noqa: PLC0415 - optional extra

        kind = trace.SpanKind.PRODUCER if name == "enqueue" else trace.SpanKind.CONSUMER
        parent = _remote_parent(trace_id, span_id)
        with self._tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=attributes
        ):
            yield


def _otel_tracer(cfg: TracingConfig, provider: Any) -> Any:
    try:
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
        from opentelemetry.sdk.trace.sampling import (  # noqa: PLC0415
            ParentBasedTraceIdRatio,
        )
    except ImportError as exc:
        raise ConfigError(
            [
                "observability.tracing.enabled: needs the tracing extra "
                "(pip install 'jobqueue[tracing]')"
            ]
        ) from exc
    global _process_provider  # noqa: PLW0603 - one provider (and exporter) per process
    if provider is None and _process_provider is not None:
        provider = _process_provider
    if provider is None:
        provider = _process_provider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE_NAME}),
            sampler=ParentBasedTraceIdRatio(cfg.sample_ratio),
        )
        if cfg.endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(cfg.endpoint)))
    return provider.get_tracer("jobqueue")


def _remote_parent(trace_id: str, span_id: str) -> Any:
    """The job's own context as a remote parent; None (a new trace) when it has none."""
    from opentelemetry import trace  # noqa: PLC0415

    try:
        context = trace.SpanContext(
            trace_id=int(trace_id, 16),
            span_id=int(span_id, 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    except ValueError:
        return None
    if not context.is_valid:
        return None
    return trace.set_span_in_context(trace.NonRecordingSpan(context))
