using System.Net;
using System.Net.Http.Headers;
using System.Text;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Hosting;
using ExtProc.Tests.Infrastructure;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Harness.Mcp;

/// <summary>
/// MCP session bindings shared through Redis (<c>mcp.sessions.redis</c>): two ExtProc replicas, each behind
/// its own data plane, one real MCP server. A session the SDK client initialised through replica A is used
/// through replica B by its owner, refused there to another tenant, and — with Redis down — still checked by
/// the replica that bound it, while the other answers 404 rather than letting an unchecked session through.
/// </summary>
public sealed class McpSharedSessionsTests : IAsyncLifetime
{
    private const string Version = "2025-11-25";
    private const string Call = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"via b"}}}""";

    private static readonly string AcmeKey = ApiKeyFormat.NewKey("acme-main");
    private static readonly string BetaKey = ApiKeyFormat.NewKey("beta-main");

    private readonly List<IAsyncDisposable> _owned = [];
    private RedisServer _redis = null!;
    private McpTestServer _server = null!;

    private string Config => $$"""
        version: 1
        tenants:
          acme:
            policy:
              mcp:
                tools: ["echo"]
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
        mcp:
          sessions:
            idle: 1h
            redis: { endpoint: "{{_redis.Endpoint}}", callBudget: 200ms }
        """;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        _server = await McpTestServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        await _server.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private async Task<DataPlane> ReplicaAsync()
    {
        var extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: Config);
        _owned.Add(extProc);
        var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["mcp"] = _server.BaseUri },
            DefaultCluster = "mcp",
            KeepExchanges = false,
        });
        _owned.Add(plane);
        return plane;
    }

    private static Task<McpClient> ClientAsync(DataPlane plane, string key) =>
        McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(plane.BaseUri, "/mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + key },
        }), new McpClientOptions { ProtocolVersion = Version });

    private static async Task<(HttpStatusCode Status, string Body)> PostAsync(DataPlane plane, string key, string session)
    {
        using var client = plane.CreateClient(http2: false);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(Call, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.Add("MCP-Protocol-Version", Version);
        request.Headers.Add("Mcp-Session-Id", session);
        using var response = await client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task SessionBoundThroughOneReplica_UsedByItsOwnerThroughAnother_RefusedToOthers()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        await using var acme = await ClientAsync(a, AcmeKey);
        await acme.ListToolsAsync();

        var owner = await PostAsync(b, AcmeKey, acme.SessionId!);
        var stolen = await PostAsync(b, BetaKey, acme.SessionId!);

        Assert.Equal(HttpStatusCode.OK, owner.Status);
        Assert.Contains("via b", owner.Body);
        Assert.Equal(HttpStatusCode.NotFound, stolen.Status);
        Assert.Contains("-32001", stolen.Body);
        Assert.Equal(1, _server.Calls.Of("echo"));
    }

    [Fact]
    public async Task RedisDown_BindingReplicaStillChecksItsSessions_OtherReplicaRefuses()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        _redis.Kill();
        await using var acme = await ClientAsync(a, AcmeKey);
        await acme.ListToolsAsync();

        var result = await acme.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "via a" });
        var stolen = await PostAsync(a, BetaKey, acme.SessionId!);
        var elsewhere = await PostAsync(b, AcmeKey, acme.SessionId!);

        Assert.Equal("via a", Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
        Assert.Equal(HttpStatusCode.NotFound, stolen.Status);
        Assert.Equal(HttpStatusCode.NotFound, elsewhere.Status);
        Assert.Equal(1, _server.Calls.Of("echo"));
    }
}
