using System.Text;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>§6.3 items 17-28: bodies.</summary>
public sealed class BodyTests
{
    private static Action<ExtProcFilterConfig> RequestBody(BodySendMode mode, HeaderSendMode headers = HeaderSendMode.Send) => c =>
        c.ProcessingMode = new() { RequestHeaderMode = headers, RequestBodyMode = mode, ResponseHeaderMode = HeaderSendMode.Skip };

    private static TestRequest Post(string path, params string[] chunks)
    {
        var request = TestRequest.Post(path, chunks);
        var length = chunks.Sum(c => Encoding.UTF8.GetByteCount(c));
        request.Headers.Add("content-length", length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return request;
    }

    [Theory]
    [InlineData(BodySendMode.Buffered)]
    [InlineData(BodySendMode.Streamed)]
    [InlineData(BodySendMode.BufferedPartial)]
    public async Task BodyMessages_GetNoBodyPostEmptyPostTesting_EnvoyEndOfStreamRules(BodySendMode mode)
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, RequestBody(mode));

        var get = await h.RunAsync(TestRequest.Get());
        Assert.Equal([RequestOneofCase.RequestHeaders], get.Sent.Select(m => m.RequestCase));
        Assert.True(get.Sent[0].RequestHeaders.EndOfStream);

        var empty = await h.RunAsync(TestRequest.Post("/"));
        Assert.Equal([RequestOneofCase.RequestHeaders, RequestOneofCase.RequestBody], empty.Sent.Select(m => m.RequestCase));
        Assert.False(empty.Sent[0].RequestHeaders.EndOfStream);
        Assert.Equal("", empty.Sent[1].RequestBody.Text());
        Assert.True(empty.Sent[1].RequestBody.EndOfStream);

        var testing = await h.RunAsync(TestRequest.Post("/", "Testing"));
        Assert.Equal(200, testing.Status);
        Assert.Equal([RequestOneofCase.RequestHeaders, RequestOneofCase.RequestBody], testing.Sent.Select(m => m.RequestCase));
        Assert.Equal("Testing", testing.Sent[1].RequestBody.Text());
        Assert.True(testing.Sent[1].RequestBody.EndOfStream);
        Assert.Equal("Testing", testing.UpstreamBodyText);
    }

    [Theory]
    [InlineData(BodySendMode.Streamed, HeaderSendMode.Send, false)]
    [InlineData(BodySendMode.Streamed, HeaderSendMode.Send, true)]
    [InlineData(BodySendMode.BufferedPartial, HeaderSendMode.Send, false)]
    [InlineData(BodySendMode.BufferedPartial, HeaderSendMode.Send, true)]
    [InlineData(BodySendMode.Buffered, HeaderSendMode.Skip, false)]
    public async Task ContentLength_RemovedInStreamingModes_Http1GoesChunked(BodySendMode mode, HeaderSendMode headers, bool serverSetsLength)
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                await s.SendAsync(m.RequestCase == RequestOneofCase.RequestHeaders && serverSetsLength
                    ? Replies.RequestHeaders(Replies.Common(Replies.Mutation(Replies.Set("content-length", "13"))))
                    : Replies.ContinueFor(m)!);
            }
        }, c =>
        {
            RequestBody(mode, headers)(c);
            c.UpstreamProtocol = HttpProtocol.Http1;
        });
        var result = await h.RunAsync(Post("/", "Hello, World!"));

        Assert.Equal(200, result.Status);
        // The server still saw the original content-length.
        if (headers == HeaderSendMode.Send)
        {
            Assert.Equal("13", result.Sent[0].RequestHeaders.Headers.Get("content-length"));
        }

        Assert.False(result.UpstreamHeaders!.Contains("content-length"));
        Assert.Equal("chunked", result.UpstreamHeaders.Get("transfer-encoding"));
        Assert.Equal("Hello, World!", result.UpstreamBodyText);
    }

    [Fact]
    public async Task ContentLength_BufferedWithHeaderSend_KeptAndServerSet()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            await s.ExpectAsync(RequestOneofCase.RequestBody);
            await s.SendAsync(Replies.RequestBody(Replies.Common(Replies.Mutation(Replies.Set("content-length", "13")), body: "Hello, World!")));
            await s.DrainAsync();
        }, RequestBody(BodySendMode.Buffered));
        var result = await h.RunAsync(Post("/", "short"));

        Assert.Equal(200, result.Status);
        Assert.Equal("13", result.UpstreamHeaders!.Get("content-length"));
        Assert.Equal("Hello, World!", result.UpstreamBodyText);
    }

    [Fact]
    public async Task MismatchedContentLengthAndBodyLength_BufferedReplacement_500UpstreamNeverContacted()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            await s.ExpectAsync(RequestOneofCase.RequestBody);
            await s.SendAsync(Replies.RequestBody(Replies.Common(body: "a much longer replacement body")));
            await s.DrainAsync();
        }, RequestBody(BodySendMode.Buffered));
        var result = await h.RunAsync(Post("/", "short"));

        Assert.Equal(500, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.Equal(LocalReplyDetails.ContentLengthMismatch, result.Details);
    }

    [Fact]
    public async Task BufferedResponseBody_4000BytesIn1000ByteChunks_OneMessageAndHeaderMutationApplied()
    {
        var upstream = new CannedUpstream();
        for (var i = 0; i < 4; i++)
        {
            upstream.BodyChunks.Add(Enumerable.Repeat((byte)('a' + i), 1000).ToArray());
        }

        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                await s.SendAsync(m.RequestCase == RequestOneofCase.ResponseBody
                    ? Replies.ResponseBody(Replies.Common(Replies.Mutation(Replies.Set("x-body-size", m.ResponseBody.Body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)))))
                    : Replies.ContinueFor(m)!);
            }
        }, c => c.ProcessingMode = new() { ResponseBodyMode = BodySendMode.Buffered }, upstream);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        var bodies = result.Sent.Where(m => m.RequestCase == RequestOneofCase.ResponseBody).ToList();
        Assert.Single(bodies);
        Assert.True(bodies[0].ResponseBody.EndOfStream);
        Assert.Equal("4000", result.ResponseHeaders!.Get("x-body-size"));
        Assert.Equal(4000, result.Body.Length);
    }

    [Fact]
    public async Task BufferedPartialResponse_HeadersMutableInBodyReplyAndContentLengthRemoved()
    {
        var upstream = new CannedUpstream().WithHeader("content-length", "10").WithBody("0123456789");
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                await s.SendAsync(m.RequestCase == RequestOneofCase.ResponseBody
                    ? Replies.ResponseBody(Replies.Common(Replies.Mutation(Replies.Set("x-partial", "yes")), body: "replaced"))
                    : Replies.ContinueFor(m)!);
            }
        }, c => c.ProcessingMode = new() { ResponseBodyMode = BodySendMode.BufferedPartial }, upstream);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Equal("yes", result.ResponseHeaders!.Get("x-partial"));
        Assert.False(result.ResponseHeaders.Contains("content-length"));
        Assert.Equal("replaced", result.BodyText);
    }

    [Fact]
    public async Task BufferedPartial_OverBufferLimit_FirstPartSentRestPassesUnseen()
    {
        var headersAnswered = new TaskCompletionSource();
        var partAnswered = new TaskCompletionSource();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            headersAnswered.TrySetResult();
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestBody))!);
            partAnswered.TrySetResult();
            await ScriptedProcessor.ContinueAll(s);
        }, c =>
        {
            RequestBody(BodySendMode.BufferedPartial)(c);
            c.BufferLimitBytes = 8;
        });
        var result = await h.RunAsync(new TestRequest
        {
            Headers = TestRequest.DefaultHeaders("POST", "/"),
            BodyChunks = [.. new[] { "1234", "56789", "abc" }.Select(Encoding.UTF8.GetBytes)],
            BeforeChunk = i => i == 1 ? headersAnswered.Task : partAnswered.Task,
        });

        Assert.Equal(200, result.Status);
        var bodies = result.Sent.Where(m => m.RequestCase == RequestOneofCase.RequestBody).ToList();
        Assert.Single(bodies);
        Assert.Equal("123456789", bodies[0].RequestBody.Text());
        Assert.False(bodies[0].RequestBody.EndOfStream);
        Assert.Equal("123456789abc", result.UpstreamBodyText);
    }

    [Fact]
    public async Task BufferedResponseBodyWithTrailers_BodyNotEndOfStreamThenTrailersMessage()
    {
        var upstream = new CannedUpstream { Trailers = HttpHeaderList.Of(("x-trailer", "t")) }.WithBody("part1", "part2");
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c => c.ProcessingMode = new()
        {
            ResponseBodyMode = BodySendMode.Buffered,
            ResponseTrailerMode = HeaderSendMode.Send,
        }, upstream);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal([RequestOneofCase.RequestHeaders, RequestOneofCase.ResponseHeaders, RequestOneofCase.ResponseBody, RequestOneofCase.ResponseTrailers],
            result.Sent.Select(m => m.RequestCase));
        Assert.Equal("part1part2", result.Sent[2].ResponseBody.Text());
        Assert.False(result.Sent[2].ResponseBody.EndOfStream);
        Assert.Equal("t", result.Trailers!.Get("x-trailer"));
        Assert.Equal("part1part2", result.BodyText);
    }

    [Fact]
    public async Task GetAndSetBodyOnBoth_BufferedBothDirectionsReplaced()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                await s.SendAsync(m.RequestCase switch
                {
                    RequestOneofCase.RequestBody => Replies.RequestBody(Replies.Common(Replies.Mutation(Replies.Set("content-length", "11")), body: "new request")),
                    RequestOneofCase.ResponseBody => Replies.ResponseBody(Replies.Common(body: "new response")),
                    _ => Replies.ContinueFor(m)!,
                });
            }
        }, c => c.ProcessingMode = new() { RequestBodyMode = BodySendMode.Buffered, ResponseBodyMode = BodySendMode.Buffered });
        var result = await h.RunAsync(Post("/", "old"));

        Assert.Equal(200, result.Status);
        Assert.Equal("new request", result.UpstreamBodyText);
        Assert.Equal("new response", result.BodyText);
    }

    [Fact]
    public async Task ConvertGetToPost_ContinueAndReplaceAddsBodyAndContentType()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(
                Replies.Mutation(Replies.Set(":method", "POST"), Replies.Set("content-type", "text/plain")),
                body: "Hello, Server!", status: CommonResponse.Types.ResponseStatus.ContinueAndReplace)));
            await ScriptedProcessor.ContinueAll(s);
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Equal("POST", result.UpstreamHeaders!.Get(":method"));
        Assert.Equal("text/plain", result.UpstreamHeaders.Get("content-type"));
        Assert.Equal("Hello, Server!", result.UpstreamBodyText);
    }

    [Theory]
    [InlineData(BodySendMode.None)]
    [InlineData(BodySendMode.Buffered)]
    public async Task ReplaceCompleteRequest_ContinueAndReplaceDropsClientBodyAndSendsNoBodyMessage(BodySendMode mode)
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(body: "replacement", status: CommonResponse.Types.ResponseStatus.ContinueAndReplace)));
            await ScriptedProcessor.ContinueAll(s);
        }, c => c.ProcessingMode = new() { RequestBodyMode = mode, RequestTrailerMode = HeaderSendMode.Send });
        var post = Post("/", "original body");
        var result = await h.RunAsync(new TestRequest { Headers = post.Headers, BodyChunks = post.BodyChunks, Trailers = HttpHeaderList.Of(("x-t", "1")) });

        Assert.Equal(200, result.Status);
        Assert.Equal("replacement", result.UpstreamBodyText);
        Assert.False(result.UpstreamHeaders!.Contains("content-length"));
        Assert.DoesNotContain(result.Sent, m => m.RequestCase is RequestOneofCase.RequestBody or RequestOneofCase.RequestTrailers);
    }

    [Fact]
    public async Task ClearRouteCacheInEveryReply_StreamedBothWays_200()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                var common = Replies.Common(new HeaderMutation(), clearRouteCache: true);
                await s.SendAsync(m.RequestCase switch
                {
                    RequestOneofCase.RequestHeaders => Replies.RequestHeaders(common),
                    RequestOneofCase.ResponseHeaders => Replies.ResponseHeaders(common),
                    RequestOneofCase.RequestBody => Replies.RequestBody(common),
                    RequestOneofCase.ResponseBody => Replies.ResponseBody(common),
                    _ => Replies.ContinueFor(m)!,
                });
            }
        }, c => c.ProcessingMode = new() { RequestBodyMode = BodySendMode.Streamed, ResponseBodyMode = BodySendMode.Streamed });
        var result = await h.RunAsync(TestRequest.Post("/", "a", "b"));

        Assert.Equal(200, result.Status);
        Assert.Equal("ab", result.UpstreamBodyText);
        Assert.Equal("upstream-body", result.BodyText);
    }

    [Fact]
    public async Task ClearRouteCache_WithoutHeaderMutationIgnoredAndRetainDisables()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders(new CommonResponse { ClearRouteCache = true }));
            await ScriptedProcessor.ContinueAll(s);
        });
        var ignored = await h.RunAsync(TestRequest.Get());
        Assert.Equal(1, ignored.Stats[ExtProcStats.ClearRouteCacheIgnored]);
        Assert.Equal(1, ignored.RouteSelections);

        await using var retain = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(new HeaderMutation(), clearRouteCache: true)));
            await ScriptedProcessor.ContinueAll(s);
        }, c => c.RouteCacheAction = RouteCacheAction.Retain);
        var retained = await retain.RunAsync(TestRequest.Get());
        Assert.Equal(1, retained.Stats[ExtProcStats.ClearRouteCacheDisabled]);
        Assert.Equal(1, retained.RouteSelections);
    }

    [Fact]
    public async Task ServerWaitForBodyBeforeSendsHeaderRespStreamed_16ChunksThen17Replies_UpstreamGets16Bytes()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            for (var i = 0; i < 16; i++)
            {
                var body = await s.ExpectAsync(RequestOneofCase.RequestBody);
                Assert.Equal(i == 15, body.RequestBody.EndOfStream);
            }

            await s.SendAsync(Replies.RequestHeaders());
            for (var i = 0; i < 16; i++)
            {
                await s.SendAsync(Replies.RequestBody(Replies.Common(body: "r")));
            }

            await ScriptedProcessor.ContinueAll(s);
        }, c =>
        {
            c.ProcessingMode = new() { RequestBodyMode = BodySendMode.Streamed, ResponseHeaderMode = HeaderSendMode.Skip };
            c.SendBodyWithoutWaitingForHeaderResponse = true;
        });
        var chunks = Enumerable.Range(0, 16).Select(_ => new byte[1024]).ToList();
        var result = await h.RunAsync(new TestRequest { Headers = TestRequest.DefaultHeaders("POST", "/"), BodyChunks = chunks });

        Assert.Equal(200, result.Status);
        Assert.Equal(new string('r', 16), result.UpstreamBodyText);
        Assert.True(result.Sent[0].ProtocolConfig.SendBodyWithoutWaitingForHeaderResponse);
    }

    [Fact]
    public async Task SendBodyWithoutWaiting_TrailersNotSentWhenModeSkip()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
        {
            c.ProcessingMode = new() { RequestBodyMode = BodySendMode.Streamed, ResponseHeaderMode = HeaderSendMode.Skip };
            c.SendBodyWithoutWaitingForHeaderResponse = true;
        });
        var post = TestRequest.Post("/", "a", "b");
        var result = await h.RunAsync(new TestRequest { Headers = post.Headers, BodyChunks = post.BodyChunks, Trailers = HttpHeaderList.Of(("x-t", "1")) });

        Assert.Equal(200, result.Status);
        Assert.DoesNotContain(result.Sent, m => m.RequestCase == RequestOneofCase.RequestTrailers);
        Assert.Equal("1", result.UpstreamTrailers!.Get("x-t"));
        Assert.Equal("ab", result.UpstreamBodyText);
    }

    [Fact]
    public async Task StreamedBody_ChunksPipelinedAndRepliedInOrder_EachReplyReplacesItsChunk()
    {
        var gate = new TaskCompletionSource();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            // Both chunks arrive before any body reply: Envoy does not wait per chunk.
            var first = await s.ExpectAsync(RequestOneofCase.RequestBody);
            gate.TrySetResult();
            var second = await s.ExpectAsync(RequestOneofCase.RequestBody);
            await s.SendAsync(Replies.RequestBody(Replies.Common(body: first.RequestBody.Text().ToUpperInvariant())));
            await s.SendAsync(Replies.RequestBody(new CommonResponse { BodyMutation = new BodyMutation { ClearBodyFlag = true } }));
            await ScriptedProcessor.ContinueAll(s);
        }, RequestBody(BodySendMode.Streamed));
        var post = TestRequest.Post("/", "abc", "def");
        var result = await h.RunAsync(new TestRequest { Headers = post.Headers, BodyChunks = post.BodyChunks, BeforeChunk = _ => gate.Task });

        Assert.Equal(200, result.Status);
        Assert.Equal("ABC", result.UpstreamBodyText);
    }

    [Fact]
    public async Task BufferedRequestOverBufferLimit_413AndResponseOverLimit_500()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
        {
            c.ProcessingMode = new() { RequestBodyMode = BodySendMode.Buffered };
            c.BufferLimitBytes = 4;
        });
        var tooLarge = await h.RunAsync(TestRequest.Post("/", "0123456789"));
        Assert.Equal(413, tooLarge.Status);
        Assert.Equal(LocalReplyDetails.RequestPayloadTooLarge, tooLarge.Details);
        Assert.False(tooLarge.UpstreamContacted);

        await using var resp = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
        {
            c.ProcessingMode = new() { ResponseBodyMode = BodySendMode.Buffered };
            c.BufferLimitBytes = 4;
        });
        var responseTooLarge = await resp.RunAsync(TestRequest.Get());
        Assert.Equal(500, responseTooLarge.Status);
        Assert.Equal(LocalReplyDetails.ResponsePayloadTooLarge, responseTooLarge.Details);
    }
}
