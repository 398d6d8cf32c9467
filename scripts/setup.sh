#!/usr/bin/env bash
# Installs every Debian package tessera's build and tests need. Idempotent: safe to run twice.
# CUDA is not installed here: when /usr/local/cuda/bin/nvcc exists the build uses it.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev           # tests
  nlohmann-json3-dev libcli11-dev     # JSON, command line
  libopenmpi-dev openmpi-bin          # tensor parallel over MPI ranks
  libpcre2-dev libutf8proc-dev        # tokenizer: Oniguruma-style regexes, NFC
  libboost-dev                        # HTTP server (Boost.Asio/Beast)
  python3                             # test helpers
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
