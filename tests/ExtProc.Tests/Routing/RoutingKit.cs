using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Tenancy;

namespace ExtProc.Tests.Routing;

/// <summary>
/// A routing config for tests: four providers (two OpenAI regions, Anthropic, Gemini), public models with
/// weights, priorities, aliases and a failover cluster, tenants with region and provider policies and a
/// tenant-owned key. Secrets live in temp files, as a secret mount would hold them.
/// </summary>
internal sealed class RoutingKit : IDisposable
{
    public const string OpenAiUsSecret = "sk-us-provider-secret";
    public const string OpenAiEuSecret = "sk-eu-provider-secret";
    public const string AnthropicSecret = "sk-ant-provider-secret";
    public const string GeminiSecret = "goog-provider-secret";
    public const string AcmeOwnOpenAiSecret = "sk-acme-own-secret";

    public static readonly string EuKey = ApiKeyFormat.NewKey("euco-main");

    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"extproc-routing-{Guid.NewGuid():N}");

    public RoutingKit()
    {
        Directory.CreateDirectory(_dir);
    }

    public string Secret(string name, string value)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, value + "\n");
        return path;
    }

    /// <param name="weights">Weights of gpt-4o's two targets (openai-us, openai-eu).</param>
    /// <param name="extra">More YAML appended at the top level (e.g. a routing section).</param>
    public string Yaml(string weights = "3, 1", string extra = "", bool anonymous = true)
    {
        var w = weights.Split(',', StringSplitOptions.TrimEntries);
        return $$"""
            version: 1
            tenants:
              acme:
                policy:
                  providers: [openai-us, openai-eu, anthropic, gemini, notools]
                keys:
                  - id: acme-main
                    hash: "{{ApiKeyFormat.HashText(TestTenancy.AcmeKey)}}"
                providerKeys:
                  openai-us: { file: "{{Secret("acme-openai", AcmeOwnOpenAiSecret)}}" }
              beta:
                keys:
                  - id: beta-main
                    hash: "{{ApiKeyFormat.HashText(TestTenancy.BetaKey)}}"
              euco:
                policy:
                  regions: [eu]
                keys:
                  - id: euco-main
                    hash: "{{ApiKeyFormat.HashText(EuKey)}}"
              public: {}
            {{(anonymous ? "identity:\n  anonymous:\n    tenant: public\n" : "")}}
            providers:
              openai-us:
                schema: openai
                cluster: openai-us
                regions: [us]
                credential: { file: "{{Secret("openai-us", OpenAiUsSecret)}}" }
              openai-eu:
                schema: openai
                cluster: openai-eu
                basePath: /eu/v1
                regions: [eu]
                credential: { file: "{{Secret("openai-eu", OpenAiEuSecret)}}" }
              anthropic:
                schema: anthropic
                cluster: anthropic
                regions: [us]
                credential: { file: "{{Secret("anthropic", AnthropicSecret)}}" }
              gemini:
                schema: gemini
                cluster: gemini
                regions: [eu]
                credential: { file: "{{Secret("gemini", GeminiSecret)}}" }
              notools:
                schema: openai
                cluster: notools
                regions: [us]
                capabilities: { tools: false, contextWindow: 1000 }
                credential: { file: "{{Secret("notools", "sk-notools")}}" }
            models:
              gpt-4o:
                targets:
                  - { provider: openai-us, model: gpt-4o-2024-08-06, weight: {{w[0]}} }
                  - { provider: openai-eu, model: gpt-4o-eu, weight: {{w[1]}} }
              gpt-4o-ha:
                failoverCluster: gpt-failover
                targets:
                  - { provider: openai-us, model: gpt-4o-us-ha }
                  - { provider: openai-eu, model: gpt-4o-eu-ha, priority: 1 }
              mixed-ha:
                failoverCluster: mixed-failover
                targets:
                  - { provider: openai-us, model: gpt-4o-us-ha }
                  - { provider: anthropic, model: claude-sonnet-4-5-20250929, priority: 1 }
              small:
                targets:
                  - { provider: notools, model: small-1 }
                  - { provider: openai-us, model: small-fallback, priority: 1 }
              claude-sonnet:
                aliases: [claude-latest]
                targets:
                  - { provider: anthropic, model: claude-sonnet-4-5-20250929 }
              gemini-2.0-flash:
                targets:
                  - { provider: gemini, model: gemini-2.0-flash-001 }
            {{extra}}
            """;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
