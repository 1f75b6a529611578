"""A running embedder serves Prometheus metrics on its own port: per-stage
latency histograms, faces per image and batch sizes, after real calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registry_helpers import free_port

from embedder.server import EmbedderServer, create_server
from embedder.settings import EmbedderSettings
from likeness.client import LikenessClient, NotFoundError

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def embedder() -> Iterator[EmbedderServer]:
    server = create_server(
        EmbedderSettings(host="127.0.0.1", port=0, backend="dlib-resnet", metrics_port=free_port())
    )
    server.start()
    yield server
    server.stop(0)


def scrape(server: EmbedderServer) -> dict[str, float]:
    """Sample line -> value of GET /metrics (the text a curl would show)."""
    reply = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics")
    assert reply.status_code == 200
    samples = {}
    for line in reply.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_show_each_stage_after_a_call(embedder: EmbedderServer) -> None:
    before = scrape(embedder)
    assert before.get('likeness_embedder_stage_seconds_count{stage="detect"}', 0.0) == 0.0
    with LikenessClient("unused:1", f"127.0.0.1:{embedder.port}") as client:
        result = client.embed((DATA / "lfw" / "Emma_Watson_0001.jpg").read_bytes())
    assert len(result.faces) == 1
    after = scrape(embedder)
    for stage in ("decode", "detect", "landmarks", "align", "embed"):
        assert after[f'likeness_embedder_stage_seconds_count{{stage="{stage}"}}'] == 1.0
        assert after[f'likeness_embedder_stage_seconds_sum{{stage="{stage}"}}'] > 0.0
        assert f'likeness_embedder_stage_seconds_bucket{{le="0.01",stage="{stage}"}}' in after
    assert after["likeness_embedder_faces_per_image_count"] == 1.0
    assert after["likeness_embedder_faces_per_image_sum"] == 1.0
    assert after["likeness_embedder_batch_faces_count"] == 1.0
    assert after["likeness_embedder_batch_faces_sum"] == 1.0
    assert after['likeness_embedder_images_total{outcome="ok"}'] == 1.0


def test_an_image_without_a_face_counts_as_not_found_and_stops_before_align(
    embedder: EmbedderServer,
) -> None:
    before = scrape(embedder)
    with (
        LikenessClient("unused:1", f"127.0.0.1:{embedder.port}") as client,
        pytest.raises(NotFoundError),
    ):
        client.embed((DATA / "bad" / "no_face.jpg").read_bytes())
    after = scrape(embedder)
    assert after['likeness_embedder_images_total{outcome="NotFound"}'] == 1.0
    detect = 'likeness_embedder_stage_seconds_count{stage="detect"}'
    align = 'likeness_embedder_stage_seconds_count{stage="align"}'
    # Each step of the detection cascade that ran is one "detect"
    # observation; a photo without a face escalates through several.
    assert after[detect] >= before[detect] + 1
    assert after[align] == before[align]


def test_metrics_are_off_by_default() -> None:
    assert EmbedderSettings().metrics_port == 0
