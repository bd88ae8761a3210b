using System.Net;
using System.Net.Sockets;
using Envoy.Service.ExtProc.V3;
using ExtProc.Hosting;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ExtProc.Tests.Hosting;

/// <summary>The real ExtProc process, hosted in the test process on free loopback ports.</summary>
public sealed class ExtProcServer : IAsyncDisposable
{
    private ExtProcServer(WebApplication app, int grpcPort, int adminPort, FakeLogCollector logs, string? ownConfig)
    {
        _ownConfig = ownConfig;
        App = app;
        GrpcPort = grpcPort;
        AdminPort = adminPort;
        Logs = logs;
        Channel = GrpcChannel.ForAddress($"http://127.0.0.1:{grpcPort}", new GrpcChannelOptions { MaxReceiveMessageSize = null, MaxSendMessageSize = null });
    }

    private readonly string? _ownConfig;

    public WebApplication App { get; }

    /// <summary>The `authorization` header of tenant acme's main test key.</summary>
    public static (string, string) AcmeAuthorization => ("authorization", "Bearer " + Tenancy.TestTenancy.AcmeKey);

    public int GrpcPort { get; }

    public int AdminPort { get; }

    public FakeLogCollector Logs { get; }

    public GrpcChannel Channel { get; }

    public ExternalProcessor.ExternalProcessorClient Client => new(Channel);

    public HttpClient Admin { get; } = new();

    public string AdminUrl(string path) => $"http://127.0.0.1:{AdminPort}{path}";

    public static async Task<ExtProcServer> StartAsync(IDictionary<string, string?>? settings = null, string? configYaml = null)
    {
        // A free port found here can be taken by a parallel test before Kestrel binds it: pick again then.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnFreePortsAsync(settings, configYaml);
            }
            catch (IOException ex) when (attempt < 5 && ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
            {
            }
        }
    }

    private static async Task<ExtProcServer> StartOnFreePortsAsync(IDictionary<string, string?>? settings, string? configYaml)
    {
        var grpcPort = FreePort();
        var adminPort = FreePort();
        var values = new Dictionary<string, string?>
        {
            ["ExtProc:Grpc:Port"] = grpcPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["ExtProc:Admin:Port"] = adminPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["ExtProc:Drain:Delay"] = "00:00:00",
            ["ExtProc:Drain:Timeout"] = "00:00:02",
        };
        if (settings is not null)
        {
            foreach (var (key, value) in settings)
            {
                values[key] = value;
            }
        }

        string? ownConfig = null;
        if (!values.ContainsKey("ExtProc:ConfigPath"))
        {
            // Test tenants and keys (Tenancy.TestTenancy); by default requests without credentials are
            // tenant "public", so tests about the engine need not carry keys.
            ownConfig = Path.Combine(Path.GetTempPath(), $"extproc-test-{Guid.NewGuid():N}.yaml");
            await File.WriteAllTextAsync(ownConfig, configYaml ?? Tenancy.TestTenancy.OpenYaml);
            values["ExtProc:ConfigPath"] = ownConfig;
        }

        FakeLogCollector? collector = null;
        var app = ExtProcApplication.Build([], builder =>
        {
            builder.Configuration.AddInMemoryCollection(values);
            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(LogLevel.Trace);
            builder.Logging.AddFakeLogging();
        });
        collector = app.Services.GetRequiredService<FakeLogCollector>();
        try
        {
            await app.StartAsync();
        }
        catch (IOException)
        {
            await app.DisposeAsync();
            if (ownConfig is not null)
            {
                File.Delete(ownConfig);
            }

            throw;
        }

        return new ExtProcServer(app, grpcPort, adminPort, collector, ownConfig);
    }

    /// <summary>Errors logged so far (functional tests assert there are none unless they expect one).</summary>
    public IReadOnlyList<FakeLogRecord> Errors() =>
        Logs.GetSnapshot().Where(r => r.Level >= LogLevel.Error).ToList();

    public async ValueTask DisposeAsync()
    {
        Admin.Dispose();
        Channel.Dispose();
        try
        {
            await App.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
        }
        finally
        {
            await App.DisposeAsync();
            if (_ownConfig is not null)
            {
                File.Delete(_ownConfig);
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
