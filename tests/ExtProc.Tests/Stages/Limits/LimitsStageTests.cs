using Envoy.Service.ExtProc.V3;
using ExtProc.Pipeline;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Engine;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;
using static ExtProc.Tests.Engine.EngineTestKit;

namespace ExtProc.Tests.Stages.Limits;

/// <summary>The limits stage through the real engine, with the in-process store and a fake clock.</summary>
public sealed class LimitsStageTests
{
    private static readonly string Key = ApiKeyFormat.NewKey("lim-main");
    private readonly ITestOutputHelper _output;

    public LimitsStageTests(ITestOutputHelper output) => _output = output;

    // 1 token of gpt-4o-mini costs $0.001 here, so $1.00 buys 1,000 tokens.
    private static string Yaml(string rules, string extra = "") => $$"""
        version: 1
        tenants:
          lim:
            policy:
              limits: [{{rules}}]
            keys:
              - id: lim-main
                hash: "{{ApiKeyFormat.HashText(Key)}}"
        limits:
          time_zone: UTC
          default_max_output_tokens: 100
          prices:
            "gpt-4o*": { input: "1000", output: "1000" }
          rules:
            - { name: rpm, kind: requests, limit: "3", window: 1m }
            - { name: tpm, kind: tokens, limit: "100000", window: minute }
            - { name: daily, kind: budget, usd: "1.00", period: day }
            - { name: inflight, kind: concurrency, limit: "2" }
        {{extra}}
        """;

    private static string Chat(int maxTokens = 100, bool stream = false) =>
        $$"""{"model":"gpt-4o-mini","max_tokens":{{maxTokens}},"stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"Say hi"}]}""";

    private static string Usage(int prompt, int completion) =>
        $$$"""{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":{{{prompt}}},"completion_tokens":{{{completion}}},"total_tokens":{{{prompt + completion}}}}}""";

    /// <summary>Request headers and body; returns the processor (for the response) and the last reply.</summary>
    private static async Task<(Envoy.StreamProcessor Processor, RecordingWriter Writer)> AdmitAsync(PipelineSnapshot snapshot, string body, string path = "/v1/chat/completions")
    {
        var (processor, writer) = Processor(snapshot);
        await processor.HandleAsync(RequestHeaders(path, extra: ("authorization", "Bearer " + Key)));
        await processor.HandleAsync(RequestBody(Utf8(body), endOfStream: true));
        return (processor, writer);
    }

    private static async Task CompleteAsync(Envoy.StreamProcessor processor, string contentType, string body, bool endOfStream = true)
    {
        await processor.HandleAsync(ResponseHeaders(200, contentType));
        await processor.HandleAsync(ResponseBody(Utf8(body), endOfStream));
        await processor.EndAsync();
    }

    private static bool Refused(RecordingWriter writer, out ImmediateResponse response)
    {
        response = writer.Responses[^1].ImmediateResponse;
        return writer.Responses[^1].ResponseCase == ProcessingResponse.ResponseOneofCase.ImmediateResponse;
    }

    [Fact]
    public async Task Requests_OverLimit_429InDialectWithRetryAfterAndHeaders()
    {
        var snapshot = Tenancy.TestTenancy.BuildPipeline(Yaml("rpm"), time: new FakeTimeProvider(DateTimeOffset.Parse("2026-11-24T10:00:30Z")));
        for (var i = 0; i < 3; i++)
        {
            var (processor, writer) = await AdmitAsync(snapshot, Chat());
            Assert.False(Refused(writer, out _));
            await processor.HandleAsync(ResponseHeaders(200));
            var headers = writer.Responses[^1].ResponseHeaders.Response.HeaderMutation;
            Assert.Equal("3", Header(headers, "x-ratelimit-limit-requests"));
            Assert.Equal((2 - i).ToString(System.Globalization.CultureInfo.InvariantCulture), Header(headers, "x-ratelimit-remaining-requests"));
            Assert.Equal("30s", Header(headers, "x-ratelimit-reset-requests"));
        }

        var (_, refusedWriter) = await AdmitAsync(snapshot, Chat());
        Assert.True(Refused(refusedWriter, out var refusal));
        Assert.Equal(429, (int)refusal.Status.Code);
        Assert.Contains("\"code\":\"rate_limited\"", refusal.Body.ToStringUtf8());
        Assert.Contains("\"type\":\"rate_limit_error\"", refusal.Body.ToStringUtf8());
        Assert.Equal("30", Header(refusal.Headers, "retry-after"));
        Assert.Equal("0", Header(refusal.Headers, "x-ratelimit-remaining-requests"));

        // Anthropic's dialect for the same refusal.
        var (_, anthropic) = await AdmitAsync(snapshot, """{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", "/v1/messages");
        Assert.True(Refused(anthropic, out var anthropicRefusal));
        Assert.Contains("\"error_code\":\"rate_limited\"", anthropicRefusal.Body.ToStringUtf8());
    }

    [Fact]
    public async Task Budget_OneDollarPerDay_RefusedWhenSettledPlusReservedExceedsThenAdmittedNextDay()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-24T10:00:00Z"));
        var snapshot = Tenancy.TestTenancy.BuildPipeline(Yaml("daily"), time: clock);

        // 30 concurrent agents each reserve (prompt estimate + 100 output tokens ≈ $0.11) before any settles.
        var admissions = await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => Task.Run(() => AdmitAsync(snapshot, Chat()))));
        var admitted = admissions.Where(a => !Refused(a.Writer, out _)).ToList();
        var refusals = admissions.Where(a => Refused(a.Writer, out _)).Select(a => a.Writer.Responses[^1].ImmediateResponse).ToList();
        Assert.NotEmpty(refusals);
        Assert.All(refusals, r => Assert.Contains("\"code\":\"budget_exhausted\"", r.Body.ToStringUtf8()));

        // Each settles at $0.10 (10 prompt + 90 completion tokens); sequential requests then fill the rest.
        decimal spent = 0;
        foreach (var (processor, _) in admitted)
        {
            await CompleteAsync(processor, "application/json", Usage(10, 90));
            spent += 0.10m;
        }

        var more = 0;
        while (more < 20)
        {
            var (processor, writer) = await AdmitAsync(snapshot, Chat());
            if (Refused(writer, out var refusal))
            {
                Assert.Contains("budget_exhausted", refusal.Body.ToStringUtf8());
                break;
            }

            await CompleteAsync(processor, "application/json", Usage(10, 90));
            spent += 0.10m;
            more++;
        }

        _output.WriteLine($"L9 / money: {admitted.Count} of 30 concurrent admitted, then {more} sequential; spent ${spent:F2} of $1.00, overspend ${Math.Max(0, spent - 1.00m):F2} (bar: $0.00, reservations hold max output)");
        Assert.True(spent <= 1.00m);
        Assert.True(spent >= 0.80m, $"spent only {spent}: reservations should be released at settlement");

        clock.Advance(TimeSpan.FromHours(14));
        var (nextDay, nextWriter) = await AdmitAsync(snapshot, Chat());
        Assert.False(Refused(nextWriter, out _));
        await CompleteAsync(nextDay, "application/json", Usage(10, 90));
    }

    [Fact]
    public async Task Tokens_SettledFromBufferedAndStreamedUsage_CutStreamChargedAbortReleased()
    {
        var snapshot = Tenancy.TestTenancy.BuildPipeline(Yaml("tpm"), time: new FakeTimeProvider(DateTimeOffset.Parse("2026-11-24T10:00:00Z")));

        // Buffered OpenAI usage: 1000 tokens.
        var (p1, _) = await AdmitAsync(snapshot, Chat());
        await CompleteAsync(p1, "application/json", Usage(400, 600));

        // Streamed Anthropic usage: input in message_start, cumulative output in message_delta: 300 + 20 + 5.
        var (p2, _) = await AdmitAsync(snapshot, """{"model":"claude-3-5-sonnet","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}""", "/v1/messages");
        await CompleteAsync(p2, "text/event-stream",
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":300,\"cache_read_input_tokens\":20,\"output_tokens\":1}}}\n\n"
            + "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\n");

        // Aborted before any response: released.
        var (p3, _) = await AdmitAsync(snapshot, Chat());
        await p3.EndAsync();

        // Cut stream, no usage yet: charged its prompt estimate plus the generated text.
        var (p4, _) = await AdmitAsync(snapshot, Chat(stream: true));
        await CompleteAsync(p4, "text/event-stream",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there, how are you\"}}]}\n\n", endOfStream: false);

        var (probe, probeWriter) = await AdmitAsync(snapshot, Chat(maxTokens: 1));
        await probe.HandleAsync(ResponseHeaders(200));
        var remaining = long.Parse(Header(probeWriter.Responses[^1].ResponseHeaders.Response.HeaderMutation, "x-ratelimit-remaining-tokens"), System.Globalization.CultureInfo.InvariantCulture);
        var used = 100_000 - remaining;
        _output.WriteLine($"L8 (engine): counter after 4 requests + probe = {used} tokens (1000 buffered + 325 streamed + 0 aborted + cut stream estimate + probe estimate)");
        Assert.InRange(used, 1000 + 325 + 6, 1000 + 325 + 60);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(4096)]
    public async Task Tokens_StreamedUsageInAnyChunking_SettledWithoutHoldingTheStream(int chunkSize)
    {
        var snapshot = Tenancy.TestTenancy.BuildPipeline(Yaml("tpm"), time: new FakeTimeProvider(DateTimeOffset.Parse("2026-11-24T10:00:00Z")));
        var stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n"
            + "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":700,\"completion_tokens\":77,\"total_tokens\":777,\"prompt_tokens_details\":{\"cached_tokens\":100}}}\n\n"
            + "data: [DONE]\n\n";
        var bytes = Utf8(stream);
        var (processor, writer) = await AdmitAsync(snapshot, Chat(stream: true));
        await processor.HandleAsync(ResponseHeaders(200, "text/event-stream"));
        Assert.Equal(global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode.Streamed, writer.Responses[^1].ModeOverride.ResponseBodyMode);
        for (var offset = 0; offset < bytes.Length; offset += chunkSize)
        {
            var take = Math.Min(chunkSize, bytes.Length - offset);
            await processor.HandleAsync(ResponseBody(bytes.AsSpan(offset, take), endOfStream: offset + take == bytes.Length));
        }

        var last = writer.Responses[^1];
        Assert.Equal(777, last.DynamicMetadata.Fields["extproc"].StructValue.Fields["input_tokens"].NumberValue
            + last.DynamicMetadata.Fields["extproc"].StructValue.Fields["output_tokens"].NumberValue);
        Assert.Equal(100, last.DynamicMetadata.Fields["extproc"].StructValue.Fields["cached_input_tokens"].NumberValue);
        Assert.Null(processor.Context!.ResponseBody.Content.Length > chunkSize ? "held" : null);
        await processor.EndAsync();

        var (probe, probeWriter) = await AdmitAsync(snapshot, Chat(maxTokens: 1));
        await probe.HandleAsync(ResponseHeaders(200));
        var remaining = long.Parse(Header(probeWriter.Responses[^1].ResponseHeaders.Response.HeaderMutation, "x-ratelimit-remaining-tokens"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(100_000 - remaining, 777 + 1, 777 + 20);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(13)]
    [InlineData(4096)]
    public async Task OpenAiStream_UsageNotAsked_ForcedOnRequestAndStrippedFromStream(int chunkSize)
    {
        var snapshot = Tenancy.TestTenancy.BuildPipeline(Yaml("tpm"), time: new FakeTimeProvider(DateTimeOffset.Parse("2026-11-24T10:00:00Z")));
        var (processor, writer) = await AdmitAsync(snapshot, Chat(stream: true));
        var forwarded = writer.Responses[^1].RequestBody.Response.BodyMutation.Body.ToStringUtf8();
        using (var json = System.Text.Json.JsonDocument.Parse(forwarded))
        {
            Assert.True(json.RootElement.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
            Assert.Equal("gpt-4o-mini", json.RootElement.GetProperty("model").GetString());
        }

        var content = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
            + "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        var stream = content + "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":5,\"total_tokens\":55}}\n\n" + "data: [DONE]\n\n";
        var bytes = Utf8(stream);
        await processor.HandleAsync(ResponseHeaders(200, "text/event-stream"));
        var client = new System.Text.StringBuilder();
        for (var offset = 0; offset < bytes.Length; offset += chunkSize)
        {
            var take = Math.Min(chunkSize, bytes.Length - offset);
            await processor.HandleAsync(ResponseBody(bytes.AsSpan(offset, take), endOfStream: offset + take == bytes.Length));
            var reply = writer.Responses[^1].ResponseBody.Response;
            client.Append(reply.BodyMutation is { } mutation ? mutation.Body.ToStringUtf8() : System.Text.Encoding.UTF8.GetString(bytes, offset, take));
        }

        Assert.Equal(content + "data: [DONE]\n\n", client.ToString());
        var last = writer.Responses[^1].DynamicMetadata.Fields["extproc"].StructValue.Fields;
        Assert.Equal(50, last["input_tokens"].NumberValue);
        Assert.Equal(5, last["output_tokens"].NumberValue);
        await processor.EndAsync();
    }

    [Fact]
    public async Task OpenAiStream_UsageAsked_RequestAndStreamUntouched()
    {
        var snapshot = Tenancy.TestTenancy.BuildPipeline(Yaml("tpm"), time: new FakeTimeProvider(DateTimeOffset.Parse("2026-11-24T10:00:00Z")));
        var body = """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}""";
        var (processor, writer) = await AdmitAsync(snapshot, body);
        Assert.True(writer.Responses[^1].ResponseCase == ProcessingResponse.ResponseOneofCase.RequestBody, writer.Responses[^1].ToString());
        Assert.Null(writer.Responses[^1].RequestBody.Response?.BodyMutation);
        await processor.HandleAsync(ResponseHeaders(200, "text/event-stream"));
        await processor.HandleAsync(ResponseBody(Utf8("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"), endOfStream: true));
        Assert.Null(writer.Responses[^1].ResponseBody.Response?.BodyMutation);
        await processor.EndAsync();
    }
}
