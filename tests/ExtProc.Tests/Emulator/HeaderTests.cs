using Envoy.Config.Core.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using Google.Protobuf;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>§6.3 items 8-16: headers.</summary>
public sealed class HeaderTests
{
    [Fact]
    public async Task GetAndSetHeaders_ServerSeesExactListAndMutationsReachUpstream()
    {
        HeaderMap? seenRequest = null;
        HeaderMap? seenResponse = null;
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            seenRequest = (await s.ExpectAsync(RequestOneofCase.RequestHeaders)).RequestHeaders.Headers;
            var mutation = Replies.Mutation(Replies.Set("x-new", "new-value"));
            mutation.RemoveHeaders.Add("x-remove-me");
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(mutation)));
            seenResponse = (await s.ExpectAsync(RequestOneofCase.ResponseHeaders)).ResponseHeaders.Headers;
            await s.SendAsync(Replies.ResponseHeaders());
            await s.DrainAsync();
        });
        var request = TestRequest.Get("/test");
        request.Headers.Add("x-remove-me", "bye").Add("x-client", "c1");
        var result = await h.RunAsync(request);

        Assert.Equal(200, result.Status);
        Assert.Equal([(":scheme", "http"), (":method", "GET"), (":authority", "host"), (":path", "/test"), ("x-forwarded-proto", "http"),
            ("x-remove-me", "bye"), ("x-client", "c1")], seenRequest!.Pairs());
        Assert.All(seenRequest!.Headers, v => Assert.Equal("", v.Value));
        Assert.Equal("new-value", result.UpstreamHeaders!.Get("x-new"));
        Assert.False(result.UpstreamHeaders.Contains("x-remove-me"));
        Assert.Equal([(":status", "200")], seenResponse!.Pairs());
    }

    [Fact]
    public async Task GetAndSetPathHeader_PathChangesButSchemeAuthorityMethodSilentlyIgnored()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(Replies.Set(":path", "/new"),
                Replies.Set(":scheme", "https"), Replies.Set(":authority", "other"), Replies.Set(":method", "POST")))));
            await ScriptedProcessor.ContinueAll(s);
        });
        var result = await h.RunAsync(TestRequest.Get("/old"));

        Assert.Equal(200, result.Status);
        Assert.Equal("/new", result.UpstreamHeaders!.Get(":path"));
        Assert.Equal("http", result.UpstreamHeaders.Get(":scheme"));
        Assert.Equal("host", result.UpstreamHeaders.Get(":authority"));
        Assert.Equal("GET", result.UpstreamHeaders.Get(":method"));
        Assert.Equal(3, result.Stats[ExtProcStats.RejectedHeaderMutations]);
    }

    private static RouteTable HostRoutes()
    {
        var routes = new RouteTable();
        routes.Routes.Add(new Route { Name = "a", Authority = "host", Cluster = "cluster-a" });
        routes.Routes.Add(new Route { Name = "b", Authority = "new-host", Cluster = "cluster-b" });
        return routes;
    }

    [Theory]
    [InlineData("new-host", 200, "cluster-b")]
    [InlineData("nowhere", 404, null)]
    public async Task SetHostHeaderRouting_AllowAllRoutingAndClearRouteCache_Reroutes(string host, int status, string? cluster)
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(Replies.Set(":authority", host)), clearRouteCache: true)));
            await ScriptedProcessor.ContinueAll(s);
        }, c => c.MutationRules.AllowAllRouting = true, routes: HostRoutes());
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(status, result.Status);
        Assert.Equal(cluster, result.UpstreamCluster);
        Assert.Equal(2, result.RouteSelections);
        if (status == 404)
        {
            Assert.Equal(LocalReplyDetails.RouteNotFound, result.Details);
            // The router's 404 travels the response path, so the server sees it.
            Assert.Equal("404", result.Sent.Last(m => m.RequestCase == RequestOneofCase.ResponseHeaders).ResponseHeaders.Headers.Get(":status"));
        }
    }

    [Fact]
    public async Task SetHostHeaderRouting_WithoutClearRouteCache_KeepsOriginalCluster()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(Replies.Set(":authority", "new-host")))));
            await ScriptedProcessor.ContinueAll(s);
        }, c => c.MutationRules.AllowAllRouting = true, routes: HostRoutes());
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal("cluster-a", result.UpstreamCluster);
        Assert.Equal("new-host", result.UpstreamHeaders!.Get(":authority"));
    }

    [Fact]
    public async Task NonUtf8HeaderValue_PassedByteExactInRawValueBothWays()
    {
        byte[] bin = [0xff, 0xfe, 0x80, (byte)'a'];
        ByteString? seen = null;
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            var headers = (await s.ExpectAsync(RequestOneofCase.RequestHeaders)).RequestHeaders.Headers;
            seen = headers.Headers.First(v => v.Key == "x-bin").RawValue;
            var set = new HeaderValueOption { Header = new HeaderValue { Key = "x-bin-out", RawValue = ByteString.CopyFrom(0xc3, 0x28) } };
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(set))));
            await ScriptedProcessor.ContinueAll(s);
        });
        var request = TestRequest.Get();
        request.Headers.Add("x-bin", bin);
        var result = await h.RunAsync(request);

        Assert.Equal(bin, seen!.ToByteArray());
        Assert.Equal(new byte[] { 0xc3, 0x28 }, result.UpstreamHeaders!.GetRaw("x-bin-out"));
    }

    [Fact]
    public async Task ValueOnlyHeader_SetsEmptyStringAndBothFieldsFail500()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            var valueOnly = new HeaderValueOption { Header = new HeaderValue { Key = "x-value-only", Value = "ignored" } };
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(valueOnly))));
            await ScriptedProcessor.ContinueAll(s);
        });
        var result = await h.RunAsync(TestRequest.Get());
        Assert.Equal("", result.UpstreamHeaders!.Get("x-value-only"));

        await using var both = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            var bothSet = new HeaderValueOption { Header = new HeaderValue { Key = "x-both", Value = "v", RawValue = ByteString.CopyFromUtf8("r") } };
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(bothSet))));
            await s.DrainAsync();
        });
        var failed = await both.RunAsync(TestRequest.Get());
        Assert.Equal(500, failed.Status);
        Assert.False(failed.UpstreamContacted);
    }

    [Fact]
    public async Task AppendSemantics_DefaultOverwritesAppendTrueAdds()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(
                Replies.Set("x-over", "new"), Replies.Set("x-add", "second", append: true)))));
            await ScriptedProcessor.ContinueAll(s);
        });
        var request = TestRequest.Get();
        request.Headers.Add("x-over", "1").Add("x-over", "2").Add("x-add", "first");
        var result = await h.RunAsync(request);

        Assert.Equal(["new"], result.UpstreamHeaders!.GetAll("x-over"));
        Assert.Equal(["first", "second"], result.UpstreamHeaders.GetAll("x-add"));
    }

    [Fact]
    public async Task SetStatusHeader_201Applied100IgnoredSecondAppendIgnored()
    {
        foreach (var (mutation, expected) in new[]
        {
            (Replies.Mutation(Replies.Set(":status", "201")), 201),
            (Replies.Mutation(Replies.Set(":status", "100")), 200),
            (Replies.Mutation(Replies.Set(":status", "201"), Replies.Set(":status", "202", append: true)), 201),
        })
        {
            await using var h = await EmulatorHarness.StartAsync(async s =>
            {
                await s.SendAsync(Replies.ContinueFor((await s.ExpectAsync(RequestOneofCase.RequestHeaders)))!);
                await s.ExpectAsync(RequestOneofCase.ResponseHeaders);
                await s.SendAsync(Replies.ResponseHeaders(Replies.Common(mutation)));
                await s.DrainAsync();
            });
            var result = await h.RunAsync(TestRequest.Get());
            Assert.Equal(expected, result.Status);
            Assert.Single(result.ResponseHeaders!.GetAll(":status"));
        }
    }

    [Fact]
    public async Task ResponseTrailers_ModifiedByServer()
    {
        var upstream = new CannedUpstream { Trailers = HttpHeaderList.Of(("x-trailer", "orig")) }.WithBody("body");
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                await s.SendAsync(m.RequestCase == RequestOneofCase.ResponseTrailers
                    ? Replies.ResponseTrailers(Replies.Mutation(Replies.Set("x-trailer", "changed"), Replies.Set("x-added", "yes")))
                    : Replies.ContinueFor(m)!);
            }
        }, c => c.ProcessingMode = new() { ResponseTrailerMode = HeaderSendMode.Send }, upstream);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Equal("body", result.BodyText);
        Assert.Equal("changed", result.Trailers!.Get("x-trailer"));
        Assert.Equal("yes", result.Trailers.Get("x-added"));
    }

    [Fact]
    public async Task OnlyTrailersMode_OnlyTrailerMessagesSent()
    {
        var upstream = new CannedUpstream { Trailers = HttpHeaderList.Of(("x-resp-trailer", "1")) }.WithBody("body");
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c => c.ProcessingMode = new()
        {
            RequestHeaderMode = HeaderSendMode.Skip,
            ResponseHeaderMode = HeaderSendMode.Skip,
            RequestTrailerMode = HeaderSendMode.Send,
            ResponseTrailerMode = HeaderSendMode.Send,
        }, upstream);
        var request = TestRequest.Post("/", "data");
        var result = await h.RunAsync(new TestRequest { Headers = request.Headers, BodyChunks = request.BodyChunks, Trailers = HttpHeaderList.Of(("x-req-trailer", "1")) });

        Assert.Equal(200, result.Status);
        Assert.Equal([RequestOneofCase.RequestTrailers, RequestOneofCase.ResponseTrailers], result.Sent.Select(m => m.RequestCase));
        Assert.Equal("1", result.UpstreamTrailers!.Get("x-req-trailer"));
        Assert.Equal("1", result.Trailers!.Get("x-resp-trailer"));
    }

    [Fact]
    public async Task NoTrailersOnResponseWithModeSendBodyTrailer_NothingSentForTrailers()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c => c.ProcessingMode = new()
        {
            ResponseBodyMode = BodySendMode.Buffered,
            RequestTrailerMode = HeaderSendMode.Send,
            ResponseTrailerMode = HeaderSendMode.Send,
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Equal([RequestOneofCase.RequestHeaders, RequestOneofCase.ResponseHeaders, RequestOneofCase.ResponseBody],
            result.Sent.Select(m => m.RequestCase));
        Assert.True(result.Sent[2].ResponseBody.EndOfStream);
    }

    [Fact]
    public async Task RequestTrailers_HeaderSkipAndBufferedBody_BodyThenTrailersSent()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c => c.ProcessingMode = new()
        {
            RequestHeaderMode = HeaderSendMode.Skip,
            ResponseHeaderMode = HeaderSendMode.Skip,
            RequestBodyMode = BodySendMode.Buffered,
            RequestTrailerMode = HeaderSendMode.Send,
        });
        var post = TestRequest.Post("/", "abc", "def");
        var result = await h.RunAsync(new TestRequest { Headers = post.Headers, BodyChunks = post.BodyChunks, Trailers = HttpHeaderList.Of(("x-t", "1")) });

        Assert.Equal(200, result.Status);
        Assert.Equal([RequestOneofCase.RequestBody, RequestOneofCase.RequestTrailers], result.Sent.Select(m => m.RequestCase));
        Assert.Equal("abcdef", result.Sent[0].RequestBody.Text());
        Assert.False(result.Sent[0].RequestBody.EndOfStream);
        Assert.Equal("abcdef", result.UpstreamBodyText);
        Assert.Equal("1", result.UpstreamTrailers!.Get("x-t"));
    }

    [Theory]
    [InlineData(new[] { "x-allowed", "x-both" }, null, new[] { "x-allowed", "x-both" })]
    [InlineData(null, new[] { "x-denied", "x-both" }, new[] { ":scheme", ":method", ":authority", ":path", "x-forwarded-proto", "x-allowed" })]
    [InlineData(new[] { "x-allowed", "x-both" }, new[] { "x-both" }, new[] { "x-allowed" })]
    public async Task ForwardRules_AllowDisallowBoth_AppliedToHeadersAndTrailers(string[]? allowed, string[]? disallowed, string[] expected)
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
        {
            c.ProcessingMode = new() { ResponseHeaderMode = HeaderSendMode.Skip, RequestTrailerMode = HeaderSendMode.Send };
            c.ForwardRules = new HeaderForwardingRulesConfig { AllowedHeaders = allowed?.ToList(), DisallowedHeaders = disallowed?.ToList() };
        });
        var post = TestRequest.Post("/", "x");
        post.Headers.Add("x-allowed", "1").Add("x-denied", "2").Add("x-both", "3");
        var trailers = HttpHeaderList.Of(("x-allowed", "1"), ("x-denied", "2"), ("x-both", "3"));
        var result = await h.RunAsync(new TestRequest { Headers = post.Headers, BodyChunks = post.BodyChunks, Trailers = trailers });

        Assert.Equal(expected, result.Sent[0].RequestHeaders.Headers.Headers.Select(v => v.Key));
        var trailerKeys = result.Sent.Single(m => m.RequestCase == RequestOneofCase.RequestTrailers).RequestTrailers.Trailers.Headers.Select(v => v.Key);
        Assert.Equal(expected.Where(k => !k.StartsWith(':') && k != "x-forwarded-proto"), trailerKeys);
        // Forwarding rules only filter what the server sees.
        Assert.Equal("2", result.UpstreamHeaders!.Get("x-denied"));
    }

    public enum MutationPhase
    {
        RequestHeaders,
        ResponseHeaders,
        RequestBody,
        ResponseBody,
    }

    private static HeaderMutation ManyHeaders(int count, string prefix)
    {
        var mutation = new HeaderMutation();
        for (var i = 0; i < count; i++)
        {
            mutation.SetHeaders.Add(Replies.Set($"{prefix}-{i}", "v"));
        }

        return mutation;
    }

    private static Func<ProcessorSession, Task> MutateIn(MutationPhase? phase, HeaderMutation mutation) => async s =>
    {
        while (await s.ReadAsync() is { } m)
        {
            var common = Replies.Common(mutation.Clone());
            var reply = (phase, m.RequestCase) switch
            {
                (MutationPhase.RequestHeaders, RequestOneofCase.RequestHeaders) => Replies.RequestHeaders(common),
                (MutationPhase.ResponseHeaders, RequestOneofCase.ResponseHeaders) => Replies.ResponseHeaders(common),
                (MutationPhase.RequestBody, RequestOneofCase.RequestBody) => Replies.RequestBody(common),
                (MutationPhase.ResponseBody, RequestOneofCase.ResponseBody) => Replies.ResponseBody(common),
                (null, RequestOneofCase.RequestHeaders) => Replies.RequestHeaders(Replies.Common(ManyHeaders(20, "rqh"))),
                (null, RequestOneofCase.ResponseHeaders) => Replies.ResponseHeaders(Replies.Common(ManyHeaders(20, "rsh"))),
                (null, RequestOneofCase.RequestBody) => Replies.RequestBody(Replies.Common(ManyHeaders(20, "rqb"))),
                (null, RequestOneofCase.ResponseBody) => Replies.ResponseBody(Replies.Common(ManyHeaders(20, "rsb"))),
                (null, RequestOneofCase.RequestTrailers) => Replies.RequestTrailers(ManyHeaders(20, "rqt")),
                (null, RequestOneofCase.ResponseTrailers) => Replies.ResponseTrailers(ManyHeaders(20, "rst")),
                _ => Replies.ContinueFor(m)!,
            };
            await s.SendAsync(reply);
        }
    };

    private static void BufferedBoth(ExtProcFilterConfig c)
    {
        c.ProcessingMode = new() { RequestBodyMode = BodySendMode.Buffered, ResponseBodyMode = BodySendMode.Buffered };
        c.MaxHeadersCount = 50;
    }

    [Theory]
    [InlineData(MutationPhase.RequestHeaders)]
    [InlineData(MutationPhase.ResponseHeaders)]
    [InlineData(MutationPhase.RequestBody)]
    [InlineData(MutationPhase.ResponseBody)]
    public async Task HeaderMutationCheckFailWithHcmSizeConfig_60MutationsOverLimit50_500(MutationPhase phase)
    {
        await using var h = await EmulatorHarness.StartAsync(MutateIn(phase, ManyHeaders(60, "x-many")), BufferedBoth);
        var result = await h.RunAsync(TestRequest.Post("/", "body"));

        Assert.Equal(500, result.Status);
        Assert.Equal(LocalReplyDetails.HeaderMutationFailed, result.Details);
        Assert.Equal(phase is MutationPhase.RequestHeaders or MutationPhase.RequestBody, !result.UpstreamContacted);
    }

    [Fact]
    public async Task HeaderMutationResultOverSizeLimit_RequestTrailers500ResponseTrailersReset()
    {
        var big = Replies.Mutation(Replies.Set("x-big", new string('a', 2048)));
        Func<ProcessorSession, Task> Script(RequestOneofCase trailers) => async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                await s.SendAsync(m.RequestCase == trailers
                    ? (trailers == RequestOneofCase.RequestTrailers ? Replies.RequestTrailers(big) : Replies.ResponseTrailers(big))
                    : Replies.ContinueFor(m)!);
            }
        };
        void Configure(ExtProcFilterConfig c)
        {
            c.ProcessingMode = new() { RequestTrailerMode = HeaderSendMode.Send, ResponseTrailerMode = HeaderSendMode.Send };
            c.MaxRequestHeadersKb = 1;
        }

        var post = TestRequest.Post("/", "body");
        var withTrailers = new TestRequest { Headers = post.Headers, BodyChunks = post.BodyChunks, Trailers = HttpHeaderList.Of(("x-t", "1")) };

        await using var req = await EmulatorHarness.StartAsync(Script(RequestOneofCase.RequestTrailers), Configure,
            new CannedUpstream { Trailers = HttpHeaderList.Of(("x-rt", "1")) }.WithBody("b"));
        var requestResult = await req.RunAsync(withTrailers);
        Assert.Equal(500, requestResult.Status);
        Assert.True(requestResult.UpstreamReset);

        await using var resp = await EmulatorHarness.StartAsync(Script(RequestOneofCase.ResponseTrailers), Configure,
            new CannedUpstream { Trailers = HttpHeaderList.Of(("x-rt", "1")) }.WithBody("b"));
        var responseResult = await resp.RunAsync(withTrailers);
        Assert.Equal(200, responseResult.Status);
        Assert.True(responseResult.Reset);
        Assert.Null(responseResult.Trailers);
    }

    [Fact]
    public async Task HeaderMutationCheckPassWithHcmSizeConfig_20MutationsInEveryPhase_200()
    {
        await using var h = await EmulatorHarness.StartAsync(MutateIn(null, new HeaderMutation()), c =>
        {
            BufferedBoth(c);
            c.ProcessingMode.RequestTrailerMode = HeaderSendMode.Send;
            c.ProcessingMode.ResponseTrailerMode = HeaderSendMode.Send;
        }, new CannedUpstream { Trailers = HttpHeaderList.Of(("x-rt", "1")) }.WithBody("b"));
        var post = TestRequest.Post("/", "body");
        var result = await h.RunAsync(new TestRequest { Headers = post.Headers, BodyChunks = post.BodyChunks, Trailers = HttpHeaderList.Of(("x-t", "1")) });

        Assert.Equal(200, result.Status);
        Assert.False(result.Reset);
        Assert.Equal("v", result.UpstreamHeaders!.Get("rqh-19"));
        Assert.Equal("v", result.UpstreamHeaders.Get("rqb-19"));
        Assert.Equal("v", result.UpstreamTrailers!.Get("rqt-19"));
        Assert.Equal("v", result.ResponseHeaders!.Get("rsh-19"));
        Assert.Equal("v", result.ResponseHeaders.Get("rsb-19"));
        Assert.Equal("v", result.Trailers!.Get("rst-19"));
    }
}
