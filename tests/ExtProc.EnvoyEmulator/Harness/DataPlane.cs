using System.Buffers;
using System.Threading.Channels;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;

namespace ExtProc.EnvoyEmulator.Harness;

/// <summary>How the data plane is put together: filter, routes, clusters, HCM knobs, per-attempt mode.</summary>
public sealed class DataPlaneOptions
{
    /// <summary>The downstream ext_proc filter (HCM filter chain); null means none.</summary>
    public ExtProcFilterConfig? Filter { get; set; }

    /// <summary>Route table; null builds <see cref="HarnessRoutes.ClusterHeader"/> with <see cref="DefaultCluster"/>.</summary>
    public RouteTable? Routes { get; set; }

    /// <summary>Used by the default route table when the cluster header is absent.</summary>
    public string? DefaultCluster { get; set; }

    /// <summary>Cluster name → base address of the real server behind it.</summary>
    public Dictionary<string, Uri> Clusters { get; } = new(StringComparer.Ordinal);

    /// <summary>Protocol the router speaks to clusters (HTTP/2 as h2c).</summary>
    public HttpProtocol UpstreamProtocol { get; set; } = HttpProtocol.Http1;

    /// <summary>Per-attempt mode (upstream ext_proc filter + retries); null for a plain router.</summary>
    public PerAttemptOptions? PerAttempt { get; set; }

    /// <summary>HCM <c>use_remote_address: true</c>: append the peer to <c>x-forwarded-for</c>, set <c>x-forwarded-proto</c>.</summary>
    public bool UseRemoteAddress { get; set; }

    /// <summary>HCM <c>generate_request_id</c> (default true): add <c>x-request-id</c> when absent.</summary>
    public bool GenerateRequestId { get; set; } = true;

    public TimeProvider? TimeProvider { get; set; }

    /// <summary>
    /// What Envoy knows of the downstream connection, as request-attribute values keyed by expression text
    /// (e.g. <c>connection.uri_san_peer_certificate</c> of an mTLS peer); sent only for expressions the
    /// filter's <c>request_attributes</c> lists. Null: none.
    /// </summary>
    public Func<HttpContext, Dictionary<string, Google.Protobuf.WellKnownTypes.Value>>? ConnectionAttributes { get; set; }

    /// <summary>Keep every exchange for <see cref="DataPlane.Exchanges"/> (tests). Load runs turn it off so
    /// memory stays flat.</summary>
    public bool KeepExchanges { get; set; } = true;
}

/// <summary>One HTTP request through the data plane, with everything the emulator recorded.</summary>
public sealed class DataPlaneExchange
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<UpstreamAttempt> _attempts = [];

    internal DataPlaneExchange(HttpHeaderList requestHeaders) => RequestHeaders = requestHeaders;

    /// <summary>The post-HCM header list handed to the filter chain.</summary>
    public HttpHeaderList RequestHeaders { get; }

    /// <summary>The downstream filter chain's stream: ext_proc log, stats, metadata, router outcome.</summary>
    public EmulatedStream Stream { get; internal set; } = null!;

    /// <summary>Upstream attempts (per-attempt mode only), in order.</summary>
    public IReadOnlyList<UpstreamAttempt> Attempts
    {
        get
        {
            lock (_attempts)
            {
                return [.. _attempts];
            }
        }
    }

    /// <summary>Completes when the stream, its side stream and every attempt are over.</summary>
    public Task Completion => _done.Task;

    internal void AddAttempt(UpstreamAttempt attempt)
    {
        lock (_attempts)
        {
            _attempts.Add(attempt);
        }
    }

    internal async Task FinishAsync()
    {
        try
        {
            await Stream.SideStreamClosed.WaitAsync(TimeSpan.FromSeconds(5));
            foreach (var attempt in Attempts)
            {
                await attempt.Completion.WaitAsync(TimeSpan.FromSeconds(5));
            }
        }
        catch (TimeoutException)
        {
            // Completion still fires: a test then sees whatever did not finish.
        }

        _done.TrySetResult();
    }
}

/// <summary>Route tables the harness uses.</summary>
public static class HarnessRoutes
{
    /// <summary>Our cluster-selection header (spec §3.6): set by ExtProc, read by the route after ext_proc.</summary>
    public const string ClusterHeaderName = "x-extproc-cluster";

    /// <summary>
    /// Two routes: with the header present, <c>cluster_header: x-extproc-cluster</c>; otherwise the fixed
    /// default cluster. A header naming an unknown cluster gets 503 <c>cluster_not_found</c>.
    /// </summary>
    public static RouteTable ClusterHeader(string defaultCluster, string header = ClusterHeaderName)
    {
        var table = new RouteTable();
        var byHeader = new Route { Name = "by-cluster-header", ClusterHeader = header };
        byHeader.PresentHeaders.Add(header);
        table.Routes.Add(byHeader);
        table.Routes.Add(new Route { Name = "default", Cluster = defaultCluster });
        return table;
    }
}

/// <summary>
/// The HTTP data plane: a real HTTP server (HTTP/1.1 and h2c ports on loopback) that plays Envoy's HCM for
/// each request, runs it through one emulated filter chain (ext_proc → router) and forwards it to real
/// upstream servers, streaming both ways.
/// </summary>
public sealed class DataPlane : IAsyncDisposable
{
    internal static readonly AsyncLocal<DataPlaneExchange?> Current = new();

    private readonly List<DataPlaneExchange> _exchanges = [];
    private readonly List<Task> _handlers = [];
    private readonly DataPlaneOptions _options;
    private readonly HttpClusterUpstream _codec;
    private readonly RetryingUpstream? _retrying;
    private readonly EnvoyEmulator _emulator;
    private KestrelHost? _host;

    private DataPlane(DataPlaneOptions options)
    {
        if (options.Filter?.IsUpstreamFilter == true)
        {
            throw new ArgumentException("The downstream filter must not be an upstream filter; use PerAttempt.Filter.", nameof(options));
        }

        _options = options;
        var routes = options.Routes ?? HarnessRoutes.ClusterHeader(
            options.DefaultCluster ?? (options.Clusters.Count == 1 ? options.Clusters.Keys.First() : throw new ArgumentException("Set DefaultCluster or Routes.", nameof(options))));
        if (routes.Clusters.Count == 0)
        {
            // Known clusters: real ones plus aggregates; anything else is cluster_not_found.
            routes.Clusters.UnionWith(options.Clusters.Keys);
            if (options.PerAttempt is not null)
            {
                routes.Clusters.UnionWith(options.PerAttempt.AggregateClusters.Keys);
            }
        }

        var time = options.TimeProvider ?? TimeProvider.System;
        _codec = new HttpClusterUpstream(options.Clusters, options.UpstreamProtocol);
        if (options.PerAttempt is { } perAttempt)
        {
            _retrying = new RetryingUpstream(perAttempt, _codec, time, static attempt => Current.Value?.AddAttempt(attempt));
        }

        _emulator = new EnvoyEmulator(options.Filter ?? PassThroughFilter(), (IUpstream?)_retrying ?? _codec, routes, time);
    }

    /// <summary>Base address of the HTTP/1.1 listener.</summary>
    public Uri BaseUri => _host!.Http1Uri;

    /// <summary>Base address of the h2c (HTTP/2 prior knowledge) listener.</summary>
    public Uri H2cUri => _host!.H2cUri;

    /// <summary>The emulator behind the listener (config, routes).</summary>
    public EnvoyEmulator Emulator => _emulator;

    public IReadOnlyList<DataPlaneExchange> Exchanges
    {
        get
        {
            lock (_exchanges)
            {
                return [.. _exchanges];
            }
        }
    }

    public static async Task<DataPlane> StartAsync(DataPlaneOptions options)
    {
        var plane = new DataPlane(options);
        try
        {
            plane._host = await KestrelHost.StartAsync(plane.HandleAsync);
        }
        catch
        {
            plane._emulator.Dispose();
            plane._retrying?.Dispose();
            plane._codec.Dispose();
            throw;
        }

        return plane;
    }

    /// <summary>An HttpClient for the HTTP/1.1 listener, or with <paramref name="http2"/> for h2c.</summary>
    public HttpClient CreateClient(bool http2 = false)
    {
        // No response draining: a client that drops a response mid-body aborts at once, as a browser or SDK
        // cancelling a stream does (the default drains up to 2 s to reuse the HTTP/1 connection).
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, ResponseDrainTimeout = TimeSpan.Zero })
        {
            BaseAddress = http2 ? H2cUri : BaseUri,
            Timeout = TimeSpan.FromSeconds(10),
        };
        if (http2)
        {
            client.DefaultRequestVersion = System.Net.HttpVersion.Version20;
            client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }

        return client;
    }

    /// <summary>Waits until <paramref name="count"/> exchanges exist and all of them are complete.</summary>
    public async Task<IReadOnlyList<DataPlaneExchange>> WaitForExchangesAsync(int count, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(5));
        while (Exchanges.Count < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Expected {count} exchanges, saw {Exchanges.Count}.");
            }

            await Task.Delay(5);
        }

        var exchanges = Exchanges;
        foreach (var exchange in exchanges)
        {
            await exchange.Completion.WaitAsync(deadline - DateTime.UtcNow is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero);
        }

        return exchanges;
    }

    /// <summary>A filter that sends nothing: the HCM and router without an ext_proc filter.</summary>
    internal static ExtProcFilterConfig PassThroughFilter()
    {
        var config = new ExtProcFilterConfig
        {
            ProcessingMode = new ProcessingMode
            {
                RequestHeaderMode = HeaderSendMode.Skip,
                ResponseHeaderMode = HeaderSendMode.Skip,
                RequestBodyMode = BodySendMode.None,
                ResponseBodyMode = BodySendMode.None,
                RequestTrailerMode = HeaderSendMode.Skip,
                ResponseTrailerMode = HeaderSendMode.Skip,
            },
        };

        // Never dialled: every phase is skipped.
        config.GrpcService.Add(new Uri("http://127.0.0.1:9"));
        return config;
    }

    private Task HandleAsync(HttpContext context)
    {
        var task = HandleCoreAsync(context);
        if (!_options.KeepExchanges)
        {
            return task;
        }

        lock (_handlers)
        {
            _handlers.Add(task);
        }

        return task;
    }

    private async Task HandleCoreAsync(HttpContext context)
    {
        var headers = BuildRequestHeaders(context);
        var exchange = new DataPlaneExchange(headers.Clone());
        if (_options.KeepExchanges)
        {
            lock (_exchanges)
            {
                _exchanges.Add(exchange);
            }
        }

        // CanHaveBody is false for HTTP/1 without body framing and for HTTP/2 HEADERS with END_STREAM.
        var endOnHeaders = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == false;
        var body = Channel.CreateUnbounded<HttpFrame>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var requestOver = new CancellationTokenSource();
        var bodyPump = endOnHeaders ? Task.CompletedTask : PumpRequestBodyAsync(context, body.Writer, requestOver.Token);

        EmulatedStream stream;
        Current.Value = exchange;
        try
        {
            stream = _emulator.Start(new DownstreamRequest
            {
                Headers = headers,
                EndStreamOnHeaders = endOnHeaders,
                Body = endOnHeaders ? null : body.Reader.ReadAllAsync(),
                AttributeValues = _options.ConnectionAttributes?.Invoke(context) ?? [],
            });
        }
        finally
        {
            Current.Value = null;
        }

        exchange.Stream = stream;
        try
        {
            using (context.RequestAborted.Register(static s => ((EmulatedStream)s!).Abort(), stream))
            {
                await WriteResponseAsync(context, stream);
            }
        }
        finally
        {
            await requestOver.CancelAsync();
            await bodyPump;
            await stream.Completion;
            _ = exchange.FinishAsync();
        }
    }

    /// <summary>The header list as Envoy's HCM hands it to the filter chain (spec §1.8).</summary>
    private HttpHeaderList BuildRequestHeaders(HttpContext context)
    {
        var request = context.Request;
        var headers = new HttpHeaderList()
            .Add(":scheme", request.Scheme)
            .Add(":method", request.Method)
            .Add(":authority", request.Host.Value ?? "")
            .Add(":path", context.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } target ? target : "/");

        // Kestrel's header collection is not in wire order (known headers first); Envoy keeps wire order.
        foreach (var (key, values) in request.Headers)
        {
            foreach (var value in values)
            {
                var text = value ?? "";
                if (key.StartsWith(':') || HopByHop.Drop(key, text))
                {
                    continue;
                }

                // HCM answers 100-continue itself (proxy_100_continue: false) and removes the header;
                // Kestrel sends the 100 when the body is first read.
                if (key.Equals("expect", StringComparison.OrdinalIgnoreCase) && text.Equals("100-continue", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                headers.Add(key, text);
            }
        }

        if (_options.UseRemoteAddress)
        {
            // Edge proxy: the peer is appended to XFF and the scheme is ours, whatever the client said.
            var peer = context.Connection.RemoteIpAddress?.ToString() ?? "127.0.0.1";
            var forwarded = headers.Get("x-forwarded-for");
            headers.Set("x-forwarded-for", string.IsNullOrEmpty(forwarded) ? peer : forwarded + "," + peer);
            headers.Set("x-forwarded-proto", request.Scheme);
        }
        else if (!headers.Contains("x-forwarded-proto"))
        {
            headers.Add("x-forwarded-proto", request.Scheme);
        }

        if (_options.GenerateRequestId && !headers.Contains("x-request-id"))
        {
            headers.Add("x-request-id", Guid.NewGuid().ToString());
        }

        return headers;
    }

    /// <summary>Hands the body over chunk by chunk as Kestrel reads it; END_STREAM rides the last read.</summary>
    private static async Task PumpRequestBodyAsync(HttpContext context, ChannelWriter<HttpFrame> writer, CancellationToken cancellationToken)
    {
        var reader = context.Request.BodyReader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(cancellationToken);
                var buffer = result.Buffer;
                if (result.IsCompleted)
                {
                    var trailers = ReadRequestTrailers(context);
                    if (trailers is null)
                    {
                        writer.TryWrite(new DataFrame(buffer.ToArray(), true));
                    }
                    else
                    {
                        if (!buffer.IsEmpty)
                        {
                            writer.TryWrite(new DataFrame(buffer.ToArray(), false));
                        }

                        writer.TryWrite(new TrailersFrame(trailers));
                    }

                    reader.AdvanceTo(buffer.End);
                    return;
                }

                if (!buffer.IsEmpty)
                {
                    writer.TryWrite(new DataFrame(buffer.ToArray(), false));
                }

                reader.AdvanceTo(buffer.End);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The response is finished; the rest of the body is Kestrel's to drain.
        }
        catch (Exception ex)
        {
            // The client went away mid-body.
            writer.TryWrite(new ResetFrame("downstream body: " + ex.Message));
        }
        finally
        {
            writer.TryComplete();
        }
    }

    private static HttpHeaderList? ReadRequestTrailers(HttpContext context)
    {
        if (!context.Request.SupportsTrailers() || !context.Request.CheckTrailersAvailable()
            || context.Features.Get<IHttpRequestTrailersFeature>()?.Trailers is not { Count: > 0 } trailers)
        {
            return null;
        }

        var list = new HttpHeaderList();
        foreach (var (key, values) in trailers)
        {
            foreach (var value in values)
            {
                list.Add(key, value ?? "");
            }
        }

        return list;
    }

    /// <summary>Writes the filter chain's downstream frames to the client as they come.</summary>
    private static async Task WriteResponseAsync(HttpContext context, EmulatedStream stream)
    {
        var response = context.Response;
        try
        {
            await foreach (var frame in stream.Downstream.ReadAllAsync())
            {
                switch (frame)
                {
                    case HeadersFrame h:
                        ApplyResponseHeaders(response, h.Headers);
                        if (h.EndStream)
                        {
                            await response.CompleteAsync();
                            return;
                        }

                        // Headers go out now, not with the first body byte (SSE clients wait on them).
                        await response.StartAsync();
                        await response.BodyWriter.FlushAsync();
                        break;
                    case DataFrame d:
                        if (!d.Data.IsEmpty)
                        {
                            await response.BodyWriter.WriteAsync(d.Data);
                        }

                        if (d.EndStream)
                        {
                            await response.CompleteAsync();
                            return;
                        }

                        break;
                    case TrailersFrame t:
                        if (response.SupportsTrailers())
                        {
                            foreach (var (key, value) in t.Trailers)
                            {
                                response.AppendTrailer(key, System.Text.Encoding.Latin1.GetString(value));
                            }
                        }

                        await response.CompleteAsync();
                        return;
                    case ResetFrame:
                        Reset(context);
                        return;
                }
            }

            // The stream ended without a graceful end of the response.
            Reset(context);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or OperationCanceledException)
        {
            // Client gone, or a response the server cannot frame (e.g. content-length mismatch): reset.
            stream.Abort();
            Reset(context);
        }
    }

    private static void ApplyResponseHeaders(HttpResponse response, HttpHeaderList headers)
    {
        response.StatusCode = int.TryParse(headers.Get(":status"), out var status) ? status : 502;
        foreach (var (key, raw) in headers)
        {
            var value = System.Text.Encoding.Latin1.GetString(raw);
            if (key.StartsWith(':') || HopByHop.Drop(key, value))
            {
                continue;
            }

            if (key == "content-length")
            {
                response.ContentLength = long.TryParse(value, out var length) ? length : null;
                continue;
            }

            response.Headers.Append(key, value);
        }

        // HCM server_header_transformation OVERWRITE (default).
        response.Headers["server"] = "envoy";
    }

    private static void Reset(HttpContext context)
    {
        if (context.Features.Get<IHttpResetFeature>() is { } reset)
        {
            // HTTP/2: RST_STREAM INTERNAL_ERROR, as Envoy resets a downstream stream.
            reset.Reset(2);
        }
        else
        {
            // HTTP/1: the only way to signal a broken response is to close the connection.
            context.Abort();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        Task[] handlers;
        lock (_handlers)
        {
            handlers = [.. _handlers];
        }

        try
        {
            await Task.WhenAll(handlers).WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception)
        {
            // Handlers end with their requests; a stuck one must not hang test clean-up.
        }

        foreach (var exchange in Exchanges)
        {
            await exchange.Completion.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(static _ => { }, TaskScheduler.Default);
        }

        _emulator.Dispose();
        _retrying?.Dispose();
        _codec.Dispose();
    }
}
