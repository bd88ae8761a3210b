using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ExtProc.EnvoyEmulator.Harness;

/// <summary>What a <see cref="LoopbackUpstream"/> received: one HTTP request as it arrived on the wire.</summary>
public sealed class LoopbackRequest
{
    public required string Method { get; init; }

    /// <summary>Path and query exactly as sent (the request target).</summary>
    public required string Path { get; init; }

    /// <summary>"HTTP/1.1" or "HTTP/2".</summary>
    public required string Protocol { get; init; }

    /// <summary>Headers with lower-case names; <c>host</c> included as received.</summary>
    public required HttpHeaderList Headers { get; init; }

    public required byte[] Body { get; init; }

    public HttpHeaderList? Trailers { get; init; }

    public string BodyText => Encoding.UTF8.GetString(Body);
}

/// <summary>One server-sent event of a scripted streaming response.</summary>
/// <param name="Text">Raw event text written as is (e.g. <c>"data: {...}\n\n"</c>).</param>
/// <param name="Delay">Pause before writing this event.</param>
public sealed record SseEvent(string Text, TimeSpan Delay = default)
{
    public static SseEvent Data(string data, TimeSpan delay = default) => new($"data: {data}\n\n", delay);
}

/// <summary>A scripted answer: status, headers, then a body, a list of streamed events, or a reset.</summary>
public sealed class LoopbackResponse
{
    public int Status { get; init; } = 200;

    public List<KeyValuePair<string, string>> Headers { get; init; } = [];

    public byte[] Body { get; init; } = [];

    /// <summary>When set, the body is written event by event, each flushed on its own.</summary>
    public List<SseEvent>? Events { get; init; }

    /// <summary>
    /// Awaited before event <c>i</c> (0-based) is written, and once more with <c>i == Events.Count</c> before
    /// the response ends: lets a test hold the stream open.
    /// </summary>
    public Func<int, Task>? BeforeEvent { get; init; }

    public List<KeyValuePair<string, string>>? Trailers { get; init; }

    /// <summary>Pause after reading the request, before the response headers (a slow first byte).</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Abort the connection/stream instead of answering (after reading the request).</summary>
    public bool Abort { get; init; }

    /// <summary>Abort the connection/stream after the body or events were written (a reset mid-response).</summary>
    public bool AbortAfterBody { get; init; }

    public static LoopbackResponse Json(string json, int status = 200) => new()
    {
        Status = status,
        Headers = [new("content-type", "application/json")],
        Body = Encoding.UTF8.GetBytes(json),
    };

    public static LoopbackResponse Text(string text, int status = 200) => new()
    {
        Status = status,
        Headers = [new("content-type", "text/plain")],
        Body = Encoding.UTF8.GetBytes(text),
    };

    public static LoopbackResponse Sse(params SseEvent[] events) => new()
    {
        Headers = [new("content-type", "text/event-stream"), new("cache-control", "no-cache")],
        Events = [.. events],
    };
}

/// <summary>
/// A tiny real HTTP server on loopback (HTTP/1.1 and h2c ports) that plays an upstream: it records every
/// request (method, path, headers, whole body, trailers) and answers with a scripted response.
/// </summary>
public sealed class LoopbackUpstream : IAsyncDisposable
{
    private readonly List<LoopbackRequest> _received = [];
    private readonly List<long> _eventTimestamps = [];
    private readonly Func<LoopbackRequest, LoopbackResponse> _respond;
    private KestrelHost? _host;
    private int _aborted;

    private LoopbackUpstream(Func<LoopbackRequest, LoopbackResponse> respond) => _respond = respond;

    /// <summary>Base address of the HTTP/1.1 port.</summary>
    public Uri BaseUri => _host!.Http1Uri;

    /// <summary>Base address of the h2c (HTTP/2 prior knowledge) port.</summary>
    public Uri H2cUri => _host!.H2cUri;

    public IReadOnlyList<LoopbackRequest> Received
    {
        get
        {
            lock (_received)
            {
                return [.. _received];
            }
        }
    }

    /// <summary><see cref="Stopwatch"/> timestamps taken right after each streamed event was flushed.</summary>
    public IReadOnlyList<long> EventTimestamps
    {
        get
        {
            lock (_eventTimestamps)
            {
                return [.. _eventTimestamps];
            }
        }
    }

    /// <summary>Requests whose peer went away (reset or closed) while the response was still being written.</summary>
    public int Aborted => Volatile.Read(ref _aborted);

    public static Task<LoopbackUpstream> StartAsync(LoopbackResponse response) => StartAsync(_ => response);

    public static async Task<LoopbackUpstream> StartAsync(Func<LoopbackRequest, LoopbackResponse> respond)
    {
        var upstream = new LoopbackUpstream(respond);
        upstream._host = await KestrelHost.StartAsync(upstream.HandleAsync);
        return upstream;
    }

    private async Task HandleAsync(HttpContext context)
    {
        try
        {
            await HandleCoreAsync(context);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            Interlocked.Increment(ref _aborted);
        }
    }

    private async Task HandleCoreAsync(HttpContext context)
    {
        var request = context.Request;
        var headers = new HttpHeaderList();
        foreach (var (key, values) in request.Headers)
        {
            foreach (var value in values)
            {
                headers.Add(key, value ?? "");
            }
        }

        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body, context.RequestAborted);
        HttpHeaderList? trailers = null;
        if (request.SupportsTrailers() && request.CheckTrailersAvailable()
            && context.Features.Get<IHttpRequestTrailersFeature>()?.Trailers is { Count: > 0 } received)
        {
            trailers = new HttpHeaderList();
            foreach (var (key, values) in received)
            {
                foreach (var value in values)
                {
                    trailers.Add(key, value ?? "");
                }
            }
        }

        var recorded = new LoopbackRequest
        {
            Method = request.Method,
            Path = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? request.Path + request.QueryString,
            Protocol = request.Protocol,
            Headers = headers,
            Body = body.ToArray(),
            Trailers = trailers,
        };
        lock (_received)
        {
            _received.Add(recorded);
        }

        var script = _respond(recorded);
        if (script.Delay > TimeSpan.Zero)
        {
            await Task.Delay(script.Delay, context.RequestAborted);
        }

        if (script.Abort)
        {
            context.Abort();
            return;
        }

        var response = context.Response;
        response.StatusCode = script.Status;
        foreach (var (key, value) in script.Headers)
        {
            response.Headers.Append(key, value);
        }

        if (script.Events is null)
        {
            response.ContentLength = script.Body.Length;
            await response.Body.WriteAsync(script.Body, context.RequestAborted);
        }
        else
        {
            await response.StartAsync(context.RequestAborted);
            for (var i = 0; i < script.Events.Count; i++)
            {
                var evt = script.Events[i];
                if (script.BeforeEvent is not null)
                {
                    await script.BeforeEvent(i).WaitAsync(context.RequestAborted);
                }

                if (evt.Delay > TimeSpan.Zero)
                {
                    await Task.Delay(evt.Delay, context.RequestAborted);
                }

                await response.BodyWriter.WriteAsync(Encoding.UTF8.GetBytes(evt.Text), context.RequestAborted);
                lock (_eventTimestamps)
                {
                    _eventTimestamps.Add(Stopwatch.GetTimestamp());
                }
            }

            if (script.BeforeEvent is not null)
            {
                await script.BeforeEvent(script.Events.Count).WaitAsync(context.RequestAborted);
            }
        }

        if (script.AbortAfterBody)
        {
            await response.BodyWriter.FlushAsync(context.RequestAborted);
            context.Abort();
            return;
        }

        if (script.Trailers is not null && response.SupportsTrailers())
        {
            foreach (var (key, value) in script.Trailers)
            {
                response.AppendTrailer(key, value);
            }
        }
    }

    public ValueTask DisposeAsync() => _host?.DisposeAsync() ?? ValueTask.CompletedTask;
}
