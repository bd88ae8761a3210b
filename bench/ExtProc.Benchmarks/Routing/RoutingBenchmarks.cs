using BenchmarkDotNet.Attributes;
using Envoy.Service.ExtProc.V3;
using ExtProc.Benchmarks.Engine;
using ExtProc.Envoy;
using ExtProc.Hosting;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;
using ExtProc.Tenancy.Jwt;
using ExtProc.Tenancy.Keys;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;

namespace ExtProc.Benchmarks.Routing;

/// <summary>
/// The request path of one chat request through the whole pipeline (auth, parse, policy) without routing
/// (baseline) and with it: model resolution, target selection, cluster/path/credential mutations and the
/// re-serialised body with the upstream model name.
/// </summary>
public class RoutingBenchmarks
{
    private PipelineSnapshot _withoutRouting = null!;
    private PipelineSnapshot _withRouting = null!;
    private ProcessingRequest _headers = null!;
    private ProcessingRequest _body = null!;
    private readonly NullWriter _writer = new();

    [Params(200, 10_240)]
    public int BodySize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        Environment.SetEnvironmentVariable("EXTPROC_BENCH_OPENAI_KEY", "sk-bench-provider-secret");
        var tenants = $"""
            version: 1
            tenants:
              acme:
                keys:
                  - id: bench
                    hash: "{ApiKeyFormat.HashText(EngineSetup.BenchKey)}"
            """;
        const string routing = """

            providers:
              openai: { schema: openai, cluster: openai, regions: [us], credential: { env: EXTPROC_BENCH_OPENAI_KEY } }
              openai-eu: { schema: openai, cluster: openai-eu, regions: [eu], credential: { env: EXTPROC_BENCH_OPENAI_KEY } }
            models:
              gpt-4o-mini:
                targets:
                  - { provider: openai, model: gpt-4o-mini-2024-07-18, weight: 3 }
                  - { provider: openai-eu, model: gpt-4o-mini-2024-07-18, weight: 1 }
            """;
        var options = new ExtProcOptions();
        _withoutRouting = Build(options, tenants);
        _withRouting = Build(options, tenants + routing);
        _headers = ExtProcMessages.RequestHeaders("POST", ExtProcMessages.ChatPath, "application/json", endOfStream: false, BodySendMode.Buffered, BodySendMode.None);
        _body = ExtProcMessages.RequestBody(ExtProcMessages.ChatBody(BodySize), endOfStream: true);
    }

    [Benchmark(Baseline = true)]
    public ValueTask WithoutRouting() => Run(_withoutRouting);

    [Benchmark]
    public ValueTask WithRouting() => Run(_withRouting);

    private async ValueTask Run(PipelineSnapshot snapshot)
    {
        using var processor = new StreamProcessor(snapshot, _writer, TimeProvider.System, NullLogger.Instance, CancellationToken.None);
        await processor.HandleAsync(_headers).ConfigureAwait(false);
        await processor.HandleAsync(_body).ConfigureAwait(false);
    }

    private static PipelineSnapshot Build(ExtProcOptions options, string yaml)
    {
        var errors = new ConfigErrors();
        var tenancy = TenancySnapshot.Build(yaml, new JwksRegistry(TimeProvider.System, NullLogger.Instance), NullLogger.Instance, errors)
            ?? throw new InvalidOperationException(string.Join("; ", errors.All));
        return PipelineSnapshot.Build(options, tenancy, new PipelineServices(TimeProvider.System, NullLoggerFactory.Instance, new ExtProcMetrics()));
    }

    private sealed class NullWriter : IServerStreamWriter<ProcessingResponse>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(ProcessingResponse message) => Task.CompletedTask;
    }
}
