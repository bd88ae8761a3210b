using System.Buffers;
using System.Collections.Frozen;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ExtProc.Routing;
using ExtProc.Stages.Identify;
using ExtProc.Tenancy.Config;
using ExtProc.Tenancy.Jwt;
using ExtProc.Tenancy.Peers;

namespace ExtProc.Tenancy;

/// <summary>
/// One applied configuration, immutable: tenants, keys by id, JWT issuers, peer mappings and the
/// protected-resource documents, all as frozen lookups built once here. A stream captures the snapshot
/// current at its start and keeps it to its end, so a reload never changes a request half-way.
/// </summary>
internal sealed class TenancySnapshot
{
    private readonly FrozenDictionary<string, ApiKeyEntry> _keys;
    private readonly FrozenDictionary<string, ApiKeyEntry>.AlternateLookup<ReadOnlySpan<char>> _keysBySpan;

    private TenancySnapshot(TenancyConfig config, string version, FrozenDictionary<string, Tenant> tenants,
        FrozenDictionary<string, ApiKeyEntry> keys, JwtAuthenticator jwt, PeerIdentityResolver peers, ProtectedResource[] resources,
        RoutingCatalog routing)
    {
        Config = config;
        Routing = routing;
        Version = version;
        Tenants = tenants;
        _keys = keys;
        _keysBySpan = keys.GetAlternateLookup<ReadOnlySpan<char>>();
        Jwt = jwt;
        Peers = peers;
        ProtectedResources = resources;
    }

    public TenancyConfig Config { get; }

    /// <summary>Short hash of the file this snapshot came from (logs, metrics).</summary>
    public string Version { get; }

    public FrozenDictionary<string, Tenant> Tenants { get; }

    public JwtAuthenticator Jwt { get; }

    public PeerIdentityResolver Peers { get; }

    public ProtectedResource[] ProtectedResources { get; }

    /// <summary>Providers and public models; <see cref="RoutingCatalog.Empty"/> when the file routes nothing.</summary>
    public RoutingCatalog Routing { get; }

    public bool AuthenticateUngoverned => Config.Identity.AuthenticateUngoverned;

    /// <summary>The tenant of requests that present no credential at all, when the config names one.</summary>
    public Tenant? AnonymousTenant => Config.Identity.AnonymousTenant is { } id ? Tenants[id] : null;

    public int KeyCount => _keys.Count;

    /// <summary>Parses, validates and builds; null with every error in <paramref name="errors"/> when the text is not usable.</summary>
    public static TenancySnapshot? Build(string text, JwksRegistry jwks, ILogger logger, ConfigErrors errors)
    {
        var config = TenancyConfigParser.Parse(text, errors);
        if (config is null)
        {
            return null;
        }

        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(text), digest);
        return Build(config, Convert.ToHexStringLower(digest[..6]), jwks, logger, errors);
    }

    public static TenancySnapshot? Build(TenancyConfig config, string version, JwksRegistry jwks, ILogger logger, ConfigErrors errors)
    {
        var tenants = new Dictionary<string, Tenant>(StringComparer.Ordinal);
        var keys = new Dictionary<string, ApiKeyEntry>(StringComparer.Ordinal);
        foreach (var tenantConfig in config.Tenants)
        {
            var tenant = new Tenant(tenantConfig);
            tenants[tenant.Id] = tenant;
            foreach (var key in tenantConfig.Keys)
            {
                keys[key.Id] = new ApiKeyEntry(key, tenant);
            }
        }

        var frozenTenants = tenants.ToFrozenDictionary(StringComparer.Ordinal);
        var jwt = new JwtAuthenticator(config.Identity.JwtIssuers, frozenTenants, jwks, logger, errors);
        var peers = new PeerIdentityResolver(config.Identity.Mtls, frozenTenants);
        var resources = new ProtectedResource[config.Identity.ProtectedResources.Count];
        for (var i = 0; i < resources.Length; i++)
        {
            resources[i] = new ProtectedResource(config.Identity.ProtectedResources[i]);
        }

        var routing = RoutingCatalog.Build(config, errors, SystemSecretReader.Instance);
        if (errors.Count > 0 || routing is null)
        {
            return null;
        }

        return new TenancySnapshot(config, version, frozenTenants, keys.ToFrozenDictionary(StringComparer.Ordinal), jwt, peers, resources, routing);
    }

    public bool TryGetKey(ReadOnlySpan<char> id, out ApiKeyEntry entry) => _keysBySpan.TryGetValue(id, out entry!);

    /// <summary>The protected resource whose route contains <paramref name="normalizedPath"/>, if any.</summary>
    public ProtectedResource? ResourceForRoute(ReadOnlySpan<byte> normalizedPath)
    {
        foreach (var resource in ProtectedResources)
        {
            var route = resource.NormalizedPath.Span;
            if (normalizedPath.SequenceEqual(route) || (normalizedPath.StartsWith(route) && normalizedPath.Length > route.Length && normalizedPath[route.Length] == (byte)'/'))
            {
                return resource;
            }
        }

        return null;
    }

    /// <summary>The resource whose metadata document lives at <paramref name="normalizedPath"/>, if any.</summary>
    public ProtectedResource? ResourceForMetadataPath(ReadOnlySpan<byte> normalizedPath)
    {
        foreach (var resource in ProtectedResources)
        {
            if (normalizedPath.SequenceEqual(resource.NormalizedMetadataPath.Span))
            {
                return resource;
            }
        }

        // The root document answers for the first (or only) resource.
        return ProtectedResources.Length > 0 && normalizedPath.SequenceEqual(ProtectedResource.WellKnownRoot) ? ProtectedResources[0] : null;
    }
}

/// <summary>An RFC 9728 protected resource: its metadata document and the 401 challenges that point at it.</summary>
internal sealed class ProtectedResource
{
    public const string WellKnown = "/.well-known/oauth-protected-resource";

    public ProtectedResource(ProtectedResourceConfig config)
    {
        Config = config;
        NormalizedPath = Normalize(config.Path);
        NormalizedMetadataPath = Normalize(WellKnown + config.Path);
        var resource = new Uri(config.Resource);
        MetadataUrl = resource.GetLeftPart(UriPartial.Authority) + WellKnown + config.Path;
        var scope = config.ScopesSupported is { Count: > 0 } scopes ? $", scope=\"{string.Join(' ', scopes)}\"" : "";
        Challenge = $"Bearer resource_metadata=\"{MetadataUrl}\"{scope}";
        InvalidTokenChallenge = $"Bearer error=\"invalid_token\", resource_metadata=\"{MetadataUrl}\"{scope}";

        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("resource"u8, config.Resource);
            writer.WriteStartArray("authorization_servers"u8);
            foreach (var server in config.AuthorizationServers)
            {
                writer.WriteStringValue(server);
            }

            writer.WriteEndArray();
            if (config.ScopesSupported is { } supported)
            {
                writer.WriteStartArray("scopes_supported"u8);
                foreach (var item in supported)
                {
                    writer.WriteStringValue(item);
                }

                writer.WriteEndArray();
            }

            writer.WriteStartArray("bearer_methods_supported"u8);
            writer.WriteStringValue("header"u8);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        Document = buffer.WrittenMemory.ToArray();
    }

    internal static ReadOnlySpan<byte> WellKnownRoot => "/.well-known/oauth-protected-resource"u8;

    public ProtectedResourceConfig Config { get; }

    public ReadOnlyMemory<byte> NormalizedPath { get; }

    public ReadOnlyMemory<byte> NormalizedMetadataPath { get; }

    public string MetadataUrl { get; }

    /// <summary>WWW-Authenticate for a request without a token.</summary>
    public string Challenge { get; }

    /// <summary>WWW-Authenticate for a refused token.</summary>
    public string InvalidTokenChallenge { get; }

    /// <summary>The JSON metadata document, built once.</summary>
    public ReadOnlyMemory<byte> Document { get; }

    private static byte[] Normalize(string path)
    {
        var raw = Encoding.UTF8.GetBytes(path);
        var output = new byte[raw.Length + 1];
        var length = ProtocolClassifier.NormalizePath(raw, output);
        return output.AsSpan(0, length).ToArray();
    }
}
