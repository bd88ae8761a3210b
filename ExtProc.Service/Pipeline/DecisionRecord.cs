using ExtProc.Protocols;

namespace ExtProc.Pipeline;

/// <summary>
/// What ExtProc decided about one request. It is handed to Envoy as dynamic metadata (for access logs,
/// rate-limit descriptors and later filters), so its key names are a versioned contract.
/// </summary>
internal sealed class DecisionRecord
{
    private ProtocolKind _protocol;
    private string? _outcome;
    private string? _model;

    /// <summary>True when a field changed since the record was last sent to Envoy (and before the first send).</summary>
    public bool Dirty { get; private set; } = true;

    public ProtocolKind Protocol
    {
        get => _protocol;
        set => Update(ref _protocol, value);
    }

    /// <summary>The public model the client asked for.</summary>
    public string? Model
    {
        get => _model;
        set
        {
            if (!string.Equals(_model, value, StringComparison.Ordinal))
            {
                _model = value;
                Dirty = true;
            }
        }
    }

    /// <summary>Why the request ended early (an error code), or null when it went on.</summary>
    public string? Outcome
    {
        get => _outcome;
        set
        {
            if (!string.Equals(_outcome, value, StringComparison.Ordinal))
            {
                _outcome = value;
                Dirty = true;
            }
        }
    }

    internal void MarkSent() => Dirty = false;

    private void Update<T>(ref T field, T value)
        where T : struct, Enum
    {
        if (!EqualityComparer<T>.Default.Equals(field, value))
        {
            field = value;
            Dirty = true;
        }
    }
}
