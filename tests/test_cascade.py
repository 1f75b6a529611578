"""The detection cascade (embedder.cascade): the fast pass answers ordinary
photos, smaller and turned faces escalate, each answer names its step, and
the Embedder reports the step per face and the counts in Info."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from embedder.cascade import (
    CNN,
    FAST,
    NONE,
    SMALL,
    UPSAMPLED,
    CascadeConfig,
    DetectionCascade,
)
from embedder.decode import decode_image
from embedder.detect import FaceDetector
from likeness.client import LikenessClient
from likeness.selection import FaceSelection

DATA = Path(__file__).resolve().parent / "data"
EMMA = DATA / "lfw" / "Emma_Watson_0001.jpg"


@pytest.fixture(scope="module")
def emma() -> np.ndarray:
    return decode_image(EMMA.read_bytes())


@pytest.fixture(scope="module")
def cascade() -> DetectionCascade:
    return DetectionCascade.of(CascadeConfig(rotations=True))


def on_canvas(image: np.ndarray, scale: float, side: int = 400) -> np.ndarray:
    """``image`` scaled by ``scale``, centred on a grey ``side`` px square."""
    small = cv2.resize(
        image,
        (round(image.shape[1] * scale), round(image.shape[0] * scale)),
        interpolation=cv2.INTER_AREA,
    )
    canvas = np.full((side, side, 3), 128, np.uint8)
    top, left = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    return canvas


def box_width(box: tuple[int, int, int, int]) -> int:
    return box[2] - box[0]


def test_an_ordinary_photo_is_answered_by_the_fast_pass(
    cascade: DetectionCascade, emma: np.ndarray
) -> None:
    found = cascade.detect(emma)
    assert (found.step, found.steps_run) == (FAST, 1)
    [face] = found.detections
    assert face.detector == FAST
    assert 80 <= box_width(face.box) <= 150


@pytest.mark.parametrize(("scale", "step"), [(0.35, UPSAMPLED), (0.18, SMALL)])
def test_smaller_faces_escalate_to_upsampled_hog(
    scale: float, step: str, cascade: DetectionCascade, emma: np.ndarray
) -> None:
    found = cascade.detect(on_canvas(emma, scale))
    assert found.step == step
    assert found.steps_run == [FAST, UPSAMPLED, SMALL].index(step) + 1
    [face] = found.detections
    # The face sits at the canvas centre.
    centre = ((face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2)
    assert centre == pytest.approx((200, 200), abs=15)


def test_asking_for_every_face_skips_the_fast_pass(
    cascade: DetectionCascade, emma: np.ndarray
) -> None:
    found = cascade.detect(emma, thorough=True)
    assert (found.step, found.steps_run) == (UPSAMPLED, 1)


@pytest.mark.parametrize("quarter_turns", [1, 3])
def test_a_turned_photo_is_found_and_boxed_in_its_own_coordinates(
    quarter_turns: int, cascade: DetectionCascade, emma: np.ndarray
) -> None:
    upright = cascade.detect(emma).detections[0]
    turned = np.ascontiguousarray(np.rot90(emma, quarter_turns))
    found = cascade.detect(turned)
    # Turning counter-clockwise by k quarters is undone by 4 - k more.
    assert found.step == f"{FAST}+rot{90 * (4 - quarter_turns)}"
    [face] = found.detections
    # Where the upright box lands in the turned image (sides 250 x 250).
    left, top, right, bottom = upright.box
    size = emma.shape[1]
    expected = (
        (top, size - right, bottom, size - left)
        if quarter_turns == 1
        else (size - bottom, left, size - top, right)
    )
    assert face.box == pytest.approx(expected, abs=3)
    # The landmarks turn with the face: eyes above the mouth no longer.
    eyes_y = face.landmarks[36:48, 1].mean()
    mouth_y = face.landmarks[48:68, 1].mean()
    assert abs(eyes_y - mouth_y) < 10


def test_nothing_found_runs_every_step_and_is_counted() -> None:
    cascade = DetectionCascade.of(CascadeConfig(cnn=True, cnn_side=128))
    grey = np.full((200, 200, 3), 128, np.uint8)
    found = cascade.detect(grey)
    assert found.detections == [] and found.step == NONE
    assert found.steps_run == 4  # fast, upsampled, upsampled twice, CNN
    assert cascade.counts.snapshot() == {NONE: 1}


def test_the_cnn_answers_last(emma: np.ndarray) -> None:
    # Only the CNN step: proves it runs and names itself.
    cascade = DetectionCascade(None, [], last=[(CNN, FaceDetector("cnn", 0, 0.0, 640))])
    found = cascade.detect(emma)
    assert found.step == CNN
    assert cascade.counts.snapshot() == {CNN: 1}


@pytest.fixture(scope="module")
def client() -> Iterator[LikenessClient]:
    from embedder.server import create_server
    from embedder.settings import EmbedderSettings

    server = create_server(EmbedderSettings(host="127.0.0.1", port=0, workers=2))
    server.start()
    # No registry: only embedder calls are made.
    with LikenessClient("127.0.0.1:9", f"127.0.0.1:{server.port}", timeout_s=60) as c:
        yield c
    server.stop(0)


def test_the_embedder_reports_the_step_per_face_and_counts_them(
    client: LikenessClient, emma: np.ndarray
) -> None:
    ordinary = client.embed(EMMA.read_bytes())
    assert ordinary.detection_steps == 1
    assert [f.detector for f in ordinary.faces] == [FAST]
    ok, png = cv2.imencode(".png", cv2.cvtColor(on_canvas(emma, 0.35), cv2.COLOR_RGB2BGR))
    assert ok
    small = client.embed(png.tobytes())
    assert small.detection_steps == 2
    assert [f.detector for f in small.faces] == [UPSAMPLED]
    every = client.embed(EMMA.read_bytes(), selection=FaceSelection.ALL)
    assert [f.detector for f in every.faces] == [UPSAMPLED]
    counts = client.info().detections_by_step
    assert counts[FAST] >= 1 and counts[UPSAMPLED] >= 2
