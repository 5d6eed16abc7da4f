import { randomBytes, randomInt } from 'node:crypto';

const lowerAlnum = 'abcdefghijklmnopqrstuvwxyz0123456789';
const alnum = `ABCDEFGHIJKLMNOPQRSTUVWXYZ${lowerAlnum}`;

/** Uniformly random characters from `alphabet` (randomInt avoids modulo bias). */
function randomString(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** Passwords: letters and digits only, so they never need quoting in SQL, URIs or env files. */
export function randomPassword(length = 32): string {
  return randomString(alnum, length);
}

/** Database user names: `u_` + 16 lowercase letters/digits (a valid unquoted SQL identifier). */
export function randomUsername(): string {
  return `u_${randomString(lowerAlnum, 16)}`;
}

/** Operation ids carry their type, so a poll after the instance is gone can still be answered. */
export function newOperationId(type: string): string {
  return `${type}-${randomBytes(8).toString('hex')}`;
}
