using System.Threading.Channels;

namespace ExtProc.EnvoyEmulator;

internal enum LocalReplySource
{
    /// <summary>The ext_proc filter itself: processing completes; never sent to the server.</summary>
    ExtProc,

    /// <summary>The router (404, 503): travels the response path, so the server sees it.</summary>
    Router,

    /// <summary>HCM / filter manager (413, idle timeout): straight to the client.</summary>
    ConnectionManager,
}

// What lies beyond the filter: the router, the upstream, and the client.
public sealed partial class EmulatedStream
{
    private Route? _route;

    // Headers the route was matched with: Envoy resolves cluster_header at match time, and ext_proc has
    // already matched the route (for per-route config) before it runs, so only a route-cache clear re-reads it.
    private HttpHeaderList? _routeMatchHeaders;
    private bool _routeCacheCleared;
    private Channel<HttpFrame>? _upstreamBodyChannel;
    private bool _upstreamRequestEnded;
    private bool _upstreamAbandoned;
    private bool _downstreamHeadersSent;
    private bool _downstreamEnded;

    /// <summary>Passes the (possibly mutated) headers to the next stage.</summary>
    private void ContinueHeaders(DirectionState dir)
    {
        if (dir.HeadersContinued || dir.Headers is null)
        {
            return;
        }

        dir.HeadersContinued = true;
        if (dir.Engaged && dir.RemovesContentLength && !Observability)
        {
            dir.Headers.Remove("content-length");
        }

        var endStream = dir.HeadersEndStream;
        if (endStream)
        {
            dir.OutputEnded = true;
        }

        if (dir.IsRequest)
        {
            StartUpstream(dir.Headers, endStream);
        }
        else
        {
            SendDownstreamHeaders(dir.Headers, endStream);
        }
    }

    private void EmitData(DirectionState dir, byte[] data, bool endStream)
    {
        if (dir.OutputEnded)
        {
            return;
        }

        ContinueHeaders(dir);
        if (dir.OutputEnded)
        {
            return;
        }

        if (endStream)
        {
            dir.OutputEnded = true;
        }

        if (dir.IsRequest)
        {
            WriteUpstream(new DataFrame(data, endStream), endStream);
        }
        else
        {
            SendDownstreamData(data, endStream);
        }
    }

    private void EmitTrailers(DirectionState dir)
    {
        dir.TrailersHeld = false;
        if (dir.OutputEnded || dir.Trailers is null)
        {
            return;
        }

        ContinueHeaders(dir);
        dir.OutputEnded = true;
        if (dir.IsRequest)
        {
            UpstreamTrailers = dir.Trailers;
            WriteUpstream(new TrailersFrame(dir.Trailers), end: true);
        }
        else
        {
            SendDownstreamTrailers(dir.Trailers);
        }
    }

    // ---- Router and upstream ----

    private void StartUpstream(HttpHeaderList headers, bool endStream)
    {
        if (_upstreamAbandoned || _streamedLocalReply || _downstreamEnded)
        {
            return;
        }

        if (_routeCacheCleared && !_config.IsUpstreamFilter)
        {
            _routeCacheCleared = false;
            _route = _emulator.Routes.Match(headers);
            _routeMatchHeaders = headers.Clone();
            RouteSelections++;
        }

        if (_route is null)
        {
            SendLocalReply(404, [], LocalReplyDetails.RouteNotFound, LocalReplySource.Router);
            return;
        }

        var cluster = _route.SelectCluster(_routeMatchHeaders ?? _request.Headers);
        if (string.IsNullOrEmpty(cluster) || (_emulator.Routes.Clusters.Count > 0 && !_emulator.Routes.Clusters.Contains(cluster)))
        {
            SendLocalReply(503, [], LocalReplyDetails.ClusterNotFound, LocalReplySource.Router);
            return;
        }

        var upstreamHeaders = headers.Clone();
        if (_config.UpstreamProtocol == HttpProtocol.Http1 && !endStream && !upstreamHeaders.Contains("content-length"))
        {
            upstreamHeaders.Set("transfer-encoding", "chunked");
        }

        UpstreamCluster = cluster;
        UpstreamHeaders = upstreamHeaders;
        var channel = Channel.CreateUnbounded<HttpFrame>(new UnboundedChannelOptions { SingleWriter = true });
        _upstreamBodyChannel = channel;
        if (endStream)
        {
            _upstreamRequestEnded = true;
            channel.Writer.TryComplete();
        }

        AddLog(ExchangeLogKind.Event, null, null, $"router: upstream {cluster}");
        var request = new UpstreamRequest
        {
            Cluster = cluster,
            Headers = upstreamHeaders.Clone(),
            EndStreamOnHeaders = endStream,
            Body = channel.Reader.ReadAllAsync(_cts.Token),
        };
        _ = CallUpstreamAsync(request);
    }

    private async Task CallUpstreamAsync(UpstreamRequest request)
    {
        try
        {
            var response = await _emulator.Upstream.SendAsync(request, _cts.Token);
            Post(new UpstreamHeadersEvent(response));
        }
        catch (OperationCanceledException) when (_cts.IsCancellationRequested)
        {
            // The stream is over.
        }
        catch (Exception ex)
        {
            Post(new UpstreamFailedEvent(ex));
        }
    }

    private void WriteUpstream(HttpFrame frame, bool end)
    {
        if (_upstreamBodyChannel is null || _upstreamRequestEnded)
        {
            return;
        }

        if (frame is DataFrame data)
        {
            lock (_upstreamBody)
            {
                _upstreamBody.Write(data.Data.Span);
            }
        }

        _upstreamBodyChannel.Writer.TryWrite(frame);
        if (end)
        {
            _upstreamRequestEnded = true;
            _upstreamBodyChannel.Writer.TryComplete();
        }
    }

    private void AbandonUpstream(string reason)
    {
        _upstreamAbandoned = true;
        if (_upstreamBodyChannel is not null && !_upstreamRequestEnded)
        {
            _upstreamRequestEnded = true;
            UpstreamReset = true;
            _upstreamBodyChannel.Writer.TryWrite(new ResetFrame(reason));
            _upstreamBodyChannel.Writer.TryComplete();
        }
    }

    private void OnUpstreamHeaders(UpstreamResponse response)
    {
        if (_upstreamAbandoned || _downstreamEnded)
        {
            return;
        }

        ResponseCodeDetails = LocalReplyDetails.ViaUpstream;
        OnHeaders(_resp, response.Headers.Clone(), response.EndStreamOnHeaders);
        if (!response.EndStreamOnHeaders)
        {
            var body = response.Body ?? EmptyBody();
            _ = PumpAsync(body, static f => new UpstreamFrameEvent(f), new UpstreamBodyEndedEvent(), _cts.Token);
        }
    }

    private static async IAsyncEnumerable<HttpFrame> EmptyBody()
    {
        await Task.CompletedTask;
        yield break;
    }

    private void OnUpstreamFailed(Exception error)
    {
        if (_upstreamAbandoned || _downstreamEnded)
        {
            return;
        }

        AddLog(ExchangeLogKind.Event, null, null, "upstream failed: " + error.Message);
        SendLocalReply(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"u8.ToArray(),
            LocalReplyDetails.UpstreamConnectFailure, LocalReplySource.Router);
    }

    private void OnUpstreamReset(string reason)
    {
        AddLog(ExchangeLogKind.Event, null, null, "upstream reset: " + reason);
        if (_downstreamHeadersSent)
        {
            ResetDownstream("upstream reset: " + reason);
        }
        else
        {
            SendLocalReply(503, [], "upstream_reset_after_response_started", LocalReplySource.Router);
        }
    }

    // ---- Local replies and the client ----

    private void SendLocalReply(int code, byte[] body, string details, LocalReplySource source, Action<HttpHeaderList>? modify = null)
    {
        AddLog(ExchangeLogKind.Event, null, null, $"local reply {code} {details}");
        if (source == LocalReplySource.ExtProc)
        {
            _processingComplete = true;
            StopTimer(_req);
            StopTimer(_resp);
            CloseSideStream();
        }

        AbandonUpstream("local reply");
        _req.OutputEnded = true;
        ResponseCodeDetails = details;
        if (_downstreamHeadersSent)
        {
            ResetDownstream(details);
            return;
        }

        var headers = new HttpHeaderList().Add(":status", code.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (body.Length > 0)
        {
            headers.Add("content-length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
            headers.Add("content-type", "text/plain");
        }

        modify?.Invoke(headers);
        if (source == LocalReplySource.Router && !_resp.Started)
        {
            // Router replies pass the encoder filters, ext_proc included.
            OnHeaders(_resp, headers, body.Length == 0);
            if (body.Length > 0)
            {
                OnData(_resp, body, true);
            }

            return;
        }

        _resp.Started = true;
        _resp.Headers = headers;
        _resp.HeadersContinued = true;
        SendDownstreamHeaders(headers, body.Length == 0);
        if (body.Length > 0)
        {
            SendDownstreamData(body, true);
        }
    }

    private void SendDownstreamHeaders(HttpHeaderList headers, bool endStream)
    {
        if (_downstreamEnded || _downstreamHeadersSent)
        {
            return;
        }

        _downstreamHeadersSent = true;
        var copy = headers.Clone();
        if (_config.DownstreamProtocol == HttpProtocol.Http1 && !endStream && !copy.Contains("content-length"))
        {
            copy.Set("transfer-encoding", "chunked");
        }

        _downstream.Writer.TryWrite(new HeadersFrame(copy, endStream));
        RestartIdleTimer();
        if (endStream)
        {
            DownstreamEnded();
        }
    }

    private void SendDownstreamData(byte[] data, bool endStream)
    {
        if (_downstreamEnded)
        {
            return;
        }

        _downstream.Writer.TryWrite(new DataFrame(data, endStream));
        RestartIdleTimer();
        if (endStream)
        {
            DownstreamEnded();
        }
    }

    private void SendDownstreamTrailers(HttpHeaderList trailers)
    {
        if (_downstreamEnded)
        {
            return;
        }

        _downstream.Writer.TryWrite(new TrailersFrame(trailers.Clone()));
        DownstreamEnded();
    }

    private void DownstreamEnded()
    {
        _downstreamEnded = true;
        if (!_streamedLocalReply)
        {
            _finished = true;
        }
    }

    private void ResetDownstream(string reason)
    {
        if (!_downstreamEnded)
        {
            _downstreamEnded = true;
            _downstream.Writer.TryWrite(new ResetFrame(reason));
        }

        if (!_processingComplete)
        {
            _processingComplete = true;
            CloseSideStream();
        }

        AbandonUpstream(reason);
        _finished = true;
    }
}
