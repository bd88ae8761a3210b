namespace ExtProc.Routing;

/// <summary>What routing decided for one request (downstream) or one attempt (upstream filter).</summary>
internal sealed class RouteState
{
    public RouteState(RoutePlan plan) => Plan = plan;

    public RoutePlan Plan { get; }

    /// <summary>The target this request or attempt goes to; null downstream when Envoy fails over between targets.</summary>
    public Target? Target { get; set; }

    /// <summary>1 for the first try (Envoy's <c>x-envoy-attempt-count</c> in per-attempt mode).</summary>
    public int Attempt { get; set; } = 1;

    /// <summary>The translator when the target speaks another format or dialect; null when bytes pass as they are.</summary>
    public Translation.TranslationDirection? Translation { get; set; }

    public Translation.TranslationState? TranslationState { get; set; }

    /// <summary>The SSE translation of this response, once one started (disposed at stream end).</summary>
    public TranslationBridge.StreamTranslation? Stream { get; set; }
}

/// <summary>The Envoy request attributes and internal headers routing relies on.</summary>
internal static class RoutingAttributes
{
    /// <summary>
    /// The provider of the upstream host Envoy picked for this attempt: endpoint metadata
    /// <c>filter_metadata.extproc.provider</c> on each provider cluster (see envoy/envoy-failover.yaml).
    /// </summary>
    public const string AttemptProvider = "xds.upstream_host_metadata.filter_metadata['extproc']['provider']";

    /// <summary>Carries the downstream decision (tenant, key, public model, permitted providers) to each attempt.</summary>
    public const string RouteHeader = "x-extproc-route";

    public const string ProviderHeader = "x-extproc-provider";

    public const string AttemptsHeader = "x-extproc-attempts";

    public const string DebugHeader = "x-extproc-route-debug";

    public const string SkipHeader = "x-extproc-skip";

    /// <summary>Envoy's attempt counter (route <c>include_attempt_count_in_request</c>).</summary>
    public const string EnvoyAttemptCount = "x-envoy-attempt-count";
}
