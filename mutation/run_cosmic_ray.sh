#!/usr/bin/env bash
# Mutation testing with cosmic-ray over the modules where a silent bug costs
# users most, each against its own test files (mutation/cosmic-ray/*.toml).
# Runs in a copy of the committed tree (cosmic-ray edits sources in place), at
# nice 10. Outside CI: it takes tens of minutes on 2 cores.
#
#   mutation/run_cosmic_ray.sh [session ...]   (default: every session)
#   MUTATION_DIR=/tmp/likeness-mutation        where the copy and results go
#   MUTATION_DEADLINE=10:15                    (optional, UTC HH:MM) stop there
#   MUTATION_RESUME=1                          keep the copy and results, run what is left
#   MUTATION_RERUN_SURVIVORS=1                 (with RESUME) survivors again, current tests
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PY:-$root/.venv/bin/python}"
bin="$(dirname "$py")"
work="${MUTATION_DIR:-/tmp/likeness-mutation}"
sessions=("$@")
if [ ${#sessions[@]} -eq 0 ]; then
  sessions=(selection quality_gates matching auth validate store_faces store_edge)
fi
# MUTATION_RESUME=1 keeps the copy and the sessions' results, running what is left.
if [ -z "${MUTATION_RESUME:-}" ]; then
  rm -rf "$work/tree" "$work/results" && mkdir -p "$work/tree" "$work/results"
  (cd "$root" && git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "$work/tree")
fi
# MUTATION_RERUN_SURVIVORS=1 (with MUTATION_RESUME=1) refreshes the copy's
# tests and mutation configs from this checkout and runs each session's
# survivors again, against the tests added since.
if [ -n "${MUTATION_RERUN_SURVIVORS:-}" ]; then
  (cd "$root" && git ls-files -z tests mutation | xargs -0 tar -cf - | tar -xf - -C "$work/tree")
fi
cd "$work/tree"
export PYTHONPATH="$work/tree"
export PATH="$bin:$PATH"
for s in "${sessions[@]}"; do
  db="$work/results/$s.sqlite"
  fresh=""
  if [ -z "${MUTATION_RESUME:-}" ] || [ ! -s "$db" ]; then
    fresh=1
    "$bin/cosmic-ray" init "mutation/cosmic-ray/$s.toml" "$db" --force
    if grep -q "line-filter" "mutation/cosmic-ray/$s.toml"; then
      "$bin/cr-filter-lines" --config "mutation/cosmic-ray/$s.toml" "$db"
    fi
    "$py" mutation/filter_annotations.py "$db"
  fi
  if [ -n "${MUTATION_RERUN_SURVIVORS:-}" ] && [ -z "$fresh" ]; then
    "$py" mutation/summary.py --reset-survivors "$db"
  fi
  if [ -n "${MUTATION_DEADLINE:-}" ]; then
    left=$(( $(date -u -d "$MUTATION_DEADLINE" +%s) - $(date -u +%s) ))
    [ "$left" -gt 0 ] || { echo "deadline reached before $s"; break; }
    nice -n 10 timeout "$left" "$bin/cosmic-ray" exec "mutation/cosmic-ray/$s.toml" "$db" || true
  else
    nice -n 10 "$bin/cosmic-ray" exec "mutation/cosmic-ray/$s.toml" "$db"
  fi
  "$bin/cr-report" "$db" --show-pending > "$work/results/$s.txt" || true
  tail -n 3 "$work/results/$s.txt"
done
