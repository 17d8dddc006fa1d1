#!/usr/bin/env bash
# Installs the real services the test suite talks to on loopback. Idempotent.
# Dovecot (IMAP) and Postfix come from Debian's packages when we are root; PostgreSQL is expected
# to be running on 127.0.0.1:5432 already (as on the CI machine). The tests run Postfix as
# private instances from temp dirs (tests/servers/postfix.py), never the system one.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/usr/local/sbin"  # a CI job's PATH may lack sbin, where dovecot lives

need_apt=()
command -v dovecot >/dev/null 2>&1 || need_apt+=(dovecot-imapd)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # self-signed certs for IMAPS tests
command -v postfix >/dev/null 2>&1 || need_apt+=(postfix)  # real MTA logs for the reputation tests

if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "Missing ${need_apt[*]}: run as root or install them with apt-get" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [[ " ${need_apt[*]} " == *" postfix "* ]]; then
    # "No configuration": no /etc/postfix/main.cf is written, so the package starts no
    # system-wide Postfix and nothing listens on port 25.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  fi
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
echo "test services: dovecot $(dovecot --version 2>/dev/null || echo missing)," \
  "postfix $(postconf -dh mail_version 2>/dev/null || echo missing)"
