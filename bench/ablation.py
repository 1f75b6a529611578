"""Loss-term ablation: the shipped recipe (trainer.recipe) on a short,
equal training budget, with and without the distillation term, each
evaluated on LFW View 1 (reporting only: nothing is tuned on pairsDevTest).

    .venv/bin/python -m bench.ablation --lfw ../shared/datasets/lfw \
        --unlabelled ../shared/datasets/utkface/crop_part1 \
        --imagenet-weights ../shared/weights/mobilenet_v2_a0.35_224_no_top_imagenet.npz \
        --steps 500

Reuses the caches of ``likeness train`` (``--cache-dir``, default ``cache``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from trainer.recipe import BASE
from trainer.workflow import evaluate, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--unlabelled", type=Path)
    parser.add_argument("--imagenet-weights", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    results = {}
    variants = (("triplet only", 0.0), ("triplet + distillation", BASE.distill_weight))
    for name, distill in variants:
        run = args.out / ("distill" if distill else "triplet")
        started = time.monotonic()
        run_training(
            args.lfw,
            args.cache_dir,
            run,
            unlabelled=args.unlabelled,
            imagenet_weights=args.imagenet_weights,
            recipe=replace(BASE, steps=args.steps, distill_weight=distill),
        )
        minutes = (time.monotonic() - started) / 60
        table, _ = evaluate(args.lfw, args.cache_dir, run, run)
        results[name] = {"minutes": round(minutes, 1), "table": table}
        print(f"## {name} ({args.steps} steps, {minutes:.1f} min)\n{table}\n", flush=True)
    (args.out / "ablation.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
