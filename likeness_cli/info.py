"""``likeness info``: the Embedder's model."""

from __future__ import annotations

import typer

from likeness_cli import _options as opt
from likeness_cli import _output as out


@opt.connected(embedder=True)
def info(
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """The Embedder's model: id, fingerprint, dimension and calibrated threshold."""
    with connection.client() as client:
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
    out.stdout().print(out.key_values(f"embedder at {connection.address}", rows))


def register(app: typer.Typer) -> None:
    """Add ``info`` to ``app``."""
    app.command()(info)
