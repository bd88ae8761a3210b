namespace ExtProc.Pipeline;

/// <summary>
/// One step of the pipeline. Stages are stateless singletons built once per config snapshot; all
/// per-request state lives on the <see cref="ProcessingContext"/>. Every phase defaults to continue,
/// so a stage overrides only the phases it cares about.
/// </summary>
internal abstract class Stage
{
    public abstract string Name { get; }

    public virtual ValueTask<StageResult> OnRequestHeadersAsync(ProcessingContext context) => StageResult.ContinueTask;

    /// <summary>The request body is available (complete unless <see cref="BodyState.Complete"/> is false).</summary>
    public virtual ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context) => StageResult.ContinueTask;

    public virtual ValueTask<StageResult> OnRequestTrailersAsync(ProcessingContext context) => StageResult.ContinueTask;

    public virtual ValueTask<StageResult> OnResponseHeadersAsync(ProcessingContext context) => StageResult.ContinueTask;

    /// <summary>The response body is available (complete unless <see cref="BodyState.Complete"/> is false).</summary>
    public virtual ValueTask<StageResult> OnResponseBodyAsync(ProcessingContext context) => StageResult.ContinueTask;

    public virtual ValueTask<StageResult> OnResponseTrailersAsync(ProcessingContext context) => StageResult.ContinueTask;

    /// <summary>
    /// The ext_proc stream is over, however it ended (complete, immediate response, reset, cancel): the
    /// place to release what a request held. Runs once per stream, for every stage, after the last phase.
    /// </summary>
    public virtual ValueTask OnStreamEndAsync(ProcessingContext context) => default;
}
