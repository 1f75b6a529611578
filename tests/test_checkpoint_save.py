"""The trainer's checkpoint save is atomic as a whole: a run killed at any
line inside it resumes either the previous checkpoint or the new one, each
whole (weights, optimizer state and step from the same save), never a mix.

The kill is simulated at every line of ``_save_checkpoint`` in turn with a
trace function that raises there (nothing in the save catches it, so what
is left on disk is what a SIGKILL at that line would leave).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from trainer import train as train_module
from trainer.run import RunFolder

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword"
)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing catches it."""


def _model_and_optimizer() -> tuple[Any, Any]:
    inputs = tf.keras.Input((4,))
    hidden = tf.keras.layers.Dropout(0.5, seed=1)(tf.keras.layers.Dense(3)(inputs))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(hidden))
    optimizer = tf.keras.optimizers.AdamW(learning_rate=0.01)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _floats(model: Any, optimizer: Any) -> list[Any]:
    return [
        var
        for var in [*model.trainable_variables, *optimizer.variables]
        if np.issubdtype(var.numpy().dtype, np.floating)
    ]


def _set_all(model: Any, optimizer: Any, value: float) -> None:
    """Give every weight and optimizer slot a value that names the save."""
    for var in _floats(model, optimizer):
        var.assign(np.full_like(var.numpy(), value))


def _values(model: Any, optimizer: Any) -> set[float]:
    return {float(v) for var in _floats(model, optimizer) for v in np.ravel(var.numpy())}


def _save_killed_at_line(run: RunFolder, model: Any, optimizer: Any, kill_at: int) -> bool:
    """Save step 20, raising _Killed at the ``kill_at``-th line executed in
    the save itself; True when the save got that far (and was killed)."""
    code = train_module._save_checkpoint.__code__
    lines = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal lines
        if frame.f_code is not code:
            return None
        if event == "line":
            lines += 1
            if lines == kill_at:
                raise _Killed
        return tracer

    sys.settrace(tracer)
    try:
        train_module._save_checkpoint(run, model, optimizer, 20, [{"step": 20.0}])
    except _Killed:
        return True
    finally:
        sys.settrace(None)
    return False


def test_a_run_killed_at_any_line_of_the_save_resumes_one_whole_checkpoint(
    tmp_path: Path,
) -> None:
    kill_at, outcomes = 1, set()
    while True:
        run = RunFolder(tmp_path / f"kill-{kill_at}")
        model, optimizer = _model_and_optimizer()
        _set_all(model, optimizer, 1.0)
        train_module._save_checkpoint(run, model, optimizer, 10, [{"step": 10.0}])
        _set_all(model, optimizer, 2.0)
        killed = _save_killed_at_line(run, model, optimizer, kill_at)

        fresh, fresh_optimizer = _model_and_optimizer()
        _set_all(fresh, fresh_optimizer, 0.0)
        assert run.checkpoint_state.exists()
        step, history = train_module._load_checkpoint(run, fresh, fresh_optimizer)
        values = _values(fresh, fresh_optimizer)
        # Weights, optimizer slots, step and history all come from one save.
        assert (step, history, values) in [
            (10, [{"step": 10.0}], {1.0}),
            (20, [{"step": 20.0}], {2.0}),
        ], f"killed at line {kill_at}: step {step}, values {values}"
        outcomes.add(step)
        if not killed:
            break
        kill_at += 1
    # Early kills keep step 10, late ones and the finished save give step 20.
    assert outcomes == {10, 20}
    assert kill_at > 10


def test_a_finished_save_keeps_only_the_current_step(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    model, optimizer = _model_and_optimizer()
    for step in (10, 20, 30):
        train_module._save_checkpoint(run, model, optimizer, step, [])
    assert sorted(p.name for p in run.checkpoint.iterdir()) == ["current", "step-00000030"]
    assert run.checkpoint_state.parent == run.checkpoint_step(30)


def test_a_checkpoint_in_the_layout_before_the_pointer_still_resumes(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    model, optimizer = _model_and_optimizer()
    _set_all(model, optimizer, 3.0)
    train_module._save_checkpoint(run, model, optimizer, 7, [])
    folder = run.current_checkpoint
    for f in folder.iterdir():
        f.rename(run.checkpoint / f.name)
    folder.rmdir()
    run.checkpoint_pointer.unlink()

    fresh, fresh_optimizer = _model_and_optimizer()
    assert train_module._load_checkpoint(run, fresh, fresh_optimizer)[0] == 7
    assert _values(fresh, fresh_optimizer) == {3.0}
    train_module._save_checkpoint(run, fresh, fresh_optimizer, 8, [])
    assert sorted(p.name for p in run.checkpoint.iterdir()) == ["current", "step-00000008"]
