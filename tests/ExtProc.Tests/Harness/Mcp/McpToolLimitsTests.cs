using System.Net;
using System.Net.Http.Headers;
using System.Text;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Hosting;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Harness.Mcp;

/// <summary>
/// Per-tool limits (a limit rule with <c>tools</c>): the C# SDK client through the data plane and the real ExtProc
/// to a real MCP server. Calls of a limited tool past the limit get a JSON-RPC error with HTTP 429 and
/// Retry-After, and never reach the server; other tools and LLM-only rules are not touched.
/// </summary>
public sealed class McpToolLimitsTests : IAsyncLifetime
{
    private const string Version = "2025-11-25";
    private static readonly string Key = ApiKeyFormat.NewKey("acme-main");

    private ExtProcServer _extProc = null!;
    private McpTestServer _server = null!;
    private DataPlane _plane = null!;

    private static string Config => $$"""
        version: 1
        tenants:
          acme:
            policy:
              mcp:
                tools: ["echo", "get-*"]
                destructiveTools: []
              limits: [echo-rate, llm-rate]
            keys:
              - id: acme-main
                hash: "{{ApiKeyFormat.HashText(Key)}}"
        limits:
          rules:
            - { name: echo-rate, kind: requests, limit: "2", window: 1h, tools: ["echo"] }
            - { name: llm-rate, kind: requests, limit: "1", window: 1h }
        """;

    public async Task InitializeAsync()
    {
        _extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: Config);
        _server = await McpTestServer.StartAsync();
        _plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(_extProc),
            Clusters = { ["mcp"] = _server.BaseUri },
            DefaultCluster = "mcp",
            KeepExchanges = false,
        });
    }

    public async Task DisposeAsync()
    {
        await _plane.DisposeAsync();
        await _server.DisposeAsync();
        await _extProc.DisposeAsync();
    }

    [Fact]
    public async Task LimitedTool_PastItsLimit_429JsonRpcErrorNeverForwarded_OtherToolsUntouched()
    {
        await using var client = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(_plane.BaseUri, "/mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + Key },
        }), new McpClientOptions { ProtocolVersion = Version });
        await client.ListToolsAsync();
        await client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "1" });
        await client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "2" });

        using var http = _plane.CreateClient(http2: false);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp")
        {
            Content = new StringContent("""{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"echo","arguments":{"message":"3"}}}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.Add("MCP-Protocol-Version", Version);
        request.Headers.Add("Mcp-Session-Id", client.SessionId);
        using var refused = await http.SendAsync(request);
        var body = await refused.Content.ReadAsStringAsync();

        // Another tool, and more calls than the LLM-only rule allows: neither is limited by these rules.
        var sum1 = await client.CallToolAsync("get-sum", new Dictionary<string, object?> { ["a"] = 1, ["b"] = 2 });
        var sum2 = await client.CallToolAsync("get-sum", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 });

        Assert.Equal((HttpStatusCode)429, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        Assert.Contains("\"jsonrpc\":\"2.0\"", body);
        Assert.Contains("\"id\":30", body);
        Assert.Contains("rate_limited", body);
        Assert.Equal(2, _server.Calls.Of("echo"));
        Assert.Equal("3", Assert.IsType<TextContentBlock>(Assert.Single(sum1.Content)).Text);
        Assert.Equal("5", Assert.IsType<TextContentBlock>(Assert.Single(sum2.Content)).Text);
    }
}
