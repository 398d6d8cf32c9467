// Starts `tessera serve` on 127.0.0.1 (any free port) and a tiny test runner.
import { spawn } from 'node:child_process';
import net from 'node:net';

export async function startServer(bin, args, { timeoutMs = 60000 } = {}) {
  const proc = spawn(bin, ['serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + stderr)), timeoutMs);
    proc.stderr.on('data', (d) => {
      stderr += d.toString();
      const m = stderr.match(/on http:\/\/[^:]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${stderr}`)); });
  });
  proc.stdout.on('data', () => {});
  return {
    proc, port, base: `http://127.0.0.1:${port}`,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

// A raw HTTP/1.1 exchange over a socket: returns {status, headers, body} (body as text).
export function rawRequest(port, text, { readTimeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(text));
    let data = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('raw request timed out: ' + data)); }, readTimeoutMs);
    sock.on('data', (d) => {
      data += d.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = /content-length: *(\d+)/i.exec(data.slice(0, end));
      if (len && data.length >= end + 4 + Number(len[1])) { clearTimeout(timer); sock.destroy(); resolve(parse(data)); }
    });
    sock.on('end', () => { clearTimeout(timer); resolve(parse(data)); });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
  function parse(d) {
    const end = d.indexOf('\r\n\r\n');
    const head = d.slice(0, end).split('\r\n');
    return { status: Number(head[0].split(' ')[1]), headers: head.slice(1).join('\n').toLowerCase(), body: d.slice(end + 4) };
  }
}

export function post(port, path, body, headers = {}) {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  let h = `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n`;
  for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  return rawRequest(port, h + '\r\n' + payload);
}

export async function metric(base, name) {
  const text = await (await fetch(base + '/metrics')).text();
  const m = text.match(new RegExp('^' + name + ' ([0-9.e+-]+)$', 'm'));
  if (!m) throw new Error(`metric ${name} missing`);
  return Number(m[1]);
}

export async function waitFor(what, fn, timeoutMs = 5000) {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const tests = [];
export function test(name, fn) { tests.push({ name, fn }); }
export async function runAll() {
  let failed = 0;
  for (const t of tests) {
    const t0 = Date.now();
    try {
      await t.fn();
      console.log(`ok   ${t.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${t.name}: ${e.stack || e}`);
    }
  }
  console.log(`${tests.length - failed}/${tests.length} passed`);
  return failed;
}
