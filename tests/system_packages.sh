#!/usr/bin/env bash
# Installs the Debian packages some tests need (listed in tests/system-packages.txt), when they
# are missing and we may: as root with apt-get. Otherwise it says what is missing and exits 0;
# the tests that need a missing package skip and print why.
set -uo pipefail
list="$(dirname "$0")/system-packages.txt"
missing=()
while read -r package _; do
    [[ -z "$package" || "$package" == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done < "$list"
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "system_packages: not root or no apt-get; missing: ${missing[*]} (tests needing them skip)" >&2
    exit 0
fi
echo "system_packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null \
    || echo "system_packages: apt-get failed; tests needing ${missing[*]} skip" >&2
exit 0
