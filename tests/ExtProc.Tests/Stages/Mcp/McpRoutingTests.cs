using System.Text.Json;
using ExtProc.Pipeline;
using ExtProc.Tenancy.Config;
using static ExtProc.Tests.Engine.EngineTestKit;

namespace ExtProc.Tests.Stages.Mcp;

/// <summary>MCP server routing (issue 7 item 5): config maps servers to clusters; prefixed names resolve through a table.</summary>
public sealed class McpRoutingTests
{
    private const string Routing = """

        mcp:
          servers:
            everything: { cluster: mcp-everything, tools: [echo, get-sum] }
            files: { cluster: mcp-files, tools: [read, echo] }
          routes:
            - path: /mcp
              servers: [everything]
            - path: /mcp/agg
              servers: [everything, files]
        """;

    private readonly PipelineSnapshot _snapshot = Tenancy.TestTenancy.BuildPipeline(Tenancy.TestTenancy.OpenYaml + Routing);

    private static string Call(string tool) => "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"" + tool + "\",\"arguments\":{\"x\":\"y\"}}}";

    [Fact]
    public async Task SingleServerRoute_ClusterSetOnHeaders_NamesUntouched()
    {
        var (processor, writer) = Processor(_snapshot);
        await processor.HandleAsync(RequestHeaders("/mcp"));
        await processor.HandleAsync(RequestBody(Utf8(Call("echo")), endOfStream: true));

        var headers = writer.Responses[0].RequestHeaders.Response;
        Assert.Equal("mcp-everything", Header(headers.HeaderMutation, "x-extproc-cluster"));
        Assert.True(headers.ClearRouteCache);
        Assert.Null(writer.Responses[1].RequestBody.Response?.BodyMutation);
    }

    [Theory]
    [InlineData("files__read", "mcp-files", "read")]
    [InlineData("files__echo", "mcp-files", "echo")]
    [InlineData("everything__echo", "mcp-everything", "echo")]
    public async Task PrefixedRoute_TableSelectsTheServer_NameStripped(string exposed, string cluster, string tool)
    {
        var (processor, writer) = Processor(_snapshot);
        await processor.HandleAsync(RequestHeaders("/mcp/agg"));
        await processor.HandleAsync(RequestBody(Utf8(Call(exposed)), endOfStream: true));

        Assert.False(processor.Completed);
        var reply = writer.Responses[1].RequestBody.Response;
        Assert.Equal(cluster, Header(reply.HeaderMutation, "x-extproc-cluster"));
        Assert.True(reply.ClearRouteCache);
        using var body = JsonDocument.Parse(reply.BodyMutation.Body.Memory);
        Assert.Equal(tool, body.RootElement.GetProperty("params").GetProperty("name").GetString());
        Assert.Equal("y", body.RootElement.GetProperty("params").GetProperty("arguments").GetProperty("x").GetString());
        Assert.Equal(9, body.RootElement.GetProperty("id").GetInt32());
    }

    [Theory]
    [InlineData("echo")] // unprefixed on a prefixed route (B35)
    [InlineData("files__get-sum")] // a tool of the other server
    [InlineData("files__everything__echo")] // separator tricks (B36)
    [InlineData("files____read")]
    [InlineData("__read")]
    [InlineData("files__")]
    [InlineData("FILES__read")]
    public async Task PrefixedRoute_NameNotInTheTable_UnknownTool(string exposed)
    {
        var (processor, writer) = Processor(_snapshot);
        await processor.HandleAsync(RequestHeaders("/mcp/agg"));
        await processor.HandleAsync(RequestBody(Utf8(Call(exposed)), endOfStream: true));

        Assert.True(processor.Completed);
        var immediate = writer.Responses[^1].ImmediateResponse;
        Assert.Equal(200, (int)immediate.Status.Code);
        using var json = JsonDocument.Parse(immediate.Body.Memory);
        Assert.Equal(-32602, json.RootElement.GetProperty("error").GetProperty("code").GetInt32());
    }

    [Theory]
    [InlineData("servers: { a: { cluster: c, tools: [x, x] }, b: { cluster: d, tools: [y] } }", "exposed by both")]
    [InlineData("servers: { a: { cluster: c, tools: [read.file] }, b: { cluster: d, tools: [y] } }", "LLM tool name rule")]
    [InlineData("servers: { a: { cluster: c, tools: [toolnamethatistoolongtoolnamethatistoolongtoolnamethatistoolong1] }, b: { cluster: d, tools: [y] } }", "LLM tool name rule")]
    [InlineData("servers: { a: { cluster: c }, b: { cluster: d, tools: [y] } }", "must list its tools")]
    [InlineData("servers: { A_1: { cluster: c, tools: [x] }, b: { cluster: d, tools: [y] } }", "server names")]
    [InlineData("servers: { a: { cluster: c, tools: [x] }, b: { cluster: d, tools: [y] } }\n  separator: \".\"", "separator")]
    public void Config_BadTable_ErrorsAtLoad(string servers, string expected)
    {
        var errors = new ConfigErrors();
        var yaml = Tenancy.TestTenancy.OpenYaml + "\nmcp:\n  " + servers + "\n  routes:\n    - path: /mcp/agg\n      servers: [" + (servers.Contains("A_1", StringComparison.Ordinal) ? "A_1" : "a") + ", b]\n";

        var config = TenancyConfigParser.Parse(yaml, errors);

        Assert.Null(config);
        Assert.Contains(errors.All, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Config_RouteToAnUndefinedServer_Error()
    {
        var errors = new ConfigErrors();

        TenancyConfigParser.Parse(Tenancy.TestTenancy.OpenYaml + "\nmcp:\n  routes:\n    - path: /mcp\n      servers: [nowhere]\n", errors);

        Assert.Contains(errors.All, e => e.Contains("not defined", StringComparison.Ordinal));
    }

    [Fact]
    public void Config_Sessions_ReadWithDefaultsAndChecked()
    {
        var errors = new ConfigErrors();
        var shared = TenancyConfigParser.Parse(Tenancy.TestTenancy.OpenYaml + "\nmcp:\n  sessions:\n    idle: 2h\n    capacity: 5000\n    redis: { endpoint: \"127.0.0.1:6379\", callBudget: 40ms }\n", errors);
        var local = TenancyConfigParser.Parse(Tenancy.TestTenancy.OpenYaml, errors);
        Assert.Empty(errors.All);
        Assert.Equal(new McpSessionsConfig(TimeSpan.FromHours(2), 5000, "127.0.0.1:6379", TimeSpan.FromMilliseconds(40)), shared!.Mcp.Sessions);
        Assert.Equal(McpSessionsConfig.Default, local!.Mcp.Sessions);

        var bad = new ConfigErrors();
        TenancyConfigParser.Parse(Tenancy.TestTenancy.OpenYaml + "\nmcp:\n  sessions:\n    idle: 1s\n    redis: { callBudget: 40ms, extra: 1 }\n", bad);
        Assert.Contains(bad.All, e => e.Contains("idle", StringComparison.Ordinal));
        Assert.Contains(bad.All, e => e.Contains("endpoint", StringComparison.Ordinal));
        Assert.Contains(bad.All, e => e.Contains("extra", StringComparison.Ordinal));
    }
}
