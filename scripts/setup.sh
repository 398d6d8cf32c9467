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
  python3 procps                      # test helpers (pgrep)
  qemu-user                           # tests/cpu_isa_qemu.sh: CPUs without AVX-512 / AVX
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Server tests run the official OpenAI client on Node.js: Debian's nodejs + npm unless a
# node is already installed (e.g. from NodeSource, which bundles npm).
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
else
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The pinned `openai` package (tests/server/package-lock.json) for the server tests.
cd "$(dirname "$0")/../tests/server"
if [ ! -f node_modules/openai/package.json ] ||
   [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: openai $(node -p 'require("./node_modules/openai/package.json").version') for the server tests"
