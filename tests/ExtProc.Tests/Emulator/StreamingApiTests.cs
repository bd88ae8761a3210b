using System.Text;
using System.Threading.Channels;
using ExtProc.EnvoyEmulator;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>The streaming API the data-plane harness uses: chunks flow both ways while the stream is open.</summary>
public sealed class StreamingApiTests
{
    private sealed class StreamingUpstream : IUpstream
    {
        public TaskCompletionSource<UpstreamRequest> Request { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Channel<HttpFrame> ResponseBody { get; } = Channel.CreateUnbounded<HttpFrame>();

        public Task<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
        {
            Request.TrySetResult(request);
            return Task.FromResult(new UpstreamResponse
            {
                Headers = HttpHeaderList.Of((":status", "200"), ("content-type", "text/event-stream")),
                Body = ResponseBody.Reader.ReadAllAsync(cancellationToken),
            });
        }
    }

    private static string Text(HttpFrame frame) => Encoding.UTF8.GetString(Assert.IsType<DataFrame>(frame).Data.Span);

    [Fact]
    public async Task StreamedBothWays_RequestAndSseResponseChunksFlowOneByOne()
    {
        var upstream = new StreamingUpstream();
        var processor = await ScriptedProcessor.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                // Tag each response chunk so the test sees it went through the processor.
                await s.SendAsync(m.RequestCase == RequestOneofCase.ResponseBody
                    ? Replies.ResponseBody(Replies.Common(body: m.ResponseBody.Text().ToUpperInvariant()))
                    : Replies.ContinueFor(m)!);
            }
        });
        await using var _ = processor;
        var config = new ExtProcFilterConfig
        {
            ProcessingMode = new() { RequestBodyMode = BodySendMode.Streamed, ResponseBodyMode = BodySendMode.Streamed },
        };
        config.GrpcService.Add(processor.Address);
        // Fake clock: a cold first gRPC call can take longer than the 200 ms message timeout.
        using var emulator = new EnvoyEmulator.EnvoyEmulator(config, upstream, timeProvider: new Microsoft.Extensions.Time.Testing.FakeTimeProvider());
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));

        var requestBody = Channel.CreateUnbounded<HttpFrame>();
        var stream = emulator.Start(new DownstreamRequest
        {
            Headers = TestRequest.DefaultHeaders("POST", "/v1/chat/completions"),
            Body = requestBody.Reader.ReadAllAsync(cts.Token),
        }, cts.Token);

        // Request side: the upstream sees chunk 1 before the client sends chunk 2.
        requestBody.Writer.TryWrite(DataFrame.Of("req-1"));
        var upstreamRequest = await upstream.Request.Task.WaitAsync(cts.Token);
        await using var upstreamBody = upstreamRequest.Body.GetAsyncEnumerator(cts.Token);
        Assert.True(await upstreamBody.MoveNextAsync());
        Assert.Equal("req-1", Text(upstreamBody.Current));
        requestBody.Writer.TryWrite(DataFrame.Of("req-2", endStream: true));
        Assert.True(await upstreamBody.MoveNextAsync());
        Assert.Equal("req-2", Text(upstreamBody.Current));
        Assert.True(((DataFrame)upstreamBody.Current).EndStream);

        // Response side: each SSE event reaches the client before the next one is produced.
        upstream.ResponseBody.Writer.TryWrite(DataFrame.Of("data: one\n\n"));
        var headers = Assert.IsType<HeadersFrame>(await stream.Downstream.ReadAsync(cts.Token));
        Assert.Equal("200", headers.Headers.Get(":status"));
        Assert.Equal("DATA: ONE\n\n", Text(await stream.Downstream.ReadAsync(cts.Token)));
        upstream.ResponseBody.Writer.TryWrite(DataFrame.Of("data: two\n\n", endStream: true));
        var last = await stream.Downstream.ReadAsync(cts.Token);
        Assert.Equal("DATA: TWO\n\n", Text(last));
        Assert.True(((DataFrame)last).EndStream);

        await stream.Completion.WaitAsync(cts.Token);
        Assert.Equal(LocalReplyDetails.ViaUpstream, stream.ResponseCodeDetails);
        // Replies: request headers, 2 request chunks, response headers, 2 response chunks.
        Assert.Equal(6, stream.Stats[ExtProcStats.StreamMsgsReceived]);
    }
}
