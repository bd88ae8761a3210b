using ExtProc.Buffers;
using ExtProc.Storage;

namespace ExtProc.Stages.Cache;

/// <summary>What the cache keeps between the phases of one request that missed: where its answer would go.</summary>
internal sealed class CacheExchange : IDisposable
{
    public CacheExchange(ResponseCacheStore store, string storeKey, byte[] keyHash, string tenant, TimeSpan ttl, int maxEntryBytes)
    {
        Store = store;
        StoreKey = storeKey;
        KeyHash = keyHash;
        Tenant = tenant;
        Ttl = ttl;
        MaxEntryBytes = maxEntryBytes;
    }

    public ResponseCacheStore Store { get; }

    public string StoreKey { get; }

    public byte[] KeyHash { get; }

    public string Tenant { get; }

    public TimeSpan Ttl { get; }

    public int MaxEntryBytes { get; }

    /// <summary>Set once the response headers say the answer may be stored (a plain 200); its content type.</summary>
    public string? ContentType { get; set; }

    /// <summary>An SSE answer gathered chunk by chunk as the client gets it (pooled, bounded by <see cref="MaxEntryBytes"/>).</summary>
    public PooledBufferWriter? Events { get; set; }

    public void Dispose()
    {
        Events?.Dispose();
        Events = null;
    }
}
