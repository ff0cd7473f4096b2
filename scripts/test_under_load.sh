#!/usr/bin/env bash
# Run the test suite RUNS times (default 3) in a row while a CPU burner loads the machine, print each run's wall
# time, and exit non-zero if any run failed: the check that the suite waits on conditions, not on the clock.
#
#   scripts/test_under_load.sh [RUNS]          or   make test-load [RUNS=3] [PYTEST_ARGS=...]
#
# Environment:
#   RUNS         how many runs (default 3; an argument wins)
#   PYTEST_ARGS  passed to pytest (default: the whole suite), e.g. PYTEST_ARGS=tests/protocols
#   PYTEST_WORKERS  pytest-xdist workers, as `make test` runs them (default 2; 0 = one process)
#   BURNERS      CPU workers beside the suite (default 4): `stress-ng --cpu N` when installed (scripts/bootstrap.sh
#                installs it), else N Python busy loops
#   BURNER       auto (default), stress-ng or python: which burner
#   VENV         the virtualenv with pytest (default .venv)
#   VAORA_TEST_TIMEOUT_SCALE  left as it is (unset = 1): the run shows the suite holds with its usual ceilings
# The burner is started by this script, and only it is stopped at the end (by its process ids).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS="${1:-${RUNS:-3}}"
BURNERS="${BURNERS:-4}"
BURNER="${BURNER:-auto}"
VENV="${VENV:-.venv}"
WORKERS="${PYTEST_WORKERS:-2}"
PYTEST="$VENV/bin/pytest"
read -r -a PYTEST_ARGV <<< "${PYTEST_ARGS:-}"

say() { printf 'test-load: %s\n' "$*"; }

if ! [[ "$RUNS" =~ ^[1-9][0-9]*$ ]]; then
    say "RUNS must be a positive whole number, not '$RUNS'" >&2
    exit 2
fi
if [ ! -x "$PYTEST" ]; then
    say "no pytest at $PYTEST (run scripts/bootstrap.sh, or set VENV)" >&2
    exit 2
fi

burner_pids=()
stop_burner() {
    local pid
    for pid in "${burner_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${burner_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    burner_pids=()
}
trap stop_burner EXIT
trap 'exit 130' INT TERM

if [ "$BURNER" = auto ]; then
    BURNER=python
    command -v stress-ng >/dev/null 2>&1 && BURNER=stress-ng
fi
if [ "$BURNER" = stress-ng ]; then
    stress-ng --cpu "$BURNERS" --quiet &
    burner_pids+=("$!")
    say "load: stress-ng --cpu $BURNERS (pid ${burner_pids[*]})"
else
    for _ in $(seq "$BURNERS"); do
        "$VENV/bin/python" -c 'while True: pass' &
        burner_pids+=("$!")
    done
    say "load: $BURNERS Python busy loops (pids ${burner_pids[*]})"
fi
sleep 5  # let the load average climb before the first run
say "suite: $PYTEST -n $WORKERS ${PYTEST_ARGV[*]:-(whole suite)}; VAORA_TEST_TIMEOUT_SCALE=${VAORA_TEST_TIMEOUT_SCALE:-1}"

failed=0
summary=()
for run in $(seq "$RUNS"); do
    say "run $run/$RUNS starts, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    started=$(date +%s.%N)
    if "$PYTEST" -p no:cacheprovider -n "$WORKERS" --dist loadscope "${PYTEST_ARGV[@]}"; then
        result="passed"
    else
        result="FAILED (exit $?)"
        failed=$((failed + 1))
    fi
    seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    line="run $run/$RUNS: $result in ${seconds} s wall, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    summary+=("$line")
    say "$line"
done

stop_burner
say "summary ($BURNERS CPU burners on $(nproc) cores):"
for line in "${summary[@]}"; do
    say "  $line"
done
if [ "$failed" -gt 0 ]; then
    say "$failed of $RUNS runs failed"
    exit 1
fi
say "all $RUNS runs passed"
