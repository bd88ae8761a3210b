using System.Collections.Frozen;
using System.Text;
using ExtProc.Routing.Config;
using ExtProc.Tenancy.Config;

namespace ExtProc.Routing;

/// <summary>A provider as the hot path needs it: names and header values already encoded.</summary>
internal sealed class Provider
{
    public Provider(ProviderConfig config, byte[]? credential)
    {
        Config = config;
        Name = config.Name;
        NameBytes = Encoding.ASCII.GetBytes(config.Name);
        ClusterBytes = Encoding.ASCII.GetBytes(config.Cluster);
        Credential = credential;
        AnthropicVersion = config.AnthropicVersion is { } v ? Encoding.ASCII.GetBytes(v) : null;
    }

    public ProviderConfig Config { get; }

    public string Name { get; }

    public WireSchema Schema => Config.Schema;

    public byte[] NameBytes { get; }

    public byte[] ClusterBytes { get; }

    /// <summary>The provider's own credential header value (e.g. "Bearer …"), or null when only tenants bring keys.</summary>
    public byte[]? Credential { get; }

    public byte[]? AnthropicVersion { get; }

    public string? CredentialHeader => CredentialHeaders.NameOf(Config.Auth);
}

/// <summary>One place a public model is served.</summary>
internal sealed class Target
{
    public Target(Provider provider, TargetConfig config)
    {
        Provider = provider;
        UpstreamModel = config.Model;
        UpstreamModelBytes = Encoding.UTF8.GetBytes(config.Model);
        Weight = config.Weight;
        Priority = config.Priority;
        Key = provider.Name + "/" + config.Model;
    }

    public Provider Provider { get; }

    public string UpstreamModel { get; }

    public byte[] UpstreamModelBytes { get; }

    public int Weight { get; }

    public int Priority { get; }

    /// <summary>"provider/model": the unit of passive health.</summary>
    public string Key { get; }
}

/// <summary>A public model (or alias) and its targets, in priority order (config order within a priority).</summary>
internal sealed class ModelRoute
{
    public ModelRoute(string name, Target[] targets, string? failoverCluster)
    {
        Name = name;
        Targets = targets;
        FailoverCluster = failoverCluster;
        FailoverClusterBytes = failoverCluster is null ? null : Encoding.ASCII.GetBytes(failoverCluster);
    }

    public string Name { get; }

    public Target[] Targets { get; }

    /// <summary>Set when Envoy fails over between this model's targets (ExtProc then adapts each attempt).</summary>
    public string? FailoverCluster { get; }

    public byte[]? FailoverClusterBytes { get; }
}

/// <summary>
/// The routing part of one applied configuration: public models (and aliases) → targets, providers with
/// their credentials read from the environment or files, and tenants' own provider keys. Immutable.
/// </summary>
internal sealed class RoutingCatalog
{
    public static readonly RoutingCatalog Empty = new(RoutingSettings.Default, FrozenDictionary<string, ModelRoute>.Empty,
        FrozenDictionary<string, Provider>.Empty, FrozenDictionary<string, FrozenDictionary<string, byte[]>>.Empty);

    private readonly FrozenDictionary<string, ModelRoute>.AlternateLookup<ReadOnlySpan<char>> _modelsBySpan;
    private readonly FrozenDictionary<string, FrozenDictionary<string, byte[]>> _tenantCredentials;

    private RoutingCatalog(RoutingSettings settings, FrozenDictionary<string, ModelRoute> models,
        FrozenDictionary<string, Provider> providers, FrozenDictionary<string, FrozenDictionary<string, byte[]>> tenantCredentials)
    {
        Settings = settings;
        Models = models;
        _modelsBySpan = models.GetAlternateLookup<ReadOnlySpan<char>>();
        Providers = providers;
        _tenantCredentials = tenantCredentials;
    }

    public RoutingSettings Settings { get; }

    public bool Enabled => Models.Count > 0;

    public FrozenDictionary<string, ModelRoute> Models { get; }

    public FrozenDictionary<string, Provider> Providers { get; }

    public bool TryGetModel(ReadOnlySpan<char> name, out ModelRoute route) => _modelsBySpan.TryGetValue(name, out route!);

    /// <summary>The header value to send to <paramref name="provider"/> for <paramref name="tenantId"/>: its own key first.</summary>
    public byte[]? CredentialFor(string tenantId, Provider provider) =>
        _tenantCredentials.TryGetValue(tenantId, out var own) && own.TryGetValue(provider.Name, out var value) ? value : provider.Credential;

    /// <summary>Builds the catalog, reading every secret now so a missing one fails the load, not a request.</summary>
    public static RoutingCatalog? Build(TenancyConfig config, ConfigErrors errors, ISecretReader secrets)
    {
        var routing = config.Routing;
        if (!routing.Enabled)
        {
            return Empty;
        }

        var providers = new Dictionary<string, Provider>(StringComparer.Ordinal);
        foreach (var p in routing.Providers)
        {
            byte[]? credential = null;
            if (p.Credential is { } source)
            {
                credential = ReadCredential(source, p.Auth, $"providers.{p.Name}.credential", errors, secrets);
            }

            providers[p.Name] = new Provider(p, credential);
        }

        var models = new Dictionary<string, ModelRoute>(StringComparer.Ordinal);
        foreach (var m in routing.Models)
        {
            var targets = new List<Target>(m.Targets.Count);
            foreach (var t in m.Targets)
            {
                if (providers.TryGetValue(t.Provider, out var provider))
                {
                    targets.Add(new Target(provider, t));
                }
            }

            // Stable: config order is kept inside a priority.
            var ordered = new Target[targets.Count];
            var n = 0;
            for (var priority = 0; n < ordered.Length; priority++)
            {
                foreach (var target in targets)
                {
                    if (target.Priority == priority)
                    {
                        ordered[n++] = target;
                    }
                }
            }

            var route = new ModelRoute(m.Name, ordered, m.FailoverCluster);
            models[m.Name] = route;
            foreach (var alias in m.Aliases)
            {
                models[alias] = route;
            }
        }

        var tenantCredentials = new Dictionary<string, FrozenDictionary<string, byte[]>>(StringComparer.Ordinal);
        foreach (var tenant in config.Tenants)
        {
            if (tenant.ProviderKeys.Count == 0)
            {
                continue;
            }

            var own = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            foreach (var (providerName, source) in tenant.ProviderKeys)
            {
                if (providers.TryGetValue(providerName, out var provider)
                    && ReadCredential(source, provider.Config.Auth, $"tenants.{tenant.Id}.providerKeys.{providerName}", errors, secrets) is { } value)
                {
                    own[providerName] = value;
                }
            }

            tenantCredentials[tenant.Id] = own.ToFrozenDictionary(StringComparer.Ordinal);
        }

        return errors.Count > 0
            ? null
            : new RoutingCatalog(routing.Settings, models.ToFrozenDictionary(StringComparer.Ordinal),
                providers.ToFrozenDictionary(StringComparer.Ordinal), tenantCredentials.ToFrozenDictionary(StringComparer.Ordinal));
    }

    private static byte[]? ReadCredential(SecretSource source, CredentialStyle style, string path, ConfigErrors errors, ISecretReader secrets)
    {
        // Errors name the source, never the value.
        var secret = secrets.Read(source, out var problem);
        if (secret is null)
        {
            errors.Add(path, $"cannot read the secret from {source}: {problem}");
            return null;
        }

        foreach (var c in secret)
        {
            if (c is < '!' or > '~')
            {
                errors.Add(path, $"the secret from {source} holds spaces, control or non-ASCII characters (a header value cannot carry them)");
                return null;
            }
        }

        return Encoding.ASCII.GetBytes(style == CredentialStyle.Bearer ? "Bearer " + secret : secret);
    }
}

/// <summary>Header names per credential style.</summary>
internal static class CredentialHeaders
{
    public const string Authorization = "authorization";
    public const string XApiKey = "x-api-key";
    public const string GoogApiKey = "x-goog-api-key";
    public const string ApiKey = "api-key";
    public const string AnthropicVersion = "anthropic-version";

    public static string? NameOf(CredentialStyle style) => style switch
    {
        CredentialStyle.Bearer => Authorization,
        CredentialStyle.XApiKey => XApiKey,
        CredentialStyle.GoogApiKey => GoogApiKey,
        CredentialStyle.ApiKey => ApiKey,
        _ => null,
    };
}

/// <summary>Reads provider secrets; a seam so tests can supply environments of their own.</summary>
internal interface ISecretReader
{
    string? Read(SecretSource source, out string problem);
}

/// <summary>Environment variables and files (a trailing newline, as editors and secret mounts leave, is dropped).</summary>
internal sealed class SystemSecretReader : ISecretReader
{
    public static readonly SystemSecretReader Instance = new();

    public string? Read(SecretSource source, out string problem)
    {
        problem = "";
        if (source.Env is { } name)
        {
            var value = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrEmpty(value))
            {
                problem = "the variable is not set";
                return null;
            }

            return value;
        }

        try
        {
            var text = File.ReadAllText(source.File!).TrimEnd('\r', '\n');
            if (text.Length == 0)
            {
                problem = "the file is empty";
                return null;
            }

            return text;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            problem = ex.GetType().Name;
            return null;
        }
    }
}
