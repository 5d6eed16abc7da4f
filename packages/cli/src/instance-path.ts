import { UsageError } from './errors.js';

/**
 * The operator-API path of an instance named by id or name. The broker resolves it (one
 * resolver for `sf` and the API: an id first, else a name; 409 for a name used in several
 * spaces), so the CLI never guesses from a listing. `.` and `..` would be read as path
 * steps by URL parsing, even percent-encoded: such an instance is named by its id.
 */
export function instancePath(idOrName: string, tail = ''): string {
  if (idOrName === '' || idOrName === '.' || idOrName === '..') {
    throw new UsageError(`${JSON.stringify(idOrName)} cannot name an instance here; use its id (see \`sf services\`)`);
  }
  return `/sf/v1/instances/${encodeURIComponent(idOrName)}${tail}`;
}
