using System.Net;
using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using ExtProc.Tests.Hosting;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;

namespace ExtProc.Tests.Harness;

/// <summary>Filter configs and small helpers shared by the data-plane tests.</summary>
internal static class HarnessKit
{
    /// <summary>
    /// Message budget for the tests: a cold first call (JIT on a shared 2-core box) can exceed the 1 s we ship,
    /// and these tests are about the data plane, not timers. ExtProc is told the same value.
    /// </summary>
    public static readonly TimeSpan MessageTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The real ExtProc process, in-process on free ports, with the test message budget.</summary>
    public static Task<ExtProcServer> StartExtProcAsync() => ExtProcServer.StartAsync(new Dictionary<string, string?>
    {
        ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
        ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
    });

    /// <summary>
    /// The filter config we ship next to ExtProc (mirrors its Envoy options): headers both ways, request body
    /// BUFFERED, response body NONE (ExtProc lifts it with mode_override), namespace <c>extproc</c> received.
    /// </summary>
    public static ExtProcFilterConfig ExtProcFilter(ExtProcServer server, bool upstreamFilter = false)
    {
        var config = ExtProcFilterConfig.AsShipped(new Uri($"http://127.0.0.1:{server.GrpcPort}"));
        config.MessageTimeout = MessageTimeout;
        config.IsUpstreamFilter = upstreamFilter;
        return config;
    }

    /// <summary>Request headers only: enough for a processor that routes.</summary>
    public static ExtProcFilterConfig HeadersOnlyFilter(Uri processor, BodySendMode requestBody = BodySendMode.None)
    {
        var config = new ExtProcFilterConfig
        {
            ProcessingMode = new ProcessingMode
            {
                RequestHeaderMode = HeaderSendMode.Send,
                ResponseHeaderMode = HeaderSendMode.Skip,
                RequestBodyMode = requestBody,
                ResponseBodyMode = BodySendMode.None,
            },
            MessageTimeout = MessageTimeout,
        };
        config.GrpcService.Add(processor);
        return config;
    }

    /// <summary>Error logs of the ExtProc process; a normal close (END_STREAM then reset) logs none.</summary>
    public static IReadOnlyList<Microsoft.Extensions.Logging.Testing.FakeLogRecord> UnexpectedErrors(ExtProcServer server) => server.Errors();

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static IReadOnlyList<ProcessingRequest.RequestOneofCase> SentKinds(EmulatedStream stream) =>
        [.. stream.Log.Where(e => e.Kind == ExchangeLogKind.Sent).Select(e => e.Request!.RequestCase)];

    /// <summary>Non-pseudo (key, value) pairs of a header list, for set comparisons.</summary>
    public static HashSet<(string, string)> Plain(HttpHeaderList headers, params string[] except) =>
        [.. headers.Entries
            .Where(e => !e.Key.StartsWith(':') && !except.Contains(e.Key))
            .Select(e => (e.Key, Encoding.UTF8.GetString(e.Value)))];

    public static HeaderValueOption SetHeader(string key, string value) =>
        new() { Header = new HeaderValue { Key = key, RawValue = ByteString.CopyFromUtf8(value) } };
}

/// <summary>
/// A minimal loopback ext_proc processor (h2c) that answers each message with a test-supplied function;
/// counts the streams it served.
/// </summary>
internal sealed class HarnessProcessor : ExternalProcessor.ExternalProcessorBase, IAsyncDisposable
{
    private readonly Func<ProcessingRequest, Task<ProcessingResponse>> _reply;
    private WebApplication? _app;
    private int _streams;

    private HarnessProcessor(Func<ProcessingRequest, Task<ProcessingResponse>> reply) => _reply = reply;

    public Uri Address { get; private set; } = null!;

    public int Streams => Volatile.Read(ref _streams);

    public static Task<HarnessProcessor> StartAsync(Func<ProcessingRequest, ProcessingResponse> reply) =>
        StartAsync(r => Task.FromResult(reply(r)));

    public static async Task<HarnessProcessor> StartAsync(Func<ProcessingRequest, Task<ProcessingResponse>> reply)
    {
        var processor = new HarnessProcessor(reply);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(processor);
        var app = builder.Build();
        app.MapGrpcService<HarnessProcessor>();
        await app.StartAsync();
        processor._app = app;
        processor.Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return processor;
    }

    /// <summary>Continues every phase unchanged.</summary>
    public static ProcessingResponse Continue(ProcessingRequest request) => request.RequestCase switch
    {
        ProcessingRequest.RequestOneofCase.RequestHeaders => new ProcessingResponse { RequestHeaders = new HeadersResponse() },
        ProcessingRequest.RequestOneofCase.ResponseHeaders => new ProcessingResponse { ResponseHeaders = new HeadersResponse() },
        ProcessingRequest.RequestOneofCase.RequestBody => new ProcessingResponse { RequestBody = new BodyResponse() },
        ProcessingRequest.RequestOneofCase.ResponseBody => new ProcessingResponse { ResponseBody = new BodyResponse() },
        ProcessingRequest.RequestOneofCase.RequestTrailers => new ProcessingResponse { RequestTrailers = new TrailersResponse() },
        _ => new ProcessingResponse { ResponseTrailers = new TrailersResponse() },
    };

    /// <summary>A request-headers reply that sets the cluster header and clears the route cache (spec §3.6).</summary>
    public static ProcessingResponse RouteTo(string cluster) => new()
    {
        RequestHeaders = new HeadersResponse
        {
            Response = new CommonResponse
            {
                HeaderMutation = new HeaderMutation { SetHeaders = { HarnessKit.SetHeader("x-extproc-cluster", cluster) } },
                ClearRouteCache = true,
            },
        },
    };

    public override async Task Process(IAsyncStreamReader<ProcessingRequest> requestStream, IServerStreamWriter<ProcessingResponse> responseStream,
        ServerCallContext context)
    {
        Interlocked.Increment(ref _streams);
        try
        {
            while (await requestStream.MoveNext(context.CancellationToken))
            {
                await responseStream.WriteAsync(await _reply(requestStream.Current));
            }
        }
        catch (OperationCanceledException)
        {
            // Envoy closes with half-close + cancel; a normal end.
        }
        catch (IOException)
        {
            // Same, seen from Kestrel.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(2)).Token);
            await _app.DisposeAsync();
        }
    }
}
