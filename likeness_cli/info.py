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
    """The Embedder's model: id, fingerprint, dimension, calibrated threshold
    and operating points (with the TAR and FAR each gave on held-out people)."""
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
        ("default operating point", model.default_operating_point or "-"),
    ]
    out.stdout().print(out.key_values(f"embedder at {connection.address}", rows))
    if model.operating_points:
        table = out.table(
            "operating points (galleries pick one by name)",
            "name",
            "threshold",
            "source",
            "TAR",
            "FAR",
            "pairs (same / different)",
        )
        for p in model.operating_points:
            for r in p.rates or ():
                pairs = f"{r.genuine_pairs:,} / {r.impostor_pairs:,}"
                table.add_row(
                    p.name, f"{p.threshold:.4f}", r.source, f"{r.tar:.2%}", f"{r.far:.1e}", pairs
                )
            if not p.rates:
                table.add_row(p.name, f"{p.threshold:.4f}", "-", "-", "-", "-")
        out.stdout().print(table)


def register(app: typer.Typer) -> None:
    """Add ``info`` to ``app``."""
    app.command()(info)
