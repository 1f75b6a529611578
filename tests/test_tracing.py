"""OpenTelemetry (the optional extra): one Identify through a real registry
and embedder makes one trace, registry -> embedder -> store, whose spans
carry the call's request id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from registry_helpers import server_settings

from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from server.main import RegistryServer, create_server

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
export = pytest.importorskip("opentelemetry.sdk.trace.export")

pytest_plugins = ["registry_fixtures"]

LFW = Path(__file__).parent / "data" / "lfw"


@pytest.fixture(scope="module")
def spans() -> Iterator[object]:
    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.shutdown()


@pytest.fixture
def registry(tmp_path: Path, real_embedder: str) -> Iterator[RegistryServer]:
    srv = create_server(server_settings(tmp_path, real_embedder, api_keys_required=False))
    srv.start()
    yield srv
    srv.stop(0)


def test_one_identify_is_one_trace_across_registry_embedder_and_store(
    spans: object, registry: RegistryServer
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{registry.port}") as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        image = (LFW / "Emma_Watson_0001.jpg").read_bytes()
        stub.Enroll(
            registry_pb2.EnrollRequest(subject_id="emma", images=[image], idempotency_key="t1")
        )
        spans.clear()  # type: ignore[attr-defined]
        _, call = stub.Identify.with_call(
            registry_pb2.IdentifyRequest(
                probe=common_pb2.Probe(image=(LFW / "Emma_Watson_0002.jpg").read_bytes()),
                top_k=1,
            ),
            metadata=[("x-request-id", "trace-me-1")],
        )
    finished = spans.get_finished_spans()  # type: ignore[attr-defined]
    by_name = {s.name: s for s in finished}
    registry_span = by_name["/likeness.v1.Registry/Identify"]
    embedder_span = by_name["/likeness.v1.Embedder/Embed"]
    store_span = by_name["store.search"]
    trace_ids = {s.context.trace_id for s in (registry_span, embedder_span, store_span)}
    assert len(trace_ids) == 1
    assert embedder_span.parent.span_id == registry_span.context.span_id
    assert store_span.parent.span_id == registry_span.context.span_id
    assert registry_span.attributes["likeness.request_id"] == "trace-me-1"
    assert embedder_span.attributes["likeness.request_id"] == "trace-me-1"
    assert dict(call.trailing_metadata())["x-request-id"] == "trace-me-1"
