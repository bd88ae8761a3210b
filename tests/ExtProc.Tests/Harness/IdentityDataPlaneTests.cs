using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Anthropic;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using ExtProc.EnvoyEmulator;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Tests.Hosting;
using ExtProc.Tests.Tenancy;
using Google.Protobuf.WellKnownTypes;
using OpenAI;
using OpenAI.Chat;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Harness;

/// <summary>
/// Identity end to end (issue 3 "done when"): real OpenAI and Anthropic .NET SDK clients, and raw HTTP for
/// MCP, through the data plane (HCM + emulated ext_proc filter + router) to the real ExtProc process and
/// loopback upstreams. Keys, a JWKS and SPIFFE ids are made by the tests.
/// </summary>
public sealed class IdentityDataPlaneTests : IAsyncLifetime
{
    private const string ChatCompletion = """{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok","refusal":null},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}""";
    private const string AnthropicMessage = """{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}""";
    private const string McpPeers = """
          mtls:
            source: attributes
            peers:
              - spiffePrefix: "spiffe://mesh.test/ns/beta/"
                tenant: beta
        """;

    private readonly TestIssuer _issuer = new();
    private readonly string _jwks = Path.Combine(Path.GetTempPath(), $"harness-jwks-{Guid.NewGuid():N}.json");
    private ExtProcServer _extProc = null!;
    private LoopbackUpstream _upstream = null!;
    private DataPlane _plane = null!;
    private string? _peer;

    public async Task InitializeAsync()
    {
        await File.WriteAllTextAsync(_jwks, _issuer.Jwks());
        var identity = _issuer.IdentityYaml($"file: \"{_jwks}\"") + "\n" + McpPeers;
        _extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: TestTenancy.BaseYaml(identity));
        _upstream = await LoopbackUpstream.StartAsync(r => r.Path.EndsWith("/messages", StringComparison.Ordinal)
            ? LoopbackResponse.Json(AnthropicMessage)
            : LoopbackResponse.Json(ChatCompletion));
        var filter = ExtProcFilter(_extProc);
        filter.RequestAttributes.Add("connection.uri_san_peer_certificate");
        filter.RequestAttributes.Add("connection.subject_peer_certificate");
        _plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = filter,
            Clusters = { ["default"] = _upstream.BaseUri },
            DefaultCluster = "default",
            ConnectionAttributes = _ => _peer is null
                ? []
                : new Dictionary<string, Value> { ["connection.uri_san_peer_certificate"] = Value.ForString(_peer) },
        });
    }

    public async Task DisposeAsync()
    {
        await _plane.DisposeAsync();
        await _upstream.DisposeAsync();
        await _extProc.DisposeAsync();
        _issuer.Dispose();
        File.Delete(_jwks);
    }

    private ChatClient OpenAi(string key, string model = "gpt-4o-mini", PipelinePolicy? policy = null)
    {
        var options = new OpenAIClientOptions { Endpoint = new Uri(_plane.BaseUri, "/v1"), RetryPolicy = new ClientRetryPolicy(0) };
        if (policy is not null)
        {
            options.AddPolicy(policy, PipelinePosition.BeforeTransport);
        }

        return new ChatClient(model, new ApiKeyCredential(key), options);
    }

    private AnthropicClient Anthropic(string key) => new() { ApiKey = key, BaseUrl = _plane.BaseUri.ToString().TrimEnd('/'), MaxRetries = 0 };

    private static MessageCreateParams Message(string model = "claude-sonnet-4-5") => new()
    {
        Model = model,
        MaxTokens = 16,
        Messages = [new UserMessageParam { Content = "Hi" }],
    };

    private async Task<IReadOnlyDictionary<string, Value>> DecisionAsync()
    {
        var exchange = Assert.Single(await _plane.WaitForExchangesAsync(1));
        return exchange.Stream.DynamicMetadata["extproc"].Fields;
    }

    [Fact]
    public async Task OpenAiSdk_ValidKey_UpstreamGetsTenantHeaderAndNoCredential()
    {
        var completion = await OpenAi(TestTenancy.AcmeKey).CompleteChatAsync("Hi");

        Assert.Equal("ok", completion.Value.Content[0].Text);
        var received = Assert.Single(_upstream.Received);
        Assert.Null(received.Headers.Get("authorization"));
        Assert.Equal("acme", received.Headers.Get("x-extproc-tenant"));
        var decision = await DecisionAsync();
        Assert.Equal("acme", decision["tenant"].StringValue);
        Assert.Equal("acme-main", decision["key_id"].StringValue);
        Assert.Equal("api_key", decision["identity"].StringValue);
        Assert.Empty(UnexpectedErrors(_extProc));
    }

    [Fact]
    public async Task AnthropicSdk_ValidKey_UpstreamGetsTenantHeaderAndNoCredential()
    {
        var message = await Anthropic(TestTenancy.AcmeKey).Messages.Create(Message());

        Assert.Equal("msg_1", message.ID);
        var received = Assert.Single(_upstream.Received);
        Assert.Null(received.Headers.Get("x-api-key"));
        Assert.Null(received.Headers.Get("authorization"));
        Assert.Equal("acme", received.Headers.Get("x-extproc-tenant"));
    }

    [Theory]
    [InlineData("missing", "gpt-4o-mini", 401, "missing_credentials", "No credentials were presented")]
    [InlineData("wrong", "gpt-4o-mini", 401, "invalid_api_key", "The API key is not valid.")]
    [InlineData("revoked", "gpt-4o-mini", 401, "invalid_api_key", "The API key is not valid.")]
    [InlineData("narrow", "gpt-4o", 403, "model_not_allowed", "The model 'gpt-4o' is not allowed for this tenant.")]
    [InlineData("acme", "o3-pro", 403, "model_not_allowed", "The model 'o3-pro' is not allowed for this tenant.")]
    public async Task OpenAiSdk_RefusedKey_ClientResultExceptionCarriesOurCodeAndMessage(string which, string model, int status, string code, string message)
    {
        var client = which == "missing" ? OpenAi("unused", model, new StripAuthorization()) : OpenAi(Key(which), model);

        var error = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync("Hi"));

        Assert.Equal(status, error.Status);
        Assert.Contains(code, error.Message, StringComparison.Ordinal);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Empty(_upstream.Received);
        if (status == 401)
        {
            Assert.StartsWith("Bearer realm=\"extproc\"", error.GetRawResponse()!.Headers.TryGetValue("www-authenticate", out var challenge) ? challenge : "", StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("wrong", "claude-sonnet-4-5", "invalid_api_key", typeof(AnthropicUnauthorizedException))]
    [InlineData("revoked", "claude-sonnet-4-5", "invalid_api_key", typeof(AnthropicUnauthorizedException))]
    [InlineData("narrow", "claude-sonnet-4-5", "model_not_allowed", typeof(AnthropicForbiddenException))]
    [InlineData("acme", "mistral-large", "model_not_allowed", typeof(AnthropicForbiddenException))]
    public async Task AnthropicSdk_RefusedKey_SdkExceptionTypeCarriesOurCodeAndMessage(string which, string model, string code, System.Type type)
    {
        var error = await Assert.ThrowsAnyAsync<AnthropicServiceException>(() => Anthropic(Key(which)).Messages.Create(Message(model)));

        Assert.IsType(type, error);
        Assert.Equal(code, error.ErrorCode);
        Assert.False(string.IsNullOrEmpty(error.ApiMessage));
        Assert.Empty(_upstream.Received);
    }

    [Fact]
    public async Task OpenAiSdk_WithJwt_ReachesUpstreamAsTheClaimedTenantWithoutToken()
    {
        await OpenAi(_issuer.Token(tenant: "beta")).CompleteChatAsync("Hi");

        var received = Assert.Single(_upstream.Received);
        Assert.Equal("beta", received.Headers.Get("x-extproc-tenant"));
        Assert.Null(received.Headers.Get("authorization"));
        Assert.Equal("jwt", (await DecisionAsync())["identity"].StringValue);
    }

    [Fact]
    public async Task Mcp_ChallengeDiscoveryThenToken_UpstreamNeverSeesClientToken()
    {
        using var client = _plane.CreateClient();
        const string initialize = """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""";

        using var denied = await client.PostAsync("/mcp", Json(initialize));
        Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        Assert.Equal("Bearer resource_metadata=\"https://gateway.test/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\"",
            denied.Headers.WwwAuthenticate.ToString());

        using var metadata = await client.GetAsync("/.well-known/oauth-protected-resource/mcp");
        Assert.Equal(HttpStatusCode.OK, metadata.StatusCode);
        using (var json = JsonDocument.Parse(await metadata.Content.ReadAsStringAsync()))
        {
            Assert.Equal(TestIssuer.Audience, json.RootElement.GetProperty("resource").GetString());
            Assert.Equal(TestIssuer.Issuer, json.RootElement.GetProperty("authorization_servers")[0].GetString());
        }

        using var wrongAudience = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = Json(initialize) };
        wrongAudience.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _issuer.Token(audience: "https://upstream-mcp.test/mcp"));
        using var refused = await client.SendAsync(wrongAudience);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("error=\"invalid_token\"", refused.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Empty(_upstream.Received);

        using var valid = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = Json(initialize) };
        valid.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _issuer.Token());
        using var ok = await client.SendAsync(valid);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var received = Assert.Single(_upstream.Received);
        Assert.Null(received.Headers.Get("authorization"));
        Assert.Equal("acme", received.Headers.Get("x-extproc-tenant"));
    }

    [Fact]
    public async Task Spiffe_PeerFromEnvoyAttributes_IsTheTenantWithoutAnyKey()
    {
        _peer = "spiffe://mesh.test/ns/beta/sa/agent";
        using var client = _plane.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"gpt-4o-mini","messages":[]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("beta", Assert.Single(_upstream.Received).Headers.Get("x-extproc-tenant"));
        var decision = await DecisionAsync();
        Assert.Equal("spiffe", decision["identity"].StringValue);
        Assert.False(decision.ContainsKey("key_id"));
    }

    [Theory]
    [InlineData("spiffe://mesh.test/ns/beta/sa/agent\u0000admin", "invalid_client_identity", HttpStatusCode.Unauthorized)]
    [InlineData("spiffe://mesh.test/ns/beta/sa/agent", "ambiguous_credentials", HttpStatusCode.BadRequest)] // peer beta, key acme
    public async Task Spiffe_BadOrConflictingPeer_Refused(string peer, string code, HttpStatusCode status)
    {
        _peer = peer;
        using var client = _plane.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json("""{"model":"gpt-4o-mini","messages":[]}""") };
        request.Headers.Add("x-api-key", TestTenancy.AcmeKey);

        using var response = await client.SendAsync(request);

        Assert.Equal(status, response.StatusCode);
        Assert.Contains(code, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Empty(_upstream.Received);
    }

    private static string Key(string which) => which switch
    {
        "acme" => TestTenancy.AcmeKey,
        "narrow" => TestTenancy.AcmeNarrowKey,
        "revoked" => TestTenancy.AcmeRevokedKey,
        _ => TestTenancy.AcmeKey[..^3] + "zzz",
    };

    private sealed class StripAuthorization : PipelinePolicy
    {
        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Remove("Authorization");
            ProcessNext(message, pipeline, currentIndex);
        }

        public override ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Remove("Authorization");
            return ProcessNextAsync(message, pipeline, currentIndex);
        }
    }
}
