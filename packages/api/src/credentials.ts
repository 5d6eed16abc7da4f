/**
 * `GET /sf/v1/instances/:id/credentials-rotation`: where the rotation of an instance's own
 * admin and replication passwords stands (`sf rotate-credentials`). Never a password.
 */

/** `none`: never rotated, or the last rotation finished; the others are its two steps. */
export type RotationStep = 'accept-previous' | 'new-only';

export interface RotationReplica {
  ordinal: number;
  node: string;
  state: string;
  /** The generation and step its server has taken on; null: none reported. */
  passwords: { generation: number; phase: RotationStep } | null;
}

export interface RotationView {
  instanceId: string;
  name: string;
  /** How many times the passwords were rotated (0: never). */
  generation: number;
  /**
   * `accept-previous`: the new passwords are in force and the replaced ones may still be
   * accepted while every replica takes the new ones on; `new-only`: only the new ones are
   * (the last step, or done).
   */
  step: RotationStep | 'none';
  replicas: RotationReplica[];
  /** The running rotation's operation id; null when none runs. */
  operation: string | null;
  /** Its progress, or how the last one ended. */
  description: string;
}

/** `POST /sf/v1/instances/:id/credentials-rotation`: 202 with the operation (a new one, or the one running). */
export interface RotationStarted extends RotationView {
  operation: string;
  /** False when this request resumed or re-joined a rotation already under way. */
  started: boolean;
}
