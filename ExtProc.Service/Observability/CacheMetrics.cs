using System.Diagnostics.Metrics;

namespace ExtProc.Observability;

/// <summary>Instruments of the response cache and its stores (meter <c>ExtProc</c>). Tags never carry keys or tenants' data.</summary>
internal sealed class CacheMetrics
{
    private readonly Counter<long> _lookups;
    private readonly Counter<long> _fills;
    private readonly Counter<long> _storeErrors;
    private readonly Counter<long> _evictions;

    public CacheMetrics(IMeterFactory? factory = null)
    {
        var meter = Meter = factory?.Create(ExtProcMetrics.MeterName) ?? new Meter(ExtProcMetrics.MeterName);
        _lookups = meter.CreateCounter<long>("extproc.cache.lookups", description: "Cache decisions by result (hit, miss, bypass) and, for bypasses, reason.");
        _fills = meter.CreateCounter<long>("extproc.cache.fills", description: "Answers offered to the cache after a miss, by result (stored, not_ok, partial, too_large, failed).");
        _storeErrors = meter.CreateCounter<long>("extproc.cache.store_errors", description: "Level 2 (Redis) calls that failed or overran their budget, by operation (get, set, remove).");
        _evictions = meter.CreateCounter<long>("extproc.cache.evictions", description: "Entries the cache deleted itself, by reason (corrupt, foreign).");
    }

    /// <summary>The meter the instruments belong to (tests listen to this instance only).</summary>
    public Meter Meter { get; }

    public void Lookup(string result, string reason = "")
    {
        if (_lookups.Enabled)
        {
            _lookups.Add(1, new KeyValuePair<string, object?>("result", result), new KeyValuePair<string, object?>("reason", reason));
        }
    }

    public void Fill(string result)
    {
        if (_fills.Enabled)
        {
            _fills.Add(1, new KeyValuePair<string, object?>("result", result));
        }
    }

    public void StoreError(string operation) => _storeErrors.Add(1, new KeyValuePair<string, object?>("operation", operation));

    public void Eviction(string reason) => _evictions.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
