#!/usr/bin/env bash
# scripts/gpu-check's own logic without a GPU: nvidia-smi, cmake and ninja are stubs, and the
# "GPU build" is a wrapper that runs the real (CPU) tessera on the stories110m shape with
# short runs. Checks that the benchmark rows come out tagged (dtype, weights, lm_head,
# embeddings), that a
# second, split run merges into the same results file, that --prebuilt runs a gpu-bundle
# archive without building, that gpu-bundle packs what that needs, and that bad options exit 2.
# Usage: gpu_check_stub.sh TESSERA_BINARY TESTDATA_DIR
set -euo pipefail
tessera="$1"
testdata="$2"
root="$(cd "$(dirname "$0")/.." && pwd)"
stub="$(mktemp -d)"
results=""
trap 'rm -rf "$stub"; [ -z "$results" ] || rm -f "$results"; rmdir "$root/bench/results" 2>/dev/null || true' EXIT
mkdir -p "$stub/bin" "$stub/build"
cat > "$stub/bin/nvidia-smi" <<'SH'
#!/bin/bash
case "$*" in *name*) echo "$STUB_GPU_NAME";; *driver*) echo "0.0";; *compute_cap*) echo "9.0";; esac
SH
printf '#!/bin/bash\nexit 0\n' > "$stub/bin/cmake"
printf '#!/bin/bash\nexit 0\n' > "$stub/bin/ninja"
cat > "$stub/build/tessera" <<SH
#!/bin/bash
args=()
for a in "\$@"; do
  case "\$a" in
    cuda) a=cpu ;;
    *qwen2.5-7b-instruct.json) a="$testdata/configs/stories110m-shape.json" ;;
    128) a=4 ;;
    512,2048,16384|512,2048|512) a=8 ;;
    1,8|1,8,32,128) a=1 ;;
    16384) a=8 ;;
  esac
  args+=("\$a")
done
exec "$tessera" "\${args[@]}" --threads 1
SH
chmod +x "$stub/bin/"* "$stub/build/tessera"
export PATH="$stub/bin:$PATH"
export STUB_GPU_NAME="Stub GPU $$"  # one results file per test run
check() { "$root/scripts/gpu-check" --build-dir "$stub/build" --testdata "$testdata" --skip-tests "$@"; }

out="$(check --bench-dtypes bfloat16 --bench-weights "int8 int4:int8 int4:int8:host" 2>"$stub/err")" ||
  { cat "$stub/err"; echo "FAIL: gpu-check exited non-zero"; exit 1; }
results="$(printf '%s\n' "$out" | tail -1)"
[ -f "$results" ] || { echo "FAIL: no results file ($out)"; exit 1; }
grep -q "weights int4 lm_head int8 embeddings device: decode batch 1" "$stub/err" ||
  { cat "$stub/err"; echo "FAIL: no int4 + int8 lm_head summary line"; exit 1; }
grep -q "weights int4 lm_head int8 embeddings host: decode batch 1" "$stub/err" ||
  { cat "$stub/err"; echo "FAIL: no summary line with the table in host memory"; exit 1; }
check --bench-dtypes "" --bench-weights "int4" >/dev/null 2>"$stub/err" ||
  { cat "$stub/err"; echo "FAIL: the split run exited non-zero"; exit 1; }
python3 - "$results" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rows = sorted((b["dtype"], b["weights"], b["lm_head"], b["embeddings"], b["depth"])
              for b in d["bench"])
want = sorted([("bfloat16", "stored", "stored", "device", 0),
               ("bfloat16", "int8", "stored", "device", 0),
               ("bfloat16", "int4", "int8", "device", 0), ("bfloat16", "int4", "int8", "host", 0),
               ("bfloat16", "int4", "stored", "device", 0),
               ("bfloat16", "int4", "stored", "device", 8)])  # the long-context row
assert rows == want, rows
for b in d["bench"]:
    assert b["rc"] == 0 and "error" not in b, b
    assert 0 < b["decode_roofline_fraction"], b
print("rows:", rows)
PY
set +e
for bad in "--bench-weights" "--bench-weights int3" "--bench-weights int4:int4" \
           "--bench-weights int3:int8:host" "--bench-weights int4:int8:cpu" \
           "--bench-weights int4:int8:host:x" "--frobnicate"; do
  # shellcheck disable=SC2086
  check $bad 2>"$stub/err"; rc=$?
  [ "$rc" = 2 ] && [ "$(wc -l < "$stub/err")" = 1 ] ||
    { cat "$stub/err"; echo "FAIL: gpu-check $bad exited $rc, expected 2 with one line"; exit 1; }
done

# --prebuilt: a gpu-bundle archive instead of a build (cmake and ninja now fail if called);
# the results file takes the bundle's commit.
printf '#!/bin/bash\nexit 1\n' > "$stub/bin/cmake"
printf '#!/bin/bash\nexit 1\n' > "$stub/bin/ninja"
mkdir -p "$stub/bundle/bin" "$stub/bundle/lib"
cp "$stub/build/tessera" "$stub/bundle/bin/tessera"
echo "bundle$$" > "$stub/bundle/COMMIT"
echo "90" > "$stub/bundle/ARCHS"
tar -czf "$stub/bundle.tar.gz" -C "$stub/bundle" .
out="$("$root/scripts/gpu-check" --prebuilt "$stub/bundle.tar.gz" --testdata "$testdata" \
        --skip-tests --bench-dtypes "" --bench-weights "int8" 2>"$stub/err")" ||
  { cat "$stub/err"; echo "FAIL: gpu-check --prebuilt exited non-zero"; exit 1; }
bundle_results="$(printf '%s\n' "$out" | tail -1)"
case "$bundle_results" in
  */bundle$$-*.json) ;;
  *) echo "FAIL: results file $bundle_results"; exit 1 ;;
esac
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
assert d["commit"].startswith("bundle")
assert [(b["weights"], b["depth"]) for b in d["bench"]] == [("int8", 0), ("int4", 8)], d' \
  "$bundle_results" || { rm -f "$bundle_results"; echo "FAIL: bundle results"; exit 1; }
rm -f "$bundle_results"
set +e
for bad in "$stub/nothing.tar.gz" "$stub/build"; do
  "$root/scripts/gpu-check" --prebuilt "$bad" --testdata "$testdata" --skip-tests 2>"$stub/err"
  rc=$?
  [ "$rc" = 2 ] && [ "$(wc -l < "$stub/err")" = 1 ] ||
    { cat "$stub/err"; echo "FAIL: gpu-check --prebuilt $bad exited $rc, not 2 with one line"
      exit 1; }
done
set -e

# gpu-bundle packs a build (here the CPU one beside the tessera under test): binaries, the
# libraries they load beyond glibc and CUDA, the test data and the commit.
"$root/scripts/gpu-bundle" --build-dir "$(dirname "$tessera")" --testdata "$testdata" \
  --out "$stub/packed" >/dev/null 2>"$stub/err" ||
  { cat "$stub/err"; echo "FAIL: gpu-bundle exited non-zero"; exit 1; }
tar -tzf "$stub/packed/bundle.tar.gz" > "$stub/list"
for f in ./bin/tessera ./bin/tessera_tests ./COMMIT ./ARCHS ./lib/libutf8proc.so.2 \
         ./testdata/models/TinyStories-656K/config.json \
         ./testdata/configs/qwen2.5-7b-instruct.json; do
  grep -qx "$f" "$stub/list" || { echo "FAIL: gpu-bundle's archive lacks $f"; exit 1; }
done
mkdir "$stub/unpacked" && tar -xzf "$stub/packed/bundle.tar.gz" -C "$stub/unpacked"
LD_LIBRARY_PATH="$stub/unpacked/lib" "$stub/unpacked/bin/tessera" --help >/dev/null ||
  { echo "FAIL: the bundled tessera does not run"; exit 1; }
rc=0; "$root/scripts/gpu-bundle" --frobnicate 2>"$stub/err" || rc=$?
[ "$rc" = 2 ] || { echo "FAIL: gpu-bundle --frobnicate exited $rc"; exit 1; }
echo "PASS"
