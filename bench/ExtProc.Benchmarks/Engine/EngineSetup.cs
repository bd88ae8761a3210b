using ExtProc.Envoy;
using ExtProc.Hosting;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Stages.Identify;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;
using ExtProc.Tenancy.Jwt;
using ExtProc.Tenancy.Keys;
using Microsoft.Extensions.Logging.Abstractions;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.Benchmarks.Engine;

/// <summary>The engine as the service builds it: default options, the real stage list.</summary>
internal static class EngineSetup
{
    /// <summary>The virtual key every benchmark request carries (a fixed value, so allocations are stable).</summary>
    public const string BenchKey = "xp_bench_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// <summary>
    /// The shipped stage list with identity: one tenant whose key the benchmark requests carry, so every
    /// governed request is authenticated (key lookup, SHA-256, constant-time compare), gets the tenant header
    /// and metadata, and goes on.
    /// </summary>
    public static PipelineSnapshot DefaultSnapshot()
    {
        var config = "version: 1\ntenants:\n  bench:\n    keys:\n      - id: bench\n        hash: \"" + ApiKeyFormat.HashText(BenchKey) + "\"\n";
        var errors = new ConfigErrors();
        var tenancy = TenancySnapshot.Build(config, new JwksRegistry(TimeProvider.System, NullLogger.Instance), NullLogger.Instance, errors)
            ?? throw new InvalidOperationException(string.Join("; ", errors.All));
        return PipelineSnapshot.Build(new ExtProcOptions(), tenancy, new PipelineServices(TimeProvider.System, NullLoggerFactory.Instance, new ExtProcMetrics()));
    }

    /// <summary>The real stages plus <paramref name="extra"/> after them, for engine paths no shipped stage takes yet.</summary>
    public static PipelineSnapshot SnapshotWith(params Stage[] extra)
    {
        var options = new ExtProcOptions();
        var stages = new Stage[extra.Length + 1];
        stages[0] = new ProtocolIdentificationStage(new ProtocolClassifier(options.Protocols.McpPaths));
        extra.CopyTo(stages, 1);
        return PipelineSnapshot.Create(options, stages);
    }

    public static StreamProcessor NewProcessor(PipelineSnapshot snapshot, NullStreamWriter<EnvoyExtProc.ProcessingResponse> writer) =>
        new(snapshot, writer, TimeProvider.System, NullLogger.Instance, CancellationToken.None);
}

/// <summary>Asks for the response body (as a translator or usage reader will), so streamed chunks are gathered.</summary>
internal sealed class ReadResponseBodyStage : Stage
{
    public override string Name => "bench-read-response-body";

    public override ValueTask<StageResult> OnResponseHeadersAsync(ProcessingContext context)
    {
        context.ResponseBody.Needed = context.Governed;
        return StageResult.ContinueTask;
    }
}
