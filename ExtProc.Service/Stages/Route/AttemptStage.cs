using System.Globalization;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Routing;

namespace ExtProc.Stages.Route;

/// <summary>
/// ExtProc as Envoy's upstream filter: one stream per attempt. Envoy has already picked the cluster (its
/// retry and priority logic is the failover); the provider comes from the picked host's metadata and the
/// route-level decision from <c>x-extproc-route</c>. An attempt at a provider the decision does not permit, or
/// at one cooling down, is answered locally with a retriable 503 so Envoy moves on without contacting it;
/// any other attempt is rewritten for its target (path, credential, model) and its answer feeds passive health.
/// </summary>
internal sealed class AttemptStage : Stage
{
    private readonly RoutingCatalog _catalog;
    private readonly PassiveHealth _health;
    private readonly TimeProvider _time;

    public AttemptStage(RoutingCatalog catalog, PassiveHealth health, TimeProvider time)
    {
        _catalog = catalog;
        _health = health;
        _time = time;
    }

    public override string Name => "attempt";

    public override ValueTask<StageResult> OnRequestHeadersAsync(ProcessingContext context)
    {
        if (!context.IsUpstreamAttempt || !context.Governed)
        {
            return StageResult.ContinueTask;
        }

        var mutations = context.RequestMutations;
        mutations.Remove(RoutingAttributes.RouteHeader);
        mutations.Remove(_catalog.Settings.ClusterHeader);
        if (!context.RequestHeaders.TryGetSingle(RoutingAttributes.RouteHeader, out var raw) || !RouteTicket.TryDecode(raw.Span, out var ticket))
        {
            // Fail closed: an attempt without the downstream decision was never authorised.
            return RoutingStage.RespondAsync(context, GatewayError.Internal, "The request reached the upstream filter without a routing decision.");
        }

        var decision = context.Decision;
        decision.Tenant = ticket.Tenant.Length == 0 ? null : ticket.Tenant;
        decision.KeyId = ticket.KeyId;
        decision.Model = ticket.Model;
        var attempt = AttemptNumber(context);
        var providerName = context.Attributes[RoutingAttributes.AttemptProvider];
        if (!_catalog.Providers.TryGetValue(providerName, out var provider) || !_catalog.TryGetModel(ticket.Model, out var route))
        {
            return SkipAsync(context, attempt, "unknown_provider", "The upstream host names a provider or model this configuration does not know.");
        }

        Target? target = null;
        foreach (var permitted in ticket.Providers)
        {
            if (string.Equals(permitted, provider.Name, StringComparison.Ordinal))
            {
                target = FindTarget(route, provider);
                break;
            }
        }

        if (target is null)
        {
            return SkipAsync(context, attempt, "not_permitted", $"The provider '{provider.Name}' is not permitted for this request.");
        }

        if (!_health.TryUse(target.Key, _catalog.Settings.Health))
        {
            return SkipAsync(context, attempt, "cooling_down", $"The provider '{provider.Name}' is cooling down after recent failures.");
        }

        context.Route = new RouteState(new RoutePlan(route, [target], 1)) { Target = target, Attempt = attempt };
        TargetRequestWriter.WriteHeaders(context, target, _catalog, ticket.Tenant);
        RoutingStage.Record(context, target, attempt, attempt == 1 ? "selected" : "failover");
        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context)
    {
        if (context.IsUpstreamAttempt && context.Route is { Target: { } target } state
            && TargetRequestWriter.WriteBody(context, state, target, _time) is { } error)
        {
            return RoutingStage.RespondAsync(context, error.Error, error.Message);
        }

        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseHeadersAsync(ProcessingContext context)
    {
        if (!context.IsUpstreamAttempt || context.Route is not { Target: { } target } state)
        {
            return StageResult.ContinueTask;
        }

        _health.Report(target.Key, RouteStatus.Of(context), _catalog.Settings.Health);
        RoutingStage.WriteResponseHeaders(context, target, state.Attempt, _catalog.Settings.DebugHeaders);
        TranslationBridge.OnResponseHeaders(context, state);
        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseBodyAsync(ProcessingContext context) =>
        context.IsUpstreamAttempt && context.Route is { } state
            ? new(TranslationBridge.OnResponseBody(context, state))
            : StageResult.ContinueTask;

    public override ValueTask OnStreamEndAsync(ProcessingContext context)
    {
        context.Route?.Stream?.Dispose();
        return default;
    }

    private static Target? FindTarget(ModelRoute route, Provider provider)
    {
        foreach (var target in route.Targets)
        {
            if (ReferenceEquals(target.Provider, provider))
            {
                return target;
            }
        }

        return null;
    }

    private static int AttemptNumber(ProcessingContext context) =>
        context.RequestHeaders.TryGetSingle(RoutingAttributes.EnvoyAttemptCount, out var raw)
            && int.TryParse(raw.Span, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 1;

    private static ValueTask<StageResult> SkipAsync(ProcessingContext context, int attempt, string reason, string message)
    {
        context.Decision.RouteReason = "skipped_" + reason;
        context.Decision.Attempt = attempt;
        var response = ErrorResponses.Create(context, GatewayError.TargetSkipped, message);
        response.Headers.Add(new(RoutingAttributes.SkipHeader, reason));
        return new(StageResult.Respond(response));
    }
}
