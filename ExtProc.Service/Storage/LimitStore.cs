namespace ExtProc.Storage;

/// <summary>How a counter is kept. The letters are the wire form the Redis scripts read.</summary>
internal enum CounterKind : byte
{
    /// <summary>Fixed window of <see cref="LimitCounter.WindowMs"/>, aligned on the store's clock (requests, tokens).</summary>
    Window = (byte)'w',

    /// <summary>
    /// A calendar period whose id is already in the key (budgets), valid from <see cref="LimitCounter.PeriodStartMs"/>
    /// to <see cref="LimitCounter.PeriodEndMs"/>; a shared store refuses to count in a period its own clock is not in.
    /// </summary>
    Calendar = (byte)'c',

    /// <summary>Requests in flight: a set of reservation ids, each with a lease so a crashed replica's slots come back.</summary>
    Concurrency = (byte)'q',
}

/// <summary>
/// One counter a request must fit in: its key (see <see cref="LimitKeys"/>), the limit, what the request takes,
/// and whether it refuses (rather than falls back to a local limiter) while the shared store is out.
/// Calendar counters carry their period's bounds (Unix ms) so the shared store can check them against its clock.
/// </summary>
internal readonly record struct LimitCounter(string Key, CounterKind Kind, long Limit, long WindowMs, long Amount, bool FailClosed = false, long PeriodStartMs = 0, long PeriodEndMs = 0);

/// <summary>
/// All counters of one request, reserved together or not at all. The reservation id makes admission and
/// settlement idempotent (faults.md §0.5): replaying either never counts twice.
/// </summary>
internal sealed record AdmissionRequest(string ReservationId, LimitCounter[] Counters, long LeaseMs);

/// <summary>What the store answered.</summary>
internal sealed class AdmissionResult
{
    public AdmissionResult(int count)
    {
        Used = new long[count];
        ResetMs = new long[count];
    }

    public bool Admitted { get; set; }

    /// <summary>Index of the first counter that did not fit, or -1.</summary>
    public int FailedIndex { get; set; } = -1;

    /// <summary>Counter values after this admission (or as found, when refused).</summary>
    public long[] Used { get; }

    /// <summary>Milliseconds until each counter's window resets.</summary>
    public long[] ResetMs { get; }

    /// <summary>True when the shared store did not answer and a closed policy refused.</summary>
    public bool Unavailable { get; set; }

    /// <summary>True when the local limiter decided because the shared store did not answer.</summary>
    public bool Degraded { get; set; }

    /// <summary>
    /// Non-zero when nothing was counted because a calendar period the replica named is not the current one on
    /// the shared store's clock (replica clock skew at a period boundary): the store's time, in Unix ms, to
    /// name the period again from.
    /// </summary>
    public long StalePeriodNowMs { get; set; }

    public long RetryAfterMs => FailedIndex >= 0 ? Math.Max(1000, ResetMs[FailedIndex]) : 1000;
}

/// <summary>
/// The seam between the limits stage and where counters live: in this process, or in Redis shared by
/// every replica. <see cref="SettleAsync"/> replaces each reserved amount with the actual one
/// (-1 keeps the reservation as it is) and frees concurrency slots.
/// </summary>
internal interface ILimitStore
{
    ValueTask<AdmissionResult> ReserveAsync(AdmissionRequest request);

    ValueTask SettleAsync(string reservationId, long[] actual);
}
