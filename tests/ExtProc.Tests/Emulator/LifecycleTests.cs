using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using Google.Protobuf;
using Grpc.Core;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>§6.3 items 1-7: stream lifecycle and errors.</summary>
public sealed class LifecycleTests
{
    [Fact]
    public async Task GetAndCloseStream_ServerClosesOkAfterFirstMessage_RequestProceeds200()
    {
        await using var h = await EmulatorHarness.StartAsync(async s => await s.ExpectAsync(RequestOneofCase.RequestHeaders));
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.True(result.UpstreamContacted);
        Assert.Equal("upstream-body", result.BodyText);
        // Continued without the server: the response headers are never sent.
        Assert.Single(result.Sent);
        Assert.Equal(1, result.Stats[ExtProcStats.ServerHalfClosed]);

        var again = await h.RunAsync(TestRequest.Get());
        Assert.Equal(200, again.Status);
        Assert.Equal(2, h.Emulator.Stats[ExtProcStats.ServerHalfClosed]);
        Assert.Equal(2, h.Emulator.Stats[ExtProcStats.StreamsStarted]);
    }

    [Fact]
    public async Task GetAndFailStream_ServerFailsFirstMessage_500WithGrpcErrorDetails()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            throw new RpcException(new Status(StatusCode.Internal, ""));
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(500, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.Equal("ext_proc_error_gRPC_error_13", result.Details);
        Assert.Equal(1, result.Stats[ExtProcStats.StreamsFailed]);
    }

    [Fact]
    public async Task GetAndFailStream_Http500WithoutGrpcStatus_500()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll);
        h.Processor.HttpFailureStatus = 500;
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(500, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.StartsWith("ext_proc_error_gRPC_error_", result.Details, StringComparison.Ordinal);
        Assert.Empty(h.Processor.Sessions);
    }

    [Fact]
    public async Task GetAndFailStream_StatusOnErrorConfigured_UsesConfiguredCode()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            throw new RpcException(new Status(StatusCode.Unavailable, "down now"));
        }, c => c.StatusOnError = 503);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(503, result.Status);
        Assert.Equal("ext_proc_error_gRPC_error_14{down_now}", result.Details);
    }

    [Fact]
    public async Task InvalidServer_ConnectFailure_500FailClosedAnd200FailOpen()
    {
        await using var closed = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll,
            c => c.GrpcService.Add(new Uri("http://127.0.0.1:1")), addProcessorAddress: false);
        var result = await closed.RunAsync(TestRequest.Get());
        Assert.Equal(500, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.StartsWith("ext_proc_error_gRPC_error_14", result.Details, StringComparison.Ordinal);

        await using var open = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
        {
            c.GrpcService.Add(new Uri("http://127.0.0.1:1"));
            c.FailureModeAllow = true;
        }, addProcessorAddress: false);
        var allowed = await open.RunAsync(TestRequest.Get());
        Assert.Equal(200, allowed.Status);
        Assert.True(allowed.UpstreamContacted);
        Assert.Equal(1, allowed.Stats[ExtProcStats.FailureModeAllowed]);
    }

    [Fact]
    public async Task GetAndFailStreamOutOfLine_ReplyThenInternalError_500()
    {
        var upstream = new CannedUpstream { ChunkDelay = TimeSpan.FromMilliseconds(10) }.WithBody("a", "b");
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders());
            await s.ExpectAsync(RequestOneofCase.ResponseHeaders);
            throw new RpcException(new Status(StatusCode.Internal, "late failure"));
        }, upstream: upstream);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(500, result.Status);
        Assert.Equal("ext_proc_error_gRPC_error_13{late_failure}", result.Details);
    }

    [Fact]
    public async Task GetAndCloseStreamOnResponse_OkWhileResponseHeadersOutstanding_200()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders());
            await s.ExpectAsync(RequestOneofCase.ResponseHeaders);
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Equal("upstream-body", result.BodyText);
    }

    [Fact]
    public async Task GetAndFailStreamOnResponse_ErrorWhileResponseHeadersOutstanding_500()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders());
            await s.ExpectAsync(RequestOneofCase.ResponseHeaders);
            throw new RpcException(new Status(StatusCode.Internal, ""));
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(500, result.Status);
        Assert.True(result.UpstreamContacted);
        Assert.Equal("", result.BodyText);
    }

    [Fact]
    public async Task ResponseFromExtProcServerTooLarge_OverMaxReceiveMessageLength_500()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.RequestHeaders(Replies.Common(Replies.Mutation(Replies.Set("x-big", new string('a', 4096))))));
            await s.DrainAsync();
        }, c => c.MaxReceiveMessageLength = 1024);
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(500, result.Status);
        Assert.False(result.UpstreamContacted);
        Assert.StartsWith("ext_proc_error_gRPC_error_8", result.Details, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RetryOnResponseError_ResourceExhausted_ReplaysIdenticalFirstMessageOnNewStream()
    {
        var calls = 0;
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                await s.ExpectAsync(RequestOneofCase.RequestHeaders);
                throw new RpcException(new Status(StatusCode.ResourceExhausted, "busy"));
            }

            await ScriptedProcessor.ContinueAll(s);
        }, c => c.RetryPolicy = new SideStreamRetryPolicy { NumRetries = 1 });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        var sessions = h.Processor.Sessions;
        Assert.Equal(2, sessions.Count);
        Assert.Equal(sessions[0].Received[0], sessions[1].Received[0]);
        Assert.Equal(sessions[0].Received[0].ToByteString(), sessions[1].Received[0].ToByteString());
    }

    [Fact]
    public async Task RetryOnDifferentHost_FirstHostExhausted_SecondHostServes()
    {
        await using var second = await ScriptedProcessor.StartAsync(ScriptedProcessor.ContinueAll);
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            throw new RpcException(new Status(StatusCode.ResourceExhausted, "busy"));
        }, c =>
        {
            c.GrpcService.Add(second.Address);
            c.RetryPolicy = new SideStreamRetryPolicy { NumRetries = 1 };
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Single(h.Processor.Sessions);
        Assert.Single(second.Sessions);
        Assert.Equal(h.Processor.Sessions[0].Received[0], second.Sessions[0].Received[0]);
    }

    [Fact]
    public async Task RetryOnResponseError_NonRetriableStatus_500()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            throw new RpcException(new Status(StatusCode.Internal, ""));
        }, c => c.RetryPolicy = new SideStreamRetryPolicy { NumRetries = 1 });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(500, result.Status);
        Assert.Single(h.Processor.Sessions);
    }

    [Fact]
    public async Task SideStreamClose_NoResponseProcessing_ServerSeesHalfCloseAfterLastReply()
    {
        await using var h = await EmulatorHarness.StartAsync(ScriptedProcessor.ContinueAll, c =>
            c.ProcessingMode = new() { ResponseHeaderMode = global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.HeaderSendMode.Skip });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(200, result.Status);
        Assert.Single(result.Sent);
        await h.Processor.Sessions[0].ScriptDone.Task.WaitAsync(TimeSpan.FromSeconds(2));
        Assert.NotEqual(ClientEnd.StillOpen, h.Processor.Sessions[0].End);
        Assert.Contains(result.Log, e => e.Kind == ExchangeLogKind.ClientClosed);
        Assert.Equal(1, result.Stats[ExtProcStats.StreamsClosed]);
    }
}
