using System.Text.Json;
using Envoy.Service.ExtProc.V3;
using ExtProc.Tests.Tenancy;
using Microsoft.Extensions.Time.Testing;
using static ExtProc.Tests.Engine.EngineTestKit;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;

namespace ExtProc.Tests.Routing;

/// <summary>The routing stage through the real engine: the replies Envoy would act on.</summary>
public sealed class RoutingStageTests : IDisposable
{
    private readonly RoutingKit _kit = new();

    public void Dispose() => _kit.Dispose();

    private static string Chat(string model, string extra = "") =>
        $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Hi"}]{{extra}}}""";

    private static async Task<(ProcessingResponse Headers, ProcessingResponse Body)> SendAsync(Pipeline.PipelineSnapshot snapshot, string path, string body,
        params (string, string)[] headers)
    {
        var (processor, writer) = Processor(snapshot);
        await processor.HandleAsync(RequestHeaders(path, extra: headers));
        await processor.HandleAsync(RequestBody(Utf8(body), endOfStream: true));
        return (writer.Responses[0], writer.Responses[1]);
    }

    private static Dictionary<string, string> Sets(ProcessingResponse reply)
    {
        var common = reply.RequestBody.Response;
        return common.HeaderMutation.SetHeaders.ToDictionary(h => h.Header.Key, h => h.Header.RawValue.ToStringUtf8());
    }

    [Fact]
    public async Task OpenAiRequest_RouteMode_ClusterHeaderClearRouteCachePathCredentialAndModelInTheBodyReply()
    {
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml(weights: "1, 1"));

        var (_, reply) = await SendAsync(snapshot, "/v1/chat/completions", Chat("gpt-4o"),
            ("authorization", "Bearer " + TestTenancy.BetaKey));

        var common = reply.RequestBody.Response;
        Assert.True(common.ClearRouteCache);
        var sets = Sets(reply);
        var cluster = sets["x-extproc-cluster"];
        Assert.Contains(cluster, new[] { "openai-us", "openai-eu" });
        var (path, secret, model) = cluster == "openai-us"
            ? ("/v1/chat/completions", RoutingKit.OpenAiUsSecret, "gpt-4o-2024-08-06")
            : ("/eu/v1/chat/completions", RoutingKit.OpenAiEuSecret, "gpt-4o-eu");
        Assert.Equal(path, sets[":path"]);
        Assert.Equal("Bearer " + secret, sets["authorization"]);
        var body = common.BodyMutation.Body.ToStringUtf8();
        Assert.Equal(Chat(model), body);
        Assert.Equal(body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), sets["content-length"]);
        var metadata = reply.DynamicMetadata.Fields["extproc"].StructValue.Fields;
        Assert.Equal(cluster, metadata["provider"].StringValue);
        Assert.Equal(model, metadata["target_model"].StringValue);
        Assert.Equal(1, metadata["attempt"].NumberValue);
    }

    [Fact]
    public async Task Alias_AnthropicClient_XApiKeyAndVersionInjected_ModelRewrittenToUpstreamName()
    {
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml());
        const string body = """{"model":"claude-latest","max_tokens":16,"messages":[{"role":"user","content":"Hi"}]}""";

        var (_, reply) = await SendAsync(snapshot, "/v1/messages", body, ("x-api-key", TestTenancy.BetaKey));

        var sets = Sets(reply);
        Assert.Equal("anthropic", sets["x-extproc-cluster"]);
        Assert.Equal("/v1/messages", sets[":path"]);
        Assert.Equal(RoutingKit.AnthropicSecret, sets["x-api-key"]);
        Assert.Equal("2023-06-01", sets["anthropic-version"]);
        Assert.Equal(body.Replace("claude-latest", "claude-sonnet-4-5-20250929", StringComparison.Ordinal), reply.RequestBody.Response.BodyMutation.Body.ToStringUtf8());
    }

    [Fact]
    public async Task Gemini_ModelInThePath_PathRewrittenBodyUntouchedGoogKeyInjected()
    {
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml());
        const string body = """{"contents":[{"role":"user","parts":[{"text":"Hi"}]}]}""";

        var (_, reply) = await SendAsync(snapshot, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", body,
            ("x-goog-api-key", TestTenancy.BetaKey));

        var sets = Sets(reply);
        Assert.Equal("gemini", sets["x-extproc-cluster"]);
        Assert.Equal("/v1beta/models/gemini-2.0-flash-001:streamGenerateContent?alt=sse", sets[":path"]);
        Assert.Equal(RoutingKit.GeminiSecret, sets["x-goog-api-key"]);
        Assert.Null(reply.RequestBody.Response.BodyMutation);
    }

    [Fact]
    public async Task SameUpstreamModelName_BodyPassesUntouched()
    {
        var yaml = _kit.Yaml().Replace("model: small-1", "model: small", StringComparison.Ordinal);
        var snapshot = TestTenancy.BuildPipeline(yaml);

        var (_, reply) = await SendAsync(snapshot, "/v1/chat/completions", Chat("small"));

        Assert.Equal("notools", Sets(reply)["x-extproc-cluster"]);
        Assert.Null(reply.RequestBody.Response.BodyMutation);
    }

    [Fact]
    public async Task TenantOwnKey_UsedForItsProviderOnly_OtherTenantGetsTheProviderKey()
    {
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml(weights: "1000, 1"));
        var acmeSeen = new HashSet<string>();
        var betaSeen = new HashSet<string>();
        for (var i = 0; i < 40; i++)
        {
            var (_, acme) = await SendAsync(snapshot, "/v1/chat/completions", Chat("gpt-4o"), ("authorization", "Bearer " + TestTenancy.AcmeKey));
            var (_, beta) = await SendAsync(snapshot, "/v1/chat/completions", Chat("gpt-4o"), ("authorization", "Bearer " + TestTenancy.BetaKey));
            var a = Sets(acme);
            var b = Sets(beta);
            acmeSeen.Add(a["x-extproc-cluster"] + " " + a["authorization"]);
            betaSeen.Add(b["x-extproc-cluster"] + " " + b["authorization"]);
        }

        // Acme's own key goes to openai-us only; beta never gets it, whichever target it lands on.
        Assert.All(acmeSeen, s => Assert.True(s is "openai-us Bearer " + RoutingKit.AcmeOwnOpenAiSecret or "openai-eu Bearer " + RoutingKit.OpenAiEuSecret, s));
        Assert.Contains("openai-us Bearer " + RoutingKit.AcmeOwnOpenAiSecret, acmeSeen);
        Assert.All(betaSeen, s => Assert.DoesNotContain(RoutingKit.AcmeOwnOpenAiSecret, s, StringComparison.Ordinal));
        Assert.Contains("openai-us Bearer " + RoutingKit.OpenAiUsSecret, betaSeen);
    }

    [Fact]
    public async Task EuOnlyTenant_NeverRoutedOutsideTheEu_AndRefusedWhenAModelHasNoEuTarget()
    {
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml(weights: "1000, 1"));
        for (var i = 0; i < 30; i++)
        {
            var (_, reply) = await SendAsync(snapshot, "/v1/chat/completions", Chat("gpt-4o"), ("authorization", "Bearer " + RoutingKit.EuKey));
            Assert.Equal("openai-eu", Sets(reply)["x-extproc-cluster"]);
        }

        var (_, refused) = await SendAsync(snapshot, "/v1/messages", """{"model":"claude-sonnet","max_tokens":1,"messages":[]}""",
            ("x-api-key", RoutingKit.EuKey));
        AssertError(refused, 403, "no_permitted_target");
    }

    [Fact]
    public async Task ToolsPresent_ToolLessTargetSkipped_NextPriorityServes()
    {
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml());
        const string tools = ""","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]""";

        var (_, plain) = await SendAsync(snapshot, "/v1/chat/completions", Chat("small"));
        var (_, withTools) = await SendAsync(snapshot, "/v1/chat/completions", Chat("small", tools));
        var (_, tooLong) = await SendAsync(snapshot, "/v1/chat/completions", Chat("small", ",\"max_tokens\":5000"));

        Assert.Equal("notools", Sets(plain)["x-extproc-cluster"]);
        Assert.Equal("openai-us", Sets(withTools)["x-extproc-cluster"]);
        Assert.Equal("openai-us", Sets(tooLong)["x-extproc-cluster"]);
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"gpt-5-turbo","messages":[]}""", 404, "model_not_found")]
    [InlineData("/v1/messages", """{"model":"nope","max_tokens":1,"messages":[]}""", 404, "model_not_found")]
    [InlineData("/v1beta/models/nope:generateContent", """{"contents":[]}""", 404, "model_not_found")]
    [InlineData("/v1/chat/completions", """{"model":"gpt-4o","messages":[],"api_base":"http://evil.test"}""", 400, "unsupported_field")]
    [InlineData("/v1/chat/completions", """{"model":"gpt-4o","messages":[],"Base_URL":"http://evil.test"}""", 400, "unsupported_field")]
    [InlineData("/v1beta/models/gpt-4o:generateContent", """{"contents":[]}""", 400, "no_capable_target")]
    public async Task BadRequest_ErrorInTheCallersDialectNothingRouted(string path, string body, int status, string code)
    {
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml());

        var (_, reply) = await SendAsync(snapshot, path, body);

        AssertError(reply, status, code);
        Assert.DoesNotContain("gpt-4o-ha", reply.ImmediateResponse.Body.ToStringUtf8(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CustomHostHeaders_Removed()
    {
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml());

        var (headers, _) = await SendAsync(snapshot, "/v1/chat/completions", Chat("gpt-4o"), ("x-portkey-custom-host", "http://evil.test"));

        Assert.Contains("x-portkey-custom-host", headers.RequestHeaders.Response.HeaderMutation.RemoveHeaders);
    }

    [Fact]
    public async Task FailoverModel_DownstreamNamesTheFailoverClusterAndCarriesTheDecision_NoRewrite()
    {
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml());

        var (_, reply) = await SendAsync(snapshot, "/v1/chat/completions", Chat("gpt-4o-ha"), ("authorization", "Bearer " + RoutingKit.EuKey));

        var sets = Sets(reply);
        Assert.True(reply.RequestBody.Response.ClearRouteCache);
        Assert.Equal("gpt-failover", sets["x-extproc-cluster"]);
        Assert.Equal("t=euco;k=euco-main;m=gpt-4o-ha;p=openai-eu", sets["x-extproc-route"]);
        Assert.False(sets.ContainsKey(":path"));
        Assert.Null(reply.RequestBody.Response.BodyMutation);
    }

    [Fact]
    public async Task PassiveHealth_FailingTargetCoolsDown_SkippedThenProbedAfterCooldown()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-24T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml(weights: "1000, 1", extra: """
            routing:
              health: { failures: 2, window: 10s, cooldown: 30s }
            """), time: time);

        async Task<string> RouteAsync(int status)
        {
            var (processor, writer) = Processor(snapshot);
            await processor.HandleAsync(RequestHeaders("/v1/chat/completions"));
            await processor.HandleAsync(RequestBody(Utf8(Chat("gpt-4o")), endOfStream: true));
            var cluster = Sets(writer.Responses[1])["x-extproc-cluster"];
            await processor.HandleAsync(ResponseHeaders(status));
            Assert.Equal(cluster, EngineHeader(writer.Responses[2], "x-extproc-provider"));
            return cluster;
        }

        // openai-us takes nearly all traffic (1000:1) until it fails twice within the window.
        Assert.Equal("openai-us", await RouteAsync(429));
        Assert.Equal("openai-us", await RouteAsync(503));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("openai-eu", await RouteAsync(200));
        }

        time.Advance(TimeSpan.FromSeconds(31));

        // Cooldown over: one probe goes to openai-us; it fails, so the target is out again at once.
        Assert.Equal("openai-us", await RouteAsync(500));
        Assert.Equal("openai-eu", await RouteAsync(200));
        time.Advance(TimeSpan.FromSeconds(31));

        // The next probe succeeds and the target is back.
        Assert.Equal("openai-us", await RouteAsync(200));
        Assert.Equal("openai-us", await RouteAsync(200));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TranslatedSseAnswer_StreamedOrFullDuplex_EveryChunkAnsweredInTheClientsFormat(bool duplex)
    {
        // OpenAI client, Anthropic target: the answer comes back event by event in OpenAI's stream format.
        var snapshot = TestTenancy.BuildPipeline(_kit.Yaml());
        var (processor, writer) = Processor(snapshot);
        var responseMode = duplex ? BodySendMode.FullDuplexStreamed : BodySendMode.None;
        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", responseMode: responseMode));
        await processor.HandleAsync(RequestBody(Utf8(Chat("claude-sonnet", ",\"stream\":true")), endOfStream: true));
        var request = writer.Responses[1].RequestBody.Response;
        Assert.Contains("\"max_tokens\"", request.BodyMutation.Body.ToStringUtf8(), StringComparison.Ordinal);
        Assert.Equal("/v1/messages", Sets(writer.Responses[1])[":path"]);

        await processor.HandleAsync(ResponseHeaders(200, "text/event-stream"));
        var headers = writer.Responses[2];
        if (!duplex)
        {
            Assert.Equal(BodySendMode.Streamed, headers.ModeOverride.ResponseBodyMode);
        }

        string[] events =
        [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Bonjour\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ];
        for (var i = 0; i < events.Length; i++)
        {
            await processor.HandleAsync(ResponseBody(Utf8(events[i]), endOfStream: i == events.Length - 1));
        }

        var replies = writer.Responses.Skip(3).ToList();
        Assert.Equal(events.Length, replies.Count);
        var client = string.Concat(replies.Select(r => duplex
            ? r.ResponseBody.Response.BodyMutation.StreamedResponse.Body.ToStringUtf8()
            : r.ResponseBody.Response.BodyMutation.Body.ToStringUtf8()));
        Assert.Contains("\"object\":\"chat.completion.chunk\"", client, StringComparison.Ordinal);
        Assert.Contains("\"content\":\"Bonjour\"", client, StringComparison.Ordinal);
        Assert.Contains("\"finish_reason\":\"stop\"", client, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", client, StringComparison.Ordinal);
        Assert.DoesNotContain("message_start", client, StringComparison.Ordinal);
    }

    private static string EngineHeader(ProcessingResponse reply, string name) =>
        reply.ResponseHeaders.Response.HeaderMutation.SetHeaders.Single(h => h.Header.Key == name).Header.RawValue.ToStringUtf8();

    private static void AssertError(ProcessingResponse reply, int status, string code)
    {
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ImmediateResponse, reply.ResponseCase);
        Assert.Equal(status, (int)reply.ImmediateResponse.Status.Code);
        Assert.Contains(code, reply.ImmediateResponse.Body.ToStringUtf8(), StringComparison.Ordinal);
        using var json = JsonDocument.Parse(reply.ImmediateResponse.Body.Memory);
        Assert.True(json.RootElement.TryGetProperty("error", out _));
    }
}
