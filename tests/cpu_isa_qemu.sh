#!/usr/bin/env bash
# tessera on CPUs without AVX-512: the README's main job (greedy) under QEMU's user-mode
# emulation as an AVX2-only CPU (Haswell: the kernels' AVX2 builds, kernels/simd_target.h)
# and as one without AVX (Nehalem: the portable loops), for bf16 and int8 weights, must print
# the tokens the native run prints. A kernel built for a wider instruction set than the CPU
# has would stop the run (SIGILL). Usage: cpu_isa_qemu.sh TESSERA_BINARY MODEL_DIR
set -euo pipefail
tessera="$1"
model="$2"
if ! command -v qemu-x86_64 >/dev/null; then
  echo "qemu-x86_64 not installed (scripts/setup.sh installs qemu-user): skipped"
  exit 77
fi
run() {  # run [QEMU_CPU] WEIGHTS...
  local cpu="$1"
  shift
  local cmd=("$tessera" generate --model "$model" --max-tokens 12 --threads 1
             --temperature 0 --prompt "Once upon a time, there was a little boy named Tim. Tim" "$@")
  if [ -n "$cpu" ]; then qemu-x86_64 -cpu "$cpu" "${cmd[@]}" 2>/dev/null; else "${cmd[@]}" 2>/dev/null; fi
}
for weights in "" "--weights int8"; do
  # shellcheck disable=SC2086
  want="$(run "" $weights)"
  [ -n "$want" ] || { echo "FAIL: the native run printed nothing"; exit 1; }
  for cpu in Haswell Nehalem; do
    # shellcheck disable=SC2086
    got="$(run "$cpu" $weights)" || { echo "FAIL: $cpu ${weights:-stored weights}: exit $?"; exit 1; }
    [ "$got" = "$want" ] ||
      { printf 'FAIL: %s %s\n want: %s\n got:  %s\n' "$cpu" "${weights:-stored weights}" "$want" "$got"; exit 1; }
    echo "ok: $cpu ${weights:-stored weights}"
  done
done
