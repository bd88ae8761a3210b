using System.Text;
using System.Text.Json;
using ExtProc.EnvoyEmulator;
using ExtProc.Tests.Hosting;
using static ExtProc.Tests.Engine.EngineTestKit;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using HeaderSendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.HeaderSendMode;
using ProcessingMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode;
using RequestCase = Envoy.Service.ExtProc.V3.ProcessingRequest.RequestOneofCase;

namespace ExtProc.Tests.Engine;

/// <summary>The real ExtProc process, shared by the tests of one class.</summary>
public sealed class ExtProcServerFixture : IAsyncLifetime
{
    public ExtProcServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ExtProcServer.StartAsync(new Dictionary<string, string?>
    {
        ["ExtProc:Grpc:MaxBodyBytes"] = (256 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture),
    });

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// The engine as Envoy sees it: every exchange runs through the Envoy emulator (Envoy's state machine and
/// checks: spurious replies, mutation rules, content-length) against the real ExtProc over gRPC.
/// </summary>
public sealed class EngineThroughEmulatorTests(ExtProcServerFixture fixture) : IClassFixture<ExtProcServerFixture>
{
    private static readonly byte[] Sample = Encoding.UTF8.GetBytes(SampleChatBody);

    public static TheoryData<int, int> ModesAndSplits()
    {
        var data = new TheoryData<int, int>();
        foreach (var mode in new[] { BodySendMode.Buffered, BodySendMode.Streamed, BodySendMode.BufferedPartial, BodySendMode.FullDuplexStreamed })
        {
            for (var split = 0; split <= Sample.Length; split++)
            {
                data.Add((int)mode, split);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ModesAndSplits))]
    public async Task GovernedChat_EveryBodyModeAndChunkBoundary_UpstreamGetsTheExactBytesAndEnvoyAcceptsEveryReply(int mode, int split)
    {
        var upstream = new CannedUpstream().WithBody("""{"id":"r1"}""");
        using var emulator = Emulator(upstream, (BodySendMode)mode);
        var request = Chat(Sample[..split], Sample[split..]);

        var result = await emulator.ExchangeAsync(request);

        Assert.Equal(200, result.Status);
        Assert.Equal(Sample, result.UpstreamBody);
        Assert.Equal("""{"id":"r1"}""", result.BodyText);
        AssertClean(result);
        var decision = result.DynamicMetadata["extproc"].Fields;
        Assert.Equal("openai.chat", decision["protocol"].StringValue);
        Assert.Equal("gpt-4o-mini", decision["model"].StringValue);
    }

    [Fact]
    public async Task Ungoverned_OneRoundTripNoBodyNoResponsePath()
    {
        var upstream = new CannedUpstream().WithBody("static");
        using var emulator = Emulator(upstream, BodySendMode.Buffered, responseMode: BodySendMode.Buffered);
        var request = TestRequest.Post("/assets/app.js", "console.log(1)");

        var result = await emulator.ExchangeAsync(request);

        Assert.Equal(200, result.Status);
        Assert.Equal("console.log(1)", result.UpstreamBodyText);
        Assert.Equal("static", result.BodyText);
        Assert.Equal([RequestCase.RequestHeaders], result.Sent.Select(m => m.RequestCase));
        AssertClean(result);
    }

    [Fact]
    public async Task WrongContentType_415InOpenAiDialect_UpstreamNeverContacted()
    {
        var upstream = new CannedUpstream();
        using var emulator = Emulator(upstream, BodySendMode.Buffered);
        var request = Chat(Sample);
        request.Headers.Set("content-type", "text/plain");

        var result = await emulator.ExchangeAsync(request);

        Assert.Equal(415, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.Equal("extproc_unsupported_media_type", result.Details);
        Assert.Equal("application/json", result.ResponseHeaders!.Get("content-type"));
        using var json = JsonDocument.Parse(result.Body);
        Assert.Equal("unsupported_media_type", json.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData((int)BodySendMode.Buffered)]
    [InlineData((int)BodySendMode.FullDuplexStreamed)]
    public async Task DuplicateKeyInBody_400AndNothingForwarded(int mode)
    {
        var upstream = new CannedUpstream();
        using var emulator = Emulator(upstream, (BodySendMode)mode);

        var result = await emulator.ExchangeAsync(Chat(Encoding.UTF8.GetBytes("""{"model":"a","mod\u0065l":"b","messages":[]}""")));

        Assert.Equal(400, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.Contains("duplicate_key", result.BodyText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SpoofedInternalHeaders_NeverReachTheUpstream()
    {
        var upstream = new CannedUpstream();
        using var emulator = Emulator(upstream, BodySendMode.Buffered);
        var request = Chat(Sample);
        request.Headers.Add("x-extproc-cluster", "admin").Add("x-extproc-tenant", "other");

        var result = await emulator.ExchangeAsync(request);

        Assert.Equal(200, result.Status);
        Assert.False(result.UpstreamHeaders!.Contains("x-extproc-cluster"));
        // The upstream gets the tenant ExtProc resolved (here the test config's anonymous tenant), never the client's.
        Assert.Equal("public", result.UpstreamHeaders.Get("x-extproc-tenant"));
    }

    [Fact]
    public async Task RequestBodyModeNone_ExtProcAsksForTheBodyWithModeOverride()
    {
        var upstream = new CannedUpstream();
        using var emulator = Emulator(upstream, BodySendMode.None);

        var result = await emulator.ExchangeAsync(Chat(Sample));

        Assert.True(result.Status == 200, string.Join("\n", result.Log));
        Assert.Contains(RequestCase.RequestBody, result.Sent.Select(m => m.RequestCase));
        Assert.Equal("gpt-4o-mini", result.DynamicMetadata["extproc"].Fields["model"].StringValue);
        Assert.Equal(Sample, result.UpstreamBody);
    }

    [Fact]
    public async Task LargeBody_InManyChunks_DuplexAndBuffered_ArriveIntact()
    {
        var content = new string('x', 200_000);
        var body = Encoding.UTF8.GetBytes($$"""{"model":"gpt-4o","messages":[{"role":"user","content":"{{content}}"}]}""");
        var chunks = body.Chunk(16 * 1024).ToArray();
        foreach (var mode in new[] { BodySendMode.Buffered, BodySendMode.FullDuplexStreamed, BodySendMode.Streamed })
        {
            var upstream = new CannedUpstream();
            using var emulator = Emulator(upstream, mode);

            var result = await emulator.ExchangeAsync(Chat(chunks));

            Assert.Equal(200, result.Status);
            Assert.Equal(body, result.UpstreamBody);
            AssertClean(result);
        }
    }

    [Fact]
    public async Task BodyOverExtProcsCap_413BodyTooLarge()
    {
        var body = Encoding.UTF8.GetBytes($$"""{"model":"gpt-4o","messages":[{"role":"user","content":"{{new string('x', 300_000)}}"}]}""");
        var upstream = new CannedUpstream();
        using var emulator = Emulator(upstream, BodySendMode.Buffered);

        var result = await emulator.ExchangeAsync(Chat(body));

        Assert.Equal(413, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.Contains("body_too_large", result.BodyText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData((int)BodySendMode.Buffered)]
    [InlineData((int)BodySendMode.Streamed)]
    [InlineData((int)BodySendMode.BufferedPartial)]
    public async Task ResponseBody_EveryMode_ClientGetsTheUpstreamBytes(int responseMode)
    {
        var upstream = new CannedUpstream().WithHeader("content-type", "text/event-stream")
            .WithBody("data: {\"a\":1}\n\n", "data: {\"a\":2}\n\n", "data: [DONE]\n\n");
        using var emulator = Emulator(upstream, BodySendMode.Buffered, (BodySendMode)responseMode);

        var result = await emulator.ExchangeAsync(Chat(Sample));

        Assert.Equal(200, result.Status);
        Assert.Equal("data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n", result.BodyText);
        AssertClean(result);
    }

    [Fact]
    public async Task ClientGoesAwayMidBody_ExtProcStaysHealthyAndQuiet()
    {
        var upstream = new CannedUpstream();
        using var emulator = Emulator(upstream, BodySendMode.Streamed);
        var gate = new TaskCompletionSource();
        var stream = emulator.Start(new DownstreamRequest
        {
            Headers = Chat(Sample).Headers,
            Body = SlowBody(gate.Task),
        });

        await Task.Delay(100);
        stream.Abort();
        gate.SetResult();
        await stream.Completion.WaitAsync(TimeSpan.FromSeconds(5));

        var after = await emulator.ExchangeAsync(Chat(Sample));
        Assert.Equal(200, after.Status);
        Assert.True(fixture.Server.Errors().Count == 0, string.Join("\n", fixture.Server.Errors().Select(e => e.Message + " " + e.Exception)));
    }

    private static async IAsyncEnumerable<HttpFrame> SlowBody(Task gate)
    {
        yield return new DataFrame(Sample.AsMemory(0, 10), false);
        await gate;
        yield return new DataFrame(Sample.AsMemory(10), true);
    }

    private EnvoyEmulator.EnvoyEmulator Emulator(IUpstream upstream, BodySendMode requestMode, BodySendMode responseMode = BodySendMode.None)
    {
        var config = new ExtProcFilterConfig
        {
            ProcessingMode = new ProcessingMode
            {
                RequestHeaderMode = HeaderSendMode.Send,
                ResponseHeaderMode = HeaderSendMode.Send,
                RequestBodyMode = requestMode,
                ResponseBodyMode = responseMode,
                // Duplex requires trailers SEND (Envoy's load-time rule).
                RequestTrailerMode = requestMode == BodySendMode.FullDuplexStreamed ? HeaderSendMode.Send : HeaderSendMode.Skip,
                ResponseTrailerMode = responseMode == BodySendMode.FullDuplexStreamed ? HeaderSendMode.Send : HeaderSendMode.Skip,
            },
            AllowModeOverride = true,
            // Generous: these tests prove message order and content, not latency, on a busy 2-core machine.
            MessageTimeout = TimeSpan.FromSeconds(5),
            MaxMessageTimeout = TimeSpan.FromSeconds(10),
        };
        config.GrpcService.Add(new Uri($"http://127.0.0.1:{fixture.Server.GrpcPort}"));
        config.MetadataOptions.ReceivingUntyped.Add("extproc");
        return new EnvoyEmulator.EnvoyEmulator(config, upstream);
    }

    private static TestRequest Chat(params byte[][] chunks)
    {
        var headers = TestRequest.DefaultHeaders("POST", "/v1/chat/completions");
        headers.Add("content-type", "application/json");
        var nonEmpty = chunks.Where(c => c.Length > 0).ToList();
        return new TestRequest { Headers = headers, BodyChunks = nonEmpty, End = nonEmpty.Count == 0 ? BodyEnd.EmptyFinalData : BodyEnd.OnLastChunk };
    }

    private static void AssertClean(ExchangeResult result)
    {
        Assert.Equal(0, result.Stats[ExtProcStats.SpuriousMsgsReceived]);
        Assert.Equal(0, result.Stats[ExtProcStats.StreamsFailed]);
        Assert.Equal(0, result.Stats[ExtProcStats.MessageTimeouts]);
        Assert.Equal(0, result.Stats[ExtProcStats.RejectedHeaderMutations]);
        Assert.False(result.Reset, result.ResetReason);
    }
}
