using System.Diagnostics.Metrics;

namespace ExtProc.Observability;

/// <summary>
/// The service's meter. Instruments are created once; adding to a counter nobody listens to costs
/// next to nothing. Tags never carry keys or tokens.
/// </summary>
internal sealed class ExtProcMetrics : IDisposable
{
    public const string MeterName = "ExtProc";

    private readonly Meter _meter;
    private readonly Counter<long> _configReloads;
    private readonly Counter<long> _authDenials;

    public ExtProcMetrics(IMeterFactory? factory = null)
    {
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _configReloads = _meter.CreateCounter<long>("extproc.config.reloads", description: "Configuration loads by result (applied, rejected).");
        _authDenials = _meter.CreateCounter<long>("extproc.auth.denials", description: "Requests refused by identity or tenant policy, by error code.");
    }

    public void ConfigReload(bool applied) =>
        _configReloads.Add(1, new KeyValuePair<string, object?>("result", applied ? "applied" : "rejected"));

    public void AuthDenied(string code)
    {
        if (_authDenials.Enabled)
        {
            _authDenials.Add(1, new KeyValuePair<string, object?>("code", code));
        }
    }

    public void Dispose() => _meter.Dispose();
}
