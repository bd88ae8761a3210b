using System.Threading.Channels;
using Envoy.Config.Core.V3;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Envoy.Service.ExtProc.V3;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;
using GrpcMetadata = Grpc.Core.Metadata;

namespace ExtProc.EnvoyEmulator;

// Event loop, side stream and timers. Everything that mutates filter state runs in Handle().
public sealed partial class EmulatedStream
{
    private const string AttributesKey = "envoy.filters.http.ext_proc";

    private readonly Channel<object> _events = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<string, Struct> _metadata = [];
    private readonly Dictionary<string, Any> _typedMetadata = [];
    private readonly EnvoyEmulator _emulator;
    private readonly ExtProcFilterConfig _config;
    private readonly DownstreamRequest _request;
    private readonly CancellationTokenSource _cts;
    private readonly TimeProvider _time;
    private readonly HeaderMutationApplier _mutations;
    private readonly HeaderMutationChecker _checker;
    private readonly DirectionState _req;
    private readonly DirectionState _resp;

    // Effective settings after per-route overrides.
    private readonly List<Uri> _grpcTargets;
    private readonly List<KeyValuePair<string, string>> _initialMetadata;
    private readonly bool _failureModeAllowConfigured;
    private readonly ProcessingMode _configuredMode;

    private SideStream? _side;
    private bool _sideStreamDone;
    private bool _firstMessageSent;
    private bool _processingComplete;
    private bool _finished;
    private int _hostIndex;
    private int _retriesLeft;
    private ITimer? _idleTimer;
    private int _idleGen;
    private ITimer? _deferredCloseTimer;

    internal EmulatedStream(EnvoyEmulator emulator, DownstreamRequest request, CancellationToken cancellationToken)
    {
        _emulator = emulator;
        Stats = new ExtProcStats(emulator.Stats);
        _config = emulator.Config;
        _request = request;
        _time = emulator.TimeProvider;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _checker = new HeaderMutationChecker(_config.MutationRules);
        _mutations = new HeaderMutationApplier(_config, _checker, Stats);
        foreach (var (key, value) in request.DynamicMetadata)
        {
            _metadata[key] = value.Clone();
        }

        foreach (var (key, value) in request.TypedDynamicMetadata)
        {
            _typedMetadata[key] = value.Clone();
        }

        var mode = _config.ProcessingMode.Clone();
        _configuredMode = mode;
        _grpcTargets = [.. _config.GrpcService];
        _initialMetadata = [.. _config.GrpcInitialMetadata];
        _failureModeAllowConfigured = _config.FailureModeAllow;

        // The route (and so the per-route config) is chosen from the request headers before ext_proc runs.
        _route = emulator.Routes.Match(request.Headers);
        RouteSelections = 1;
        var perRouteConfig = _route is null ? null : ExtProcPerRouteConfig.Merge(emulator.Routes.VirtualHostExtProcPerRoute, _route.ExtProcPerRoute);
        if (perRouteConfig is { } perRoute)
        {
            if (perRoute.Disabled)
            {
                mode = new ProcessingMode
                {
                    RequestHeaderMode = HeaderSendMode.Skip,
                    ResponseHeaderMode = HeaderSendMode.Skip,
                    RequestTrailerMode = HeaderSendMode.Skip,
                    ResponseTrailerMode = HeaderSendMode.Skip,
                };
            }
            else if (perRoute.ProcessingMode is { } routeMode)
            {
                mode = routeMode.Clone();
            }

            if (perRoute.GrpcService is { } target)
            {
                _grpcTargets = [target];
            }

            foreach (var entry in perRoute.GrpcInitialMetadata)
            {
                _initialMetadata.RemoveAll(e => string.Equals(e.Key, entry.Key, StringComparison.OrdinalIgnoreCase));
                _initialMetadata.Add(entry);
            }

            _failureModeAllowConfigured = perRoute.FailureModeAllow ?? _failureModeAllowConfigured;
        }

        _configuredMode = mode;
        _retriesLeft = _config.RetryPolicy?.NumRetries ?? 0;
        _req = new DirectionState(isRequest: true);
        _resp = new DirectionState(isRequest: false);
        _req.ApplyMode(mode);
        _resp.ApplyMode(mode);
    }

    internal void Run() => _ = LoopAsync();

    private void Post(object evt) => _events.Writer.TryWrite(evt);

    private async Task LoopAsync()
    {
        try
        {
            RestartIdleTimer();
            if (!_request.EndStreamOnHeaders && _request.Body is not null)
            {
                _ = PumpAsync(_request.Body, static f => new DownstreamFrameEvent(f), new DownstreamBodyEndedEvent(), _cts.Token);
            }

            OnHeaders(_req, _request.Headers.Clone(), _request.EndStreamOnHeaders);
            while (!_finished && await _events.Reader.WaitToReadAsync())
            {
                while (!_finished && _events.Reader.TryRead(out var evt))
                {
                    Handle(evt);
                }
            }
        }
        catch (Exception ex)
        {
            AddLog(ExchangeLogKind.Event, null, null, "emulator error: " + ex);
            ResetDownstream("emulator_error");
        }
        finally
        {
            Finish();
        }
    }

    private async Task PumpAsync(IAsyncEnumerable<HttpFrame> source, Func<HttpFrame, object> wrap, object endEvent, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var frame in source.WithCancellation(cancellationToken))
            {
                Post(wrap(frame));
            }

            Post(endEvent);
        }
        catch (OperationCanceledException)
        {
            // The stream is over.
        }
        catch (Exception ex)
        {
            Post(wrap(new ResetFrame(ex.Message)));
        }
    }

    private void Handle(object evt)
    {
        switch (evt)
        {
            case DownstreamFrameEvent { Frame: DataFrame data }:
                RestartIdleTimer();
                OnData(_req, data.Data.ToArray(), data.EndStream);
                break;
            case DownstreamFrameEvent { Frame: TrailersFrame trailers }:
                RestartIdleTimer();
                OnTrailers(_req, trailers.Trailers);
                break;
            case DownstreamFrameEvent { Frame: ResetFrame } or ClientAbortEvent:
                AddLog(ExchangeLogKind.Event, null, null, "downstream reset");
                ResetDownstream("downstream_remote_disconnect");
                break;
            case DownstreamBodyEndedEvent:
                if (!_req.EndStreamSeen)
                {
                    // The source ended without END_STREAM: treat as an empty final DATA frame.
                    OnData(_req, [], true);
                }

                break;
            case ProcessorMessageEvent m when _side is not null && m.Gen == _side.Gen && !_side.Closing:
                _side.ReplyReceived = true;
                Stats.Inc(ExtProcStats.StreamMsgsReceived);
                AddLog(ExchangeLogKind.Received, null, m.Response, null);
                OnProcessingResponse(m.Response);
                break;
            case ProcessorClosedEvent c when _side is not null && c.Gen == _side.Gen && !_side.Closing:
                OnSideStreamClosedByServer(c.Status);
                break;
            case MessageTimerEvent t:
                OnMessageTimeout(t.Request ? _req : _resp, t.Gen);
                break;
            case IdleTimerEvent i when i.Gen == _idleGen:
                AddLog(ExchangeLogKind.Event, null, null, "stream idle timeout");
                SendLocalReply(504, "stream timeout"u8.ToArray(), LocalReplyDetails.StreamIdleTimeout, LocalReplySource.ConnectionManager);
                break;
            case DeferredCloseEvent:
                CloseSideStream();
                break;
            case UpstreamHeadersEvent u:
                OnUpstreamHeaders(u.Response);
                break;
            case UpstreamFrameEvent { Frame: DataFrame data }:
                OnData(_resp, data.Data.ToArray(), data.EndStream);
                break;
            case UpstreamFrameEvent { Frame: TrailersFrame trailers }:
                OnTrailers(_resp, trailers.Trailers);
                break;
            case UpstreamFrameEvent { Frame: ResetFrame reset }:
                OnUpstreamReset(reset.Reason);
                break;
            case UpstreamBodyEndedEvent:
                if (_resp.Started && !_resp.EndStreamSeen)
                {
                    OnData(_resp, [], true);
                }

                break;
            case UpstreamFailedEvent f:
                OnUpstreamFailed(f.Error);
                break;
        }
    }

    private void AddLog(ExchangeLogKind kind, ProcessingRequest? request, ProcessingResponse? response, string? note)
    {
        var entry = new ExchangeLogEntry(kind, request, response, note);
        lock (_log)
        {
            _log.Add(entry);
        }

        _emulator.OnLog?.Invoke(entry);
    }

    // ---- Side stream ----

    private bool EnsureSideStream()
    {
        if (_side is not null)
        {
            return !_side.Closing;
        }

        if (_sideStreamDone || _grpcTargets.Count == 0)
        {
            return false;
        }

        OpenSideStream(replay: null);
        Stats.Inc(ExtProcStats.StreamsStarted);
        return true;
    }

    private void OpenSideStream(List<ProcessingRequest>? replay)
    {
        var target = _grpcTargets[_hostIndex % _grpcTargets.Count];
        var client = _emulator.ClientFor(target);
        var headers = new GrpcMetadata();
        foreach (var (key, value) in _initialMetadata)
        {
            headers.Add(key, value);
        }

        var cts = new CancellationTokenSource();
        var call = client.Process(headers, cancellationToken: cts.Token);
        var side = new SideStream((_side?.Gen ?? 0) + 1, call, cts);
        _side = side;
        AddLog(ExchangeLogKind.StreamOpened, null, null, target.ToString());
        if (replay is not null)
        {
            foreach (var message in replay)
            {
                side.Sent.Add(message);
                side.Outbox.Writer.TryWrite(message);
            }
        }

        side.WriterTask = WriteLoopAsync(side);
        side.ReaderTask = ReadLoopAsync(side);
    }

    private async Task WriteLoopAsync(SideStream side)
    {
        try
        {
            await foreach (var message in side.Outbox.Reader.ReadAllAsync())
            {
                await side.Call.RequestStream.WriteAsync(message);
            }

            await side.Call.RequestStream.CompleteAsync();
        }
        catch (RpcException ex)
        {
            Post(new ProcessorClosedEvent(side.Gen, ex.Status));
        }
        catch (Exception ex) when (ex is OperationCanceledException or InvalidOperationException or ObjectDisposedException)
        {
            Post(new ProcessorClosedEvent(side.Gen, new Status(StatusCode.Unavailable, ex.Message)));
        }
    }

    private async Task ReadLoopAsync(SideStream side)
    {
        try
        {
            while (await side.Call.ResponseStream.MoveNext(CancellationToken.None))
            {
                Post(new ProcessorMessageEvent(side.Gen, side.Call.ResponseStream.Current));
            }

            Post(new ProcessorClosedEvent(side.Gen, side.Call.GetStatus()));
        }
        catch (RpcException ex)
        {
            Post(new ProcessorClosedEvent(side.Gen, ex.Status));
        }
        catch (Exception ex)
        {
            Post(new ProcessorClosedEvent(side.Gen, new Status(StatusCode.Cancelled, ex.Message)));
        }
        finally
        {
            side.ServerDone.TrySetResult();
            if (_finished && !side.Closing)
            {
                _sideStreamClosed.TrySetResult();
            }
        }
    }

    /// <summary>Envoy's close: END_STREAM on the request side, then cancel (or wait if graceful).</summary>
    private void CloseSideStream()
    {
        _deferredCloseTimer?.Dispose();
        var side = _side;
        if (side is null || side.Closing)
        {
            if (side is null)
            {
                _sideStreamDone = true;
                _sideStreamClosed.TrySetResult();
            }

            return;
        }

        side.Closing = true;
        _sideStreamDone = true;
        Stats.Inc(ExtProcStats.StreamsClosed);
        AddLog(ExchangeLogKind.ClientClosed, null, null, null);
        side.Outbox.Writer.TryComplete();
        var graceful = _config.Runtime.GracefulGrpcClose;
        _ = Task.Run(async () =>
        {
            try
            {
                await side.WriterTask!.WaitAsync(TimeSpan.FromSeconds(2));
                if (graceful)
                {
                    // ext_proc_graceful_grpc_close: wait up to 1 s for the server's status before resetting.
                    await side.ServerDone.Task.WaitAsync(TimeSpan.FromSeconds(1));
                    AddLog(ExchangeLogKind.Event, null, null, $"side stream finished by server: {side.Call.GetStatus().StatusCode}");
                }
            }
            catch (Exception)
            {
                // Best effort: the cancel below ends it anyway.
            }

            await side.Cts.CancelAsync();
            side.Call.Dispose();
            _sideStreamClosed.TrySetResult();
        });
    }

    private void OnSideStreamClosedByServer(Status status)
    {
        var side = _side!;
        AddLog(ExchangeLogKind.ServerClosed, null, null, $"{status.StatusCode} {status.Detail}");
        if (status.StatusCode != StatusCode.OK && !side.ReplyReceived && _retriesLeft > 0
            && _config.RetryPolicy is { } retry && retry.RetryOn.Contains(status.StatusCode))
        {
            // EnvoyGrpc retry: a new stream (maybe another host) gets the same messages again.
            _retriesLeft--;
            _hostIndex++;
            side.Closing = true;
            side.Outbox.Writer.TryComplete();
            side.Call.Dispose();
            AddLog(ExchangeLogKind.Event, null, null, "side stream retry");
            OpenSideStream([.. side.Sent]);
            return;
        }

        side.Closing = true;
        _sideStreamDone = true;
        side.Outbox.Writer.TryComplete();
        _ = Task.Run(async () =>
        {
            await side.Cts.CancelAsync();
            side.Call.Dispose();
            _sideStreamClosed.TrySetResult();
        });

        if (_processingComplete)
        {
            return;
        }

        if (status.StatusCode == StatusCode.OK)
        {
            // Server finished the call: Envoy carries on without it.
            Stats.Inc(ExtProcStats.ServerHalfClosed);
            ContinueWithoutServer();
            return;
        }

        Stats.Inc(ExtProcStats.StreamsFailed);
        if (FailOpenAllowed())
        {
            Stats.Inc(ExtProcStats.FailureModeAllowed);
            ContinueWithoutServer();
            return;
        }

        SendLocalReply(_config.StatusOnError, [], LocalReplyDetails.GrpcError(status.StatusCode, status.Detail), LocalReplySource.ExtProc);
    }

    private bool FailOpenAllowed() =>
        _failureModeAllowConfigured && !_req.DuplexBodyStarted && !_resp.DuplexBodyStarted;

    private void SendMessage(DirectionState dir, ProcessingRequest message, bool expectReply)
    {
        if (!EnsureSideStream())
        {
            return;
        }

        message.MetadataContext = BuildMetadataContext();
        var expressions = dir.IsRequest ? _config.RequestAttributes : _config.ResponseAttributes;
        if (!dir.AttributesSent && expressions.Count > 0)
        {
            message.Attributes[AttributesKey] = EvaluateAttributes(dir, expressions);
        }

        dir.AttributesSent = true;
        if (_config.ObservabilityMode)
        {
            message.ObservabilityMode = true;
        }
        else if (!_firstMessageSent)
        {
            message.ProtocolConfig = new ProtocolConfiguration
            {
                RequestBodyMode = _req.BodyMode,
                ResponseBodyMode = _resp.BodyMode,
                SendBodyWithoutWaitingForHeaderResponse = _config.SendBodyWithoutWaitingForHeaderResponse,
            };
        }

        _firstMessageSent = true;
        Stats.Inc(ExtProcStats.StreamMsgsSent);
        AddLog(ExchangeLogKind.Sent, message, null, null);
        if (expectReply)
        {
            // Armed before the write so a test clock advanced by the processor cannot miss it.
            StartTimer(dir, _config.MessageTimeout);
        }

        _side!.Sent.Add(message);
        _side.Outbox.Writer.TryWrite(message);
    }

    private Envoy.Config.Core.V3.Metadata BuildMetadataContext()
    {
        var context = new Envoy.Config.Core.V3.Metadata();
        lock (_metadata)
        {
            foreach (var ns in _config.MetadataOptions.ForwardingUntyped)
            {
                if (_metadata.TryGetValue(ns, out var value))
                {
                    context.FilterMetadata[ns] = value.Clone();
                }
            }
        }

        foreach (var ns in _config.MetadataOptions.ForwardingTyped)
        {
            if (_typedMetadata.TryGetValue(ns, out var value))
            {
                context.TypedFilterMetadata[ns] = value.Clone();
            }
        }

        return context;
    }

    private Struct EvaluateAttributes(DirectionState dir, List<string> expressions)
    {
        var result = new Struct();
        foreach (var expression in expressions)
        {
            // Response attributes do not exist yet on the request path; they are omitted.
            if (dir.IsRequest && expression.StartsWith("response.", StringComparison.Ordinal))
            {
                continue;
            }

            if (_request.AttributeValues.TryGetValue(expression, out var value))
            {
                result.Fields[expression] = value.Clone();
                continue;
            }

            var builtIn = expression switch
            {
                "request.path" => Value.ForString(_request.Headers.Get(":path") ?? ""),
                "request.method" => Value.ForString(_request.Headers.Get(":method") ?? ""),
                "request.scheme" => Value.ForString(_request.Headers.Get(":scheme") ?? ""),
                "request.host" => Value.ForString(_request.Headers.Get(":authority") ?? ""),
                "response.code" when _resp.Headers?.Get(":status") is { } s => Value.ForNumber(int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)),
                "response.code_details" => Value.ForString(ResponseCodeDetails ?? LocalReplyDetails.ViaUpstream),
                _ => null,
            };
            if (builtIn is not null)
            {
                result.Fields[expression] = builtIn;
            }
        }

        return result;
    }

    private void ApplyDynamicMetadata(ProcessingResponse response)
    {
        if (response.DynamicMetadata is null)
        {
            return;
        }

        lock (_metadata)
        {
            foreach (var (ns, value) in response.DynamicMetadata.Fields)
            {
                if (_config.MetadataOptions.ReceivingUntyped.Contains(ns) && value.KindCase == Value.KindOneofCase.StructValue)
                {
                    _metadata[ns] = value.StructValue.Clone();
                }
            }
        }
    }

    // ---- Timers ----

    private void StartTimer(DirectionState dir, TimeSpan timeout)
    {
        if (_config.ObservabilityMode || dir.BodyMode == BodySendMode.FullDuplexStreamed)
        {
            return;
        }

        StopTimer(dir);
        var gen = ++dir.TimerGen;
        var isRequest = dir.IsRequest;
        dir.OverrideUsed = false;
        dir.Timer = _time.CreateTimer(_ => Post(new MessageTimerEvent(isRequest, gen)), null, timeout, Timeout.InfiniteTimeSpan);
    }

    private static void StopTimer(DirectionState dir)
    {
        dir.TimerGen++;
        dir.Timer?.Dispose();
        dir.Timer = null;
    }

    private void OnMessageTimeout(DirectionState dir, int gen)
    {
        if (gen != dir.TimerGen || _processingComplete || dir.Timer is null)
        {
            return;
        }

        dir.Timer = null;
        Stats.Inc(ExtProcStats.MessageTimeouts);
        AddLog(ExchangeLogKind.Event, null, null, $"message timeout ({(dir.IsRequest ? "request" : "response")})");
        if (FailOpenAllowed())
        {
            Stats.Inc(ExtProcStats.FailureModeAllowed);
            CloseSideStream();
            ContinueWithoutServer();
            return;
        }

        SendLocalReply(_config.Runtime.TimeoutError ? 504 : 500, [], LocalReplyDetails.MessageTimeout, LocalReplySource.ExtProc);
    }

    private void OnOverrideMessageTimeout(Duration duration)
    {
        Stats.Inc(ExtProcStats.OverrideMessageTimeoutReceived);
        var dir = _req.Timer is not null ? _req : _resp.Timer is not null ? _resp : null;
        TimeSpan value;
        try
        {
            value = duration.ToTimeSpan();
        }
        catch (InvalidOperationException)
        {
            value = TimeSpan.MinValue;
        }

        if (_config.MaxMessageTimeout <= TimeSpan.Zero || dir is null || dir.OverrideUsed
            || value < TimeSpan.FromMilliseconds(1) || value > _config.MaxMessageTimeout)
        {
            Stats.Inc(ExtProcStats.OverrideMessageTimeoutIgnored);
            AddLog(ExchangeLogKind.Event, null, null, "override_message_timeout ignored");
            return;
        }

        StartTimer(dir, value);
        dir.OverrideUsed = true;
        AddLog(ExchangeLogKind.Event, null, null, "override_message_timeout accepted");
    }

    private void RestartIdleTimer()
    {
        if (_config.StreamIdleTimeout <= TimeSpan.Zero || _finished)
        {
            return;
        }

        _idleTimer?.Dispose();
        var gen = ++_idleGen;
        _idleTimer = _time.CreateTimer(_ => Post(new IdleTimerEvent(gen)), null, _config.StreamIdleTimeout, Timeout.InfiniteTimeSpan);
    }

    // ---- End of stream ----

    private void Finish()
    {
        if (_completion.Task.IsCompleted)
        {
            return;
        }

        _finished = true;
        _idleTimer?.Dispose();
        StopTimer(_req);
        StopTimer(_resp);
        if (_config.ObservabilityMode && _side is not null && !_side.Closing)
        {
            // Observability mode keeps the side stream up to drain queued messages.
            _deferredCloseTimer = _time.CreateTimer(_ => CloseSideStreamFromTimer(), null, _config.DeferredCloseTimeout, Timeout.InfiniteTimeSpan);
        }
        else
        {
            CloseSideStream();
        }

        AbandonUpstream("downstream stream ended");

        _downstream.Writer.TryComplete();
        _cts.Cancel();
        _completion.TrySetResult();
    }

    private void CloseSideStreamFromTimer()
    {
        // Timer thread: the loop has stopped, so close directly (CloseSideStream only touches the side stream).
        lock (_events)
        {
            CloseSideStream();
        }
    }

    private sealed class SideStream(int gen, AsyncDuplexStreamingCall<ProcessingRequest, ProcessingResponse> call, CancellationTokenSource cts)
    {
        public int Gen { get; } = gen;

        public AsyncDuplexStreamingCall<ProcessingRequest, ProcessingResponse> Call { get; } = call;

        public CancellationTokenSource Cts { get; } = cts;

        public Channel<ProcessingRequest> Outbox { get; } = Channel.CreateUnbounded<ProcessingRequest>();

        public List<ProcessingRequest> Sent { get; } = [];

        public TaskCompletionSource ServerDone { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool ReplyReceived { get; set; }

        public bool Closing { get; set; }

        public Task? WriterTask { get; set; }

        public Task? ReaderTask { get; set; }
    }

    private sealed record DownstreamFrameEvent(HttpFrame Frame);

    private sealed record DownstreamBodyEndedEvent;

    private sealed record ProcessorMessageEvent(int Gen, ProcessingResponse Response);

    private sealed record ProcessorClosedEvent(int Gen, Status Status);

    private sealed record MessageTimerEvent(bool Request, int Gen);

    private sealed record IdleTimerEvent(int Gen);

    private sealed record DeferredCloseEvent;

    private sealed record UpstreamHeadersEvent(UpstreamResponse Response);

    private sealed record UpstreamFrameEvent(HttpFrame Frame);

    private sealed record UpstreamBodyEndedEvent;

    private sealed record UpstreamFailedEvent(Exception Error);

    private sealed record ClientAbortEvent;
}
