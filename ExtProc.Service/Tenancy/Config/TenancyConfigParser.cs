using System.Globalization;
using ExtProc.Routing.Config;
using ExtProc.Tenancy.Keys;
using YamlDotNet.RepresentationModel;

namespace ExtProc.Tenancy.Config;

/// <summary>
/// Parses and validates the configuration file as a whole: unknown keys are errors, and every error
/// is reported with its path (and line), never only the first. Cold path.
/// </summary>
internal static class TenancyConfigParser
{
    public const int CurrentVersion = 1;

    private static readonly HashSet<string> AsymmetricAlgorithms = new(StringComparer.Ordinal)
    {
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
    };

    public static TenancyConfig? Parse(string text, ConfigErrors errors)
    {
        var root = MapReader.Open(errors, "", errors.Parse(text));
        if (root is null)
        {
            if (errors.Count == 0)
            {
                errors.Add("", "the file must be a mapping with at least 'version' and 'tenants'");
            }

            return null;
        }

        var version = root.Int("version", 0, int.MaxValue);
        if (version is null)
        {
            if (!root.Has("version"))
            {
                errors.Add("version", "is required (the current version is 1)");
            }
        }
        else if (version != CurrentVersion)
        {
            errors.Add("version", root.Node, string.Create(CultureInfo.InvariantCulture, $"version {version} is not supported (this build reads version {CurrentVersion})"));
        }

        var tenants = ReadTenants(root, errors);
        var tenantIds = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tenant in tenants)
        {
            tenantIds.Add(tenant.Id);
        }

        var identity = ReadIdentity(root.Map("identity"), errors, tenantIds);
        var routing = RoutingConfigParser.Read(root, errors);
        var limits = LimitsConfigParser.Read(root.Map("limits"), errors, tenants);
        var mcp = McpConfigParser.Read(root.Map("mcp"), errors);
        var cache = CacheConfigParser.Read(root.Map("cache"), errors, tenants);
        root.Finish();
        CheckKeysUnique(tenants, errors);
        RoutingConfigParser.CheckProviderKeys(tenants, routing, errors);
        return errors.Count == 0 ? new TenancyConfig(version ?? CurrentVersion, tenants, identity) { Routing = routing, Limits = limits, Mcp = mcp, Cache = cache } : null;
    }

    /// <summary>Tenant ids end up in a request header and in metrics: a short, safe alphabet only.</summary>
    public static bool IsValidTenantId(string id)
    {
        if (id.Length is < 1 or > 63 || !char.IsAsciiLetterLower(id[0]) && !char.IsAsciiDigit(id[0]))
        {
            return false;
        }

        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }

    private static List<TenantConfig> ReadTenants(MapReader root, ConfigErrors errors)
    {
        var list = new List<TenantConfig>();
        var tenants = root.Map("tenants");
        if (tenants is null)
        {
            if (!root.Has("tenants"))
            {
                errors.Add("tenants", "is required (a mapping of tenant id to tenant)");
            }

            return list;
        }

        foreach (var (id, node) in tenants.Entries)
        {
            var path = tenants.PathOf(id);
            if (!IsValidTenantId(id))
            {
                errors.Add(path, node, "tenant ids are 1 to 63 characters of a-z, 0-9, '-', '_' and '.', starting with a letter or digit");
            }

            var tenant = MapReader.Open(errors, path, node);
            if (tenant is null)
            {
                list.Add(new TenantConfig(id, null, PolicyConfig.Unrestricted, []));
                continue;
            }

            var displayName = tenant.String("displayName");
            var policy = ReadPolicy(tenant.Map("policy"), errors) ?? PolicyConfig.Unrestricted;
            var keys = ReadKeys(tenant, errors, policy);
            var providerKeys = RoutingConfigParser.ReadProviderKeys(tenant.Map("providerKeys"), errors);
            tenant.Finish();
            list.Add(new TenantConfig(id, displayName, policy, keys) { ProviderKeys = providerKeys });
        }

        tenants.Finish();
        return list;
    }

    private static PolicyConfig? ReadPolicy(MapReader? policy, ConfigErrors errors)
    {
        if (policy is null)
        {
            return null;
        }

        var models = Patterns(policy, "models", errors);
        var providers = Names(policy, "providers", errors);
        var regions = Names(policy, "regions", errors);
        var limits = Names(policy, "limits", errors);
        List<string>? tools = null;
        List<string>? methods = null;
        var mcpExtras = McpPolicyConfig.None;
        var mcp = policy.Map("mcp");
        if (mcp is not null)
        {
            tools = Patterns(mcp, "tools", errors);
            methods = mcp.StringList("methods");
            CheckPrintable(mcp, "methods", methods, errors);
            mcpExtras = McpPolicyConfigParser.Read(mcp, errors);
            mcp.Finish();
        }

        policy.Finish();
        return new PolicyConfig(models, providers, regions, tools, methods, limits) { Mcp = mcpExtras };
    }

    private static List<KeyConfig> ReadKeys(MapReader tenant, ConfigErrors errors, PolicyConfig tenantPolicy)
    {
        var list = new List<KeyConfig>();
        var sequence = tenant.Sequence("keys");
        if (sequence is null)
        {
            return list;
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var path = string.Create(CultureInfo.InvariantCulture, $"{tenant.PathOf("keys")}[{i}]");
            var key = MapReader.Open(errors, path, sequence.Children[i]);
            if (key is null)
            {
                errors.Add(path, sequence.Children[i], "must be a mapping with id and hash");
                continue;
            }

            var id = key.String("id", required: true);
            if (id is not null && !ApiKeyFormat.IsValidId(id))
            {
                errors.Add(key.PathOf("id"), key.Node, "key ids are 3 to 32 characters of a-z, 0-9 and '-'");
            }

            var hashText = key.String("hash", required: true);
            byte[] hash = [];
            if (hashText is not null && !ApiKeyFormat.TryParseHash(hashText, out hash))
            {
                errors.Add(key.PathOf("hash"), key.Node, "must be \"sha256:\" followed by 64 lower-case hex digits (never the key itself; `keys create` prints this entry)");
            }

            var revoked = key.Bool("revoked") ?? false;
            var expires = key.Timestamp("expiresAt");
            var description = key.String("description");
            var scope = ReadPolicy(key.Map("scope"), errors) ?? PolicyConfig.Unrestricted;
            foreach (var problem in ScopeProblems(tenantPolicy, scope))
            {
                errors.Add(key.PathOf("scope"), key.Node, problem);
            }

            key.Finish();
            if (id is not null)
            {
                list.Add(new KeyConfig(id, hash, revoked, expires, description, scope));
            }
        }

        return list;
    }

    /// <summary>
    /// Why a key scope is not within its tenant policy (empty when it is). A key can only narrow: every
    /// pattern it lists must be covered by the tenant's (faults.md A8).
    /// </summary>
    public static List<string> ScopeProblems(PolicyConfig tenant, PolicyConfig scope)
    {
        var problems = new List<string>();
        Check("models", tenant.Models, scope.Models, patterns: true);
        Check("providers", tenant.Providers, scope.Providers, patterns: false);
        Check("regions", tenant.Regions, scope.Regions, patterns: false);
        Check("mcp.tools", tenant.McpTools, scope.McpTools, patterns: true);
        Check("mcp.methods", tenant.McpMethods, scope.McpMethods, patterns: false);
        return problems;

        void Check(string what, IReadOnlyList<string>? outer, IReadOnlyList<string>? inner, bool patterns)
        {
            if (outer is null || inner is null)
            {
                return;
            }

            foreach (var item in inner)
            {
                var covered = patterns ? Glob.AnyCovers(outer, item) : Contains(outer, item);
                if (!covered)
                {
                    problems.Add($"scope_exceeds_tenant: {what} entry '{item}' is not within the tenant policy");
                }
            }
        }
    }

    private static bool Contains(IReadOnlyList<string> list, string item)
    {
        foreach (var entry in list)
        {
            if (string.Equals(entry, item, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static void CheckKeysUnique(List<TenantConfig> tenants, ConfigErrors errors)
    {
        var ids = new Dictionary<string, string>(StringComparer.Ordinal);
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var tenant in tenants)
        {
            foreach (var key in tenant.Keys)
            {
                if (!ids.TryAdd(key.Id, tenant.Id))
                {
                    errors.Add($"tenants.{tenant.Id}.keys", $"key id '{key.Id}' is also used by tenant '{ids[key.Id]}'; key ids are unique");
                }

                if (key.Hash.Length > 0 && !hashes.TryAdd(Convert.ToHexString(key.Hash), key.Id))
                {
                    errors.Add($"tenants.{tenant.Id}.keys", $"key '{key.Id}' has the same hash as key '{hashes[Convert.ToHexString(key.Hash)]}'");
                }
            }
        }
    }

    private static IdentityConfig ReadIdentity(MapReader? identity, ConfigErrors errors, HashSet<string> tenants)
    {
        if (identity is null)
        {
            return IdentityConfig.Default;
        }

        var ungoverned = identity.Bool("authenticateUngoverned") ?? false;
        var issuers = ReadJwt(identity.Map("jwt"), errors, tenants);
        var mtls = ReadMtls(identity.Map("mtls"), errors, tenants);
        var resources = ReadProtectedResources(identity, errors);
        string? anonymous = null;
        var anonymousMap = identity.Map("anonymous");
        if (anonymousMap is not null)
        {
            anonymous = anonymousMap.String("tenant", required: true);
            if (anonymous is not null && !tenants.Contains(anonymous))
            {
                errors.Add(anonymousMap.PathOf("tenant"), anonymousMap.Node, $"tenant '{anonymous}' is not defined under tenants");
            }

            anonymousMap.Finish();
        }

        identity.Finish();
        return new IdentityConfig(ungoverned, issuers, mtls, resources, anonymous);
    }

    private static List<JwtIssuerConfig> ReadJwt(MapReader? jwt, ConfigErrors errors, HashSet<string> tenants)
    {
        var list = new List<JwtIssuerConfig>();
        if (jwt is null)
        {
            return list;
        }

        var sequence = jwt.Sequence("issuers");
        jwt.Finish();
        if (sequence is null)
        {
            return list;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var path = string.Create(CultureInfo.InvariantCulture, $"identity.jwt.issuers[{i}]");
            var issuer = MapReader.Open(errors, path, sequence.Children[i]);
            if (issuer is null)
            {
                errors.Add(path, sequence.Children[i], "must be a mapping");
                continue;
            }

            var name = issuer.String("issuer", required: true);
            if (name is not null && !seen.Add(name))
            {
                errors.Add(issuer.PathOf("issuer"), issuer.Node, $"issuer '{name}' is configured twice");
            }

            var audiences = issuer.StringList("audiences", required: true);
            if (audiences is { Count: 0 })
            {
                errors.Add(issuer.PathOf("audiences"), issuer.Node, "needs at least one audience (the resource URI of this gateway's routes)");
            }

            var algorithms = issuer.StringList("algorithms") ?? ["RS256", "ES256"];
            foreach (var alg in algorithms)
            {
                if (!AsymmetricAlgorithms.Contains(alg))
                {
                    errors.Add(issuer.PathOf("algorithms"), issuer.Node,
                        $"algorithm '{alg}' is not allowed; use asymmetric ones only (RS*, PS*, ES*): 'none' and HMAC are refused so a public key can never verify a forged token");
                }
            }

            var skew = issuer.Duration("clockSkew", TimeSpan.Zero, TimeSpan.FromMinutes(5)) ?? TimeSpan.FromSeconds(30);
            var maxBytes = issuer.Int("maxTokenBytes", 512, 65536) ?? 8192;
            var claim = issuer.String("tenantClaim");
            var tenant = issuer.String("tenant");
            if ((claim is null) == (tenant is null))
            {
                errors.Add(path, issuer.Node, "set exactly one of 'tenantClaim' (the claim holding the tenant id) or 'tenant' (every token of this issuer is that tenant)");
            }

            if (tenant is not null && !tenants.Contains(tenant))
            {
                errors.Add(issuer.PathOf("tenant"), issuer.Node, $"tenant '{tenant}' is not defined under tenants");
            }

            var jwks = ReadJwks(issuer.Map("jwks", required: true), errors);
            issuer.Finish();
            if (name is not null && audiences is not null && jwks is not null)
            {
                list.Add(new JwtIssuerConfig(name, audiences, algorithms, skew, maxBytes, claim, tenant, jwks));
            }
        }

        return list;
    }

    private static JwksSourceConfig? ReadJwks(MapReader? jwks, ConfigErrors errors)
    {
        if (jwks is null)
        {
            return null;
        }

        var file = jwks.String("file");
        var urlText = jwks.String("url");
        var refresh = jwks.Duration("refreshInterval", TimeSpan.FromSeconds(10), TimeSpan.FromDays(1)) ?? TimeSpan.FromMinutes(10);
        var minRefresh = jwks.Duration("minRefreshInterval", TimeSpan.Zero, TimeSpan.FromHours(1)) ?? TimeSpan.FromSeconds(30);
        Uri? url = null;
        if ((file is null) == (urlText is null))
        {
            errors.Add(jwks.Path, jwks.Node, "set exactly one of 'file' or 'url'");
        }
        else if (urlText is not null)
        {
            if (!Uri.TryCreate(urlText, UriKind.Absolute, out url)
                || !(url.Scheme == Uri.UriSchemeHttps || (url.Scheme == Uri.UriSchemeHttp && url.IsLoopback)))
            {
                errors.Add(jwks.PathOf("url"), jwks.Node, "must be an absolute https URL (plain http only on loopback)");
                url = null;
            }
        }

        jwks.Finish();
        return file is null && url is null ? null : new JwksSourceConfig(file, url, refresh, minRefresh);
    }

    private static MtlsConfig ReadMtls(MapReader? mtls, ConfigErrors errors, HashSet<string> tenants)
    {
        if (mtls is null)
        {
            return MtlsConfig.Default;
        }

        var required = mtls.Bool("required") ?? false;
        var sourceText = mtls.String("source") ?? "attributes";
        var source = PeerIdentitySource.Attributes;
        switch (sourceText)
        {
            case "attributes":
                break;
            case "xfcc":
                source = PeerIdentitySource.Xfcc;
                break;
            default:
                errors.Add(mtls.PathOf("source"), mtls.Node, "must be 'attributes' (Envoy request attributes) or 'xfcc' (only when Envoy sets x-forwarded-client-cert with SANITIZE_SET)");
                break;
        }

        var peers = new List<PeerMapping>();
        var sequence = mtls.Sequence("peers");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; sequence is not null && i < sequence.Children.Count; i++)
        {
            var path = string.Create(CultureInfo.InvariantCulture, $"identity.mtls.peers[{i}]");
            var peer = MapReader.Open(errors, path, sequence.Children[i]);
            if (peer is null)
            {
                errors.Add(path, sequence.Children[i], "must be a mapping");
                continue;
            }

            var id = peer.String("spiffeId");
            var prefix = peer.String("spiffePrefix");
            var subject = peer.String("subject");
            var tenant = peer.String("tenant", required: true);
            peer.Finish();
            var count = (id is null ? 0 : 1) + (prefix is null ? 0 : 1) + (subject is null ? 0 : 1);
            if (count != 1)
            {
                errors.Add(path, peer.Node, "set exactly one of 'spiffeId', 'spiffePrefix' or 'subject'");
                continue;
            }

            if (tenant is not null && !tenants.Contains(tenant))
            {
                errors.Add(peer.PathOf("tenant"), peer.Node, $"tenant '{tenant}' is not defined under tenants");
            }

            var (kind, value) = id is not null ? (PeerMatchKind.SpiffeId, id) : prefix is not null ? (PeerMatchKind.SpiffePrefix, prefix) : (PeerMatchKind.Subject, subject!);
            if (kind != PeerMatchKind.Subject && !value.StartsWith("spiffe://", StringComparison.Ordinal))
            {
                errors.Add(path, peer.Node, "SPIFFE ids start with spiffe://");
            }

            if (kind == PeerMatchKind.SpiffePrefix && !value.EndsWith('/'))
            {
                errors.Add(peer.PathOf("spiffePrefix"), peer.Node, "must end with '/' so that a prefix never matches a longer sibling name (…/ns/acme vs …/ns/acme-evil)");
            }

            if (HasControl(value))
            {
                errors.Add(path, peer.Node, "contains control characters");
            }

            if (!seen.Add(kind + "|" + value))
            {
                errors.Add(path, peer.Node, $"'{value}' is mapped twice");
            }

            if (tenant is not null)
            {
                peers.Add(new PeerMapping(kind, value, tenant));
            }
        }

        mtls.Finish();
        return new MtlsConfig(required, source, peers);
    }

    private static List<ProtectedResourceConfig> ReadProtectedResources(MapReader identity, ConfigErrors errors)
    {
        var list = new List<ProtectedResourceConfig>();
        var sequence = identity.Sequence("protectedResources");
        var paths = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; sequence is not null && i < sequence.Children.Count; i++)
        {
            var path = string.Create(CultureInfo.InvariantCulture, $"identity.protectedResources[{i}]");
            var entry = MapReader.Open(errors, path, sequence.Children[i]);
            if (entry is null)
            {
                errors.Add(path, sequence.Children[i], "must be a mapping");
                continue;
            }

            var routePath = entry.String("path", required: true);
            var resource = entry.String("resource", required: true);
            var servers = entry.StringList("authorizationServers", required: true);
            var scopes = entry.StringList("scopesSupported");
            entry.Finish();
            if (routePath is not null && (routePath.Length < 2 || routePath[0] != '/' || routePath.EndsWith('/') || HasControl(routePath)))
            {
                errors.Add(entry.PathOf("path"), entry.Node, "must start with '/', name a route (not '/') and not end with '/'");
            }
            else if (routePath is not null && !paths.Add(routePath))
            {
                errors.Add(entry.PathOf("path"), entry.Node, $"path '{routePath}' is listed twice");
            }

            if (resource is not null && (!Uri.TryCreate(resource, UriKind.Absolute, out var uri)
                || !(uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback))
                || resource.EndsWith('/') || resource.Contains('"') || HasControl(resource)))
            {
                errors.Add(entry.PathOf("resource"), entry.Node, "must be the public https URL of the route, without a trailing slash");
            }

            if (servers is { Count: 0 })
            {
                errors.Add(entry.PathOf("authorizationServers"), entry.Node, "needs at least one authorization server (issuer URL)");
            }

            foreach (var scope in scopes ?? [])
            {
                if (scope.Contains(' ') || scope.Contains('"') || HasControl(scope))
                {
                    errors.Add(entry.PathOf("scopesSupported"), entry.Node, $"scope '{scope}' may not contain spaces, quotes or control characters");
                }
            }

            if (routePath is not null && resource is not null && servers is not null)
            {
                list.Add(new ProtectedResourceConfig(routePath, resource, servers, scopes));
            }
        }

        return list;
    }

    private static List<string>? Patterns(MapReader map, string name, ConfigErrors errors)
    {
        var list = map.StringList(name);
        CheckPrintable(map, name, list, errors);
        return list;
    }

    private static List<string>? Names(MapReader map, string name, ConfigErrors errors)
    {
        var list = map.StringList(name);
        if (list is null)
        {
            return null;
        }

        foreach (var item in list)
        {
            if (!IsValidTenantId(item))
            {
                errors.Add(map.PathOf(name), map.Node, $"'{item}' must be a name of a-z, 0-9, '-', '_' and '.'");
            }
        }

        return list;
    }

    private static void CheckPrintable(MapReader map, string name, List<string>? list, ConfigErrors errors)
    {
        foreach (var item in list ?? [])
        {
            if (HasControl(item) || item.Length > 256)
            {
                errors.Add(map.PathOf(name), map.Node, "entries may not contain control characters or exceed 256 characters");
            }
        }
    }

    internal static bool HasControl(string value)
    {
        foreach (var c in value)
        {
            if (char.IsControl(c))
            {
                return true;
            }
        }

        return false;
    }
}
