using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;

namespace ExtProc.Tests.Tenancy;

/// <summary>policy.mcp beyond tools and methods: destructiveTools, maxArgumentBytes, toolChanges.</summary>
public sealed class McpPolicyConfigParserTests
{
    private static (TenancyConfig? Config, IReadOnlyList<string> Errors) Parse(string mcp, string scope = "")
    {
        var errors = new ConfigErrors();
        var config = TenancyConfigParser.Parse($$"""
            version: 1
            tenants:
              acme:
                policy:
                  mcp:
            {{mcp}}
                keys:
                  - id: acme-main
                    hash: "sha256:{{new string('a', 64)}}"
            {{scope}}
            """, errors);
        return (config, errors.All);
    }

    [Fact]
    public void Parse_AllSettings_ReadAndNarrowedByKey()
    {
        var (config, errors) = Parse("""
                    tools: ["*"]
                    destructiveTools: ["db-*"]
                    maxArgumentBytes: 4096
                    toolChanges: log
            """, """
                    scope:
                      mcp:
                        destructiveTools: ["db-read"]
                        maxArgumentBytes: 1024
                        toolChanges: block
            """);

        Assert.Empty(errors);
        var tenant = config!.Tenants[0];
        Assert.Equal(["db-*"], tenant.Policy.Mcp.DestructiveTools);
        Assert.Equal(McpToolChangeAction.Log, tenant.Policy.Mcp.ToolChanges);
        var effective = new EffectivePolicy(tenant.Policy, tenant.Keys[0].Scope);
        Assert.Equal(1024, effective.McpMaxArgumentBytes);
        Assert.True(effective.BlocksChangedMcpTools);
        Assert.True(effective.AllowsDestructiveMcpTool("db-read"));
        Assert.False(effective.AllowsDestructiveMcpTool("db-drop"));
        Assert.True(effective.FiltersMcpTools);
    }

    [Theory]
    [InlineData("        toolChanges: ignore", "toolChanges")]
    [InlineData("        maxArgumentBytes: 0", "maxArgumentBytes")]
    [InlineData("        destructiveTools: [\"a b\"]", "destructiveTools")]
    [InlineData("        destructivetools: []", "destructivetools")] // unknown key (case variant)
    public void Parse_BadSettings_ErrorWithPath(string line, string key)
    {
        var (config, errors) = Parse(line);

        Assert.Null(config);
        Assert.Contains(errors, e => e.Contains("mcp." + key, StringComparison.Ordinal));
    }
}
