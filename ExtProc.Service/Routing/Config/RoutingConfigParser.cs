using System.Globalization;
using ExtProc.Tenancy.Config;
using ExtProc.Translation;

namespace ExtProc.Routing.Config;

/// <summary>
/// Reads <c>providers</c>, <c>models</c> and <c>routing</c> strictly: unknown keys, dangling provider names,
/// alias collisions and header names Envoy would refuse are errors with their path.
/// </summary>
internal static class RoutingConfigParser
{
    private const int MaxWeight = 1000;
    private const int MaxPriority = 100;

    public static RoutingConfig Read(MapReader root, ConfigErrors errors)
    {
        var providers = ReadProviders(root.Map("providers"), errors);
        var byName = new Dictionary<string, ProviderConfig>(StringComparer.Ordinal);
        foreach (var provider in providers)
        {
            byName[provider.Name] = provider;
        }

        var models = ReadModels(root.Map("models"), errors, byName);
        var settings = ReadSettings(root.Map("routing"), errors);
        if (models.Count == 0 && providers.Count > 0)
        {
            errors.Add("models", "is required when providers are configured (public model names → targets)");
        }

        return models.Count == 0 && providers.Count == 0 && settings == RoutingSettings.Default
            ? RoutingConfig.Empty
            : new RoutingConfig(providers, models, settings);
    }

    /// <summary>A tenant's own provider credentials: provider name → where the secret is.</summary>
    public static Dictionary<string, SecretSource> ReadProviderKeys(MapReader? node, ConfigErrors errors)
    {
        var keys = new Dictionary<string, SecretSource>(StringComparer.Ordinal);
        if (node is null)
        {
            return keys;
        }

        foreach (var (provider, value) in node.Entries)
        {
            if (ReadSecret(MapReader.Open(errors, node.PathOf(provider), value), errors) is { } secret)
            {
                keys[provider] = secret;
            }
        }

        node.Finish();
        return keys;
    }

    /// <summary>Every provider a tenant brings a key for must exist.</summary>
    public static void CheckProviderKeys(IReadOnlyList<TenantConfig> tenants, RoutingConfig routing, ConfigErrors errors)
    {
        foreach (var tenant in tenants)
        {
            foreach (var provider in tenant.ProviderKeys.Keys)
            {
                var known = false;
                foreach (var p in routing.Providers)
                {
                    known |= string.Equals(p.Name, provider, StringComparison.Ordinal);
                }

                if (!known)
                {
                    errors.Add($"tenants.{tenant.Id}.providerKeys.{provider}", "names no provider in 'providers'");
                }
            }
        }
    }

    /// <summary>Provider names travel in headers and metrics: a short, safe alphabet.</summary>
    public static bool IsValidProviderName(string name) => TenancyConfigParser.IsValidTenantId(name);

    private static List<ProviderConfig> ReadProviders(MapReader? node, ConfigErrors errors)
    {
        var list = new List<ProviderConfig>();
        if (node is null)
        {
            return list;
        }

        foreach (var (name, value) in node.Entries)
        {
            var path = node.PathOf(name);
            if (!IsValidProviderName(name))
            {
                errors.Add(path, value, "provider names are 1 to 63 characters of a-z, 0-9, '-', '_' and '.', starting with a letter or digit");
            }

            var provider = MapReader.Open(errors, path, value);
            if (provider is null)
            {
                errors.Add(path, value, "must be a mapping with at least schema and cluster");
                continue;
            }

            var schema = ReadSchema(provider, errors);
            var cluster = provider.String("cluster", required: true);
            if (cluster is not null && !IsToken(cluster))
            {
                errors.Add(provider.PathOf("cluster"), provider.Node, "must be an Envoy cluster name without spaces or control characters");
            }

            var dialect = ReadDialect(provider, errors, schema);
            var basePath = provider.String("basePath") ?? (dialect == UpstreamDialect.Azure ? "/openai" : DefaultBasePath(schema));
            if (basePath.Length == 0 || basePath[0] != '/' || basePath.EndsWith('/') || basePath.Contains('?') || !IsToken(basePath))
            {
                errors.Add(provider.PathOf("basePath"), provider.Node, "must start with '/', not end with '/', and hold no query or spaces");
            }

            var query = provider.String("query");
            if (query is not null && (query.Length == 0 || query[0] is '?' or '&' || !IsToken(query)))
            {
                errors.Add(provider.PathOf("query"), provider.Node, "must be name=value pairs joined by '&', without the leading '?'");
            }

            var auth = ReadAuth(provider, errors, schema, dialect);
            var credential = ReadSecret(provider.Map("credential"), errors);
            if (credential is not null && auth == CredentialStyle.None)
            {
                errors.Add(provider.PathOf("credential"), provider.Node, "is set but auth is none");
            }

            var version = provider.String("anthropicVersion");
            if (version is not null && (schema != WireSchema.Anthropic || !IsToken(version)))
            {
                errors.Add(provider.PathOf("anthropicVersion"), provider.Node, "applies to anthropic providers only, as a date such as 2023-06-01");
            }

            var regions = provider.StringList("regions") ?? [];
            var capabilities = ReadCapabilities(provider.Map("capabilities"), errors);
            provider.Finish();
            if (cluster is not null)
            {
                list.Add(new ProviderConfig(name, schema, cluster, basePath, query, auth, credential,
                    schema == WireSchema.Anthropic ? version ?? "2023-06-01" : null, regions, capabilities)
                { Dialect = dialect });
            }
        }

        node.Finish();
        return list;
    }

    private static WireSchema ReadSchema(MapReader provider, ConfigErrors errors)
    {
        var text = provider.String("schema", required: true);
        switch (text)
        {
            case null:
            case "openai":
                return WireSchema.OpenAi;
            case "anthropic":
                return WireSchema.Anthropic;
            case "gemini":
                return WireSchema.Gemini;
            default:
                errors.Add(provider.PathOf("schema"), provider.Node, "must be openai, anthropic or gemini");
                return WireSchema.OpenAi;
        }
    }

    private static UpstreamDialect ReadDialect(MapReader provider, ConfigErrors errors, WireSchema schema)
    {
        var text = provider.String("dialect");
        var dialect = text switch
        {
            null or "standard" => UpstreamDialect.Standard,
            "deepseek" => UpstreamDialect.DeepSeek,
            "qwen" => UpstreamDialect.Qwen,
            "mistral" => UpstreamDialect.Mistral,
            "azure" => UpstreamDialect.Azure,
            _ => (UpstreamDialect?)null,
        };
        if (dialect is null || (dialect != UpstreamDialect.Standard && schema != WireSchema.OpenAi))
        {
            errors.Add(provider.PathOf("dialect"), provider.Node, "must be standard, deepseek, qwen, mistral or azure, and only for openai providers");
            return UpstreamDialect.Standard;
        }

        return dialect.Value;
    }

    private static CredentialStyle ReadAuth(MapReader provider, ConfigErrors errors, WireSchema schema, UpstreamDialect dialect)
    {
        var text = provider.String("auth");
        switch (text)
        {
            case null:
                return schema switch
                {
                    WireSchema.Anthropic => CredentialStyle.XApiKey,
                    WireSchema.Gemini => CredentialStyle.GoogApiKey,
                    _ when dialect == UpstreamDialect.Azure => CredentialStyle.ApiKey,
                    _ => CredentialStyle.Bearer,
                };
            case "bearer":
                return CredentialStyle.Bearer;
            case "x-api-key":
                return CredentialStyle.XApiKey;
            case "x-goog-api-key":
                return CredentialStyle.GoogApiKey;
            case "api-key":
                return CredentialStyle.ApiKey;
            case "none":
                return CredentialStyle.None;
            default:
                errors.Add(provider.PathOf("auth"), provider.Node, "must be bearer, x-api-key, x-goog-api-key, api-key or none");
                return CredentialStyle.Bearer;
        }
    }

    private static SecretSource? ReadSecret(MapReader? node, ConfigErrors errors)
    {
        if (node is null)
        {
            return null;
        }

        var env = node.String("env");
        var file = node.String("file");
        node.Finish();
        if ((env is null) == (file is null))
        {
            errors.Add(node.Path, node.Node, "must name exactly one of env (a variable name) or file (a path); never the secret itself");
            return null;
        }

        return new SecretSource(env, file);
    }

    private static ProviderCapabilities ReadCapabilities(MapReader? node, ConfigErrors errors)
    {
        if (node is null)
        {
            return ProviderCapabilities.All;
        }

        var tools = node.Bool("tools") ?? true;
        var vision = node.Bool("vision") ?? true;
        var streaming = node.Bool("streaming") ?? true;
        var window = node.Int("contextWindow", 1, int.MaxValue);
        node.Finish();
        return new ProviderCapabilities(tools, vision, streaming, window);
    }

    private static List<ModelConfig> ReadModels(MapReader? node, ConfigErrors errors, Dictionary<string, ProviderConfig> providers)
    {
        var list = new List<ModelConfig>();
        if (node is null)
        {
            return list;
        }

        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in node.Entries)
        {
            var path = node.PathOf(name);
            Claim(name, path);
            var model = MapReader.Open(errors, path, value);
            if (model is null)
            {
                errors.Add(path, value, "must be a mapping with targets");
                continue;
            }

            var aliases = model.StringList("aliases") ?? [];
            foreach (var alias in aliases)
            {
                Claim(alias, model.PathOf("aliases"));
            }

            var failover = model.String("failoverCluster");
            if (failover is not null && !IsToken(failover))
            {
                errors.Add(model.PathOf("failoverCluster"), model.Node, "must be an Envoy cluster name without spaces or control characters");
            }

            var targets = ReadTargets(model, errors, providers, name);
            model.Finish();
            list.Add(new ModelConfig(name, aliases, targets, failover));
        }

        node.Finish();
        return list;

        void Claim(string publicName, string where)
        {
            if (publicName.Length is 0 or > 256 || !IsToken(publicName))
            {
                errors.Add(where, $"model name '{publicName}' must be 1 to 256 printable characters without spaces");
            }
            else if (!names.TryAdd(publicName, where))
            {
                errors.Add(where, $"model name '{publicName}' is already used at {names[publicName]}");
            }
        }
    }

    private static List<TargetConfig> ReadTargets(MapReader model, ConfigErrors errors, Dictionary<string, ProviderConfig> providers, string publicName)
    {
        var list = new List<TargetConfig>();
        var sequence = model.Sequence("targets");
        if (sequence is null || sequence.Children.Count == 0)
        {
            errors.Add(model.PathOf("targets"), model.Node, "is required: a list of { provider, model, weight, priority }");
            return list;
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var path = string.Create(CultureInfo.InvariantCulture, $"{model.PathOf("targets")}[{i}]");
            var target = MapReader.Open(errors, path, sequence.Children[i]);
            if (target is null)
            {
                errors.Add(path, sequence.Children[i], "must be a mapping with provider");
                continue;
            }

            var provider = target.String("provider", required: true);
            var upstreamModel = target.String("model") ?? publicName;
            var weight = target.Int("weight", 1, MaxWeight) ?? 1;
            var priority = target.Int("priority", 0, MaxPriority) ?? 0;
            target.Finish();
            if (provider is null)
            {
                continue;
            }

            if (!providers.ContainsKey(provider))
            {
                errors.Add(target.PathOf("provider"), target.Node, $"names no provider in 'providers': '{provider}'");
                continue;
            }

            if (upstreamModel.Length is 0 or > 256 || !IsToken(upstreamModel))
            {
                errors.Add(target.PathOf("model"), target.Node, "must be 1 to 256 printable characters without spaces");
            }

            foreach (var other in list)
            {
                if (other.Provider == provider && other.Model == upstreamModel)
                {
                    errors.Add(path, target.Node, "repeats an earlier target (same provider and model)");
                }
            }

            list.Add(new TargetConfig(provider, upstreamModel, weight, priority));
        }

        return list;
    }

    private static RoutingSettings ReadSettings(MapReader? node, ConfigErrors errors)
    {
        if (node is null)
        {
            return RoutingSettings.Default;
        }

        var header = node.String("clusterHeader") ?? RoutingSettings.DefaultClusterHeader;
        if (!IsHeaderName(header) || header.StartsWith("x-envoy-", StringComparison.Ordinal))
        {
            errors.Add(node.PathOf("clusterHeader"), node.Node, "must be a lower-case header name that Envoy lets ext_proc set (not x-envoy-*, not a pseudo-header)");
        }

        var health = HealthSettings.Default;
        var healthNode = node.Map("health");
        if (healthNode is not null)
        {
            health = new HealthSettings(
                healthNode.Int("failures", 1, 1000) ?? health.Failures,
                healthNode.Duration("window", TimeSpan.FromSeconds(1), TimeSpan.FromHours(1)) ?? health.Window,
                healthNode.Duration("cooldown", TimeSpan.FromSeconds(1), TimeSpan.FromHours(1)) ?? health.Cooldown)
            {
                Redis = ReadHealthRedis(healthNode.Map("redis")),
            };
            healthNode.Finish();
        }

        var debug = node.Bool("debugHeaders") ?? false;
        var upstreamFilter = node.Bool("upstreamFilter") ?? false;
        node.Finish();
        return new RoutingSettings(header, health, debug, upstreamFilter);
    }

    private static HealthRedis? ReadHealthRedis(MapReader? node)
    {
        if (node is null)
        {
            return null;
        }

        var endpoint = node.String("endpoint", required: true);
        var budget = node.Duration("callBudget", TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(1)) ?? TimeSpan.FromMilliseconds(50);
        node.Finish();
        return endpoint is null ? null : new HealthRedis(endpoint, budget);
    }

    private static string DefaultBasePath(WireSchema schema) => schema == WireSchema.Gemini ? "/v1beta" : "/v1";

    private static bool IsToken(string text)
    {
        foreach (var c in text)
        {
            if (c is <= ' ' or >= (char)0x7f)
            {
                return false;
            }
        }

        return text.Length > 0;
    }

    private static bool IsHeaderName(string name)
    {
        if (name.Length is 0 or > 128)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }
}
