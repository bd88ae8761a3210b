using System.Runtime.CompilerServices;
using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using Google.Protobuf;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>§6.3 item 43: streamed_immediate_response (Envoy 1.37 streamed local reply).</summary>
public sealed class StreamedLocalReplyTests
{
    private static ProcessingResponse LocalHeaders(int status, bool endOfStream)
    {
        var headers = new HeaderMap();
        headers.Headers.Add(new HeaderValue { Key = ":status", RawValue = ByteString.CopyFromUtf8(status.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
        headers.Headers.Add(new HeaderValue { Key = "content-type", RawValue = ByteString.CopyFromUtf8("text/event-stream") });
        return new ProcessingResponse
        {
            StreamedImmediateResponse = new StreamedImmediateResponse { HeadersResponse = new HttpHeaders { Headers = headers, EndOfStream = endOfStream } },
        };
    }

    private static ProcessingResponse LocalBody(string body, bool endOfStream) => new()
    {
        StreamedImmediateResponse = new StreamedImmediateResponse
        {
            BodyResponse = new StreamedBodyResponse { Body = ByteString.CopyFromUtf8(body), EndOfStream = endOfStream },
        },
    };

    private static ProcessingResponse LocalTrailers(string key, string value)
    {
        var trailers = new HeaderMap();
        trailers.Headers.Add(new HeaderValue { Key = key, RawValue = ByteString.CopyFromUtf8(value) });
        return new ProcessingResponse { StreamedImmediateResponse = new StreamedImmediateResponse { TrailersResponse = trailers } };
    }

    /// <summary>A request body source that signals once every frame was handed to the emulator.</summary>
    private static async IAsyncEnumerable<HttpFrame> Frames(IEnumerable<HttpFrame> frames, TaskCompletionSource delivered, Task? holdOpen = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (var frame in frames)
        {
            yield return frame;
        }

        delivered.TrySetResult();
        if (holdOpen is not null)
        {
            await holdOpen.WaitAsync(cancellationToken);
        }
    }

    private static async Task<List<HttpFrame>> CollectAsync(EmulatedStream stream)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var frames = new List<HttpFrame>();
        await foreach (var frame in stream.Downstream.ReadAllAsync(cts.Token))
        {
            frames.Add(frame);
        }

        await stream.Completion.WaitAsync(cts.Token);
        return frames;
    }

    private static string BodyOf(List<HttpFrame> frames) =>
        string.Concat(frames.OfType<DataFrame>().Select(d => Encoding.UTF8.GetString(d.Data.Span)));

    [Fact]
    public async Task StreamedLocalReply_HeadersOnly()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(LocalHeaders(204, endOfStream: true));
            await s.DrainAsync();
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(204, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.False(result.Reset);
        Assert.Equal("text/event-stream", result.ResponseHeaders!.Get("content-type"));
    }

    [Fact]
    public async Task StreamedLocalReply_HeadersBodyAndTrailers()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(LocalHeaders(200, endOfStream: false));
            await s.SendAsync(LocalBody("data: one\n\n", false));
            await s.SendAsync(LocalBody("data: two\n\n", false));
            await s.SendAsync(LocalTrailers("x-local-trailer", "done"));
            await s.DrainAsync();
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Equal("data: one\n\ndata: two\n\n", result.BodyText);
        Assert.Equal("done", result.Trailers!.Get("x-local-trailer"));
        Assert.False(result.UpstreamContacted);
        Assert.False(result.Reset);
    }

    [Fact]
    public async Task StreamedLocalReply_HeadersAndBodyEndOfStream()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(LocalHeaders(200, endOfStream: false));
            await s.SendAsync(LocalBody("cached answer", true));
            await s.DrainAsync();
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal("cached answer", result.BodyText);
        Assert.Null(result.Trailers);
        Assert.False(result.Reset);
    }

    [Fact]
    public async Task StreamedLocalReply_RequestBodySkippedInModeNone()
    {
        var delivered = new TaskCompletionSource();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await delivered.Task;
            await s.SendAsync(LocalHeaders(200, endOfStream: false));
            await s.SendAsync(LocalBody("local", true));
            await s.DrainAsync();
        });
        var stream = h.Emulator.Start(new DownstreamRequest
        {
            Headers = TestRequest.DefaultHeaders("POST", "/"),
            Body = Frames([DataFrame.Of("ignored request body", endStream: true)], delivered),
        });
        var frames = await CollectAsync(stream);

        Assert.Equal("local", BodyOf(frames));
        Assert.DoesNotContain(frames, f => f is ResetFrame);
        Assert.DoesNotContain(stream.Log, e => e.Request?.RequestCase == RequestOneofCase.RequestBody);
        Assert.Null(stream.UpstreamHeaders);
    }

    [Fact]
    public async Task StreamedLocalReply_IncompleteRequestWhenLocalReplyFinishes_BodyThenReset()
    {
        var delivered = new TaskCompletionSource();
        var never = new TaskCompletionSource();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await delivered.Task;
            await s.SendAsync(LocalHeaders(200, endOfStream: false));
            await s.SendAsync(LocalBody("full local response", true));
            await s.DrainAsync();
        });
        var stream = h.Emulator.Start(new DownstreamRequest
        {
            Headers = TestRequest.DefaultHeaders("POST", "/"),
            Body = Frames([DataFrame.Of("partial")], delivered, never.Task),
        });
        var frames = await CollectAsync(stream);

        Assert.Equal("full local response", BodyOf(frames));
        Assert.IsType<ResetFrame>(frames[^1]);
    }

    [Fact]
    public async Task StreamedLocalReply_DuplexRequestChunksAnsweredWithLocalBodyChunks()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(LocalHeaders(200, endOfStream: false));
            Assert.Equal("aaaaaaaaaa", (await s.ExpectAsync(RequestOneofCase.RequestBody)).RequestBody.Text());
            await s.SendAsync(LocalBody("bbbb", false));
            var last = await s.ExpectAsync(RequestOneofCase.RequestBody);
            Assert.Equal("aaaaa", last.RequestBody.Text());
            await s.ExpectAsync(RequestOneofCase.RequestTrailers);
            await s.SendAsync(LocalBody("cccccccc", false));
            await s.SendAsync(LocalTrailers("x-end", "1"));
            await s.DrainAsync();
        }, c => c.ProcessingMode = new()
        {
            RequestBodyMode = BodySendMode.FullDuplexStreamed,
            RequestTrailerMode = HeaderSendMode.Send,
        });
        var result = await h.RunAsync(new TestRequest
        {
            Headers = TestRequest.DefaultHeaders("POST", "/"),
            BodyChunks = [Encoding.UTF8.GetBytes("aaaaaaaaaa"), Encoding.UTF8.GetBytes("aaaaa")],
            Trailers = HttpHeaderList.Of(("x-req", "1")),
        });

        Assert.Equal(200, result.Status);
        Assert.Equal("bbbbcccccccc", result.BodyText);
        Assert.Equal("1", result.Trailers!.Get("x-end"));
        Assert.False(result.UpstreamContacted);
        Assert.False(result.Reset);
    }

    [Fact]
    public async Task StreamedLocalReply_SpuriousReplyAfterHeaders_Reset()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(LocalHeaders(200, endOfStream: false));
            await s.SendAsync(Replies.RequestHeaders());
            await s.DrainAsync();
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.True(result.Reset);
        Assert.Equal(1, result.Stats[ExtProcStats.SpuriousMsgsReceived]);
    }

    [Fact]
    public async Task StreamedLocalReply_WithBufferedRequestBody_Spurious500()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(LocalHeaders(200, endOfStream: true));
            await s.DrainAsync();
        }, c => c.ProcessingMode = new() { RequestBodyMode = BodySendMode.Buffered });
        var result = await h.RunAsync(TestRequest.Post("/", "x"));

        Assert.Equal(500, result.Status);
        Assert.Equal(LocalReplyDetails.SpuriousMessage, result.Details);
    }
}
