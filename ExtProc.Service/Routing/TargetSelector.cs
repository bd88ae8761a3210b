using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;
using ExtProc.Routing.Config;
using ExtProc.Tenancy;

namespace ExtProc.Routing;

/// <summary>The targets one request may use, best first; or why there is none.</summary>
internal sealed class RoutePlan
{
    public RoutePlan(ModelRoute route, Target[] targets, int count)
    {
        Route = route;
        Targets = targets;
        Count = count;
    }

    public ModelRoute Route { get; }

    public Target[] Targets { get; }

    public int Count { get; }

    public GatewayError? Error { get; init; }

    public string? ErrorMessage { get; init; }

    /// <summary>How long until a cooling target may be probed, when every permitted target is cooling down.</summary>
    public TimeSpan? RetryAfter { get; init; }

    public bool Contains(Provider provider, out Target target)
    {
        for (var i = 0; i < Count; i++)
        {
            if (ReferenceEquals(Targets[i].Provider, provider))
            {
                target = Targets[i];
                return true;
            }
        }

        target = null!;
        return false;
    }
}

/// <summary>
/// Orders a public model's targets for one request: priority groups in order, weighted random order inside
/// a group; targets the tenant may not use (providers, regions), that cannot serve the request (tools,
/// streaming, context window, wire schema) or that have no credential for this tenant are left out; targets
/// cooling down go last, to be used only when nothing else is left.
/// </summary>
internal static class TargetSelector
{
    /// <summary>Bytes of prompt per token for the context-window estimate (conservative for English text).</summary>
    private const int BytesPerToken = 4;

    public static RoutePlan Plan(ModelRoute route, CallerIdentity? identity, RequestSummary? request, ProtocolKind client,
        RoutingCatalog catalog, PassiveHealth health, Random random)
    {
        var all = route.Targets;
        var plan = new Target[all.Length];
        var cooling = new Target[all.Length];
        var count = 0;
        var coolingCount = 0;
        var refusedByPolicy = 0;
        var refusedByCapability = 0;
        var missingCredential = 0;
        var estimate = EstimateTokens(request);
        Span<bool> taken = stackalloc bool[all.Length];
        for (var start = 0; start < all.Length;)
        {
            var end = start;
            while (end < all.Length && all[end].Priority == all[start].Priority)
            {
                end++;
            }

            // Eligible members of this priority group, then a weighted draw without replacement.
            var groupWeight = 0;
            for (var i = start; i < end; i++)
            {
                var target = all[i];
                var provider = target.Provider;
                if (identity is not null && (!identity.Policy.AllowsProvider(provider.Name) || !identity.Policy.AllowsAnyRegion(provider.Config.Regions)))
                {
                    refusedByPolicy++;
                    continue;
                }

                var caps = provider.Config.Capabilities;
                if (!TranslationBridge.CanServe(client, provider)
                    || (request is not null && ((request.Tools.Count > 0 && !caps.Tools) || (request.Stream && !caps.Streaming)
                        || (caps.ContextWindow is { } window && estimate > window))))
                {
                    refusedByCapability++;
                    continue;
                }

                if (provider.Config.Auth != CredentialStyle.None && catalog.CredentialFor(identity?.Tenant.Id ?? "", provider) is null)
                {
                    missingCredential++;
                    continue;
                }

                if (!health.IsAvailable(target.Key))
                {
                    cooling[coolingCount++] = target;
                    continue;
                }

                taken[i] = true;
                groupWeight += target.Weight;
            }

            while (groupWeight > 0)
            {
                var draw = random.Next(groupWeight);
                for (var i = start; i < end; i++)
                {
                    if (!taken[i])
                    {
                        continue;
                    }

                    draw -= all[i].Weight;
                    if (draw < 0)
                    {
                        plan[count++] = all[i];
                        taken[i] = false;
                        groupWeight -= all[i].Weight;
                        break;
                    }
                }
            }

            start = end;
        }

        if (count > 0)
        {
            return new RoutePlan(route, plan, count);
        }

        if (coolingCount > 0)
        {
            return new RoutePlan(route, cooling, coolingCount)
            {
                Error = GatewayError.TargetsCoolingDown,
                ErrorMessage = $"Every provider of the model '{route.Name}' is cooling down after recent failures; retry later.",
                RetryAfter = TimeSpan.FromSeconds(catalog.Settings.Health.Cooldown.TotalSeconds),
            };
        }

        // The answer names the first reason that applies to every target: policy, then configuration, then ability.
        var (error, message) = refusedByCapability == 0 && missingCredential == 0
            ? (GatewayError.NoPermittedTarget, $"No provider of the model '{route.Name}' is permitted for this tenant (providers or regions policy).")
            : refusedByCapability == 0
                ? (GatewayError.ProviderNotConfigured, $"No provider credential is configured for this tenant and the model '{route.Name}'.")
                : (GatewayError.NoCapableTarget, $"No provider of the model '{route.Name}' that this tenant may use can serve this request (tools, streaming, context window or API format).");
        return new RoutePlan(route, plan, 0) { Error = error, ErrorMessage = message };
    }

    private static long EstimateTokens(RequestSummary? request)
    {
        if (request is null)
        {
            return 0;
        }

        long tools = 0;
        foreach (var tool in request.Tools)
        {
            tools += tool.Length;
        }

        return ((request.ContentBytes + tools) / BytesPerToken) + (request.MaxCompletionTokens ?? request.MaxTokens ?? 0);
    }
}
