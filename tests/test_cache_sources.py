"""Training sources beyond identity folders: a folder with a
``path<TAB>identity`` list, and tight face crops padded before detection
(trainer.cache)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from embedder.decode import decode_image
from embedder.detect import FaceDetector
from trainer.cache import CacheSpec, build_cache, list_listed, load_cache, pad_and_scale

LFW = Path(__file__).parent / "data" / "lfw"


def test_a_listed_source_reads_paths_and_prefixed_identities(tmp_path: Path) -> None:
    listing = tmp_path / "identities.tsv"
    listing.write_text("path\tidentity\nb/2.jpg\t7\na/1.jpg\t7\nc/3.jpg\t12\n\n", encoding="utf-8")
    items = list_listed(tmp_path / "root", listing, "celeba-", exclude_people={"celeba-12"})
    assert items == [
        ("celeba-7", tmp_path / "root" / "a/1.jpg"),
        ("celeba-7", tmp_path / "root" / "b/2.jpg"),
    ]


def test_a_malformed_list_line_is_named(tmp_path: Path) -> None:
    listing = tmp_path / "identities.tsv"
    listing.write_text("path\tidentity\na/1.jpg\t7\na/2.jpg 8\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"identities\.tsv:3"):
        list_listed(tmp_path, listing, "x-")


def test_padding_repeats_the_edge_and_scaling_resizes() -> None:
    image = np.zeros((100, 80, 3), dtype=np.uint8)
    image[:, 0] = 200  # left column
    out = pad_and_scale(image, 0.3, 2.0)
    # A border of 0.3 x 100 = 30 px on every side, then twice the size.
    assert out.shape == ((100 + 60) * 2, (80 + 60) * 2, 3)
    assert out[out.shape[0] // 2, 0, 0] == 200  # the left edge, repeated
    assert pad_and_scale(image, 0.0, 1.0) is image
    with pytest.raises(ValueError):
        CacheSpec(pad=-0.1)


def test_a_padded_tight_crop_aligns_like_the_whole_photo(tmp_path: Path) -> None:
    """A forehead-to-chin crop of 76 px (as CelebA's), padded and upscaled,
    puts the 68 landmarks where the whole photo puts them in the aligned
    crop: the crop is the same face, only smaller and without margin."""
    photo = LFW / "Emma_Watson_0001.jpg"
    image = decode_image(photo.read_bytes())
    x1, y1, x2, y2 = FaceDetector(upsample=1).detect(image)[0].box
    tight = cv2.resize(image[y1:y2, x1:x2], (76, 76), interpolation=cv2.INTER_AREA)
    crop_file = tmp_path / "tight" / "face.png"
    crop_file.parent.mkdir()
    cv2.imwrite(str(crop_file), cv2.cvtColor(tight, cv2.COLOR_RGB2BGR))

    whole = CacheSpec(size=128, template="dlib", pick_centre=False)
    padded = CacheSpec(size=128, template="dlib", pick_centre=True, pad=0.3, scale=2.0)
    build_cache([("p", photo)], tmp_path / "whole", whole, workers=1, progress=False)
    build_cache([("p", crop_file)], tmp_path / "padded", padded, workers=1, progress=False)
    a, b = load_cache(tmp_path / "whole"), load_cache(tmp_path / "padded")
    assert len(b["person"]) == 1, "no face found in the padded tight crop"
    offsets = np.linalg.norm(a["landmarks"][0] - b["landmarks"][0], axis=1)
    assert float(np.median(offsets)) < 3.0
