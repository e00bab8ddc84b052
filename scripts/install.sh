#!/usr/bin/env bash
# Install univigu (editable) with the extras named in $1 (default: dev = training + the Space + pytest, playwright),
# every version constrained by constraints.txt (the versions the pinned outputs need). scripts/demo.sh asks for
# `inference` only. torch comes first, from constraints.txt, where no torch is present (on this project's machines
# the CPU build); install the torch build you want first to use a GPU: a different installed torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${1:-dev}
CONSTRAINTS=constraints.txt
TORCH_PIN=$(sed -n 's/^torch==\([^ ;#]*\).*/\1/p' constraints.txt)
if ! $PY -c "import torch" 2>/dev/null; then
  echo "install.sh: no torch found; installing torch==$TORCH_PIN (about 200 MB for the CPU build) ..."
  $PY -m pip install -q -c constraints.txt "torch==$TORCH_PIN"
else
  HAVE=$($PY -c "import torch; print(torch.__version__.split('+')[0])")
  if [ "$HAVE" != "$TORCH_PIN" ]; then
    echo "install.sh: keeping the installed torch $HAVE (constraints.txt: $TORCH_PIN; the pinned training tests will skip)"
    CONSTRAINTS=$(mktemp)
    trap 'rm -f "$CONSTRAINTS"' EXIT
    grep -v '^torch==' constraints.txt > "$CONSTRAINTS"
  fi
fi
echo "install.sh: pip install -c constraints.txt -e \".[$EXTRAS]\" ..."
$PY -m pip install -q -c "$CONSTRAINTS" -e ".[$EXTRAS]"
# The Space's browser test drives Debian's Chromium through playwright (no browser download). In CI, install it
# when missing; elsewhere the test skips and says why.
case ",$EXTRAS," in
  *,dev,*)
    if [ "${CI:-}" = "true" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
      echo "install.sh: installing Debian's chromium for the Space's browser test ..."
      (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
        || echo "warning: could not install chromium; tests/test_space.py::test_in_a_real_browser will skip"
    fi
    ;;
esac
echo "install.sh: done (univigu[$EXTRAS])"
