using System.Net;
using System.Text;
using System.Threading.Channels;
using Envoy.Config.Core.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using static Envoy.Service.ExtProc.V3.ProcessingRequest;

namespace ExtProc.Tests.Emulator;

/// <summary>
/// A loopback gRPC ext_proc processor (Kestrel, 127.0.0.1:0, HTTP/2 only) whose behaviour per stream is a
/// test-supplied script. Returning from the script ends the call with OK; throwing an RpcException ends
/// it with that status.
/// </summary>
public sealed class ScriptedProcessor : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly List<ProcessorSession> _sessions = [];

    private ScriptedProcessor(WebApplication app) => _app = app;

    public Uri Address { get; private set; } = null!;

    public IReadOnlyList<ProcessorSession> Sessions
    {
        get
        {
            lock (_sessions)
            {
                return [.. _sessions];
            }
        }
    }

    internal Func<ProcessorSession, Task> Script { get; set; } = null!;

    /// <summary>When set, every call is answered with this plain HTTP status and no gRPC status.</summary>
    public int? HttpFailureStatus { get; set; }

    public static async Task<ScriptedProcessor> StartAsync(Func<ProcessorSession, Task> script)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(options =>
            options.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc(options => options.MaxReceiveMessageSize = 64 * 1024 * 1024);
        var app = builder.Build();
        var processor = new ScriptedProcessor(app) { Script = script };
        app.Use(async (context, next) =>
        {
            if (processor.HttpFailureStatus is int status)
            {
                // A plain HTTP error without any grpc-status, as a broken proxy or server would send.
                context.Response.StatusCode = status;
                return;
            }

            await next(context);
        });
        app.MapGrpcService<ScriptedService>();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        processor.Address = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        ScriptedService.Register(processor);
        return processor;
    }

    internal void Add(ProcessorSession session)
    {
        lock (_sessions)
        {
            _sessions.Add(session);
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }

    // ---- Common scripts ----

    /// <summary>Answers every message with an empty CONTINUE reply of the matching type, in order.</summary>
    public static async Task ContinueAll(ProcessorSession session)
    {
        while (await session.ReadAsync() is { } request)
        {
            if (Replies.ContinueFor(request) is { } reply)
            {
                await session.SendAsync(reply);
            }
        }
    }
}

/// <summary>The gRPC service Kestrel hosts; each call runs the processor's script.</summary>
internal sealed class ScriptedService : ExternalProcessor.ExternalProcessorBase
{
    private static readonly Dictionary<string, ScriptedProcessor> ByPort = [];

    internal static void Register(ScriptedProcessor processor)
    {
        lock (ByPort)
        {
            ByPort[processor.Address.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)] = processor;
        }
    }

    public override async Task Process(IAsyncStreamReader<ProcessingRequest> requestStream, IServerStreamWriter<ProcessingResponse> responseStream, ServerCallContext context)
    {
        var port = context.GetHttpContext().Connection.LocalPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        ScriptedProcessor processor;
        lock (ByPort)
        {
            processor = ByPort[port];
        }

        var session = new ProcessorSession(requestStream, responseStream, context);
        processor.Add(session);
        try
        {
            await processor.Script(session);
        }
        finally
        {
            session.ScriptDone.TrySetResult();
        }
    }
}

/// <summary>How the client (Envoy) ended the side stream, as the server saw it.</summary>
public enum ClientEnd
{
    StillOpen,
    HalfClosed,
    Cancelled,
}

/// <summary>One side stream as the processor sees it.</summary>
public sealed class ProcessorSession
{
    private readonly IAsyncStreamReader<ProcessingRequest> _requests;
    private readonly IServerStreamWriter<ProcessingResponse> _responses;
    private readonly List<ProcessingRequest> _received = [];
    private readonly List<KeyValuePair<string, string>> _headers = [];

    internal ProcessorSession(IAsyncStreamReader<ProcessingRequest> requests, IServerStreamWriter<ProcessingResponse> responses, ServerCallContext context)
    {
        _requests = requests;
        _responses = responses;
        Context = context;
        // Copied now: the call context is unusable once the call is over.
        foreach (var entry in context.RequestHeaders)
        {
            if (!entry.IsBinary)
            {
                _headers.Add(new(entry.Key, entry.Value));
            }
        }
    }

    public ServerCallContext Context { get; }

    public ClientEnd End { get; private set; } = ClientEnd.StillOpen;

    internal TaskCompletionSource ScriptDone { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyList<ProcessingRequest> Received
    {
        get
        {
            lock (_received)
            {
                return [.. _received];
            }
        }
    }

    /// <summary>A side-stream request header (e.g. from grpc initial metadata).</summary>
    public string? RequestHeader(string name) =>
        _headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    /// <summary>Next message, or null once Envoy half-closed or cancelled.</summary>
    public async Task<ProcessingRequest?> ReadAsync()
    {
        try
        {
            if (await _requests.MoveNext(Context.CancellationToken))
            {
                lock (_received)
                {
                    _received.Add(_requests.Current);
                }

                return _requests.Current;
            }

            End = ClientEnd.HalfClosed;
            return null;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or RpcException or InvalidOperationException)
        {
            End = ClientEnd.Cancelled;
            return null;
        }
    }

    /// <summary>Reads the next message and asserts its kind.</summary>
    public async Task<ProcessingRequest> ExpectAsync(RequestOneofCase kind)
    {
        var request = await ReadAsync() ?? throw new InvalidOperationException($"expected {kind}, stream ended ({End})");
        if (request.RequestCase != kind)
        {
            throw new InvalidOperationException($"expected {kind}, got {request.RequestCase}");
        }

        return request;
    }

    public async Task SendAsync(ProcessingResponse response) => await _responses.WriteAsync(response);

    /// <summary>Reads until Envoy ends the stream; returns the messages read meanwhile.</summary>
    public async Task<List<ProcessingRequest>> DrainAsync()
    {
        var rest = new List<ProcessingRequest>();
        while (await ReadAsync() is { } request)
        {
            rest.Add(request);
        }

        return rest;
    }
}

/// <summary>Builders for processor replies.</summary>
public static class Replies
{
    public static ProcessingResponse? ContinueFor(ProcessingRequest request) => request.RequestCase switch
    {
        RequestOneofCase.RequestHeaders => new ProcessingResponse { RequestHeaders = new HeadersResponse() },
        RequestOneofCase.ResponseHeaders => new ProcessingResponse { ResponseHeaders = new HeadersResponse() },
        RequestOneofCase.RequestBody => new ProcessingResponse { RequestBody = new BodyResponse() },
        RequestOneofCase.ResponseBody => new ProcessingResponse { ResponseBody = new BodyResponse() },
        RequestOneofCase.RequestTrailers => new ProcessingResponse { RequestTrailers = new TrailersResponse() },
        RequestOneofCase.ResponseTrailers => new ProcessingResponse { ResponseTrailers = new TrailersResponse() },
        _ => null,
    };

    public static HeaderValueOption Set(string key, string value, bool? append = null)
    {
        var option = new HeaderValueOption { Header = new HeaderValue { Key = key, RawValue = Google.Protobuf.ByteString.CopyFromUtf8(value) } };
#pragma warning disable CS0612
        option.Append = append;
#pragma warning restore CS0612
        return option;
    }

    public static HeaderMutation Mutation(params HeaderValueOption[] set)
    {
        var mutation = new HeaderMutation();
        mutation.SetHeaders.Add(set);
        return mutation;
    }

    public static CommonResponse Common(HeaderMutation? headers = null, string? body = null, bool clearRouteCache = false,
        CommonResponse.Types.ResponseStatus status = CommonResponse.Types.ResponseStatus.Continue)
    {
        var common = new CommonResponse { HeaderMutation = headers, ClearRouteCache = clearRouteCache, Status = status };
        if (body is not null)
        {
            common.BodyMutation = new BodyMutation { Body = Google.Protobuf.ByteString.CopyFromUtf8(body) };
        }

        return common;
    }

    public static ProcessingResponse RequestHeaders(CommonResponse? common = null) =>
        new() { RequestHeaders = new HeadersResponse { Response = common } };

    public static ProcessingResponse ResponseHeaders(CommonResponse? common = null) =>
        new() { ResponseHeaders = new HeadersResponse { Response = common } };

    public static ProcessingResponse RequestBody(CommonResponse? common = null) =>
        new() { RequestBody = new BodyResponse { Response = common } };

    public static ProcessingResponse ResponseBody(CommonResponse? common = null) =>
        new() { ResponseBody = new BodyResponse { Response = common } };

    public static ProcessingResponse StreamedBody(bool request, string body, bool endOfStream)
    {
        var common = new CommonResponse
        {
            BodyMutation = new BodyMutation
            {
                StreamedResponse = new StreamedBodyResponse { Body = Google.Protobuf.ByteString.CopyFromUtf8(body), EndOfStream = endOfStream },
            },
        };
        return request ? RequestBody(common) : ResponseBody(common);
    }

    public static ProcessingResponse RequestTrailers(HeaderMutation? mutation = null) =>
        new() { RequestTrailers = new TrailersResponse { HeaderMutation = mutation } };

    public static ProcessingResponse ResponseTrailers(HeaderMutation? mutation = null) =>
        new() { ResponseTrailers = new TrailersResponse { HeaderMutation = mutation } };

    public static ProcessingResponse Immediate(int status, string body = "", string details = "", params HeaderValueOption[] headers)
    {
        var immediate = new ImmediateResponse
        {
            Status = new global::Envoy.Type.V3.HttpStatus { Code = (global::Envoy.Type.V3.StatusCode)status },
            Body = Google.Protobuf.ByteString.CopyFromUtf8(body),
            Details = details,
        };
        if (headers.Length > 0)
        {
            immediate.Headers = Mutation(headers);
        }

        return new ProcessingResponse { ImmediateResponse = immediate };
    }

    public static string Text(this HttpBody body) => body.Body.ToStringUtf8();

    /// <summary>The header map as (key, value) pairs, values decoded from raw_value.</summary>
    public static List<(string Key, string Value)> Pairs(this HeaderMap map) =>
        [.. map.Headers.Select(h => (h.Key, Encoding.UTF8.GetString(h.RawValue.Span)))];

    public static string? Get(this HeaderMap map, string key) =>
        map.Headers.FirstOrDefault(h => h.Key == key) is { } h ? Encoding.UTF8.GetString(h.RawValue.Span) : null;
}

/// <summary>Per-test wiring: processor + emulator + canned upstream, with a hard deadline.</summary>
public sealed class EmulatorHarness : IAsyncDisposable
{
    private EmulatorHarness(ScriptedProcessor processor, EnvoyEmulator.EnvoyEmulator emulator, CannedUpstream upstream)
    {
        Processor = processor;
        Emulator = emulator;
        Upstream = upstream;
    }

    public ScriptedProcessor Processor { get; }

    public EnvoyEmulator.EnvoyEmulator Emulator { get; }

    public CannedUpstream Upstream { get; }

    public static async Task<EmulatorHarness> StartAsync(Func<ProcessorSession, Task> script, Action<ExtProcFilterConfig>? configure = null,
        CannedUpstream? upstream = null, RouteTable? routes = null, TimeProvider? time = null, bool addProcessorAddress = true)
    {
        var processor = await ScriptedProcessor.StartAsync(script);
        var config = new ExtProcFilterConfig();
        if (addProcessorAddress)
        {
            config.GrpcService.Add(processor.Address);
        }

        configure?.Invoke(config);
        upstream ??= new CannedUpstream().WithBody("upstream-body");
        // A fake clock by default: message timers only fire when a test advances it, so load cannot flake.
        var emulator = new EnvoyEmulator.EnvoyEmulator(config, upstream, routes, time ?? new FakeTimeProvider());
        return new EmulatorHarness(processor, emulator, upstream);
    }

    public async Task<ExchangeResult> RunAsync(TestRequest request)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        return await Emulator.ExchangeAsync(request, cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        Emulator.Dispose();
        await Processor.DisposeAsync();
    }
}
