"""The cascade's second opinion on weak HOG boxes (embedder.cascade,
embedder.confirm): which weak boxes are checked for which request, and that
the CNN on a crop tells a real face from an empty spot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedder.cascade import FAST, NONE, UPSAMPLED, DetectionCascade
from embedder.confirm import Box, CnnConfirmer
from embedder.decode import decode_image
from embedder.detect import FaceDetector

DATA = Path(__file__).resolve().parent / "data"
EMMA = DATA / "lfw" / "Emma_Watson_0001.jpg"

# Boxes on a 400 x 400 image: a small strong face, a larger weak one, a
# smaller weak one.
STRONG = ((20, 20, 80, 80), 0.8)
WEAK_LARGE = ((150, 150, 270, 270), -0.3)
WEAK_SMALL = ((300, 20, 340, 60), -0.2)


class Scripted(FaceDetector):
    """A HOG detector whose box search answers the given boxes (landmarks
    are still found by dlib on the image)."""

    def __init__(self, boxes: list[tuple[Box, float]]) -> None:
        super().__init__("hog", 0, -0.5, 1024)
        self._scripted = boxes

    def boxes(self, image: np.ndarray) -> list[tuple[Box, float]]:
        return list(self._scripted)


class Recording:
    """A confirmer that confirms the boxes in ``yes`` and records each ask."""

    def __init__(self, yes: set[Box]) -> None:
        self.yes = yes
        self.asked: list[Box] = []

    def confirms(self, image: np.ndarray, box: Box) -> bool:
        self.asked.append(box)
        return box in self.yes


IMAGE = np.full((400, 400, 3), 128, np.uint8)


def cascade_of(
    boxes: list[tuple[Box, float]], confirmer: Recording, confirm_max: int = 4
) -> DetectionCascade:
    # The scripted boxes are the fast pass; the upsampled step finds nothing.
    return DetectionCascade(
        (FAST, Scripted(boxes)),
        [(UPSAMPLED, Scripted([]))],
        confirmer=confirmer,
        threshold=0.0,
        confirm_max=confirm_max,
    )


def test_largest_checks_only_weak_boxes_larger_than_the_strong_ones() -> None:
    confirmer = Recording({WEAK_LARGE[0]})
    found = cascade_of([STRONG, WEAK_LARGE, WEAK_SMALL], confirmer).detect(IMAGE)
    # The larger face HOG nearly missed wins over the smaller strong one.
    assert [d.box for d in found.detections] == [WEAK_LARGE[0], STRONG[0]]
    assert confirmer.asked == [WEAK_LARGE[0]]
    assert (found.step, found.steps_run) == (FAST, 1)


def test_a_weak_box_the_cnn_rejects_is_not_a_face() -> None:
    confirmer = Recording(set())
    found = cascade_of([STRONG, WEAK_LARGE], confirmer).detect(IMAGE)
    assert [d.box for d in found.detections] == [STRONG[0]]


def test_only_weak_boxes_found_escalate_unless_confirmed() -> None:
    rejected = cascade_of([WEAK_LARGE, WEAK_SMALL], Recording(set())).detect(IMAGE)
    assert (rejected.step, rejected.steps_run) == (NONE, 2)
    confirmer = Recording({WEAK_SMALL[0]})
    found = cascade_of([WEAK_LARGE, WEAK_SMALL], confirmer).detect(IMAGE)
    assert (found.step, found.steps_run) == (FAST, 1)
    assert [d.box for d in found.detections] == [WEAK_SMALL[0]]
    # Largest first; for the largest face, asking stops at the first yes.
    assert confirmer.asked == [WEAK_LARGE[0], WEAK_SMALL[0]]


def test_every_face_requests_check_every_weak_box() -> None:
    confirmer = Recording({WEAK_LARGE[0], WEAK_SMALL[0]})
    found = cascade_of([STRONG, WEAK_LARGE, WEAK_SMALL], confirmer).detect(IMAGE, thorough=True)
    # thorough skips the fast pass: the scripted boxes are not seen at all.
    assert found.detections == [] and confirmer.asked == []
    every = DetectionCascade(
        None, [(UPSAMPLED, Scripted([STRONG, WEAK_LARGE, WEAK_SMALL]))], confirmer=confirmer
    )
    found = every.detect(IMAGE, thorough=True)
    assert sorted(d.box for d in found.detections) == sorted(
        [STRONG[0], WEAK_LARGE[0], WEAK_SMALL[0]]
    )
    # The smaller weak face is checked too, though a larger face was found.
    assert confirmer.asked == [WEAK_LARGE[0], WEAK_SMALL[0]]


def test_at_most_confirm_max_weak_boxes_are_checked_per_step() -> None:
    weak = [((10 * i, 10 * i, 10 * i + 100 - i, 10 * i + 100 - i), -0.1) for i in range(6)]
    confirmer = Recording(set())
    every = DetectionCascade(
        None, [(UPSAMPLED, Scripted(weak))], confirmer=confirmer, confirm_max=3
    )
    every.detect(IMAGE, thorough=True)
    assert confirmer.asked == [box for box, _ in weak[:3]]


@pytest.fixture(scope="module")
def confirm() -> CnnConfirmer:
    return CnnConfirmer()


def test_the_cnn_confirms_a_real_face_and_not_an_empty_spot(confirm: CnnConfirmer) -> None:
    emma = decode_image(EMMA.read_bytes())
    [face] = FaceDetector("hog", 1).detect(emma)
    assert confirm.confirms(emma, face.box)
    # The same box on a grey image, and a box of the photo's background corner.
    assert not confirm.confirms(np.full_like(emma, 128), face.box)
    assert not confirm.confirms(emma, (0, 0, 60, 60))


def test_a_weak_box_over_a_found_face_is_dropped_unchecked() -> None:
    # A larger weak box around the strong face: the same face, framed worse.
    around = ((10, 10, 100, 100), -0.2)
    confirmer = Recording({around[0]})
    found = cascade_of([STRONG, around], confirmer).detect(IMAGE)
    assert [d.box for d in found.detections] == [STRONG[0]]
    assert confirmer.asked == []
