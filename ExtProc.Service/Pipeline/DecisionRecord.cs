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
    private string? _tenant;
    private string? _keyId;
    private string? _identity;
    private string? _model;
    private string? _mcpMethod;
    private string? _mcpTarget;
    private string? _provider;
    private string? _targetModel;
    private string? _routeReason;
    private int _attempt;
    private string? _cache;

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
        set => UpdateText(ref _model, value);
    }

    /// <summary>The MCP method of the message (tools/call, tools/list, ...).</summary>
    public string? McpMethod
    {
        get => _mcpMethod;
        set => UpdateText(ref _mcpMethod, value);
    }

    /// <summary>The tool, prompt or resource an MCP message targets.</summary>
    public string? McpTarget
    {
        get => _mcpTarget;
        set => UpdateText(ref _mcpTarget, value);
    }

    /// <summary>Why the request ended early (an error code), or null when it went on.</summary>
    public string? Outcome
    {
        get => _outcome;
        set => UpdateText(ref _outcome, value);
    }

    /// <summary>The resolved tenant id (dynamic metadata <c>tenant</c>).</summary>
    public string? Tenant
    {
        get => _tenant;
        set => UpdateText(ref _tenant, value);
    }

    /// <summary>The public id of the API key used, if any (dynamic metadata <c>key_id</c>).</summary>
    public string? KeyId
    {
        get => _keyId;
        set => UpdateText(ref _keyId, value);
    }

    /// <summary>How the caller was identified: api_key, jwt, spiffe, x509_subject (dynamic metadata <c>identity</c>).</summary>
    public string? Identity
    {
        get => _identity;
        set => UpdateText(ref _identity, value);
    }

    /// <summary>The provider that serves the request or attempt (dynamic metadata <c>provider</c>).</summary>
    public string? Provider
    {
        get => _provider;
        set => UpdateText(ref _provider, value);
    }

    /// <summary>The model name the provider was sent (dynamic metadata <c>target_model</c>).</summary>
    public string? TargetModel
    {
        get => _targetModel;
        set => UpdateText(ref _targetModel, value);
    }

    /// <summary>Why this target: selected, fallback, failover, skipped_* (dynamic metadata <c>route_reason</c>).</summary>
    public string? RouteReason
    {
        get => _routeReason;
        set => UpdateText(ref _routeReason, value);
    }

    /// <summary>1 for the first try; 0 when not routed (dynamic metadata <c>attempt</c>).</summary>
    /// <summary>Response cache status: hit, miss or bypass; absent when the tenant does not use the cache.</summary>
    public string? Cache
    {
        get => _cache;
        set => UpdateText(ref _cache, value);
    }

    public int Attempt
    {
        get => _attempt;
        set
        {
            if (_attempt != value)
            {
                _attempt = value;
                Dirty = true;
            }
        }
    }

    /// <summary>Settled usage and its cost (dynamic metadata <c>input_tokens</c>, <c>output_tokens</c>, ... <c>cost_usd</c>).</summary>
    public Stages.Limits.TokenUsage? Usage { get; private set; }

    public decimal CostUsd { get; private set; }

    public void SetUsage(Stages.Limits.TokenUsage usage, decimal costUsd)
    {
        Usage = usage;
        CostUsd = costUsd;
        Dirty = true;
    }

    internal void MarkSent() => Dirty = false;

    private void UpdateText(ref string? field, string? value)
    {
        if (!string.Equals(field, value, StringComparison.Ordinal))
        {
            field = value;
            Dirty = true;
        }
    }

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
