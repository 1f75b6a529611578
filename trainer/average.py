"""Weight averaging of finished training runs (a "model soup", Wortsman et
al. 2022): a run fine-tuned from another stays in its basin, and the mean of
the two sets of weights often generalises better than either. The shipped
model's lineage uses it once (v6.toml, stage "soup").

The result is an ordinary run folder: later stages start from it, and
evaluation and calibration work on it unchanged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainer.config import TrainConfig
from trainer.run import RunFolder


def average_runs(runs: Sequence[RunFolder], out: RunFolder) -> RunFolder:
    """Write run folder ``out`` whose final weights are the element-wise
    mean of the final weights of ``runs`` (two or more), with the last run's
    config, history and validation split. Returns ``out``.

    Raises ValueError when fewer than two runs are given, a run is
    unfinished, the runs differ in architecture, caches or validation people
    (thresholds are calibrated on those people, so none of the averaged runs
    may have trained on them), or ``out`` already holds a finished run (an
    unfinished one, left by a killed average, is written over).
    """
    from embedder.model import build_model

    if len(runs) < 2:
        raise ValueError("averaging needs at least two runs")
    last = comparable_runs(runs)
    if out.finished:
        raise ValueError(f"{out.path} already holds a run; use a new folder")

    model = build_model(last.model)
    per_run = []
    for run in runs:
        model.load_weights(str(run.final_weights))
        per_run.append([np.asarray(v.numpy(), np.float64) for v in model.weights])
    for variable, *values in zip(model.weights, *per_run, strict=True):
        variable.assign((sum(values) / len(runs)).astype(variable.dtype))

    out.path.mkdir(parents=True, exist_ok=True)
    source = runs[-1]
    for name in ("history", "val_index", "teacher_mean"):
        if getattr(source, name).exists():
            shutil.copyfile(getattr(source, name), getattr(out, name))
    out.averaged_from.write_text(
        json.dumps({"runs": [str(r.path) for r in runs], "method": "mean of final weights"})
    )
    shutil.copyfile(source.config, out.config)
    # The final weights last: they mark the run finished.
    model.save_weights(str(out.final_weights))
    return out


def comparable_runs(runs: Sequence[RunFolder]) -> TrainConfig:
    """The last run's config, after checking that every run in ``runs`` is
    finished and shares its architecture, caches and validation people.
    Raises ValueError otherwise (averages and held-out comparisons of such
    runs would mix models or leak training people into validation)."""
    if not runs:
        raise ValueError("no runs given")
    configs = []
    for run in runs:
        if not run.finished or not run.config.exists():
            raise ValueError(f"{run.path} is not a finished run (no final weights)")
        configs.append(TrainConfig.load(run.config))
    last = configs[-1]
    val = np.load(runs[-1].val_index)
    for run, cfg in zip(runs, configs, strict=True):
        # A cache is one folder however a build spelled it (--cache-dir
        # relative or absolute; relative to the folder commands run in).
        if (cfg.model, _folders(cfg.caches)) != (last.model, _folders(last.caches)):
            raise ValueError(f"{run.path} has another architecture or other caches than the last")
        if not np.array_equal(np.load(run.val_index), val):
            raise ValueError(f"{run.path} holds out other validation people than the last")
    return last


def _folders(paths: Sequence[str]) -> list[Path]:
    return [Path(p).resolve() for p in paths]


def averaged_from(run: RunFolder) -> list[str]:
    """The runs whose weights ``run`` is the mean of; [] if it was trained."""
    path = run.averaged_from
    return list(json.loads(path.read_text())["runs"]) if path.exists() else []
