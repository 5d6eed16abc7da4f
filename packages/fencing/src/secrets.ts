/**
 * Fence devices carry credentials (BMC passwords, API tokens, SNMP communities). They are
 * stored in etcd because the controller needs them, but they never leave it again: not in
 * logs, not in fence history, not in operator API answers.
 */

/** What replaces a secret wherever one would otherwise be shown. */
export const redactionMarker = '[redacted]';

/**
 * Option names that hold secrets in ClusterLabs agents: `password`, `passwd`,
 * `snmp_priv_passwd`, `community`, `secret_key`, `access_key`, `token`, `api_key`, …
 * `password_script` is included too: its command line often embeds the secret.
 */
const secretName = /passw|secret|token|community|credential|private[_-]?key|access[_-]?key|api[_-]?key/i;

export function isSecretOption(name: string): boolean {
  return secretName.test(name);
}

/** A copy of `options` with every secret value replaced by the marker. */
export function redactOptions<V>(options: Readonly<Record<string, V>>): Record<string, V | string> {
  const copy: Record<string, V | string> = {};
  for (const [name, value] of Object.entries(options)) copy[name] = isSecretOption(name) ? redactionMarker : value;
  return copy;
}

/** The values to scrub from an agent's output: every secret option's value, as sent. */
export function secretValues(options: Readonly<Record<string, unknown>>): string[] {
  return Object.entries(options)
    .filter(([name, value]) => isSecretOption(name) && String(value).length > 0)
    .map(([, value]) => String(value));
}

/** `name=value` / `name: value` pairs whose name looks secret, wherever they appear in text. */
const secretAssignment = new RegExp(
  `((?:${secretName.source})[A-Za-z0-9_-]*)(\\s*[=:]\\s*)("[^"]*"|'[^']*'|\\S+)`,
  'gi',
);

/**
 * Scrubs known secret values and anything shaped like `password=…` from agent output.
 * Agents echo their input in warnings (fence_dummy: "Ignoring unknown option
 * 'password=…'"), so output is untrusted for secrets.
 */
export function redactText(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first, so a secret that contains another is replaced whole.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(secret).join(redactionMarker);
  return out.replace(secretAssignment, (_all, name: string, sep: string) => `${name}${sep}${redactionMarker}`);
}
