"""Ensembles of finished training runs: their networks run side by side as
the towers of one model (embedder.model.build_model with ``towers`` > 1),
whose embedding is the normalised sum of the towers' unit embeddings.

Networks trained apart make partly independent errors, so their sum can
separate people better than either (docs/BENCHMARKS.md has a case where it
did not pay); each tower costs a forward pass per view, so an ensemble
serves fewer test-time views for the same time per face. The
result is an ordinary run folder: ``likeness validate``, ``evaluate`` and
``calibrate --export`` work on it unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from trainer.average import averaged_from, copy_run_record, single_runs
from trainer.train import TrainConfig

#: Written into an ensemble's run folder: its towers' runs, in tower order.
ENSEMBLE_OF = "ensemble_of.json"


def ensemble_runs(runs: Sequence[Path], out_dir: Path) -> Path:
    """Write run folder ``out_dir`` whose model has one tower per run in
    ``runs`` (two or more one-tower runs), each holding that run's final
    weights; the config, history and validation split are the last run's,
    with ``towers`` set. Returns ``out_dir``.

    Raises ValueError when fewer than two runs are given, a run is
    unfinished or already an ensemble, the runs differ in architecture,
    caches or validation people (the ensemble is calibrated on those people,
    so no tower may have trained on them), or ``out_dir`` already holds a
    run.
    """
    from embedder.model import build_model, towers

    if len(runs) < 2:
        raise ValueError("an ensemble needs at least two runs")
    configs = single_runs(runs)
    last = configs[-1]
    if (out_dir / "config.json").exists():
        raise ValueError(f"{out_dir} already holds a run; use a new folder")

    config = replace(last, model=replace(last.model, towers=len(runs)))
    model = build_model(config.model)
    for tower, run in zip(towers(model), runs, strict=True):
        tower.load_weights(str(run / "final.weights.h5"))

    out_dir.mkdir(parents=True, exist_ok=True)
    copy_run_record(runs[-1], out_dir)
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    model.save_weights(str(out_dir / "final.weights.h5"))
    members = [_member(run, cfg) for run, cfg in zip(runs, configs, strict=True)]
    (out_dir / ENSEMBLE_OF).write_text(json.dumps({"towers": members}, indent=2))
    return out_dir


def _member(run: Path, cfg: TrainConfig) -> dict[str, object]:
    member: dict[str, object] = {"run": str(run), "config": cfg.to_dict()}
    if averaged := averaged_from(run):
        member["averaged_from"] = averaged
    return member


def ensemble_members(run_dir: Path) -> list[dict[str, object]]:
    """The towers' runs and configs of an ensemble run folder, in tower
    order; [] for a single run."""
    path = run_dir / ENSEMBLE_OF
    if not path.exists():
        return []
    members: list[dict[str, object]] = json.loads(path.read_text())["towers"]
    return members
