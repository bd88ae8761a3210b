using System.Text;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using Microsoft.Extensions.Time.Testing;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>§6.3 items 41-42: FULL_DUPLEX_STREAMED.</summary>
public sealed class FullDuplexTests
{
    private static void Duplex(ExtProcFilterConfig c, bool response = false)
    {
        c.ProcessingMode = new()
        {
            RequestBodyMode = BodySendMode.FullDuplexStreamed,
            RequestTrailerMode = HeaderSendMode.Send,
            ResponseHeaderMode = response ? HeaderSendMode.Send : HeaderSendMode.Skip,
            ResponseBodyMode = response ? BodySendMode.FullDuplexStreamed : BodySendMode.None,
            ResponseTrailerMode = response ? HeaderSendMode.Send : HeaderSendMode.Default,
        };
    }

    private static TestRequest Chunks(int count, int size = 5, HttpHeaderList? trailers = null) => new()
    {
        Headers = TestRequest.DefaultHeaders("POST", "/"),
        BodyChunks = [.. Enumerable.Range(0, count).Select(i => Enumerable.Repeat((byte)('a' + (i % 26)), size).ToArray())],
        Trailers = trailers,
    };

    [Fact]
    public async Task ServerBuffersWholeBodyThenHeaderReplyAnd2NChunks_UpstreamGetsOnlyServerOutput()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            var headers = await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            Assert.Equal(BodySendMode.FullDuplexStreamed, headers.ProtocolConfig.RequestBodyMode);
            var total = new StringBuilder();
            ProcessingRequest body;
            do
            {
                body = await s.ExpectAsync(RequestOneofCase.RequestBody);
                total.Append(body.RequestBody.Text());
            }
            while (!body.RequestBody.EndOfStream);

            await s.SendAsync(Replies.RequestHeaders());
            for (var i = 0; i < 6; i++)
            {
                await s.SendAsync(Replies.StreamedBody(true, $"<{i}>", i == 5));
            }

            await ScriptedProcessor.ContinueAll(s);
        }, c => Duplex(c));
        var result = await h.RunAsync(Chunks(3));

        Assert.Equal(200, result.Status);
        Assert.Equal("<0><1><2><3><4><5>", result.UpstreamBodyText);
        Assert.False(result.UpstreamHeaders!.Contains("content-length"));
    }

    [Fact]
    public async Task LargeBody_2MiBIn64KiBChunksAnswered32Replies()
    {
        const int chunk = 64 * 1024;
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            var received = 0;
            ProcessingRequest body;
            do
            {
                body = await s.ExpectAsync(RequestOneofCase.RequestBody);
                received += body.RequestBody.Body.Length;
            }
            while (!body.RequestBody.EndOfStream);

            Assert.Equal(2 * 1024 * 1024, received);
            for (var i = 0; i < 32; i++)
            {
                await s.SendAsync(Replies.StreamedBody(true, new string('z', chunk), i == 31));
            }

            await ScriptedProcessor.ContinueAll(s);
        }, c => Duplex(c));
        var result = await h.RunAsync(Chunks(32, chunk));

        Assert.Equal(200, result.Status);
        Assert.Equal(2 * 1024 * 1024, result.UpstreamBody.Length);
    }

    [Fact]
    public async Task BodyAndTrailersBuffered_ThenBodyChunksAndTrailersReply()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            for (var i = 0; i < 2; i++)
            {
                Assert.False((await s.ExpectAsync(RequestOneofCase.RequestBody)).RequestBody.EndOfStream);
            }

            await s.ExpectAsync(RequestOneofCase.RequestTrailers);
            await s.SendAsync(Replies.RequestHeaders());
            await s.SendAsync(Replies.StreamedBody(true, "x", false));
            await s.SendAsync(Replies.StreamedBody(true, "y", false));
            await s.SendAsync(Replies.RequestTrailers(Replies.Mutation(Replies.Set("x-trailer", "from-server"))));
            await ScriptedProcessor.ContinueAll(s);
        }, c => Duplex(c));
        var result = await h.RunAsync(Chunks(2, trailers: HttpHeaderList.Of(("x-trailer", "client"))));

        Assert.Equal(200, result.Status);
        Assert.Equal("xy", result.UpstreamBodyText);
        Assert.Equal("from-server", result.UpstreamTrailers!.Get("x-trailer"));
    }

    [Fact]
    public async Task ServerInterleavesEvery7Chunks_EndsWithTrailersReply()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            for (var i = 1; i <= 14; i++)
            {
                await s.ExpectAsync(RequestOneofCase.RequestBody);
                if (i % 7 == 0)
                {
                    await s.SendAsync(Replies.StreamedBody(true, $"[{i}]", false));
                }
            }

            await s.ExpectAsync(RequestOneofCase.RequestTrailers);
            await s.SendAsync(Replies.RequestTrailers());
            await ScriptedProcessor.ContinueAll(s);
        }, c => Duplex(c));
        var result = await h.RunAsync(Chunks(14, trailers: HttpHeaderList.Of(("x-t", "1"))));

        Assert.Equal(200, result.Status);
        Assert.Equal("[7][14]", result.UpstreamBodyText);
        Assert.Equal("1", result.UpstreamTrailers!.Get("x-t"));
    }

    [Fact]
    public async Task BothDirectionsDuplex_ServerRewritesRequestAndResponse()
    {
        var upstream = new CannedUpstream().WithBody("u1", "u2");
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                switch (m.RequestCase)
                {
                    case RequestOneofCase.RequestBody:
                        await s.SendAsync(Replies.StreamedBody(true, m.RequestBody.Text().ToUpperInvariant(), m.RequestBody.EndOfStream));
                        break;
                    case RequestOneofCase.ResponseBody:
                        await s.SendAsync(Replies.StreamedBody(false, m.ResponseBody.Text() + "!", m.ResponseBody.EndOfStream));
                        break;
                    default:
                        await s.SendAsync(Replies.ContinueFor(m)!);
                        break;
                }
            }
        }, c => Duplex(c, response: true), upstream);
        var result = await h.RunAsync(TestRequest.Post("/", "ab", "cd"));

        Assert.Equal(200, result.Status);
        Assert.Equal("ABCD", result.UpstreamBodyText);
        Assert.Equal("u1!u2!", result.BodyText);
    }

    [Fact]
    public async Task ServerSendOutOfOrderResponseDuplexStreamed_BodyReplyBeforeHeaderReply_500()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.ExpectAsync(RequestOneofCase.RequestBody);
            await s.SendAsync(Replies.StreamedBody(true, "early", true));
            await s.DrainAsync();
        }, c => Duplex(c));
        var result = await h.RunAsync(TestRequest.Post("/", "x"));

        Assert.Equal(500, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.Equal(1, result.Stats[ExtProcStats.SpuriousMsgsReceived]);
    }

    [Fact]
    public async Task PlainBodyMutationInDuplex_Spurious500()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            await s.ExpectAsync(RequestOneofCase.RequestBody);
            await s.SendAsync(Replies.RequestBody(Replies.Common(body: "plain")));
            await s.DrainAsync();
        }, c => Duplex(c));
        var result = await h.RunAsync(TestRequest.Post("/", "x"));

        Assert.Equal(500, result.Status);
        Assert.True(result.UpstreamReset);
    }

    [Fact]
    public async Task ServerSilentWithStreamIdleTimeout_NoMessageTimerOnly504FromIdleTimeout()
    {
        var time = new FakeTimeProvider();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.ExpectAsync(RequestOneofCase.RequestBody);
            time.Advance(TimeSpan.FromSeconds(9));
            time.Advance(TimeSpan.FromSeconds(1));
            await s.DrainAsync();
        }, c =>
        {
            Duplex(c);
            c.StreamIdleTimeout = TimeSpan.FromSeconds(10);
        }, time: time);
        var result = await h.RunAsync(TestRequest.Post("/", "x"));

        Assert.Equal(504, result.Status);
        Assert.Equal(LocalReplyDetails.StreamIdleTimeout, result.Details);
        Assert.Equal(0, result.Stats[ExtProcStats.MessageTimeouts]);
    }

    [Fact]
    public async Task SynthesisedTrailersReplyWithoutClientTrailers_Ignored()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            await s.ExpectAsync(RequestOneofCase.RequestBody);
            await s.SendAsync(Replies.RequestTrailers(Replies.Mutation(Replies.Set("x-synth", "1"))));
            await s.SendAsync(Replies.StreamedBody(true, "done", true));
            await ScriptedProcessor.ContinueAll(s);
        }, c => Duplex(c));
        var result = await h.RunAsync(TestRequest.Post("/", "x"));

        Assert.Equal(200, result.Status);
        Assert.Equal("done", result.UpstreamBodyText);
        Assert.Null(result.UpstreamTrailers);
        Assert.Equal(0, result.Stats[ExtProcStats.SpuriousMsgsReceived]);
    }

    [Fact]
    public async Task DuplexFailOpen_DisabledOnceBodyStarted_GrpcError500()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            await s.ExpectAsync(RequestOneofCase.RequestBody);
            throw new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.Internal, ""));
        }, c =>
        {
            Duplex(c);
            c.FailureModeAllow = true;
        });
        var result = await h.RunAsync(TestRequest.Post("/", "x"));

        Assert.Equal(500, result.Status);
        Assert.Equal(0, result.Stats[ExtProcStats.FailureModeAllowed]);
    }
}
