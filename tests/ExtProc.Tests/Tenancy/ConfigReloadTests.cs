using System.Diagnostics;
using System.Diagnostics.Metrics;
using Envoy.Service.ExtProc.V3;
using ExtProc.Tenancy;
using ExtProc.Tests.Hosting;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using static ExtProc.Tests.Engine.EngineTestKit;

namespace ExtProc.Tests.Tenancy;

/// <summary>Reload of the real process's config file: applied without dropping streams; a bad change refused and reported.</summary>
public sealed class ConfigReloadTests : IAsyncLifetime
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"extproc-reload-{Guid.NewGuid():N}.yaml");
    private readonly List<(string Result, long Value)> _reloads = [];
    private MeterListener? _listener;
    private ExtProcServer _server = null!;

    private TenancyConfigProvider Provider => _server.App.Services.GetRequiredService<TenancyConfigProvider>();

    public async Task InitializeAsync()
    {
        await File.WriteAllTextAsync(_path, TestTenancy.BaseYaml());
        _server = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:ConfigPath"] = _path,
            ["ExtProc:ConfigPollInterval"] = "00:00:00.200",
        });
        var factory = _server.App.Services.GetRequiredService<IMeterFactory>();
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Scope == factory && instrument.Name == "extproc.config.reloads")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            lock (_reloads)
            {
                _reloads.Add(((string)tags[0].Value!, value));
            }
        });
        _listener.Start();
    }

    public async Task DisposeAsync()
    {
        _listener?.Dispose();
        await _server.DisposeAsync();
        File.Delete(_path);
    }

    private async Task<TimeSpan> RewriteAndWaitAsync(string yaml, Func<bool> done)
    {
        var clock = Stopwatch.StartNew();
        await File.WriteAllTextAsync(_path + ".tmp", yaml);
        File.Move(_path + ".tmp", _path, overwrite: true); // atomic swap, as ConfigMap updates do
        while (!done())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the change was not picked up within 10 s");
            await Task.Delay(20);
        }

        return clock.Elapsed;
    }

    private async Task<ProcessingResponse> FirstReplyAsync(string key, string path = "/v1/chat/completions")
    {
        using var call = _server.Client.Process();
        await call.RequestStream.WriteAsync(RequestHeaders(path, extra: ("x-api-key", key)));
        Assert.True(await call.ResponseStream.MoveNext());
        var reply = call.ResponseStream.Current;
        await call.RequestStream.CompleteAsync();
        while (await call.ResponseStream.MoveNext())
        {
        }

        return reply;
    }

    [Fact]
    public async Task A3_KeyRevokedInConfig_RefusedAfterReload_LagReported()
    {
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, (await FirstReplyAsync(TestTenancy.AcmeKey)).ResponseCase);
        var generation = Provider.Generation;
        var revoked = TestTenancy.BaseYaml().Replace("- id: acme-main\n", "- id: acme-main\n        revoked: true\n", StringComparison.Ordinal);
        Assert.NotEqual(TestTenancy.BaseYaml(), revoked);

        var lag = await RewriteAndWaitAsync(revoked, () => Provider.Generation > generation);

        var reply = await FirstReplyAsync(TestTenancy.AcmeKey);
        Assert.Equal(401, (int)reply.ImmediateResponse.Status.Code);
        Assert.Contains("invalid_api_key", reply.ImmediateResponse.Body.ToStringUtf8());
        Assert.True(lag < TimeSpan.FromSeconds(2), $"revocation lag {lag}");
        Console.WriteLine($"A3 revocation lag (file write to applied): {lag.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public async Task Reload_InFlightStreamKeepsItsSnapshot_NewStreamsUseTheNewOne()
    {
        using var call = _server.Client.Process();
        await call.RequestStream.WriteAsync(RequestHeaders("/v1/chat/completions", extra: ("x-api-key", TestTenancy.AcmeKey)));
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, call.ResponseStream.Current.ResponseCase);

        // The new config no longer allows gpt-4o* for acme.
        var generation = Provider.Generation;
        var narrowed = TestTenancy.BaseYaml().Replace("\"gpt-4o*\", ", "", StringComparison.Ordinal)
            .Replace("models: [\"gpt-4o-mini\"]", "models: [\"claude-haiku\"]", StringComparison.Ordinal);
        await RewriteAndWaitAsync(narrowed, () => Provider.Generation > generation);
        Assert.Null(Provider.LastErrors);

        await call.RequestStream.WriteAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, call.ResponseStream.Current.ResponseCase);
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);

        using var next = _server.Client.Process();
        await next.RequestStream.WriteAsync(RequestHeaders("/v1/chat/completions", extra: ("x-api-key", TestTenancy.AcmeKey)));
        Assert.True(await next.ResponseStream.MoveNext());
        await next.RequestStream.WriteAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));
        Assert.True(await next.ResponseStream.MoveNext());
        Assert.Equal(403, (int)next.ResponseStream.Current.ImmediateResponse.Status.Code);
        await next.RequestStream.CompleteAsync();
    }

    [Fact]
    public async Task Reload_InvalidChange_RefusedLoggedCountedAndLastGoodKept()
    {
        var broken = TestTenancy.BaseYaml().Replace("displayName: Acme", "displayName: Acme\n    colour: blue", StringComparison.Ordinal)
            .Replace("hash: \"sha256:", "hash: \"sha256:zz", StringComparison.Ordinal);
        var generation = Provider.Generation;

        await RewriteAndWaitAsync(broken, () => Provider.LastErrors is not null);

        Assert.Equal(generation, Provider.Generation);
        Assert.Contains(Provider.LastErrors!, e => e.StartsWith("tenants.acme.colour: unknown key", StringComparison.Ordinal));
        Assert.Contains(Provider.LastErrors!, e => e.StartsWith("tenants.acme.keys[0].hash", StringComparison.Ordinal));
        var logged = _server.Logs.GetSnapshot().Single(r => r.Id.Name == "ConfigReloadFailed");
        Assert.Contains("tenants.acme.colour: unknown key", logged.Message, StringComparison.Ordinal);
        lock (_reloads)
        {
            Assert.Contains(("rejected", 1L), _reloads);
        }

        // Still served by the last good snapshot.
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, (await FirstReplyAsync(TestTenancy.AcmeKey)).ResponseCase);

        // A fixed file applies again.
        await RewriteAndWaitAsync(TestTenancy.BaseYaml() + "\n# fixed\n", () => Provider.Generation > generation);
        Assert.Null(Provider.LastErrors);
        lock (_reloads)
        {
            Assert.Contains(("applied", 1L), _reloads);
        }
    }
}

/// <summary>The initial load must succeed or the process does not start.</summary>
public sealed class ConfigStartupTests
{
    [Fact]
    public async Task Start_InvalidConfig_ProcessRefusesToStartWithEveryError()
    {
        var path = Path.Combine(Path.GetTempPath(), $"extproc-bad-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(path, "version: 1\ntenants:\n  acme:\n    keys: [{id: k1k, hash: nope}]\nextra: 1\n");
        try
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => ExtProcServer.StartAsync(new Dictionary<string, string?> { ["ExtProc:ConfigPath"] = path }));

            Assert.Contains("tenants.acme.keys[0].hash", error.Message, StringComparison.Ordinal);
            Assert.Contains("extra: unknown key", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Start_NoConfigPath_EmbeddedSampleServesAndRefusesUnauthenticated()
    {
        await using var server = await ExtProcServer.StartAsync(new Dictionary<string, string?> { ["ExtProc:ConfigPath"] = "" });
        using var call = server.Client.Process();

        await call.RequestStream.WriteAsync(RequestHeaders("/v1/chat/completions", extra: ("x-api-key", TestTenancy.AcmeKey)));
        Assert.True(await call.ResponseStream.MoveNext());

        Assert.Equal(401, (int)call.ResponseStream.Current.ImmediateResponse.Status.Code);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await server.Admin.GetAsync(server.AdminUrl("/readyz"))).StatusCode);
    }
}
