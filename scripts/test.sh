#!/usr/bin/env bash
# Second README command: install everything the tests need (the dev extra: training, the Space, pytest), then run
# the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "test.sh: installing univigu with the dev extra (training, the Space, pytest, playwright) ..."
bash scripts/install.sh dev
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
echo "test.sh: running the test suite ..."
$PY -m pytest -q -ra tests "$@"
