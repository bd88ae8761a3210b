using System.Net;
using System.Runtime.CompilerServices;

namespace ExtProc.EnvoyEmulator.Harness;

/// <summary>Headers that belong to one connection and never cross a proxy (RFC 9110 §7.6.1).</summary>
internal static class HopByHop
{
    private static readonly HashSet<string> Names = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host",
    };

    /// <summary>True for names a proxy drops; <c>te</c> survives only as "trailers".</summary>
    public static bool Drop(string name, string value) =>
        Names.Contains(name) || (name.Equals("te", StringComparison.OrdinalIgnoreCase) && !value.Equals("trailers", StringComparison.OrdinalIgnoreCase));
}

/// <summary>
/// The router's codec side: forwards each upstream request to a real HTTP server chosen by cluster name,
/// streaming the request body up and the response body down without buffering. A connect failure becomes
/// an exception (the emulator answers 503 <c>upstream_reset_before_response_started{connection_failure}</c>);
/// a failure mid-response becomes a <see cref="ResetFrame"/>.
/// </summary>
public sealed class HttpClusterUpstream : IUpstream, IDisposable
{
    private readonly IReadOnlyDictionary<string, Uri> _clusters;
    private readonly HttpMessageInvoker _client;
    private readonly Version _version;

    /// <param name="clusters">Cluster name → base address (scheme, host and port are used).</param>
    /// <param name="protocol">Upstream protocol; HTTP/2 is spoken as h2c with prior knowledge.</param>
    public HttpClusterUpstream(IReadOnlyDictionary<string, Uri> clusters, HttpProtocol protocol = HttpProtocol.Http1)
    {
        _clusters = clusters;
        _version = protocol == HttpProtocol.Http2 ? HttpVersion.Version20 : HttpVersion.Version11;
        _client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(2),
            ActivityHeadersPropagator = null,
        });
    }

    public async Task<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        if (!_clusters.TryGetValue(request.Cluster, out var baseUri))
        {
            // A cluster without hosts: Envoy would answer "no healthy upstream".
            throw new HttpRequestException($"cluster '{request.Cluster}' has no endpoint");
        }

        var message = BuildRequest(request, baseUri);
        HttpResponseMessage response;
        try
        {
            response = await _client.SendAsync(message, cancellationToken);
        }
        catch
        {
            message.Dispose();
            throw;
        }

        var headers = new HttpHeaderList().Add(":status", ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var (key, values) in response.Headers)
        {
            AddValues(headers, key, values);
        }

        foreach (var (key, values) in response.Content.Headers)
        {
            AddValues(headers, key, values);
        }

        // HEAD, 204 and 304 carry no body; everything else is streamed as it arrives.
        var noBody = request.Headers.Get(":method") == "HEAD" || response.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.NotModified
            || response.Content.Headers.ContentLength == 0;
        if (noBody)
        {
            response.Dispose();
            message.Dispose();
            return new UpstreamResponse { Headers = headers, EndStreamOnHeaders = true };
        }

        return new UpstreamResponse { Headers = headers, Body = ReadBodyAsync(message, response, cancellationToken) };
    }

    private HttpRequestMessage BuildRequest(UpstreamRequest request, Uri baseUri)
    {
        var path = request.Headers.Get(":path") ?? "/";
        var message = new HttpRequestMessage(new HttpMethod(request.Headers.Get(":method") ?? "GET"), new Uri(baseUri, path))
        {
            Version = _version,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        // Envoy keeps the downstream :authority (no host rewrite configured).
        if (request.Headers.Get(":authority") is { Length: > 0 } authority)
        {
            message.Headers.Host = authority;
        }

        HttpContent? content = null;
        if (!request.EndStreamOnHeaders)
        {
            content = new FrameContent(request.Body);
            message.Content = content;
        }

        foreach (var (key, raw) in request.Headers)
        {
            var value = System.Text.Encoding.Latin1.GetString(raw);
            if (key.StartsWith(':') || HopByHop.Drop(key, value))
            {
                continue;
            }

            if (!message.Headers.TryAddWithoutValidation(key, value))
            {
                if (content is null)
                {
                    // A content header on a request without body (e.g. content-length: 0 on a GET).
                    content = new ByteArrayContent([]);
                    message.Content = content;
                }

                content.Headers.TryAddWithoutValidation(key, value);
            }
        }

        return message;
    }

    private static void AddValues(HttpHeaderList headers, string key, IEnumerable<string> values)
    {
        foreach (var value in values)
        {
            if (!HopByHop.Drop(key, value))
            {
                headers.Add(key.ToLowerInvariant(), System.Text.Encoding.Latin1.GetBytes(value));
            }
        }
    }

    private static async IAsyncEnumerable<HttpFrame> ReadBodyAsync(HttpRequestMessage message, HttpResponseMessage response,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var _ = message;
        using var __ = response;
        // HTTP/1 with content-length ends on the last byte; HTTP/2 may still send trailers after it.
        var expected = response.Version.Major < 2 ? response.Content.Headers.ContentLength : null;
        long total = 0;
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[16 * 1024];
        while (true)
        {
            int read;
            HttpFrame? failure = null;
            try
            {
                read = await stream.ReadAsync(buffer, cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException)
            {
                read = 0;
                failure = new ResetFrame("upstream reset: " + ex.Message);
            }

            if (failure is not null)
            {
                yield return failure;
                yield break;
            }

            if (read == 0)
            {
                break;
            }

            total += read;

            // With a content-length the codec knows the last byte is the end; otherwise an empty frame ends it.
            var last = expected == total;
            yield return new DataFrame(buffer.AsSpan(0, read).ToArray(), last);
            if (last)
            {
                yield break;
            }
        }

        if (expected is not null && total < expected)
        {
            yield return new ResetFrame("upstream closed before content-length was reached");
            yield break;
        }

        if (response.TrailingHeaders.Any())
        {
            var trailers = new HttpHeaderList();
            foreach (var (key, values) in response.TrailingHeaders)
            {
                AddValues(trailers, key, values);
            }

            yield return new TrailersFrame(trailers);
            yield break;
        }

        yield return new DataFrame(ReadOnlyMemory<byte>.Empty, true);
    }

    public void Dispose() => _client.Dispose();

    /// <summary>Request content that writes each body frame the moment the router hands it over.</summary>
    private sealed class FrameContent(IAsyncEnumerable<HttpFrame> frames) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            await foreach (var frame in frames.WithCancellation(cancellationToken))
            {
                switch (frame)
                {
                    case DataFrame data when data.Data.Length > 0:
                        await stream.WriteAsync(data.Data, cancellationToken);
                        await stream.FlushAsync(cancellationToken);
                        break;
                    case ResetFrame reset:
                        // Aborting the content aborts the upstream request (RST_STREAM / connection close).
                        throw new IOException("downstream reset: " + reset.Reason);
                    case TrailersFrame:
                        // HttpClient cannot send request trailers; the body still ends here.
                        return;
                }
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
