"""The training curve of a run folder."""

from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict[str, float]], path: Path) -> Path:
    """Loss terms and validation accuracy against the step, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    steps = [h["step"] for h in history]
    for key in ("loss", "triplet", "distill", "relation"):
        if any(h.get(key) for h in history):
            ax[0].plot(steps, [h.get(key, 0.0) for h in history], label=key)
    ax[0].set(xlabel="step", title="training loss")
    ax[0].legend()
    val = [(h["step"], h["val_accuracy"]) for h in history if "val_accuracy" in h]
    if val:
        ax[1].plot(*zip(*val, strict=True), marker="o")
    ax[1].set(xlabel="step", ylabel="accuracy", title="validation pair accuracy (held-out people)")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
