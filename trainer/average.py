"""Weight averaging of finished training runs (a "model soup", Wortsman et
al. 2022): a run fine-tuned from another stays in its basin, and the mean of
the two sets of weights often generalises better than either.

The result is an ordinary run folder, so ``likeness evaluate`` and
``likeness calibrate`` work on it unchanged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from trainer.train import TrainConfig

#: Written into an averaged run folder: which runs it is the mean of.
AVERAGED_FROM = "averaged_from.json"


def average_runs(runs: Sequence[Path], out_dir: Path) -> Path:
    """Write run folder ``out_dir`` whose ``final.weights.h5`` is the
    element-wise mean of the final weights of ``runs`` (two or more), with
    the last run's config, history and validation split. Returns ``out_dir``.

    Raises ValueError when fewer than two runs are given, a run is
    unfinished, the runs differ in architecture, caches or validation people
    (thresholds are calibrated on those people, so none of the averaged runs
    may have trained on them), or ``out_dir`` already holds a run.
    """
    from embedder.model import build_model

    if len(runs) < 2:
        raise ValueError("averaging needs at least two runs")
    last = single_runs(runs)[-1]
    if (out_dir / "config.json").exists():
        raise ValueError(f"{out_dir} already holds a run; use a new folder")

    model = build_model(last.model)
    per_run = []
    for run in runs:
        model.load_weights(str(run / "final.weights.h5"))
        per_run.append([np.asarray(v.numpy(), np.float64) for v in model.weights])
    for variable, *values in zip(model.weights, *per_run, strict=True):
        variable.assign((sum(values) / len(runs)).astype(variable.dtype))

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(runs[-1] / "config.json", out_dir / "config.json")
    copy_run_record(runs[-1], out_dir)
    model.save_weights(str(out_dir / "final.weights.h5"))
    (out_dir / AVERAGED_FROM).write_text(
        json.dumps({"runs": [str(r) for r in runs], "method": "mean of final weights"}, indent=2)
    )
    return out_dir


def comparable_runs(runs: Sequence[Path]) -> TrainConfig:
    """The last run's config, after checking that every run in ``runs`` is
    finished and shares its architecture (the number of towers aside: an
    ensemble is compared with its members), caches and validation people.
    Raises ValueError otherwise (averages and held-out comparisons of such
    runs would mix models or leak training people into validation)."""
    return _comparable_configs(runs)[-1]


def single_runs(runs: Sequence[Path]) -> list[TrainConfig]:
    """The configs of ``runs``, after the checks of :func:`comparable_runs`
    and refusing ensembles (ValueError): weights are averaged, and towers
    joined, one network at a time."""
    configs = _comparable_configs(runs)
    for run, cfg in zip(runs, configs, strict=True):
        if cfg.model.towers != 1:
            raise ValueError(f"{run} is an ensemble: average or join single runs, not ensembles")
    return configs


def copy_run_record(run: Path, out_dir: Path) -> None:
    """Copy what a run folder records besides its config and weights
    (history, validation split, teacher mean; those it has) into
    ``out_dir``, for a run derived from it."""
    for name in ("history.json", "val_index.npy", "teacher_mean.npy"):
        if (run / name).exists():
            shutil.copyfile(run / name, out_dir / name)


def averaged_from(run: Path) -> list[str]:
    """The runs whose weights ``run`` is the mean of; [] if it was trained."""
    path = run / AVERAGED_FROM
    return list(json.loads(path.read_text())["runs"]) if path.exists() else []


def _comparable_configs(runs: Sequence[Path]) -> list[TrainConfig]:
    if not runs:
        raise ValueError("no runs given")
    configs = [_finished_config(run) for run in runs]
    last = configs[-1]
    val = np.load(runs[-1] / "val_index.npy")
    for run, cfg in zip(runs, configs, strict=True):
        if (replace(cfg.model, towers=1), cfg.caches) != (
            replace(last.model, towers=1),
            last.caches,
        ):
            raise ValueError(f"{run} has another architecture or other caches than {runs[-1]}")
        if not np.array_equal(np.load(run / "val_index.npy"), val):
            raise ValueError(f"{run} holds out other validation people than {runs[-1]}")
    return configs


def _finished_config(run: Path) -> TrainConfig:
    if not (run / "final.weights.h5").exists() or not (run / "config.json").exists():
        raise ValueError(f"{run} is not a finished run (no final.weights.h5)")
    return TrainConfig.read(run)
