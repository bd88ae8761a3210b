using System.Net;
using System.Text;
using ExtProc.EnvoyEmulator;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Hosting;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.LoadGen;

/// <summary>
/// The processes a run starts (each its own OS process, so it can be pinned with taskset and its RSS read):
/// the real ExtProc, the echo processor, the mock provider and the data-plane harness. Each prints
/// <c>READY &lt;url&gt;</c> on stdout once it listens, then runs until killed.
/// </summary>
internal static class Servers
{
    public static async Task<int> ServeAsync(string kind, Args args)
    {
        switch (kind)
        {
            case "extproc":
                await ServeExtProcAsync(args.Int("port"), args.Int("admin-port"), args.Has("unix") ? args.String("unix") : null);
                return 0;
            case "echo":
                await ServeEchoAsync(args.Int("port"), args.Has("unix") ? args.String("unix") : null);
                return 0;
            case "mock":
                await ServeMockAsync(args.Int("port"), args.Int("delay-ms", 0));
                return 0;
            case "dataplane":
                await ServeDataPlaneAsync(new Uri(args.String("processor")), new Uri(args.String("upstream")));
                return 0;
            default:
                Console.Error.WriteLine($"unknown server kind '{kind}' (extproc, echo, mock, dataplane)");
                return 2;
        }
    }

    private static async Task ServeExtProcAsync(int port, int adminPort, string? unixSocket)
    {
        // The full pipeline: the bench key resolves to a tenant, and the chat model is routed (two weighted
        // targets, model rewritten, credential swapped) as a production config would have it.
        var config = Path.Combine(Path.GetTempPath(), $"extproc-loadgen-{Environment.ProcessId}.yaml");
        await File.WriteAllTextAsync(config, Payloads.ExtProcConfig());
        Environment.SetEnvironmentVariable(Payloads.ProviderKeyVariable, "sk-loadgen-provider-secret");
        var app = ExtProcApplication.Build([], builder =>
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["ExtProc:Grpc:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["ExtProc:Admin:Port"] = adminPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["ExtProc:Drain:Delay"] = "00:00:00",
                ["ExtProc:Drain:Timeout"] = "00:00:01",
                ["ExtProc:ConfigPath"] = config,
                ["ExtProc:Grpc:UnixSocketPath"] = unixSocket,
            });

            // Production logging minus per-request information lines (none are expected at Warning).
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
        });
        await app.StartAsync();
        Ready(unixSocket is null ? $"http://127.0.0.1:{port}" : "unix:" + unixSocket);
        await app.WaitForShutdownAsync();
    }

    private static async Task ServeEchoAsync(int port, string? unixSocket)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // Same listener shape as ExtProc's gRPC port (ExtProcApplication).
            kestrel.AddServerHeader = false;
            kestrel.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2);
            if (unixSocket is not null)
            {
                File.Delete(unixSocket);
                kestrel.ListenUnixSocket(unixSocket, l => l.Protocols = HttpProtocols.Http2);
            }

            kestrel.Limits.Http2.MaxStreamsPerConnection = 1024;
        });
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = null;
            o.MaxSendMessageSize = null;
        });
        var app = builder.Build();
        app.MapGrpcService<EchoService>();
        await app.StartAsync();
        Ready(unixSocket is null ? $"http://127.0.0.1:{port}" : "unix:" + unixSocket);
        await app.WaitForShutdownAsync();
    }

    private static async Task ServeMockAsync(int port, int delayMs)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http1);
            kestrel.Limits.MaxRequestBodySize = null;
        });
        var app = builder.Build();
        var completion = Payloads.Completion;
        app.Run(async context =>
        {
            // Read the whole request, as a provider does before answering.
            var buffer = new byte[16 * 1024];
            while (await context.Request.Body.ReadAsync(buffer, context.RequestAborted) > 0)
            {
            }

            if (delayMs > 0)
            {
                await Task.Delay(delayMs, context.RequestAborted);
            }

            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = completion.Length;
            await context.Response.Body.WriteAsync(completion, context.RequestAborted);
        });
        await app.StartAsync();
        Ready($"http://127.0.0.1:{port}");
        await app.WaitForShutdownAsync();
    }

    private static async Task ServeDataPlaneAsync(Uri processor, Uri upstream)
    {
        var filter = Payloads.FilterConfig(processor);
        var options = new DataPlaneOptions
        {
            Filter = filter,
            DefaultCluster = "openai",
            UpstreamProtocol = global::ExtProc.EnvoyEmulator.HttpProtocol.Http1,
            KeepExchanges = false,
        };
        options.Clusters["openai"] = upstream;
        await using var plane = await DataPlane.StartAsync(options);
        Ready(plane.BaseUri.ToString().TrimEnd('/'));
        using var stop = new CancellationTokenSource();
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
            {
                ctx.Cancel = true;
                stop.Cancel();
            });
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static void Ready(string url)
    {
        Console.Out.WriteLine("READY " + url);
        Console.Out.Flush();
    }
}

/// <summary>The echo processor (BENCH.md's floor): CONTINUE for every phase, nothing else.</summary>
internal sealed class EchoService : EnvoyExtProc.ExternalProcessor.ExternalProcessorBase
{
    private static readonly EnvoyExtProc.ProcessingResponse RequestHeaders = new() { RequestHeaders = new EnvoyExtProc.HeadersResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse ResponseHeaders = new() { ResponseHeaders = new EnvoyExtProc.HeadersResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse RequestBody = new() { RequestBody = new EnvoyExtProc.BodyResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse ResponseBody = new() { ResponseBody = new EnvoyExtProc.BodyResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse RequestTrailers = new() { RequestTrailers = new EnvoyExtProc.TrailersResponse() };
    private static readonly EnvoyExtProc.ProcessingResponse ResponseTrailers = new() { ResponseTrailers = new EnvoyExtProc.TrailersResponse() };

    public override async Task Process(
        IAsyncStreamReader<EnvoyExtProc.ProcessingRequest> requestStream,
        IServerStreamWriter<EnvoyExtProc.ProcessingResponse> responseStream,
        ServerCallContext context)
    {
        while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            var reply = requestStream.Current.RequestCase switch
            {
                EnvoyExtProc.ProcessingRequest.RequestOneofCase.RequestHeaders => RequestHeaders,
                EnvoyExtProc.ProcessingRequest.RequestOneofCase.ResponseHeaders => ResponseHeaders,
                EnvoyExtProc.ProcessingRequest.RequestOneofCase.RequestBody => RequestBody,
                EnvoyExtProc.ProcessingRequest.RequestOneofCase.ResponseBody => ResponseBody,
                EnvoyExtProc.ProcessingRequest.RequestOneofCase.RequestTrailers => RequestTrailers,
                EnvoyExtProc.ProcessingRequest.RequestOneofCase.ResponseTrailers => ResponseTrailers,
                _ => throw new RpcException(new Status(StatusCode.InvalidArgument, "ProcessingRequest carries no known phase.")),
            };
            await responseStream.WriteAsync(reply).ConfigureAwait(false);
        }
    }
}
