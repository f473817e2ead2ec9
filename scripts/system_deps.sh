#!/usr/bin/env bash
# Install the Debian packages Mailferry's run, tests and bench use, only those whose command is missing.
#   scripts/system_deps.sh redis            redis-server (the run command and the tests start their own)
#   scripts/system_deps.sh postfix          smtp-sink / smtp-source / postfix (bench baselines, test sinks)
#   scripts/system_deps.sh chromium         Debian's chromium for the Playwright dashboard tests
#   scripts/system_deps.sh rspamd           the spam scanner (tests start a private one; `make run` too)
set -euo pipefail

declare -A COMMAND=([redis]=redis-server [postfix]=smtp-sink [chromium]=chromium [rspamd]=rspamd)
declare -A PACKAGE=([redis]=redis-server [postfix]="postfix" [chromium]="chromium" [rspamd]="rspamd")

missing=()
for want in "$@"; do
  cmd=${COMMAND[$want]:?unknown dependency $want}
  if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$cmd ]]; then
    missing+=(${PACKAGE[$want]})
  fi
done
((${#missing[@]})) || exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "mailferry: missing Debian packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "mailferry: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# postfix asks how to configure itself; we only use its tools and private instances.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}
