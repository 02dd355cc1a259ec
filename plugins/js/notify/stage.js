// Release/deploy notification stage in JavaScript: POSTs a JSON message about the run to an
// allow-listed webhook (needs `allow.net`), and fails the pipeline when the webhook refuses it.
//
// Config ([stage.config]):
//   url = "http://127.0.0.1:8080/hook"   # the webhook (its host:port must be in allow.net)
//   message = "Release ready"            # free text
//   expect_status = 200                  # optional; default: any 2xx

import { log } from 'sluice:pipeline/log@0.1.0';

// Returning a value is `ok(stage-result)`; throwing a `failure` record ({ message }) is `err`.

const info = (message) => log('info', message);

export function describe() {
  return {
    name: 'notify',
    version: '0.1.0',
    phase: 'release',
    description: 'Posts a JSON notification about the run to an allow-listed webhook (JavaScript)',
  };
}

export async function run(ctx) {
  const config = JSON.parse(ctx.config);
  if (!config.url) {
    throw { message: 'set `url` in [stage.config]: the webhook to notify' };
  }
  const body = {
    pipeline: ctx.pipeline,
    run: ctx.runId,
    stage: ctx.stage,
    message: config.message ?? 'sluice pipeline notification',
    stages: ctx.earlier.map((s) => ({ name: s.name, plugin: s.plugin, status: s.status })),
    artifacts: ctx.inputs.map((a) => ({ name: `${a.stage}/${a.name}`, sha256: a.sha256, size: Number(a.size) })),
  };
  let response;
  try {
    response = await fetch(config.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw { message: `cannot reach ${config.url}: ${err}` };
  }
  const ok = config.expect_status ? response.status === config.expect_status : response.ok;
  if (!ok) {
    throw { message: `${config.url} answered ${response.status}` };
  }
  info(`notified ${config.url} (${response.status})`);
  return { outputs: [], summary: `notified ${config.url}: ${response.status}` };
}
