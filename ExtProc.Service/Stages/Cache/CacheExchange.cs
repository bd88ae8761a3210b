using ExtProc.Storage;

namespace ExtProc.Stages.Cache;

/// <summary>What the cache keeps between the phases of one request that missed: where its answer would go.</summary>
internal sealed class CacheExchange
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

    /// <summary>Set once the response headers say the answer may be stored (a plain 200 JSON body); its content type.</summary>
    public string? ContentType { get; set; }
}
