using Envoy.Config.Core.V3;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Envoy.Service.ExtProc.V3;
using Google.Protobuf;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;

namespace ExtProc.EnvoyEmulator;

// The ext_proc filter proper: spec §2 (state machine) and §3 (mutations). Runs on the event loop only.
public sealed partial class EmulatedStream
{
    private bool _streamedLocalReply;

    private bool CanTalk => !_processingComplete && !_sideStreamDone && (_side is null || !_side.Closing);

    private bool Observability => _config.ObservabilityMode;

    // ---- HTTP events entering the filter ----

    private void OnHeaders(DirectionState dir, HttpHeaderList headers, bool endStream)
    {
        dir.Started = true;
        dir.Headers = headers;
        dir.HeadersEndStream = endStream;
        dir.EndStreamSeen = endStream;
        if (!CanTalk || (_streamedLocalReply && dir.IsRequest))
        {
            ContinueHeaders(dir);
            return;
        }

        dir.Engaged = true;
        if (Observability)
        {
            if (dir.SendHeaders)
            {
                SendMessage(dir, HeadersMessage(dir, headers, endStream), expectReply: false);
            }

            ContinueHeaders(dir);
            return;
        }

        if (dir.SendHeaders)
        {
            SendMessage(dir, HeadersMessage(dir, headers, endStream), expectReply: true);
            dir.State = CallbackState.HeadersCallback;
            return;
        }

        // Header SKIP: headers continue now (content-length stripped in BUFFERED); the body may still be sent.
        ContinueHeaders(dir);
        if (!dir.IsRequest && dir.NothingConfigured && !_req.MaySendMore())
        {
            CloseSideStream();
        }
    }

    private void OnData(DirectionState dir, byte[] data, bool endStream)
    {
        if (endStream)
        {
            dir.EndStreamSeen = true;
        }

        if (_streamedLocalReply && dir.IsRequest)
        {
            // The local reply owns the response; duplex request chunks still go to the server.
            if (dir.BodyMode == BodySendMode.FullDuplexStreamed && CanTalk)
            {
                SendMessage(dir, BodyMessage(dir, data, endStream), expectReply: false);
            }

            return;
        }

        if (!CanTalk || !dir.Engaged)
        {
            EmitData(dir, data, endStream);
            return;
        }

        if (Observability)
        {
            if (dir.BodyMode == BodySendMode.Streamed)
            {
                SendMessage(dir, BodyMessage(dir, data, endStream), expectReply: false);
            }

            EmitData(dir, data, endStream);
            return;
        }

        if (dir.BodyReplaced)
        {
            return;
        }

        switch (dir.BodyMode)
        {
            case BodySendMode.None:
                if (!dir.HeadersContinued)
                {
                    // Envoy holds data while the headers reply is outstanding, whatever the mode, and notes a
                    // complete body: a mode_override in that reply may ask for it (NONE -> BUFFERED).
                    if (Hold(dir, data) && endStream && dir.State == CallbackState.HeadersCallback)
                    {
                        dir.CompleteBodyAvailable = true;
                    }

                    return;
                }

                EmitData(dir, data, endStream);
                MaybeCloseSideStream();
                return;

            case BodySendMode.Buffered:
                if (!Hold(dir, data) || !endStream)
                {
                    return;
                }

                if (dir.State == CallbackState.HeadersCallback)
                {
                    dir.CompleteBodyAvailable = true;
                    return;
                }

                if (dir.State == CallbackState.Idle)
                {
                    SendBufferedBody(dir, endStream: true);
                }

                return;

            case BodySendMode.Streamed:
                if (dir.State == CallbackState.HeadersCallback && !_config.SendBodyWithoutWaitingForHeaderResponse)
                {
                    if (Hold(dir, data) && endStream)
                    {
                        dir.CompleteBodyAvailable = true;
                    }

                    return;
                }

                if (!dir.HeadersContinued && dir.State != CallbackState.HeadersCallback)
                {
                    // Held for another reason (should not happen in STREAMED); keep order.
                    Hold(dir, data);
                    return;
                }

                SendStreamedChunk(dir, data, endStream);
                return;

            case BodySendMode.BufferedPartial:
                if (dir.PartialProcessed)
                {
                    EmitData(dir, data, endStream);
                    return;
                }

                dir.Buffer.Write(data);
                if (dir.State == CallbackState.HeadersCallback)
                {
                    dir.CompleteBodyAvailable |= endStream;
                    return;
                }

                if (dir.State == CallbackState.Idle && (endStream || dir.Buffer.Length > _config.BufferLimitBytes))
                {
                    SendPartial(dir, endStream);
                }

                return;

            case BodySendMode.FullDuplexStreamed:
                // Sent at once, also before the header reply, and drained: only server output goes on.
                dir.DuplexBodyStarted = true;
                SendMessage(dir, BodyMessage(dir, data, endStream), expectReply: false);
                return;

            default:
                EmitData(dir, data, endStream);
                return;
        }
    }

    private void OnTrailers(DirectionState dir, HttpHeaderList trailers)
    {
        dir.Trailers = trailers;
        dir.TrailersHeld = true;
        dir.EndStreamSeen = true;
        if (_streamedLocalReply && dir.IsRequest)
        {
            if (dir.BodyMode == BodySendMode.FullDuplexStreamed && dir.SendTrailers && CanTalk)
            {
                SendMessage(dir, TrailersMessage(dir, trailers), expectReply: false);
                dir.TrailersSentToServer = true;
            }

            return;
        }

        if (!CanTalk || !dir.Engaged)
        {
            EmitTrailers(dir);
            return;
        }

        if (Observability)
        {
            if (dir.SendTrailers)
            {
                SendMessage(dir, TrailersMessage(dir, trailers), expectReply: false);
            }

            EmitTrailers(dir);
            return;
        }

        if (dir.BodyReplaced)
        {
            return;
        }

        switch (dir.BodyMode)
        {
            case BodySendMode.FullDuplexStreamed:
                // Forwarded at once; the trailers reply ends the direction.
                SendMessage(dir, TrailersMessage(dir, trailers), expectReply: false);
                dir.TrailersSentToServer = true;
                return;

            case BodySendMode.Buffered:
                if (dir.State == CallbackState.HeadersCallback)
                {
                    dir.CompleteBodyAvailable |= dir.Buffer.Length > 0;
                    return;
                }

                if (dir.State == CallbackState.Idle && dir.Buffer.Length > 0)
                {
                    SendBufferedBody(dir, endStream: false);
                    return;
                }

                break;

            case BodySendMode.Streamed:
                if (dir.State == CallbackState.HeadersCallback)
                {
                    dir.CompleteBodyAvailable |= !_config.SendBodyWithoutWaitingForHeaderResponse && dir.Buffer.Length > 0;
                    return;
                }

                if (dir.Chunks.Count > 0)
                {
                    // Sent after the last chunk reply.
                    return;
                }

                break;

            case BodySendMode.BufferedPartial:
                if (dir.State == CallbackState.HeadersCallback)
                {
                    dir.CompleteBodyAvailable |= !dir.PartialProcessed && dir.Buffer.Length > 0;
                    return;
                }

                if (dir.State == CallbackState.BufferedPartialBodyCallback)
                {
                    return;
                }

                if (!dir.PartialProcessed && dir.Buffer.Length > 0)
                {
                    SendPartial(dir, endStream: false);
                    return;
                }

                break;
        }

        if (dir.State != CallbackState.Idle)
        {
            return;
        }

        SendTrailersOrContinue(dir);
    }

    // ---- Sending ----

    private bool Hold(DirectionState dir, byte[] data)
    {
        dir.Buffer.Write(data);
        if (dir.Buffer.Length <= _config.BufferLimitBytes)
        {
            return true;
        }

        AddLog(ExchangeLogKind.Event, null, null, "buffer limit exceeded");
        if (dir.IsRequest)
        {
            SendLocalReply(413, "Payload Too Large"u8.ToArray(), LocalReplyDetails.RequestPayloadTooLarge, LocalReplySource.ConnectionManager);
        }
        else
        {
            SendLocalReply(500, "Internal Server Error"u8.ToArray(), LocalReplyDetails.ResponsePayloadTooLarge, LocalReplySource.ConnectionManager);
        }

        return false;
    }

    private void SendBufferedBody(DirectionState dir, bool endStream)
    {
        dir.CompleteBodyAvailable = false;
        SendMessage(dir, BodyMessage(dir, dir.Buffer.ToArray(), endStream), expectReply: true);
        dir.State = CallbackState.BufferedBodyCallback;
    }

    private void SendStreamedChunk(DirectionState dir, byte[] data, bool endStream)
    {
        dir.Chunks.Enqueue((data, endStream));
        SendMessage(dir, BodyMessage(dir, data, endStream), expectReply: true);
        if (dir.State != CallbackState.HeadersCallback)
        {
            dir.State = CallbackState.StreamedBodyCallback;
        }
    }

    private void SendPartial(DirectionState dir, bool endStream)
    {
        var data = dir.Buffer.ToArray();
        dir.PartialSentLength = data.Length;
        dir.CompleteBodyAvailable = false;
        SendMessage(dir, BodyMessage(dir, data, endStream), expectReply: true);
        dir.State = CallbackState.BufferedPartialBodyCallback;
    }

    /// <summary>Releases held headers and data, then sends the trailers to the server or passes them on.</summary>
    private void SendTrailersOrContinue(DirectionState dir)
    {
        ContinueHeaders(dir);
        if (dir.Buffer.Length > 0)
        {
            EmitData(dir, dir.TakeBuffer(), endStream: false);
        }

        if (dir.SendTrailers && CanTalk && !Observability)
        {
            SendMessage(dir, TrailersMessage(dir, dir.Trailers!), expectReply: true);
            dir.TrailersSentToServer = true;
            dir.State = CallbackState.TrailersCallback;
            return;
        }

        EmitTrailers(dir);
        MaybeCloseSideStream();
    }

    private ProcessingRequest HeadersMessage(DirectionState dir, HttpHeaderList headers, bool endStream)
    {
        var payload = new HttpHeaders { Headers = ToHeaderMap(headers), EndOfStream = endStream };
        return dir.IsRequest ? new ProcessingRequest { RequestHeaders = payload } : new ProcessingRequest { ResponseHeaders = payload };
    }

    private static ProcessingRequest BodyMessage(DirectionState dir, byte[] data, bool endStream)
    {
        var payload = new HttpBody { Body = ByteString.CopyFrom(data), EndOfStream = endStream };
        return dir.IsRequest ? new ProcessingRequest { RequestBody = payload } : new ProcessingRequest { ResponseBody = payload };
    }

    private ProcessingRequest TrailersMessage(DirectionState dir, HttpHeaderList trailers)
    {
        var payload = new HttpTrailers { Trailers = ToHeaderMap(trailers) };
        return dir.IsRequest ? new ProcessingRequest { RequestTrailers = payload } : new ProcessingRequest { ResponseTrailers = payload };
    }

    /// <summary>Envoy fills raw_value only, lower-case keys, in map order, after forward_rules.</summary>
    private HeaderMap ToHeaderMap(HttpHeaderList headers)
    {
        var map = new HeaderMap();
        foreach (var (key, value) in headers)
        {
            if (_config.ForwardRules is { } rules && !rules.IsForwarded(key))
            {
                continue;
            }

            map.Headers.Add(new HeaderValue { Key = key, RawValue = ByteString.CopyFrom(value) });
        }

        return map;
    }

    // ---- Replies from the server ----

    private void OnProcessingResponse(ProcessingResponse response)
    {
        if (_processingComplete || Observability)
        {
            // Late replies after fail-open, and everything in observability mode, are ignored.
            return;
        }

        if (response.OverrideMessageTimeout is not null)
        {
            // Handled first and exclusively: the rest of the message is ignored.
            OnOverrideMessageTimeout(response.OverrideMessageTimeout);
            return;
        }

        if (_streamedLocalReply && response.ResponseCase != ProcessingResponse.ResponseOneofCase.StreamedImmediateResponse)
        {
            Spurious("reply other than streamed_immediate_response during a streamed local reply");
            return;
        }

        switch (response.ResponseCase)
        {
            case ProcessingResponse.ResponseOneofCase.RequestHeaders:
                OnHeadersReply(_req, response.RequestHeaders.Response ?? new CommonResponse(), response);
                break;
            case ProcessingResponse.ResponseOneofCase.ResponseHeaders:
                OnHeadersReply(_resp, response.ResponseHeaders.Response ?? new CommonResponse(), response);
                break;
            case ProcessingResponse.ResponseOneofCase.RequestBody:
                OnBodyReply(_req, response.RequestBody.Response ?? new CommonResponse(), response);
                break;
            case ProcessingResponse.ResponseOneofCase.ResponseBody:
                OnBodyReply(_resp, response.ResponseBody.Response ?? new CommonResponse(), response);
                break;
            case ProcessingResponse.ResponseOneofCase.RequestTrailers:
                OnTrailersReply(_req, response.RequestTrailers, response);
                break;
            case ProcessingResponse.ResponseOneofCase.ResponseTrailers:
                OnTrailersReply(_resp, response.ResponseTrailers, response);
                break;
            case ProcessingResponse.ResponseOneofCase.ImmediateResponse:
                OnImmediateResponse(response);
                break;
            case ProcessingResponse.ResponseOneofCase.StreamedImmediateResponse:
                OnStreamedImmediateResponse(response);
                break;
            default:
                Spurious("empty response");
                break;
        }
    }

    private void OnHeadersReply(DirectionState dir, CommonResponse common, ProcessingResponse response)
    {
        if (dir.State != CallbackState.HeadersCallback)
        {
            Spurious($"{response.ResponseCase} while not waiting for headers");
            return;
        }

        ApplyDynamicMetadata(response);
        StopTimer(dir);
        var replacing = common.Status == CommonResponse.Types.ResponseStatus.ContinueAndReplace;
        if (common.HeaderMutation is not null
            && _mutations.Apply(common.HeaderMutation, dir.Headers!, dir.RemovesContentLength, replacing) is { } error)
        {
            MutationFailure(dir, error);
            return;
        }

        MaybeClearRouteCache(dir, common);
        if (response.ModeOverride is not null)
        {
            TryModeOverride(response.ModeOverride);
        }

        dir.State = dir.Chunks.Count > 0 ? CallbackState.StreamedBodyCallback : CallbackState.Idle;
        if (replacing)
        {
            // CONTINUE_AND_REPLACE: body mode becomes NONE and trailers are not sent for this direction.
            dir.BodyMode = BodySendMode.None;
            dir.SendTrailers = false;
            if (common.BodyMutation is not null)
            {
                var body = MutatedBody(common.BodyMutation);
                dir.BodyReplaced = true;
                dir.Headers!.Remove("content-length");
                dir.Buffer.SetLength(0);
                dir.CompleteBodyAvailable = false;
                dir.HeadersEndStream = false;
                ContinueHeaders(dir);
                EmitData(dir, body, endStream: true);
                MaybeCloseSideStream();
                return;
            }
        }

        AfterHeadersReply(dir);
        MaybeCloseSideStream();
    }

    private void AfterHeadersReply(DirectionState dir)
    {
        if (dir.HeadersEndStream)
        {
            ContinueHeaders(dir);
            return;
        }

        var mode = dir.BodyMode;
        var streamedAlready = mode == BodySendMode.Streamed && _config.SendBodyWithoutWaitingForHeaderResponse;
        if (dir.CompleteBodyAvailable && !streamedAlready
            && mode is BodySendMode.Buffered or BodySendMode.Streamed or BodySendMode.BufferedPartial)
        {
            // The whole body arrived meanwhile: one message, handled as a buffered body reply.
            SendBufferedBody(dir, endStream: !dir.TrailersHeld);
            return;
        }

        switch (mode)
        {
            case BodySendMode.None:
                ContinueHeaders(dir);
                if (dir.Buffer.Length > 0 || (dir.EndStreamSeen && !dir.TrailersHeld))
                {
                    EmitData(dir, dir.TakeBuffer(), dir.EndStreamSeen && !dir.TrailersHeld);
                }

                if (dir.TrailersHeld)
                {
                    SendTrailersOrContinue(dir);
                }

                break;

            case BodySendMode.Buffered:
                if (dir.TrailersHeld && dir.Buffer.Length == 0)
                {
                    SendTrailersOrContinue(dir);
                }

                break;

            case BodySendMode.Streamed:
                ContinueHeaders(dir);
                if (dir.Buffer.Length > 0)
                {
                    SendStreamedChunk(dir, dir.TakeBuffer(), dir.EndStreamSeen && !dir.TrailersHeld);
                }
                else if (dir.Chunks.Count == 0 && dir.TrailersHeld)
                {
                    SendTrailersOrContinue(dir);
                }

                break;

            case BodySendMode.BufferedPartial:
                if (dir.Buffer.Length > _config.BufferLimitBytes)
                {
                    SendPartial(dir, endStream: false);
                }
                else if (dir.TrailersHeld && dir.Buffer.Length == 0)
                {
                    SendTrailersOrContinue(dir);
                }

                break;

            default:
                ContinueHeaders(dir);
                break;
        }
    }

    private void OnBodyReply(DirectionState dir, CommonResponse common, ProcessingResponse response)
    {
        var mutationCase = common.BodyMutation?.MutationCase ?? BodyMutation.MutationOneofCase.None;
        if (dir.BodyMode == BodySendMode.FullDuplexStreamed && dir.Started && dir.State == CallbackState.Idle && dir.HeadersContinued)
        {
            if (mutationCase != BodyMutation.MutationOneofCase.StreamedResponse)
            {
                Spurious("plain body mutation in FULL_DUPLEX_STREAMED");
                return;
            }

            ApplyDynamicMetadata(response);
            var streamed = common.BodyMutation!.StreamedResponse;
            if (!dir.OutputEnded)
            {
                EmitData(dir, streamed.Body.ToByteArray(), streamed.EndOfStream);
                dir.DuplexEnded |= streamed.EndOfStream;
            }

            MaybeCloseSideStream();
            return;
        }

        if (dir.State is not (CallbackState.BufferedBodyCallback or CallbackState.StreamedBodyCallback or CallbackState.BufferedPartialBodyCallback))
        {
            Spurious($"{response.ResponseCase} in state {dir.State}");
            return;
        }

        if (mutationCase == BodyMutation.MutationOneofCase.StreamedResponse)
        {
            Spurious("streamed_response is received while body_mode_ is not FULL_DUPLEX_STREAMED");
            return;
        }

        ApplyDynamicMetadata(response);
        StopTimer(dir);
        switch (dir.State)
        {
            case CallbackState.BufferedBodyCallback:
                {
                    if (!dir.HeadersContinued && common.HeaderMutation is not null
                        && _mutations.Apply(common.HeaderMutation, dir.Headers!, dir.RemovesContentLength, replacingMessage: false) is { } error)
                    {
                        MutationFailure(dir, error);
                        return;
                    }

                    MaybeClearRouteCache(dir, common);
                    var body = dir.TakeBuffer();
                    if (common.BodyMutation is not null)
                    {
                        body = MutatedBody(common.BodyMutation);
                        if (!dir.HeadersContinued && !dir.RemovesContentLength && dir.Headers!.Get("content-length") is { } contentLength
                            && contentLength != body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture))
                        {
                            SendLocalReply(_config.StatusOnError, [], LocalReplyDetails.ContentLengthMismatch, LocalReplySource.ExtProc);
                            return;
                        }
                    }

                    dir.State = CallbackState.Idle;
                    dir.LastReplyWasBuffered = true;
                    ContinueHeaders(dir);
                    if (dir.TrailersHeld)
                    {
                        if (body.Length > 0)
                        {
                            EmitData(dir, body, endStream: false);
                        }

                        SendTrailersOrContinue(dir);
                    }
                    else
                    {
                        EmitData(dir, body, endStream: true);
                    }

                    break;
                }

            case CallbackState.StreamedBodyCallback:
                {
                    // Header mutations are ignored here: the headers already left.
                    MaybeClearRouteCache(dir, common);
                    var (data, endStream) = dir.Chunks.Dequeue();
                    if (common.BodyMutation is not null)
                    {
                        data = MutatedBody(common.BodyMutation);
                    }

                    EmitData(dir, data, endStream);
                    if (dir.Chunks.Count == 0)
                    {
                        dir.State = CallbackState.Idle;
                        if (dir.TrailersHeld)
                        {
                            SendTrailersOrContinue(dir);
                        }
                    }

                    break;
                }

            case CallbackState.BufferedPartialBodyCallback:
                {
                    if (!dir.HeadersContinued && common.HeaderMutation is not null
                        && _mutations.Apply(common.HeaderMutation, dir.Headers!, dir.RemovesContentLength, replacingMessage: false) is { } error)
                    {
                        MutationFailure(dir, error);
                        return;
                    }

                    MaybeClearRouteCache(dir, common);
                    var all = dir.TakeBuffer();
                    var processed = common.BodyMutation is not null ? MutatedBody(common.BodyMutation) : all[..dir.PartialSentLength];
                    var leftover = all[dir.PartialSentLength..];
                    dir.PartialProcessed = true;
                    dir.State = CallbackState.Idle;
                    dir.LastReplyWasBuffered = true;
                    ContinueHeaders(dir);
                    byte[] output = [.. processed, .. leftover];
                    var end = dir.EndStreamSeen && !dir.TrailersHeld;
                    if (output.Length > 0 || end)
                    {
                        EmitData(dir, output, end);
                    }

                    if (dir.TrailersHeld)
                    {
                        SendTrailersOrContinue(dir);
                    }

                    break;
                }
        }

        MaybeCloseSideStream();
    }

    private void OnTrailersReply(DirectionState dir, TrailersResponse trailersResponse, ProcessingResponse response)
    {
        var duplex = dir.BodyMode == BodySendMode.FullDuplexStreamed && dir.State == CallbackState.Idle && dir.HeadersContinued;
        if (duplex && !dir.TrailersSentToServer)
        {
            // A synthesised trailers reply without client trailers never reaches the other side.
            AddLog(ExchangeLogKind.Event, null, null, "trailers reply without client trailers ignored");
            return;
        }

        if (dir.State != CallbackState.TrailersCallback && !(duplex && !dir.OutputEnded))
        {
            Spurious($"{response.ResponseCase} in state {dir.State}");
            return;
        }

        ApplyDynamicMetadata(response);
        StopTimer(dir);
        if (trailersResponse.HeaderMutation is not null
            && _mutations.Apply(trailersResponse.HeaderMutation, dir.Trailers!, removeContentLength: false, replacingMessage: false) is { } error)
        {
            MutationFailure(dir, error);
            return;
        }

        dir.State = CallbackState.Idle;
        dir.DuplexEnded = true;
        EmitTrailers(dir);
        MaybeCloseSideStream();
    }

    private void OnImmediateResponse(ProcessingResponse response)
    {
        if (_config.DisableImmediateResponse)
        {
            Spurious("immediate_response while disable_immediate_response is set");
            return;
        }

        ApplyDynamicMetadata(response);
        Stats.Inc(ExtProcStats.ImmediateResponsesSent);
        var immediate = response.ImmediateResponse;
        var code = immediate.Status is null ? 200 : (int)immediate.Status.Code;
        if (code < 200)
        {
            code = 200;
        }

        SendLocalReply(code, immediate.Body.ToByteArray(), LocalReplyDetails.ReplaceSpaces(immediate.Details), LocalReplySource.ExtProc,
            headers =>
            {
                if (immediate.Headers is not null)
                {
                    ApplyImmediateResponseHeaders(immediate.Headers, headers);
                }

                if (immediate.GrpcStatus is not null)
                {
                    headers.Set("grpc-status", immediate.GrpcStatus.Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }
            });
    }

    /// <summary>Immediate-response headers: configured rules apply, failures are only logged.</summary>
    private void ApplyImmediateResponseHeaders(HeaderMutation mutation, HttpHeaderList headers)
    {
        foreach (var option in mutation.SetHeaders)
        {
            if (option.Header is null)
            {
                continue;
            }

            var key = option.Header.Key.ToLowerInvariant();
            var value = option.Header.RawValue.ToByteArray();
            if (key.StartsWith(':') || !HeaderSyntax.IsValidKey(key) || !HeaderSyntax.IsValidValue(value)
                || (option.Header.Value.Length > 0 && value.Length > 0))
            {
                AddLog(ExchangeLogKind.Event, null, null, $"immediate response header '{key}' dropped");
                continue;
            }

            var append = HeaderMutationApplier.AppendOf(option) && headers.Contains(key);
            if (_checker.Check(append ? CheckOperation.Append : CheckOperation.Set, key, value) != CheckResult.Ok)
            {
                AddLog(ExchangeLogKind.Event, null, null, $"immediate response header '{key}' rejected");
                continue;
            }

            if (append)
            {
                headers.Add(key, value);
            }
            else
            {
                headers.Set(key, value);
            }
        }

        foreach (var remove in mutation.RemoveHeaders)
        {
            if (_checker.Check(CheckOperation.Remove, remove.ToLowerInvariant(), null) == CheckResult.Ok)
            {
                headers.Remove(remove);
            }
        }
    }

    private void OnStreamedImmediateResponse(ProcessingResponse response)
    {
        var streamed = response.StreamedImmediateResponse;
        if (!_streamedLocalReply)
        {
            var valid = streamed.ResponseCase == StreamedImmediateResponse.ResponseOneofCase.HeadersResponse
                && _req.State == CallbackState.HeadersCallback && !_config.DisableImmediateResponse
                && _req.BodyMode is BodySendMode.None or BodySendMode.FullDuplexStreamed;
            var headers = new HttpHeaderList();
            foreach (var header in streamed.HeadersResponse?.Headers?.Headers ?? [])
            {
                headers.Add(header.Key, header.RawValue.ToByteArray());
            }

            if (!valid || !headers.Contains(":status"))
            {
                Spurious("streamed_immediate_response not valid here");
                return;
            }

            ApplyDynamicMetadata(response);
            StopTimer(_req);
            _req.State = CallbackState.Idle;
            _streamedLocalReply = true;
            _req.OutputEnded = true;
            _req.Buffer.SetLength(0);
            Stats.Inc(ExtProcStats.ImmediateResponsesSent);
            ResponseCodeDetails = "ext_proc_streamed_immediate_response";
            AddLog(ExchangeLogKind.Event, null, null, "streamed local reply started");
            _resp.Started = true;
            _resp.HeadersContinued = true;
            SendDownstreamHeaders(headers, streamed.HeadersResponse!.EndOfStream);
            if (streamed.HeadersResponse.EndOfStream)
            {
                StreamedLocalReplyFinished();
            }

            return;
        }

        ApplyDynamicMetadata(response);
        switch (streamed.ResponseCase)
        {
            case StreamedImmediateResponse.ResponseOneofCase.BodyResponse:
                SendDownstreamData(streamed.BodyResponse.Body.ToByteArray(), streamed.BodyResponse.EndOfStream);
                if (streamed.BodyResponse.EndOfStream)
                {
                    StreamedLocalReplyFinished();
                }

                break;
            case StreamedImmediateResponse.ResponseOneofCase.TrailersResponse:
                var trailers = new HttpHeaderList();
                foreach (var header in streamed.TrailersResponse.Headers)
                {
                    trailers.Add(header.Key, header.RawValue.ToByteArray());
                }

                SendDownstreamTrailers(trailers);
                StreamedLocalReplyFinished();
                break;
            default:
                Spurious("second headers_response in a streamed local reply");
                break;
        }
    }

    private void StreamedLocalReplyFinished()
    {
        _processingComplete = true;
        CloseSideStream();
        if (!_req.EndStreamSeen)
        {
            // The client is still sending: it gets the whole local response, then a reset.
            _downstream.Writer.TryWrite(new ResetFrame("local reply completed before the request"));
        }

        _finished = true;
    }

    private void Spurious(string reason)
    {
        Stats.Inc(ExtProcStats.SpuriousMsgsReceived);
        AddLog(ExchangeLogKind.Event, null, null, "spurious: " + reason);
        if (!_config.Runtime.FailCloseSpuriousResp)
        {
            return;
        }

        if (FailOpenAllowed())
        {
            Stats.Inc(ExtProcStats.FailureModeAllowed);
            CloseSideStream();
            ContinueWithoutServer();
            return;
        }

        SendLocalReply(_config.StatusOnError, [], LocalReplyDetails.SpuriousMessage, LocalReplySource.ExtProc);
    }

    private void MutationFailure(DirectionState dir, string error)
    {
        AddLog(ExchangeLogKind.Event, null, null, "header mutation failed: " + error);
        SendLocalReply(_config.StatusOnError, [], LocalReplyDetails.HeaderMutationFailed, LocalReplySource.ExtProc);
        _ = dir;
    }

    private static byte[] MutatedBody(BodyMutation mutation) => mutation.MutationCase switch
    {
        BodyMutation.MutationOneofCase.Body => mutation.Body.ToByteArray(),
        _ => [],
    };

    private void MaybeClearRouteCache(DirectionState dir, CommonResponse common)
    {
        if (!dir.IsRequest)
        {
            return;
        }

        if (common.HeaderMutation is null)
        {
            if (common.ClearRouteCache)
            {
                Stats.Inc(ExtProcStats.ClearRouteCacheIgnored);
            }

            return;
        }

        if (_config.IsUpstreamFilter)
        {
            if (common.ClearRouteCache || _config.RouteCacheAction == RouteCacheAction.Clear)
            {
                Stats.Inc(ExtProcStats.ClearRouteCacheUpstreamIgnored);
            }

            return;
        }

        if (_config.DisableClearRouteCache || _config.RouteCacheAction == RouteCacheAction.Retain)
        {
            if (common.ClearRouteCache)
            {
                Stats.Inc(ExtProcStats.ClearRouteCacheDisabled);
            }

            return;
        }

        if (common.ClearRouteCache || _config.RouteCacheAction == RouteCacheAction.Clear)
        {
            _routeCacheCleared = true;
            AddLog(ExchangeLogKind.Event, null, null, "route cache cleared");
            _emulator.OnRouteCacheCleared?.Invoke(dir.Headers!);
        }
    }

    private void TryModeOverride(ProcessingMode requested)
    {
        if (!_config.AllowModeOverride || _config.SendBodyWithoutWaitingForHeaderResponse
            || _configuredMode.RequestBodyMode == BodySendMode.FullDuplexStreamed
            || _configuredMode.ResponseBodyMode == BodySendMode.FullDuplexStreamed)
        {
            return;
        }

        var effective = _configuredMode.Clone();
        if (requested.ResponseHeaderMode != HeaderSendMode.Default)
        {
            effective.ResponseHeaderMode = requested.ResponseHeaderMode;
        }

        if (requested.RequestTrailerMode != HeaderSendMode.Default)
        {
            effective.RequestTrailerMode = requested.RequestTrailerMode;
        }

        if (requested.ResponseTrailerMode != HeaderSendMode.Default)
        {
            effective.ResponseTrailerMode = requested.ResponseTrailerMode;
        }

        // Both body modes are always replaced: unset means NONE.
        effective.RequestBodyMode = requested.RequestBodyMode;
        effective.ResponseBodyMode = requested.ResponseBodyMode;
        if (_config.AllowedOverrideModes.Count > 0 && !_config.AllowedOverrideModes.Exists(allowed =>
                allowed.ResponseHeaderMode == effective.ResponseHeaderMode
                && allowed.RequestBodyMode == effective.RequestBodyMode
                && allowed.ResponseBodyMode == effective.ResponseBodyMode
                && allowed.RequestTrailerMode == effective.RequestTrailerMode
                && allowed.ResponseTrailerMode == effective.ResponseTrailerMode))
        {
            AddLog(ExchangeLogKind.Event, null, null, "mode_override not in allowed_override_modes");
            return;
        }

        AddLog(ExchangeLogKind.Event, null, null, "mode_override applied");
        _req.ApplyMode(effective);
        _resp.ApplyMode(effective);
    }

    /// <summary>The server is gone (OK close, fail-open): release everything held, unmodified.</summary>
    private void ContinueWithoutServer()
    {
        _processingComplete = true;
        StopTimer(_req);
        StopTimer(_resp);
        foreach (var dir in new[] { _req, _resp })
        {
            if (!dir.Started || dir.OutputEnded || (_streamedLocalReply && dir.IsRequest))
            {
                continue;
            }

            dir.State = CallbackState.Idle;
            ContinueHeaders(dir);
            using var pending = new MemoryStream();
            foreach (var (data, _) in dir.Chunks)
            {
                pending.Write(data);
            }

            dir.Chunks.Clear();
            pending.Write(dir.TakeBuffer());
            var end = dir.EndStreamSeen && !dir.TrailersHeld;
            if (pending.Length > 0 || end)
            {
                EmitData(dir, pending.ToArray(), end);
            }

            if (dir.TrailersHeld)
            {
                EmitTrailers(dir);
            }
        }
    }

    private void MaybeCloseSideStream()
    {
        if (!_config.Runtime.StreamCloseOptimization || _side is null || _side.Closing || Observability || _processingComplete)
        {
            return;
        }

        if (_req.MaySendMore() || _resp.MaySendMore() || _req.LastReplyWasBuffered || _resp.LastReplyWasBuffered)
        {
            return;
        }

        CloseSideStream();
    }
}
