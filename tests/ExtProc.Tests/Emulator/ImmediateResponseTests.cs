using Envoy.Config.Core.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using Google.Protobuf;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>§6.3 items 29-31: immediate responses and mutation errors in body replies.</summary>
public sealed class ImmediateResponseTests
{
    private const string Json = "{\"reason\":\"Not authorized\"}";

    public enum Phase
    {
        RequestHeaders,
        ResponseHeaders,
        RequestBody,
        ResponseBodyBuffered,
        ResponseBodyBufferedPartial,
        ResponseBodyChunkedBuffered,
    }

    private static ProcessingResponse Unauthorized() =>
        Replies.Immediate(401, Json, "Not authorized by ext proc", Replies.Set("x-failure-reason", "testing"), Replies.Set("content-type", "application/json"));

    [Theory]
    [InlineData(Phase.RequestHeaders)]
    [InlineData(Phase.ResponseHeaders)]
    [InlineData(Phase.RequestBody)]
    [InlineData(Phase.ResponseBodyBuffered)]
    [InlineData(Phase.ResponseBodyBufferedPartial)]
    [InlineData(Phase.ResponseBodyChunkedBuffered)]
    public async Task GetAndRespondImmediately_401WithJsonBodyAndHeadersInEveryPhase(Phase phase)
    {
        var target = phase switch
        {
            Phase.RequestHeaders => RequestOneofCase.RequestHeaders,
            Phase.ResponseHeaders => RequestOneofCase.ResponseHeaders,
            Phase.RequestBody => RequestOneofCase.RequestBody,
            _ => RequestOneofCase.ResponseBody,
        };
        var upstream = phase == Phase.ResponseBodyChunkedBuffered ? new CannedUpstream().WithBody("c1", "c2", "c3") : null;
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                await s.SendAsync(m.RequestCase == target ? Unauthorized() : Replies.ContinueFor(m)!);
            }
        }, c => c.ProcessingMode = new()
        {
            RequestBodyMode = BodySendMode.Buffered,
            ResponseBodyMode = phase == Phase.ResponseBodyBufferedPartial ? BodySendMode.BufferedPartial : BodySendMode.Buffered,
        }, upstream);
        var result = await h.RunAsync(TestRequest.Post("/", "body"));

        Assert.Equal(401, result.Status);
        Assert.Equal(Json, result.BodyText);
        Assert.Equal("testing", result.ResponseHeaders!.Get("x-failure-reason"));
        Assert.Equal("application/json", result.ResponseHeaders.Get("content-type"));
        Assert.Equal("Not_authorized_by_ext_proc", result.Details);
        Assert.False(result.Reset);
        Assert.Equal(phase is Phase.RequestHeaders or Phase.RequestBody, !result.UpstreamContacted);
        Assert.Equal(1, result.Stats[ExtProcStats.ImmediateResponsesSent]);
        // The filter never processes its own immediate response.
        Assert.Equal(target, result.Sent[^1].RequestCase);
    }

    [Fact]
    public async Task ImmediateResponse_AfterResponseHeadersWentDownstream_StreamReset()
    {
        // The upstream body is released only once the client has the response headers.
        var headersDownstream = new TaskCompletionSource();
        var upstream = new CannedUpstream { BeforeChunk = _ => headersDownstream.Task }.WithBody("a", "b");
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                await s.SendAsync(m.RequestCase == RequestOneofCase.ResponseBody ? Unauthorized() : Replies.ContinueFor(m)!);
            }
        }, c => c.ProcessingMode = new() { ResponseBodyMode = BodySendMode.Streamed }, upstream);
        var stream = h.Emulator.Start(new DownstreamRequest { Headers = TestRequest.DefaultHeaders("GET", "/"), EndStreamOnHeaders = true });
        var frames = new List<HttpFrame>();
        await foreach (var frame in stream.Downstream.ReadAllAsync().WithCancellation(new CancellationTokenSource(5000).Token))
        {
            frames.Add(frame);
            if (frame is HeadersFrame)
            {
                headersDownstream.TrySetResult();
            }
        }

        Assert.Equal("200", Assert.IsType<HeadersFrame>(frames[0]).Headers.Get(":status"));
        Assert.IsType<ResetFrame>(frames[^1]);
        Assert.DoesNotContain(frames, f => f is DataFrame);
    }

    [Fact]
    public async Task ImmediateResponse_InvalidHeaderKeyStill401AndStatus100Becomes200()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.Immediate(401, "denied", "", Replies.Set("x-bad\nkey", "v"), Replies.Set("x-good", "ok")));
            await s.DrainAsync();
        });
        var result = await h.RunAsync(TestRequest.Get());
        Assert.Equal(401, result.Status);
        Assert.Equal("ok", result.ResponseHeaders!.Get("x-good"));
        Assert.DoesNotContain(result.ResponseHeaders.Keys(), k => k.Contains('\n', StringComparison.Ordinal));

        await using var h100 = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.Immediate(100, "body with status 100"));
            await s.DrainAsync();
        });
        var result100 = await h100.RunAsync(TestRequest.Get());
        Assert.Equal(200, result100.Status);
        Assert.Equal("body with status 100", result100.BodyText);
        Assert.Equal("text/plain", result100.ResponseHeaders!.Get("content-type"));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public async Task ImmediateResponse_SystemHeaderNeverSentEnvoyHeaderNeedsAllowEnvoy(bool allowEnvoy, bool expectEnvoyHeader)
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.Immediate(401, "", "", Replies.Set(":foo", "bar"), Replies.Set("x-envoy-foo", "bar"), Replies.Set("host", "h")));
            await s.DrainAsync();
        }, c =>
        {
            c.MutationRules.AllowEnvoy = allowEnvoy;
            c.MutationRules.AllowAllRouting = allowEnvoy;
        });
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(401, result.Status);
        Assert.False(result.ResponseHeaders!.Contains(":foo"));
        Assert.Equal(expectEnvoyHeader, result.ResponseHeaders.Contains("x-envoy-foo"));
        Assert.Equal(expectEnvoyHeader, result.ResponseHeaders.Contains("host"));
    }

    [Fact]
    public async Task ImmediateResponse_GrpcStatusAddsHeaderAndDynamicMetadataApplied()
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            var reply = Replies.Immediate(403);
            reply.ImmediateResponse.GrpcStatus = new GrpcStatus { Status = 7 };
            reply.DynamicMetadata = Google.Protobuf.WellKnownTypes.Struct.Parser.ParseJson("{\"ns\":{\"k\":\"v\"}}");
            await s.SendAsync(reply);
            await s.DrainAsync();
        }, c => c.MetadataOptions.ReceivingUntyped.Add("ns"));
        var result = await h.RunAsync(TestRequest.Get());

        Assert.Equal(403, result.Status);
        Assert.Equal("7", result.ResponseHeaders!.Get("grpc-status"));
        Assert.Equal("v", result.DynamicMetadata["ns"].Fields["k"].StringValue);
    }

    [Fact]
    public async Task DisableImmediateResponse_TreatedAsSpurious500UnlessFailOpen()
    {
        Func<ProcessorSession, Task> script = async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.Immediate(401, "no"));
            await s.DrainAsync();
        };
        await using var closed = await EmulatorHarness.StartAsync(script, c => c.DisableImmediateResponse = true);
        var result = await closed.RunAsync(TestRequest.Get());
        Assert.Equal(500, result.Status);
        Assert.Equal(1, result.Stats[ExtProcStats.SpuriousMsgsReceived]);

        await using var open = await EmulatorHarness.StartAsync(script, c =>
        {
            c.DisableImmediateResponse = true;
            c.FailureModeAllow = true;
        });
        var allowed = await open.RunAsync(TestRequest.Get());
        Assert.Equal(200, allowed.Status);
        Assert.True(allowed.UpstreamContacted);
    }

    [Theory]
    [InlineData(BodySendMode.Buffered)]
    [InlineData(BodySendMode.BufferedPartial)]
    public async Task BufferedBodyReplySetsSchemeWithDisallowIsError_500(BodySendMode mode)
    {
        await using var h = await EmulatorHarness.StartAsync(async s =>
        {
            while (await s.ReadAsync() is { } m)
            {
                await s.SendAsync(m.RequestCase == RequestOneofCase.RequestBody
                    ? Replies.RequestBody(Replies.Common(Replies.Mutation(Replies.Set(":scheme", "tcp"))))
                    : Replies.ContinueFor(m)!);
            }
        }, c =>
        {
            c.ProcessingMode = new() { RequestBodyMode = mode };
            c.MutationRules.DisallowIsError = true;
        });
        var result = await h.RunAsync(TestRequest.Post("/", "body"));

        Assert.Equal(500, result.Status);
        Assert.False(result.UpstreamContacted);
    }

    [Fact]
    public async Task SpuriousReply_WrongTypeFor500AndIgnoredWithOldGuard()
    {
        Func<ProcessorSession, Task> script = async s =>
        {
            await s.ExpectAsync(RequestOneofCase.RequestHeaders);
            await s.SendAsync(Replies.ResponseHeaders());
            await s.SendAsync(Replies.RequestHeaders());
            await ScriptedProcessor.ContinueAll(s);
        };
        await using var h = await EmulatorHarness.StartAsync(script);
        var result = await h.RunAsync(TestRequest.Get());
        Assert.Equal(500, result.Status);
        Assert.Equal(LocalReplyDetails.SpuriousMessage, result.Details);

        await using var old = await EmulatorHarness.StartAsync(script, c => c.Runtime.FailCloseSpuriousResp = false);
        var ignored = await old.RunAsync(TestRequest.Get());
        Assert.Equal(200, ignored.Status);
        Assert.Equal(1, ignored.Stats[ExtProcStats.SpuriousMsgsReceived]);
    }
}
