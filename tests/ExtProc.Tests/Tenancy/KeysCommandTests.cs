using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;
using ExtProc.Tenancy.Keys;

namespace ExtProc.Tests.Tenancy;

/// <summary>The `keys` CLI of the service: a key printed once, its hash entry pasted into config works (faults.md A8).</summary>
public sealed class KeysCommandTests : IDisposable
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), $"keys-cli-{Guid.NewGuid():N}.yaml");

    public KeysCommandTests() => File.WriteAllText(_config, TestTenancy.BaseYaml());

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = KeysCommand.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Create_PrintsKeyOnceAndEntryThatAuthenticatesWhenPasted()
    {
        var (code, output, _) = Run("keys", "create", "--tenant", "beta", "--id", "ci-bot", "--description", "CI \"bot\"", "--config", _config);

        Assert.Equal(KeysCommand.Ok, code);
        var lines = output.Split('\n');
        var key = lines[0].Trim();
        Assert.StartsWith("xp_ci-bot_", key, StringComparison.Ordinal);
        Assert.Single(lines, l => l.Contains(key, StringComparison.Ordinal));
        var entry = output[output.IndexOf("      - id:", StringComparison.Ordinal)..];
        Assert.DoesNotContain(key, entry, StringComparison.Ordinal);

        // Paste the entry under tenants.beta.keys, as the operator would.
        var yaml = TestTenancy.BaseYaml().Replace("""
                  - id: beta-main
            """.TrimEnd(), entry.TrimEnd() + "\n      - id: beta-main", StringComparison.Ordinal);
        var snapshot = TestTenancy.BuildPipeline(yaml);
        var reply = await TestTenancy.HeadersAsync(snapshot, "/v1/chat/completions", extra: ("authorization", "Bearer " + key));
        Assert.Equal("beta", Engine.EngineTestKit.Header(reply.RequestHeaders.Response.HeaderMutation, "x-extproc-tenant"));
        Assert.Equal("ci-bot", reply.DynamicMetadata.Fields["extproc"].StructValue.Fields["key_id"].StringValue);
    }

    [Fact]
    public void Create_ScopeWithinTenant_PrintsScope()
    {
        var (code, output, _) = Run("keys", "create", "--tenant", "acme", "--scope", "models=gpt-4o-mini,claude-haiku*", "--scope", "mcp.tools=echo", "--config", _config);

        Assert.Equal(KeysCommand.Ok, code);
        Assert.Contains("models: [\"gpt-4o-mini\", \"claude-haiku*\"]", output, StringComparison.Ordinal);
        Assert.Contains("tools: [\"echo\"]", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("models=*")]
    [InlineData("models=o3-pro")]
    [InlineData("providers=openai,bedrock")]
    [InlineData("mcp.tools=get-env,delete-*")]
    [InlineData("mcp.methods=resources/read")]
    public void A8_ScopeWiderThanTenant_RefusedScopeExceedsCreator(string scope)
    {
        var (code, output, error) = Run("keys", "create", "--tenant", "acme", "--scope", scope, "--config", _config);

        Assert.Equal(KeysCommand.Refused, code);
        Assert.Empty(output);
        Assert.Contains("scope_exceeds_creator", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A8_HandEditedWideScope_RefusedAtConfigLoad()
    {
        var yaml = TestTenancy.BaseYaml().Replace("models: [\"gpt-4o-mini\"]", "models: [\"*\"]", StringComparison.Ordinal);
        var errors = new ConfigErrors();

        Assert.Null(TenancyConfigParser.Parse(yaml, errors));
        Assert.Contains(errors.All, e => e.Contains("tenants.acme.keys[1].scope", StringComparison.Ordinal) && e.Contains("scope_exceeds_tenant", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--tenant", "nobody")]
    [InlineData("--id", "acme-main")]
    public void Create_UnknownTenantOrTakenId_Refused(string option, string value)
    {
        string[] args = option == "--tenant" ? ["keys", "create", "--tenant", value, "--config", _config] : ["keys", "create", "--tenant", "acme", option, value, "--config", _config];

        Assert.Equal(KeysCommand.Refused, Run(args).Code);
    }

    [Theory]
    [InlineData("keys")]
    [InlineData("keys", "create")]
    [InlineData("keys", "create", "--tenant", "Bad Tenant")]
    [InlineData("keys", "create", "--tenant", "acme", "--id", "has_underscore")]
    [InlineData("keys", "create", "--tenant", "acme", "--scope", "colour=blue")]
    [InlineData("keys", "create", "--tenant", "acme", "--description", "two\nlines")]
    public void BadUsage_ExitCode2(params string[] args) => Assert.Equal(KeysCommand.Usage, Run(args).Code);

    [Fact]
    public void Hash_MatchesCreate()
    {
        var key = ApiKeyFormat.NewKey("abc");

        var (code, output, _) = Run("keys", "hash", key);

        Assert.Equal(0, code);
        Assert.Equal(ApiKeyFormat.HashText(key), output.Trim());
        Assert.Matches("^sha256:[0-9a-f]{64}$", output.Trim());
    }

    [Fact]
    public void NewKey_FormatAndEntropy()
    {
        var keys = Enumerable.Range(0, 100).Select(_ => ApiKeyFormat.NewKey("abc")).ToHashSet();

        Assert.Equal(100, keys.Count);
        Assert.All(keys, k => Assert.Matches("^xp_abc_[a-z2-7]{52}$", k));
    }

    public void Dispose() => File.Delete(_config);
}
