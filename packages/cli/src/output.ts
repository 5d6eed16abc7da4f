/** Prints rows as an aligned table with a header, like `cf services`. */
export function printTable(headers: string[], rows: Array<Array<string | number>>): void {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  for (const row of cells) {
    process.stdout.write(`${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('   ')}\n`);
  }
  if (rows.length === 0) process.stdout.write('(none)\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/**
 * Progress for long waits: on a terminal one line rewritten in place, elsewhere a line
 * each time the message changes (so CI logs stay readable).
 */
export class Progress {
  #last = '';
  #started = Date.now();
  readonly #tty = process.stderr.isTTY === true;

  update(message: string): void {
    const elapsed = ((Date.now() - this.#started) / 1000).toFixed(1);
    if (this.#tty) {
      process.stderr.write(`\r\x1b[K${message} (${elapsed} s)`);
    } else if (message !== this.#last) {
      process.stderr.write(`${message} (${elapsed} s)\n`);
    }
    this.#last = message;
  }

  done(message: string): void {
    const elapsed = ((Date.now() - this.#started) / 1000).toFixed(1);
    process.stderr.write(`${this.#tty ? '\r\x1b[K' : ''}${message} (${elapsed} s)\n`);
  }
}
