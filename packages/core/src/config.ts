import { Ajv, type ErrorObject, type JSONSchemaType } from 'ajv';
import { InvalidConfigError } from './errors.js';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, coerceTypes: false });

export function describeAjvErrors(errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const where = e.instancePath || '(root)';
    if (e.keyword === 'additionalProperties') {
      return `${where}: unknown field ${JSON.stringify(e.params.additionalProperty)}`;
    }
    return `${where} ${e.message ?? 'is invalid'}`;
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * Compiles a JSON schema (with `default`s) once and returns a function that turns
 * partial options into a validated, defaulted, deeply frozen config. Unknown fields are
 * errors, never silently dropped: a typo in a config file must not be ignored.
 */
export function configCompiler<T>(what: string, schema: JSONSchemaType<T>): (input: unknown) => Readonly<T> {
  const validate = ajv.compile(schema);
  return (input: unknown) => {
    const copy = structuredClone(input ?? {});
    if (!validate(copy)) throw new InvalidConfigError(what, describeAjvErrors(validate.errors));
    return deepFreeze(copy as T);
  };
}
