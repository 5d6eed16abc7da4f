/**
 * Parses fence-agent options the way ClusterLabs' fencing.py does: one `key=value` per
 * line, surrounding whitespace trimmed, `#` comments and blank lines skipped, one pair of
 * double quotes around a value removed, `-` and `_` interchangeable in names.
 */
export function parseAgentOptions(text: string): Map<string, string> {
  const options = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const name = (eq < 0 ? line : line.slice(0, eq)).replaceAll('-', '_');
    const value = eq < 0 ? '' : line.slice(eq + 1);
    options.set(name, value.replace(/^"(.*)"$/, '$1'));
  }
  return options;
}
