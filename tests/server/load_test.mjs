// Bounded load test: N concurrent streaming clients for D seconds against `tessera serve`.
// Prints throughput, TTFT / ITL percentiles, errors, leaked KV blocks and server RSS;
// exits 1 on any error, a leaked block, or RSS growth over 20% after warm-up.
//   node load_test.mjs <tessera> <model dir> [--clients 32] [--seconds 60] [--json]
import fs from 'node:fs';
import { startServer, metric, waitFor } from './harness.mjs';

const [bin, modelDir, ...rest] = process.argv.slice(2);
const opt = { clients: 32, seconds: 60, json: false, threads: 0 };
for (let i = 0; i < rest.length; ++i) {
  if (rest[i] === '--clients') opt.clients = Number(rest[++i]);
  else if (rest[i] === '--seconds') opt.seconds = Number(rest[++i]);
  else if (rest[i] === '--threads') opt.threads = Number(rest[++i]);
  else if (rest[i] === '--json') opt.json = true;
}
const args = ['--model', modelDir, '--max-num-seqs', String(opt.clients), '--kv-cache-memory', '256MiB'];
if (opt.threads) args.push('--threads', String(opt.threads));
const srv = await startServer(bin, args);
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]) * 1024;
const words = ['Once', 'upon', 'a', 'time', 'there', 'was', 'a', 'little', 'dog', 'who', 'liked', 'to', 'play', 'in', 'the', 'park'];

const ttft = [], itl = [];
let tokens = 0, requests = 0, errors = 0;
const errorSamples = [];
const deadline = Date.now() + opt.seconds * 1000;
let rssWarm = 0;
setTimeout(() => { rssWarm = rss(); }, Math.min(10000, opt.seconds * 250));

async function client(id) {
  let n = id;
  while (Date.now() < deadline) {
    n = (n * 1103515245 + 12345) % 2147483648;
    const prompt = Array.from({ length: 4 + (n % 24) }, (_, i) => words[(n + i * 7) % words.length]).join(' ');
    const body = { prompt, max_tokens: 16 + (n % 112), temperature: 0.8, stream: true, ignore_eos: n % 3 === 0 };
    const t0 = performance.now();
    try {
      const res = await fetch(srv.base + '/v1/completions', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
      let last = 0, buf = '', done = false;
      const dec = new TextDecoder();
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, at); buf = buf.slice(at + 2);
          if (event === 'data: [DONE]') { done = true; continue; }
          const j = JSON.parse(event.slice(6));
          if (j.error) throw new Error(j.error.message);
          const now = performance.now();
          if (last === 0) ttft.push(now - t0); else itl.push(now - last);
          last = now;
          tokens += 1;
        }
      }
      if (!done) throw new Error('stream ended without [DONE]');
      requests += 1;
    } catch (e) {
      errors += 1;
      if (errorSamples.length < 5) errorSamples.push(String(e));
    }
  }
}

const t0 = performance.now();
await Promise.all(Array.from({ length: opt.clients }, (_, i) => client(i + 1)));
const wall = (performance.now() - t0) / 1000;
await waitFor('idle', async () => (await metric(srv.base, 'tessera_num_requests_running')) === 0, 10000);
const leaked = await metric(srv.base, 'tessera_kv_blocks_used');
const rssEnd = rss();
const exit = await srv.stop('SIGTERM');
const pct = (xs, p) => { if (!xs.length) return 0; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };
const growth = rssWarm ? rssEnd / rssWarm - 1 : 0;
const result = {
  clients: opt.clients, seconds: Number(wall.toFixed(1)), requests, errors, leaked_blocks: leaked,
  output_tokens_per_s: Number((tokens / wall).toFixed(1)), requests_per_s: Number((requests / wall).toFixed(2)),
  ttft_ms: { p50: pct(ttft, 50), p90: pct(ttft, 90), p99: pct(ttft, 99) },
  itl_ms: { p50: pct(itl, 50), p90: pct(itl, 90), p99: pct(itl, 99) },
  rss_mib: { warm: Math.round(rssWarm / 1048576), end: Math.round(rssEnd / 1048576) },
  server_exit: exit.code,
};
for (const k of ['ttft_ms', 'itl_ms']) for (const p in result[k]) result[k][p] = Number(result[k][p].toFixed(1));
if (opt.json) console.log(JSON.stringify(result));
else {
  console.log(`${opt.clients} streaming clients, ${result.seconds} s: ${requests} requests, ${errors} errors, ${leaked} leaked KV blocks`);
  console.log(`throughput ${result.output_tokens_per_s} output tokens/s, ${result.requests_per_s} requests/s`);
  console.log(`TTFT ms p50 ${result.ttft_ms.p50} p90 ${result.ttft_ms.p90} p99 ${result.ttft_ms.p99}`);
  console.log(`ITL  ms p50 ${result.itl_ms.p50} p90 ${result.itl_ms.p90} p99 ${result.itl_ms.p99}`);
  console.log(`server RSS after warm-up ${result.rss_mib.warm} MiB, at the end ${result.rss_mib.end} MiB`);
}
for (const e of errorSamples) console.log('error: ' + e);
const ok = errors === 0 && leaked === 0 && exit.code === 0 && growth < 0.2;
if (!ok) console.log('LOAD TEST FAILED' + (growth >= 0.2 ? ` (RSS grew ${(growth * 100).toFixed(0)}%)` : ''));
process.exit(ok ? 0 : 1);
