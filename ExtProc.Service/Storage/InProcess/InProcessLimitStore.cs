namespace ExtProc.Storage.InProcess;

/// <summary>
/// Counters in this process: the embedded default for one replica, and the degraded limiter while
/// Redis is out (built with limits divided by the replica count). Same semantics as the Redis scripts:
/// every counter of a request fits or none is taken, settlement replaces the reserved amount, and
/// both are idempotent by reservation id. One lock keeps the multi-counter check-and-take atomic;
/// <c>System.Threading.RateLimiting</c> does not fit here because its limiters can neither take from
/// several limits atomically nor give back part of a lease at settlement.
/// </summary>
internal sealed class InProcessLimitStore : ILimitStore
{
    private readonly TimeProvider _time;
    private readonly int _divisor;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _counters = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dictionary<string, long>> _inflight = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Reservation> _reservations = new(StringComparer.Ordinal);
    private long _operations;

    public InProcessLimitStore(TimeProvider time, int divisor = 1)
    {
        _time = time;
        _divisor = Math.Max(1, divisor);
    }

    public ValueTask<AdmissionResult> ReserveAsync(AdmissionRequest request)
    {
        var counters = request.Counters;
        var result = new AdmissionResult(counters.Length);
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        lock (_lock)
        {
            if (++_operations % 4096 == 0)
            {
                Purge(now);
            }

            var duplicate = _reservations.ContainsKey(request.ReservationId);
            var keys = new string[counters.Length];
            for (var i = 0; i < counters.Length; i++)
            {
                var counter = counters[i];
                keys[i] = KeyOf(counter, now);
                var used = Used(counter, keys[i], now);
                result.Used[i] = used;
                result.ResetMs[i] = ResetOf(counter, now);
                if (!duplicate && result.FailedIndex < 0 && used + Amount(counter) > Limit(counter))
                {
                    result.FailedIndex = i;
                }
            }

            if (duplicate || result.FailedIndex >= 0)
            {
                result.Admitted = duplicate;
                return new(result);
            }

            var amounts = new long[counters.Length];
            for (var i = 0; i < counters.Length; i++)
            {
                var counter = counters[i];
                amounts[i] = Amount(counter);
                if (counter.Kind == CounterKind.Concurrency)
                {
                    if (!_inflight.TryGetValue(keys[i], out var set))
                    {
                        _inflight[keys[i]] = set = new Dictionary<string, long>(StringComparer.Ordinal);
                    }

                    set[request.ReservationId] = now + request.LeaseMs;
                }
                else
                {
                    var expires = counter.Kind == CounterKind.Window ? (now / counter.WindowMs + 2) * counter.WindowMs : now + counter.WindowMs;
                    ref var entry = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_counters, keys[i], out _);
                    entry.Value += amounts[i];
                    entry.ExpiresAt = Math.Max(entry.ExpiresAt, expires);
                }

                result.Used[i] += amounts[i];
            }

            _reservations[request.ReservationId] = new Reservation(keys, counters, amounts, now + request.LeaseMs);
            result.Admitted = true;
        }

        return new(result);
    }

    public ValueTask SettleAsync(string reservationId, long[] actual)
    {
        lock (_lock)
        {
            if (!_reservations.Remove(reservationId, out var reservation))
            {
                return default;
            }

            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            for (var i = 0; i < reservation.Keys.Length; i++)
            {
                var key = reservation.Keys[i];
                if (reservation.Counters[i].Kind == CounterKind.Concurrency)
                {
                    if (_inflight.TryGetValue(key, out var set))
                    {
                        set.Remove(reservationId);
                    }

                    continue;
                }

                if (i < actual.Length && actual[i] >= 0 && _counters.TryGetValue(key, out var entry) && entry.ExpiresAt > now)
                {
                    entry.Value = Math.Max(0, entry.Value + actual[i] - reservation.Amounts[i]);
                    _counters[key] = entry;
                }
            }
        }

        return default;
    }

    /// <summary>The current value of a counter (tests, headers of degraded answers).</summary>
    internal long Read(LimitCounter counter)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        lock (_lock)
        {
            return Used(counter, KeyOf(counter, now), now);
        }
    }

    private long Limit(LimitCounter counter) => Math.Max(1, counter.Limit / _divisor);

    private static long Amount(LimitCounter counter) => counter.Kind == CounterKind.Concurrency ? 1 : counter.Amount;

    private static string KeyOf(LimitCounter counter, long now) => counter.Kind == CounterKind.Window
        ? string.Concat(counter.Key, ":", (now / counter.WindowMs).ToString(System.Globalization.CultureInfo.InvariantCulture))
        : counter.Key;

    private static long ResetOf(LimitCounter counter, long now) => counter.Kind switch
    {
        CounterKind.Window => counter.WindowMs - (now % counter.WindowMs),
        CounterKind.Calendar => counter.WindowMs,
        _ => 1000,
    };

    private long Used(LimitCounter counter, string key, long now)
    {
        if (counter.Kind == CounterKind.Concurrency)
        {
            if (!_inflight.TryGetValue(key, out var set))
            {
                return 0;
            }

            List<string>? expired = null;
            foreach (var (id, until) in set)
            {
                if (until <= now)
                {
                    (expired ??= []).Add(id);
                }
            }

            foreach (var id in expired ?? [])
            {
                set.Remove(id);
            }

            return set.Count;
        }

        return _counters.TryGetValue(key, out var entry) && entry.ExpiresAt > now ? entry.Value : 0;
    }

    private void Purge(long now)
    {
        List<string>? stale = null;
        foreach (var (key, entry) in _counters)
        {
            if (entry.ExpiresAt <= now)
            {
                (stale ??= []).Add(key);
            }
        }

        foreach (var key in stale ?? [])
        {
            _counters.Remove(key);
        }

        stale = null;
        foreach (var (id, reservation) in _reservations)
        {
            if (reservation.ExpiresAt <= now)
            {
                (stale ??= []).Add(id);
            }
        }

        foreach (var id in stale ?? [])
        {
            _reservations.Remove(id);
        }
    }

    private struct Entry
    {
        public long Value;
        public long ExpiresAt;
    }

    private sealed record Reservation(string[] Keys, LimitCounter[] Counters, long[] Amounts, long ExpiresAt);
}
