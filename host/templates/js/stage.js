// {{name}}: a sluice stage in JavaScript. Reads `greeting` from [stage.config] and returns it as
// the summary. Return a stage-result for ok; throw a failure record ({ message }) for err.

import { log } from 'sluice:pipeline/log@0.1.0';

export function describe() {
  return { name: '{{name}}', version: '0.1.0', phase: 'build', description: 'Greets (edit me)' };
}

export function run(ctx) {
  const config = JSON.parse(ctx.config);
  const greeting = config.greeting ?? 'hello';
  if (!greeting) {
    throw { message: '`greeting` is empty' };
  }
  log('info', `${ctx.inputs.length} inputs seen`);
  return { outputs: [], summary: `${greeting} from ${ctx.stage}` };
}
