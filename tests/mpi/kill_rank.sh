#!/usr/bin/env bash
# `tessera serve --tp 2` under mpirun: SIGKILL one rank (the worker, then the server rank) and
# the whole job must end within 10 s, non-zero, with a message naming the rank. Never a hang.
set -uo pipefail
bin=$1 data=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for victim_rank in 1 0; do
  mpirun -np 2 --oversubscribe "$bin" serve --model "$data/models/tiny-qwen2-tok" --tp 2 \
    --port 0 --kv-cache-memory 16MiB --max-model-len 256 --threads 1 \
    >"$tmp/out" 2>"$tmp/err" &
  job=$!
  for _ in $(seq 600); do grep -q "serving" "$tmp/err" && break; sleep 0.1; done
  grep -q "serving" "$tmp/err" || { echo "FAIL: server did not start"; cat "$tmp/err"; kill -9 $job; exit 1; }
  if [ "$victim_rank" = 1 ]; then  # first: the tp=2 server answers like a single process
    port=$(grep -o '127.0.0.1:[0-9]*' "$tmp/err" | head -n 1 | cut -d: -f2)
    served=$(python3 -c 'import json, sys, urllib.request as u
body = json.dumps({"prompt": [1, 7, 100, 3, 25], "max_tokens": 12, "temperature": 0, "ignore_eos": True}).encode()
r = json.load(u.urlopen(u.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/completions", body, {"Content-Type": "application/json"})))
print(json.dumps(r["choices"][0]["text"]))' "$port")
    single=$(OMPI_ALLOW_RUN_AS_ROOT= "$bin" generate --model "$data/models/tiny-qwen2-tok" \
      --prompt-ids 1,7,100,3,25 --max-tokens 12 --temperature 0 --ignore-eos --json --threads 1 |
      tail -n 1 | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["text"]))')
    [ "$served" = "$single" ] || { echo "FAIL: tp=2 server $served vs tp=1 $single"; kill -9 $job; exit 1; }
    echo "ok: tp=2 server answers like tp=1: $served"
  fi
  victim=""
  for p in $(pgrep -P $job); do
    tr '\0' '\n' <"/proc/$p/environ" | grep -qx "OMPI_COMM_WORLD_RANK=$victim_rank" && victim=$p
  done
  [ -n "$victim" ] || { echo "FAIL: rank $victim_rank not found among $(pgrep -P $job)"; kill -9 $job; exit 1; }
  start=$(date +%s.%N)
  kill -9 "$victim"
  ( sleep 20; kill -9 $job 2>/dev/null ) & watchdog=$!
  wait $job
  rc=$?
  kill $watchdog 2>/dev/null
  elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  [ "$rc" != 0 ] || { echo "FAIL: job exited 0 after rank $victim_rank was killed"; exit 1; }
  awk -v e="$elapsed" 'BEGIN { exit !(e < 10) }' ||
    { echo "FAIL: job took ${elapsed}s to end after rank $victim_rank was killed"; exit 1; }
  grep -q "rank $victim_rank" "$tmp/err" ||
    { echo "FAIL: no message naming rank $victim_rank:"; cat "$tmp/err"; exit 1; }
  echo "ok: killing rank $victim_rank ended the job in ${elapsed}s with exit $rc"
done
