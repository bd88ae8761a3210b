using System.Collections.Concurrent;
using ExtProc.Observability;
using ExtProc.Storage.InProcess;
using ExtProc.Storage.Redis;
using StackExchange.Redis;

namespace ExtProc.Storage;

/// <summary>
/// The shared store as the stage sees it: every Redis call is made the <see cref="RedisCall"/> way (thread pool,
/// hard budget) and never retried (a timed-out script may still run, faults.md §0.5). When Redis fails or
/// overruns, the <see cref="RedisGate"/> opens and, until a probe finds Redis again, requests do not ask it:
/// counters that fail closed refuse; the others are decided by a local limiter at limit / replicas. Settlements
/// that cannot reach Redis wait in a bounded buffer and are replayed, oldest first, once it answers again; when
/// the buffer is full the oldest is dropped and counted.
/// </summary>
internal sealed class ResilientLimitStore : ILimitStore, IDisposable
{
    private readonly RedisLimitStore? _shared;
    private readonly InProcessLimitStore _local;
    private readonly IConnectionMultiplexer? _connection;
    private readonly RedisGate? _gate;
    private readonly TimeSpan _budget;
    private readonly int _bufferCapacity;
    private readonly LimitMetrics _metrics;
    // Reservations the local limiter admitted; the value says whether Redis was asked first and overran, so the
    // script may have run there after all and must be settled there too.
    private readonly ConcurrentDictionary<string, bool> _localReservations = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Id, long[] Actual)> _pending = new();
    private int _pendingCount;
    private int _replaying;

    public ResilientLimitStore(IConnectionMultiplexer? connection, TimeSpan budget, int replicas, int bufferCapacity, TimeProvider time, LimitMetrics metrics, TimeSpan? probeInterval = null)
    {
        _connection = connection;
        _local = new InProcessLimitStore(time, replicas);
        _budget = budget;
        _bufferCapacity = bufferCapacity;
        _metrics = metrics;
        if (connection is not null)
        {
            _shared = new RedisLimitStore(connection);
            _gate = new RedisGate(connection, budget, probeInterval ?? RedisGate.DefaultProbeInterval, ReplayInBackground);
            _gate.Changed += metrics.SharedStoreOut;
        }
    }

    /// <summary>True while Redis is considered out and decisions are local (null without Redis).</summary>
    public RedisGate? Gate => _gate;

    /// <summary>Settlements waiting for Redis (tests, metrics).</summary>
    public int PendingSettlements => Volatile.Read(ref _pendingCount);

    /// <summary>Settlements dropped because the buffer was full.</summary>
    public long DroppedSettlements { get; private set; }

    public async ValueTask<AdmissionResult> ReserveAsync(AdmissionRequest request)
    {
        var askedShared = false;
        if (_shared is not null && !_gate!.IsOpen)
        {
            askedShared = true;
            try
            {
                var result = await RedisCall.WithinAsync(() => _shared.ReserveAsync(request).AsTask(), _budget).ConfigureAwait(false);
                ReplayInBackground();
                return result;
            }
            catch (Exception ex) when (RedisCall.Failed(ex))
            {
                _metrics.StoreFailure("reserve");
                _gate.Trip();
            }
        }

        foreach (var counter in request.Counters)
        {
            if (counter.FailClosed && _shared is not null)
            {
                return new AdmissionResult(request.Counters.Length) { Unavailable = true, FailedIndex = -1 };
            }
        }

        var local = await _local.ReserveAsync(request).ConfigureAwait(false);
        local.Degraded = _shared is not null;
        if (local.Admitted && _shared is not null)
        {
            _localReservations.TryAdd(request.ReservationId, askedShared);
        }

        return local;
    }

    public async ValueTask SettleAsync(string reservationId, long[] actual)
    {
        if (_shared is null)
        {
            await _local.SettleAsync(reservationId, actual).ConfigureAwait(false);
            return;
        }

        if (_localReservations.TryRemove(reservationId, out var maybeShared))
        {
            await _local.SettleAsync(reservationId, actual).ConfigureAwait(false);
            if (!maybeShared)
            {
                // Decided while the gate was open: Redis never saw it, and buffering it would only crowd out
                // settlements that matter during a long outage (faults.md L10).
                return;
            }

            // Redis overran its budget on this one, but the timed-out script may have run after all (faults.md
            // §0.5), holding tokens, money and a concurrency slot there. Settling there as well corrects it,
            // and is a no-op when it never ran.
        }

        if (_gate!.IsOpen)
        {
            Buffer(reservationId, actual);
            return;
        }

        try
        {
            await RedisCall.WithinAsync(() => _shared.SettleAsync(reservationId, actual).AsTask(), _budget).ConfigureAwait(false);
            _metrics.Settlement("applied");
            ReplayInBackground();
        }
        catch (Exception ex) when (RedisCall.Failed(ex))
        {
            // The script may still run later: replaying it is harmless (the record is gone once applied).
            _metrics.StoreFailure("settle");
            _gate.Trip();
            Buffer(reservationId, actual);
        }
    }

    /// <summary>Replays buffered settlements now (tests call it to wait for recovery deterministically).</summary>
    internal async Task<int> ReplayAsync()
    {
        var replayed = 0;
        while (_shared is not null && _pending.TryPeek(out var item))
        {
            try
            {
                await _shared.SettleAsync(item.Id, item.Actual).AsTask().WaitAsync(_budget).ConfigureAwait(false);
            }
            catch (Exception ex) when (RedisCall.Failed(ex))
            {
                return replayed;
            }

            if (_pending.TryDequeue(out _))
            {
                Interlocked.Decrement(ref _pendingCount);
                _metrics.Buffered(-1);
                _metrics.Settlement("replayed");
                replayed++;
            }
        }

        return replayed;
    }

    public void Dispose()
    {
        _gate?.Dispose();
        _connection?.Dispose();
    }

    private void Buffer(string reservationId, long[] actual)
    {
        _pending.Enqueue((reservationId, actual));
        _metrics.Settlement("buffered");
        _metrics.Buffered(1);
        if (Interlocked.Increment(ref _pendingCount) > _bufferCapacity && _pending.TryDequeue(out _))
        {
            Interlocked.Decrement(ref _pendingCount);
            _metrics.Buffered(-1);
            _metrics.Settlement("dropped");
            DroppedSettlements++;
        }
    }

    private void ReplayInBackground()
    {
        if (Volatile.Read(ref _pendingCount) == 0 || _gate!.IsOpen || Interlocked.Exchange(ref _replaying, 1) == 1)
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                await ReplayAsync().ConfigureAwait(false);
            }
            finally
            {
                Volatile.Write(ref _replaying, 0);
            }
        });
    }

    /// <summary>
    /// A connection that never blocks a request: it does not abort when Redis is down at start, fails
    /// commands fast while disconnected instead of queueing them, and keeps reconnecting in the background.
    /// </summary>
    public static IConnectionMultiplexer Connect(string endpoint, TimeSpan budget)
    {
        var options = ConfigurationOptions.Parse(endpoint);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ConnectTimeout = (int)Math.Max(100, budget.TotalMilliseconds * 4);
        options.SyncTimeout = (int)Math.Max(100, budget.TotalMilliseconds * 4);
        options.AsyncTimeout = (int)Math.Max(100, budget.TotalMilliseconds * 4);
        options.ConnectRetry = 1;
        options.ReconnectRetryPolicy = new LinearRetry(250);
        options.ClientName = "extproc";
        return ConnectionMultiplexer.Connect(options);
    }
}

/// <summary>
/// One limit store per process and store settings, kept across config reloads so counters, buffered
/// settlements and the Redis connection survive a reload.
/// </summary>
internal sealed class LimitStoreRegistry : IDisposable
{
    private readonly TimeProvider _time;
    private readonly Dictionary<string, ResilientLimitStore> _stores = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public LimitStoreRegistry(TimeProvider time, LimitMetrics metrics)
    {
        _time = time;
        Metrics = metrics;
    }

    public LimitMetrics Metrics { get; }

    public ResilientLimitStore Get(Tenancy.Config.RedisLimitsConfig? redis)
    {
        var id = redis is null ? "local" : $"{redis.Endpoint}|{redis.CallBudget.Ticks}|{redis.Replicas}|{redis.SettlementBuffer}|{redis.ProbeInterval.Ticks}";
        lock (_lock)
        {
            if (!_stores.TryGetValue(id, out var store))
            {
                store = redis is null
                    ? new ResilientLimitStore(null, TimeSpan.Zero, 1, 0, _time, Metrics)
                    : new ResilientLimitStore(ResilientLimitStore.Connect(redis.Endpoint, redis.CallBudget), redis.CallBudget, redis.Replicas, redis.SettlementBuffer, _time, Metrics, redis.ProbeInterval);
                _stores[id] = store;
            }

            return store;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var store in _stores.Values)
            {
                store.Dispose();
            }

            _stores.Clear();
        }
    }
}
