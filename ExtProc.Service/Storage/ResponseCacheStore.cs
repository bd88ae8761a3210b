using ExtProc.Observability;
using ExtProc.Storage.Redis;
using ExtProc.Tenancy.Config;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace ExtProc.Storage;

/// <summary>
/// Cached answers in two levels: HybridCache's in-process level 1 and, when configured, a Redis level 2 shared by
/// the replicas. HybridCache's model is "get or create with a factory"; ours is "look up now, store later, once
/// the upstream has answered" (the factory would have to hold the whole request open). So lookups are
/// <c>GetOrCreateAsync</c> with <see cref="HybridCacheEntryFlags.DisableUnderlyingData"/> (read both levels, never
/// create) and fills are <c>SetAsync</c>. Every call is bounded: a slow or dead Redis is a miss or a skipped
/// fill within the budget, never an error (faults.md C5).
/// </summary>
internal sealed class ResponseCacheStore : IDisposable
{
    private readonly ServiceProvider _services;
    private readonly HybridCache _cache;
    private readonly IConnectionMultiplexer? _connection;
    private readonly TimeSpan _budget;
    private readonly SharedLevelHealth? _health;

    public ResponseCacheStore(CacheConfig config, CacheMetrics metrics, ILoggerFactory loggerFactory)
    {
        Metrics = metrics;
        var services = new ServiceCollection();

        // HybridCache logs level 2 failures as errors per call; the budgeted wrapper counts and logs them instead.
        services.AddSingleton<ILoggerFactory>(NullLoggerFactory.Instance);
        services.AddSingleton(typeof(ILogger<>), typeof(NullLogger<>));
        services.AddMemoryCache(o => o.SizeLimit = config.MemoryBytes);
        if (config.Redis is { } redis)
        {
            _connection = ResilientLimitStore.Connect(redis.Endpoint, redis.CallBudget);
            var connection = _connection;
            var l2 = new RedisCache(new RedisCacheOptions
            {
                ConnectionMultiplexerFactory = () => Task.FromResult(connection),
                InstanceName = redis.Prefix,
            });
            _health = new SharedLevelHealth(TimeProvider.System);
            services.AddSingleton<IDistributedCache>(new BudgetedDistributedCache(l2, redis.CallBudget, metrics, loggerFactory.CreateLogger("ExtProc.Stages.Cache"), _health));

            // The whole lookup may cost a level 2 read and, on a bad entry, a delete.
            _budget = redis.CallBudget * 2;
        }

        services.AddHybridCache(o =>
        {
            o.MaximumPayloadBytes = config.MaxEntryBytes + 1024;
            o.DisableCompression = true;
        });
        _services = services.BuildServiceProvider();
        _cache = _services.GetRequiredService<HybridCache>();
    }

    public CacheMetrics Metrics { get; }

    public bool HasSharedLevel => _connection is not null;

    /// <summary>The stored entry under <paramref name="key"/>, or null (absent, or the store did not answer in time).</summary>
    public async ValueTask<byte[]?> GetAsync(string key, TimeSpan ttl)
    {
        try
        {
            // Read both levels, never create: the answer is stored later, by the fill.
            var lookup = _cache.GetOrCreateAsync(key, static _ => ValueTask.FromResult<byte[]?>(null), EntryOptions(ttl, HybridCacheEntryFlags.DisableUnderlyingData));
            return lookup.IsCompleted ? await lookup.ConfigureAwait(false) : await BoundAsync(lookup.AsTask()).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisCall.Failed(ex))
        {
            Metrics.StoreError("get");
            return null;
        }
    }

    /// <summary>Stores <paramref name="entry"/> in both levels; false when a level did not take it in time.</summary>
    public async ValueTask<bool> SetAsync(string key, byte[] entry, TimeSpan ttl)
    {
        try
        {
            await BoundAsync(_cache.SetAsync(key, entry, EntryOptions(ttl, HybridCacheEntryFlags.None)).AsTask()).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (RedisCall.Failed(ex))
        {
            Metrics.StoreError("set");
            return false;
        }
    }

    public async ValueTask RemoveAsync(string key)
    {
        try
        {
            await BoundAsync(_cache.RemoveAsync(key).AsTask()).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisCall.Failed(ex))
        {
            Metrics.StoreError("remove");
        }
    }

    public void Dispose()
    {
        _services.Dispose();
        _connection?.Dispose();
    }

    private HybridCacheEntryOptions EntryOptions(TimeSpan ttl, HybridCacheEntryFlags flags)
    {
        if (_health is { Available: false })
        {
            // Level 2 failed a moment ago: level 1 only until the cooldown ends.
            flags |= HybridCacheEntryFlags.DisableDistributedCache;
        }

        return new() { Expiration = ttl, LocalCacheExpiration = ttl, Flags = flags };
    }

    private Task<T> BoundAsync<T>(Task<T> task) => _budget > TimeSpan.Zero ? task.WaitAsync(_budget) : task;

    private Task BoundAsync(Task task) => _budget > TimeSpan.Zero ? task.WaitAsync(_budget) : task;
}

/// <summary>One response cache store per process and store settings, kept across config reloads (entries and the Redis connection survive).</summary>
internal sealed class ResponseCacheRegistry : IDisposable
{
    private readonly Dictionary<string, ResponseCacheStore> _stores = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly ILoggerFactory _loggerFactory;

    public ResponseCacheRegistry(ILoggerFactory loggerFactory, CacheMetrics metrics)
    {
        _loggerFactory = loggerFactory;
        Metrics = metrics;
    }

    public CacheMetrics Metrics { get; }

    public ResponseCacheStore Get(CacheConfig config)
    {
        var redis = config.Redis;
        var id = $"{config.MaxEntryBytes}|{config.MemoryBytes}|{redis?.Endpoint}|{redis?.CallBudget.Ticks}|{redis?.Prefix}";
        lock (_lock)
        {
            if (!_stores.TryGetValue(id, out var store))
            {
                store = new ResponseCacheStore(config, Metrics, _loggerFactory);
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
