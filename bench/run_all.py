"""``make bench``: every benchmark with its default settings, one after another.

Each writes its figures to stdout; docs/BENCHMARKS.md records them with the
command and machine. The store benchmark's 1M-face size takes long on 2
cores, so this runs 10k and 100k; pass ``--sizes`` to bench.bench_store for more.
"""

from __future__ import annotations

import subprocess
import sys

COMMANDS = (
    [sys.executable, "-m", "bench.bench_embedder", "--images", "500"],
    [sys.executable, "-m", "bench.bench_store", "--sizes", "10000,100000"],
)


def main() -> int:
    for command in COMMANDS:
        print("$", " ".join(command[1:]), flush=True)
        code = subprocess.call(command)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
