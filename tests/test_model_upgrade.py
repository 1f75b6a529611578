"""The default model changed (v6 to v7c, issue 22): a gallery enrolled with
v6 stays valid, bound to v6. Asserted as an operator lives it, with real
Embedders and one Registry store on loopback: the new default refuses the
v6 gallery with MODEL_MISMATCH and loses nothing; v6, still shipped in
``embedder/models/likeness-mobilenet-v6``, serves it again; a new gallery
takes the new model (docs/OPERATIONS.md, "7. Upgrading").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_helpers import running_embedder, running_registry

from embedder.manifest import read_manifest
from likeness.client import FailedPreconditionError, LikenessClient, Reason

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "embedder" / "models"
V6 = MODELS / "likeness-mobilenet-v6"
LFW = Path(__file__).resolve().parent / "data" / "lfw"


def _photo(name: str) -> bytes:
    return (LFW / f"{name}.jpg").read_bytes()


def test_a_v6_gallery_outlives_the_model_change(tmp_path: Path) -> None:
    v6 = read_manifest(V6)
    default = read_manifest(MODELS / "likeness-mobilenet")
    assert v6.fingerprint != default.fingerprint, "the default model is no longer v6"

    with (
        running_embedder(model_dir=V6) as embedder,
        running_registry(tmp_path, embedder) as registry,
        LikenessClient(f"127.0.0.1:{registry.port}", embedder, timeout_s=60) as client,
    ):
        assert client.create_gallery("staff").model_fingerprint == v6.fingerprint
        client.enroll("emma", [_photo("Emma_Watson_0001")], gallery="staff")
        before = client.verify("emma", _photo("Emma_Watson_0002"), gallery="staff")
        assert before.match and before.threshold == pytest.approx(v6.default_threshold)

    with (
        running_embedder() as embedder,
        running_registry(tmp_path, embedder) as registry,
        LikenessClient(f"127.0.0.1:{registry.port}", embedder, timeout_s=60) as client,
    ):
        with pytest.raises(FailedPreconditionError) as refused:
            client.verify("emma", _photo("Emma_Watson_0002"), gallery="staff")
        assert refused.value.reason == Reason.MODEL_MISMATCH
        with pytest.raises(FailedPreconditionError) as refused:
            client.enroll("emma", [_photo("Emma_Watson_0003")], gallery="staff")
        assert refused.value.reason == Reason.MODEL_MISMATCH
        stats = client.stats(gallery="staff")
        assert (stats.faces, stats.gallery.model_fingerprint) == (1, v6.fingerprint)

        moved = client.create_gallery("staff-new")
        assert moved.model_fingerprint == default.fingerprint
        assert moved.threshold == pytest.approx(default.default_threshold)
        client.enroll("emma", [_photo("Emma_Watson_0001")], gallery="staff-new")
        assert client.verify("emma", _photo("Emma_Watson_0002"), gallery="staff-new").match

    with (
        running_embedder(model_dir=V6) as embedder,
        running_registry(tmp_path, embedder) as registry,
        LikenessClient(f"127.0.0.1:{registry.port}", embedder, timeout_s=60) as client,
    ):
        again = client.verify("emma", _photo("Emma_Watson_0002"), gallery="staff")
        assert again.match and again.score == pytest.approx(before.score, abs=1e-4)
