#!/usr/bin/env bash
# GPU check of the population engine: installs the carried wheels, fetches ml-100k from the carried
# recbole wheel, runs `scripts/bench.py --gpu-profile` (P in {1, 8, 64, 128}, chunks {1, 8, P}),
# after the search of configs/ml100k_paper.yaml (the issue-9 protocol at a GPU budget), and
# prints the search's summary.md and the bench table.
#
# For a GPU machine with Python 3.12 + jax 0.11.2 (CUDA) preinstalled and no network. Prepare the
# wheels here (pure-python ones; versions as in /work/venv311), kept in the git-ignored .whl/:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       jraph evosax flax optax orbax-checkpoint ... recbole==1.2.1
# then run from the repository root, carrying .whl:
#   run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=420)
# Output: $OUT/bench.log (the table, PASS/FAIL lines) and $OUT/bench.json (written after every
# row, so a run cut short keeps what it measured), $OUT/search.log and $OUT/run/ (the search's run
# directory). Budget: ~1 min setup + <= SEARCH_TIMEOUT_S (default 360 s) of search + <=
# BENCH_TIMEOUT_S (default 150 s) of benchmark: at most 9 minutes of device time in all.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/jgnas_out}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT" "$SITE"
shopt -s nullglob
wheels=()
for w in .whl/*.whl; do
  case "$(basename "$w")" in recbole-*) ;; *) wheels+=("$w") ;; esac  # recbole: data only
done
if ((${#wheels[@]})); then
  python3 -m pip install -q --no-index --no-deps --target "$SITE" "${wheels[@]}"
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export JGNAS_DATA=${JGNAS_DATA:-/tmp/jgnas_data}
python3 -m jgnas.cli data fetch ml-100k --wheel .whl/recbole-1.2.1-py3-none-any.whl
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader || true
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
t0=$(date +%s)
timeout "${SEARCH_TIMEOUT_S:-360}" python3 -m jgnas.cli search --config configs/ml100k_paper.yaml \
  --out "$OUT/run" ${SEARCH_SET:-} 2>&1 | tee "$OUT/search.log" || echo "search: stopped (exit $?)"
t1=$(date +%s)
timeout "${BENCH_TIMEOUT_S:-150}" python3 scripts/bench.py --gpu-profile --out "$OUT/bench.json" \
  2>&1 | tee "$OUT/bench.log" || echo "bench: stopped (exit $?)"
t2=$(date +%s)
echo "== device check: search $((t1 - t0)) s, bench $((t2 - t1)) s =="
cat "$OUT/run/summary.md" 2>/dev/null || echo "(no summary.md: the search did not finish)"
