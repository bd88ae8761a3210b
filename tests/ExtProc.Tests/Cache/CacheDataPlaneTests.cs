using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using Anthropic;
using Anthropic.Models.Messages;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Hosting;
using OpenAI;
using OpenAI.Chat;
using Xunit.Abstractions;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Cache;

/// <summary>
/// The response cache end to end, level 1 only: the real ExtProc behind the emulated Envoy, the OpenAI and Anthropic
/// SDKs as clients, a loopback provider that counts what reaches it. Hits never reach it, never cross tenants
/// (C1, C9), never survive a policy change (C7), and cost no tokens or money (limits interplay).
/// </summary>
public sealed class CacheDataPlaneTests : IAsyncLifetime
{
    private static readonly string AcmeKey = ApiKeyFormat.NewKey("acme-main");
    private static readonly string AcmeOtherKey = ApiKeyFormat.NewKey("acme-other");
    private static readonly string BetaKey = ApiKeyFormat.NewKey("beta-main");
    private readonly ITestOutputHelper _output;
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly string _configPath = Path.Combine(Path.GetTempPath(), $"extproc-cache-{Guid.NewGuid():N}.yaml");
    private LoopbackUpstream _upstream = null!;
    private int _answers;

    public CacheDataPlaneTests(ITestOutputHelper output) => _output = output;

    internal static string Yaml(string budgetUsd = "0.16", bool revokeOther = false, string cacheExtra = "") => $$"""
        version: 1
        tenants:
          acme:
            policy:
              limits: [tph, spend]
            keys:
              - id: acme-main
                hash: "{{ApiKeyFormat.HashText(AcmeKey)}}"
              - id: acme-other
                hash: "{{ApiKeyFormat.HashText(AcmeOtherKey)}}"
                revoked: {{(revokeOther ? "true" : "false")}}
          beta:
            keys:
              - id: beta-main
                hash: "{{ApiKeyFormat.HashText(BetaKey)}}"
        limits:
          default_max_output_tokens: 50
          prices:
            "gpt-4o-mini": { input: "0", output: "1000" }
          rules:
            - { name: tph, kind: tokens, limit: "100000000", window: hour }
            - { name: spend, kind: budget, usd: "{{budgetUsd}}", period: day }
        cache:
          enabled: true
          ttl: 5m
        {{cacheExtra}}
        """;

    public async Task InitializeAsync()
    {
        // Each answer differs, so a hit is recognisable by its body.
        _upstream = await LoopbackUpstream.StartAsync(request =>
        {
            var n = Interlocked.Increment(ref _answers);
            if (request.BodyText.Contains("\"stream\":true", StringComparison.Ordinal))
            {
                var events = new List<SseEvent>
                {
                    SseEvent.Data($$$"""{"id":"s{{{n}}}","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"streamed "},"finish_reason":null}]}"""),
                    SseEvent.Data($$$"""{"id":"s{{{n}}}","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"answer {{{n}}}"},"finish_reason":null}]}"""),
                    SseEvent.Data($$$"""{"id":"s{{{n}}}","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"""),
                };
                if (request.BodyText.Contains("\"include_usage\":true", StringComparison.Ordinal))
                {
                    events.Add(SseEvent.Data($$$"""{"id":"s{{{n}}}","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"""));
                }

                events.Add(SseEvent.Data("[DONE]"));
                return LoopbackResponse.Sse([.. events]);
            }

            return request.Path.StartsWith("/v1/messages", StringComparison.Ordinal)
                ? LoopbackResponse.Json($$$"""{"id":"msg_{{{n}}}","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"answer {{{n}}}"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5}}""")
                : LoopbackResponse.Json($$$"""{"id":"c{{{n}}}","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"answer {{{n}}}","refusal":null},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}""");
        });
    }

    public async Task DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        await _upstream.DisposeAsync();
        File.Delete(_configPath);
    }

    private async Task<(ExtProcServer Server, DataPlane Plane)> StartAsync(string yaml)
    {
        await File.WriteAllTextAsync(_configPath, yaml);
        var extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
            ["ExtProc:ConfigPath"] = _configPath,
        });
        _owned.Add(extProc);
        var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["default"] = _upstream.BaseUri },
            DefaultCluster = "default",
        });
        _owned.Add(plane);
        return (extProc, plane);
    }

    internal static ChatClient OpenAi(DataPlane plane, string key) => new("gpt-4o-mini", new ApiKeyCredential(key),
        new OpenAIClientOptions { Endpoint = new Uri(plane.BaseUri, "/v1"), RetryPolicy = new ClientRetryPolicy(0) });

    internal static ChatCompletionOptions Deterministic(int maxTokens = 100) => new() { Temperature = 0, MaxOutputTokenCount = maxTokens };

    [Fact]
    public async Task OpenAiSdk_SameRequestTwice_SecondServedFromCacheWithoutTheProvider()
    {
        var (server, plane) = await StartAsync(Yaml());
        var client = OpenAi(plane, AcmeKey);

        ChatCompletion first = await client.CompleteChatAsync([new UserChatMessage("What is 2+2?")], Deterministic());
        ChatCompletion second = await client.CompleteChatAsync([new UserChatMessage("What is 2+2?")], Deterministic());
        ChatCompletion other = await client.CompleteChatAsync([new UserChatMessage("What is 3+3?")], Deterministic());

        _output.WriteLine($"OpenAI SDK: 3 calls (2 identical), provider calls {_upstream.Received.Count}");
        Assert.Equal(2, _upstream.Received.Count);
        Assert.Equal(first.Id, second.Id);
        Assert.Equal(first.Content[0].Text, second.Content[0].Text);
        Assert.NotEqual(first.Id, other.Id);
        var exchanges = await plane.WaitForExchangesAsync(3);
        Assert.Equal(["miss", "hit", "miss"], exchanges.Select(e => e.Stream.DynamicMetadata["extproc"].Fields["cache"].StringValue));
        Assert.Empty(UnexpectedErrors(server));
    }

    [Theory]
    [InlineData("beta")]
    [InlineData("acme")]
    public async Task OpenAiSdk_StreamTwice_SecondReplayedFromCacheAsTheClientSawIt(string tenant)
    {
        // acme has token limits (the limits stage reads the stream's usage as it passes); the stored stream is the one
        // the client saw, replayed as one SSE body the SDK reads the same way.
        var (server, plane) = await StartAsync(Yaml());
        var client = OpenAi(plane, tenant == "acme" ? AcmeKey : BetaKey);
        var options = Deterministic();

        async Task<(string Text, int? Usage)> StreamAsync()
        {
            var text = new System.Text.StringBuilder();
            int? usage = null;
            await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Stream me")], options))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }

                usage ??= update.Usage?.TotalTokenCount;
            }

            return (text.ToString(), usage);
        }

        var first = await StreamAsync();
        var second = await StreamAsync();

        var statuses = (await plane.WaitForExchangesAsync(2)).Select(e => e.Stream.DynamicMetadata["extproc"].Fields["cache"].StringValue).ToList();
        _output.WriteLine($"SSE ({tenant}): provider calls {_upstream.Received.Count} for 2 streams; '{first.Text}' then '{second.Text}'; usage {first.Usage?.ToString() ?? "none"} then {second.Usage?.ToString() ?? "none"}; {string.Join(", ", statuses)}");
        Assert.Single(_upstream.Received);
        Assert.Equal("streamed answer 1", first.Text);
        Assert.Equal(first, second);
        Assert.Equal(["miss", "hit"], statuses);
        Assert.Empty(UnexpectedErrors(server));
    }

    [Fact]
    public async Task GeminiGenerateContent_SameRequestTwice_SecondServedFromCache()
    {
        var (server, plane) = await StartAsync(Yaml());
        using var http = new HttpClient { BaseAddress = plane.BaseUri };
        async Task<string> SendAsync(string body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1beta/models/gemini-2.0-flash:generateContent") { Content = Json(body) };
            request.Headers.Add("x-goog-api-key", BetaKey);
            using var response = await http.SendAsync(request);
            Assert.Equal(200, (int)response.StatusCode);
            return await response.Content.ReadAsStringAsync();
        }

        var first = await SendAsync("""{"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"generationConfig":{"temperature":0}}""");
        var reordered = await SendAsync("""{ "generationConfig": {"temperature": 0}, "contents": [{"parts":[{"text":"\u0048i"}],"role":"user"}] }""");

        _output.WriteLine($"Gemini generateContent: 2 equivalent requests (reordered, escaped), provider calls {_upstream.Received.Count}");
        Assert.Single(_upstream.Received);
        Assert.Equal(first, reordered);
        Assert.Empty(UnexpectedErrors(server));
    }

    [Fact]
    public async Task AnthropicSdk_SameRequestTwice_SecondServedFromCacheWithoutTheProvider()
    {
        // This SDK no longer sends temperature (newer Claude models refuse it): the tenant opts in to sampled answers.
        var (server, plane) = await StartAsync(Yaml(cacheExtra: "  tenants:\n    beta: { sampled: true }"));
        var client = new AnthropicClient { ApiKey = BetaKey, BaseUrl = plane.BaseUri.ToString().TrimEnd('/'), MaxRetries = 0 };
        MessageCreateParams Params() => new()
        {
            Model = "claude-sonnet-4-5",
            MaxTokens = 64,
            System = "Be brief.",
            Messages = [new UserMessageParam { Content = "Capital of Norway?" }],
        };

        var first = await client.Messages.Create(Params());
        var second = await client.Messages.Create(Params());

        _output.WriteLine($"Anthropic SDK: 2 identical calls, provider calls {_upstream.Received.Count}");
        Assert.Single(_upstream.Received);
        Assert.Equal(first.ID, second.ID);
        Assert.Empty(UnexpectedErrors(server));
    }

    [Fact]
    public async Task OpenAiSdk_RoutedToAnthropic_HitServesTheTranslatedAnswer()
    {
        // The fill runs after routing: what is stored is what the client got (OpenAI format), not the provider's bytes.
        var secret = Path.Combine(Path.GetTempPath(), $"extproc-cache-secret-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(secret, "sk-ant-provider\n");
        try
        {
            var yaml = $$"""
                version: 1
                tenants:
                  beta:
                    keys:
                      - id: beta-main
                        hash: "{{ApiKeyFormat.HashText(BetaKey)}}"
                providers:
                  anthropic:
                    schema: anthropic
                    cluster: anthropic
                    credential: { file: "{{secret}}" }
                models:
                  claude-sonnet:
                    targets:
                      - { provider: anthropic, model: claude-sonnet-4-5-20250929 }
                cache:
                  enabled: true
                """;
            await File.WriteAllTextAsync(_configPath, yaml);
            var extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
            {
                ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
                ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
                ["ExtProc:ConfigPath"] = _configPath,
            });
            _owned.Add(extProc);
            var plane = await DataPlane.StartAsync(new DataPlaneOptions
            {
                Filter = ExtProcFilter(extProc),
                Clusters = { ["anthropic"] = _upstream.BaseUri },
                DefaultCluster = "no-route",
            });
            _owned.Add(plane);
            var client = new ChatClient("claude-sonnet", new ApiKeyCredential(BetaKey),
                new OpenAIClientOptions { Endpoint = new Uri(plane.BaseUri, "/v1"), RetryPolicy = new ClientRetryPolicy(0) });

            ChatCompletion first = await client.CompleteChatAsync([new UserChatMessage("Translated question")], Deterministic());
            var second = await client.CompleteChatAsync([new UserChatMessage("Translated question")], Deterministic());

            _output.WriteLine($"Translated (OpenAI client, Anthropic provider): provider calls {_upstream.Received.Count} for 2 calls; hit body is OpenAI format: {second.GetRawResponse().Content.ToString().Contains("\"chat.completion\"", StringComparison.Ordinal)}");
            Assert.Single(_upstream.Received);
            Assert.Equal("/v1/messages", _upstream.Received[0].Path);
            Assert.Equal("answer 1", first.Content[0].Text);
            Assert.Equal("answer 1", second.Value.Content[0].Text);
            Assert.Equal(first.Id, second.Value.Id);
            Assert.Contains("\"object\":\"chat.completion\"", second.GetRawResponse().Content.ToString(), StringComparison.Ordinal);
            Assert.Empty(UnexpectedErrors(extProc));
        }
        finally
        {
            File.Delete(secret);
        }
    }

    [Fact]
    public async Task TwoTenants_SameRequest_NeverShareAnAnswerAndNoHeaderTellsHitFromMiss()
    {
        // C1 through the data plane, and C9: hit or miss shows in no response header, only in the access-log metadata.
        var (server, plane) = await StartAsync(Yaml());
        var acme = OpenAi(plane, AcmeKey);
        var beta = OpenAi(plane, BetaKey);
        var random = new Random(9);
        var crossTenant = 0;
        var calls = 0;
        var headerNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var answers = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < 40; i++)
        {
            var question = "Question " + random.Next(6);
            var tenant = random.Next(2) == 0 ? "acme" : "beta";
            var result = await (tenant == "acme" ? acme : beta).CompleteChatAsync([new UserChatMessage(question)], Deterministic());
            calls++;
            var id = result.Value.Id;
            if (answers.TryGetValue(id, out var owner) && owner != tenant)
            {
                crossTenant++;
            }

            answers[id] = tenant;
            foreach (var header in result.GetRawResponse().Headers)
            {
                headerNames.Add(header.Key);
            }
        }

        var revealing = headerNames.Where(h => h.Contains("cache", StringComparison.OrdinalIgnoreCase) || h.Equals("age", StringComparison.OrdinalIgnoreCase)).ToList();
        _output.WriteLine($"C1 (data plane): {calls} SDK calls over 2 tenants and 6 questions: provider calls {_upstream.Received.Count}, cross-tenant hits {crossTenant}");
        _output.WriteLine($"C9: response headers seen: {string.Join(", ", headerNames.Order())}; revealing cache status: {revealing.Count}");
        Assert.Equal(0, crossTenant);
        Assert.Empty(revealing);
        Assert.InRange(_upstream.Received.Count, 2, 12);
        var statuses = (await plane.WaitForExchangesAsync(calls)).Select(e => e.Stream.DynamicMetadata["extproc"].Fields["cache"].StringValue).ToList();
        Assert.Equal(calls - _upstream.Received.Count, statuses.Count(s => s == "hit"));
        Assert.Empty(UnexpectedErrors(server));
    }

    [Fact]
    public async Task PolicyChanged_OldEntriesUnreachable_RevokedKeyRefused()
    {
        // C7: a reload that revokes a key (any policy change) starts new keys; the revoked key gets nothing.
        var (server, plane) = await StartAsync(Yaml());
        var client = OpenAi(plane, AcmeKey);
        await client.CompleteChatAsync([new UserChatMessage("Stable question")], Deterministic());
        await OpenAi(plane, AcmeOtherKey).CompleteChatAsync([new UserChatMessage("Stable question")], Deterministic());
        Assert.Single(_upstream.Received);

        var loads = Loaded(server);
        await File.WriteAllTextAsync(_configPath, Yaml(revokeOther: true));
        var deadline = Stopwatch.StartNew();
        while (Loaded(server) == loads && deadline.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(50);
        }

        Assert.True(Loaded(server) > loads, "the config was not reloaded");
        var stale = 0;
        ChatCompletion after = await client.CompleteChatAsync([new UserChatMessage("Stable question")], Deterministic());
        stale += _upstream.Received.Count == 1 ? 1 : 0;
        var revoked = await Assert.ThrowsAsync<ClientResultException>(() => OpenAi(plane, AcmeOtherKey).CompleteChatAsync([new UserChatMessage("Stable question")], Deterministic()));

        _output.WriteLine($"C7: after the reload: stale-policy hits {stale}; revoked key answered {revoked.Status}");
        Assert.Equal(0, stale);
        Assert.Equal(2, _upstream.Received.Count);
        Assert.Equal(401, revoked.Status);
        Assert.Equal("answer 2", after.Content[0].Text);
        Assert.Empty(UnexpectedErrors(server));

        static int Loaded(ExtProcServer server) => server.Logs.GetSnapshot().Count(r => r.Id.Name == "ConfigLoaded");
    }

    [Fact]
    public async Task Hits_WithTokenAndMoneyLimits_ConsumeNeitherTokensNorMoney()
    {
        // Limits interplay: a hit is admitted (it is a request) and then gives its reservation back before it is
        // answered. Budget $0.16 at $1000/M output tokens: the miss costs 5 tokens = $0.005 and each admission holds
        // 100 tokens = $0.10 until released; the last request holds 155 tokens = $0.155, which fits only if the five
        // hits spent exactly nothing.
        var (server, plane) = await StartAsync(Yaml(budgetUsd: "0.16"));
        var client = OpenAi(plane, AcmeKey);

        await client.CompleteChatAsync([new UserChatMessage("Cached question")], Deterministic());
        var remaining = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var hit = await client.CompleteChatAsync([new UserChatMessage("Cached question")], Deterministic());
            remaining.Add(hit.GetRawResponse().Headers.TryGetValue("x-ratelimit-remaining-tokens", out var value) ? value! : "absent");
        }

        // One token more than what is left if the hits spent nothing is refused (the budget is tight to the micro-dollar)...
        var over = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("A new question")], Deterministic(maxTokens: 156)));

        // ...and exactly what is left is admitted.
        var exact = await client.CompleteChatAsync([new UserChatMessage("A new question")], Deterministic(maxTokens: 155));

        _output.WriteLine($"Limits: 5 hits, x-ratelimit-remaining-tokens on each: {string.Join(", ", remaining)}; money spent by the hits: 0 (a $0.155 hold fit a $0.16 budget after a $0.005 miss, $0.156 did not); provider calls {_upstream.Received.Count}");
        Assert.Equal(429, over.Status);
        Assert.Contains("budget_exhausted", over.Message, StringComparison.Ordinal);
        Assert.Equal(200, exact.GetRawResponse().Status);
        Assert.Equal(2, _upstream.Received.Count);
        Assert.Single(remaining.Distinct());
        Assert.NotEqual("absent", remaining[0]);
        Assert.Empty(UnexpectedErrors(server));
    }

    [Fact]
    public async Task ErrorsAndSampledRequests_AreNeverStoredOrServed()
    {
        await using var failing = await LoopbackUpstream.StartAsync(_ => LoopbackResponse.Json("""{"error":{"message":"overloaded","type":"server_error","code":null}}""", 500));
        await File.WriteAllTextAsync(_configPath, Yaml());
        var extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
            ["ExtProc:ConfigPath"] = _configPath,
        });
        _owned.Add(extProc);
        var plane = await DataPlane.StartAsync(new DataPlaneOptions { Filter = ExtProcFilter(extProc), Clusters = { ["default"] = failing.BaseUri }, DefaultCluster = "default" });
        _owned.Add(plane);
        var client = OpenAi(plane, BetaKey);
        for (var i = 0; i < 2; i++)
        {
            var error = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("Fails")], Deterministic()));
            Assert.Equal(500, error.Status);
        }

        Assert.Equal(2, failing.Received.Count);

        var (_, good) = await StartAsync(Yaml());
        var sampled = OpenAi(good, BetaKey);
        await sampled.CompleteChatAsync([new UserChatMessage("Sampled")], new ChatCompletionOptions { Temperature = 0.7f });
        await sampled.CompleteChatAsync([new UserChatMessage("Sampled")], new ChatCompletionOptions { Temperature = 0.7f });

        Assert.Equal(2, _upstream.Received.Count(r => r.BodyText.Contains("Sampled", StringComparison.Ordinal)));
        var statuses = (await good.WaitForExchangesAsync(2)).Select(e => e.Stream.DynamicMetadata["extproc"].Fields["cache"].StringValue).ToList();
        Assert.Equal(["bypass", "bypass"], statuses);
        _output.WriteLine($"Errors stored 0 (500 twice reached the provider twice); sampled requests bypass: {string.Join(", ", statuses)}");
    }
}
