using ExtProc.Hosting;
using ExtProc.Stages.Guard;
using ExtProc.Stages.Identify;
using ExtProc.Stages.Parse;

namespace ExtProc.Pipeline;

/// <summary>
/// Everything a stream needs from configuration, built once and never changed: the stage array in
/// its one true order, and the limits the engine applies. A reload builds a new snapshot.
/// </summary>
internal sealed class PipelineSnapshot
{
    private PipelineSnapshot(StageRunner runner, ExtProcOptions options)
    {
        Runner = runner;
        Options = options;
    }

    public StageRunner Runner { get; }

    public ExtProcOptions Options { get; }

    /// <summary>The only place that states stage order.</summary>
    public static PipelineSnapshot Build(ExtProcOptions options)
    {
        Stage[] stages =
        [
            new InternalHeaderGuardStage(),
            new ProtocolIdentificationStage(new ProtocolClassifier(options.Protocols.McpPaths)),
            new RequestParseStage(options.Protocols.MaxJsonDepth),
        ];
        return new PipelineSnapshot(new StageRunner(stages), options);
    }

    /// <summary>For tests and benchmarks that need a custom stage list.</summary>
    internal static PipelineSnapshot Create(ExtProcOptions options, params Stage[] stages) =>
        new(new StageRunner(stages), options);
}

/// <summary>Hands out the current snapshot; readers never lock.</summary>
internal sealed class PipelineSnapshotProvider
{
    private PipelineSnapshot? _current;

    public PipelineSnapshot? Current => Volatile.Read(ref _current);

    public bool IsLoaded => Current is not null;

    public void Publish(PipelineSnapshot snapshot) => Volatile.Write(ref _current, snapshot);
}
