using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Storage;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Hosting;
using ExtProc.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;
using StackExchange.Redis;
using Xunit.Abstractions;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Harness;

/// <summary>
/// Two ExtProc processes sharing one real redis-server, each behind its own emulated Envoy, hammered
/// concurrently with the OpenAI SDK: the limit holds exactly across replicas (faults.md L1) and token
/// counters match provider-reported usage (L8).
/// </summary>
public sealed class LimitsDataPlaneTests : IAsyncLifetime
{
    private static readonly string Key = ApiKeyFormat.NewKey("lim-main");
    private readonly ITestOutputHelper _output;
    private readonly List<IAsyncDisposable> _owned = [];
    private long _providerTokens;
    private RedisServer _redis = null!;
    private LoopbackUpstream _upstream = null!;

    public LimitsDataPlaneTests(ITestOutputHelper output) => _output = output;

    private string Yaml => $$"""
        version: 1
        tenants:
          lim:
            policy:
              limits: [rph, tph]
            keys:
              - id: lim-main
                hash: "{{ApiKeyFormat.HashText(Key)}}"
        limits:
          default_max_output_tokens: 50
          redis:
            endpoint: "{{_redis.Endpoint}}"
            call_budget: 2s
            replicas: 2
          rules:
            - { name: rph, kind: requests, limit: "60", window: 1h }
            - { name: tph, kind: tokens, limit: "100000000", window: hour }
        """;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();

        // Provider usage varies per request; the upstream records what it reported.
        _upstream = await LoopbackUpstream.StartAsync(_ =>
        {
            var prompt = Random.Shared.Next(5, 400);
            var completion = Random.Shared.Next(1, 50);
            Interlocked.Add(ref _providerTokens, prompt + completion);
            return LoopbackResponse.Json($$$"""{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok","refusal":null},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":{{{prompt}}},"completion_tokens":{{{completion}}},"total_tokens":{{{prompt + completion}}}}}""");
        });
    }

    public async Task DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        await _upstream.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private async Task<DataPlane> ReplicaAsync()
    {
        var extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: Yaml);
        _owned.Add(extProc);
        var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["default"] = _upstream.BaseUri },
            DefaultCluster = "default",
            KeepExchanges = false,
        });
        _owned.Add(plane);
        return plane;
    }

    [Fact]
    public async Task TwoReplicas_ConcurrentBurst_AdmitExactlyTheLimitAndCountTokensAsReported()
    {
        var planes = new[] { await ReplicaAsync(), await ReplicaAsync() };
        var clients = planes.Select(p => new ChatClient("gpt-4o-mini", new ApiKeyCredential(Key),
            new OpenAIClientOptions { Endpoint = new Uri(p.BaseUri, "/v1"), RetryPolicy = new ClientRetryPolicy(0) })).ToArray();

        // Both replicas' connections are up before the burst (start-up degrades to the local limiter otherwise).
        await WaitForRedisClientsAsync(2);

        var start = new TaskCompletionSource();
        var calls = Enumerable.Range(0, 160).Select(i => Task.Run(async () =>
        {
            await start.Task;
            try
            {
                await clients[i % 2].CompleteChatAsync([new UserChatMessage("Hello number " + i)], new ChatCompletionOptions { MaxOutputTokenCount = 50 });
                return 200;
            }
            catch (ClientResultException ex)
            {
                Assert.Contains("rate_limited", ex.Message);
                return ex.Status;
            }
        })).ToArray();
        start.SetResult();
        var statuses = await Task.WhenAll(calls);
        var admitted = statuses.Count(s => s == 200);
        var refused = statuses.Count(s => s == 429);

        var counted = await CounterSumAsync("tph");
        var provider = Interlocked.Read(ref _providerTokens);
        var drift = Math.Abs(counted - provider) / (double)provider;
        _output.WriteLine($"L1 (2 ExtProc processes, 1 Redis, 160 concurrent SDK calls, limit 60/h): admitted {admitted}, 429 {refused}, other {statuses.Length - admitted - refused}, over-admission {admitted - 60}");
        _output.WriteLine($"L8: token counter {counted} vs provider-reported usage {provider}: drift {drift:P3}");
        Assert.Equal(60, admitted);
        Assert.Equal(100, refused);
        Assert.True(drift <= 0.01, $"drift {drift:P3}");
    }

    private async Task WaitForRedisClientsAsync(int expected)
    {
        using var admin = await ConnectionMultiplexer.ConnectAsync(_redis.Endpoint + ",allowAdmin=true");
        var server = admin.GetServer(_redis.Endpoint);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            var clients = await server.ClientListAsync();
            if (clients.Count(c => c.Name == "extproc") >= expected)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail("the ExtProc replicas did not connect to Redis");
    }

    private async Task<long> CounterSumAsync(string rule)
    {
        using var admin = await ConnectionMultiplexer.ConnectAsync(_redis.Endpoint);
        var server = admin.GetServer(_redis.Endpoint);
        long sum = 0;
        await foreach (var key in server.KeysAsync(pattern: LimitKeys.CounterPrefix + rule + ":*"))
        {
            sum += long.Parse((string)(await admin.GetDatabase().StringGetAsync(key))!, CultureInfo.InvariantCulture);
        }

        return sum;
    }

    [Fact]
    public async Task RawStream_UsageNotAsked_UpstreamAskedAndClientGetsNoUsageChunk()
    {
        // The upstream answers like OpenAI: the usage chunk comes only when the request asked for it.
        string? upstreamBody = null;
        await using var upstream = await LoopbackUpstream.StartAsync(request =>
        {
            upstreamBody = request.BodyText;
            var events = new List<SseEvent>
            {
                SseEvent.Data("""{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"}}]}"""),
                SseEvent.Data("""{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"""),
            };
            if (request.BodyText.Contains("\"include_usage\":true", StringComparison.Ordinal))
            {
                events.Add(SseEvent.Data("""{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":2,"total_tokens":42}}"""));
            }

            events.Add(SseEvent.Data("[DONE]"));
            return LoopbackResponse.Sse([.. events]);
        });
        var (status, text) = await StreamWithoutUsageAsync(Yaml, "default", upstream);

        Assert.Equal(200, status);
        Assert.Contains("\"include_usage\":true", upstreamBody);
        Assert.Contains("Hello", text);
        Assert.Contains("[DONE]", text);
        Assert.DoesNotContain("usage", text);
        Assert.Equal(42, await CounterSumAsync("tph"));
    }

    [Theory]
    [InlineData("anthropic")]
    [InlineData("deepseek")]
    public async Task TranslatedStream_UsageNotAsked_ClientGetsNoUsageChunkAndTokensSettled(string upstreamKind)
    {
        // Limits force include_usage to settle an OpenAI-format stream; when routing translates it (to Anthropic,
        // or through an OpenAI-compatible dialect) the client must still get no usage it did not ask for.
        string? upstreamBody = null;
        await using var upstream = await LoopbackUpstream.StartAsync(request =>
        {
            upstreamBody = request.BodyText;
            if (upstreamKind == "anthropic")
            {
                return LoopbackResponse.Sse(
                    new SseEvent("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}\n\n"),
                    new SseEvent("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"),
                    new SseEvent("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"),
                    new SseEvent("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"),
                    new SseEvent("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n"),
                    new SseEvent("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
            }

            var events = new List<SseEvent>
            {
                SseEvent.Data("""{"id":"c","object":"chat.completion.chunk","model":"deepseek-chat","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"}}]}"""),
                SseEvent.Data("""{"id":"c","object":"chat.completion.chunk","model":"deepseek-chat","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"""),
            };
            if (request.BodyText.Contains("\"include_usage\":true", StringComparison.Ordinal))
            {
                events.Add(SseEvent.Data("""{"id":"c","object":"chat.completion.chunk","model":"deepseek-chat","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":2,"total_tokens":42}}"""));
            }

            events.Add(SseEvent.Data("[DONE]"));
            return LoopbackResponse.Sse([.. events]);
        });
        var secret = Path.Combine(Path.GetTempPath(), $"extproc-lim-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(secret, "sk-provider-secret");
        var (schema, dialect) = upstreamKind == "anthropic" ? ("anthropic", "standard") : ("openai", "deepseek");
        var yaml = Yaml + $$"""

            providers:
              up:
                schema: {{schema}}
                dialect: {{dialect}}
                cluster: up
                credential: { file: "{{secret}}" }
            models:
              gpt-4o-mini: { targets: [{ provider: up, model: upstream-model }] }
            """;
        try
        {
            var (status, text) = await StreamWithoutUsageAsync(yaml, "up", upstream);

            Assert.Equal(200, status);
            if (upstreamKind == "deepseek")
            {
                Assert.Contains("\"include_usage\":true", upstreamBody);
            }

            Assert.Contains("Hello", text);
            Assert.Contains("[DONE]", text);
            Assert.DoesNotContain("usage", text);
            Assert.Equal(42, await CounterSumAsync("tph"));
        }
        finally
        {
            File.Delete(secret);
        }
    }

    /// <summary>One ExtProc (with <paramref name="yaml"/>) behind the harness, and an OpenAI stream request that does not ask for usage.</summary>
    private async Task<(int Status, string Text)> StreamWithoutUsageAsync(string yaml, string cluster, LoopbackUpstream upstream)
    {
        var extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: yaml);
        _owned.Add(extProc);
        var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { [cluster] = upstream.BaseUri },
            DefaultCluster = cluster == "default" ? "default" : "no-route",
        });
        _owned.Add(plane);
        await WaitForRedisClientsAsync(1);

        using var http = new HttpClient { BaseAddress = plane.BaseUri };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Json("""{"model":"gpt-4o-mini","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"""),
        };
        request.Headers.Add("authorization", "Bearer " + Key);
        using var response = await http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
