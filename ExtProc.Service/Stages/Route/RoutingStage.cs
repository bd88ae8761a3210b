using System.Globalization;
using System.Text;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;
using ExtProc.Routing;

namespace ExtProc.Stages.Route;

/// <summary>
/// The route-level decision, once per request in the downstream filter: resolves the public model (or
/// alias), orders its targets for this tenant and request (<see cref="TargetSelector"/>) and tells Envoy's
/// router where to go with the cluster header and <c>clear_route_cache</c> in the request-body reply.
/// Without a failover cluster the request is rewritten for the chosen target here; with one, Envoy retries
/// across the model's targets and <see cref="AttemptStage"/> rewrites each attempt.
/// </summary>
internal sealed class RoutingStage : Stage
{
    private readonly RoutingCatalog _catalog;
    private readonly PassiveHealth _health;
    private readonly Random _random;
    private readonly TimeProvider _time;

    public RoutingStage(RoutingCatalog catalog, PassiveHealth health, Random random, TimeProvider time)
    {
        _catalog = catalog;
        _health = health;
        _random = random;
        _time = time;
    }

    public override string Name => "route";

    public override ValueTask<StageResult> OnRequestHeadersAsync(ProcessingContext context)
    {
        if (context.IsUpstreamAttempt || !context.Governed)
        {
            return StageResult.ContinueTask;
        }

        // Headers some gateways read to pick an upstream host never reach one through us (faults.md P13).
        var headers = context.RequestHeaders;
        for (var i = 0; i < headers.Count; i++)
        {
            var name = headers[i].Name;
            if (name.EndsWith("-custom-host", StringComparison.Ordinal) || name.EndsWith("-base-url", StringComparison.Ordinal))
            {
                context.RequestMutations.Remove(name);
            }
        }

        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context)
    {
        if (context.IsUpstreamAttempt || !IsLlm(context.Protocol))
        {
            return StageResult.ContinueTask;
        }

        var model = context.Request?.Model;
        if (string.IsNullOrEmpty(model))
        {
            return RespondAsync(context, GatewayError.InvalidRequest, "The request must name a model.");
        }

        if (!_catalog.TryGetModel(model, out var route))
        {
            // The message never lists models: another tenant's names must not leak.
            return RespondAsync(context, GatewayError.ModelNotFound, $"The model '{ErrorResponses.Printable(model)}' does not exist or is not available.");
        }

        var plan = TargetSelector.Plan(route, context.Identity, context.Request, context.Protocol, _catalog, _health, _random);
        if (plan.Error is { } error)
        {
            return RespondAsync(context, error, plan.ErrorMessage!, plan.RetryAfter);
        }

        var state = new RouteState(plan);
        context.Route = state;
        var tenantId = context.Identity?.Tenant.Id ?? "";
        if (route.FailoverClusterBytes is { } failover)
        {
            context.RequestMutations.Set(_catalog.Settings.ClusterHeader, failover);
            context.RequestMutations.Set(RoutingAttributes.RouteHeader, RouteTicket.Encode(tenantId, context.Identity?.KeyId, route.Name, plan));
            context.ClearRouteCache = true;
            context.Decision.RouteReason = "failover";
            return StageResult.ContinueTask;
        }

        Target? chosen = null;
        for (var i = 0; i < plan.Count && chosen is null; i++)
        {
            if (_health.TryUse(plan.Targets[i].Key, _catalog.Settings.Health))
            {
                chosen = plan.Targets[i];
            }
        }

        if (chosen is null)
        {
            return RespondAsync(context, GatewayError.TargetsCoolingDown,
                $"Every provider of the model '{route.Name}' is being probed after recent failures; retry later.", TimeSpan.FromSeconds(1));
        }

        state.Target = chosen;
        if (_catalog.Settings.UpstreamFilter)
        {
            context.RequestMutations.Set(RoutingAttributes.RouteHeader, RouteTicket.Encode(tenantId, context.Identity?.KeyId, route.Name, chosen.Provider.Name));
        }

        context.RequestMutations.Set(_catalog.Settings.ClusterHeader, chosen.Provider.ClusterBytes);
        context.ClearRouteCache = true;
        TargetRequestWriter.WriteHeaders(context, chosen, _catalog, tenantId);
        if (TargetRequestWriter.WriteBody(context, state, chosen, _time) is { } untranslatable)
        {
            return RespondAsync(context, untranslatable.Error, untranslatable.Message);
        }

        Record(context, chosen, attempt: 1, ReferenceEquals(chosen, plan.Targets[0]) ? "selected" : "fallback");
        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseHeadersAsync(ProcessingContext context)
    {
        if (context.IsUpstreamAttempt || context.Route is not { Target: { } target } state)
        {
            return StageResult.ContinueTask;
        }

        _health.Report(target.Key, RouteStatus.Of(context), _catalog.Settings.Health);
        WriteResponseHeaders(context, target, attempt: 1, _catalog.Settings.DebugHeaders);
        TranslationBridge.OnResponseHeaders(context, state);
        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseBodyAsync(ProcessingContext context) =>
        context.IsUpstreamAttempt || context.Route is not { } state
            ? StageResult.ContinueTask
            : new(TranslationBridge.OnResponseBody(context, state));

    public override ValueTask OnStreamEndAsync(ProcessingContext context)
    {
        context.Route?.Stream?.Dispose();
        return default;
    }

    internal static void Record(ProcessingContext context, Target target, int attempt, string reason)
    {
        var decision = context.Decision;
        decision.Provider = target.Provider.Name;
        decision.TargetModel = target.UpstreamModel;
        decision.Attempt = attempt;
        decision.RouteReason = reason;
    }

    internal static void WriteResponseHeaders(ProcessingContext context, Target target, int attempt, bool debug)
    {
        var mutations = context.ResponseMutations;
        mutations.Set(RoutingAttributes.ProviderHeader, target.Provider.NameBytes);
        mutations.Set(RoutingAttributes.AttemptsHeader, attempt.ToString(CultureInfo.InvariantCulture));
        if (debug && context.Route is { } state)
        {
            var text = new StringBuilder("plan=");
            for (var i = 0; i < state.Plan.Count; i++)
            {
                text.Append(i == 0 ? "" : ",").Append(state.Plan.Targets[i].Key);
            }

            text.Append("; target=").Append(target.Key);
            mutations.Set(RoutingAttributes.DebugHeader, text.ToString());
        }
    }

    internal static bool IsLlm(ProtocolKind protocol) => protocol is ProtocolKind.OpenAiChat or ProtocolKind.AnthropicMessages or ProtocolKind.Gemini;

    internal static ValueTask<StageResult> RespondAsync(ProcessingContext context, GatewayError error, string message, TimeSpan? retryAfter = null) =>
        new(StageResult.Respond(retryAfter is { } wait
            ? ErrorResponses.RetryLater(context, error, message, wait)
            : ErrorResponses.Create(context, error, message)));
}
