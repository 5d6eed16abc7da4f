import { Ajv, type ErrorObject, type JSONSchemaType, type SchemaObject, type ValidateFunction } from 'ajv';
import { BadRecordError } from '../errors.js';

/**
 * How one kind of etcd record is read. Every value read from etcd goes through a codec:
 * the codec checks it against the record's JSON schema and returns it typed, or throws
 * BadRecordError naming the key and every field at fault.
 */
export interface RecordCodec<T> {
  /** What the record is, in messages and logs: `assignment`, `route`, … */
  readonly name: string;
  /** The JSON schema `parse` enforces. */
  readonly schema: SchemaObject;
  /** The value stored at `key` (already JSON-decoded), checked. Throws BadRecordError. */
  parse(key: string, value: unknown): T;
}

export interface RecordDefinition<T> {
  name: string;
  /**
   * The record's schema, type-checked against `T` by ajv's JSONSchemaType. That type asks
   * for `nullable: true` on every optional field; `defineRecord` drops it there, so an
   * optional field may be absent but never `null`. A required field keeps it (`T | null`).
   */
  schema: JSONSchemaType<T>;
  /**
   * Rules the schema cannot say (a record must name the key it is stored under, a field
   * that depends on another). Returns the problems, empty when the record is fine.
   * @default no further rules
   */
  check?: (key: string, record: T) => string[];
}

// One compiler for every record; records are never defaulted, coerced or trimmed: what a
// reader gets is exactly what was written.
const ajv = new Ajv({ allErrors: true, strict: true, verbose: true });

/**
 * The schema with `nullable` removed from every optional field (see
 * RecordDefinition.schema); a field that is both required and nullable (`T | null` in the
 * type) keeps it. ajv's typing checks that `nullable` marks exactly the optional and
 * nullable fields but not that `required` lists every other one; that is checked here,
 * once, when the codec is defined.
 */
function withoutNullable(schema: unknown, where: string): unknown {
  if (Array.isArray(schema)) return schema.map((s, i) => withoutNullable(s, `${where}/${i}`));
  if (!schema || typeof schema !== 'object') return schema;
  const listed: readonly string[] = (schema as { required?: string[] }).required ?? [];
  const copy: Record<string, unknown> = {};
  for (const [keyword, value] of Object.entries(schema)) {
    if (keyword === 'properties' && value && typeof value === 'object') {
      const properties = Object.entries(value as Record<string, { nullable?: boolean }>);
      const unlisted = properties.filter(([name, s]) => !s.nullable && !listed.includes(name)).map(([name]) => name);
      if (unlisted.length > 0) {
        throw new TypeError(
          `record schema ${where}: required must list ${unlisted.join(', ')} (or mark them nullable)`,
        );
      }
      copy[keyword] = Object.fromEntries(
        properties.map(([name, s]) => {
          const strict = withoutNullable(s, `${where}/${name}`) as Record<string, unknown>;
          return [name, s.nullable && listed.includes(name) ? { ...strict, nullable: true } : strict];
        }),
      );
    } else if (keyword === 'nullable') {
      // Dropped here; kept above for required fields only.
    } else if (keyword === 'enum' || keyword === 'const' || keyword === 'required') {
      copy[keyword] = value;
    } else {
      copy[keyword] = withoutNullable(value, where);
    }
  }
  return copy;
}

const article = (type: string) => (/^[aeiou]/.test(type) ? 'an' : 'a');

/** One line per ajv error, each naming the field by its JSON pointer. */
export function describeRecordErrors(errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const where = e.instancePath || '(root)';
    switch (e.keyword) {
      case 'required':
        return `${e.instancePath}/${e.params.missingProperty} is required`;
      case 'enum':
        return `${where} must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      case 'type':
        if (e.data === null) return `${where} must be ${article(e.params.type)} ${e.params.type}, not null`;
        return `${where} ${e.message ?? 'has the wrong type'}`;
      default:
        return `${where} ${e.message ?? 'is invalid'}`;
    }
  });
}

/**
 * A codec for one record type. The schema is compiled once per process, on first use (a
 * process that never reads a record never pays for its schema).
 */
export function defineRecord<T>(definition: RecordDefinition<T>): RecordCodec<T> {
  const schema = withoutNullable(definition.schema, definition.name) as SchemaObject;
  let validate: ValidateFunction<T> | undefined;
  return {
    name: definition.name,
    schema,
    parse(key: string, value: unknown): T {
      validate ??= ajv.compile<T>(schema);
      if (!validate(value)) throw new BadRecordError(key, definition.name, describeRecordErrors(validate.errors));
      const problems = definition.check?.(key, value) ?? [];
      if (problems.length > 0) throw new BadRecordError(key, definition.name, problems);
      return value;
    },
  };
}

/**
 * Decodes an etcd value (bytes or text) and parses it with `codec`. A value that is not
 * JSON is a BadRecordError like any other malformed record.
 */
export function decodeRecord<T>(codec: RecordCodec<T>, key: string, raw: Buffer | string): T {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString());
  } catch (error) {
    throw new BadRecordError(key, codec.name, [`(root) is not JSON: ${(error as Error).message}`]);
  }
  return codec.parse(key, value);
}

/**
 * The last `count` segments of a key (`…/<instanceId>/<ordinal>` → `[instanceId, ordinal]`).
 * Codecs use it to check that a record names the key it is stored under without knowing
 * the keyspace root.
 */
export function keyTail(key: string, count: number): string[] {
  return key.split('/').slice(-count);
}
