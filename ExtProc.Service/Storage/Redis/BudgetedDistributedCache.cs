using ExtProc.Observability;
using Microsoft.Extensions.Caching.Distributed;

namespace ExtProc.Storage.Redis;

/// <summary>
/// The Redis level 2 as HybridCache sees it, with every call raced against a hard budget (<c>WaitAsync</c>; the
/// client checks its own timeouts only on a 1 s heartbeat, faults.md §0.4) and started on the thread pool (a
/// reconnecting client can block its caller before it hands back a task). A failure or overrun throws to
/// HybridCache, which treats it as a miss or a skipped write; we count it.
/// </summary>
internal sealed class BudgetedDistributedCache : IDistributedCache
{
    private readonly IDistributedCache _inner;
    private readonly TimeSpan _budget;
    private readonly CacheMetrics _metrics;
    private readonly ILogger _logger;

    public BudgetedDistributedCache(IDistributedCache inner, TimeSpan budget, CacheMetrics metrics, ILogger logger)
    {
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
            return await Task.Run(call).WaitAsync(_budget).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _metrics.StoreError(operation);
            CacheLog.StoreFailed(_logger, operation, ex);
            throw;
        }
    }
}
