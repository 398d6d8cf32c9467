// tessera serve through the official OpenAI Node client (chat + completions, streaming and
// not) and raw HTTP (error cases, disconnects, slow readers). Usage:
//   node openai_client_test.mjs <tessera binary> <testdata dir>
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import OpenAI from 'openai';
import { startServer, post, rawRequest, metric, waitFor, test, runAll } from './harness.mjs';

const [bin, data] = process.argv.slice(2);
const modelDir = `${data}/models/tiny-qwen2-tok`;
const srv = await startServer(bin, ['--model', modelDir, '--max-model-len', '512',
                                    '--kv-cache-memory', '64MiB', '--threads', '1']);
const client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'unused', maxRetries: 0 });
const MODEL = 'tiny-qwen2-tok';
const messages = [{ role: 'user', content: 'Tell me a story about a robot.' }];
const greedy = { model: MODEL, messages, max_tokens: 24, temperature: 0, ignore_eos: true };

async function noLeaks() {
  await waitFor('KV blocks back to 0', async () =>
    (await metric(srv.base, 'tessera_kv_blocks_used')) === 0 &&
    (await metric(srv.base, 'tessera_num_requests_running')) === 0);
}

test('models lists the served model', async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), [MODEL]);
});

test('chat greedy equals tessera generate on the tokenized chat', async () => {
  const res = await client.chat.completions.create(greedy);
  assert.equal(res.object, 'chat.completion');
  assert.equal(res.choices[0].message.role, 'assistant');
  assert.equal(res.choices[0].finish_reason, 'length');
  assert.equal(res.usage.completion_tokens, 24);
  const tok = JSON.parse((await post(srv.port, '/tokenize', { messages })).body);
  assert.equal(res.usage.prompt_tokens, tok.count);
  const out = execFileSync(bin, ['generate', '--model', modelDir, '--prompt-ids', tok.tokens.join(','),
    '--max-tokens', '24', '--temperature', '0', '--ignore-eos', '--json', '--threads', '1']).toString();
  const ids = JSON.parse(out.trim().split('\n').pop()).ids;
  const detok = await fetch(srv.base + '/detokenize', { method: 'POST', body: JSON.stringify({ tokens: ids }) });
  const expected = (await detok.json()).prompt;
  assert.equal(res.choices[0].message.content, expected);
});

test('chat streaming: role chunk, deltas that add up, finish, usage, [DONE]', async () => {
  const full = (await client.chat.completions.create(greedy)).choices[0].message.content;
  const stream = await client.chat.completions.create({ ...greedy, stream: true, stream_options: { include_usage: true } });
  let text = '', first = null, finish = null, usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (!first) first = chunk;
    if (chunk.choices.length === 0) { usage = chunk.usage; continue; }
    text += chunk.choices[0].delta.content ?? '';
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(first.choices[0].delta.role, 'assistant');
  assert.equal(text, full);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 24);
});

test('completions, streaming and not, agree', async () => {
  const req = { model: MODEL, prompt: 'Once upon a time', max_tokens: 20, temperature: 0, ignore_eos: true };
  const res = await client.completions.create(req);
  assert.equal(res.object, 'text_completion');
  assert.equal(res.usage.completion_tokens, 20);
  let text = '';
  for await (const c of await client.completions.create({ ...req, stream: true })) text += c.choices[0]?.text ?? '';
  assert.equal(text, res.choices[0].text);
  const echo = await client.completions.create({ ...req, echo: true });
  assert.equal(echo.choices[0].text, 'Once upon a time' + res.choices[0].text);
});

test('stop strings end the text before the match, also when streamed', async () => {
  const full = (await client.chat.completions.create(greedy)).choices[0].message.content;
  const stop = full.slice(10, 13);
  assert.ok(stop.length === 3, 'greedy text too short for this test: ' + JSON.stringify(full));
  const expected = full.slice(0, full.indexOf(stop));
  const res = await client.chat.completions.create({ ...greedy, stop: [stop, 'never-seen'] });
  assert.equal(res.choices[0].message.content, expected);
  assert.equal(res.choices[0].finish_reason, 'stop');
  let text = '';
  for await (const c of await client.chat.completions.create({ ...greedy, stop, stream: true }))
    text += c.choices[0]?.delta?.content ?? '';
  assert.equal(text, expected);
});

test('logprobs: one entry per token, top alternatives sorted, greedy picks the top', async () => {
  const res = await client.chat.completions.create({ ...greedy, max_tokens: 8, logprobs: true, top_logprobs: 3 });
  const content = res.choices[0].logprobs.content;
  assert.equal(content.length, 8);
  for (const e of content) {
    assert.equal(e.top_logprobs.length, 3);
    assert.ok(e.logprob <= 0);
    assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob);
    assert.ok(Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-6);
  }
});

test('seeded sampling is reproducible per request', async () => {
  const req = { model: MODEL, messages, max_tokens: 16, temperature: 1.0, seed: 1234, ignore_eos: true };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  const c = await client.chat.completions.create({ ...req, seed: 999 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.notEqual(a.choices[0].message.content, c.choices[0].message.content);
});

test('concurrent requests each get their solo greedy answer', async () => {
  const prompts = ['a cat', 'the sea', 'red apples', 'a long road home', 'snow'];
  const solo = [];
  for (const p of prompts)
    solo.push((await client.completions.create({ model: MODEL, prompt: p, max_tokens: 16, temperature: 0, ignore_eos: true })).choices[0].text);
  const together = await Promise.all(prompts.map((p) =>
    client.completions.create({ model: MODEL, prompt: p, max_tokens: 16, temperature: 0, ignore_eos: true })));
  assert.deepEqual(together.map((r) => r.choices[0].text), solo);
  await noLeaks();
});

const chat = (body) => post(srv.port, '/v1/chat/completions', body);
const errorCases = [
  ['malformed JSON', () => chat('{"model": '), 400, null],
  ['body not an object', () => chat('[1,2]'), 400, null],
  ['missing messages', () => chat({ model: MODEL }), 400, 'messages'],
  ['messages of the wrong type', () => chat({ messages: 'hi' }), 400, 'messages'],
  ['empty messages', () => chat({ messages: [] }), 400, 'messages'],
  ['unknown model', () => chat({ model: 'gpt-5', messages }), 404, 'model'],
  ['max_tokens < 1', () => chat({ messages, max_tokens: 0 }), 400, 'max_tokens'],
  ['max_tokens not an integer', () => chat({ messages, max_tokens: 'ten' }), 400, 'max_tokens'],
  ['temperature out of range', () => chat({ messages, temperature: 2.5 }), 400, 'temperature'],
  ['temperature of the wrong type', () => chat({ messages, temperature: 'hot' }), 400, 'temperature'],
  ['top_p out of range', () => chat({ messages, top_p: 0 }), 400, 'top_p'],
  ['prompt + max_tokens beyond the context', () => chat({ messages, max_tokens: 100000 }), 400, 'max_tokens'],
  ['completion prompt missing', () => post(srv.port, '/v1/completions', { max_tokens: 3 }), 400, 'prompt'],
  ['completion prompt id outside the vocabulary', () => post(srv.port, '/v1/completions', { prompt: [1, 99999999] }), 400, 'prompt'],
  ['logit_bias key not a token', () => chat({ messages, logit_bias: { abc: 1 } }), 400, 'logit_bias'],
  ['n > 1', () => chat({ messages, n: 2 }), 400, 'n'],
  ['body over the size limit', () => chat(JSON.stringify({ messages, pad: 'x'.repeat(9 << 20) })), 413, null],
  ['unknown route', () => post(srv.port, '/v1/embeddings', {}), 404, null],
  ['wrong method', () => rawRequest(srv.port, 'GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 405, null],
];
for (const [name, send, status, param] of errorCases) {
  test(`error: ${name} -> ${status}`, async () => {
    const res = await send();
    assert.equal(res.status, status, res.body);
    const err = JSON.parse(res.body).error;
    assert.equal(typeof err.message, 'string');
    assert.ok(err.message.length > 0);
    assert.ok('type' in err && 'param' in err && 'code' in err);
    if (param) assert.equal(err.param, param);
  });
}

test('the official client surfaces an error as an exception with the status', async () => {
  await assert.rejects(client.chat.completions.create({ ...greedy, temperature: 9 }), (e) => e.status === 400);
});

test('a client that disconnects mid-stream frees its blocks', async () => {
  const body = JSON.stringify({ model: MODEL, messages, max_tokens: 400, temperature: 0, ignore_eos: true, stream: true });
  await new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1', () =>
      sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
    let seen = 0;
    sock.on('data', (d) => { seen += d.length; if (seen > 600) { sock.destroy(); resolve(); } });
    sock.on('error', reject);
  });
  await noLeaks();
  const aborted = (await (await fetch(srv.base + '/metrics')).text()).match(/finish_reason="abort"} (\d+)/);
  assert.ok(aborted && Number(aborted[1]) >= 1, 'the disconnect did not abort the request');
});

test('a client that stops reading for 10 s does not delay others', async () => {
  const body = JSON.stringify({ model: MODEL, messages, max_tokens: 480, temperature: 0, ignore_eos: true, stream: true, logprobs: true, top_logprobs: 20 });
  const sock = net.connect(srv.port, '127.0.0.1', () =>
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
  sock.pause();  // never reads: its stream backs up in the socket buffers
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  for (let i = 0; i < 5; ++i)
    await client.completions.create({ model: MODEL, prompt: 'hello', max_tokens: 4, temperature: 0 });
  const elapsed = Date.now() - t0;
  await new Promise((r) => setTimeout(r, 10000 - (Date.now() - t0)));
  const t1 = Date.now();
  await client.completions.create({ model: MODEL, prompt: 'hello', max_tokens: 4, temperature: 0 });
  const late = Date.now() - t1;
  sock.destroy();
  assert.ok(elapsed < 3000, `5 requests took ${elapsed} ms next to a stalled reader`);
  assert.ok(late < 1500, `a request 10 s into the stall took ${late} ms`);
  await noLeaks();
});

test('tokenize / detokenize round trip, health, metrics', async () => {
  const t = JSON.parse((await post(srv.port, '/tokenize', { prompt: 'Hello world' })).body);
  assert.ok(t.count > 0 && t.tokens.length === t.count);
  const d = JSON.parse((await post(srv.port, '/detokenize', { tokens: t.tokens })).body);
  assert.equal(d.prompt, 'Hello world');
  assert.equal((await fetch(srv.base + '/health')).status, 200);
  assert.ok((await metric(srv.base, 'tessera_generation_tokens_total')) > 0);
  assert.ok((await metric(srv.base, 'tessera_kv_blocks_total')) > 0);
  assert.ok((await metric(srv.base, 'tessera_time_to_first_token_seconds_count')) > 0);
});

test('with --api-key, /v1 requests need the bearer key', async () => {
  const keyed = await startServer(bin, ['--model', modelDir, '--max-model-len', '256',
                                        '--kv-cache-memory', '16MiB', '--api-key', 'sk-test', '--threads', '1']);
  try {
    const res = await fetch(keyed.base + '/v1/models');
    assert.equal(res.status, 401);
    assert.ok((await res.json()).error.message.length > 0);
    const wrong = new OpenAI({ baseURL: keyed.base + '/v1', apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e) => e.status === 401);
    const right = new OpenAI({ baseURL: keyed.base + '/v1', apiKey: 'sk-test', maxRetries: 0 });
    assert.equal((await right.models.list()).data[0].id, MODEL);
  } finally {
    const r = await keyed.stop();
    assert.equal(r.code, 0);
  }
});

test('--max-model-len auto and --weights auto come from the memory plan', async () => {
  const planned = await startServer(bin, ['--model', modelDir, '--max-model-len', 'auto',
                                          '--weights', 'auto', '--kv-cache-memory', '16MiB', '--threads', '1']);
  try {
    // The host holds this tiny model at its full context (max_position_embeddings 2048) as
    // stored: the plan picks exactly that, and says so.
    const models = await (await fetch(planned.base + '/v1/models')).json();
    assert.equal(models.data[0].max_model_len, 2048);
    assert.match(planned.stderr(), /--max-model-len auto: 2048/);
    assert.match(planned.stderr(), /--weights auto: stored/);
  } finally {
    assert.equal((await planned.stop()).code, 0);
  }
});

test('a bad --max-model-len is a one-line error, exit 2', () => {
  let status = 0, stderr = '';
  try {
    execFileSync(bin, ['serve', '--model', modelDir, '--max-model-len', 'lots'], { stdio: 'pipe' });
  } catch (e) {
    status = e.status;
    stderr = e.stderr.toString();
  }
  assert.equal(status, 2);
  assert.match(stderr, /--max-model-len must be a positive integer or auto/);
});

const failed = await runAll();
const exit = await srv.stop('SIGTERM');
console.log(`server exit: ${JSON.stringify(exit)}`);
if (exit.code !== 0) { console.log(srv.stderr()); process.exit(1); }
if (!/KV blocks in use at exit: 0\b/.test(srv.stderr())) { console.log('no clean block-pool report at exit'); process.exit(1); }
process.exit(failed ? 1 : 0);
