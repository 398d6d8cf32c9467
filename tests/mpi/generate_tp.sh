#!/usr/bin/env bash
# `tessera generate` under mpirun -np 2 --tp 2 prints (on rank 0 only) the same greedy ids as
# a single process (with the KV cache in fp32 and in int8: every rank quantizes its own kv
# heads, per head, as one process does); a bad prompt under tp=2 ends the whole job with
# exit code 2.
set -euo pipefail
bin=$1 data=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
for model in TinyStories-656K tiny-qwen2 TinyStories-656K:int8 tiny-qwen2:int8; do
  kv=auto
  [[ $model == *:int8 ]] && kv=int8 model=${model%:int8}
  args=(generate --model "$data/models/$model" --prompt-ids 1,7,100,3,25 --max-tokens 12
        --temperature 0 --ignore-eos --json --kv-cache "$kv")
  one=$("$bin" "${args[@]}" | tail -n 1 | sed 's/.*"ids":\(\[[^]]*\]\).*/\1/')
  two_out=$(mpirun -np 2 --oversubscribe "$bin" "${args[@]}" --tp 2)
  [ "$(printf '%s\n' "$two_out" | grep -c '"ids"')" = 1 ] || { echo "FAIL: not exactly one result line"; exit 1; }
  two=$(printf '%s\n' "$two_out" | tail -n 1 | sed 's/.*"ids":\(\[[^]]*\]\).*/\1/')
  [ "$one" = "$two" ] || { echo "FAIL $model: tp1 $one vs tp2 $two"; exit 1; }
  echo "ok $model (kv $kv): $two"
done
# tessera launch prints the mpirun line it execs; the job's result is the same.
model=tiny-qwen2
args=(generate --model "$data/models/$model" --prompt-ids 1,7,100,3,25 --max-tokens 12
      --temperature 0 --ignore-eos --json)
one=$("$bin" "${args[@]}" | tail -n 1 | sed 's/.*"ids":\(\[[^]]*\]\).*/\1/')
out=$(env -u OMPI_ALLOW_RUN_AS_ROOT -u OMPI_ALLOW_RUN_AS_ROOT_CONFIRM "$bin" launch --tp 2 -- "${args[@]}")
printf '%s\n' "$out" | head -n 1 | grep -q "^mpirun -np 2 .*generate .* --tp 2$" ||
  { echo "FAIL: launch did not print the mpirun line: $out"; exit 1; }
launched=$(printf '%s\n' "$out" | tail -n 1 | sed 's/.*"ids":\(\[[^]]*\]\).*/\1/')
[ "$one" = "$launched" ] || { echo "FAIL launch: tp1 $one vs launched $launched"; exit 1; }
echo "ok launch --tp 2: $launched"
set +e
timeout 60 mpirun -np 2 --oversubscribe "$bin" generate --model "$data/models/tiny-qwen2" \
  --prompt-ids 1,999999 --tp 2 >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || { echo "FAIL: bad prompt under tp=2 exited $rc, expected 2"; exit 1; }
echo "ok: bad input under tp=2 exits 2"
# --comm: CPU ranks take mpi (the same ids), nccl is a user error naming the reason.
comm_out=$(mpirun -np 2 --oversubscribe "$bin" generate --model "$data/models/tiny-qwen2" \
  --prompt-ids 1,7,100,3,25 --max-tokens 12 --temperature 0 --ignore-eos --json --tp 2 --comm mpi)
[ "$(printf '%s\n' "$comm_out" | tail -n 1 | sed 's/.*"ids":\(\[[^]]*\]\).*/\1/')" = "$one" ] ||
  { echo "FAIL: --comm mpi changed the ids"; exit 1; }
set +e
err=$("$bin" generate --model "$data/models/tiny-qwen2" --prompt-ids 1,7 --comm nccl 2>&1 >/dev/null)
rc=$?
set -e
[ "$rc" = 2 ] && printf '%s' "$err" | grep -q "needs GPU ranks" ||
  { echo "FAIL: --comm nccl on the CPU exited $rc: $err"; exit 1; }
echo "ok: --comm mpi on CPU ranks, --comm nccl refused on the CPU"
