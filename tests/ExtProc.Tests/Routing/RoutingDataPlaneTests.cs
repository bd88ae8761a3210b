using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using ExtProc.EnvoyEmulator;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Routing;
using ExtProc.Tests.Hosting;
using ExtProc.Tests.Tenancy;
using OpenAI;
using OpenAI.Chat;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Routing;

/// <summary>
/// Routing end to end (issue 4 "done when"): the OpenAI and Anthropic .NET SDKs through the data plane
/// (HCM + emulated ext_proc filter + router, and in failover mode the router's retries with ExtProc as the
/// upstream filter of each attempt) to loopback providers that answer in their own wire format.
/// </summary>
public sealed class RoutingDataPlaneTests : IAsyncLifetime
{
    private readonly RoutingKit _kit = new();
    private readonly Dictionary<string, LoopbackUpstream> _providers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Func<LoopbackRequest, LoopbackResponse?>> _overrides = new(StringComparer.Ordinal);
    private ExtProcServer _extProc = null!;
    private DataPlane _plane = null!;

    public async Task InitializeAsync()
    {
        _extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: _kit.Yaml(extra: "routing:\n  upstreamFilter: true\n"));
        foreach (var name in new[] { "openai-us", "openai-eu", "anthropic", "notools" })
        {
            var provider = name;
            _providers[name] = await LoopbackUpstream.StartAsync(r => _overrides.TryGetValue(provider, out var o) && o(r) is { } answer ? answer : Answer(provider, r));
        }

        _plane = await StartPlaneAsync(deadCluster: null);
    }

    /// <summary>The data plane as envoy/envoy-failover.yaml builds it; <paramref name="deadCluster"/> points at a closed port.</summary>
    private async Task<DataPlane> StartPlaneAsync(string? deadCluster)
    {
        var upstream = ExtProcFilter(_extProc, upstreamFilter: true);
        upstream.RequestAttributes.Add(RoutingAttributes.AttemptProvider);
        var perAttempt = new PerAttemptOptions { Filter = upstream, IncludeAttemptCountInRequest = true };
        perAttempt.Retry.RetryOn.UnionWith(["5xx", "retriable-status-codes", "connect-failure"]);
        perAttempt.Retry.RetriableStatusCodes.Add(429);
        perAttempt.Retry.NumRetries = 2;
        perAttempt.Retry.BaseInterval = TimeSpan.FromMilliseconds(1);
        perAttempt.AggregateClusters["gpt-failover"] = ["openai-us", "openai-eu"];
        perAttempt.AggregateClusters["mixed-failover"] = ["openai-us", "anthropic"];
        var options = new DataPlaneOptions { Filter = ExtProcFilter(_extProc), DefaultCluster = "no-route", PerAttempt = perAttempt };
        foreach (var (name, provider) in _providers)
        {
            options.Clusters[name] = name == deadCluster ? new Uri($"http://127.0.0.1:{ClosedPort()}") : provider.BaseUri;
            perAttempt.HostMetadata[name] = new() { ["extproc"] = new() { ["provider"] = name } };
        }

        return await DataPlane.StartAsync(options);
    }

    private static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async Task DisposeAsync()
    {
        await _plane.DisposeAsync();
        foreach (var provider in _providers.Values)
        {
            await provider.DisposeAsync();
        }

        await _extProc.DisposeAsync();
        _kit.Dispose();
    }

    /// <summary>Each provider answers in its own format and says who it is and which model it was asked for.</summary>
    private static LoopbackResponse Answer(string provider, LoopbackRequest request)
    {
        using var json = JsonDocument.Parse(request.Body);
        var model = json.RootElement.GetProperty("model").GetString();
        if (provider == "anthropic")
        {
            return LoopbackResponse.Json($$$"""{"id":"msg_1","type":"message","role":"assistant","model":"{{{model}}}","content":[{"type":"text","text":"{{{provider}}}"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}""");
        }

        if (json.RootElement.TryGetProperty("stream", out var stream) && stream.GetBoolean())
        {
            return LoopbackResponse.Sse(
                SseEvent.Data($$"""{"id":"c1","object":"chat.completion.chunk","created":1,"model":"{{model}}","choices":[{"index":0,"delta":{"role":"assistant","content":"{{provider}}"},"finish_reason":null}]}"""),
                SseEvent.Data($$"""{"id":"c1","object":"chat.completion.chunk","created":1,"model":"{{model}}","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"""),
                SseEvent.Data("[DONE]"));
        }

        return LoopbackResponse.Json($$$"""{"id":"c1","object":"chat.completion","created":1,"model":"{{{model}}}","choices":[{"index":0,"message":{"role":"assistant","content":"{{{provider}}}","refusal":null},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}""");
    }

    private ChatClient OpenAi(string model, string key, PipelinePolicy? observer = null)
    {
        var options = new OpenAIClientOptions { Endpoint = new Uri(_plane.BaseUri, "/v1"), RetryPolicy = new ClientRetryPolicy(0) };
        if (observer is not null)
        {
            options.AddPolicy(observer, PipelinePosition.PerCall);
        }

        return new ChatClient(model, new ApiKeyCredential(key), options);
    }

    private int Count(string provider) => _providers[provider].Received.Count;

    [Fact]
    public async Task OpenAiSdk_BufferedAndStreaming_EachPublicModelReachesItsProviderWithItsNameAndCredential()
    {
        var headers = new ResponseHeaderObserver();
        var buffered = await OpenAi("small", TestTenancy.BetaKey, headers).CompleteChatAsync("Hi");
        var streamed = new List<string>();
        await foreach (var update in OpenAi("small", TestTenancy.BetaKey).CompleteChatStreamingAsync("Hi"))
        {
            streamed.AddRange(update.ContentUpdate.Select(p => p.Text));
        }

        Assert.Equal("notools", buffered.Value.Content[0].Text);
        Assert.Equal("small-1", buffered.Value.Model);
        Assert.Equal("notools", string.Concat(streamed));
        Assert.Equal("notools", headers.Last!["x-extproc-provider"]);
        Assert.Equal("1", headers.Last!["x-extproc-attempts"]);
        Assert.All(_providers["notools"].Received, r =>
        {
            Assert.Equal("/v1/chat/completions", r.Path);
            Assert.Equal("Bearer sk-notools", r.Headers.Get("authorization"));
            Assert.Null(r.Headers.Get("x-extproc-route"));
            Assert.Null(r.Headers.Get("x-extproc-cluster"));
            Assert.DoesNotContain(TestTenancy.BetaKey, string.Join(" ", r.Headers.Entries.Select(e => System.Text.Encoding.UTF8.GetString(e.Value))), StringComparison.Ordinal);
        });
        Assert.Equal(2, Count("notools"));
        Assert.Empty(UnexpectedErrors(_extProc));
    }

    [Fact]
    public async Task AnthropicSdk_Alias_ReachesAnthropicWithItsKeyAndTheUpstreamModelName()
    {
        var client = new AnthropicClient { ApiKey = TestTenancy.BetaKey, BaseUrl = _plane.BaseUri.ToString().TrimEnd('/'), MaxRetries = 0 };

        var message = await client.Messages.Create(new MessageCreateParams
        {
            Model = "claude-latest",
            MaxTokens = 16,
            Messages = [new UserMessageParam { Content = "Hi" }],
        });

        Assert.Equal("claude-sonnet-4-5-20250929", message.Model);
        var received = Assert.Single(_providers["anthropic"].Received);
        Assert.Equal(RoutingKit.AnthropicSecret, received.Headers.Get("x-api-key"));
        Assert.Null(received.Headers.Get("authorization"));
    }

    [Fact]
    public async Task Weights_ThreeToOne_DistributionOverManyRequests()
    {
        const int requests = 200;
        var client = OpenAi("gpt-4o", TestTenancy.BetaKey);
        for (var i = 0; i < requests; i++)
        {
            await client.CompleteChatAsync("Hi");
        }

        // Expected 150 / 50; the bounds are over 4.5 standard deviations (σ ≈ 6.1) away, so a fair draw never fails.
        var us = Count("openai-us");
        Assert.Equal(requests, us + Count("openai-eu"));
        Assert.InRange(us, 122, 178);
        Assert.All(_providers["openai-us"].Received, r => Assert.Contains("\"model\":\"gpt-4o-2024-08-06\"", r.BodyText, StringComparison.Ordinal));
        Assert.All(_providers["openai-eu"].Received, r => Assert.Equal("/eu/v1/chat/completions", r.Path));
    }

    [Fact]
    public async Task EuOnlyTenant_NeverReachesANonEuTarget()
    {
        var client = OpenAi("gpt-4o", RoutingKit.EuKey);
        for (var i = 0; i < 30; i++)
        {
            Assert.Equal("openai-eu", (await client.CompleteChatAsync("Hi")).Value.Content[0].Text);
        }

        Assert.Equal(0, Count("openai-us"));
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => OpenAi("small", RoutingKit.EuKey).CompleteChatAsync("Hi"));
        Assert.Equal(403, refused.Status);
        Assert.Contains("no_permitted_target", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, Count("notools"));
    }

    [Fact]
    public async Task TenantOwnKey_NeverLeavesWithAnotherTenantsRequest()
    {
        for (var i = 0; i < 20; i++)
        {
            await OpenAi("gpt-4o", TestTenancy.AcmeKey).CompleteChatAsync("Hi");
            await OpenAi("gpt-4o", TestTenancy.BetaKey).CompleteChatAsync("Hi");
        }

        var all = _providers.Values.SelectMany(p => p.Received).ToList();
        var acme = all.Where(r => r.Headers.Get("x-extproc-tenant") == "acme").ToList();
        var beta = all.Where(r => r.Headers.Get("x-extproc-tenant") == "beta").ToList();
        Assert.Equal(20, acme.Count);
        Assert.Equal(20, beta.Count);
        Assert.All(beta, r => Assert.NotEqual("Bearer " + RoutingKit.AcmeOwnOpenAiSecret, r.Headers.Get("authorization")));
        Assert.All(_providers["openai-us"].Received.Where(r => r.Headers.Get("x-extproc-tenant") == "acme"),
            r => Assert.Equal("Bearer " + RoutingKit.AcmeOwnOpenAiSecret, r.Headers.Get("authorization")));
        Assert.All(_providers["openai-eu"].Received, r => Assert.Equal("Bearer " + RoutingKit.OpenAiEuSecret, r.Headers.Get("authorization")));
    }

    [Theory]
    [InlineData(429)]
    [InlineData(503)]
    public async Task Failover_FirstTargetRefuses_SameSdkCallSucceedsOnTheNextTarget(int status)
    {
        _overrides["openai-us"] = _ => LoopbackResponse.Json("""{"error":{"message":"overloaded","type":"rate_limit"}}""", status);
        var headers = new ResponseHeaderObserver();

        var completion = await OpenAi("gpt-4o-ha", TestTenancy.BetaKey, headers).CompleteChatAsync("Hi");

        Assert.Equal("openai-eu", completion.Value.Content[0].Text);
        Assert.Equal("gpt-4o-eu-ha", completion.Value.Model);
        Assert.Equal("openai-eu", headers.Last!["x-extproc-provider"]);
        Assert.Equal("2", headers.Last!["x-extproc-attempts"]);
        var first = Assert.Single(_providers["openai-us"].Received);
        var second = Assert.Single(_providers["openai-eu"].Received);
        Assert.Contains("\"model\":\"gpt-4o-us-ha\"", first.BodyText, StringComparison.Ordinal);
        Assert.Equal("Bearer " + RoutingKit.OpenAiUsSecret, first.Headers.Get("authorization"));
        Assert.Equal("/eu/v1/chat/completions", second.Path);
        Assert.Equal("Bearer " + RoutingKit.OpenAiEuSecret, second.Headers.Get("authorization"));
        Assert.Null(second.Headers.Get("x-extproc-route"));
        var exchange = Assert.Single(await _plane.WaitForExchangesAsync(1));
        Assert.Equal(["retried", "committed"], exchange.Attempts.Select(a => a.Outcome));
        Assert.Equal("failover", exchange.Attempts[1].Stream.DynamicMetadata["extproc"].Fields["route_reason"].StringValue);
        Assert.Empty(UnexpectedErrors(_extProc));
    }

    [Fact]
    public async Task Failover_NextTargetSpeaksAnotherFormat_AttemptTranslatedBothWays()
    {
        _overrides["openai-us"] = _ => LoopbackResponse.Json("""{"error":{"message":"overloaded","type":"server_error"}}""", 503);
        var headers = new ResponseHeaderObserver();

        var completion = await OpenAi("mixed-ha", TestTenancy.BetaKey, headers).CompleteChatAsync("Hi");

        // The second attempt went to Anthropic in its own format; the client got an OpenAI completion.
        Assert.Equal("anthropic", completion.Value.Content[0].Text);
        Assert.Equal(("anthropic", "2"), (headers.Last!["x-extproc-provider"], headers.Last!["x-extproc-attempts"]));
        var first = Assert.Single(_providers["openai-us"].Received);
        var second = Assert.Single(_providers["anthropic"].Received);
        Assert.Contains("\"messages\"", first.BodyText, StringComparison.Ordinal);
        Assert.Equal("/v1/messages", second.Path);
        using var body = JsonDocument.Parse(second.Body);
        Assert.Equal("claude-sonnet-4-5-20250929", body.RootElement.GetProperty("model").GetString());
        Assert.True(body.RootElement.TryGetProperty("max_tokens", out _));
        Assert.Equal(RoutingKit.AnthropicSecret, second.Headers.Get("x-api-key"));
        Assert.Null(second.Headers.Get("authorization"));
        Assert.Empty(UnexpectedErrors(_extProc));
    }

    [Fact]
    public async Task Failover_FirstTargetRefusesConnections_SameCallSucceedsOnTheNextTarget()
    {
        await using var plane = await StartPlaneAsync(deadCluster: "openai-us");
        var options = new OpenAIClientOptions { Endpoint = new Uri(plane.BaseUri, "/v1"), RetryPolicy = new ClientRetryPolicy(0) };

        var completion = await new ChatClient("gpt-4o-ha", new ApiKeyCredential(TestTenancy.BetaKey), options).CompleteChatAsync("Hi");

        Assert.Equal("openai-eu", completion.Value.Content[0].Text);
        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
        Assert.Equal(["retried", "committed"], exchange.Attempts.Select(a => a.Outcome));
        Assert.Equal("openai-us", exchange.Attempts[0].Cluster);
    }

    [Fact]
    public async Task Failover_EuOnlyTenant_UsAttemptAnsweredLocallyNeverContacted()
    {
        var completion = await OpenAi("gpt-4o-ha", RoutingKit.EuKey).CompleteChatAsync("Hi");

        Assert.Equal("openai-eu", completion.Value.Content[0].Text);
        Assert.Equal(0, Count("openai-us"));
        var exchange = Assert.Single(await _plane.WaitForExchangesAsync(1));
        Assert.Equal(("openai-us", 503, "retried"), (exchange.Attempts[0].Cluster, exchange.Attempts[0].Status, exchange.Attempts[0].Outcome));
        Assert.Equal("skipped_not_permitted", exchange.Attempts[0].Stream.DynamicMetadata["extproc"].Fields["route_reason"].StringValue);
    }

    [Fact]
    public async Task OpenAiSdk_ClaudeModel_TranslatedToAnthropicAndBack_Buffered()
    {
        var completion = await OpenAi("claude-sonnet", TestTenancy.BetaKey).CompleteChatAsync(
            [new SystemChatMessage("Be brief."), new UserChatMessage("Hi")], new ChatCompletionOptions { MaxOutputTokenCount = 64 });

        Assert.Equal("anthropic", completion.Value.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.Value.FinishReason);
        Assert.Equal(2, completion.Value.Usage.TotalTokenCount);
        var received = Assert.Single(_providers["anthropic"].Received);
        Assert.Equal("/v1/messages", received.Path);
        Assert.Equal(RoutingKit.AnthropicSecret, received.Headers.Get("x-api-key"));
        Assert.Equal("2023-06-01", received.Headers.Get("anthropic-version"));
        using var body = JsonDocument.Parse(received.Body);
        Assert.Equal("claude-sonnet-4-5-20250929", body.RootElement.GetProperty("model").GetString());
        Assert.Equal(64, body.RootElement.GetProperty("max_tokens").GetInt32());
        Assert.Equal("Be brief.", SystemText(body.RootElement.GetProperty("system")));
        Assert.Equal("user", body.RootElement.GetProperty("messages")[0].GetProperty("role").GetString());
        Assert.Empty(UnexpectedErrors(_extProc));
    }

    [Fact]
    public async Task OpenAiSdk_ClaudeModel_StreamedToolCall_ArrivesAsOpenAiToolCallChunks()
    {
        _overrides["anthropic"] = _ => LoopbackResponse.Sse(
            AnthropicEvent("message_start", """{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}"""),
            AnthropicEvent("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"""),
            AnthropicEvent("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}"""),
            AnthropicEvent("content_block_stop", """{"type":"content_block_stop","index":0}"""),
            AnthropicEvent("content_block_start", """{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}"""),
            AnthropicEvent("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}"""),
            AnthropicEvent("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"""),
            AnthropicEvent("content_block_stop", """{"type":"content_block_stop","index":1}"""),
            AnthropicEvent("message_delta", """{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":25}}"""),
            AnthropicEvent("message_stop", """{"type":"message_stop"}"""));
        var tool = ChatTool.CreateFunctionTool("get_weather", "Weather of a city", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""));
        var options = new ChatCompletionOptions { Tools = { tool } };

        var text = new List<string>();
        var arguments = new System.Text.StringBuilder();
        string? name = null, id = null;
        ChatFinishReason? finish = null;
        await foreach (var update in OpenAi("claude-sonnet", TestTenancy.BetaKey).CompleteChatStreamingAsync([new UserChatMessage("Weather in Paris?")], options))
        {
            text.AddRange(update.ContentUpdate.Select(p => p.Text));
            foreach (var call in update.ToolCallUpdates)
            {
                Assert.Equal(0, call.Index);
                name ??= call.FunctionName;
                id ??= call.ToolCallId;
                arguments.Append(call.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal("Checking.", string.Concat(text));
        Assert.Equal(("get_weather", "toolu_01"), (name, id));
        Assert.Equal("""{"city":"Paris"}""", arguments.ToString());
        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        using var sent = JsonDocument.Parse(Assert.Single(_providers["anthropic"].Received).Body);
        Assert.True(sent.RootElement.GetProperty("stream").GetBoolean());
        Assert.Equal("get_weather", sent.RootElement.GetProperty("tools")[0].GetProperty("name").GetString());
        Assert.Empty(UnexpectedErrors(_extProc));
    }

    [Fact]
    public async Task AnthropicSdk_GptModel_TranslatedToOpenAiAndBack()
    {
        var client = new AnthropicClient { ApiKey = TestTenancy.BetaKey, BaseUrl = _plane.BaseUri.ToString().TrimEnd('/'), MaxRetries = 0 };

        var message = await client.Messages.Create(new MessageCreateParams
        {
            Model = "gpt-4o",
            MaxTokens = 32,
            Messages = [new UserMessageParam { Content = "Hi" }],
        });

        var served = Count("openai-us") == 1 ? "openai-us" : "openai-eu";
        Assert.Equal(1, Count(served));
        var text = Assert.Single(message.Content).Value;
        Assert.Contains(served, System.Text.Json.JsonSerializer.Serialize(text), StringComparison.Ordinal);
        using var sent = JsonDocument.Parse(_providers[served].Received[0].Body);
        Assert.Equal("user", sent.RootElement.GetProperty("messages")[0].GetProperty("role").GetString());
        Assert.EndsWith("/chat/completions", _providers[served].Received[0].Path, StringComparison.Ordinal);
        Assert.StartsWith("Bearer sk-", _providers[served].Received[0].Headers.Get("authorization"), StringComparison.Ordinal);
        Assert.Empty(UnexpectedErrors(_extProc));
    }

    private static SseEvent AnthropicEvent(string name, string data) => new($"event: {name}\ndata: {data}\n\n");

    private static string SystemText(JsonElement system) =>
        system.ValueKind == JsonValueKind.String ? system.GetString()! : system[0].GetProperty("text").GetString()!;

    [Fact]
    public async Task UnknownModel_404InTheOpenAiDialect_NoProviderContacted()
    {
        var error = await Assert.ThrowsAsync<ClientResultException>(() => OpenAi("gpt-9", TestTenancy.BetaKey).CompleteChatAsync("Hi"));

        Assert.Equal(404, error.Status);
        Assert.Contains("model_not_found", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, _providers.Values.Sum(p => p.Received.Count));
    }

    /// <summary>Keeps the response headers of the last call the SDK made.</summary>
    private sealed class ResponseHeaderObserver : PipelinePolicy
    {
        public Dictionary<string, string>? Last { get; private set; }

        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            ProcessNext(message, pipeline, currentIndex);
            Capture(message);
        }

        public override async ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            await ProcessNextAsync(message, pipeline, currentIndex);
            Capture(message);
        }

        private void Capture(PipelineMessage message)
        {
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var (name, value) in message.Response!.Headers)
            {
                headers[name] = value;
            }

            Last = headers;
        }
    }
}
