using ExtProc.Envoy;
using ExtProc.Hosting;
using ExtProc.Pipeline;
using ExtProc.Stages.Identify;
using Microsoft.Extensions.Logging.Abstractions;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.Benchmarks.Engine;

/// <summary>The engine as the service builds it: default options, the real stage list.</summary>
internal static class EngineSetup
{
    public static PipelineSnapshot DefaultSnapshot() => PipelineSnapshot.Build(new ExtProcOptions());

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
