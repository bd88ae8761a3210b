using System.Net;
using System.Net.Sockets;
using Envoy.Config.Core.V3;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Envoy.Service.ExtProc.V3;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;

namespace ExtProc.Tests.Stages.Auth;

/// <summary>
/// A minimal HTTP front for SDK tests while the full harness is not at hand: each HTTP request becomes
/// one ext_proc stream to the real ExtProc process (request headers, then the buffered body, as Envoy
/// sends them with the shipped filter config); an immediate response is written back as is; otherwise
/// the header mutations are applied and a loopback "upstream" answers, recording what it received.
/// </summary>
internal sealed class MiniDataPlane : IAsyncDisposable
{
    private readonly WebApplication _app;

    private MiniDataPlane(WebApplication app, int port)
    {
        _app = app;
        BaseUrl = new Uri($"http://127.0.0.1:{port}");
    }

    public Uri BaseUrl { get; }

    /// <summary>Header maps the upstream received (lower-case names).</summary>
    public List<Dictionary<string, string>> Upstream { get; } = [];

    public static async Task<MiniDataPlane> StartAsync(ExternalProcessor.ExternalProcessorClient extProc)
    {
        var port = FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        var plane = new MiniDataPlane(app, port);
        app.Run(context => plane.HandleAsync(context, extProc));
        await app.StartAsync();
        return plane;
    }

    private async Task HandleAsync(HttpContext http, ExternalProcessor.ExternalProcessorClient extProc)
    {
        var request = http.Request;
        var headers = new List<(string Name, string Value)>
        {
            (":method", request.Method), (":path", request.Path + request.QueryString), (":authority", request.Host.Value ?? "localhost"),
            (":scheme", "http"), ("x-request-id", Guid.NewGuid().ToString("N")),
        };
        foreach (var (name, values) in request.Headers)
        {
            foreach (var value in values)
            {
                headers.Add((name.ToLowerInvariant(), value ?? ""));
            }
        }

        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body);
        using var call = extProc.Process();
        var map = new HeaderMap();
        foreach (var (name, value) in headers)
        {
            map.Headers.Add(new HeaderValue { Key = name, RawValue = ByteString.CopyFromUtf8(value) });
        }

        await call.RequestStream.WriteAsync(new ProcessingRequest
        {
            RequestHeaders = new HttpHeaders { Headers = map, EndOfStream = body.Length == 0 },
            ProtocolConfig = new ProtocolConfiguration { RequestBodyMode = BodySendMode.Buffered, ResponseBodyMode = BodySendMode.None },
        });
        if (!await call.ResponseStream.MoveNext(http.RequestAborted))
        {
            http.Response.StatusCode = 500;
            return;
        }

        var reply = call.ResponseStream.Current;
        var mutations = new List<HeaderMutation>();
        if (reply.ResponseCase == ProcessingResponse.ResponseOneofCase.RequestHeaders && reply.RequestHeaders.Response?.HeaderMutation is { } m1)
        {
            mutations.Add(m1);
        }

        var bodyWanted = body.Length > 0 && reply.ModeOverride?.RequestBodyMode is not BodySendMode.None;
        if (reply.ResponseCase != ProcessingResponse.ResponseOneofCase.ImmediateResponse && bodyWanted)
        {
            await call.RequestStream.WriteAsync(new ProcessingRequest { RequestBody = new HttpBody { Body = ByteString.CopyFrom(body.ToArray()), EndOfStream = true } });
            Assert.True(await call.ResponseStream.MoveNext(http.RequestAborted));
            reply = call.ResponseStream.Current;
            if (reply.RequestBody?.Response?.HeaderMutation is { } m2)
            {
                mutations.Add(m2);
            }
        }

        await call.RequestStream.CompleteAsync();
        if (reply.ResponseCase == ProcessingResponse.ResponseOneofCase.ImmediateResponse)
        {
            var immediate = reply.ImmediateResponse;
            http.Response.StatusCode = (int)immediate.Status.Code;
            foreach (var option in immediate.Headers?.SetHeaders ?? [])
            {
                http.Response.Headers[option.Header.Key] = option.Header.RawValue.ToStringUtf8();
            }

            await http.Response.Body.WriteAsync(immediate.Body.Memory);
            return;
        }

        // The upstream sees the request as mutated by ExtProc.
        var upstream = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in headers)
        {
            upstream[name] = value;
        }

        foreach (var mutation in mutations)
        {
            foreach (var name in mutation.RemoveHeaders)
            {
                upstream.Remove(name);
            }

            foreach (var option in mutation.SetHeaders)
            {
                upstream[option.Header.Key] = option.Header.RawValue.ToStringUtf8();
            }
        }

        lock (Upstream)
        {
            Upstream.Add(upstream);
        }

        http.Response.StatusCode = 200;
        http.Response.ContentType = "application/json";
        var path = request.Path.Value ?? "";
        await http.Response.WriteAsync(path.EndsWith("/messages", StringComparison.Ordinal)
            ? """{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"""
            : """{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok","refusal":null},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}""");
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
