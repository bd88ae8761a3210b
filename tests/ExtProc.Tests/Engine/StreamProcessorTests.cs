using System.Text;
using System.Text.Json;
using Envoy.Service.ExtProc.V3;
using ExtProc.Envoy;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Stages.Identify;
using Grpc.Core;
using Microsoft.Extensions.Time.Testing;
using static ExtProc.Tests.Engine.EngineTestKit;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using HeaderSendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.HeaderSendMode;

namespace ExtProc.Tests.Engine;

public sealed class StreamProcessorTests
{
    private static PipelineSnapshot Scripted(ScriptedStage stage, Action<global::ExtProc.Hosting.ExtProcOptions>? configure = null) =>
        PipelineSnapshot.Create(Options(configure), stage);

    [Fact]
    public async Task RequestHeaders_UngovernedPath_OneRoundTripAndEverythingElseSkipped()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/healthcheck/status", method: "GET", contentType: null));

        var reply = Assert.Single(writer.Responses);
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, reply.ResponseCase);
        var mode = reply.ModeOverride;
        Assert.NotNull(mode);
        Assert.Equal(BodySendMode.None, mode.RequestBodyMode);
        Assert.Equal(BodySendMode.None, mode.ResponseBodyMode);
        Assert.Equal(HeaderSendMode.Skip, mode.ResponseHeaderMode);
        Assert.Equal(HeaderSendMode.Skip, mode.ResponseTrailerMode);
        Assert.Equal("other", reply.DynamicMetadata.Fields["extproc"].StructValue.Fields["protocol"].StringValue);
    }

    [Fact]
    public async Task RequestHeaders_ModeOverrideDisabled_NeverSendsModeOverride()
    {
        var (processor, writer) = Processor(DefaultSnapshot(o => o.Envoy.AllowModeOverride = false));

        await processor.HandleAsync(RequestHeaders("/other", method: "GET", contentType: null));

        Assert.Null(Assert.Single(writer.Responses).ModeOverride);
    }

    [Theory]
    [InlineData("/v1/chat/completions", "openai.chat")]
    [InlineData("/v1/messages", "anthropic.messages")]
    [InlineData("/v1beta/models/gemini-2.0-flash:generateContent", "gemini")]
    [InlineData("/mcp", "mcp")]
    public async Task RequestHeaders_GovernedPost_WaitsForBodyAndRecordsProtocol(string path, string protocol)
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders(path));

        var reply = Assert.Single(writer.Responses);
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, reply.ResponseCase);
        Assert.Null(reply.ModeOverride);
        var metadata = reply.DynamicMetadata.Fields["extproc"].StructValue;
        Assert.Equal(protocol, metadata.Fields["protocol"].StringValue);
        Assert.Equal("req-1", metadata.Fields["request_id"].StringValue);
        Assert.True(processor.Context!.RequestBody.Needed);
    }

    [Fact]
    public async Task RequestHeaders_GovernedPathWithTextBody_415InOpenAiDialect()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", contentType: "text/plain"));

        var immediate = Assert.Single(writer.Responses).ImmediateResponse;
        Assert.Equal(415, (int)immediate.Status.Code);
        using var json = JsonDocument.Parse(immediate.Body.Memory);
        Assert.Equal("unsupported_media_type", json.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("req-1", json.RootElement.GetProperty("error").GetProperty("request_id").GetString());
        Assert.Equal("application/json", Header(immediate.Headers, "content-type"));
        Assert.True(processor.Completed);
    }

    [Theory]
    [InlineData("gzip", 415)]
    [InlineData("zstd", 415)]
    [InlineData("br, gzip", 415)]
    [InlineData("identity", 0)]
    public async Task RequestHeaders_CompressedGovernedBody_415UnsupportedEncoding(string encoding, int status)
    {
        // faults.md J14: a body we cannot read is refused, never judged or forwarded unread.
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/v1/messages", extra: ("content-encoding", encoding)));

        var reply = Assert.Single(writer.Responses);
        if (status == 0)
        {
            Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, reply.ResponseCase);
            return;
        }

        Assert.Equal(status, (int)reply.ImmediateResponse.Status.Code);
        Assert.Contains("unsupported_encoding", reply.ImmediateResponse.Body.ToStringUtf8());
        Assert.Contains("\"type\":\"error\"", reply.ImmediateResponse.Body.ToStringUtf8());
    }

    [Theory]
    [InlineData(true, 400, "invalid_header")]
    [InlineData(false, 415, "unsupported_media_type")]
    public async Task RequestHeaders_GovernedPostContentTypeRepeatedOrAbsent_RefusedWithItsCode(bool repeated, int status, string code)
    {
        var (processor, writer) = Processor(DefaultSnapshot());
        var headers = repeated
            ? RequestHeaders("/v1/chat/completions", extra: ("content-type", "application/json"))
            : RequestHeaders("/v1/chat/completions", contentType: null);

        await processor.HandleAsync(headers);

        var immediate = Assert.Single(writer.Responses).ImmediateResponse;
        Assert.Equal(status, (int)immediate.Status.Code);
        Assert.Contains(code, immediate.Body.ToStringUtf8());
    }

    [Fact]
    public async Task RequestHeaders_GetOnGovernedPath_BodyModeLiftedToNone()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/mcp", method: "GET", contentType: null));

        var reply = Assert.Single(writer.Responses);
        Assert.Equal(BodySendMode.None, reply.ModeOverride.RequestBodyMode);
        Assert.Equal(HeaderSendMode.Default, reply.ModeOverride.ResponseHeaderMode);
    }

    [Fact]
    public async Task Buffered_BodyReplaced_ContentLengthSetInSameReply()
    {
        var stage = new ScriptedStage
        {
            NeedsRequestBody = true,
            OnPhase = static (context, phase) =>
            {
                if (phase == ProcessingPhase.RequestBody)
                {
                    context.RequestBody.Replace(Utf8("""{"model":"other"}"""));
                    context.RequestMutations.Set("x-extproc-cluster", "anthropic");
                    context.ClearRouteCache = true;
                }

                return default;
            },
        };
        var (processor, writer) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions"));
        await processor.HandleAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));

        Assert.Equal(2, writer.Responses.Count);
        var common = writer.Responses[1].RequestBody.Response;
        Assert.Equal("""{"model":"other"}""", common.BodyMutation.Body.ToStringUtf8());
        Assert.Equal("17", Header(common.HeaderMutation, "content-length"));
        Assert.Equal("anthropic", Header(common.HeaderMutation, "x-extproc-cluster"));
        Assert.True(common.ClearRouteCache);
        Assert.Equal(SampleChatBody, stage.Seen[1].Body);
        Assert.True(stage.Seen[1].Complete);
    }

    [Fact]
    public async Task Buffered_NoChange_PlainContinueWithoutMutation()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions"));
        await processor.HandleAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));

        var body = writer.Responses[1];
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, body.ResponseCase);
        Assert.Null(body.RequestBody.Response);
    }

    [Fact]
    public async Task Buffered_EmptyBodyAsSeparateEndOfStream_BodyStageSeesEmptyCompleteBody()
    {
        var stage = new ScriptedStage { NeedsRequestBody = true };
        var (processor, writer) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions"));
        await processor.HandleAsync(RequestBody([], endOfStream: true));

        Assert.Equal(2, writer.Responses.Count);
        Assert.Equal((ProcessingPhase.RequestBody, "", true), stage.Seen[1]);
    }

    [Fact]
    public async Task Headers_EndOfStreamWithNeededBody_BodyStageRunsBeforeHeaderReply()
    {
        var stage = new ScriptedStage
        {
            NeedsRequestBody = true,
            OnPhase = static (context, phase) => phase == ProcessingPhase.RequestBody
                ? new(StageResult.Respond(ErrorResponses.Create(context, GatewayError.InvalidRequest, "empty body")))
                : default,
        };
        var (processor, writer) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", endOfStream: true));

        Assert.Equal(400, (int)Assert.Single(writer.Responses).ImmediateResponse.Status.Code);
    }

    /// <summary>Every split of the sample body into two chunks, plus one-byte chunks, in STREAMED mode.</summary>
    public static TheoryData<int> SplitPoints()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i <= Encoding.UTF8.GetByteCount(SampleChatBody); i++)
        {
            data.Add(i);
        }

        data.Add(-1); // one byte per chunk
        return data;
    }

    [Theory]
    [MemberData(nameof(SplitPoints))]
    public async Task Streamed_BodyAtEveryChunkBoundary_OneReplyPerChunkInOrderAndStageSeesExactBody(int split)
    {
        var stage = new ScriptedStage { NeedsRequestBody = true };
        var (processor, writer) = Processor(Scripted(stage));
        var chunks = Chunks(Utf8(SampleChatBody), split);

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.Streamed));
        for (var i = 0; i < chunks.Count; i++)
        {
            await processor.HandleAsync(RequestBody(chunks[i], endOfStream: i == chunks.Count - 1));
        }

        Assert.Equal(1 + chunks.Count, writer.Responses.Count);
        for (var i = 1; i < writer.Responses.Count; i++)
        {
            Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, writer.Responses[i].ResponseCase);
            Assert.Null(writer.Responses[i].RequestBody.Response?.BodyMutation);
        }

        var seen = Assert.Single(stage.Seen, s => s.Phase == ProcessingPhase.RequestBody);
        Assert.Equal(SampleChatBody, seen.Body);
        Assert.True(seen.Complete);
    }

    [Theory]
    [MemberData(nameof(SplitPoints))]
    public async Task FullDuplex_BodyAtEveryChunkBoundary_HeaderReplyAfterBodyThenOneStreamedBody(int split)
    {
        var stage = new ScriptedStage
        {
            NeedsRequestBody = true,
            OnPhase = static (context, phase) =>
            {
                if (phase == ProcessingPhase.RequestBody)
                {
                    context.RequestMutations.Set("x-extproc-cluster", "openai");
                    context.ClearRouteCache = true;
                }

                return default;
            },
        };
        var (processor, writer) = Processor(Scripted(stage));
        var chunks = Chunks(Utf8(SampleChatBody), split);

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.FullDuplexStreamed));
        Assert.Empty(writer.Responses);
        for (var i = 0; i < chunks.Count; i++)
        {
            await processor.HandleAsync(RequestBody(chunks[i], endOfStream: i == chunks.Count - 1));
        }

        Assert.Equal(2, writer.Responses.Count);
        var headers = writer.Responses[0].RequestHeaders.Response;
        Assert.Equal("openai", Header(headers.HeaderMutation, "x-extproc-cluster"));
        Assert.True(headers.ClearRouteCache);
        var streamed = writer.Responses[1].RequestBody.Response.BodyMutation.StreamedResponse;
        Assert.Equal(SampleChatBody, streamed.Body.ToStringUtf8());
        Assert.True(streamed.EndOfStream);
    }

    [Fact]
    public async Task FullDuplex_LargeReplacement_SplitIntoChunksOfAtMost62000Bytes()
    {
        var large = new byte[150_000];
        Random.Shared.NextBytes(large);
        var stage = new ScriptedStage
        {
            NeedsRequestBody = true,
            OnPhase = (context, phase) =>
            {
                if (phase == ProcessingPhase.RequestBody)
                {
                    context.RequestBody.Replace(large);
                }

                return default;
            },
        };
        var (processor, writer) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.FullDuplexStreamed));
        await processor.HandleAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));

        var parts = writer.Responses.Skip(1).Select(r => r.RequestBody.Response.BodyMutation.StreamedResponse).ToList();
        Assert.Equal(3, parts.Count);
        Assert.All(parts, p => Assert.True(p.Body.Length <= 62_000));
        Assert.Equal([false, false, true], parts.Select(p => p.EndOfStream));
        Assert.Equal(large, parts.SelectMany(p => p.Body.ToByteArray()).ToArray());
    }

    [Fact]
    public async Task FullDuplex_BodyNotNeeded_EachChunkEchoedAsItArrives()
    {
        var (processor, writer) = Processor(Scripted(new ScriptedStage { NeedsRequestBody = false }, o => o.Envoy.AllowModeOverride = false));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.FullDuplexStreamed));
        await processor.HandleAsync(RequestBody(Utf8("abc"), endOfStream: false));
        await processor.HandleAsync(RequestBody(Utf8("de"), endOfStream: true));

        Assert.Equal(3, writer.Responses.Count);
        Assert.Equal("abc", writer.Responses[1].RequestBody.Response.BodyMutation.StreamedResponse.Body.ToStringUtf8());
        Assert.False(writer.Responses[1].RequestBody.Response.BodyMutation.StreamedResponse.EndOfStream);
        Assert.True(writer.Responses[2].RequestBody.Response.BodyMutation.StreamedResponse.EndOfStream);
    }

    [Fact]
    public async Task FullDuplex_BodyThenTrailers_HeadersBodyNotEndedThenTrailersReply()
    {
        var stage = new ScriptedStage { NeedsRequestBody = true };
        var (processor, writer) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.FullDuplexStreamed));
        await processor.HandleAsync(RequestBody(Utf8(SampleChatBody), endOfStream: false));
        await processor.HandleAsync(RequestTrailers(("x-checksum", "1")));

        Assert.Equal(
            [ProcessingResponse.ResponseOneofCase.RequestHeaders, ProcessingResponse.ResponseOneofCase.RequestBody, ProcessingResponse.ResponseOneofCase.RequestTrailers],
            writer.Responses.Select(r => r.ResponseCase));
        Assert.False(writer.Responses[1].RequestBody.Response.BodyMutation.StreamedResponse.EndOfStream);
        Assert.Equal(SampleChatBody, stage.Seen.Single(s => s.Phase == ProcessingPhase.RequestBody).Body);
    }

    [Fact]
    public async Task BufferedPartial_PartialMessage_StageSeesIncompleteBody()
    {
        var stage = new ScriptedStage { NeedsRequestBody = true };
        var (processor, writer) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.BufferedPartial));
        await processor.HandleAsync(RequestBody(Utf8("{\"model\":"), endOfStream: false));

        Assert.Equal(2, writer.Responses.Count);
        Assert.Equal((ProcessingPhase.RequestBody, "{\"model\":", false), stage.Seen[1]);
    }

    [Fact]
    public async Task Streamed_ReplacementRequested_AnsweredAs500BecauseHeadersAlreadyLeft()
    {
        var stage = new ScriptedStage
        {
            NeedsRequestBody = true,
            OnPhase = static (context, phase) =>
            {
                if (phase == ProcessingPhase.RequestBody)
                {
                    context.RequestBody.Replace(Utf8("{}"));
                }

                return default;
            },
        };
        var (processor, writer) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.Streamed));
        await processor.HandleAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));

        var immediate = writer.Responses[1].ImmediateResponse;
        Assert.Equal(500, (int)immediate.Status.Code);
        Assert.Contains("gateway_internal_error", immediate.Body.ToStringUtf8());
    }

    [Fact]
    public async Task ResponseHeaders_SseRequested_ModeOverrideRestatesBothBodyModes()
    {
        var stage = new ScriptedStage
        {
            OnPhase = static (context, phase) =>
            {
                if (phase == ProcessingPhase.ResponseHeaders)
                {
                    context.ResponseBodyHandling = ResponseBodyHandling.Streamed;
                }

                return default;
            },
        };
        var (processor, writer) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", endOfStream: true));
        await processor.HandleAsync(ResponseHeaders(contentType: "text/event-stream"));

        var mode = writer.Responses[1].ModeOverride;
        Assert.Equal(BodySendMode.Streamed, mode.ResponseBodyMode);
        Assert.Equal(BodySendMode.Buffered, mode.RequestBodyMode);
    }

    [Theory]
    [InlineData(0)] // request headers
    [InlineData(1)] // request body
    [InlineData(2)] // request trailers
    [InlineData(3)] // response headers
    [InlineData(4)] // response body
    [InlineData(5)] // response trailers
    public async Task ImmediateResponse_InEachPhase_SentOnceAndStreamCompleted(int phaseIndex)
    {
        var denyIn = (ProcessingPhase)phaseIndex;
        var stage = new ScriptedStage
        {
            NeedsRequestBody = true,
            NeedsResponseBody = true,
            OnPhase = (context, phase) =>
            {
                context.Protocol = ExtProc.Protocols.ProtocolKind.AnthropicMessages;
                return phase == denyIn
                    ? new(StageResult.Respond(ErrorResponses.Create(context, new GatewayError(403, "denied"), "no")))
                    : default;
            },
        };
        var (processor, writer) = Processor(Scripted(stage));
        ProcessingRequest[] exchange =
        [
            RequestHeaders("/v1/messages", responseMode: BodySendMode.Buffered),
            RequestBody(Utf8("{}"), endOfStream: false),
            RequestTrailers(("t", "1")),
            ResponseHeaders(),
            ResponseBody(Utf8("{}"), endOfStream: false),
            new ProcessingRequest { ResponseTrailers = new HttpTrailers { Trailers = new() } },
        ];

        foreach (var message in exchange)
        {
            await processor.HandleAsync(message);
        }

        var last = writer.Responses[^1];
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ImmediateResponse, last.ResponseCase);
        Assert.Equal(403, (int)last.ImmediateResponse.Status.Code);
        Assert.Equal((int)denyIn + 1, writer.Responses.Count);
        using var json = JsonDocument.Parse(last.ImmediateResponse.Body.Memory);
        Assert.Equal("error", json.RootElement.GetProperty("type").GetString()); // Anthropic dialect
        Assert.Equal("extproc_denied", last.ImmediateResponse.Details);
    }

    [Fact]
    public async Task SlowPhase_PastHalfTheMessageTimeout_AsksEnvoyForMoreTimeOnceThenAnswers()
    {
        var time = new FakeTimeProvider();
        var release = new TaskCompletionSource<StageResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stage = new ScriptedStage { OnPhase = (_, phase) => phase == ProcessingPhase.RequestHeaders ? new(release.Task) : default };
        var snapshot = Scripted(stage, o =>
        {
            o.Envoy.MessageTimeout = TimeSpan.FromMilliseconds(200);
            o.Envoy.MaxMessageTimeout = TimeSpan.FromSeconds(5);
        });
        var (processor, writer) = Processor(snapshot, time);

        var handling = processor.HandleAsync(RequestHeaders("/other", method: "GET", contentType: null)).AsTask();
        time.Advance(TimeSpan.FromMilliseconds(99));
        Assert.Empty(writer.Responses);
        time.Advance(TimeSpan.FromMilliseconds(1));
        await WaitUntil(() => writer.Responses.Count == 1);
        release.SetResult(StageResult.Continue);
        await handling;

        Assert.Equal(2, writer.Responses.Count);
        var extension = writer.Responses[0];
        Assert.Equal(ProcessingResponse.ResponseOneofCase.None, extension.ResponseCase);
        Assert.Equal(TimeSpan.FromSeconds(5), extension.OverrideMessageTimeout.ToTimeSpan());
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, writer.Responses[1].ResponseCase);
    }

    [Fact]
    public async Task SlowPhase_MaxMessageTimeoutZero_NoExtension()
    {
        var time = new FakeTimeProvider();
        var release = new TaskCompletionSource<StageResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stage = new ScriptedStage { OnPhase = (_, _) => new(release.Task) };
        var (processor, writer) = Processor(Scripted(stage, o => o.Envoy.MaxMessageTimeout = TimeSpan.Zero), time);

        var handling = processor.HandleAsync(RequestHeaders("/other", method: "GET", contentType: null)).AsTask();
        time.Advance(TimeSpan.FromSeconds(10));
        release.SetResult(StageResult.Continue);
        await handling;

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, Assert.Single(writer.Responses).ResponseCase);
    }

    [Fact]
    public async Task StageThrows_OnRequestPath_500GatewayInternalErrorWithoutDetails()
    {
        var stage = new ScriptedStage { OnPhase = static (_, _) => throw new InvalidOperationException("secret detail sk-123") };
        var (processor, writer) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions"));

        var immediate = Assert.Single(writer.Responses).ImmediateResponse;
        Assert.Equal(500, (int)immediate.Status.Code);
        var body = immediate.Body.ToStringUtf8();
        Assert.Contains("gateway_internal_error", body);
        Assert.DoesNotContain("sk-123", body);
        Assert.DoesNotContain("InvalidOperationException", body);
    }

    [Fact]
    public async Task StageThrows_AfterResponseHeadersWentDownstream_EndsStreamInternal()
    {
        var stage = new ScriptedStage
        {
            NeedsResponseBody = true,
            OnPhase = static (_, phase) => phase == ProcessingPhase.ResponseBody ? throw new InvalidOperationException("boom") : default,
        };
        var (processor, _) = Processor(Scripted(stage));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", endOfStream: true, responseMode: BodySendMode.Streamed));
        await processor.HandleAsync(ResponseHeaders(contentType: "text/event-stream"));

        var error = await Assert.ThrowsAsync<RpcException>(() => processor.HandleAsync(ResponseBody(Utf8("data: x\n\n"), endOfStream: true)).AsTask());
        Assert.Equal(StatusCode.Internal, error.StatusCode);
    }

    [Fact]
    public async Task RequestBody_OverTheCap_413BodyTooLarge()
    {
        var (processor, writer) = Processor(DefaultSnapshot(o => o.Grpc.MaxBodyBytes = 1024));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.Streamed));
        await processor.HandleAsync(RequestBody(new byte[1000], endOfStream: false));
        await processor.HandleAsync(RequestBody(new byte[100], endOfStream: true));

        var immediate = writer.Responses[^1].ImmediateResponse;
        Assert.Equal(413, (int)immediate.Status.Code);
        Assert.Contains("body_too_large", immediate.Body.ToStringUtf8());
    }

    [Fact]
    public async Task ObservabilityMode_NoReplyIsEverWritten()
    {
        var (processor, writer) = Processor(DefaultSnapshot());
        var headers = RequestHeaders("/v1/chat/completions", requestMode: null);
        headers.ObservabilityMode = true;

        await processor.HandleAsync(headers);
        await processor.HandleAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));

        Assert.Empty(writer.Responses);
    }

    [Fact]
    public async Task NoProtocolConfig_FallsBackToConfiguredModes()
    {
        var stage = new ScriptedStage { NeedsRequestBody = true };
        var (processor, writer) = Processor(Scripted(stage, o => o.Envoy.RequestBodyMode = BodySendMode.FullDuplexStreamed));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: null));

        Assert.Empty(writer.Responses); // duplex: the header reply waits for the body
    }

    [Fact]
    public async Task BodyNeededButModeNoneAndNoOverride_FailsClosedWithClearError()
    {
        var stage = new ScriptedStage { NeedsRequestBody = true };
        var (processor, writer) = Processor(Scripted(stage, o => o.Envoy.AllowModeOverride = false));

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.None));

        Assert.Equal(500, (int)Assert.Single(writer.Responses).ImmediateResponse.Status.Code);
    }

    [Fact]
    public async Task BodyNeededButModeNone_OverrideAllowed_AsksForBufferedBody()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.None));

        Assert.Equal(BodySendMode.Buffered, Assert.Single(writer.Responses).ModeOverride.RequestBodyMode);
    }

    [Fact]
    public async Task OutOfOrder_BodyBeforeHeaders_FailedPrecondition()
    {
        var (processor, _) = Processor(DefaultSnapshot());

        var error = await Assert.ThrowsAsync<ProtocolViolationException>(() => processor.HandleAsync(RequestBody(Utf8("x"), true)).AsTask());

        Assert.Equal(StatusCode.FailedPrecondition, error.Status);
    }

    [Fact]
    public async Task OutOfOrder_SecondRequestHeaders_FailedPrecondition()
    {
        var (processor, _) = Processor(DefaultSnapshot());
        await processor.HandleAsync(RequestHeaders("/v1/chat/completions"));

        var error = await Assert.ThrowsAsync<ProtocolViolationException>(() => processor.HandleAsync(RequestHeaders("/v1/chat/completions")).AsTask());

        Assert.Equal(StatusCode.FailedPrecondition, error.Status);
    }

    [Fact]
    public async Task OutOfOrder_BodyAfterEndOfStream_FailedPrecondition()
    {
        var (processor, _) = Processor(DefaultSnapshot());
        await processor.HandleAsync(RequestHeaders("/v1/chat/completions"));
        await processor.HandleAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));

        await Assert.ThrowsAsync<ProtocolViolationException>(() => processor.HandleAsync(RequestBody(Utf8("{}"), endOfStream: true)).AsTask());
    }

    [Fact]
    public async Task OutOfOrder_ResponseHeadersFirst_FailedPrecondition()
    {
        var (processor, _) = Processor(DefaultSnapshot());

        await Assert.ThrowsAsync<ProtocolViolationException>(() => processor.HandleAsync(ResponseHeaders()).AsTask());
    }

    [Fact]
    public async Task EmptyOneof_InvalidArgument()
    {
        var (processor, _) = Processor(DefaultSnapshot());

        var error = await Assert.ThrowsAsync<ProtocolViolationException>(() => processor.HandleAsync(new ProcessingRequest()).AsTask());

        Assert.Equal(StatusCode.InvalidArgument, error.Status);
    }

    [Fact]
    public async Task PathNotValidUtf8_ClassifiedOnBytesWithoutError()
    {
        var (processor, writer) = Processor(DefaultSnapshot());
        var message = RequestHeaders("/placeholder", method: "GET", contentType: null);
        message.RequestHeaders.Headers.Headers[3].RawValue = Google.Protobuf.ByteString.CopyFrom([(byte)'/', 0xff, 0xfe, (byte)'x']);

        await processor.HandleAsync(message);

        Assert.Equal("other", Assert.Single(writer.Responses).DynamicMetadata.Fields["extproc"].StructValue.Fields["protocol"].StringValue);
    }

    [Fact]
    public async Task DuplicatePathHeader_400InvalidHeader()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", extra: (":path", "/other")));

        var immediate = Assert.Single(writer.Responses).ImmediateResponse;
        Assert.Equal(400, (int)immediate.Status.Code);
        Assert.Contains("invalid_header", immediate.Body.ToStringUtf8());
    }

    [Fact]
    public async Task AfterImmediateResponse_FurtherMessagesGetNoReply()
    {
        var (processor, writer) = Processor(DefaultSnapshot());
        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", contentType: "text/plain"));

        await processor.HandleAsync(RequestBody(Utf8("{}"), endOfStream: true));

        Assert.Single(writer.Responses);
    }

    [Fact]
    public async Task Attributes_FirstMessage_ExposedAsText()
    {
        var stage = new ScriptedStage();
        var (processor, _) = Processor(Scripted(stage));
        var message = RequestHeaders("/v1/chat/completions");
        var attributes = new Google.Protobuf.WellKnownTypes.Struct();
        attributes.Fields["connection.uri_san_peer_certificate"] = Google.Protobuf.WellKnownTypes.Value.ForString("spiffe://cluster.local/ns/a/sa/b");
        attributes.Fields["connection.mtls"] = Google.Protobuf.WellKnownTypes.Value.ForBool(true);
        attributes.Fields["source.port"] = Google.Protobuf.WellKnownTypes.Value.ForNumber(4242);
        message.Attributes["envoy.filters.http.ext_proc"] = attributes;

        await processor.HandleAsync(message);

        var seen = processor.Context!.Attributes;
        Assert.Equal("spiffe://cluster.local/ns/a/sa/b", seen["connection.uri_san_peer_certificate"]);
        Assert.Equal("true", seen["connection.mtls"]);
        Assert.Equal("4242", seen["source.port"]);
    }

    private static List<byte[]> Chunks(byte[] body, int split)
    {
        if (split < 0)
        {
            return body.Select(b => new[] { b }).ToList();
        }

        return [body[..split], body[split..]];
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(5);
        }

        Assert.True(condition());
    }
}
