#!/usr/bin/env bash
# The C scanner (src/inboxops/reputation/_scan*.c/.h) under AddressSanitizer and
# UndefinedBehaviorSanitizer: a copy of src/ gets a sanitized build of the module, and the tests
# that drive it (the scanner against the Python loop, the parser's examples, the fast paths)
# run against that copy. Any out-of-bounds read, use after free or undefined behaviour stops
# the run. Python's own allocator is switched off so that ASan sees every object.
#
#   bash scripts/check-scan-sanitizers.sh [.venv/bin/python]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
CC=${CC:-gcc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r src "$work/src"
find "$work/src" -name '*.so' -delete
include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
"$CC" -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
    -fno-sanitize-recover=undefined -Wall -Wextra -Werror -fPIC -shared -I"$include" \
    "$work/src/inboxops/reputation/_scan.c" -o "$work/src/inboxops/reputation/_scan$suffix"
export LD_PRELOAD="$("$CC" -print-file-name=libasan.so) $("$CC" -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 PYTHONMALLOC=malloc PYTHONPATH="$work/src"
"$PY" -c 'import sys, inboxops.reputation.parse as p
sys.exit(0 if p._scan and p._scan.__file__.startswith(sys.argv[1]) else "not the sanitized build")' \
    "$work"
"$PY" -m pytest -q -s -p no:cacheprovider tests/test_reputation_scan.py \
    tests/test_reputation_parse.py tests/test_reputation_speed_paths.py
echo "scanner: clean under ASan and UBSan"
