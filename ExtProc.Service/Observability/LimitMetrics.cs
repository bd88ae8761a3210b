using System.Diagnostics.Metrics;

namespace ExtProc.Observability;

/// <summary>Instruments of the limits stage and its stores (meter <c>ExtProc</c>).</summary>
internal sealed class LimitMetrics
{
    private readonly Counter<long> _decisions;
    private readonly Counter<long> _storeFailures;
    private readonly Counter<long> _settlements;
    private readonly UpDownCounter<long> _buffered;
    private readonly Counter<long> _outages;
    private readonly UpDownCounter<long> _out;

    public LimitMetrics(IMeterFactory? factory = null)
    {
        var meter = factory?.Create(ExtProcMetrics.MeterName) ?? new Meter(ExtProcMetrics.MeterName);
        _decisions = meter.CreateCounter<long>("extproc.limits.decisions", description: "Admissions by result (admitted, rate_limited, budget_exhausted, limits_unavailable) and store (shared, local).");
        _storeFailures = meter.CreateCounter<long>("extproc.limits.store_failures", description: "Shared-store calls that failed or overran their budget, by operation (reserve, settle).");
        _settlements = meter.CreateCounter<long>("extproc.limits.settlements", description: "Settlements by outcome (applied, buffered, replayed, dropped).");
        _buffered = meter.CreateUpDownCounter<long>("extproc.limits.settlements_buffered", description: "Settlements waiting for the shared store to come back.");
        _outages = meter.CreateCounter<long>("extproc.limits.store_outages", description: "Times the shared store was found out (a call failed or overran its budget, or the connection dropped).");
        _out = meter.CreateUpDownCounter<long>("extproc.limits.store_out", description: "1 while the shared store is out and admissions are decided locally.");
    }

    public void Decision(string result, bool degraded) =>
        _decisions.Add(1, new KeyValuePair<string, object?>("result", result), new KeyValuePair<string, object?>("store", degraded ? "local" : "shared"));

    public void StoreFailure(string operation) => _storeFailures.Add(1, new KeyValuePair<string, object?>("operation", operation));

    public void Settlement(string outcome) => _settlements.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    public void Buffered(long delta) => _buffered.Add(delta);

    public void SharedStoreOut(bool isOut)
    {
        _out.Add(isOut ? 1 : -1);
        if (isOut)
        {
            _outages.Add(1);
        }
    }
}
