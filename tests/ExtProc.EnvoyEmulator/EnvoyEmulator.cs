using System.Threading.Channels;
using Envoy.Service.ExtProc.V3;
using Grpc.Net.Client;

namespace ExtProc.EnvoyEmulator;

/// <summary>
/// One configured ext_proc filter (plus HCM, router and route table) that can run HTTP streams against a
/// real gRPC processor. <see cref="Start"/> runs one stream with streaming sources and sinks;
/// <see cref="ExchangeAsync"/> runs a buffered test request and collects everything.
/// </summary>
public sealed class EnvoyEmulator : IDisposable
{
    private readonly Dictionary<Uri, GrpcChannel> _channels = [];

    public EnvoyEmulator(ExtProcFilterConfig config, IUpstream upstream, RouteTable? routes = null, TimeProvider? timeProvider = null)
    {
        config.Validate();
        Config = config;
        Upstream = upstream;
        Routes = routes ?? RouteTable.SingleCluster();
        TimeProvider = timeProvider ?? TimeProvider.System;
    }

    public ExtProcFilterConfig Config { get; }

    public IUpstream Upstream { get; }

    public RouteTable Routes { get; }

    public TimeProvider TimeProvider { get; }

    /// <summary>Counters summed over every stream of this filter (Envoy's per-config stats).</summary>
    public ExtProcStats Stats { get; } = new();

    /// <summary>Called on the filter's loop each time a route-cache clear takes effect (with the headers).</summary>
    public Action<HttpHeaderList>? OnRouteCacheCleared { get; set; }

    /// <summary>Called (on the filter's loop) after each log entry of any stream: a hook for test synchronisation.</summary>
    public Action<ExchangeLogEntry>? OnLog { get; set; }

    /// <summary>Starts one HTTP stream. Read <see cref="EmulatedStream.Downstream"/> for the response.</summary>
    public EmulatedStream Start(DownstreamRequest request, CancellationToken cancellationToken = default)
    {
        var stream = new EmulatedStream(this, request, cancellationToken);
        stream.Run();
        return stream;
    }

    /// <summary>Runs a buffered request to completion and returns what both sides saw.</summary>
    public async Task<ExchangeResult> ExchangeAsync(TestRequest request, CancellationToken cancellationToken = default)
    {
        var endOnHeaders = request.End == BodyEnd.OnHeaders
            || (request.End == BodyEnd.OnLastChunk && request.BodyChunks.Count == 0 && request.Trailers is null);
        var stream = Start(new DownstreamRequest
        {
            Headers = request.Headers.Clone(),
            EndStreamOnHeaders = endOnHeaders,
            Body = endOnHeaders ? null : BodyFramesAsync(request, cancellationToken),
            AttributeValues = request.AttributeValues,
            DynamicMetadata = request.DynamicMetadata,
            TypedDynamicMetadata = request.TypedDynamicMetadata,
        }, cancellationToken);

        var status = 0;
        HttpHeaderList? headers = null;
        HttpHeaderList? trailers = null;
        string? resetReason = null;
        using var body = new MemoryStream();
        await foreach (var frame in stream.Downstream.ReadAllAsync(cancellationToken))
        {
            switch (frame)
            {
                case HeadersFrame h:
                    headers = h.Headers;
                    _ = int.TryParse(h.Headers.Get(":status"), out status);
                    break;
                case DataFrame d:
                    body.Write(d.Data.Span);
                    break;
                case TrailersFrame t:
                    trailers = t.Trailers;
                    break;
                case ResetFrame r:
                    resetReason = r.Reason;
                    break;
            }
        }

        await stream.Completion;
        return new ExchangeResult
        {
            UpstreamContacted = stream.UpstreamHeaders is not null,
            UpstreamCluster = stream.UpstreamCluster,
            UpstreamHeaders = stream.UpstreamHeaders,
            UpstreamBody = stream.UpstreamBodySnapshot(),
            UpstreamTrailers = stream.UpstreamTrailers,
            UpstreamReset = stream.UpstreamReset,
            Status = status,
            ResponseHeaders = headers,
            Body = body.ToArray(),
            Trailers = trailers,
            Reset = resetReason is not null,
            ResetReason = resetReason,
            Details = stream.ResponseCodeDetails,
            Stats = stream.Stats,
            DynamicMetadata = stream.DynamicMetadata,
            Log = stream.Log,
            RouteSelections = stream.RouteSelections,
        };
    }

    private static async IAsyncEnumerable<HttpFrame> BodyFramesAsync(TestRequest request,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var chunks = request.BodyChunks;
        for (var i = 0; i < chunks.Count; i++)
        {
            if (i > 0)
            {
                if (request.BeforeChunk is not null)
                {
                    await request.BeforeChunk(i);
                }

                if (request.ChunkDelay > TimeSpan.Zero)
                {
                    await Task.Delay(request.ChunkDelay, cancellationToken);
                }
            }

            var last = i == chunks.Count - 1;
            yield return new DataFrame(chunks[i], last && request.End == BodyEnd.OnLastChunk && request.Trailers is null);
        }

        if (request.End == BodyEnd.EmptyFinalData && request.Trailers is null)
        {
            yield return new DataFrame(ReadOnlyMemory<byte>.Empty, true);
        }

        if (request.Trailers is not null)
        {
            yield return new TrailersFrame(request.Trailers.Clone());
        }
    }

    internal ExternalProcessor.ExternalProcessorClient ClientFor(Uri address)
    {
        lock (_channels)
        {
            if (!_channels.TryGetValue(address, out var channel))
            {
                var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(2) };
                var target = address;
                if (address.Scheme == "unix")
                {
                    // Envoy's pipe address for a cluster (a Unix socket): same HTTP/2, no TCP.
                    var path = address.AbsolutePath;
                    handler.ConnectCallback = async (_, cancellation) =>
                    {
                        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                        try
                        {
                            await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(path), cancellation).ConfigureAwait(false);
                            return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                        }
                        catch
                        {
                            socket.Dispose();
                            throw;
                        }
                    };
                    target = new Uri("http://localhost");
                }

                channel = GrpcChannel.ForAddress(target, new GrpcChannelOptions
                {
                    MaxReceiveMessageSize = Config.MaxReceiveMessageLength > 0 ? Config.MaxReceiveMessageLength : null,
                    MaxSendMessageSize = null,
                    HttpHandler = handler,
                    DisposeHttpClient = true,
                });
                _channels[address] = channel;
            }

            return new ExternalProcessor.ExternalProcessorClient(channel);
        }
    }

    public void Dispose()
    {
        lock (_channels)
        {
            foreach (var channel in _channels.Values)
            {
                channel.Dispose();
            }

            _channels.Clear();
        }
    }
}
