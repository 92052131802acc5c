#!/usr/bin/env bash
# Install what tunebook's demo and tests need from Debian, if it is missing:
#   - dataset-fashion-mnist: the four Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist
#   - chromium: the headless browser the HTML-report test renders with (tests only)
# Usage: scripts/system-deps.sh [--with-browser]
set -euo pipefail
need=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
if [ "${1:-}" = "--with-browser" ] && ! command -v chromium >/dev/null 2>&1; then
  need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${need[*]} and no apt-get here." >&2
  echo "  Put the Fashion-MNIST *.gz files in a folder and set TUNEBOOK_DATA, or let tunebook download them." >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "system-deps: installing ${need[*]} with apt-get" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
