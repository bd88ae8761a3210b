namespace ExtProc.Routing.Config;

/// <summary>
/// The provider and model catalog of the configuration file (<c>providers</c>, <c>models</c>, <c>routing</c>),
/// as parsed and validated. Empty when the file has no <c>models</c>: ExtProc then selects no upstream.
/// </summary>
internal sealed record RoutingConfig(
    IReadOnlyList<ProviderConfig> Providers,
    IReadOnlyList<ModelConfig> Models,
    RoutingSettings Settings)
{
    public static readonly RoutingConfig Empty = new([], [], RoutingSettings.Default);

    public bool Enabled => Models.Count > 0;
}

/// <summary>The request format a provider speaks.</summary>
internal enum WireSchema
{
    OpenAi,
    Anthropic,
    Gemini,
}

/// <summary>How the provider expects its credential.</summary>
internal enum CredentialStyle
{
    /// <summary><c>Authorization: Bearer</c> (OpenAI and OpenAI-compatible providers).</summary>
    Bearer,

    /// <summary><c>x-api-key</c> plus <c>anthropic-version</c>.</summary>
    XApiKey,

    /// <summary><c>x-goog-api-key</c>.</summary>
    GoogApiKey,

    /// <summary><c>api-key</c> (Azure OpenAI).</summary>
    ApiKey,

    /// <summary>No credential header (e.g. a provider reached through a mesh that adds its own).</summary>
    None,
}

/// <summary>Where a secret comes from; the value itself never appears in the file.</summary>
internal sealed record SecretSource(string? Env, string? File)
{
    public override string ToString() => Env is not null ? "env " + Env : "file " + File;
}

internal sealed record ProviderCapabilities(bool Tools, bool Vision, bool Streaming, int? ContextWindow)
{
    public static readonly ProviderCapabilities All = new(true, true, true, null);
}

internal sealed record ProviderConfig(
    string Name,
    WireSchema Schema,
    string Cluster,
    string BasePath,
    string? Query,
    CredentialStyle Auth,
    SecretSource? Credential,
    string? AnthropicVersion,
    IReadOnlyList<string> Regions,
    ProviderCapabilities Capabilities)
{
    /// <summary>The quirks of an OpenAI-compatible provider (DeepSeek, Qwen, Mistral, Azure); standard otherwise.</summary>
    public Translation.UpstreamDialect Dialect { get; init; }

    /// <summary>The protocol this provider's endpoint speaks, in the terms the translators use.</summary>
    public Protocols.ProtocolKind Protocol => Schema switch
    {
        WireSchema.Anthropic => Protocols.ProtocolKind.AnthropicMessages,
        WireSchema.Gemini => Protocols.ProtocolKind.Gemini,
        _ => Protocols.ProtocolKind.OpenAiChat,
    };
}

/// <summary>One place a public model can be served: a provider and the model name it knows.</summary>
internal sealed record TargetConfig(string Provider, string Model, int Weight, int Priority);

internal sealed record ModelConfig(
    string Name,
    IReadOnlyList<string> Aliases,
    IReadOnlyList<TargetConfig> Targets,
    string? FailoverCluster);

/// <summary>Passive health: <see cref="Failures"/> failures within <see cref="Window"/> take a target out for <see cref="Cooldown"/>.</summary>
internal sealed record HealthSettings(int Failures, TimeSpan Window, TimeSpan Cooldown)
{
    public static readonly HealthSettings Default = new(3, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30));

    /// <summary>When set, failures are counted and trips shared across replicas through this Redis.</summary>
    public HealthRedis? Redis { get; init; }
}

/// <summary>The Redis that shares passive health, and the most any call to it may take.</summary>
internal sealed record HealthRedis(string Endpoint, TimeSpan CallBudget);

/// <param name="UpstreamFilter">
/// ExtProc also runs as the upstream filter of the provider clusters: every routed request then carries the
/// decision (x-extproc-route) for its attempts, not only those of models with a failover cluster.
/// </param>
internal sealed record RoutingSettings(string ClusterHeader, HealthSettings Health, bool DebugHeaders, bool UpstreamFilter)
{
    public const string DefaultClusterHeader = "x-extproc-cluster";

    public static readonly RoutingSettings Default = new(DefaultClusterHeader, HealthSettings.Default, false, false);
}
