using System.Net;
using System.Text;
using ExtProc.EnvoyEmulator;
using ExtProc.EnvoyEmulator.Harness;
using static ExtProc.Tests.Harness.HarnessKit;
using Kind = Envoy.Service.ExtProc.V3.ProcessingRequest.RequestOneofCase;

namespace ExtProc.Tests.Harness;

/// <summary>Resets, aborts, trailers and the two-filter (downstream + per-attempt) composition.</summary>
public sealed class DataPlaneEdgeTests
{
    [Fact]
    public async Task UpstreamResetMidBody_Http2Client_SeesStreamResetNotCleanEnd()
    {
        var reset = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await LoopbackUpstream.StartAsync(new LoopbackResponse
        {
            Headers = [new("content-type", "text/event-stream")],
            Events = [SseEvent.Data("one")],
            BeforeEvent = i => i == 1 ? reset.Task : Task.CompletedTask,
            AbortAfterBody = true,
        });
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions { Clusters = { ["default"] = upstream.BaseUri } });
        using var client = plane.CreateClient(http2: true);

        using var response = await client.GetAsync("/events", HttpCompletionOption.ResponseHeadersRead).WaitAsync(TimeSpan.FromSeconds(2));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync();
        var first = new byte[SseEvent.Data("one").Text.Length];
        await body.ReadExactlyAsync(first).AsTask().WaitAsync(TimeSpan.FromSeconds(2));

        // Headers and the first event are downstream; now the upstream connection dies.
        reset.SetResult();
        await Assert.ThrowsAnyAsync<IOException>(() => new StreamReader(body).ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(2)));
        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
        Assert.Contains(exchange.Stream.Log, e => e.Note?.Contains("upstream reset", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task ClientAbortsDuringSse_UpstreamRequestAbortedAndSideStreamClosed()
    {
        await using var extProc = await StartExtProcAsync();
        var parked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await LoopbackUpstream.StartAsync(new LoopbackResponse
        {
            Headers = [new("content-type", "text/event-stream")],
            Events = [SseEvent.Data("one"), SseEvent.Data("never")],
            BeforeEvent = i => i == 1 ? parked.Task : Task.CompletedTask,
        });
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["default"] = upstream.BaseUri },
        });
        try
        {
            using (var client = plane.CreateClient())
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
                {
                    Content = Json("{\"model\":\"m\",\"stream\":true,\"messages\":[]}"),
                };
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                await using var body = await response.Content.ReadAsStreamAsync();
                var buffer = new byte[64];
                Assert.True(await body.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(2)) > 0);
            }

            // Disposing mid-body closes the HTTP/1 connection: Envoy resets the upstream and its side stream.
            var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));
            Assert.Contains(exchange.Stream.Log, e => e.Kind == ExchangeLogKind.ClientClosed);
            Assert.True(exchange.Stream.UpstreamReset || await Eventually(() => upstream.Aborted == 1));
            Assert.True(await Eventually(() => upstream.Aborted == 1));
        }
        finally
        {
            parked.TrySetResult();
        }

        Assert.Empty(UnexpectedErrors(extProc));
    }

    [Fact]
    public async Task ResponseTrailers_H2EndToEnd_ClientReceivesThem()
    {
        await using var upstream = await LoopbackUpstream.StartAsync(new LoopbackResponse
        {
            Headers = [new("content-type", "application/grpc")],
            Body = Encoding.UTF8.GetBytes("payload"),
            Trailers = [new("grpc-status", "0"), new("x-usage", "42")],
        });
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Clusters = { ["default"] = upstream.H2cUri },
            UpstreamProtocol = HttpProtocol.Http2,
        });
        using var client = plane.CreateClient(http2: true);

        using var response = await client.GetAsync("/svc/Method");
        Assert.Equal("payload", await response.Content.ReadAsStringAsync());

        Assert.Equal("HTTP/2", Assert.Single(upstream.Received).Protocol);
        Assert.Equal(["0"], response.TrailingHeaders.GetValues("grpc-status"));
        Assert.Equal(["42"], response.TrailingHeaders.GetValues("x-usage"));
    }

    [Fact]
    public async Task DownstreamAndPerAttemptExtProc_Failover_DownstreamSeesOnlyFinalResponse()
    {
        await using var extProc = await StartExtProcAsync();
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Json("{\"error\":\"busy\"}", 529));
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Json("{\"id\":\"b\"}"));
        var perAttempt = new PerAttemptOptions { Filter = ExtProcFilter(extProc, upstreamFilter: true) };
        perAttempt.Retry.RetryOn.Add("retriable-status-codes");
        perAttempt.Retry.RetriableStatusCodes.Add(529);
        perAttempt.AggregateClusters["providers"] = ["a", "b"];
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            DefaultCluster = "providers",
            Clusters = { ["a"] = a.BaseUri, ["b"] = b.BaseUri },
            PerAttempt = perAttempt,
        });
        using var client = plane.CreateClient();

        using var response = await client.PostAsync("/v1/messages", Json("{\"model\":\"claude\",\"max_tokens\":8,\"messages\":[]}"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var exchange = Assert.Single(await plane.WaitForExchangesAsync(1));

        // Router-level filter: one stream, sees the routed request once and only the committed response.
        Assert.Equal([Kind.RequestHeaders, Kind.RequestBody, Kind.ResponseHeaders], SentKinds(exchange.Stream));
        var responseHeaders = exchange.Stream.Log.Single(e => e.Request?.RequestCase == Kind.ResponseHeaders).Request!.ResponseHeaders;
        Assert.Equal("200", responseHeaders.Headers.Headers.Single(h => h.Key == ":status").RawValue.ToStringUtf8());
        Assert.Equal("providers", exchange.Stream.UpstreamCluster);

        // Upstream filter: a stream per attempt.
        Assert.Equal([("a", 529), ("b", 200)], exchange.Attempts.Select(t => (t.Cluster, t.Status)));
        Assert.All(exchange.Attempts, t => Assert.Equal(1, t.Stream.Stats[ExtProcStats.StreamsStarted]));
        Assert.Equal("anthropic.messages", exchange.Stream.DynamicMetadata["extproc"].Fields["protocol"].StringValue);
        Assert.Empty(UnexpectedErrors(extProc));
    }

    [Fact]
    public async Task PerAttempt_BodyOverRetryBufferLimit_RetriesAbandonedFirstResponseStands()
    {
        await using var a = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("a down", 503));
        await using var b = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("from b"));
        var perAttempt = new PerAttemptOptions { Filter = DataPlaneTestFilters.UpstreamPassThrough(bufferLimit: 1024) };
        perAttempt.Retry.RetryOn.Add("5xx");
        perAttempt.AggregateClusters["providers"] = ["a", "b"];
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            DefaultCluster = "providers",
            Clusters = { ["a"] = a.BaseUri, ["b"] = b.BaseUri },
            PerAttempt = perAttempt,
        });
        using var client = plane.CreateClient();

        using var response = await client.PostAsync("/upload", new ByteArrayContent(new byte[4096]));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(4096, Assert.Single(a.Received).Body.Length);
        Assert.Empty(b.Received);
    }

    [Fact]
    public async Task StreamedRequestBody_ClientSendsInTwoParts_ProcessorSeesFirstPartBeforeSecondIsSent()
    {
        var firstChunkSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var chunks = new List<string>();
        await using var processor = await HarnessProcessor.StartAsync(r =>
        {
            if (r.RequestCase == Kind.RequestBody)
            {
                lock (chunks)
                {
                    chunks.Add(r.RequestBody.Body.ToStringUtf8());
                }

                firstChunkSeen.TrySetResult();
            }

            return HarnessProcessor.Continue(r);
        });
        await using var upstream = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("ok"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = HeadersOnlyFilter(processor.Address, global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode.Streamed),
            Clusters = { ["default"] = upstream.BaseUri },
        });
        using var client = plane.CreateClient();

        // The second part is only written once the processor has the first: a buffering hop would deadlock.
        using var response = await client.PostAsync("/upload", new TwoPartContent("part-one;", "part-two", firstChunkSeen.Task))
            .WaitAsync(TimeSpan.FromSeconds(3));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("part-one;part-two", Assert.Single(upstream.Received).BodyText);
        lock (chunks)
        {
            Assert.Equal("part-one;", chunks[0]);
            Assert.Equal("part-one;part-two", string.Concat(chunks));
        }
    }

    [Fact]
    public async Task ProcessorTooSlow_MessageTimeout_Client504LocalReply()
    {
        await using var processor = await HarnessProcessor.StartAsync(async r =>
        {
            await Task.Delay(TimeSpan.FromMilliseconds(300));
            return HarnessProcessor.Continue(r);
        });
        await using var upstream = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("must not be reached"));
        var filter = HeadersOnlyFilter(processor.Address);
        filter.MessageTimeout = TimeSpan.FromMilliseconds(100);
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = filter,
            Clusters = { ["default"] = upstream.BaseUri },
        });
        using var client = plane.CreateClient();

        using var response = await client.GetAsync("/slow");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("envoy", response.Headers.Server.ToString());
        Assert.Empty(upstream.Received);
        Assert.Equal(LocalReplyDetails.MessageTimeout, Assert.Single(await plane.WaitForExchangesAsync(1)).Stream.ResponseCodeDetails);
    }

    [Fact]
    public async Task NoMatchingRoute_404RouteNotFoundUpstreamUntouched()
    {
        await using var upstream = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("must not be reached"));
        var routes = new RouteTable();
        routes.Routes.Add(new Route { Name = "api", PathPrefix = "/v1/", Cluster = "default" });
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Routes = routes,
            Clusters = { ["default"] = upstream.BaseUri },
        });
        using var client = plane.CreateClient();

        using var response = await client.GetAsync("/other");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Empty(upstream.Received);
        Assert.Equal(LocalReplyDetails.RouteNotFound, Assert.Single(await plane.WaitForExchangesAsync(1)).Stream.ResponseCodeDetails);
    }

    [Fact]
    public async Task ClusterRefusesConnections_NoRetryPolicy_503UpstreamConnectError()
    {
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Clusters = { ["default"] = new Uri($"http://127.0.0.1:{ClosedPort()}") },
        });
        using var client = plane.CreateClient();

        using var response = await client.GetAsync("/x");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.StartsWith("upstream connect error or disconnect/reset before headers", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(LocalReplyDetails.UpstreamConnectFailure, Assert.Single(await plane.WaitForExchangesAsync(1)).Stream.ResponseCodeDetails);
    }

    [Fact]
    public async Task ExpectContinue_Http1Post_HcmAnswersAndStripsExpect()
    {
        await using var upstream = await LoopbackUpstream.StartAsync(LoopbackResponse.Text("ok"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions { Clusters = { ["default"] = upstream.BaseUri } });
        using var client = plane.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/upload") { Content = new StringContent("body") };
        request.Headers.ExpectContinue = true;

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = Assert.Single(upstream.Received);
        Assert.Equal("body", received.BodyText);
        Assert.False(received.Headers.Contains("expect"));
        Assert.False(Assert.Single(await plane.WaitForExchangesAsync(1)).RequestHeaders.Contains("expect"));
    }

    [Fact]
    public async Task ConcurrentRequests_H2Multiplexed_EachOwnStreamAndAnswer()
    {
        await using var extProc = await StartExtProcAsync();
        await using var upstream = await LoopbackUpstream.StartAsync(r => LoopbackResponse.Json($"{{\"echo\":\"{r.Path}\"}}"));
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["default"] = upstream.BaseUri },
        });
        using var client = plane.CreateClient(http2: true);

        var answers = await Task.WhenAll(Enumerable.Range(0, 16).Select(async i =>
        {
            using var response = await client.PostAsync($"/v1/chat/completions?n={i}", Json($"{{\"model\":\"m{i}\",\"messages\":[]}}"));
            return (i, await response.Content.ReadAsStringAsync());
        }));

        Assert.All(answers, a => Assert.Equal($"{{\"echo\":\"/v1/chat/completions?n={a.i}\"}}", a.Item2));
        var exchanges = await plane.WaitForExchangesAsync(16);
        Assert.All(exchanges, e => Assert.Equal([Kind.RequestHeaders, Kind.RequestBody, Kind.ResponseHeaders], SentKinds(e.Stream)));
        Assert.Equal(16, exchanges.Select(e => e.RequestHeaders.Get("x-request-id")).Distinct().Count());
        Assert.Empty(UnexpectedErrors(extProc));
    }

    private static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<bool> Eventually(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        return condition();
    }
}

/// <summary>A request body written in two parts, the second only after a gate opens.</summary>
internal sealed class TwoPartContent(string first, string second, Task gate) : HttpContent
{
    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        await stream.WriteAsync(Encoding.UTF8.GetBytes(first));
        await stream.FlushAsync();
        await gate.WaitAsync(TimeSpan.FromSeconds(2));
        await stream.WriteAsync(Encoding.UTF8.GetBytes(second));
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}

internal static class DataPlaneTestFilters
{
    /// <summary>An upstream filter that talks to no processor: only its buffer limit matters.</summary>
    public static ExtProcFilterConfig UpstreamPassThrough(int bufferLimit)
    {
        var config = new ExtProcFilterConfig
        {
            IsUpstreamFilter = true,
            BufferLimitBytes = bufferLimit,
            ProcessingMode = new()
            {
                RequestHeaderMode = global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.HeaderSendMode.Skip,
                ResponseHeaderMode = global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.HeaderSendMode.Skip,
            },
        };
        config.GrpcService.Add(new Uri("http://127.0.0.1:9"));
        return config;
    }
}
