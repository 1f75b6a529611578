"""Run folders: every file name inside a training run, and inside the
folder a recipe is built into, is spelled here and nowhere else.

A build folder (``runs/<recipe>/``) holds a copy of the recipe, the report
of the data read, one run folder per stage and the exported artifact. A run
folder holds a stage's config, checkpoint, history, validation split,
teacher mean, final weights and, for the last stage, its evaluation and
calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedder.manifest import MANIFEST


@dataclass(frozen=True)
class RunFolder:
    """One stage's run."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def final_weights(self) -> Path:
        """Written when the stage finished; its existence marks it done."""
        return self.path / "final.weights.h5"

    @property
    def checkpoint(self) -> Path:
        """Holds one folder per saved step and the pointer to the current one."""
        return self.path / "checkpoint"

    @property
    def checkpoint_pointer(self) -> Path:
        """A text file naming the current step folder; replaced in one rename,
        so a run killed inside a save resumes the previous step whole."""
        return self.checkpoint / "current"

    def checkpoint_step(self, step: int) -> Path:
        """The folder a save at ``step`` is written into."""
        return self.checkpoint / f"step-{step:08d}"

    @property
    def current_checkpoint(self) -> Path:
        """The folder the pointer names; a checkpoint written before the
        pointer existed kept its files in ``checkpoint/`` itself."""
        if self.checkpoint_pointer.exists():
            return self.checkpoint / self.checkpoint_pointer.read_text().strip()
        return self.checkpoint

    @property
    def checkpoint_weights(self) -> Path:
        return self.current_checkpoint / "model.weights.h5"

    @property
    def checkpoint_optimizer(self) -> Path:
        """Optimizer variables and dropout RNG states (.npz)."""
        return self.current_checkpoint / "optimizer.npz"

    @property
    def checkpoint_margin_head(self) -> Path:
        """The margin head's centres (.npy), for a stage that has one."""
        return self.current_checkpoint / "margin_head.npy"

    @property
    def checkpoint_state(self) -> Path:
        """The step reached and the history so far (JSON); its existence
        marks a resumable run."""
        return self.current_checkpoint / "state.json"

    @property
    def history(self) -> Path:
        return self.path / "history.json"

    @property
    def training_curve(self) -> Path:
        return self.path / "training_curve.png"

    @property
    def val_index(self) -> Path:
        """Rows of the held-out (validation) faces in the stage's caches (.npy)."""
        return self.path / "val_index.npy"

    @property
    def margin_head(self) -> Path:
        """A finished stage's margin head: its classes (people) and centres
        (.npz; trainer.margin_head). Training only: the export never reads it,
        and a stage started from this one continues from it."""
        return self.path / "margin_head.npz"

    @property
    def teacher_mean(self) -> Path:
        return self.path / "teacher_mean.npy"

    @property
    def averaged_from(self) -> Path:
        """For a weight-average stage: the runs it is the mean of (JSON)."""
        return self.path / "averaged_from.json"

    @property
    def evaluation(self) -> Path:
        return self.path / "evaluation.json"

    @property
    def roc_plot(self) -> Path:
        return self.path / "roc_devtest.png"

    @property
    def calibration(self) -> Path:
        return self.path / "calibration.json"

    @property
    def test_sets(self) -> Path:
        """The test-set rows of ``likeness-train test-sets`` (JSON;
        trainer.test_sets), measured once, after the model was chosen."""
        return self.path / "test-sets.json"

    @property
    def finished(self) -> bool:
        return self.final_weights.exists()

    def weights(self) -> Path:
        """The final weights, or the last checkpoint's of an unfinished run."""
        return self.final_weights if self.finished else self.checkpoint_weights


@dataclass(frozen=True)
class BuildFolder:
    """Where a recipe is built: ``runs/<recipe name>/``."""

    path: Path

    @property
    def recipe(self) -> Path:
        """The recipe file as it was when the build started."""
        return self.path / "recipe.toml"

    @property
    def arm(self) -> Path:
        """For a build of one arm of the recipe's ablation: the arm's name."""
        return self.path / "arm.txt"

    @property
    def data_report(self) -> Path:
        """Images, people and faces found per source (JSON; the model card's)."""
        return self.path / "data.json"

    @property
    def artifact(self) -> Path:
        """The exported model (embedder.manifest), ready to serve."""
        return self.path / "model"

    @property
    def artifact_manifest(self) -> Path:
        """Written last by the export: its existence marks the build done."""
        return self.artifact / MANIFEST

    def stage(self, name: str) -> RunFolder:
        return RunFolder(self.path / name)
