using System.Globalization;
using System.Net.Http.Headers;
using ExtProc.EnvoyEmulator;

namespace ExtProc.LoadGen;

/// <summary>
/// Envoy's side of ext_proc (the emulator) in front of one processor: each call is one whole HTTP stream
/// (request headers, buffered body, response headers over one gRPC stream), answered by an in-process
/// canned upstream. The response is complete when the emulator has delivered the last downstream frame.
/// </summary>
internal sealed class ExtProcTarget : IDisposable
{
    private readonly global::ExtProc.EnvoyEmulator.EnvoyEmulator _emulator;

    public ExtProcTarget(Uri processor) =>
        _emulator = new global::ExtProc.EnvoyEmulator.EnvoyEmulator(Payloads.FilterConfig(processor), new CannedProvider());

    public async Task<bool> CallAsync(Mix mix, CancellationToken cancellationToken)
    {
        var stream = _emulator.Start(new DownstreamRequest
        {
            Headers = mix.Headers(),
            EndStreamOnHeaders = mix.Body is null,
            Body = mix.Body is null ? null : OneFrame(mix.Body),
        }, cancellationToken);
        var status = 0;
        await foreach (var frame in stream.Downstream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (frame is HeadersFrame headers)
            {
                _ = int.TryParse(headers.Headers.Get(":status"), NumberStyles.None, CultureInfo.InvariantCulture, out status);
            }
            else if (frame is ResetFrame)
            {
                status = -1;
            }
        }

        await stream.Completion.ConfigureAwait(false);
        return status == 200;
    }

    public void Dispose() => _emulator.Dispose();

#pragma warning disable CS1998 // a one-frame async stream
    private static async IAsyncEnumerable<HttpFrame> OneFrame(byte[] body)
    {
        yield return new DataFrame(body, EndStream: true);
    }
#pragma warning restore CS1998

    /// <summary>The provider behind the router: reads the request, answers as the mix asks (JSON, SSE or JSON-RPC).</summary>
    internal sealed class CannedProvider : IUpstream
    {
        private static readonly string CompletionLength = Payloads.Completion.Length.ToString(CultureInfo.InvariantCulture);
        private static readonly string McpLength = Payloads.McpResult.Length.ToString(CultureInfo.InvariantCulture);
        private static readonly byte[][] Chunks = [.. Enumerable.Range(0, Payloads.SseEvents).Select(Payloads.SseChunk)];

        public async Task<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
        {
            var streaming = false;
            if (!request.EndStreamOnHeaders)
            {
                await foreach (var frame in request.Body.WithCancellation(cancellationToken).ConfigureAwait(false))
                {
                    streaming |= frame is DataFrame data && data.Data.Span.IndexOf("\"stream\":true"u8) >= 0;
                }
            }

            if (request.Headers.Get(":path") == Payloads.McpPath)
            {
                return new UpstreamResponse
                {
                    Headers = new HttpHeaderList().Add(":status", "200").Add("content-type", "application/json").Add("content-length", McpLength),
                    Body = One(Payloads.McpResult),
                };
            }

            return streaming
                ? new UpstreamResponse
                {
                    Headers = new HttpHeaderList().Add(":status", "200").Add("content-type", "text/event-stream").Add("cache-control", "no-cache"),
                    Body = Stream(),
                }
                : new UpstreamResponse
                {
                    Headers = new HttpHeaderList().Add(":status", "200").Add("content-type", "application/json").Add("content-length", CompletionLength),
                    Body = One(Payloads.Completion),
                };
        }

#pragma warning disable CS1998
        private static async IAsyncEnumerable<HttpFrame> One(byte[] body)
        {
            yield return new DataFrame(body, EndStream: true);
        }

        private static async IAsyncEnumerable<HttpFrame> Stream()
        {
            for (var i = 0; i < Chunks.Length; i++)
            {
                yield return new DataFrame(Chunks[i], EndStream: i == Chunks.Length - 1);
            }
        }
#pragma warning restore CS1998
    }
}

/// <summary>Plain HTTP/1.1 client (the e2e open-loop runs): POST a ~200 B chat request, read the answer.</summary>
internal sealed class HttpTarget : IDisposable
{
    private readonly HttpClient _client;
    private readonly Uri _url;
    private readonly byte[] _body;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _headers;

    public HttpTarget(Uri url, byte[] body, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        _url = url;
        _body = body;
        _headers = headers;
        _client = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            MaxConnectionsPerServer = 512,
        })
        {
            Timeout = TimeSpan.FromSeconds(10),
        };
    }

    public async Task<bool> CallAsync(CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, _url) { Content = new ByteArrayContent(_body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.TryAddWithoutValidation("authorization", "Bearer " + Payloads.BenchKey);
        foreach (var (key, value) in _headers)
        {
            request.Headers.TryAddWithoutValidation(key, value);
        }

        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        return response.IsSuccessStatusCode;
    }

    public void Dispose() => _client.Dispose();
}
