using ExtProc.Observability;
using Microsoft.Extensions.Caching.Distributed;

namespace ExtProc.Storage.Redis;

/// <summary>
/// The Redis level 2 as HybridCache sees it, every call made the <see cref="RedisCall"/> way (thread pool, hard
/// budget). A failure or overrun throws to HybridCache, which treats it as a miss or a skipped write; we count it
/// and mark level 2 down for a moment (<see cref="SharedLevelHealth"/>) so the requests that follow skip it
/// instead of each paying the budget.
/// </summary>
internal sealed class BudgetedDistributedCache : IDistributedCache
{
    private readonly IDistributedCache _inner;
    private readonly TimeSpan _budget;
    private readonly CacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly SharedLevelHealth _health;

    public BudgetedDistributedCache(IDistributedCache inner, TimeSpan budget, CacheMetrics metrics, ILogger logger, SharedLevelHealth health)
    {
        _health = health;
        _inner = inner;
        _budget = budget;
        _metrics = metrics;
        _logger = logger;
    }

    public byte[]? Get(string key) => throw new NotSupportedException("The cache is used asynchronously only.");

    public void Set(string key, byte[] value, DistributedCacheEntryOptions options) => throw new NotSupportedException("The cache is used asynchronously only.");

    public void Refresh(string key) => throw new NotSupportedException("The cache is used asynchronously only.");

    public void Remove(string key) => throw new NotSupportedException("The cache is used asynchronously only.");

    public Task<byte[]?> GetAsync(string key, CancellationToken token = default) =>
        BoundedAsync("get", () => _inner.GetAsync(key, CancellationToken.None));

    public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default) =>
        BoundedAsync("set", async () =>
        {
            await _inner.SetAsync(key, value, options, CancellationToken.None).ConfigureAwait(false);
            return (byte[]?)null;
        });

    public Task RefreshAsync(string key, CancellationToken token = default) => Task.CompletedTask;

    public Task RemoveAsync(string key, CancellationToken token = default) =>
        BoundedAsync("remove", async () =>
        {
            await _inner.RemoveAsync(key, CancellationToken.None).ConfigureAwait(false);
            return (byte[]?)null;
        });

    private async Task<byte[]?> BoundedAsync(string operation, Func<Task<byte[]?>> call)
    {
        try
        {
            return await RedisCall.WithinAsync(call, _budget).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _metrics.StoreError(operation);
            _health.Failed();
            CacheLog.StoreFailed(_logger, operation, ex);
            throw;
        }
    }
}

/// <summary>
/// Whether level 2 answered lately. After a failure it is skipped for <see cref="Cooldown"/>; then one request
/// probes it again. During an outage a request therefore pays the budget at most once per cooldown per process.
/// </summary>
internal sealed class SharedLevelHealth
{
    public static readonly TimeSpan Cooldown = TimeSpan.FromSeconds(1);

    private readonly TimeProvider _time;
    private long _downUntil;

    public SharedLevelHealth(TimeProvider time) => _time = time;

    public bool Available => _time.GetTimestamp() >= Volatile.Read(ref _downUntil);

    public void Failed() => Volatile.Write(ref _downUntil, _time.GetTimestamp() + (long)(Cooldown.TotalSeconds * _time.TimestampFrequency));
}
