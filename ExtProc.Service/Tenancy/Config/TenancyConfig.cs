using ExtProc.Routing.Config;

namespace ExtProc.Tenancy.Config;

/// <summary>
/// The tenancy part of the configuration file, as parsed and validated: plain immutable data. The
/// lookups the hot path needs are built from it once, in <see cref="TenancySnapshot"/>.
/// </summary>
internal sealed record TenancyConfig(
    int Version,
    IReadOnlyList<TenantConfig> Tenants,
    IdentityConfig Identity)
{
    /// <summary>Providers, public models and routing settings; empty when the file selects no upstream.</summary>
    public RoutingConfig Routing { get; init; } = RoutingConfig.Empty;

    /// <summary>The <c>limits:</c> section (rules, prices, shared store); none when absent.</summary>
    public LimitsConfig Limits { get; init; } = LimitsConfig.None;

    /// <summary>The top-level <c>mcp:</c> section.</summary>
    public McpConfig Mcp { get; init; } = McpConfig.Default;

    /// <summary>The <c>cache:</c> section; off when absent.</summary>
    public CacheConfig Cache { get; init; } = CacheConfig.None;
}

internal sealed record TenantConfig(
    string Id,
    string? DisplayName,
    PolicyConfig Policy,
    IReadOnlyList<KeyConfig> Keys)
{
    /// <summary>Provider credentials the tenant brings itself (provider name → secret source).</summary>
    public IReadOnlyDictionary<string, SecretSource> ProviderKeys { get; init; } = new Dictionary<string, SecretSource>();
}

/// <summary>
/// What a tenant (or a key, narrowing its tenant) may use. A null list means "not restricted by this
/// level"; an empty list allows nothing.
/// </summary>
internal sealed record PolicyConfig(
    IReadOnlyList<string>? Models,
    IReadOnlyList<string>? Providers,
    IReadOnlyList<string>? Regions,
    IReadOnlyList<string>? McpTools,
    IReadOnlyList<string>? McpMethods,
    IReadOnlyList<string>? Limits)
{
    public static readonly PolicyConfig Unrestricted = new(null, null, null, null, null, null);

    /// <summary>MCP settings beyond the tool and method lists (policy.mcp).</summary>
    public McpPolicyConfig Mcp { get; init; } = McpPolicyConfig.None;
}

internal sealed record KeyConfig(
    string Id,
    byte[] Hash,
    bool Revoked,
    DateTimeOffset? ExpiresAt,
    string? Description,
    PolicyConfig Scope);

internal sealed record IdentityConfig(
    bool AuthenticateUngoverned,
    IReadOnlyList<JwtIssuerConfig> JwtIssuers,
    MtlsConfig Mtls,
    IReadOnlyList<ProtectedResourceConfig> ProtectedResources,
    string? AnonymousTenant = null)
{
    public static readonly IdentityConfig Default = new(false, [], MtlsConfig.Default, []);
}

internal sealed record JwtIssuerConfig(
    string Issuer,
    IReadOnlyList<string> Audiences,
    IReadOnlyList<string> Algorithms,
    TimeSpan ClockSkew,
    int MaxTokenBytes,
    string? TenantClaim,
    string? Tenant,
    JwksSourceConfig Jwks);

internal sealed record JwksSourceConfig(
    string? File,
    Uri? Url,
    TimeSpan RefreshInterval,
    TimeSpan MinRefreshInterval)
{
    /// <summary>Identifies the source across reloads, so a reload keeps the keys already fetched.</summary>
    public string SourceKey => File is not null ? "file:" + File : "url:" + Url;
}

internal enum PeerIdentitySource
{
    /// <summary>Envoy request attributes <c>connection.uri_san_peer_certificate</c> / <c>connection.subject_peer_certificate</c>.</summary>
    Attributes,

    /// <summary>The <c>x-forwarded-client-cert</c> header, trusted only because Envoy sets it (SANITIZE_SET).</summary>
    Xfcc,
}

internal enum PeerMatchKind
{
    SpiffeId,
    SpiffePrefix,
    Subject,
}

internal sealed record PeerMapping(PeerMatchKind Kind, string Value, string Tenant);

internal sealed record MtlsConfig(bool Required, PeerIdentitySource Source, IReadOnlyList<PeerMapping> Peers)
{
    public static readonly MtlsConfig Default = new(false, PeerIdentitySource.Attributes, []);
}

/// <summary>RFC 9728 protected resource metadata ExtProc serves itself for an MCP path.</summary>
internal sealed record ProtectedResourceConfig(
    string Path,
    string Resource,
    IReadOnlyList<string> AuthorizationServers,
    IReadOnlyList<string>? ScopesSupported);
