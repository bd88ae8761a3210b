using BenchmarkDotNet.Attributes;
using Envoy.Config.Core.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.Envoy;
using ExtProc.Hosting;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;
using ExtProc.Tenancy.Jwt;
using ExtProc.Tenancy.Keys;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace ExtProc.Benchmarks.Auth;

/// <summary>
/// The request-headers phase of one stream through the real engine: without identity (baseline) and
/// with an API key resolved to a tenant (lookup by id, SHA-256, constant-time compare, mutations).
/// </summary>
public class AuthHeadersBenchmarks
{
    private PipelineSnapshot _engineOnly = null!;
    private PipelineSnapshot _withIdentity = null!;
    private ProcessingRequest _withKey = null!;
    private readonly NullWriter _writer = new();

    [GlobalSetup]
    public void Setup()
    {
        var key = ApiKeyFormat.NewKey("bench");
        var yaml = $"""
            version: 1
            tenants:
              acme:
                policy: {"{"} models: ["gpt-4o*"] {"}"}
                keys:
                  - id: bench
                    hash: "{ApiKeyFormat.HashText(key)}"
            """;
        var errors = new ConfigErrors();
        var tenancy = TenancySnapshot.Build(yaml, new JwksRegistry(TimeProvider.System, NullLogger.Instance), NullLogger.Instance, errors)
            ?? throw new InvalidOperationException(string.Join("; ", errors.All));
        var options = new ExtProcOptions();
        _engineOnly = PipelineSnapshot.BuildEngineOnly(options);
        _withIdentity = PipelineSnapshot.Build(options, tenancy, new PipelineServices(TimeProvider.System, NullLoggerFactory.Instance, new ExtProcMetrics()));
        var map = new HeaderMap();
        foreach (var (k, v) in new[]
        {
            (":method", "POST"), (":path", "/v1/chat/completions"), (":authority", "gw"), (":scheme", "https"),
            ("content-type", "application/json"), ("x-request-id", "r1"), ("authorization", "Bearer " + key), ("user-agent", "OpenAI/.NET 2.15"),
        })
        {
            map.Headers.Add(new HeaderValue { Key = k, RawValue = ByteString.CopyFromUtf8(v) });
        }

        _withKey = new ProcessingRequest { RequestHeaders = new HttpHeaders { Headers = map } };
    }

    [Benchmark(Baseline = true)]
    public ValueTask EngineOnly() => Run(_engineOnly);

    [Benchmark]
    public ValueTask WithApiKey() => Run(_withIdentity);

    private async ValueTask Run(PipelineSnapshot snapshot)
    {
        using var processor = new StreamProcessor(snapshot, _writer, TimeProvider.System, NullLogger.Instance, CancellationToken.None);
        await processor.HandleAsync(_withKey).ConfigureAwait(false);
    }

    private sealed class NullWriter : IServerStreamWriter<ProcessingResponse>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(ProcessingResponse message) => Task.CompletedTask;
    }
}
