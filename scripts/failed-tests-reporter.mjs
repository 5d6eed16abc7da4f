// A node:test reporter that prints nothing until the run ends, then one block per failed
// test: its file, the names of the suites around it, and the first lines of its error.
// The TAP stream of a whole run is long enough that a CI log's tail may not reach a
// failure printed minutes earlier; this summary is always the last thing before the exit.
import { relative } from 'node:path';

const errorLines = 12;

function describeError(error) {
  const cause = error?.cause ?? error;
  const text = cause instanceof Error ? (cause.stack ?? String(cause)) : String(cause);
  return text.split('\n').slice(0, errorLines).join('\n    ');
}

export default async function* failedTestsReporter(source) {
  const openNames = new Map();
  const failures = [];
  for await (const event of source) {
    const { data, type } = event;
    if (type === 'test:start' || type === 'test:fail') {
      const names = openNames.get(data.file) ?? [];
      names[data.nesting] = data.name;
      names.length = data.nesting + 1;
      openNames.set(data.file, names);
    }
    if (type !== 'test:fail') continue;
    // A suite that failed because a test inside it did says nothing the inner one does not.
    if (data.details?.error?.failureType === 'subtestsFailed') continue;
    const file = data.file ? relative(process.cwd(), data.file) : '(no file)';
    const path = (openNames.get(data.file) ?? [data.name]).join(' › ');
    failures.push(`not ok: ${file}\n  ${path}\n    ${describeError(data.details?.error)}\n`);
  }
  if (failures.length === 0) return;
  yield `\n# ${failures.length} failed test(s):\n${failures.join('\n')}`;
}
