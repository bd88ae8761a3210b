using ExtProc.Routing;
using ExtProc.Routing.Config;
using ExtProc.Tenancy.Config;

namespace ExtProc.Tests.Routing;

public sealed class RoutingConfigTests : IDisposable
{
    private readonly RoutingKit _kit = new();

    public void Dispose() => _kit.Dispose();

    private static (TenancyConfig? Config, IReadOnlyList<string> Errors) Parse(string yaml)
    {
        var errors = new ConfigErrors();
        var config = TenancyConfigParser.Parse(yaml, errors);
        return (config, errors.All);
    }

    [Fact]
    public void KitConfig_Parses_CatalogResolvesAliasesPrioritiesAndSecrets()
    {
        var (config, errors) = Parse(_kit.Yaml());
        Assert.Empty(errors);

        var buildErrors = new ConfigErrors();
        var catalog = RoutingCatalog.Build(config!, buildErrors, SystemSecretReader.Instance);
        Assert.Empty(buildErrors.All);
        Assert.True(catalog!.TryGetModel("claude-latest", out var alias));
        Assert.True(catalog.TryGetModel("claude-sonnet", out var named));
        Assert.Same(named, alias);
        Assert.True(catalog.TryGetModel("small", out var small));
        Assert.Equal(["notools/small-1", "openai-us/small-fallback"], small.Targets.Select(t => t.Key));
        var us = catalog.Providers["openai-us"];
        Assert.Equal("Bearer " + RoutingKit.OpenAiUsSecret, System.Text.Encoding.ASCII.GetString(catalog.CredentialFor("beta", us)!));
        Assert.Equal("Bearer " + RoutingKit.AcmeOwnOpenAiSecret, System.Text.Encoding.ASCII.GetString(catalog.CredentialFor("acme", us)!));
        Assert.Equal(RoutingKit.AnthropicSecret, System.Text.Encoding.ASCII.GetString(catalog.CredentialFor("acme", catalog.Providers["anthropic"])!));
    }

    [Fact]
    public void RoutingSection_HealthWithRedis_Parsed()
    {
        var (config, errors) = Parse(_kit.Yaml(extra: """
            routing:
              clusterHeader: x-llm-cluster
              debugHeaders: true
              upstreamFilter: true
              health: { failures: 5, window: 20s, cooldown: 1m, redis: { endpoint: "redis.internal:6379", callBudget: 20ms } }
            """));

        Assert.Empty(errors);
        var settings = config!.Routing.Settings;
        Assert.Equal(("x-llm-cluster", true, true), (settings.ClusterHeader, settings.DebugHeaders, settings.UpstreamFilter));
        Assert.Equal((5, TimeSpan.FromSeconds(20), TimeSpan.FromMinutes(1)), (settings.Health.Failures, settings.Health.Window, settings.Health.Cooldown));
        Assert.Equal(new HealthRedis("redis.internal:6379", TimeSpan.FromMilliseconds(20)), settings.Health.Redis);
    }

    [Fact]
    public void NoModels_RoutingDisabled()
    {
        var (config, errors) = Parse("version: 1\ntenants:\n  a: {}\n");

        Assert.Empty(errors);
        Assert.False(config!.Routing.Enabled);
    }

    [Theory]
    [InlineData("models:\n  m:\n    targets:\n      - { provider: ghost }\n", "names no provider in 'providers': 'ghost'")]
    [InlineData("models:\n  m:\n    targets: []\n", "models.m.targets: is required")]
    [InlineData("providers:\n  p: { schema: openai, cluster: c, auth: none }\nmodels:\n  m:\n    aliases: [n]\n    targets: [{ provider: p }]\n  n:\n    targets: [{ provider: p }]\n", "model name 'n' is already used")]
    [InlineData("providers:\n  p: { schema: cobol, cluster: c, auth: none }\nmodels:\n  m: { targets: [{ provider: p }] }\n", "must be openai, anthropic or gemini")]
    [InlineData("providers:\n  p: { schema: openai, cluster: c, auth: none, colour: red }\nmodels:\n  m: { targets: [{ provider: p }] }\n", "providers.p.colour")]
    [InlineData("providers:\n  p: { schema: openai, cluster: c, auth: none }\nmodels:\n  m: { targets: [{ provider: p, weight: 0 }] }\n", "must be an integer from 1 to 1000")]
    [InlineData("providers:\n  p: { schema: openai, cluster: c, auth: none }\nmodels:\n  m: { targets: [{ provider: p }] }\nrouting:\n  clusterHeader: x-envoy-cluster\n", "not x-envoy-*")]
    [InlineData("providers:\n  p: { schema: openai, cluster: c, basePath: v1/ }\nmodels:\n  m: { targets: [{ provider: p }] }\n", "must start with '/'")]
    [InlineData("providers:\n  p: { schema: openai, cluster: c, credential: { env: A, file: /b } }\nmodels:\n  m: { targets: [{ provider: p }] }\n", "exactly one of env")]
    [InlineData("providers:\n  p: { schema: openai, cluster: c, auth: none, credential: { env: A } }\nmodels:\n  m: { targets: [{ provider: p }] }\n", "is set but auth is none")]
    [InlineData("providers:\n  p: { schema: openai, cluster: c }\n", "models: is required when providers are configured")]
    public void InvalidCatalog_ErrorNamesThePath(string section, string expected)
    {
        var (config, errors) = Parse("version: 1\ntenants:\n  a: {}\n" + section);

        Assert.Null(config);
        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void TenantKeyForUnknownProvider_Refused()
    {
        var (config, errors) = Parse("""
            version: 1
            tenants:
              a:
                providerKeys:
                  ghost: { env: X }
            providers:
              p: { schema: openai, cluster: c, auth: none }
            models:
              m: { targets: [{ provider: p }] }
            """);

        Assert.Null(config);
        Assert.Contains("tenants.a.providerKeys.ghost: names no provider in 'providers'", errors);
    }

    [Theory]
    [InlineData(null, "the variable is not set")]
    [InlineData("sk-with\r\nx-injected: 1", "holds spaces, control or non-ASCII characters")]
    [InlineData("sk with space", "holds spaces, control or non-ASCII characters")]
    public void UnusableSecret_LoadFailsNamingTheSourceNeverTheValue(string? secret, string expected)
    {
        var (config, errors) = Parse("""
            version: 1
            tenants:
              a: {}
            providers:
              p: { schema: openai, cluster: c, credential: { env: EXTPROC_TEST_SECRET } }
            models:
              m: { targets: [{ provider: p }] }
            """);
        Assert.Empty(errors);
        var buildErrors = new ConfigErrors();

        var catalog = RoutingCatalog.Build(config!, buildErrors, new FixedSecrets(secret));

        Assert.Null(catalog);
        var error = Assert.Single(buildErrors.All);
        Assert.Contains("providers.p.credential", error, StringComparison.Ordinal);
        Assert.Contains("env EXTPROC_TEST_SECRET", error, StringComparison.Ordinal);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        if (secret is not null)
        {
            Assert.DoesNotContain("sk", error.Replace("EXTPROC", "", StringComparison.Ordinal), StringComparison.Ordinal);
        }
    }

    private sealed class FixedSecrets(string? value) : ISecretReader
    {
        public string? Read(SecretSource source, out string problem)
        {
            problem = value is null ? "the variable is not set" : "";
            return value;
        }
    }
}
