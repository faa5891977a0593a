/**
 * Test support: a deadline on one step of a test, so that a step that hangs fails at once with its own name
 * instead of running into Jest's timeout for the whole test (which names neither the step nor the error that a
 * `finally` waiting on it may hide).
 *
 * @module
 */

/** A step of a test did not finish in time. */
export class StepTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not finish within ${ms} ms`);
    this.name = "StepTimeoutError";
  }
}

/**
 * `promise`, or a {@link StepTimeoutError} naming `what` after `ms` milliseconds. The promise itself goes on (a
 * promise cannot be cancelled); its later rejection is ignored.
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StepTimeoutError(what, ms)), ms);
  });
  promise.catch(() => undefined);
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
