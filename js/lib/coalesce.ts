/**
 * Request coalescing for continuous controls (sliders).
 *
 * At most one request is in flight; while it is, newer values replace each
 * other in a single pending slot (the latest value wins) and are sent when the
 * response arrives. Every request carries a sequence number; responses older
 * than the newest one shown are reported stale so the view drops them.
 */
export class Coalescer<T> {
  private seq = 0;
  private inFlight: number | null = null;
  private sentAt = 0;
  private pending: { value: T } | null = null;
  private shown = 0;

  /**
   * @param send transmits a value with its sequence number
   * @param timeoutMs after this long without a response, a pending value is sent anyway
   * @param now clock (injectable for tests)
   */
  constructor(
    private readonly send: (value: T, seq: number) => void,
    private readonly timeoutMs = 5000,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /**
   * Offer a new value; sent now if nothing is in flight (or the request in flight is older than
   * the timeout), else kept as the pending value.
   */
  push(value: T): void {
    if (this.inFlight !== null && this.now() - this.sentAt < this.timeoutMs) {
      this.pending = { value };
      return;
    }
    // Sending now supersedes any value still waiting: left in the slot, that older value would
    // go out when this request is answered and overwrite the newest one.
    this.pending = null;
    this.dispatch(value);
  }

  /**
   * Record a response. Returns true if it should be displayed (it is not older
   * than what is shown), and sends the pending value if there is one.
   */
  settle(seq: number): boolean {
    if (this.inFlight !== null && seq >= this.inFlight) {
      this.inFlight = null;
      if (this.pending !== null) {
        const { value } = this.pending;
        this.pending = null;
        this.dispatch(value);
      }
    }
    if (seq < this.shown) return false;
    this.shown = seq;
    return true;
  }

  /** True while a request is in flight or a value is waiting. */
  get busy(): boolean {
    return this.inFlight !== null || this.pending !== null;
  }

  /** Sequence number of the most recent request sent. */
  get lastSent(): number {
    return this.seq;
  }

  private dispatch(value: T): void {
    this.seq += 1;
    this.inFlight = this.seq;
    this.sentAt = this.now();
    this.send(value, this.seq);
  }
}
