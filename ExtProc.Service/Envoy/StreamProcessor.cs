using System.Globalization;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using HeaderSendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.HeaderSendMode;

namespace ExtProc.Envoy;

/// <summary>
/// The per-stream state machine: turns Envoy's ext_proc messages into pipeline phases and the
/// pipeline's decisions into exactly the replies Envoy expects, in order, for every body mode
/// (shared/specs/extproc.md §2). One instance per stream; messages are handled one at a time.
/// </summary>
internal sealed class StreamProcessor : IDisposable
{
    private const string AttributesKey = "envoy.filters.http.ext_proc";

    // Streamed body replies stay well under Envoy's recommended 64 KiB per message.
    private const int MaxStreamedChunk = 62_000;

    private static readonly ProcessingResponse RequestHeadersContinue = new() { RequestHeaders = new HeadersResponse() };
    private static readonly ProcessingResponse ResponseHeadersContinue = new() { ResponseHeaders = new HeadersResponse() };
    private static readonly ProcessingResponse RequestBodyContinue = new() { RequestBody = new BodyResponse() };
    private static readonly ProcessingResponse ResponseBodyContinue = new() { ResponseBody = new BodyResponse() };
    private static readonly ProcessingResponse RequestTrailersContinue = new() { RequestTrailers = new TrailersResponse() };
    private static readonly ProcessingResponse ResponseTrailersContinue = new() { ResponseTrailers = new TrailersResponse() };

    // Ungoverned traffic: nothing more is sent to us for this request. Constant, so built once (like the
    // replies above) instead of once per request; never mutated.
    private static readonly ProcessingMode UngovernedModeOverride = new()
    {
        RequestBodyMode = BodySendMode.None,
        ResponseBodyMode = BodySendMode.None,
        RequestTrailerMode = HeaderSendMode.Skip,
        ResponseHeaderMode = HeaderSendMode.Skip,
        ResponseTrailerMode = HeaderSendMode.Skip,
    };

    private readonly PipelineSnapshot _snapshot;
    private readonly IAsyncStreamWriter<ProcessingResponse> _writer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationToken _cancellation;
    private readonly Direction _request = new(isRequest: true);
    private readonly Direction _response = new(isRequest: false);

    // Created on the first attributes Envoy sends; most filters are configured without any.
    private Dictionary<string, string>? _attributes;

    private ProcessingContext? _context;
    private bool _configured;
    private bool _observability;
    private bool _sendBodyWithoutWaiting;
    private bool _responseHeadersDownstream;

    public StreamProcessor(
        PipelineSnapshot snapshot,
        IAsyncStreamWriter<ProcessingResponse> writer,
        TimeProvider time,
        ILogger logger,
        CancellationToken cancellation)
    {
        _snapshot = snapshot;
        _writer = writer;
        _time = time;
        _logger = logger;
        _cancellation = cancellation;
    }

    /// <summary>True once a local (immediate) response ended the exchange.</summary>
    public bool Completed { get; private set; }

    public ProcessingContext? Context => _context;

    /// <summary>
    /// Handles one message. Expected denials become immediate responses; a broken message order
    /// throws <see cref="ProtocolViolationException"/>; any other failure is answered with a 500
    /// immediate response while the client can still get one, else rethrown as an Internal status.
    /// </summary>
    public async ValueTask HandleAsync(ProcessingRequest message)
    {
        if (Completed)
        {
            // After an immediate response Envoy sends nothing more; a straggler gets no reply.
            return;
        }

        if (!_configured)
        {
            Configure(message);
        }

        try
        {
            switch (message.RequestCase)
            {
                case ProcessingRequest.RequestOneofCase.RequestHeaders:
                    await OnHeadersAsync(_request, message.RequestHeaders, message).ConfigureAwait(false);
                    break;
                case ProcessingRequest.RequestOneofCase.ResponseHeaders:
                    await OnHeadersAsync(_response, message.ResponseHeaders, message).ConfigureAwait(false);
                    break;
                case ProcessingRequest.RequestOneofCase.RequestBody:
                    await OnBodyAsync(_request, message.RequestBody).ConfigureAwait(false);
                    break;
                case ProcessingRequest.RequestOneofCase.ResponseBody:
                    await OnBodyAsync(_response, message.ResponseBody).ConfigureAwait(false);
                    break;
                case ProcessingRequest.RequestOneofCase.RequestTrailers:
                    await OnTrailersAsync(_request, message.RequestTrailers.Trailers).ConfigureAwait(false);
                    break;
                case ProcessingRequest.RequestOneofCase.ResponseTrailers:
                    await OnTrailersAsync(_response, message.ResponseTrailers.Trailers).ConfigureAwait(false);
                    break;
                default:
                    throw new ProtocolViolationException(StatusCode.InvalidArgument, "ProcessingRequest carries no known phase.");
            }
        }
        catch (Exception ex) when (ex is not (ProtocolViolationException or RpcException or PeerGoneException)
            && !(ex is OperationCanceledException && _cancellation.IsCancellationRequested))
        {
            ProcessorLog.PhaseFailed(_logger, _context?.Phase.ToString() ?? "none", ex);
            if (!CanAnswerLocally)
            {
                throw new RpcException(new Status(StatusCode.Internal, "ExtProc failed while processing the stream."));
            }

            var context = _context ?? new ProcessingContext(new HttpHeaderList(1));
            await SendImmediateAsync(ErrorResponses.Create(context, GatewayError.Internal, "The gateway failed to process the request.")).ConfigureAwait(false);
        }
    }

    private bool CanAnswerLocally => !_observability && !_responseHeadersDownstream;

    private void Configure(ProcessingRequest first)
    {
        _configured = true;
        _observability = first.ObservabilityMode;
        var options = _snapshot.Options.Envoy;
        if (first.ProtocolConfig is { } config)
        {
            _request.Mode = config.RequestBodyMode;
            _response.Mode = config.ResponseBodyMode;
            _sendBodyWithoutWaiting = config.SendBodyWithoutWaitingForHeaderResponse;
        }
        else
        {
            _request.Mode = options.RequestBodyMode;
            _response.Mode = options.ResponseBodyMode;
        }
    }

    private async ValueTask OnHeadersAsync(Direction direction, HttpHeaders message, ProcessingRequest envelope)
    {
        if (direction.HeadersSeen)
        {
            throw Violation($"a second {direction.Name} headers message");
        }

        if (!direction.IsRequest && !_request.HeadersSeen)
        {
            throw Violation("response headers before request headers");
        }

        direction.HeadersSeen = true;
        direction.EndOfStream = message.EndOfStream;
        var headers = EnvoyHeaders.ToHeaderList(message.Headers);
        ProcessingContext context;
        if (direction.IsRequest)
        {
            context = _context = new ProcessingContext(headers);
        }
        else
        {
            context = _context!;
            context.ResponseHeaders = headers;
        }

        ReadAttributes(envelope, context);
        var result = await RunPhaseAsync(direction.IsRequest ? ProcessingPhase.RequestHeaders : ProcessingPhase.ResponseHeaders, direction)
            .ConfigureAwait(false);
        var body = Body(direction);
        if (!result.IsRespond && direction.EndOfStream && body.Needed)
        {
            // A message without a body: body stages still see it (empty) before the headers go on.
            body.Complete = true;
            direction.BodyPhaseRun = true;
            result = await RunPhaseAsync(BodyPhase(direction), direction).ConfigureAwait(false);
        }

        if (result.IsRespond)
        {
            await SendImmediateAsync(result.Response!).ConfigureAwait(false);
            return;
        }

        if (!direction.EndOfStream && body.Needed && !CanReadBody(direction))
        {
            await SendImmediateAsync(ErrorResponses.Create(context, GatewayError.Internal,
                "The gateway is configured to inspect this body but Envoy does not send it.")).ConfigureAwait(false);
            ProcessorLog.BodyModeMismatch(_logger, direction.Name);
            return;
        }

        if (direction.Mode == BodySendMode.FullDuplexStreamed && body.Needed && !direction.EndOfStream)
        {
            // Envoy streams the body to us while it waits; answering the headers after the body lets
            // body-based decisions (routing, rewriting) still change the headers.
            direction.HeaderReplyDeferred = true;
            return;
        }

        await WriteAsync(BuildHeadersReply(direction)).ConfigureAwait(false);
    }

    private async ValueTask OnBodyAsync(Direction direction, HttpBody message)
    {
        if (!direction.HeadersSeen)
        {
            throw Violation($"{direction.Name} body before {direction.Name} headers");
        }

        if (direction.EndOfStream)
        {
            throw Violation($"{direction.Name} body after the end of the {direction.Name}");
        }

        direction.EndOfStream = message.EndOfStream;
        var chunk = message.Body.Memory;
        var body = Body(direction);
        var collecting = body.Needed && !direction.BodyPhaseRun;
        if (collecting && body.Length + chunk.Length > _snapshot.Options.Grpc.MaxBodyBytes)
        {
            await SendImmediateAsync(BodyTooLarge(direction)).ConfigureAwait(false);
            return;
        }

        if (direction.Mode == BodySendMode.FullDuplexStreamed)
        {
            await OnDuplexBodyAsync(direction, message.Body, message.EndOfStream).ConfigureAwait(false);
            return;
        }

        if (!direction.IsRequest && direction.Mode == BodySendMode.Streamed && !collecting
            && (_context!.ResponseRewriter is not null || body.ObserveChunks))
        {
            // Observers (usage) read what the upstream sent; the rewriter (an SSE list filter, a translator)
            // decides what the client gets, and without one an observer may replace the chunk itself. Headers
            // are downstream already: an observer's verdict cannot become a local reply, so its result is only
            // its side effects (usage, metadata, a replacement of this chunk).
            if (body.ObserveChunks)
            {
                body.SetChunk(chunk);
                body.Complete = message.EndOfStream;
                await RunPhaseAsync(BodyPhase(direction), direction).ConfigureAwait(false);
            }

            var forward = chunk;
            var replaced = false;
            if (_context.ResponseRewriter is { } rewriter && rewriter.TryRewrite(chunk, message.EndOfStream, out var rewritten))
            {
                forward = rewritten;
                replaced = true;
            }

            if (!replaced)
            {
                await WriteAsync(body.ObserveChunks ? BuildBodyReply(direction) : ResponseBodyContinue).ConfigureAwait(false);
                return;
            }

            // The rewriter's output wins over an observer's replacement of the upstream chunk.
            var reply = ReplacedChunkReply(forward);
            reply.DynamicMetadata = TakeDynamicMetadata(_context);
            await WriteAsync(reply).ConfigureAwait(false);
            return;
        }

        if (collecting)
        {
            body.Append(chunk);

            // BUFFERED and BUFFERED_PARTIAL send all Envoy will ever send in this one message.
            var lastWeSee = message.EndOfStream || direction.Mode is BodySendMode.Buffered or BodySendMode.BufferedPartial;
            if (lastWeSee)
            {
                body.Complete = message.EndOfStream || direction.Mode == BodySendMode.Buffered;
                direction.BodyPhaseRun = true;
                var result = await RunPhaseAsync(BodyPhase(direction), direction).ConfigureAwait(false);
                if (result.IsRespond)
                {
                    await SendImmediateAsync(result.Response!).ConfigureAwait(false);
                    return;
                }

                await WriteAsync(BuildBodyReply(direction)).ConfigureAwait(false);
                return;
            }
        }

        await WriteAsync(direction.IsRequest ? RequestBodyContinue : ResponseBodyContinue).ConfigureAwait(false);
    }

    private async ValueTask OnDuplexBodyAsync(Direction direction, ByteString chunk, bool endOfStream)
    {
        if (direction.HeaderReplyDeferred)
        {
            var body = Body(direction);
            body.Append(chunk.Memory);
            if (endOfStream)
            {
                body.Complete = true;
                await FinishDeferredAsync(direction, endOfStream: true).ConfigureAwait(false);
            }

            return;
        }

        if (!direction.IsRequest && (_context!.ResponseRewriter is not null || Body(direction).ObserveChunks))
        {
            // As in STREAMED mode: observers read the upstream chunk, the rewriter (or else an observer)
            // decides what goes on; every chunk is answered, possibly with no bytes.
            var body = Body(direction);
            if (body.ObserveChunks)
            {
                body.SetChunk(chunk.Memory);
                body.Complete = endOfStream;
                await RunPhaseAsync(ProcessingPhase.ResponseBody, direction).ConfigureAwait(false);
            }

            if (_context.ResponseRewriter is { } rewriter && rewriter.TryRewrite(chunk.Memory, endOfStream, out var rewritten))
            {
                await WriteAsync(StreamedBodyReply(direction, ByteString.CopyFrom(rewritten.Span), endOfStream)).ConfigureAwait(false);
                return;
            }

            if (body.Replacement is { } replacement)
            {
                await WriteAsync(StreamedBodyReply(direction, ByteString.CopyFrom(replacement.Span), endOfStream)).ConfigureAwait(false);
                return;
            }
        }

        // Duplex without inspection: Envoy drained the chunk, so it goes on only if we send it back. The
        // received ByteString is immutable, so it goes back as it is: no copy per chunk.
        await WriteAsync(StreamedBodyReply(direction, chunk, endOfStream)).ConfigureAwait(false);
    }

    private async ValueTask FinishDeferredAsync(Direction direction, bool endOfStream)
    {
        direction.BodyPhaseRun = true;
        var result = await RunPhaseAsync(BodyPhase(direction), direction).ConfigureAwait(false);
        if (result.IsRespond)
        {
            await SendImmediateAsync(result.Response!).ConfigureAwait(false);
            return;
        }

        direction.HeaderReplyDeferred = false;
        await WriteAsync(BuildHeadersReply(direction)).ConfigureAwait(false);
        var body = Body(direction);
        var content = body.Replacement ?? body.Content;
        do
        {
            var take = Math.Min(content.Length, MaxStreamedChunk);
            var last = take == content.Length;
            await WriteAsync(StreamedBodyReply(direction, content[..take], last && endOfStream)).ConfigureAwait(false);
            content = content[take..];
        }
        while (!content.IsEmpty);
    }

    private async ValueTask OnTrailersAsync(Direction direction, global::Envoy.Config.Core.V3.HeaderMap? trailers)
    {
        if (!direction.HeadersSeen)
        {
            throw Violation($"{direction.Name} trailers before {direction.Name} headers");
        }

        if (direction.EndOfStream)
        {
            throw Violation($"{direction.Name} trailers after the end of the {direction.Name}");
        }

        direction.EndOfStream = true;
        var context = _context!;
        var list = EnvoyHeaders.ToHeaderList(trailers);
        if (direction.IsRequest)
        {
            context.RequestTrailers = list;
        }
        else
        {
            context.ResponseTrailers = list;
        }

        var body = Body(direction);
        if (direction.HeaderReplyDeferred)
        {
            body.Complete = true;
            await FinishDeferredAsync(direction, endOfStream: false).ConfigureAwait(false);
            if (Completed)
            {
                return;
            }
        }
        else if (body.Needed && !direction.BodyPhaseRun)
        {
            // STREAMED: the body ended with these trailers; stages may read it but no longer change it.
            body.Complete = true;
            direction.BodyPhaseRun = true;
            var bodyResult = await RunPhaseAsync(BodyPhase(direction), direction).ConfigureAwait(false);
            if (bodyResult.IsRespond)
            {
                await SendImmediateAsync(bodyResult.Response!).ConfigureAwait(false);
                return;
            }

            EnsureNoLateReplacement(direction, body);
        }

        var result = await RunPhaseAsync(direction.IsRequest ? ProcessingPhase.RequestTrailers : ProcessingPhase.ResponseTrailers, direction)
            .ConfigureAwait(false);
        if (result.IsRespond)
        {
            await SendImmediateAsync(result.Response!).ConfigureAwait(false);
            return;
        }

        await WriteAsync(direction.IsRequest ? RequestTrailersContinue : ResponseTrailersContinue).ConfigureAwait(false);
    }

    private ProcessingResponse BuildHeadersReply(Direction direction)
    {
        var context = _context!;
        var common = BuildCommon(direction, context, bodyMutation: null);
        var modeOverride = ModeOverrideFor(direction, context);
        var metadata = TakeDynamicMetadata(context);
        if (!direction.IsRequest && direction.Mode is not (BodySendMode.Buffered or BodySendMode.BufferedPartial))
        {
            _responseHeadersDownstream = true;
        }

        if (common is null && modeOverride is null && metadata is null)
        {
            return direction.IsRequest ? RequestHeadersContinue : ResponseHeadersContinue;
        }

        var reply = new HeadersResponse { Response = common };
        var response = direction.IsRequest ? new ProcessingResponse { RequestHeaders = reply } : new ProcessingResponse { ResponseHeaders = reply };
        response.ModeOverride = modeOverride;
        response.DynamicMetadata = metadata;
        return response;
    }

    private ProcessingResponse BuildBodyReply(Direction direction)
    {
        var context = _context!;
        var body = Body(direction);
        BodyMutation? bodyMutation = null;
        if (body.Replacement is { } replacement)
        {
            EnsureNoLateReplacement(direction, body);
            bodyMutation = new BodyMutation { Body = ByteString.CopyFrom(replacement.Span) };
            if (direction.Mode == BodySendMode.Buffered)
            {
                // Envoy keeps content-length in BUFFERED mode and fails the request (500) when it no
                // longer matches the body; the other modes strip it themselves.
                Mutations(direction, context).Set("content-length", replacement.Length.ToString(CultureInfo.InvariantCulture));
            }
        }

        if (direction.Mode == BodySendMode.Streamed)
        {
            // Headers have already gone on in STREAMED mode; Envoy ignores edits here.
            Mutations(direction, context).Clear();
        }

        var common = BuildCommon(direction, context, bodyMutation);
        if (!direction.IsRequest)
        {
            _responseHeadersDownstream = true;
        }

        var metadata = TakeDynamicMetadata(context);
        if (common is null && metadata is null)
        {
            return direction.IsRequest ? RequestBodyContinue : ResponseBodyContinue;
        }

        var reply = new BodyResponse { Response = common };
        var response = direction.IsRequest ? new ProcessingResponse { RequestBody = reply } : new ProcessingResponse { ResponseBody = reply };
        response.DynamicMetadata = metadata;
        return response;
    }

    private CommonResponse? BuildCommon(Direction direction, ProcessingContext context, BodyMutation? bodyMutation)
    {
        var headerMutation = EnvoyHeaders.ToMutation(Mutations(direction, context));
        Mutations(direction, context).Clear();
        var clearRouteCache = direction.IsRequest && context.ClearRouteCache;
        if (headerMutation is null && bodyMutation is null && !clearRouteCache)
        {
            return null;
        }

        var common = new CommonResponse { HeaderMutation = headerMutation, BodyMutation = bodyMutation };
        if (clearRouteCache)
        {
            // Envoy clears the route cache only when the reply also carries a header mutation.
            common.HeaderMutation ??= new HeaderMutation();
            common.ClearRouteCache = true;
            context.ClearRouteCache = false;
        }

        return common;
    }

    private ProcessingMode? ModeOverrideFor(Direction direction, ProcessingContext context)
    {
        // Envoy ignores an override with duplex modes or when bodies are sent without waiting.
        if (!_snapshot.Options.Envoy.AllowModeOverride || _sendBodyWithoutWaiting
            || _request.Mode == BodySendMode.FullDuplexStreamed || _response.Mode == BodySendMode.FullDuplexStreamed)
        {
            return null;
        }

        if (direction.IsRequest)
        {
            if (!context.Governed)
            {
                _request.Mode = BodySendMode.None;
                _response.Mode = BodySendMode.None;
                return UngovernedModeOverride;
            }

            if (!context.RequestBody.Needed && _request.Mode != BodySendMode.None && !direction.EndOfStream)
            {
                _request.Mode = BodySendMode.None;
                return new ProcessingMode { RequestBodyMode = BodySendMode.None, ResponseBodyMode = _response.Mode };
            }

            if (context.RequestBody.Needed && _request.Mode == BodySendMode.None && !direction.EndOfStream)
            {
                _request.Mode = BodySendMode.Buffered;
                return new ProcessingMode { RequestBodyMode = BodySendMode.Buffered, ResponseBodyMode = _response.Mode };
            }

            return null;
        }

        var wanted = context.ResponseBodyHandling switch
        {
            ResponseBodyHandling.Skip => BodySendMode.None,
            ResponseBodyHandling.Streamed => BodySendMode.Streamed,
            ResponseBodyHandling.Buffered => BodySendMode.Buffered,
            _ => context.ResponseBody.Needed && _response.Mode == BodySendMode.None ? BodySendMode.Buffered : _response.Mode,
        };
        if (wanted == _response.Mode || direction.EndOfStream)
        {
            return null;
        }

        _response.Mode = wanted;
        return new ProcessingMode { RequestBodyMode = _request.Mode, ResponseBodyMode = wanted };
    }

    private bool CanReadBody(Direction direction)
    {
        if (direction.Mode != BodySendMode.None)
        {
            return true;
        }

        // NONE can be lifted by our own mode_override in the headers reply.
        return _snapshot.Options.Envoy.AllowModeOverride && !_sendBodyWithoutWaiting
            && _request.Mode != BodySendMode.FullDuplexStreamed && _response.Mode != BodySendMode.FullDuplexStreamed;
    }

    private static void EnsureNoLateReplacement(Direction direction, BodyState body)
    {
        if (body.Replacement is not null && direction.Mode == BodySendMode.Streamed && !body.ObserveChunks)
        {
            throw new InvalidOperationException(
                "A body can be replaced only in BUFFERED, BUFFERED_PARTIAL or FULL_DUPLEX_STREAMED mode; in STREAMED mode it has already gone on.");
        }
    }

    private async ValueTask<StageResult> RunPhaseAsync(ProcessingPhase phase, Direction direction)
    {
        var context = _context!;
        context.Phase = phase;
        var pending = _snapshot.Runner.RunAsync(phase, context);
        if (pending.IsCompleted)
        {
            return pending.Result;
        }

        var envoy = _snapshot.Options.Envoy;
        var timerRunning = !_observability && direction.Mode != BodySendMode.FullDuplexStreamed && !direction.HeaderReplyDeferred;
        if (envoy.MaxMessageTimeout <= TimeSpan.Zero || !timerRunning)
        {
            return await pending.ConfigureAwait(false);
        }

        // A slow phase (remote auth, a cache fill) asks Envoy once for more time before its
        // message timer fires; Envoy reads nothing else from that message.
        var work = pending.AsTask();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_cancellation);
        var extendAfter = envoy.MessageTimeout * envoy.ExtendTimeoutAt;
        var delay = Task.Delay(extendAfter, _time, stop.Token);
        if (await Task.WhenAny(work, delay).ConfigureAwait(false) == delay && !work.IsCompleted)
        {
            await WriteAsync(new ProcessingResponse { OverrideMessageTimeout = Duration.FromTimeSpan(envoy.MaxMessageTimeout) }).ConfigureAwait(false);
        }

        await stop.CancelAsync().ConfigureAwait(false);
        return await work.ConfigureAwait(false);
    }

    private async ValueTask SendImmediateAsync(LocalResponse local)
    {
        Completed = true;
        var context = _context;
        if (context is not null)
        {
            context.Decision.Outcome = local.Details;
        }

        var immediate = new ImmediateResponse
        {
            Status = new global::Envoy.Type.V3.HttpStatus { Code = (global::Envoy.Type.V3.StatusCode)local.Status },
            Headers = EnvoyHeaders.ToMutation(local.Headers, local.ContentType),
            Body = ByteString.CopyFrom(local.Body.Span),
            Details = local.Details,
        };
        var response = new ProcessingResponse { ImmediateResponse = immediate };
        if (context is not null)
        {
            response.DynamicMetadata = TakeDynamicMetadata(context);
        }

        await WriteAsync(response).ConfigureAwait(false);
    }

    private Struct? TakeDynamicMetadata(ProcessingContext context)
    {
        var decision = context.Decision;
        if (!decision.Dirty)
        {
            return null;
        }

        decision.MarkSent();
        var fields = new Struct();
        fields.Fields["protocol"] = Value.ForString(decision.Protocol.ToWireName());
        fields.Fields["request_id"] = Value.ForString(context.RequestId);
        AddText(fields, "model", decision.Model);
        AddText(fields, "mcp_method", decision.McpMethod);
        AddText(fields, "mcp_target", decision.McpTarget);
        AddText(fields, "outcome", decision.Outcome);
        AddText(fields, "tenant", decision.Tenant);
        AddText(fields, "key_id", decision.KeyId);
        AddText(fields, "identity", decision.Identity);
        AddText(fields, "provider", decision.Provider);
        AddText(fields, "target_model", decision.TargetModel);
        AddText(fields, "route_reason", decision.RouteReason);
        AddText(fields, "cache", decision.Cache);
        if (decision.Attempt > 0)
        {
            fields.Fields["attempt"] = Value.ForNumber(decision.Attempt);
        }

        if (decision.Usage is { } usage)
        {
            fields.Fields["input_tokens"] = Value.ForNumber(usage.Input);
            fields.Fields["cached_input_tokens"] = Value.ForNumber(usage.CachedInput);
            fields.Fields["cache_write_tokens"] = Value.ForNumber(usage.CacheWrite);
            fields.Fields["output_tokens"] = Value.ForNumber(usage.Output);
            fields.Fields["reasoning_tokens"] = Value.ForNumber(usage.Reasoning);
            fields.Fields["cost_usd"] = Value.ForNumber((double)decision.CostUsd);
        }

        var metadata = new Struct();
        metadata.Fields[_snapshot.Options.Envoy.MetadataNamespace] = Value.ForStruct(fields);
        return metadata;

        // Absent facts stay absent (no empty strings in access logs).
        static void AddText(Struct fields, string key, string? value)
        {
            if (value is not null)
            {
                fields.Fields[key] = Value.ForString(value);
            }
        }
    }

    private void ReadAttributes(ProcessingRequest message, ProcessingContext context)
    {
        if (!message.Attributes.TryGetValue(AttributesKey, out var attributes))
        {
            return;
        }

        var seen = _attributes ??= new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in attributes.Fields)
        {
            switch (value.KindCase)
            {
                case Value.KindOneofCase.StringValue:
                    seen[key] = value.StringValue;
                    break;
                case Value.KindOneofCase.NumberValue:
                    seen[key] = value.NumberValue.ToString("R", CultureInfo.InvariantCulture);
                    break;
                case Value.KindOneofCase.BoolValue:
                    seen[key] = value.BoolValue ? "true" : "false";
                    break;
            }
        }

        context.Attributes = seen;
    }

    private ValueTask WriteAsync(ProcessingResponse response)
    {
        if (_observability)
        {
            return default;
        }

        var write = _writer.WriteAsync(response, _cancellation);
        return write.IsCompletedSuccessfully ? default : AwaitWriteAsync(write);

        static async ValueTask AwaitWriteAsync(Task write)
        {
            try
            {
                await write.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException)
            {
                // Envoy closes by END_STREAM then reset; a reply racing that reset has no reader.
                throw new PeerGoneException(ex);
            }
        }
    }

    private static ProcessingResponse ReplacedChunkReply(ReadOnlyMemory<byte> body) => new()
    {
        ResponseBody = new BodyResponse
        {
            Response = new CommonResponse { BodyMutation = new BodyMutation { Body = ByteString.CopyFrom(body.Span) } },
        },
    };

    private static ProcessingResponse StreamedBodyReply(Direction direction, ReadOnlyMemory<byte> chunk, bool endOfStream) =>
        StreamedBodyReply(direction, ByteString.CopyFrom(chunk.Span), endOfStream);

    private static ProcessingResponse StreamedBodyReply(Direction direction, ByteString chunk, bool endOfStream)
    {
        var reply = new BodyResponse
        {
            Response = new CommonResponse
            {
                BodyMutation = new BodyMutation
                {
                    StreamedResponse = new StreamedBodyResponse { Body = chunk, EndOfStream = endOfStream },
                },
            },
        };
        return direction.IsRequest ? new ProcessingResponse { RequestBody = reply } : new ProcessingResponse { ResponseBody = reply };
    }

    private LocalResponse BodyTooLarge(Direction direction) => direction.IsRequest
        ? ErrorResponses.Create(_context!, GatewayError.BodyTooLarge, "The request body is larger than this gateway accepts.")
        : ErrorResponses.Create(_context!, GatewayError.UpstreamBodyTooLarge, "The upstream response body is larger than this gateway accepts.");

    private BodyState Body(Direction direction) => direction.IsRequest ? _context!.RequestBody : _context!.ResponseBody;

    private static HeaderMutationBuilder Mutations(Direction direction, ProcessingContext context) =>
        direction.IsRequest ? context.RequestMutations : context.ResponseMutations;

    private static ProcessingPhase BodyPhase(Direction direction) =>
        direction.IsRequest ? ProcessingPhase.RequestBody : ProcessingPhase.ResponseBody;

    private static ProtocolViolationException Violation(string what) =>
        new(StatusCode.FailedPrecondition, "Out-of-order ext_proc message: " + what + ".");

    /// <summary>Runs the stages' end-of-stream work (releasing reservations); called once, however the stream ended.</summary>
    public ValueTask EndAsync() => _context is { } context ? _snapshot.Runner.EndAsync(context, _logger) : default;

    public void Dispose() => _context?.Dispose();

    /// <summary>What we know of one direction (request or response) of the HTTP stream.</summary>
    private sealed class Direction
    {
        public Direction(bool isRequest) => IsRequest = isRequest;

        public bool IsRequest { get; }

        public string Name => IsRequest ? "request" : "response";

        public BodySendMode Mode { get; set; }

        public bool HeadersSeen { get; set; }

        /// <summary>No more body or trailers will come for this direction.</summary>
        public bool EndOfStream { get; set; }

        public bool BodyPhaseRun { get; set; }

        public bool HeaderReplyDeferred { get; set; }
    }
}
