using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Tests.Hosting;
using static ExtProc.Tests.Harness.HarnessKit;
using Kind = Envoy.Service.ExtProc.V3.ProcessingRequest.RequestOneofCase;

namespace ExtProc.Tests.Harness;

/// <summary>
/// Real HTTP clients → data plane (HCM + emulated ext_proc filter + router) → real loopback upstreams, with
/// the real ExtProc service hosted in-process as the processor.
/// </summary>
public sealed class DataPlaneTests
{
    private const string ChatBody = "{\"model\":\"gpt-4o-mini\",  \"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9llo \u2603\"}],\"temperature\":0.2}\n";

    [Fact]
    public async Task UngovernedGet_PassesUntouched_OneRequestHeadersRoundTrip()
    {
        await using var extProc = await StartExtProcAsync();
        await using var upstream = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("plain"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["default"] = upstream.BaseUri },
        });
        using var client = plane.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/static/app.js?v=3");
        request.Headers.Add("x-custom", "one");
        request.Headers.Add("accept", "text/plain");

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("plain", await response.Content.ReadAsStringAsync());
        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
        var received = Assert.Single(upstream.Received);
        Assert.Equal("GET", received.Method);
        Assert.Equal("/static/app.js?v=3", received.Path);
        Assert.Empty(received.Body);

        // Untouched: exactly the post-HCM headers the filter chain saw, with :authority as host.
        Assert.Equal(Plain(exchange.RequestHeaders), Plain(received.Headers, "host"));
        Assert.Equal(exchange.RequestHeaders.Get(":authority"), received.Headers.Get("host"));
        Assert.Equal("one", received.Headers.Get("x-custom"));

        // One round trip: request_headers out, its reply (with the skip-everything override) in, nothing else.
        Assert.Equal([Kind.RequestHeaders], SentKinds(exchange.Stream));
        Assert.Equal(1, exchange.Stream.Stats[ExtProcStats.StreamMsgsSent]);
        Assert.Equal(1, exchange.Stream.Stats[ExtProcStats.StreamMsgsReceived]);
        var reply = Assert.Single(exchange.Stream.Log, e => e.Kind == ExchangeLogKind.Received).Response!;
        Assert.Equal(global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.HeaderSendMode.Skip, reply.ModeOverride.ResponseHeaderMode);
        Assert.Empty(UnexpectedErrors(extProc));
    }

    [Fact]
    public async Task HcmHeaders_Http1Request_PseudoHeadersFirstHostFoldedRequestIdAdded()
    {
        await using var upstream = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("ok"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Clusters = { ["default"] = upstream.BaseUri },
            UseRemoteAddress = true,
        });
        using var client = plane.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/p");
        request.Headers.Add("X-Mixed-Case", "v");
        request.Headers.Add("x-forwarded-proto", "https");

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("envoy", response.Headers.Server.ToString());
        var headers = Assert.Single(await plane.WaitForExchangesAsync(1)).RequestHeaders;
        Assert.Equal([":scheme", ":method", ":authority", ":path"], headers.Keys().Take(4));
        Assert.Equal("http", headers.Get(":scheme"));
        Assert.Equal($"127.0.0.1:{plane.BaseUri.Port}", headers.Get(":authority"));
        Assert.False(headers.Contains("host"));
        Assert.Equal("v", headers.Get("x-mixed-case"));
        Assert.True(Guid.TryParse(headers.Get("x-request-id"), out _));
        Assert.Equal("127.0.0.1", headers.Get("x-forwarded-for"));

        // An edge proxy overwrites the client's claim about the scheme.
        Assert.Equal(["http"], headers.GetAll("x-forwarded-proto"));
    }

    [Fact]
    public async Task OpenAiChatPost_BufferedBody_ReachesUpstreamByteIdenticalWithMetadata()
    {
        await using var extProc = await StartExtProcAsync();
        await using var upstream = await LoopbackUpstream.StartAsync(LoopbackResponse.Json("{\"id\":\"chatcmpl-1\"}"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["default"] = upstream.BaseUri },
        });
        using var client = plane.CreateClient(http2: true);
        var body = Encoding.UTF8.GetBytes(ChatBody);
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");

        using var response = await client.PostAsync("/v1/chat/completions", content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new Version(2, 0), response.Version);
        Assert.Equal("{\"id\":\"chatcmpl-1\"}", await response.Content.ReadAsStringAsync());
        var received = Assert.Single(upstream.Received);
        Assert.Equal(body, received.Body);
        Assert.Equal(body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), received.Headers.Get("content-length"));

        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
        Assert.Equal([Kind.RequestHeaders, Kind.RequestBody, Kind.ResponseHeaders], SentKinds(exchange.Stream));
        var sentBody = exchange.Stream.Log.Single(e => e.Request?.RequestCase == Kind.RequestBody).Request!.RequestBody;
        Assert.True(sentBody.EndOfStream);
        Assert.Equal(body, sentBody.Body.ToByteArray());
        var metadata = exchange.Stream.DynamicMetadata["extproc"];
        Assert.Equal("openai.chat", metadata.Fields["protocol"].StringValue);
        Assert.Equal(exchange.RequestHeaders.Get("x-request-id"), metadata.Fields["request_id"].StringValue);
        Assert.Empty(UnexpectedErrors(extProc));
    }

    [Fact]
    public async Task ChatCompletions_WrongContentType_Client415JsonUpstreamNeverContacted()
    {
        await using var extProc = await StartExtProcAsync();
        await using var upstream = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("must not be reached"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["default"] = upstream.BaseUri },
        });
        using var client = plane.CreateClient();

        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(ChatBody, Encoding.UTF8, "text/plain"));

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_request_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Empty(upstream.Received);
        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
        Assert.Null(exchange.Stream.UpstreamHeaders);
        Assert.Equal([Kind.RequestHeaders], SentKinds(exchange.Stream));
        Assert.Equal(1, exchange.Stream.Stats[ExtProcStats.ImmediateResponsesSent]);
    }

    [Fact]
    public async Task SseUpstream_StreamedChat_ClientGetsFirstEventBeforeUpstreamSendsLast()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var events = new[]
        {
            SseEvent.Data("{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}"),
            SseEvent.Data("{\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}", TimeSpan.FromMilliseconds(20)),
            SseEvent.Data("[DONE]", TimeSpan.FromMilliseconds(20)),
        };
        await using var extProc = await StartExtProcAsync();
        await using var upstream = await LoopbackUpstream.StartAsync(new LoopbackResponse
        {
            Headers = [new("content-type", "text/event-stream")],
            Events = [.. events],
            BeforeEvent = i => i == 1 ? release.Task : Task.CompletedTask,
        });
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["default"] = upstream.BaseUri },
        });
        using var client = plane.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Json("{\"model\":\"m\",\"stream\":true,\"messages\":[]}"),
        };

        try
        {
            await ReadStreamAsync(client, request, events, upstream, release);
        }
        finally
        {
            // Never leave the upstream parked: a failing assertion must not hang clean-up.
            release.TrySetResult();
        }

        Assert.Empty(UnexpectedErrors(extProc));
    }

    private static async Task ReadStreamAsync(HttpClient client, HttpRequestMessage request, SseEvent[] events, LoopbackUpstream upstream,
        TaskCompletionSource release)
    {
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(TimeSpan.FromSeconds(2));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        await using var stream = await response.Content.ReadAsStreamAsync();
        var first = await ReadUntilAsync(stream, "\n\n").WaitAsync(TimeSpan.FromSeconds(2));
        var firstArrived = Stopwatch.GetTimestamp();

        // The upstream is parked before its second event: a buffering hop would have delivered nothing yet.
        Assert.Equal(events[0].Text, first);
        Assert.Single(upstream.EventTimestamps);
        release.TrySetResult();
        using var rest = new StreamReader(stream);
        var remainder = await rest.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(2));

        Assert.Equal(events[1].Text + events[2].Text, remainder);
        Assert.Equal(3, upstream.EventTimestamps.Count);
        Assert.True(firstArrived < upstream.EventTimestamps[^1]);
    }

    [Fact]
    public async Task ScriptedProcessor_SetsClusterHeaderAndClearsRouteCache_RequestGoesToThatCluster()
    {
        await using var processor = await HarnessProcessor.StartAsync(r =>
            r.RequestCase == Kind.RequestHeaders ? HarnessProcessor.RouteTo("b") : HarnessProcessor.Continue(r));
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from a"));
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from b"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = HeadersOnlyFilter(processor.Address),
            DefaultCluster = "a",
            Clusters = { ["a"] = a.BaseUri, ["b"] = b.BaseUri },
        });
        using var client = plane.CreateClient();

        var text = await client.GetStringAsync("/anything");

        Assert.Equal("from b", text);
        Assert.Empty(a.Received);
        Assert.Equal("b", Assert.Single(b.Received).Headers.Get("x-extproc-cluster"));
        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
        Assert.Equal("b", exchange.Stream.UpstreamCluster);
        Assert.Equal(2, exchange.Stream.RouteSelections);
    }

    [Fact]
    public async Task NoClusterHeader_ProcessorContinues_DefaultRouteCluster()
    {
        await using var processor = await HarnessProcessor.StartAsync(HarnessProcessor.Continue);
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from a"));
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from b"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = HeadersOnlyFilter(processor.Address),
            DefaultCluster = "a",
            Clusters = { ["a"] = a.BaseUri, ["b"] = b.BaseUri },
        });
        using var client = plane.CreateClient();

        Assert.Equal("from a", await client.GetStringAsync("/anything"));
        Assert.Empty(b.Received);
        Assert.Equal(1, processor.Streams);
    }

    [Fact]
    public async Task ClusterHeader_UnknownCluster_503ClusterNotFoundNoUpstream()
    {
        await using var processor = await HarnessProcessor.StartAsync(r =>
            r.RequestCase == Kind.RequestHeaders ? HarnessProcessor.RouteTo("nope") : HarnessProcessor.Continue(r));
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from a"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = HeadersOnlyFilter(processor.Address),
            DefaultCluster = "a",
            Clusters = { ["a"] = a.BaseUri },
        });
        using var client = plane.CreateClient();

        using var response = await client.GetAsync("/anything");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Empty(a.Received);
        Assert.Equal(LocalReplyDetails.ClusterNotFound, Assert.Single(await plane.WaitForExchangesAsync(1)).Stream.ResponseCodeDetails);
    }

    [Fact]
    public async Task ClientSuppliedClusterHeader_ProcessorOverwritesAndClearsRouteCache_ProcessorWins()
    {
        await using var processor = await HarnessProcessor.StartAsync(r =>
            r.RequestCase == Kind.RequestHeaders ? HarnessProcessor.RouteTo("a") : HarnessProcessor.Continue(r));
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from a"));
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from b"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = HeadersOnlyFilter(processor.Address),
            DefaultCluster = "a",
            Clusters = { ["a"] = a.BaseUri, ["b"] = b.BaseUri },
        });
        using var client = plane.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/anything");
        request.Headers.Add("x-extproc-cluster", "b");

        using var response = await client.SendAsync(request);

        Assert.Equal("from a", await response.Content.ReadAsStringAsync());
        Assert.Empty(b.Received);
        Assert.Equal(["a"], Assert.Single(a.Received).Headers.GetAll("x-extproc-cluster"));
    }

    [Fact]
    public async Task ClientSuppliedClusterHeader_ProcessorOnlyContinues_RouteMatchedBeforeExtProcStands()
    {
        // Envoy resolves the route (and cluster_header) before ext_proc runs; without a route-cache clear the
        // client's header decides. This is the risk ExtProc must close by always rewriting the header.
        await using var processor = await HarnessProcessor.StartAsync(HarnessProcessor.Continue);
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from a"));
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from b"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = HeadersOnlyFilter(processor.Address),
            DefaultCluster = "a",
            Clusters = { ["a"] = a.BaseUri, ["b"] = b.BaseUri },
        });
        using var client = plane.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/anything");
        request.Headers.Add("x-extproc-cluster", "b");

        using var response = await client.SendAsync(request);

        Assert.Equal("from b", await response.Content.ReadAsStringAsync());
        Assert.Empty(a.Received);
        Assert.Equal(1, Assert.Single(await plane.WaitForExchangesAsync(1)).Stream.RouteSelections);
    }

    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/static/app.js")]
    public async Task ExtProc_ClientSuppliedClusterHeader_CannotChooseTheCluster(string path)
    {
        // Envoy matched the route (cluster_header included) before ext_proc ran: removing the header is not
        // enough, the reply must also clear the route cache.
        await using var extProc = await StartExtProcAsync();
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Json("{\"from\":\"a\"}"));
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Json("{\"from\":\"b\"}"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            DefaultCluster = "a",
            Clusters = { ["a"] = a.BaseUri, ["b"] = b.BaseUri },
        });
        using var client = plane.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json("{\"model\":\"m\",\"messages\":[]}") };
        request.Headers.Add("x-extproc-cluster", "b");

        using var response = await client.SendAsync(request);

        Assert.Equal("{\"from\":\"a\"}", await response.Content.ReadAsStringAsync());
        Assert.Empty(b.Received);
        Assert.False(Assert.Single(a.Received).Headers.Contains("x-extproc-cluster"));
    }

    [Fact]
    public async Task PerAttempt_FirstClusterAnswers503_RetryOnSecondClusterEachAttemptOwnStream()
    {
        await using var extProc = await StartExtProcAsync();
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Json("{\"error\":\"overloaded\"}", 503));
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Json("{\"id\":\"from-b\"}"));
        var perAttempt = new PerAttemptOptions { Filter = ExtProcFilter(extProc, upstreamFilter: true), IncludeAttemptCountInRequest = true };
        perAttempt.Retry.RetryOn.Add("5xx");
        perAttempt.Retry.NumRetries = 2;
        perAttempt.AggregateClusters["providers"] = ["a", "b"];
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            DefaultCluster = "providers",
            Clusters = { ["a"] = a.BaseUri, ["b"] = b.BaseUri },
            PerAttempt = perAttempt,
        });
        using var client = plane.CreateClient();
        var body = Encoding.UTF8.GetBytes(ChatBody);
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");

        using var response = await client.PostAsync("/v1/chat/completions", content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("{\"id\":\"from-b\"}", await response.Content.ReadAsStringAsync());

        // The body was replayed from the retry buffer: both providers got the same bytes.
        Assert.Equal(body, Assert.Single(a.Received).Body);
        Assert.Equal(body, Assert.Single(b.Received).Body);
        Assert.Equal("1", a.Received[0].Headers.Get("x-envoy-attempt-count"));
        Assert.Equal("2", b.Received[0].Headers.Get("x-envoy-attempt-count"));

        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
        Assert.Collection(exchange.Attempts,
            first => Assert.Equal(("a", 503, "retried"), (first.Cluster, first.Status, first.Outcome)),
            second => Assert.Equal(("b", 200, "committed"), (second.Cluster, second.Status, second.Outcome)));
        foreach (var attempt in exchange.Attempts)
        {
            // One side stream per attempt, each seeing the whole request and its own response headers.
            Assert.Single(attempt.Stream.Log, e => e.Kind == ExchangeLogKind.StreamOpened);
            Assert.Equal(1, attempt.Stream.Stats[ExtProcStats.StreamsStarted]);
            Assert.Equal([Kind.RequestHeaders, Kind.RequestBody, Kind.ResponseHeaders], SentKinds(attempt.Stream));
            Assert.Equal("openai.chat", attempt.Stream.DynamicMetadata["extproc"].Fields["protocol"].StringValue);
        }

        Assert.Equal("503", exchange.Attempts[0].Stream.Log.Single(e => e.Request?.RequestCase == Kind.ResponseHeaders)
            .Request!.ResponseHeaders.Headers.Headers.Single(h => h.Key == ":status").RawValue.ToStringUtf8());
        Assert.Empty(UnexpectedErrors(extProc));
    }

    [Fact]
    public async Task PerAttempt_RetriesExhausted_LastAttemptResponseReachesClient()
    {
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("a down", 503));
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("b down", 502));
        var perAttempt = new PerAttemptOptions();
        perAttempt.Retry.RetryOn.Add("gateway-error");
        perAttempt.Retry.NumRetries = 1;
        perAttempt.AggregateClusters["providers"] = ["a", "b"];
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            DefaultCluster = "providers",
            Clusters = { ["a"] = a.BaseUri, ["b"] = b.BaseUri },
            PerAttempt = perAttempt,
        });
        using var client = plane.CreateClient();

        using var response = await client.GetAsync("/x");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("b down", await response.Content.ReadAsStringAsync());
        Assert.Single(a.Received);
        Assert.Single(b.Received);
    }

    [Fact]
    public async Task PerAttempt_FirstClusterRefusesConnections_ConnectFailureRetriedOnSecond()
    {
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from b"));
        var perAttempt = new PerAttemptOptions();
        perAttempt.Retry.RetryOn.Add("connect-failure");
        perAttempt.AggregateClusters["providers"] = ["dead", "b"];
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            DefaultCluster = "providers",
            Clusters = { ["dead"] = new Uri($"http://127.0.0.1:{ClosedPort()}"), ["b"] = b.BaseUri },
            PerAttempt = perAttempt,
        });
        using var client = plane.CreateClient();

        var text = await client.GetStringAsync("/x");

        Assert.Equal("from b", text);
        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
        Assert.Equal(["retried", "committed"], exchange.Attempts.Select(t => t.Outcome));
    }

    [Fact]
    public async Task BufferedRequestBody_OverBufferLimit_413FromEnvoyUpstreamNeverContacted()
    {
        await using var extProc = await StartExtProcAsync();
        await using var upstream = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("must not be reached"));
        var filter = ExtProcFilter(extProc);
        filter.BufferLimitBytes = 1024;
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = filter,
            Clusters = { ["default"] = upstream.BaseUri },
        });
        using var client = plane.CreateClient(http2: true);
        var big = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', 4096) + "\"}]}";

        using var response = await client.PostAsync("/v1/chat/completions", Json(big));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("Payload Too Large", await response.Content.ReadAsStringAsync());
        Assert.Empty(upstream.Received);
        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
        Assert.Equal(LocalReplyDetails.RequestPayloadTooLarge, exchange.Stream.ResponseCodeDetails);
        Assert.DoesNotContain(Kind.RequestBody, SentKinds(exchange.Stream));
    }

    private static async Task<string> ReadUntilAsync(Stream stream, string terminator)
    {
        var buffer = new List<byte>();
        var one = new byte[1];
        while (!Encoding.UTF8.GetString([.. buffer]).EndsWith(terminator, StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(one) == 0)
            {
                break;
            }

            buffer.Add(one[0]);
        }

        return Encoding.UTF8.GetString([.. buffer]);
    }

    private static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
