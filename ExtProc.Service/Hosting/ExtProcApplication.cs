using ExtProc.Envoy;
using ExtProc.Pipeline;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ExtProc.Hosting;

/// <summary>Builds the ExtProc process: the ext_proc gRPC service, gRPC health, and the admin port.</summary>
internal static class ExtProcApplication
{
    /// <summary>The service name Envoy-side health checks ask for, besides the overall "".</summary>
    public const string ExtProcHealthService = "envoy.service.ext_proc.v3.ExternalProcessor";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);

        var section = builder.Configuration.GetSection(ExtProcOptions.SectionName);
        builder.Services.AddOptions<ExtProcOptions>().Bind(section).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<ExtProcOptions>, ExtProcOptionsValidator>();
        builder.Services.AddSingleton<IValidateOptions<ExtProcOptions>, ExtProcOptionsCrossValidator>();

        // Listeners are needed before the container exists, so read them straight from configuration.
        var listen = section.Get<ExtProcOptions>() ?? new ExtProcOptions();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            if (listen.Grpc.Port >= 0)
            {
                Listen(kestrel, listen.Grpc.Host, listen.Grpc.Port, HttpProtocols.Http2);
            }

            if (!string.IsNullOrEmpty(listen.Grpc.UnixSocketPath))
            {
                if (File.Exists(listen.Grpc.UnixSocketPath))
                {
                    File.Delete(listen.Grpc.UnixSocketPath);
                }

                kestrel.ListenUnixSocket(listen.Grpc.UnixSocketPath, o => o.Protocols = HttpProtocols.Http2);
            }

            Listen(kestrel, listen.Admin.Host, listen.Admin.Port, HttpProtocols.Http1);

            // Envoy multiplexes every ext_proc stream of a worker over few HTTP/2 connections.
            kestrel.Limits.Http2.MaxStreamsPerConnection = 1024;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = listen.Drain.Delay + listen.Drain.Timeout + TimeSpan.FromSeconds(5));

        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = listen.Grpc.MaxReceiveMessageBytes;
            o.MaxSendMessageSize = null;
            o.EnableDetailedErrors = false;
        });
        builder.Services.AddGrpcHealthChecks(o =>
        {
            o.UseHealthChecksCache = false;
            o.Services.Map("", static r => r.Tags.Contains("ready"));
            o.Services.Map(ExtProcHealthService, static r => r.Tags.Contains("ready"));
        }).AddCheck<ReadinessHealthCheck>("ready", tags: ["ready"]);

        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<PipelineSnapshotProvider>();
        builder.Services.AddSingleton<DrainCoordinator>();
        builder.Services.AddHostedService<SnapshotLoader>();
        builder.Services.AddHostedService<DrainService>();

        var app = builder.Build();
        app.MapGrpcService<ExternalProcessorService>();
        app.MapGrpcHealthChecksService();
        app.MapHealthChecks("/healthz", new() { Predicate = static _ => false });
        app.MapHealthChecks("/readyz", new() { Predicate = static r => r.Tags.Contains("ready") });
        return app;
    }

    /// <summary>The addresses Kestrel actually bound (ports chosen by the OS when configured as 0).</summary>
    public static ICollection<string> BoundAddresses(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];

    private static void Listen(KestrelServerOptions kestrel, string host, int port, HttpProtocols protocols)
    {
        if (host is "*" or "0.0.0.0" or "::")
        {
            kestrel.ListenAnyIP(port, o => o.Protocols = protocols);
        }
        else
        {
            kestrel.Listen(System.Net.IPAddress.Parse(host), port, o => o.Protocols = protocols);
        }
    }

    /// <summary>Builds the first snapshot at start; until then the service is not ready.</summary>
    private sealed class SnapshotLoader : IHostedService
    {
        private readonly PipelineSnapshotProvider _provider;
        private readonly IOptions<ExtProcOptions> _options;

        public SnapshotLoader(PipelineSnapshotProvider provider, IOptions<ExtProcOptions> options)
        {
            _provider = provider;
            _options = options;
        }

        public Task StartAsync(CancellationToken cancellationToken)
        {
            _provider.Publish(PipelineSnapshot.Build(_options.Value));
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
