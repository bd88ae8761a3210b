using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ExtProc.EnvoyEmulator.Harness;

/// <summary>A bare Kestrel app on loopback with one HTTP/1.1 port and one h2c (prior knowledge) port.</summary>
internal sealed class KestrelHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private KestrelHost(WebApplication app, Uri http1, Uri h2c)
    {
        _app = app;
        Http1Uri = http1;
        H2cUri = h2c;
    }

    public Uri Http1Uri { get; }

    public Uri H2cUri { get; }

    public static async Task<KestrelHost> StartAsync(RequestDelegate handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(options =>
        {
            // Cleartext HTTP/2 needs its own endpoint: Kestrel only negotiates h2 through ALPN.
            options.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http1);
            options.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2);
            options.AddServerHeader = false;
            options.Limits.MaxRequestBodySize = null;
            options.Limits.MinRequestBodyDataRate = null;
            options.Limits.MinResponseDataRate = null;
        });
        var app = builder.Build();
        app.Run(handler);
        await app.StartAsync();

        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        var uris = addresses.Select(a => new Uri(a)).ToList();
        if (uris.Count != 2)
        {
            await app.DisposeAsync();
            throw new InvalidOperationException("Kestrel did not bind two loopback endpoints: " + string.Join(", ", addresses));
        }

        // Endpoints are reported in Listen order.
        return new KestrelHost(app, uris[0], uris[1]);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);
        }
        finally
        {
            await _app.DisposeAsync();
        }
    }
}
