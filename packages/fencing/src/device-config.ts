import {
  BadRecordError,
  configCompiler,
  InvalidConfigError,
  InvalidInputError,
  type RecordCodec,
} from '@service-foundry/core';
import type { JSONSchemaType } from 'ajv';
import { isSecretOption, redactionMarker } from './secrets.js';

/** An option value as written in JSON; booleans go to agents as `1`/`0`, numbers as decimals. */
export type FenceOptionValue = string | number | boolean;

/** How a successful `off` is confirmed. */
export type FenceConfirm = 'status' | 'exit-code';

/** One fence device: an executable speaking the ClusterLabs fence-agent protocol. */
export interface FenceDeviceConfig {
  /** Label in history and logs. @default the agent name */
  name?: string;
  /**
   * `fence_docker`, `fence_ipmilan`, …, or the project's own `fence_sf_sim`: a `fence_*`
   * executable in one of the allow-listed `agentDirs` (never looked up on PATH, never run
   * through a shell), or its absolute path there.
   */
  agent: string;
  /**
   * `key=value` lines for the agent's stdin (`ip`, `ipport`, `plug`, `username`,
   * `password`, …): only options the agent declares (`action=metadata`), with values of
   * the declared type. `action` and `nodename` are set by the runner. @default {}
   */
  options: Record<string, FenceOptionValue>;
  /** Deadline for one run of the agent; on expiry its process group is killed. @default 30 */
  timeoutSeconds: number;
  /** Further attempts after a failed run (0 = try once). @default 1 */
  retries: number;
  /**
   * `status`: after `off` succeeds, run `status` and require OFF (exit 2). `exit-code`:
   * trust `off`'s exit code, for devices whose status is not reliable. @default 'status'
   */
  confirm: FenceConfirm;
}

/** A level succeeds only if all its devices succeed. */
export interface FenceLevelConfig {
  devices: FenceDeviceConfig[];
}

/** What an operator writes: levels tried in order until one succeeds. */
export interface FenceDevicesInput {
  levels: FenceLevelConfig[];
}

/** The value of `fence-devices/<node>`. */
export interface FenceDevicesRecord extends FenceDevicesInput {
  node: string;
  updatedAt: string;
  /** The operator who wrote it. */
  updatedBy: string;
}

export const maxLevels = 8;
export const maxDevicesPerLevel = 8;

/**
 * A first filter only (names as found in /usr/sbin, or an absolute path): which agents may
 * run is decided by the allow-list (agent-path.ts), before storing and before every run.
 */
const agentPattern = '^([A-Za-z0-9][A-Za-z0-9_.+-]{0,127}|/[^\\u0000-\\u001f\\u007f]{1,4095})$';
/** Option names as ClusterLabs agents spell them (`ipport`, `ssl_insecure`, `api-version`). */
const optionNamePattern = '^[A-Za-z][A-Za-z0-9_-]{0,63}$';
/** One stdin line per option: no line breaks or other control characters inside a value. */
const optionValuePattern = '^[^\\u0000-\\u001f\\u007f]*$';

const deviceSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['agent'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$' },
    agent: { type: 'string', pattern: agentPattern },
    options: {
      type: 'object',
      default: {},
      maxProperties: 64,
      propertyNames: { pattern: optionNamePattern, not: { enum: ['action', 'nodename', 'o'] } },
      additionalProperties: {
        anyOf: [
          { type: 'string', maxLength: 4096, pattern: optionValuePattern },
          { type: 'number' },
          { type: 'boolean' },
        ],
      },
    },
    timeoutSeconds: { type: 'number', default: 30, exclusiveMinimum: 0, maximum: 3600 },
    retries: { type: 'integer', default: 1, minimum: 0, maximum: 10 },
    confirm: { type: 'string', enum: ['status', 'exit-code'], default: 'status' },
  },
};

const inputSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['levels'],
  properties: {
    levels: {
      type: 'array',
      minItems: 1,
      maxItems: maxLevels,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['devices'],
        properties: { devices: { type: 'array', minItems: 1, maxItems: maxDevicesPerLevel, items: deviceSchema } },
      },
    },
  },
};

const recordSchema = {
  ...inputSchema,
  required: ['levels', 'node', 'updatedAt', 'updatedBy'],
  properties: {
    ...inputSchema.properties,
    node: { type: 'string' },
    updatedAt: { type: 'string' },
    updatedBy: { type: 'string' },
  },
};

// The option values' union type is beyond JSONSchemaType; the schemas above are checked by
// ajv in strict mode at load time and by the tests.
const compileInput = configCompiler<FenceDevicesInput>(
  'fence devices',
  inputSchema as unknown as JSONSchemaType<FenceDevicesInput>,
);
const compileRecord = configCompiler<FenceDevicesRecord>(
  'fence devices record',
  recordSchema as unknown as JSONSchemaType<FenceDevicesRecord>,
);

/**
 * Validates an operator's fence-device configuration (defaults filled in, frozen). Throws
 * InvalidInputError listing every problem.
 */
export function parseFenceDevices(input: unknown): Readonly<FenceDevicesInput> {
  try {
    return compileInput(input);
  } catch (error) {
    if (error instanceof InvalidConfigError) throw new InvalidInputError('invalid fence devices', error.problems);
    throw error;
  }
}

/** Validates a `fence-devices/<node>` value before it is stored (defaults filled in). Throws InvalidConfigError. */
export function parseFenceDevicesRecord(value: unknown): Readonly<FenceDevicesRecord> {
  return compileRecord(value);
}

/** The codec of `fence-devices/<node>` as read back (opened by core's readSealed). Throws BadRecordError. */
export const fenceDevicesCodec: RecordCodec<Readonly<FenceDevicesRecord>> = {
  name: 'fence devices',
  schema: recordSchema,
  parse(key, value) {
    try {
      return compileRecord(value);
    } catch (error) {
      if (error instanceof InvalidConfigError) throw new BadRecordError(key, 'fence devices', error.problems);
      throw error;
    }
  },
};

/** The label of a device in history: its name, else its agent's base name. */
export function deviceLabel(device: Pick<FenceDeviceConfig, 'name' | 'agent'>): string {
  return device.name ?? device.agent.slice(device.agent.lastIndexOf('/') + 1);
}

/** The config as operators may read it back: every secret option replaced by the marker. */
export function redactFenceDevices<T extends FenceDevicesInput>(config: T): T {
  return {
    ...config,
    levels: config.levels.map((level) => ({
      devices: level.devices.map((device) => ({
        ...device,
        options: Object.fromEntries(
          Object.entries(device.options).map(([k, v]) => [k, isSecretOption(k) ? redactionMarker : v]),
        ),
      })),
    })),
  };
}

/**
 * Lets an operator round-trip a redacted config: a secret option whose new value is the
 * marker keeps the stored value of the same option of the same device (same level, same
 * position, same agent). A marker with nothing to keep is an error, never a stored marker.
 */
export function keepRedactedSecrets(
  input: Readonly<FenceDevicesInput>,
  stored: Readonly<FenceDevicesInput> | undefined,
): FenceDevicesInput {
  const problems: string[] = [];
  const levels = input.levels.map((level, l) => ({
    devices: level.devices.map((device, d) => {
      const previous = stored?.levels[l]?.devices[d];
      const options: Record<string, FenceOptionValue> = {};
      for (const [name, value] of Object.entries(device.options)) {
        if (value !== redactionMarker) {
          options[name] = value;
          continue;
        }
        const kept = previous?.agent === device.agent ? previous.options[name] : undefined;
        if (kept === undefined || !isSecretOption(name)) {
          problems.push(`/levels/${l}/devices/${d}/options/${name} is ${redactionMarker} but there is no stored value`);
        } else {
          options[name] = kept;
        }
      }
      return { ...device, options };
    }),
  }));
  if (problems.length > 0) throw new InvalidInputError('invalid fence devices', problems);
  return { levels };
}
