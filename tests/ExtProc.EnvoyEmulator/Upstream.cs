using System.Runtime.CompilerServices;
using System.Text;

namespace ExtProc.EnvoyEmulator;

/// <summary>What the router sends upstream: cluster, headers, and a body stream that ends with an
/// end-of-stream data frame, trailers, or a reset.</summary>
public sealed class UpstreamRequest
{
    public required string Cluster { get; init; }

    public required HttpHeaderList Headers { get; init; }

    public required bool EndStreamOnHeaders { get; init; }

    /// <summary>Body frames (<see cref="DataFrame"/>, <see cref="TrailersFrame"/>, <see cref="ResetFrame"/>).
    /// Empty when <see cref="EndStreamOnHeaders"/>.</summary>
    public required IAsyncEnumerable<HttpFrame> Body { get; init; }

    /// <summary>Reads the whole request body; returns bytes, trailers, and whether it was reset.</summary>
    public async Task<(byte[] Body, HttpHeaderList? Trailers, bool Reset)> ReadBodyAsync(CancellationToken cancellationToken = default)
    {
        using var buffer = new MemoryStream();
        HttpHeaderList? trailers = null;
        var reset = false;
        await foreach (var frame in Body.WithCancellation(cancellationToken))
        {
            switch (frame)
            {
                case DataFrame data:
                    buffer.Write(data.Data.Span);
                    break;
                case TrailersFrame t:
                    trailers = t.Trailers;
                    break;
                case ResetFrame:
                    reset = true;
                    break;
            }
        }

        return (buffer.ToArray(), trailers, reset);
    }
}

/// <summary>The upstream's answer: headers (with <c>:status</c>) and a streaming body.</summary>
public sealed class UpstreamResponse
{
    public required HttpHeaderList Headers { get; init; }

    public bool EndStreamOnHeaders { get; init; }

    /// <summary>Body frames (<see cref="DataFrame"/>, optional final <see cref="TrailersFrame"/>).</summary>
    public IAsyncEnumerable<HttpFrame>? Body { get; init; }
}

/// <summary>The upstream side of the router (one cluster set). Called once per stream (per attempt).</summary>
public interface IUpstream
{
    /// <summary>Returns when the upstream has response headers. The request body may still be streaming.</summary>
    Task<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken);
}

/// <summary>What a <see cref="CannedUpstream"/> saw.</summary>
public sealed class ReceivedUpstreamRequest
{
    public required string Cluster { get; init; }

    public required HttpHeaderList Headers { get; init; }

    public required byte[] Body { get; init; }

    public HttpHeaderList? Trailers { get; init; }

    public bool Reset { get; init; }

    public string BodyText => Encoding.UTF8.GetString(Body);
}

/// <summary>
/// An upstream that reads the whole request, then answers with a fixed status, headers, body chunks and
/// optional trailers. Records every request it received.
/// </summary>
public sealed class CannedUpstream : IUpstream
{
    private readonly List<ReceivedUpstreamRequest> _received = [];

    public int Status { get; set; } = 200;

    public List<KeyValuePair<string, string>> Headers { get; } = [];

    /// <summary>Response body chunks; empty means a headers-only response (END_STREAM on headers) unless
    /// <see cref="Trailers"/> is set.</summary>
    public List<byte[]> BodyChunks { get; } = [];

    public HttpHeaderList? Trailers { get; set; }

    /// <summary>When true the upstream answers as soon as it has the request headers (early response).</summary>
    public bool RespondBeforeRequestBody { get; set; }

    /// <summary>Awaited before each response chunk (index given), e.g. a processor-side signal.</summary>
    public Func<int, Task>? BeforeChunk { get; set; }

    /// <summary>Optional delay between response chunks (for streaming tests).</summary>
    public TimeSpan ChunkDelay { get; set; }

    public IReadOnlyList<ReceivedUpstreamRequest> Received
    {
        get
        {
            lock (_received)
            {
                return [.. _received];
            }
        }
    }

    public CannedUpstream WithBody(params string[] chunks)
    {
        foreach (var chunk in chunks)
        {
            BodyChunks.Add(Encoding.UTF8.GetBytes(chunk));
        }

        return this;
    }

    public CannedUpstream WithHeader(string key, string value)
    {
        Headers.Add(new(key, value));
        return this;
    }

    public async Task<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        if (RespondBeforeRequestBody)
        {
            _ = RecordAsync(request, cancellationToken);
        }
        else
        {
            await RecordAsync(request, cancellationToken);
        }

        var headers = new HttpHeaderList().Add(":status", Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var header in Headers)
        {
            headers.Add(header.Key, header.Value);
        }

        var headersOnly = BodyChunks.Count == 0 && Trailers is null;
        return new UpstreamResponse
        {
            Headers = headers,
            EndStreamOnHeaders = headersOnly,
            Body = headersOnly ? null : StreamBodyAsync(cancellationToken),
        };
    }

    private async Task RecordAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var (body, trailers, reset) = await request.ReadBodyAsync(cancellationToken);
        lock (_received)
        {
            _received.Add(new ReceivedUpstreamRequest
            {
                Cluster = request.Cluster,
                Headers = request.Headers,
                Body = body,
                Trailers = trailers,
                Reset = reset,
            });
        }
    }

    private async IAsyncEnumerable<HttpFrame> StreamBodyAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (var i = 0; i < BodyChunks.Count; i++)
        {
            if (BeforeChunk is not null)
            {
                await BeforeChunk(i);
            }

            if (ChunkDelay > TimeSpan.Zero && i > 0)
            {
                await Task.Delay(ChunkDelay, cancellationToken);
            }

            yield return new DataFrame(BodyChunks[i], Trailers is null && i == BodyChunks.Count - 1);
        }

        if (Trailers is not null)
        {
            yield return new TrailersFrame(Trailers);
        }
    }
}
