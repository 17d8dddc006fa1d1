#!/usr/bin/env bash
# The C modules under AddressSanitizer and UndefinedBehaviorSanitizer: the Postfix log scanner
# (src/inboxops/reputation/_scan*.c/.h), the store's digest (src/inboxops/reputation/_digest.c)
# and the DMARC record walk (src/inboxops/dmarc/_walk.c). A copy of src/ gets sanitized builds, and the tests that drive them (each against its
# Python reference, the parsers' examples, the fast paths) run against that copy. Any
# out-of-bounds read, use after free or undefined behaviour stops the run. Python's own
# allocator is switched off so that ASan sees every object.
#
#   bash scripts/check-c-sanitizers.sh [.venv/bin/python]
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
for module in reputation/_scan reputation/_digest dmarc/_walk; do
    "$CC" -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
        -fno-sanitize-recover=undefined -Wall -Wextra -Werror -fPIC -shared -I"$include" \
        "$work/src/inboxops/$module.c" -o "$work/src/inboxops/$module$suffix"
done
export LD_PRELOAD="$("$CC" -print-file-name=libasan.so) $("$CC" -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 PYTHONMALLOC=malloc PYTHONPATH="$work/src"
"$PY" -c 'import sys, inboxops.reputation.parse as p, inboxops.dmarc.parse as d, inboxops.dmarc.records as r
import inboxops.reputation._digest as g, inboxops.reputation.collect as c
ok = p._scan and p._scan.__file__.startswith(sys.argv[1])
ok = ok and c.FAST_DIGEST is not None and g.__file__.startswith(sys.argv[1])
ok = ok and d.FAST_RECORD and r._walk.__file__.startswith(sys.argv[1])
sys.exit(0 if ok else "not the sanitized builds")' "$work"
"$PY" -m pytest -q -s -p no:cacheprovider tests/test_reputation_scan.py \
    tests/test_reputation_parse.py tests/test_reputation_speed_paths.py tests/test_reputation_digest.py \
    tests/test_dmarc_walk.py tests/test_parse.py tests/test_parse_dialects.py \
    tests/test_parse_speed_paths.py
echo "C modules: clean under ASan and UBSan"
