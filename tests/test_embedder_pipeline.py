"""The face pipeline's parts: decoding, detection, landmarks, alignment,
quality, model manifests and the two embedding backends.

Images: ``tests/data/lfw`` (30 LFW images, 3 each of 10 people, 250x250) and
the awkward-input corpus ``tests/data/bad`` (see tests/data/README.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from embedder.align import align_face, five_points
from embedder.backends import (
    DEFAULT_MODEL,
    DLIB_MODEL,
    DlibResnetBackend,
    FaceInput,
    MobileNetBackend,
)
from embedder.decode import decode_image
from embedder.detect import Detection, FaceDetector
from embedder.dlib_models import RESNET, dlib_model_path
from embedder.landmarks import (
    FLIP_PERMUTATION,
    LEFT_EYE,
    NOSE_TIP,
    RIGHT_EYE,
    eye_centres,
    flip_landmarks,
)
from embedder.manifest import load_manifest
from embedder.model import InferenceViews, ModelConfig
from embedder.quality import face_quality
from likeness.errors import FailedPrecondition, InvalidArgument

DATA = Path(__file__).resolve().parent / "data"
LFW = DATA / "lfw"
BAD = DATA / "bad"

# The widely used 112x112 five-point face template (ArcFace), written out here
# independently of embedder.align: subject's right eye, left eye.
# Eye centres of each alignment template in a 112-px crop: (right eye, left eye).
TEMPLATE_EYES = {
    "arcface": (np.array([38.2946, 51.6963]), np.array([73.5318, 51.5014])),
    "dlib": (np.array([35.7, 34.8]), np.array([74.9, 34.8])),
}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bad_inputs", DATA / "make_bad_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()


@dataclass(frozen=True)
class LfwFace:
    name: str
    person: str
    image: np.ndarray
    detection: Detection


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def lfw(detector: FaceDetector) -> list[LfwFace]:
    """The largest face of each committed LFW image (all 30 hold one)."""
    faces = []
    for path in sorted(LFW.glob("*.jpg")):
        image = decode_image(path.read_bytes())
        detections = detector.detect(image)
        assert detections, f"no face found in {path.name}"
        faces.append(LfwFace(path.stem, path.stem.rsplit("_", 1)[0], image, detections[0]))
    assert len(faces) == 30
    return faces


@pytest.fixture(scope="module")
def mobilenet() -> MobileNetBackend:
    return MobileNetBackend(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def dlib_resnet() -> DlibResnetBackend:
    return DlibResnetBackend(DLIB_MODEL)


def _inputs(faces: list[LfwFace], size: int) -> list[FaceInput]:
    return [
        FaceInput(f.image, f.detection, align_face(f.image, f.detection.landmarks, size))
        for f in faces
    ]


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# --------------------------------------------------------------------------- decode


@pytest.mark.parametrize(
    ("name", "max_mean_abs_diff"),
    [
        ("face.bmp", 0.0),
        ("face_rgba.png", 0.0),  # alpha dropped, colour untouched
        ("face_gray.png", 0.0),  # compared with the grey reference below
        ("face.webp", 4.0),  # lossy
        ("face_cmyk.jpg", 4.0),  # lossy, and inverted-CMYK handling must be right
    ],
)
def test_each_format_decodes_to_the_same_rgb_face(name: str, max_mean_abs_diff: float) -> None:
    decoded = decode_image((BAD / name).read_bytes())
    reference = GEN.face_reference()
    if name == "face_gray.png":
        reference = reference.convert("L")
    expected = _rgb(reference)
    assert decoded.dtype == np.uint8
    assert decoded.shape == (200, 200, 3)
    diff = np.abs(decoded.astype(np.int16) - expected).mean()
    assert diff <= max_mean_abs_diff, f"{name}: mean |decoded - reference| = {diff:.2f}"


def test_exif_orientation_is_applied() -> None:
    data = (BAD / "exif_rotated.jpg").read_bytes()
    with Image.open(BAD / "exif_rotated.jpg") as stored:
        assert stored.size == (200, 250)  # the file really holds the sideways pixels
    decoded = decode_image(data)
    assert decoded.shape == (200, 250, 3)  # upright: 250 wide, 200 high
    diff = np.abs(decoded.astype(np.int16) - _rgb(GEN.exif_reference())).mean()
    assert diff < 4.0, f"mean |decoded - upright reference| = {diff:.2f}"


def test_exif_rotated_face_is_found_in_upright_coordinates(detector: FaceDetector) -> None:
    decoded = decode_image((BAD / "exif_rotated.jpg").read_bytes())
    [face] = detector.detect(decoded)
    [upright] = detector.detect(np.asarray(GEN.exif_reference()))
    assert np.abs(np.subtract(face.box, upright.box)).max() <= 2
    assert np.abs(face.landmarks - upright.landmarks).mean() < 2.0
    right_eye, left_eye = eye_centres(face.landmarks)
    # Upright: the eyes side by side above the nose tip.
    assert abs(right_eye[1] - left_eye[1]) < 5
    assert max(right_eye[1], left_eye[1]) < face.landmarks[NOSE_TIP][1]


@pytest.fixture
def no_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any image's pixels get decoded."""

    def refuse(self: Any) -> None:
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(Image.Image, "load", refuse)


@pytest.mark.usefixtures("no_pixel_decoding")
def test_header_bomb_is_rejected_before_decoding() -> None:
    data = (BAD / "bomb_20000x20000.png").read_bytes()
    assert len(data) < 100_000
    with pytest.raises(InvalidArgument, match=r"more than 40000000 pixels"):
        decode_image(data)


@pytest.mark.usefixtures("no_pixel_decoding")
def test_image_over_the_pixel_limit_is_rejected_before_decoding() -> None:
    data = (BAD / "oversized_8000x6000.png").read_bytes()
    with pytest.raises(InvalidArgument, match=r"8000x6000 = 48000000 pixels.*limit of 40000000"):
        decode_image(data)


@pytest.mark.usefixtures("no_pixel_decoding")
def test_pixel_limit_is_configurable() -> None:
    data = (LFW / "Emma_Watson_0001.jpg").read_bytes()
    with pytest.raises(InvalidArgument, match=r"250x250 = 62500 pixels.*limit of 50000"):
        decode_image(data, max_pixels=50_000)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.bin", r"^image is empty \(0 bytes\)$"),
        ("random.bin", r"not a supported image \(JPEG, PNG, WebP or BMP\)"),
        ("text.txt", r"not a supported image \(JPEG, PNG, WebP or BMP\)"),
        ("truncated.jpg", r"^image data is truncated or corrupt: .*truncated"),
        ("corrupt_idat.png", r"^image data is truncated or corrupt: "),
        ("tiny_1x1.png", r"1x1 pixels; each side must be at least 32"),
        ("face.gif", r"format GIF is not supported"),
    ],
)
def test_undecodable_input_is_invalid_argument_with_a_precise_message(
    name: str, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        decode_image((BAD / name).read_bytes())
    assert "Traceback" not in str(caught.value)


# ------------------------------------------------------------------------ detection


def test_boxes_and_landmarks_land_on_the_face(lfw: list[LfwFace]) -> None:
    for face in lfw:
        left, top, right, bottom = face.detection.box
        width, height = right - left, bottom - top
        points = face.detection.landmarks
        assert points.shape == (68, 2), face.name
        assert face.detection.score > 0, face.name
        # LFW deep-funneled images are centred on the face.
        assert abs((left + right) / 2 - 125) < 25 and abs((top + bottom) / 2 - 125) < 25
        eyes = points[36:48]
        assert (eyes[:, 1] > top).all() and (eyes[:, 1] < top + height / 2).all(), face.name
        right_eye, left_eye = eye_centres(points)
        assert right_eye[0] < left_eye[0], face.name  # subject's right is the image's left
        eye_y = (right_eye[1] + left_eye[1]) / 2
        mouth_y = points[48:68, 1].mean()
        assert eye_y < points[NOSE_TIP][1] < mouth_y, face.name
        margin_x, margin_y = 0.3 * width, 0.3 * height
        assert (points[:, 0] >= left - margin_x).all() and (points[:, 0] <= right + margin_x).all()
        assert (points[:, 1] >= top - margin_y).all() and (points[:, 1] <= bottom + margin_y).all()


def test_three_faces_are_found_largest_first(detector: FaceDetector) -> None:
    detections = detector.detect(decode_image((BAD / "three_faces.jpg").read_bytes()))
    assert len(detections) == 3
    areas = [d.area for d in detections]
    assert areas == sorted(areas, reverse=True)
    # The generator placed the faces left to right at decreasing scale.
    lefts = [d.box[0] for d in detections]
    assert lefts == sorted(lefts)
    for a, b in itertools.pairwise(detections):
        assert a.box[2] <= b.box[0], "boxes overlap"


def test_no_face_image_has_no_detection(detector: FaceDetector) -> None:
    assert detector.detect(decode_image((BAD / "no_face.jpg").read_bytes())) == []


# ------------------------------------------------------------------------ alignment


@pytest.mark.parametrize(("size", "template"), [(112, "arcface"), (160, "arcface"), (112, "dlib")])
def test_alignment_puts_the_eyes_on_the_template(
    lfw: list[LfwFace], size: int, template: str
) -> None:
    scale = size / 112.0
    right_ref, left_ref = TEMPLATE_EYES[template]
    eye_gap = float(np.linalg.norm(left_ref - right_ref))
    errors = []
    for face in lfw:
        aligned = align_face(face.image, face.detection.landmarks, size, template)
        assert aligned.crop.shape == (size, size, 3)
        assert aligned.crop.dtype == np.uint8
        assert aligned.crop.std() > 10, "crop is blank"
        right_eye, left_eye = eye_centres(aligned.landmarks)
        # Five-point least squares leaves a residual that grows with pitch
        # (up to 5 px at 112 for the -24 degrees of Christopher_Reeve_0003).
        errors.append(np.linalg.norm(right_eye - right_ref * scale) / (eye_gap * scale))
        errors.append(np.linalg.norm(left_eye - left_ref * scale) / (eye_gap * scale))
        # The nose tip follows the head's pose: it only has to sit between
        # the eyes and the mouth.
        nose_y = aligned.landmarks[NOSE_TIP][1]
        assert left_ref[1] * scale < nose_y < aligned.landmarks[48:68, 1].mean()
        # The crop landmarks are the image landmarks through the returned matrix.
        homogeneous = np.hstack([face.detection.landmarks, np.ones((68, 1))])
        np.testing.assert_allclose(homogeneous @ aligned.matrix.T, aligned.landmarks, atol=1e-3)
    # Eye-centre distance from the template's eye points, in template eye
    # distances (2 and 6 px of the 112-px ArcFace crop).
    assert float(np.median(errors)) < 0.057, errors
    assert max(errors) < 0.17, errors


def test_dlib_template_shows_the_chin_and_a_larger_face(lfw: list[LfwFace]) -> None:
    # dlib's chip is 2.6 eye distances wide, the ArcFace crop 3.2: the same
    # face is larger and sits higher, so the chin (landmark 8), below the
    # ArcFace crop for most faces, is inside, and the eyebrows still are.
    arc_chin, dlib_chin = [], []
    for face in lfw:
        arc = align_face(face.image, face.detection.landmarks, 112, "arcface")
        dl = align_face(face.image, face.detection.landmarks, 112, "dlib")
        arc_eyes = np.subtract(*eye_centres(arc.landmarks))
        dl_eyes = np.subtract(*eye_centres(dl.landmarks))
        assert np.linalg.norm(dl_eyes) > 1.05 * np.linalg.norm(arc_eyes)
        assert dl.landmarks[17:27, 1].min() > 5, face.name
        arc_chin.append(arc.landmarks[8, 1])
        dlib_chin.append(dl.landmarks[8, 1])
    assert np.median(dlib_chin) < 111 < np.median(arc_chin)


def test_unknown_template_is_refused(lfw: list[LfwFace]) -> None:
    with pytest.raises(ValueError, match="template"):
        align_face(lfw[0].image, lfw[0].detection.landmarks, 112, "vggface")


def test_alignment_samples_the_image_through_its_matrix(lfw: list[LfwFace]) -> None:
    face = lfw[0]
    aligned = align_face(face.image, face.detection.landmarks, 112)
    inverse = cv2.invertAffineTransform(aligned.matrix)
    # The crop pixel at the nose tip shows the image pixel at the nose tip.
    cx, cy = np.round(aligned.landmarks[NOSE_TIP]).astype(int)
    ix, iy = np.round(inverse @ np.array([cx, cy, 1.0])).astype(int)
    assert np.abs(aligned.crop[cy, cx].astype(int) - face.image[iy, ix].astype(int)).max() < 30


def test_five_points_are_eye_centres_nose_and_mouth_corners(lfw: list[LfwFace]) -> None:
    points = lfw[0].detection.landmarks
    five = five_points(points)
    np.testing.assert_allclose(five[0], points[36:42].mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(five[1], points[42:48].mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(five[2:], points[[30, 48, 54]], atol=1e-4)


# --------------------------------------------------------------------- flip mirror


def _ellipse(cx: float, cy: float, a: float, b: float, degrees: list[float]) -> np.ndarray:
    t = np.radians(degrees)
    return np.stack([cx + a * np.cos(t), cy - b * np.sin(t)], axis=1)


def _symmetric_face(width: float) -> np.ndarray:
    """A left-right symmetric 68-point face about the image's centre line
    x = (width - 1) / 2 (pixel-centre coordinates), built from
    the iBUG 300-W drawing order (jaw, brows and nose base run from image left
    to image right; eyes and lips run clockwise from their image-left corner),
    independently of the permutation under test."""
    c = (width - 1) / 2
    jaw = _ellipse(c, 100, 60, 70, [180 + i * 180 / 16 for i in range(17)])
    brows = np.array([[c + x, 60.0] for x in (-50, -40, -30, -20, -10, 10, 20, 30, 40, 50)])
    bridge = np.array([[c, y] for y in (70.0, 80.0, 90.0, 100.0)])
    nose_base = np.array([[c + x, 108.0] for x in (-12, -6, 0, 6, 12)])
    eye_angles = [180.0, 120.0, 60.0, 0.0, -60.0, -120.0]
    right_eye = _ellipse(c - 25, 75, 10, 4, eye_angles)
    left_eye = _ellipse(c + 25, 75, 10, 4, eye_angles)
    outer_lip = _ellipse(c, 130, 22, 8, [180.0 - 30 * i for i in range(12)])
    inner_lip = _ellipse(c, 130, 14, 3, [180.0 - 45 * i for i in range(8)])
    face = np.vstack([jaw, brows, bridge, nose_base, right_eye, left_eye, outer_lip, inner_lip])
    assert face.shape == (68, 2)
    return face.astype(np.float32)


def test_flip_is_an_involution() -> None:
    rng = np.random.default_rng(7)
    points = rng.uniform(0, 250, (68, 2)).astype(np.float32)
    np.testing.assert_allclose(flip_landmarks(flip_landmarks(points, 250), 250), points, atol=1e-4)
    assert sorted(FLIP_PERMUTATION.tolist()) == list(range(68))
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))


def test_flipping_a_symmetric_face_maps_points_onto_their_mirror_partners() -> None:
    face = _symmetric_face(200.0)
    np.testing.assert_allclose(flip_landmarks(face, 200.0), face, atol=1e-3)


def test_flip_swaps_the_eye_index_ranges(lfw: list[LfwFace]) -> None:
    face = lfw[0]
    width = face.image.shape[1]
    points = face.detection.landmarks
    flipped = flip_landmarks(points, width)
    mirrored_left_eye = np.column_stack([width - 1 - points[LEFT_EYE, 0], points[LEFT_EYE, 1]])
    mirrored_right_eye = np.column_stack([width - 1 - points[RIGHT_EYE, 0], points[RIGHT_EYE, 1]])
    assert {tuple(p) for p in flipped[RIGHT_EYE]} == {tuple(p) for p in mirrored_left_eye}
    assert {tuple(p) for p in flipped[LEFT_EYE]} == {tuple(p) for p in mirrored_right_eye}
    # Labels keep their meaning: the subject's right eye stays on the image's left.
    right_eye, left_eye = eye_centres(flipped)
    assert right_eye[0] < left_eye[0]


@pytest.fixture(scope="module")
def mirrored(lfw: list[LfwFace], detector: FaceDetector) -> list[Detection]:
    """The largest detection in each LFW image mirrored left-right."""
    found = []
    for face in lfw:
        detections = detector.detect(np.ascontiguousarray(face.image[:, ::-1]))
        assert detections, face.name
        found.append(detections[0])
    return found


def test_flip_agrees_with_landmarks_found_on_the_mirrored_image(
    lfw: list[LfwFace], mirrored: list[Detection]
) -> None:
    for face, mirror in zip(lfw, mirrored, strict=True):
        back = flip_landmarks(mirror.landmarks, face.image.shape[1])
        error = np.linalg.norm(back - face.detection.landmarks, axis=1).mean()
        assert error < 2.5, f"{face.name}: mean point error {error:.2f} px"


# -------------------------------------------------------------------------- quality


def _quality(image: np.ndarray, landmarks: np.ndarray) -> Any:
    crop = align_face(image, landmarks, 112).crop
    return face_quality(landmarks, crop, image.shape[1], image.shape[0])


def test_face_size_is_the_inter_ocular_distance(lfw: list[LfwFace]) -> None:
    for face in lfw:
        q = _quality(face.image, face.detection.landmarks)
        right_eye, left_eye = eye_centres(face.detection.landmarks)
        assert q.face_size_px == pytest.approx(float(np.linalg.norm(left_eye - right_eye)))
        # LFW crops are 250 px with the face about 110 px wide.
        assert 25 < q.face_size_px < 70, face.name


def test_sharpness_drops_after_blurring(lfw: list[LfwFace]) -> None:
    for face in lfw:
        sharp = _quality(face.image, face.detection.landmarks).sharpness
        blurred_image = cv2.GaussianBlur(face.image, (0, 0), 2.0)
        blurred = _quality(blurred_image, face.detection.landmarks).sharpness
        assert sharp > 30, f"{face.name}: an unblurred LFW face scores {sharp:.0f}"
        assert blurred < 0.5 * sharp, f"{face.name}: {sharp:.0f} -> {blurred:.0f}"


def test_yaw_of_the_mirrored_face_is_negated(lfw: list[LfwFace], mirrored: list[Detection]) -> None:
    sums = []
    for face, mirror in zip(lfw, mirrored, strict=True):
        yaw = _quality(face.image, face.detection.landmarks).yaw_deg
        mirrored_image = np.ascontiguousarray(face.image[:, ::-1])
        yaw_mirrored = _quality(mirrored_image, mirror.landmarks).yaw_deg
        sums.append(abs(yaw + yaw_mirrored))
        if abs(yaw) > 10:
            assert np.sign(yaw_mirrored) == -np.sign(yaw), face.name
    assert float(np.median(sums)) < 3.0, sums
    assert max(sums) < 10.0, sums


def test_yaw_sign_follows_the_nose(lfw: list[LfwFace]) -> None:
    """yaw > 0 turns to the subject's left: the nose tip moves to the image's right."""
    checked = 0
    for face in lfw:
        points = face.detection.landmarks
        right_eye, left_eye = eye_centres(points)
        offset = (points[NOSE_TIP][0] - (right_eye[0] + left_eye[0]) / 2) / (
            left_eye[0] - right_eye[0]
        )
        if abs(offset) >= 0.1:
            yaw = _quality(face.image, points).yaw_deg
            assert np.sign(yaw) == np.sign(offset), f"{face.name}: yaw {yaw:.1f}"
            checked += 1
    assert checked >= 10


def test_roll_follows_a_clockwise_rotation(lfw: list[LfwFace], detector: FaceDetector) -> None:
    for face in lfw:
        height, width = face.image.shape[:2]
        # OpenCV's angle is counter-clockwise on screen: -10 turns the face clockwise.
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -10.0, 1.0)
        rotated = cv2.warpAffine(face.image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
        detections = detector.detect(rotated)
        assert detections, face.name
        before = _quality(face.image, face.detection.landmarks).roll_deg
        after = _quality(rotated, detections[0].landmarks).roll_deg
        assert 7.0 < after - before < 13.0, f"{face.name}: roll {before:.1f} -> {after:.1f}"


# ------------------------------------------------------------------------- manifest


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "likeness-mobilenet"
    shutil.copytree(DEFAULT_MODEL, folder)
    return folder


def test_tampered_weights_are_refused(model_copy: Path) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    weights = model_copy / manifest["weights"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(FailedPrecondition, match="sha256"):
        load_manifest(model_copy)
    with pytest.raises(FailedPrecondition):
        MobileNetBackend(model_copy)


def test_a_tampered_litert_file_of_the_shipped_model_is_refused(model_copy: Path) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    litert = model_copy / manifest["litert"]
    assert manifest["litert"] in manifest["files"]  # the shipped manifest hashes it
    data = bytearray(litert.read_bytes())
    data[len(data) // 2] ^= 0x01
    litert.write_bytes(bytes(data))
    with pytest.raises(FailedPrecondition, match=r"model\.tflite.*sha256"):
        load_manifest(model_copy)
    with pytest.raises(FailedPrecondition, match="sha256"):
        MobileNetBackend(model_copy, runtime="litert")


def test_missing_weights_are_refused(model_copy: Path) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    (model_copy / manifest["weights"]).unlink()
    with pytest.raises(FailedPrecondition, match="missing"):
        load_manifest(model_copy)


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="manifest"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("folder", [DEFAULT_MODEL, DLIB_MODEL], ids=["mobilenet", "dlib"])
def test_fingerprint_is_model_id_at_weights_hash_prefix(
    folder: Path, mobilenet: MobileNetBackend, dlib_resnet: DlibResnetBackend
) -> None:
    manifest = (mobilenet if folder == DEFAULT_MODEL else dlib_resnet).manifest
    raw = json.loads((folder / "manifest.json").read_text())
    assert re.fullmatch(r"[A-Za-z0-9._-]+@[0-9a-f]{12}", manifest.fingerprint)
    assert manifest.fingerprint == raw["fingerprint"]
    model_id, prefix = manifest.fingerprint.split("@")
    assert model_id == raw["model_id"]
    weights = folder / raw["weights"] if folder == DEFAULT_MODEL else dlib_model_path(RESNET)
    assert hashlib.sha256(weights.read_bytes()).hexdigest()[:12] == prefix


# ------------------------------------------------------------------------- backends


def test_mobilenet_embeddings_are_deterministic_unit_vectors(
    mobilenet: MobileNetBackend, lfw: list[LfwFace]
) -> None:
    inputs = _inputs(lfw, mobilenet.manifest.input_size)
    vectors = mobilenet.embed(inputs)
    assert vectors.shape == (30, mobilenet.manifest.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(mobilenet.embed(inputs), vectors, atol=1e-6)
    # Rows do not depend on what else is in the batch (the batcher relies on it).
    singles = np.vstack([mobilenet.embed([face]) for face in inputs[:5]])
    np.testing.assert_allclose(singles, vectors[:5], atol=1e-4)
    # Different faces give different vectors.
    assert float((vectors @ vectors.T).min()) < 0.99
    assert mobilenet.embed([]).shape == (0, mobilenet.manifest.dim)


def test_the_shipped_model_serves_through_litert_the_embeddings_of_its_weights(
    mobilenet: MobileNetBackend, lfw: list[LfwFace]
) -> None:
    """The LiteRT file is what serves; the Keras weights are what was trained
    and fingerprinted: the two must give the same vectors."""
    assert mobilenet.runtime == "litert"
    keras = MobileNetBackend(DEFAULT_MODEL, runtime="keras")
    assert keras.runtime == "keras"
    assert keras.manifest.fingerprint == mobilenet.manifest.fingerprint
    inputs = _inputs(lfw, mobilenet.manifest.input_size)
    np.testing.assert_allclose(mobilenet.embed(inputs), keras.embed(inputs), atol=1e-5)


def test_inference_views_move_landmarks_with_the_pixels() -> None:
    """A landmark on a marked pixel stays on it in every shifted or mirrored
    view; views come out view-major and sum back to one row per face."""
    size, n = 16, 3
    crops = np.zeros((n, size, size, 3), np.uint8)
    marks = np.full((n, 68, 2), 5.0, np.float32)
    for i in range(n):
        x, y = 4 + i, 6 + i
        crops[i, y, x] = 255
        marks[i, 30] = (x, y)
    views = InferenceViews(flip=True, shift_px=2)
    assert views.count == 10 and InferenceViews(flip=False).count == 1
    out_crops, out_marks = views.apply(crops, marks, size)
    assert out_crops.shape == (10 * n, size, size, 3) and out_marks.shape == (10 * n, 68, 2)
    for k in range(10 * n):
        # Mirroring permutes the landmark indices: find the marked point by value.
        bright = np.argwhere(out_crops[k, :, :, 0] == 255)
        assert len(bright) == 1
        y, x = bright[0]
        assert np.any(np.all(np.abs(out_marks[k] - (x, y)) < 1e-4, axis=1)), k
    assert np.array_equal(out_crops[:n], crops)  # view 0 is the face itself
    sums = views.sum(np.arange(10 * n, dtype=np.float32)[:, None])
    assert sums[:, 0].tolist() == [sum(k * n + i for k in range(10)) for i in range(n)]
    with pytest.raises(ValueError):
        InferenceViews(shift_px=-1)
    unmirrored = InferenceViews(flip=False, shift_px=2)
    plain_crops, _ = unmirrored.apply(crops, marks, size)
    assert unmirrored.count == 5 and len(plain_crops) == 5 * n
    for k in range(5):  # the same shifts, without the mirror images between them
        assert np.array_equal(
            plain_crops[k * n : (k + 1) * n], out_crops[2 * k * n : (2 * k + 1) * n]
        )


def test_a_one_tower_manifest_reads_as_the_network_and_an_ensemble_is_refused() -> None:
    """Artifacts exported while ensembles existed (v6, still shipped for its
    galleries, among them) record "towers": 1; ensembles themselves are gone."""
    v6 = DEFAULT_MODEL.parent / "likeness-mobilenet-v6"
    shipped = json.loads((v6 / "manifest.json").read_text())["config"]
    assert shipped["towers"] == 1
    assert ModelConfig.from_dict(shipped) == ModelConfig(input_size=128, template="dlib")
    with pytest.raises(ValueError, match="ensemble"):
        ModelConfig.from_dict({**shipped, "towers": 2})


def test_dlib_embeddings_are_unit_vectors(
    dlib_resnet: DlibResnetBackend, lfw: list[LfwFace]
) -> None:
    vectors = dlib_resnet.embed(_inputs(lfw[:3], 112))
    assert vectors.shape == (3, 128) == (3, dlib_resnet.manifest.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


@pytest.fixture(scope="module")
def embeddings(
    lfw: list[LfwFace], mobilenet: MobileNetBackend, dlib_resnet: DlibResnetBackend
) -> dict[str, np.ndarray]:
    return {
        "likeness-mobilenet": mobilenet.embed(_inputs(lfw, mobilenet.manifest.input_size)),
        "dlib-resnet": dlib_resnet.embed(_inputs(lfw, 112)),
    }


@pytest.mark.parametrize("backend", ["dlib-resnet", "likeness-mobilenet"])
def test_same_person_scores_higher_than_different_people(
    backend: str, embeddings: dict[str, np.ndarray], lfw: list[LfwFace]
) -> None:
    """On the 30 committed images (10 people x 3, unseen in training):

    - separation: (mean same-person cosine - mean different-person cosine)
      is at least 2.5 pooled standard deviations (d' >= 2.5, about 90 %
      verification accuracy; scale-free, as dlib's cosines crowd near 1);
    - identification: for at least 80 % of the images the most similar other
      image shows the same person, and so it does for most images (2 of 3)
      of a majority of the people.

    dlib-resnet measured d' = 5.1, rank-1 100 %; the provisional likeness
    model d' = 1.3, rank-1 60 %: this test fails until the trained model ships.
    """
    vectors = embeddings[backend]
    people = np.array([face.person for face in lfw])
    cosine = vectors @ vectors.T
    same = people[:, None] == people[None, :]
    other = ~np.eye(len(people), dtype=bool)
    same_scores, different_scores = cosine[same & other], cosine[~same]
    pooled_sd = np.sqrt((same_scores.var() + different_scores.var()) / 2)
    separation = (same_scores.mean() - different_scores.mean()) / pooled_sd
    np.fill_diagonal(cosine, -np.inf)
    hits = people[cosine.argmax(axis=1)] == people
    people_right = sum(hits[people == p].mean() > 0.5 for p in set(people.tolist()))
    report = (
        f"{backend}: same {same_scores.mean():.3f}, different {different_scores.mean():.3f}, "
        f"d'={separation:.2f}, rank-1 {hits.mean():.0%}, people mostly right {people_right}/10"
    )
    assert same_scores.mean() > different_scores.mean(), report
    assert separation >= 2.5, report
    assert hits.mean() >= 0.8, report
    assert people_right > 5, report
