using System.Collections.Concurrent;
using ExtProc.Routing.Config;

namespace ExtProc.Routing;

/// <summary>
/// Passive health per target ("provider/model"), learned from the answers ExtProc sees: a 429, a 5xx or an
/// answer that never came counts as a failure. <c>Failures</c> of them within <c>Window</c> take the target
/// out for <c>Cooldown</c>; after it one request at a time is let through as a probe, and its answer either
/// closes the circuit or starts another cooldown. Process-wide, so it outlives config reloads; shared with
/// the other replicas through Redis when <c>routing.health.redis</c> is set (<see cref="SharedHealth"/>).
/// </summary>
internal sealed class PassiveHealth : IDisposable
{
    private readonly ConcurrentDictionary<string, TargetHealth> _targets = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly Lock _sharedLock = new();
    private SharedHealth? _shared;

    public PassiveHealth(TimeProvider time) => _time = time;

    /// <summary>The Redis sharing this health with other replicas, if configured.</summary>
    public SharedHealth? Shared => Volatile.Read(ref _shared);

    /// <summary>Shares health through <paramref name="redis"/> (or stops sharing); a config reload with the same endpoint keeps the connection.</summary>
    public void UseShared(HealthRedis? redis)
    {
        lock (_sharedLock)
        {
            if (string.Equals(_shared?.Endpoint, redis?.Endpoint, StringComparison.Ordinal))
            {
                return;
            }

            _shared?.Dispose();
            Volatile.Write(ref _shared, redis is null ? null : SharedHealth.Connect(redis.Endpoint, redis.CallBudget, TripFromPeer));
        }
    }

    /// <summary>Another replica (or this one, through Redis) saw the target trip: skip it here too.</summary>
    public void TripFromPeer(string key, TimeSpan cooldown)
    {
        var health = _targets.GetOrAdd(key, static _ => new TargetHealth());
        var now = _time.GetUtcNow();
        lock (health)
        {
            if (health.State(now) != CircuitState.Open)
            {
                health.Trip(now + cooldown);
            }
        }
    }

    public void Dispose()
    {
        lock (_sharedLock)
        {
            _shared?.Dispose();
            _shared = null;
        }
    }

    public static bool IsFailure(int status) => status is 429 or >= 500 or 0;

    /// <summary>True unless the target is cooling down (a target whose cooldown ended is available to probe).</summary>
    public bool IsAvailable(string key)
    {
        if (!_targets.TryGetValue(key, out var health))
        {
            return true;
        }

        lock (health)
        {
            return health.State(_time.GetUtcNow()) != CircuitState.Open;
        }
    }

    /// <summary>
    /// Claims the target for one request: always for a healthy one, for a half-open one only when no other
    /// probe is out (a probe that never reported frees its claim after one cooldown).
    /// </summary>
    public bool TryUse(string key, HealthSettings settings)
    {
        if (!_targets.TryGetValue(key, out var health))
        {
            return true;
        }

        var now = _time.GetUtcNow();
        lock (health)
        {
            switch (health.State(now))
            {
                case CircuitState.Closed:
                    return true;
                case CircuitState.HalfOpen when health.ProbeStarted is not { } started || now - started >= settings.Cooldown:
                    health.ProbeStarted = now;
                    return true;
                default:
                    return false;
            }
        }
    }

    /// <summary>Records the answer of a request the target served.</summary>
    public void Report(string key, int status, HealthSettings settings)
    {
        var failure = IsFailure(status);
        if (!failure && !_targets.ContainsKey(key))
        {
            return;
        }

        var health = _targets.GetOrAdd(key, static _ => new TargetHealth());
        var now = _time.GetUtcNow();
        lock (health)
        {
            var state = health.State(now);
            if (!failure)
            {
                health.Reset();
                return;
            }

            if (state == CircuitState.HalfOpen)
            {
                // The probe failed: straight back into cooldown.
                health.Trip(now + settings.Cooldown);
                Shared?.PublishTrip(key, settings.Cooldown);
                return;
            }

            if (state == CircuitState.Closed)
            {
                Shared?.ReportFailure(key, settings);
                if (health.AddFailure(now, settings))
                {
                    Shared?.PublishTrip(key, settings.Cooldown);
                }
            }
        }
    }

    public CircuitState StateOf(string key)
    {
        if (!_targets.TryGetValue(key, out var health))
        {
            return CircuitState.Closed;
        }

        lock (health)
        {
            return health.State(_time.GetUtcNow());
        }
    }

    private sealed class TargetHealth
    {
        private readonly Queue<DateTimeOffset> _failures = new();

        public DateTimeOffset? CooldownUntil { get; private set; }

        public DateTimeOffset? ProbeStarted { get; set; }

        public CircuitState State(DateTimeOffset now) => CooldownUntil is not { } until
            ? CircuitState.Closed
            : now < until ? CircuitState.Open : CircuitState.HalfOpen;

        /// <summary>True when this failure tripped the target.</summary>
        public bool AddFailure(DateTimeOffset now, HealthSettings settings)
        {
            _failures.Enqueue(now);
            while (_failures.Count > 0 && now - _failures.Peek() > settings.Window)
            {
                _failures.Dequeue();
            }

            if (_failures.Count >= settings.Failures)
            {
                Trip(now + settings.Cooldown);
                return true;
            }

            return false;
        }

        public void Trip(DateTimeOffset until)
        {
            CooldownUntil = until;
            ProbeStarted = null;
            _failures.Clear();
        }

        public void Reset()
        {
            CooldownUntil = null;
            ProbeStarted = null;
            _failures.Clear();
        }
    }
}

internal enum CircuitState
{
    /// <summary>Serving.</summary>
    Closed,

    /// <summary>Cooling down: skipped.</summary>
    Open,

    /// <summary>Cooldown over: one probe at a time.</summary>
    HalfOpen,
}
