import { describeExit } from '../supervision/supervision-state.js';
import { componentStatus } from './components.js';

/** A component that stopped running while `sf up` waited for the platform. */
export interface StartUpFailure {
  readonly name: string;
  /** "exited", or "restarted 3 times (last exit: exit code 1 after 0.4 s)". */
  readonly reason: string;
}

/**
 * Watches the components `sf up` started (or found running) until the platform answers.
 * Restarts are counted from the moment the watch begins: a component the supervisor
 * restarted three times last week, or in a chaos round, is not crash-looping now.
 */
export class StartUpWatch {
  /** A supervisor restarts a crash; this many during one start-up is a component that cannot start. */
  static readonly crashLoopRestarts = 3;

  private constructor(
    private readonly stateDir: string,
    private readonly restartsBefore: ReadonlyMap<string, number>,
  ) {}

  static async begin(stateDir: string, names: readonly string[]): Promise<StartUpWatch> {
    const before = new Map<string, number>();
    for (const name of names) before.set(name, (await componentStatus(stateDir, name)).supervision?.restarts ?? 0);
    return new StartUpWatch(stateDir, before);
  }

  /** The first watched component that is gone or crash-looping; undefined while all run. */
  async failure(): Promise<StartUpFailure | undefined> {
    for (const [name, before] of this.restartsBefore) {
      const status = await componentStatus(this.stateDir, name);
      if (status.supervisor === undefined && status.pid === undefined) return { name, reason: 'exited' };
      const restarts = (status.supervision?.restarts ?? 0) - before;
      if (restarts >= StartUpWatch.crashLoopRestarts) {
        const lastExit = describeExit(status.supervision?.lastExit ?? null);
        return { name, reason: `restarted ${restarts} times (last exit: ${lastExit})` };
      }
    }
    return undefined;
  }
}
