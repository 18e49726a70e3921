"""OpenTelemetry traces across the queue, with the optional ``otel`` extra.

A job's trace starts where it is submitted (``submit_job``, or the HTTP request that submits
it) and follows the message: the W3C trace context (``traceparent``, ``tracestate``) travels in
the AMQP message headers, and the worker's ``process_job`` span is a child of the submitter's
span, on every attempt; retries and the result publish get spans of their own.

Tracing costs nothing unless it is on: without opentelemetry installed, or with no tracer
provider set (the worker and the API set one only when the ``OTEL_*`` variables ask for an
exporter, see ``configure``), every helper returns a shared no-op at once and no header is
added. A program that embeds the SDK and sets its own tracer provider gets the spans too.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Span, SpanKind, StatusCode
except ImportError:  # the otel extra is not installed: tracing stays off
    OTEL_INSTALLED = False
else:
    OTEL_INSTALLED = True

log = logging.getLogger(__name__)

TRACER_NAME = "itl_controlplane_sdk"
OTEL_MISSING = (
    "OTEL_* variables ask for traces but OpenTelemetry is not installed: "
    "pip install 'itl-controlplane-workers[otel]'"
)
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_OFF: AbstractContextManager[Any] = contextlib.nullcontext(None)
_MISSING = object()
_cached: tuple[object, Any] | None = None


def _tracer() -> Any:
    """The SDK's tracer when a real tracer provider is set, else None (tracing off)."""
    global _cached
    if not OTEL_INSTALLED:
        return None
    # The hot path of every job when tracing is off: get_tracer_provider() reads the
    # environment on each call (several µs), while the attribute it returns is None until a
    # provider is set. Read the attribute; ask the function only once one is there.
    if getattr(trace, "_TRACER_PROVIDER", _MISSING) is None:
        return None
    provider = trace.get_tracer_provider()
    if _cached is not None and _cached[0] is provider:
        return _cached[1]
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    tracer = provider.get_tracer(TRACER_NAME)
    _cached = (provider, tracer)
    return tracer


def enabled() -> bool:
    return _tracer() is not None


def span(
    name: str,
    attributes: Mapping[str, str | int] | None = None,
    *,
    kind: str = "INTERNAL",
    headers: Mapping[str, Any] | None = None,
) -> AbstractContextManager[Any]:
    """A span (current while the block runs), child of the current one or of ``headers``.

    ``headers`` are a received message's headers: the span continues the trace they carry.
    Yields the span, or None when tracing is off.
    """
    tracer = _tracer()
    if tracer is None:
        return _OFF
    return _started(tracer, name, attributes or {}, kind, headers)


@contextlib.contextmanager
def _started(
    tracer: Any,
    name: str,
    attributes: Mapping[str, str | int],
    kind: str,
    headers: Mapping[str, Any] | None,
) -> Iterator[Span]:
    parent = None
    if headers is not None:
        parent = propagate.extract({k: _text(v) for k, v in headers.items()})
    with tracer.start_as_current_span(
        name, context=parent, kind=SpanKind[kind], attributes=dict(attributes)
    ) as current:
        yield current


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def inject(headers: dict[str, Any]) -> dict[str, Any]:
    """Adds the current trace context to outgoing message ``headers`` (no-op when off)."""
    if _tracer() is not None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers.update(carrier)
    return headers


def set_attributes(current: Any, **attributes: str | int) -> None:
    """Sets attributes on a span from ``span`` (None when tracing is off)."""
    if current is not None:
        current.set_attributes(attributes)


def annotate_current(**attributes: str | int) -> None:
    """Sets attributes on whatever span is current (the HTTP request's, in the API)."""
    if _tracer() is not None:
        trace.get_current_span().set_attributes(attributes)


def instrument_fastapi(app: Any) -> None:
    """Server spans for every request of a FastAPI app, when tracing is on.

    Submitting a job inside a request makes ``submit_job`` (and so the worker's spans) a
    child of the request's span: the HTTP call and the job it started share one trace.
    """
    if _tracer() is None:
        return
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        log.warning("no HTTP spans: opentelemetry-instrumentation-fastapi is not installed")
        return
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,healthz,livez,readyz,metrics")


def mark_error(current: Any, description: str) -> None:
    if current is not None:
        current.set_status(StatusCode.ERROR, description)


def current_trace_id() -> str | None:
    """The current trace's id as 32 hex digits, for log lines; None outside a trace."""
    if not OTEL_INSTALLED:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def requested() -> bool:
    """Whether the standard variables ask for traces (an exporter or an OTLP endpoint)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure(service_name: str) -> bool:
    """Sets the process's tracer provider from the ``OTEL_*`` variables; True when on.

    On when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an OTLP
    endpoint is set; ``OTEL_SDK_DISABLED=true`` wins. ``otlp`` speaks http/protobuf, or gRPC
    with ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``; endpoint, headers, sampler
    (``OTEL_TRACES_SAMPLER``), batching (``OTEL_BSP_*``) and resource (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``) are read by OpenTelemetry itself. Raises ValueError naming
    the problem for an unknown exporter or a missing package.
    """
    if not requested():
        return False
    if not OTEL_INSTALLED:
        raise ValueError(OTEL_MISSING)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    exporters = [_exporter(name.strip()) for name in names.split(",") if name.strip()]
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(named))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing on: exporting spans with %s", names)
    return True


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER: unsupported exporter {name!r} (otlp, console)")
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    transport = "grpc" if protocol.strip().lower() == "grpc" else "http"
    try:
        module = importlib.import_module(
            f"opentelemetry.exporter.otlp.proto.{transport}.trace_exporter"
        )
    except ImportError:
        package = f"opentelemetry-exporter-otlp-proto-{transport}"
        raise ValueError(f"OTLP over {transport} needs the package {package}") from None
    return module.OTLPSpanExporter()
