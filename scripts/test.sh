#!/usr/bin/env bash
# Install everything the tests need, then run all of them (slow ones included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
python3 -m ruff check src tests scripts
# pyright runs beside pytest (13 s of its own before) and is reported when pytest ends: a type error still fails
pyright_log=$(mktemp)
python3 -m pyright > "$pyright_log" 2>&1 &
pyright_pid=$!
# Three workers share two cores: OpenMP threads (PyTorch's) that spin while they wait burn the CPU the other
# workers need. Passive waiting cut a torch-heavy slice of the suite from 124 to 85 CPU-seconds.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
set +e
python3 -m pytest -v --durations=25 -n 3 --dist loadgroup "$@"  # 3 workers keep 2 cores busy (tests wait on subprocesses)
status=$?
set -e
if ! wait "$pyright_pid"; then
  cat "$pyright_log"
  echo "pyright failed" >&2
  exit 1
fi
tail -n 1 "$pyright_log"
rm -f "$pyright_log"
exit "$status"
