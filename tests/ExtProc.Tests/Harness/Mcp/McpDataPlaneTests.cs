using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Hosting;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Harness.Mcp;

/// <summary>
/// MCP governance end to end (issue 7 "done when"): the ModelContextProtocol C# SDK client → data plane
/// (HCM + emulated ext_proc filter + router) → the real ExtProc → a real ModelContextProtocol.AspNetCore
/// server that answers with SSE. Refusals are proved on the server side: its tool counters stay at zero.
/// </summary>
public sealed class McpDataPlaneTests : IAsyncLifetime
{
    private const string Version = "2025-11-25";

    private static readonly string AcmeKey = ApiKeyFormat.NewKey("acme-main");
    private static readonly string BetaKey = ApiKeyFormat.NewKey("beta-main");

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
            keys:
              - id: acme-main
                hash: "{{ApiKeyFormat.HashText(AcmeKey)}}"
          beta:
            policy:
              mcp:
                tools: ["echo"]
            keys:
              - id: beta-main
                hash: "{{ApiKeyFormat.HashText(BetaKey)}}"
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

    private Task<McpClient> ClientAsync(string key)
    {
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(_plane.BaseUri, "/mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + key },
        });
        return McpClient.CreateAsync(transport, new McpClientOptions { ProtocolVersion = Version });
    }

    private async Task<HttpResponseMessage> PostAsync(string json, string key, string? session)
    {
        using var client = _plane.CreateClient(http2: false);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.Add("MCP-Protocol-Version", Version);
        if (session is not null)
        {
            request.Headers.Add("Mcp-Session-Id", session);
        }

        return await client.SendAsync(request);
    }

    private static JsonElement ErrorOf(string body)
    {
        // JSON bodies are one message; SSE bodies carry it in the data line of their event.
        var json = body.TrimStart().StartsWith('{') ? body : body.Split('\n').Last(l => l.StartsWith("data:", StringComparison.Ordinal))[5..];
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    [Fact]
    public async Task SdkClient_InitializeListAndAllowedCall_SeesExactlyItsTools()
    {
        await using var client = await ClientAsync(AcmeKey);

        var tools = await client.ListToolsAsync();
        var result = await client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "hi" });

        Assert.NotNull(client.SessionId);
        Assert.Equal(["echo", "get-slow", "get-sum"], tools.Select(t => t.Name).Order(StringComparer.Ordinal));
        Assert.Equal("hi", Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
        Assert.Equal(1, _server.Calls.Of("echo"));
        Assert.Empty(UnexpectedErrors(_extProc));
    }

    [Fact]
    public async Task SdkClient_OtherTenantSeesItsOwnList()
    {
        await using var client = await ClientAsync(BetaKey);

        var tools = await client.ListToolsAsync();

        Assert.Equal("echo", Assert.Single(tools).Name);
    }

    [Theory]
    [InlineData("get-secret")] // allowed by name, refused because the server marks it destructive
    [InlineData("wipe-db")] // not in the tenant's tool list
    public async Task SdkClient_RefusedCall_IsUnknownToolAndNeverReachesTheServer(string tool)
    {
        await using var client = await ClientAsync(AcmeKey);
        await client.ListToolsAsync();

        var error = await Assert.ThrowsAsync<McpProtocolException>(() => client.CallToolAsync(tool).AsTask());

        Assert.Equal(McpErrorCode.InvalidParams, error.ErrorCode);
        Assert.Contains("Unknown tool: " + tool, error.Message, StringComparison.Ordinal);
        Assert.Equal(0, _server.Calls.Of(tool));
    }

    [Fact]
    public async Task SdkClient_CallBeforeAnyList_AnnotationsUnknown_FailsClosed()
    {
        await using var client = await ClientAsync(AcmeKey);

        var error = await Assert.ThrowsAsync<McpProtocolException>(() => client.CallToolAsync("get-sum", new Dictionary<string, object?> { ["a"] = 1, ["b"] = 2 }).AsTask());
        await client.ListToolsAsync();
        var result = await client.CallToolAsync("get-sum", new Dictionary<string, object?> { ["a"] = 1, ["b"] = 2 });

        Assert.Equal(McpErrorCode.InvalidParams, error.ErrorCode);
        Assert.Equal("3", Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
        Assert.Equal(1, _server.Calls.Of("get-sum"));
    }

    [Fact]
    public async Task SseResponse_ToolsList_IsFilteredInsideTheEvent()
    {
        await using var client = await ClientAsync(AcmeKey);

        using var response = await PostAsync("""{"jsonrpc":"2.0","id":41,"method":"tools/list"}""", AcmeKey, client.SessionId);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var message = ErrorOf(body);
        Assert.Equal(41, message.GetProperty("id").GetInt32());
        var names = message.GetProperty("result").GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("name").GetString()).Order(StringComparer.Ordinal);
        Assert.Equal(["echo", "get-slow", "get-sum"], names);
        Assert.DoesNotContain("wipe-db", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SessionOfAcme_PresentedByBeta_IsNotFoundAndNeverForwarded()
    {
        await using var acme = await ClientAsync(AcmeKey);
        await acme.ListToolsAsync();

        using var stolen = await PostAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}""", BetaKey, acme.SessionId);
        using var random = await PostAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}""", BetaKey, Guid.NewGuid().ToString("N"));
        var stolenBody = ErrorOf(await stolen.Content.ReadAsStringAsync());
        var randomBody = ErrorOf(await random.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.NotFound, stolen.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, random.StatusCode);
        Assert.Equal(-32001, stolenBody.GetProperty("error").GetProperty("code").GetInt32());
        Assert.Equal(randomBody.GetProperty("error").GetProperty("message").GetString(), stolenBody.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(0, _server.Calls.Of("echo"));

        // The owner keeps using it.
        var result = await acme.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "still mine" });
        Assert.Equal("still mine", Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
    }

    [Fact]
    public async Task Batch_WithAForbiddenElement_RefusedWhole()
    {
        await using var acme = await ClientAsync(AcmeKey);
        const string batch = """
            [{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a"}}},
             {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"wipe-db","arguments":{}}}]
            """;

        using var response = await PostAsync(batch, AcmeKey, acme.SessionId);
        var error = ErrorOf(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(-32600, error.GetProperty("error").GetProperty("code").GetInt32());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("id").ValueKind);
        Assert.Equal(0, _server.Calls.Of("echo"));
        Assert.Equal(0, _server.Calls.Of("wipe-db"));
    }

    [Fact]
    public async Task DuplicateIdInFlight_SameSession_Refused409_FirstCompletes()
    {
        await using var acme = await ClientAsync(AcmeKey);
        await acme.ListToolsAsync(); // destructiveTools is set: a tool is callable once its annotations are known
        const string slow = """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-slow","arguments":{}}}""";

        var first = PostAsync(slow, AcmeKey, acme.SessionId);
        await _server.Calls.SlowStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        using var second = await PostAsync("""{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"dup"}}}""", AcmeKey, acme.SessionId);
        _server.Calls.ReleaseSlow();
        using var firstResponse = await first;
        var firstBody = await firstResponse.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        Assert.Equal(-32600, ErrorOf(await second.Content.ReadAsStringAsync()).GetProperty("error").GetProperty("code").GetInt32());
        Assert.Equal(0, _server.Calls.Of("echo"));
        Assert.Equal(HttpStatusCode.OK, firstResponse.StatusCode);
        Assert.Contains("done", firstBody, StringComparison.Ordinal);

        // Once the first answered, the id is free again (claude.ai sends id 1 every time, mcp.md B21).
        using var again = await PostAsync("""{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"again"}}}""", AcmeKey, acme.SessionId);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(1, _server.Calls.Of("echo"));
    }

    [Fact]
    public async Task Delete_ByOwner_EndsTheSession_ThenNotFound()
    {
        var acme = await ClientAsync(AcmeKey);
        var session = acme.SessionId;
        await acme.DisposeAsync();

        using var after = await PostAsync("""{"jsonrpc":"2.0","id":3,"method":"tools/list"}""", AcmeKey, session);

        Assert.Equal(HttpStatusCode.NotFound, after.StatusCode);
    }
}
