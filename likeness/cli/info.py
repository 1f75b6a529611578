"""``likeness info``: the Embedder's model."""

from __future__ import annotations

import typer

from likeness.cli import _options as opt
from likeness.cli import _output as out


def info(
    json_output: opt.Json = False,
    embedder: opt.Embedder = opt.DEFAULT_EMBEDDER,
    api_key: opt.ApiKey = None,
    tls: opt.Tls = False,
    root_cert: opt.RootCert = None,
    timeout: opt.Timeout = opt.DEFAULT_TIMEOUT_S,
) -> None:
    """The Embedder's model: id, fingerprint, dimension and calibrated threshold."""
    with opt.connect(embedder, api_key, tls, root_cert, timeout, embedder=embedder) as client:
        model = client.info()
    if json_output:
        out.emit_json(model)
        return
    rows = [
        ("backend", model.backend),
        ("model", model.model_id),
        ("fingerprint", model.model_fingerprint),
        ("dimension", str(model.dim)),
        ("threshold", out.score(model.default_threshold)),
        ("input size", f"{model.input_size} px"),
    ]
    out.stdout().print(out.key_values(f"embedder at {embedder}", rows))


def register(app: typer.Typer) -> None:
    """Add ``info`` to ``app``."""
    app.command()(info)
