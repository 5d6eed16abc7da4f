/**
 * Docker multiplexes stdout and stderr of a container without a TTY into frames:
 * an 8-byte header (stream type, 3 zero bytes, big-endian payload length) then the payload.
 * Logs fetched without `follow` and hijacked exec output both arrive in this form.
 */
export function demultiplex(buffer: Buffer): string {
  return demultiplexStreams(buffer).all;
}

/** Both streams apart (stderr for error messages) and together, in order. */
export function demultiplexStreams(buffer: Buffer): { stdout: string; stderr: string; all: string } {
  const all: Buffer[] = [];
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const type = buffer[offset];
    const length = buffer.readUInt32BE(offset + 4);
    if ((type !== 0 && type !== 1 && type !== 2) || buffer[offset + 1] !== 0) {
      // Not framed (a TTY container): the bytes are the text itself.
      const text = buffer.toString('utf8');
      return { stdout: text, stderr: '', all: text };
    }
    const payload = buffer.subarray(offset + 8, offset + 8 + length);
    all.push(payload);
    (type === 2 ? err : out).push(payload);
    offset += 8 + length;
  }
  const text = (parts: Buffer[]) => Buffer.concat(parts).toString('utf8');
  return { stdout: text(out), stderr: text(err), all: text(all) };
}

/** The last `count` non-empty lines of `text`, for error messages. */
export function lastLines(text: string, count: number): string {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0)
    .slice(-count)
    .join('\n');
}
