/**
 * The pause between two passes of a polling loop (the chain-log listener, the cross-chain deadline watcher): it
 * ends after its interval, or at once when woken (a new block announced, a stop).
 *
 * @module
 */

/** A pause that {@link WakeablePause.wake} ends early. One pause at a time. */
export class WakeablePause {
  #wake: (() => void) | undefined;

  /**
   * Waits `ms` milliseconds, or until {@link wake} is called.
   * @param ms - the pause, milliseconds.
   */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /** Ends the pause in progress, if any. */
  wake(): void {
    this.#wake?.();
  }
}
