/**
 * Size limits on what the broker accepts (docs/broker.md). Chosen far above what a
 * platform sends (Cloud Foundry's contexts are a few hundred bytes) and far below what
 * would strain etcd (1.5 MiB per request) or the stack (deeply nested JSON).
 */
export const requestLimits = {
  /** A whole request body, in bytes. */
  bodyBytes: 64 * 1024,
  /** Nesting of a whole body: `{}` is 1, `{"a":{}}` is 2. */
  bodyDepth: 16,
  /** `context` and `parameters`, each, as JSON bytes. */
  fieldBytes: 16 * 1024,
  /** `context` and `parameters`, each, nesting (counted like bodyDepth). */
  fieldDepth: 8,
  /** Path and query string, in bytes. */
  urlBytes: 4096,
  /** One path segment (an id or a name), in characters. */
  paramChars: 1024,
} as const;
