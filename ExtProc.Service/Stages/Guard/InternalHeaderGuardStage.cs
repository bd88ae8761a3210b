using ExtProc.Pipeline;

namespace ExtProc.Stages.Guard;

/// <summary>
/// Runs first on every request, governed or not: removes every <c>x-extproc-*</c> header the client
/// sent. Those names carry our decisions to Envoy's router and the upstream (the cluster-selection
/// header among them), so a client-supplied one must never survive (faults.md A9). Envoy picked the
/// route before ext_proc ran, with the spoofed header present, so the route cache is cleared too.
/// </summary>
internal sealed class InternalHeaderGuardStage : Stage
{
    public const string ReservedPrefix = "x-extproc-";

    public override string Name => "guard";

    public override ValueTask<StageResult> OnRequestHeadersAsync(ProcessingContext context)
    {
        if (context.IsUpstreamAttempt)
        {
            // Behind the router every x-extproc-* header is ours: the downstream guard removed the client's.
            return StageResult.ContinueTask;
        }

        var headers = context.RequestHeaders;
        for (var i = 0; i < headers.Count; i++)
        {
            var name = headers[i].Name;
            if (name.StartsWith(ReservedPrefix, StringComparison.Ordinal))
            {
                context.RequestMutations.Remove(name);
                context.ClearRouteCache = true;
            }
        }

        return StageResult.ContinueTask;
    }
}
