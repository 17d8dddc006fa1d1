#!/usr/bin/env bash
# Installs what the benchmarks compare against or measure with (not needed by the tests):
# Debian's pflogsumm (bench/reputation) and GNU time (peak RSS). parsedmarc is installed by
# bench/dmarc/run.py into bench/.work on first use. Idempotent.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/usr/local/sbin"  # pflogsumm lives in sbin

need_apt=()
command -v pflogsumm >/dev/null 2>&1 || need_apt+=(pflogsumm)
[[ -x /usr/bin/time ]] || need_apt+=(time)

if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "Missing ${need_apt[*]}: run as root or install them with apt-get" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
echo "bench tools: $(pflogsumm --version 2>/dev/null || echo 'pflogsumm missing'), GNU time"
