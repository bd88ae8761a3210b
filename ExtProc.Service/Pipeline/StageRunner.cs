namespace ExtProc.Pipeline;

/// <summary>
/// Runs the stages of one config snapshot for a phase, in order, stopping at the first Respond.
/// Synchronous stages cost no async state machine.
/// </summary>
internal sealed class StageRunner
{
    private readonly Stage[] _stages;

    public StageRunner(Stage[] stages) => _stages = stages;

    public ReadOnlySpan<Stage> Stages => _stages;

    public ValueTask<StageResult> RunAsync(ProcessingPhase phase, ProcessingContext context)
    {
        var stages = _stages;
        for (var i = 0; i < stages.Length; i++)
        {
            var pending = InvokeAsync(stages[i], phase, context);
            if (!pending.IsCompletedSuccessfully)
            {
                return SlowAsync(stages, i, pending, phase, context);
            }

#pragma warning disable VSTHRD103 // completed synchronously: reading the result does not block
            var result = pending.Result;
#pragma warning restore VSTHRD103
            if (result.IsRespond)
            {
                return new ValueTask<StageResult>(result);
            }
        }

        return StageResult.ContinueTask;

        static async ValueTask<StageResult> SlowAsync(
            Stage[] stages, int index, ValueTask<StageResult> pending, ProcessingPhase phase, ProcessingContext context)
        {
            var result = await pending.ConfigureAwait(false);
            if (result.IsRespond)
            {
                return result;
            }

            for (var i = index + 1; i < stages.Length; i++)
            {
                result = await InvokeAsync(stages[i], phase, context).ConfigureAwait(false);
                if (result.IsRespond)
                {
                    return result;
                }
            }

            return StageResult.Continue;
        }
    }

    /// <summary>Tells every stage the stream ended; one stage failing does not skip the others.</summary>
    public async ValueTask EndAsync(ProcessingContext context, ILogger logger)
    {
        foreach (var stage in _stages)
        {
            try
            {
                await stage.OnStreamEndAsync(context).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Observability.ProcessorLog.PhaseFailed(logger, "StreamEnd", ex);
            }
        }
    }

    private static ValueTask<StageResult> InvokeAsync(Stage stage, ProcessingPhase phase, ProcessingContext context) => phase switch
    {
        ProcessingPhase.RequestHeaders => stage.OnRequestHeadersAsync(context),
        ProcessingPhase.RequestBody => stage.OnRequestBodyAsync(context),
        ProcessingPhase.RequestTrailers => stage.OnRequestTrailersAsync(context),
        ProcessingPhase.ResponseHeaders => stage.OnResponseHeadersAsync(context),
        ProcessingPhase.ResponseBody => stage.OnResponseBodyAsync(context),
        ProcessingPhase.ResponseTrailers => stage.OnResponseTrailersAsync(context),
        _ => throw new ArgumentOutOfRangeException(nameof(phase)),
    };
}
