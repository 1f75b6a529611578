"""Loss-term ablation: a recipe's first stage (default: the shipped model's,
trainer/recipes/v6.toml) on a short, equal training budget, with and
without the distillation term, each evaluated on LFW View 1 (reporting
only: nothing is tuned on pairsDevTest).

    .venv/bin/python -m bench.ablation trainer/recipes/v6.toml --steps 500

Reuses the recipe's caches (``--cache-dir``, default ``cache``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from trainer.build import Build, run_build
from trainer.evaluate import evaluate_run
from trainer.recipe import load_recipe
from trainer.run import BuildFolder
from trainer.sources import evaluation_caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recipe", type=Path, nargs="?", default=Path("trainer/recipes/v6.toml"))
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    first = recipe.stages[0]
    results = {}
    variants = (("triplet only", 0.0), ("triplet + distillation", first.settings["distill_weight"]))
    for name, distill in variants:
        stage = replace(
            first, settings={**first.settings, "steps": args.steps, "distill_weight": distill}
        )
        variant = replace(recipe, stages=(stage,))
        build = Build(
            variant, BuildFolder(args.out / ("distill" if distill else "triplet")), args.cache_dir
        )
        started = time.monotonic()
        run_build(build, only=stage.name)
        minutes = (time.monotonic() - started) / 60
        caches = evaluation_caches(variant, args.cache_dir, build.workers)
        table = evaluate_run(build.run(stage), variant.lfw, caches, variant.test_views)
        results[name] = {"minutes": round(minutes, 1), "table": table}
        print(f"## {name} ({args.steps} steps, {minutes:.1f} min)\n{table}\n", flush=True)
    (args.out / "ablation.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
