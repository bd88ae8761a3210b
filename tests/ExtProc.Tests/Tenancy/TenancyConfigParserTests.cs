using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;
using ExtProc.Tenancy.Keys;

namespace ExtProc.Tests.Tenancy;

public sealed class TenancyConfigParserTests
{
    private static (TenancyConfig? Config, IReadOnlyList<string> Errors) Parse(string text)
    {
        var errors = new ConfigErrors();
        var config = TenancyConfigParser.Parse(text, errors);
        return (config, errors.All);
    }

    [Fact]
    public void Parse_TestConfig_Valid()
    {
        var (config, errors) = Parse(TestTenancy.BaseYaml());

        Assert.Empty(errors);
        Assert.Equal(["acme", "beta", "public"], config!.Tenants.Select(t => t.Id));
        Assert.Equal(4, config.Tenants[0].Keys.Count);
        Assert.Equal(["gpt-4o-mini"], config.Tenants[0].Keys[1].Scope.Models);
    }

    [Fact]
    public void Parse_EmbeddedDefault_ValidAndHoldsNoKeys()
    {
        using var stream = typeof(TenancyConfigProvider).Assembly.GetManifestResourceStream(TenancyConfigProvider.EmbeddedResourceName)!;
        var text = new StreamReader(stream).ReadToEnd();

        var (config, errors) = Parse(text);

        Assert.Empty(errors);
        Assert.All(config!.Tenants, t => Assert.Empty(t.Keys));
        Assert.DoesNotContain("xp_", text.Replace("`keys create`", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_Json_SameAsYaml()
    {
        var json = "{\"version\": 1, \"tenants\": {\"acme\": {\"policy\": {\"models\": [\"gpt-*\"]},\n"
            + "  \"keys\": [{\"id\": \"k-one\", \"hash\": \"" + ApiKeyFormat.HashText("xp_k-one_x") + "\"}]}}}";

        var (config, errors) = Parse(json);

        Assert.Empty(errors);
        Assert.Equal("k-one", config!.Tenants[0].Keys[0].Id);
    }

    [Fact]
    public void Parse_ManyProblems_EveryErrorReportedWithPath()
    {
        var yaml = """
            version: 2
            tenant: {}
            tenants:
              Acme!:
                policy:
                  models: ["gpt-*"]
                  colour: blue
                keys:
                  - id: ok-key
                    hash: "xp_ok-key_plaintextsecret"
                  - id: x
                    hash: "sha256:00"
                    scope:
                      models: ["*"]
              beta:
                keys:
                  - id: dup-key
                    hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                  - id: dup-key
                    hash: "sha256:1111111111111111111111111111111111111111111111111111111111111111"
            identity:
              mtls:
                peers:
                  - spiffePrefix: "spiffe://mesh/ns/a"
                    tenant: nobody
              jwt:
                issuers:
                  - issuer: https://i/
                    audiences: []
                    algorithms: [none]
                    jwks: { url: "http://i.example/jwks" }
            """;

        var (config, errors) = Parse(yaml);

        Assert.Null(config);
        string[] expected =
        [
            "version:", "tenant: unknown key", "tenants.Acme!:", "tenants.Acme!.policy.colour: unknown key",
            "tenants.Acme!.keys[0].hash:", "tenants.Acme!.keys[1].id:", "tenants.Acme!.keys[1].hash:", "scope_exceeds_tenant",
            "key id 'dup-key'", "identity.mtls.peers[0].spiffePrefix:", "tenant 'nobody' is not defined",
            "identity.jwt.issuers[0].audiences:", "algorithm 'none' is not allowed", "identity.jwt.issuers[0]: set exactly one of 'tenantClaim'",
            "identity.jwt.issuers[0].jwks.url:",
        ];
        foreach (var fragment in expected)
        {
            Assert.True(errors.Any(e => e.Contains(fragment, StringComparison.Ordinal)), $"missing '{fragment}' in:\n{string.Join("\n", errors)}");
        }

        Assert.Contains(errors, e => e.Contains("(line ", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("")]
    [InlineData("version: 1")]
    [InlineData("- a\n- b")]
    [InlineData("version: 1\ntenants: {a: {}}\n---\nversion: 1")]
    [InlineData("version: 1\ntenants:\n  a: {}\n  a: {}")]
    [InlineData("{\"version\": 1, \"tenants\": {}")]
    public void Parse_BrokenDocuments_RefusedWithReason(string text)
    {
        var (config, errors) = Parse(text);

        Assert.Null(config);
        Assert.NotEmpty(errors);
    }

    [Fact]
    public void Build_MissingJwksFile_ErrorNamesThePath()
    {
        var yaml = TestTenancy.BaseYaml(new TestIssuer().IdentityYaml("file: \"/nonexistent/jwks.json\""));
        var errors = new ConfigErrors();

        var snapshot = TenancySnapshot.Build(yaml, new global::ExtProc.Tenancy.Jwt.JwksRegistry(TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance),
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, errors);

        Assert.Null(snapshot);
        Assert.Contains(errors.All, e => e.StartsWith("identity.jwt.issuers[0].jwks.file", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("30s", 30_000)]
    [InlineData("250ms", 250)]
    [InlineData("5m", 300_000)]
    [InlineData("00:00:02", 2_000)]
    public void Duration_Forms(string text, int ms)
    {
        Assert.True(MapReader.TryParseDuration(text, out var value));
        Assert.Equal(TimeSpan.FromMilliseconds(ms), value);
    }
}

public sealed class GlobTests
{
    [Theory]
    [InlineData("gpt-4o*", "gpt-4o", true)]
    [InlineData("gpt-4o*", "gpt-4o-mini", true)]
    [InlineData("gpt-4o*", "gpt-4", false)]
    [InlineData("*", "", true)]
    [InlineData("claude-?-sonnet", "claude-3-sonnet", true)]
    [InlineData("claude-?-sonnet", "claude-35-sonnet", false)]
    [InlineData("a*b*c", "axxbyyc", true)]
    [InlineData("a*b*c", "axxbyy", false)]
    [InlineData("GPT-4o", "gpt-4o", false)]
    public void IsMatch(string pattern, string text, bool expected) => Assert.Equal(expected, Glob.IsMatch(pattern, text));

    [Theory]
    [InlineData("*", "anything*", true)]
    [InlineData("gpt-4o*", "gpt-4o-mini", true)]
    [InlineData("gpt-4o*", "gpt-4o-mini*", true)]
    [InlineData("gpt-4o*", "gpt-*", false)]
    [InlineData("gpt-4o*", "*", false)]
    [InlineData("a?c", "a*c", false)]
    [InlineData("get-*", "get-env", true)]
    public void Covers_IsSound(string outer, string inner, bool expected) => Assert.Equal(expected, Glob.Covers(outer, inner));
}
