using System.Runtime.CompilerServices;
using System.Text;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>State-machine corners of §2 not named in §6.3.</summary>
public sealed class EdgeCaseTests
{
    private static async IAsyncEnumerable<HttpFrame> Frames(IEnumerable<HttpFrame> frames, TaskCompletionSource delivered,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (var frame in frames)
        {
            yield return frame;
        }

        delivered.TrySetResult();
        await Task.CompletedTask.WaitAsync(cancellationToken);
    }

    [Theory]
    [InlineData(BodySendMode.Streamed)]
    [InlineData(BodySendMode.BufferedPartial)]
    public async Task WholeBodyArrivesWhileHeaderReplyOutstanding_OneBodyMessageHandledAsBuffered(BodySendMode mode)
    {
        var delivered = new TaskCompletionSource();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await delivered.Task;
            await s.SendAsync(Replies.RequestHeaders());
            var body = await s.ExpectAsync(RequestOneofCase.RequestBody);
            Assert.Equal("abcdef", body.RequestBody.Text());
            Assert.True(body.RequestBody.EndOfStream);
            // A buffered reply: header mutations still apply because the headers are held.
            await s.SendAsync(Replies.RequestBody(Replies.Common(Replies.Mutation(Replies.Set("x-from-body", "1")))));
            await ScriptedProcessor.ContinueAll(s);
        }, c => c.ProcessingMode = new() { RequestBodyMode = mode, ResponseHeaderMode = HeaderSendMode.Skip });
        var stream = h.Emulator.Start(new DownstreamRequest
        {
            Headers = TestRequest.DefaultHeaders("POST", "/"),
            Body = Frames([DataFrame.Of("abc"), DataFrame.Of("def", endStream: true)], delivered),
        });
        await foreach (var _ in stream.Downstream.ReadAllAsync().WithCancellation(new CancellationTokenSource(5000).Token))
        {
        }

        Assert.Equal("1", stream.UpstreamHeaders!.Get("x-from-body"));
        Assert.Equal("abcdef", Encoding.UTF8.GetString(stream.UpstreamBodySnapshot()));
        Assert.Single(stream.Log, e => e.Request?.RequestCase == RequestOneofCase.RequestBody);
    }

    [Fact]
    public async Task DuplexServerClosesOkMidBody_DrainedChunksLostLaterChunksPassUntouched()
    {
        var closed = new TaskCompletionSource();
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.SendAsync(Replies.ContinueFor(await s.ExpectAsync(RequestOneofCase.RequestHeaders))!);
            await s.ExpectAsync(RequestOneofCase.RequestBody);
        }, c => c.ProcessingMode = new() { RequestBodyMode = BodySendMode.FullDuplexStreamed, RequestTrailerMode = HeaderSendMode.Send, ResponseHeaderMode = HeaderSendMode.Skip });
        h.Emulator.OnLog = e =>
        {
            if (e.Kind == ExchangeLogKind.ServerClosed)
            {
                closed.TrySetResult();
            }
        };
        var result = await h.RunAsync(new TestRequest
        {
            Headers = TestRequest.DefaultHeaders("POST", "/"),
            BodyChunks = [Encoding.UTF8.GetBytes("lost"), Encoding.UTF8.GetBytes("kept")],
            BeforeChunk = _ => closed.Task,
        });

        Assert.Equal(200, result.Status);
        Assert.Equal("kept", result.UpstreamBodyText);
    }

    [Fact]
    public async Task Http1Downstream_ResponseWithoutContentLengthGoesChunked()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c => c.DownstreamProtocol = HttpProtocol.Http1);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal("chunked", result.ResponseHeaders!.Get("transfer-encoding"));
    }

    [Fact]
    public async Task StreamCloseOptimizationOff_SideStreamClosedOnlyAtStreamEnd()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
        {
            c.ProcessingMode = new() { ResponseHeaderMode = HeaderSendMode.Skip };
            c.Runtime.StreamCloseOptimization = false;
        });
        var result = await h.RunAsync(TestRequest.Get());
        var log = result.Log.Select(e => e.Kind == ExchangeLogKind.Event ? e.Note : e.Kind.ToString()).ToList();

        // The close comes after the router ran (at the end of the HTTP stream), not right after the reply.
        Assert.True(log.IndexOf("ClientClosed") > log.FindIndex(n => n!.StartsWith("router:", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task GracefulGrpcClose_ServerStatusAwaitedOnlyWithGuard(bool graceful)
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await ScriptedProcessor.ContinueAll(s);
            // A server that takes a moment to finish after Envoy's half-close.
            await Task.Delay(100);
        }, c =>
        {
            c.ProcessingMode = new() { ResponseHeaderMode = HeaderSendMode.Skip };
            c.Runtime.GracefulGrpcClose = graceful;
        });
        var stream = h.Emulator.Start(new DownstreamRequest { Headers = TestRequest.DefaultHeaders("GET", "/"), EndStreamOnHeaders = true });
        await stream.Completion.WaitAsync(TimeSpan.FromSeconds(5));
        await stream.SideStreamClosed.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(graceful, stream.Log.Any(e => e.Note == "side stream finished by server: OK"));
    }
}
