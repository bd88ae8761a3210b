using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Time.Testing;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>§6.3 items 35-40: per-route config, metadata, attributes, upstream filter, observability, mode_override.</summary>
public sealed class ModeMetadataTests
{
    private static RouteTable PerRouteTable(ExtProcPerRouteConfig fooConfig)
    {
        var routes = new RouteTable();
        routes.Routes.Add(new Route { Name = "foo", PathPrefix = "/foo", Cluster = "upstream", ExtProcPerRoute = fooConfig });
        routes.Routes.Add(new Route { Name = "default", Cluster = "upstream" });
        return routes;
    }

    [Fact]
    public async Task PerRouteProcessingMode_ResponseBodyBufferedOnlyOnFoo()
    {
        var foo = new ExtProcPerRouteConfig { ProcessingMode = new ProcessingMode { ResponseBodyMode = BodySendMode.Buffered } };
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, routes: PerRouteTable(foo));

        var onFoo = await h.RunAsync(TestRequest.Get("/foo"));
        Assert.Contains(onFoo.Sent, m => m.RequestCase == RequestOneofCase.ResponseBody);
        Assert.Equal(BodySendMode.Buffered, onFoo.Sent[0].ProtocolConfig.ResponseBodyMode);

        var elsewhere = await h.RunAsync(TestRequest.Get("/bar"));
        Assert.DoesNotContain(elsewhere.Sent, m => m.RequestCase == RequestOneofCase.ResponseBody);
    }

    [Fact]
    public async Task PerRouteVhostAndRouteMerge_RouteWinsPerFieldAndOnlyMostSpecificDisabledCounts()
    {
        var routes = new RouteTable
        {
            VirtualHostExtProcPerRoute = new ExtProcPerRouteConfig
            {
                Disabled = true,
                ProcessingMode = new ProcessingMode { RequestBodyMode = BodySendMode.Buffered, ResponseHeaderMode = HeaderSendMode.Skip },
            },
        };
        routes.Routes.Add(new Route { Name = "foo", PathPrefix = "/foo", Cluster = "upstream", ExtProcPerRoute = new ExtProcPerRouteConfig { FailureModeAllow = true } });
        routes.Routes.Add(new Route { Name = "default", Cluster = "upstream" });
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, routes: routes);

        // Route /foo: not disabled (the route is more specific), vhost processing mode inherited.
        var foo = await h.RunAsync(TestRequest.Post("/foo", "x"));
        Assert.Equal([RequestOneofCase.RequestHeaders, RequestOneofCase.RequestBody], foo.Sent.Select(m => m.RequestCase));

        // Other routes only have the vhost config: disabled.
        var other = await h.RunAsync(TestRequest.Post("/bar", "x"));
        Assert.Empty(other.Sent);
    }

    [Fact]
    public async Task PerRouteDisabled_NoSideStream()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, routes: PerRouteTable(new ExtProcPerRouteConfig { Disabled = true }));
        var result = await h.RunAsync(TestRequest.Get("/foo"));

        Assert.Equal(200, result.Status);
        Assert.Empty(result.Sent);
        Assert.Empty(h.Processor.Sessions);
    }

    [Fact]
    public async Task PerRouteGrpcServiceAndInitialMetadata_OtherProcessorAndSideStreamHeaders()
    {
        await using var other = await ScriptedProcessor.StartAsync(ScriptedProcessor.ContinueAll);
        var foo = new ExtProcPerRouteConfig { GrpcService = other.Address };
        foo.GrpcInitialMetadata.Add(new("x-route-md", "route"));
        foo.GrpcInitialMetadata.Add(new("x-shared", "route-wins"));
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
        {
            c.GrpcInitialMetadata.Add(new("x-filter-md", "filter"));
            c.GrpcInitialMetadata.Add(new("x-shared", "filter"));
        }, routes: PerRouteTable(foo));
        var result = await h.RunAsync(TestRequest.Get("/foo"));

        Assert.Equal(200, result.Status);
        Assert.Empty(h.Processor.Sessions);
        var session = Assert.Single(other.Sessions);
        Assert.Equal("route", session.RequestHeader("x-route-md"));
        Assert.Equal("filter", session.RequestHeader("x-filter-md"));
        Assert.Equal("route-wins", session.RequestHeader("x-shared"));
    }

    [Fact]
    public async Task SendAndReceiveDynamicMetadata_ForwardedOnEveryMessageAndReceivedNamespaceWritten()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                var reply = Replies.ContinueFor(m)!;
                reply.DynamicMetadata = Struct.Parser.ParseJson("{\"receiving_ns\":{\"model\":\"m1\"},\"not_allowed\":{\"x\":1}}");
                await s.SendAsync(reply);
            }
        }, c =>
        {
            c.MetadataOptions.ForwardingUntyped.Add("forwarding_ns");
            c.MetadataOptions.ForwardingTyped.Add("typed_ns");
            c.MetadataOptions.ReceivingUntyped.Add("receiving_ns");
        });
        var request = TestRequest.Get();
        request.DynamicMetadata["forwarding_ns"] = Struct.Parser.ParseJson("{\"tenant\":\"t1\"}");
        request.DynamicMetadata["other_ns"] = Struct.Parser.ParseJson("{\"secret\":\"s\"}");
        request.TypedDynamicMetadata["typed_ns"] = Any.Pack(new StringValue { Value = "typed" });
        var result = await h.RunAsync(request);

        Assert.Equal(200, result.Status);
        Assert.All(result.Sent, m =>
        {
            Assert.Equal("t1", m.MetadataContext.FilterMetadata["forwarding_ns"].Fields["tenant"].StringValue);
            Assert.False(m.MetadataContext.FilterMetadata.ContainsKey("other_ns"));
            Assert.Equal("typed", m.MetadataContext.TypedFilterMetadata["typed_ns"].Unpack<StringValue>().Value);
        });
        Assert.Equal("m1", result.DynamicMetadata["receiving_ns"].Fields["model"].StringValue);
        Assert.False(result.DynamicMetadata.ContainsKey("not_allowed"));
    }

    [Fact]
    public async Task RequestResponseAttributes_FirstMessageOfEachDirectionOnly()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
        {
            c.ProcessingMode = new() { RequestBodyMode = BodySendMode.Streamed };
            c.RequestAttributes.AddRange(["request.path", "request.method", "request.scheme", "request.size", "connection.mtls", "response.code", "xds.cluster_name"]);
            c.ResponseAttributes.AddRange(["response.code", "response.code_details"]);
        });
        var request = TestRequest.Post("/", "a", "b");
        request.AttributeValues["request.size"] = Value.ForNumber(0);
        request.AttributeValues["connection.mtls"] = Value.ForBool(false);
        var result = await h.RunAsync(request);

        var requestAttributes = result.Sent[0].Attributes["envoy.filters.http.ext_proc"];
        Assert.Equal("/", requestAttributes.Fields["request.path"].StringValue);
        Assert.Equal("POST", requestAttributes.Fields["request.method"].StringValue);
        Assert.Equal("http", requestAttributes.Fields["request.scheme"].StringValue);
        Assert.Equal(0, requestAttributes.Fields["request.size"].NumberValue);
        Assert.False(requestAttributes.Fields["connection.mtls"].BoolValue);
        Assert.False(requestAttributes.Fields.ContainsKey("response.code"));
        Assert.False(requestAttributes.Fields.ContainsKey("xds.cluster_name"));
        Assert.All(result.Sent.Where(m => m.RequestCase == RequestOneofCase.RequestBody), m => Assert.Empty(m.Attributes));

        var responseHeaders = result.Sent.Single(m => m.RequestCase == RequestOneofCase.ResponseHeaders);
        var responseAttributes = responseHeaders.Attributes["envoy.filters.http.ext_proc"];
        Assert.Equal(200, responseAttributes.Fields["response.code"].NumberValue);
        Assert.Equal("via_upstream", responseAttributes.Fields["response.code_details"].StringValue);
        Assert.NotNull(result.Sent[0].ProtocolConfig);
        Assert.Null(responseHeaders.ProtocolConfig);
    }

    [Fact]
    public async Task GetAndSetHeadersUpstream_UpstreamFilterVariant_MutationsAppliedClearRouteCacheIgnored()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            var headers = (await s.ExpectAsync(RequestOneofCase.RequestHeaders)).RequestHeaders.Headers;
            Assert.Equal("host", headers.Get(":authority"));
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(Replies.Set("x-new", "1")), clearRouteCache: true)));
            await ScriptedProcessor.ContinueAll(s);
        }, c => c.IsUpstreamFilter = true);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Equal("1", result.UpstreamHeaders!.Get("x-new"));
        Assert.Equal(1, result.Stats[ExtProcStats.ClearRouteCacheUpstreamIgnored]);
        Assert.Equal(1, result.RouteSelections);
    }

    [Fact]
    public async Task ObservabilityMode_SendAndGo_StreamedBodiesAndTrailersSentRepliesIgnored()
    {
        var time = new FakeTimeProvider();
        var upstream = new CannedUpstream { Trailers = HttpHeaderList.Of(("x-rt", "1")) }.WithBody("r1", "r2");
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                var reply = m.RequestCase == RequestOneofCase.RequestHeaders
                    ? Replies.RequestHeaders(Replies.Common(Replies.Mutation(Replies.Set("x-ignored", "1"))))
                    : Replies.ContinueFor(m)!;
                reply.DynamicMetadata = Struct.Parser.ParseJson("{\"ns\":{\"k\":\"v\"}}");
                await s.SendAsync(reply);
            }
        }, c =>
        {
            c.ObservabilityMode = true;
            c.MetadataOptions.ReceivingUntyped.Add("ns");
            c.ProcessingMode = new()
            {
                RequestBodyMode = BodySendMode.Streamed,
                ResponseBodyMode = BodySendMode.Streamed,
                RequestTrailerMode = HeaderSendMode.Send,
                ResponseTrailerMode = HeaderSendMode.Send,
            };
        }, upstream, time: time);
        var post = TestRequest.Post("/", "q1", "q2");
        var result = await h.RunAsync(new TestRequest { Headers = post.Headers, BodyChunks = post.BodyChunks, Trailers = HttpHeaderList.Of(("x-t", "1")) });

        Assert.Equal(200, result.Status);
        Assert.Equal("q1q2", result.UpstreamBodyText);
        Assert.Equal("r1r2", result.BodyText);
        Assert.False(result.UpstreamHeaders!.Contains("x-ignored"));
        Assert.False(result.DynamicMetadata.ContainsKey("ns"));
        Assert.Equal([RequestOneofCase.RequestHeaders, RequestOneofCase.RequestBody, RequestOneofCase.RequestBody, RequestOneofCase.RequestTrailers,
            RequestOneofCase.ResponseHeaders, RequestOneofCase.ResponseBody, RequestOneofCase.ResponseBody, RequestOneofCase.ResponseTrailers],
            result.Sent.Select(m => m.RequestCase));
        Assert.All(result.Sent, m =>
        {
            Assert.True(m.ObservabilityMode);
            Assert.Null(m.ProtocolConfig);
        });

        // Timers never fire; the side stream stays open until deferred_close_timeout.
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0, result.Stats[ExtProcStats.MessageTimeouts]);
        Assert.Equal(0, result.Stats[ExtProcStats.StreamsClosed]);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(1, result.Stats[ExtProcStats.StreamsClosed]);
    }

    [Fact]
    public async Task ObservabilityMode_BufferedBody_NothingSentForBody()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
        {
            c.ObservabilityMode = true;
            c.ProcessingMode = new() { RequestBodyMode = BodySendMode.Buffered, ResponseHeaderMode = HeaderSendMode.Skip };
        });
        var result = await h.RunAsync(TestRequest.Post("/", "data"));

        Assert.Equal("data", result.UpstreamBodyText);
        Assert.Equal([RequestOneofCase.RequestHeaders], result.Sent.Select(m => m.RequestCase));
    }

    private static ProcessingResponse HeadersWithOverride(ProcessingMode mode)
    {
        var reply = Replies.RequestHeaders();
        reply.ModeOverride = mode;
        return reply;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ModeOverride_AllowList_EnablesRequestBodyStreamedOnlyWhenListed(bool listed)
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(HeadersWithOverride(new ProcessingMode { RequestBodyMode = BodySendMode.Streamed }));
            await ScriptedProcessor.ContinueAll(s);
        }, c =>
        {
            c.AllowModeOverride = true;
            c.AllowedOverrideModes.Add(new ProcessingMode
            {
                RequestBodyMode = listed ? BodySendMode.Streamed : BodySendMode.Buffered,
            });
        });
        var headersOnly = new TestRequest { Headers = TestRequest.DefaultHeaders("POST", "/"), BodyChunks = [[1, 2, 3]], BeforeChunk = null };
        var result = await h.RunAsync(headersOnly);

        Assert.Equal(200, result.Status);
        Assert.Equal(listed, result.Sent.Any(m => m.RequestCase == RequestOneofCase.RequestBody));
    }

    [Fact]
    public async Task ModeOverride_MustRestateBodyModes_UnsetMeansNone()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            // Only touches response_header_mode: the configured BUFFERED response body becomes NONE.
            await s.SendAsync(HeadersWithOverride(new ProcessingMode { ResponseHeaderMode = HeaderSendMode.Send }));
            await ScriptedProcessor.ContinueAll(s);
        }, c =>
        {
            c.AllowModeOverride = true;
            c.ProcessingMode = new() { ResponseBodyMode = BodySendMode.Buffered };
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.DoesNotContain(result.Sent, m => m.RequestCase == RequestOneofCase.ResponseBody);
    }

    [Fact]
    public async Task ModeOverride_NotAllowedWithoutFlag_Ignored()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(HeadersWithOverride(new ProcessingMode { RequestBodyMode = BodySendMode.Buffered }));
            await ScriptedProcessor.ContinueAll(s);
        });
        var result = await h.RunAsync(TestRequest.Post("/", "x"));

        Assert.DoesNotContain(result.Sent, m => m.RequestCase == RequestOneofCase.RequestBody);
    }
    [Fact]
    public async Task ModeOverride_NoneToBuffered_BodyHeldDuringHeadersReplyIsSentWhole()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await Task.Delay(50); // let the whole body arrive while the headers reply is outstanding
            await s.SendAsync(HeadersWithOverride(new ProcessingMode { RequestBodyMode = BodySendMode.Buffered }));
            await ScriptedProcessor.ContinueAll(s);
        }, c =>
        {
            c.AllowModeOverride = true;
            c.ProcessingMode = new() { RequestBodyMode = BodySendMode.None, ResponseHeaderMode = HeaderSendMode.Skip };
        });
        var result = await h.RunAsync(TestRequest.Post("/", "par", "tial"));

        Assert.Equal(200, result.Status);
        var body = Assert.Single(result.Sent, m => m.RequestCase == RequestOneofCase.RequestBody).RequestBody;
        Assert.Equal("partial", body.Body.ToStringUtf8());
        Assert.True(body.EndOfStream);
        Assert.Equal("partial", result.UpstreamBodyText);
    }
}
