import { FenceAgentMetadataError } from './errors.js';

/** One `<parameter>` of an agent's metadata: what it may be sent on stdin, and as what. */
export interface AgentParameter {
  /** As declared, e.g. `ipport`, `ssl_insecure`. */
  name: string;
  /** `<content type=…>`: `string`, `boolean`, `integer`, `second`, `select`, …; `string` when absent. */
  type: string;
  /** `<option value=…>` of a `select`. */
  choices: string[];
  /** Long options from `<getopt mixed=…>` (`status-file` for `status_file`, `username` for `login`). */
  longOptions: string[];
  /** Marked `deprecated="1"` (an old alias such as `ipaddr`, `port`, `login`). */
  deprecated: boolean;
}

/** What `action=metadata` declared (ClusterLabs resource-agent XML). */
export interface AgentMetadata {
  /** `<resource-agent name=…>`. */
  agent: string;
  parameters: AgentParameter[];
}

const maxParameters = 1000;

/** A start or end tag with its attributes; anchored at the scanner's position. */
const tagPattern = /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/y;
const attributePattern = /([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')/g;
const entities: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(text: string): string {
  return text.replace(/&(#x[0-9A-Fa-f]{1,6}|#[0-9]{1,7}|[a-z]{2,4});/g, (whole, ref: string) => {
    if (!ref.startsWith('#')) return entities[ref] ?? whole;
    const code = ref.startsWith('#x') ? Number.parseInt(ref.slice(2), 16) : Number(ref.slice(1));
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

function attributesOf(text: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const m of text.matchAll(attributePattern)) attributes.set(m[1] as string, decode(m[2] ?? m[3] ?? ''));
  return attributes;
}

/** Skips a comment, processing instruction, CDATA section or doctype at `at`; the offset after it. */
function skipSpecial(xml: string, at: number, fail: (reason: string) => never): number | undefined {
  for (const [open, close] of [
    ['<!--', '-->'],
    ['<?', '?>'],
    ['<![CDATA[', ']]>'],
    ['<!', '>'],
  ] as const) {
    if (!xml.startsWith(open, at)) continue;
    const end = xml.indexOf(close, at + open.length);
    if (end < 0) fail(`unterminated ${open} at offset ${at}`);
    return end + close.length;
  }
  return undefined;
}

/**
 * Reads the parameters out of an agent's `action=metadata` output. Not a general XML
 * parser: tags, attributes, comments and entities are understood, element text is
 * skipped, and the elements that matter must sit where the ClusterLabs format puts them
 * (`resource-agent > parameters > parameter > content > option`). Throws on anything
 * malformed (FenceAgentMetadataError naming `source`): an agent that cannot describe
 * itself is not run.
 */
export function parseAgentMetadata(xml: string, source: string): AgentMetadata {
  const fail: (reason: string) => never = (reason) => {
    throw new FenceAgentMetadataError(source, reason);
  };
  const stack: string[] = [];
  const parameters: AgentParameter[] = [];
  let agent: string | undefined;
  let sawParameters = false;
  let current: AgentParameter | undefined;
  let at = 0;
  for (;;) {
    at = xml.indexOf('<', at);
    if (at < 0) break;
    const skipped = skipSpecial(xml, at, fail);
    if (skipped !== undefined) {
      at = skipped;
      continue;
    }
    tagPattern.lastIndex = at;
    const m = tagPattern.exec(xml);
    if (!m) fail(`malformed tag at offset ${at}`);
    at = tagPattern.lastIndex;
    const [, closing, name = '', attributeText = '', selfClosing] = m;
    if (closing) {
      if (stack.pop() !== name) fail(`unexpected </${name}> at offset ${m.index}`);
      if (name === 'parameter' && current) {
        parameters.push(current);
        current = undefined;
      }
      continue;
    }
    const attributes = attributesOf(attributeText);
    const path = [...stack, name].join('>');
    if (path === 'resource-agent') agent = attributes.get('name') ?? '';
    else if (path === 'resource-agent>parameters') sawParameters = true;
    else if (path === 'resource-agent>parameters>parameter') {
      const parameterName = attributes.get('name');
      if (!parameterName) fail(`a <parameter> without a name at offset ${m.index}`);
      if (parameters.length >= maxParameters) fail(`more than ${maxParameters} parameters`);
      current = {
        name: parameterName,
        type: 'string',
        choices: [],
        longOptions: [],
        deprecated: attributes.get('deprecated') === '1',
      };
    } else if (current && path.endsWith('>parameter>getopt')) {
      const mixed = attributes.get('mixed') ?? '';
      current.longOptions.push(...[...mixed.matchAll(/--([A-Za-z0-9][\w.-]*)/g)].map((g) => g[1] as string));
    } else if (current && path.endsWith('>parameter>content')) {
      current.type = attributes.get('type') || 'string';
    } else if (current && path.endsWith('>parameter>content>option')) {
      const value = attributes.get('value');
      if (value !== undefined) current.choices.push(value);
    }
    if (selfClosing) {
      if (path === 'resource-agent>parameters>parameter' && current) {
        parameters.push(current);
        current = undefined;
      }
    } else {
      stack.push(name);
    }
  }
  if (stack.length > 0) fail(`<${stack[stack.length - 1]}> is never closed`);
  if (agent === undefined) fail('no <resource-agent> element');
  if (!sawParameters) fail('no <parameters> element');
  return { agent, parameters };
}
