using ExtProc.Hosting;
using ExtProc.Observability;
using ExtProc.Routing;
using ExtProc.Stages.Auth;
using ExtProc.Stages.Cache;
using ExtProc.Stages.Guard;
using ExtProc.Stages.Identify;
using ExtProc.Stages.Limits;
using ExtProc.Stages.Mcp;
using ExtProc.Stages.Parse;
using ExtProc.Stages.Policy;
using ExtProc.Stages.Route;
using ExtProc.Storage;
using ExtProc.Tenancy;
using Microsoft.Extensions.Logging.Abstractions;

namespace ExtProc.Pipeline;

/// <summary>
/// Everything a stream needs from configuration, built once and never changed: the stage array in
/// its one true order, the tenancy snapshot its stages were built from, and the limits the engine
/// applies. A reload builds a new snapshot; a stream keeps the one current when it started.
/// </summary>
internal sealed class PipelineSnapshot
{
    private PipelineSnapshot(StageRunner runner, ExtProcOptions options, TenancySnapshot? tenancy)
    {
        Runner = runner;
        Options = options;
        Tenancy = tenancy;
    }

    public StageRunner Runner { get; }

    public ExtProcOptions Options { get; }

    /// <summary>Null only for engine-only snapshots built by tests.</summary>
    public TenancySnapshot? Tenancy { get; }

    /// <summary>The only place that states stage order.</summary>
    public static PipelineSnapshot Build(ExtProcOptions options, TenancySnapshot tenancy, PipelineServices services) =>
        BuildCore(options, tenancy, services);

    /// <summary>
    /// The engine stages without identity and policy: for tests of the ext_proc engine itself. The
    /// service never builds one (<see cref="Build"/> requires a tenancy snapshot).
    /// </summary>
    internal static PipelineSnapshot BuildEngineOnly(ExtProcOptions options) => BuildCore(options, null, PipelineServices.Null);

    /// <summary>For tests and benchmarks that need a custom stage list.</summary>
    internal static PipelineSnapshot Create(ExtProcOptions options, params Stage[] stages) =>
        new(new StageRunner(stages), options, null);

    private static PipelineSnapshot BuildCore(ExtProcOptions options, TenancySnapshot? tenancy, PipelineServices services)
    {
        var stages = new List<Stage>
        {
            // 1. Spoofed internal headers go before anything reads the request (faults.md A9).
            new InternalHeaderGuardStage(),

            // 2. Protocol: decides governed or not, and the dialect of every error after this.
            new ProtocolIdentificationStage(new ProtocolClassifier(options.Protocols.McpPaths)),
        };
        if (tenancy is not null)
        {
            // 3. Exactly one tenant, from headers and peer identity, before any body is asked for.
            stages.Add(new AuthenticationStage(tenancy, services.Time, services.LoggerFactory.CreateLogger("ExtProc.Stages.Auth"), services.Metrics));

        }

        // 4. The LLM body, read once and strictly into the RequestSummary every later decision uses.
        stages.Add(new RequestParseStage(options.Protocols.MaxJsonDepth));
        if (tenancy is not null)
        {
            // 5. The tenant policy (narrowed by the key scope), before any body goes upstream.
            stages.Add(new TenantPolicyStage(services.LoggerFactory.CreateLogger("ExtProc.Stages.Policy"), services.Metrics));

            // 6. The tool allowlist on LLM traffic, right after the policy that owns it (one list for LLM and MCP).
            stages.Add(new LlmToolPolicyStage(services.LoggerFactory.CreateLogger("ExtProc.Stages.Policy"), services.Metrics));

            // 7. MCP governance after the tenant policy it applies: sessions are checked by their headers
            // before any body is read, tools and methods before the body goes on, lists before they return.
            stages.Add(new McpGovernanceStage(services.Mcp, tenancy.Config.Mcp, services.LoggerFactory.CreateLogger("ExtProc.Stages.Mcp"), services.Metrics));

            // 8. Limits after every refusal above (a refused request costs nothing) and before cache and routing
            //    (a cache hit then releases its reservation; routing needs an admitted request).
            LimitsStage? limitsStage = null;
            if (tenancy.Config.Limits.Rules.Count > 0)
            {
                var limits = tenancy.Config.Limits;
                limitsStage = new LimitsStage(limits, services.LimitStores.Get(limits.Redis), services.LimitStores.Metrics, services.Time);
                stages.Add(limitsStage);
            }

            // 8b. Cache lookup after limits (a hit gives its tokens and money back through the limits stage) and before
            //     routing (a hit needs no upstream).
            var cache = tenancy.Config.Cache;
            if (cache.AnyEnabled)
            {
                stages.Add(new CacheStage(cache, services.CacheStores.Get(cache), limitsStage, tenancy.Version, services.LoggerFactory.CreateLogger("ExtProc.Stages.Cache")));
            }

            services.Health.UseShared(tenancy.Routing.Settings.Health.Redis);
            if (tenancy.Routing.Enabled)
            {
                // 9. The upstream, chosen once the request is allowed, read and admitted: the route-level
                //    decision downstream, the per-attempt rewrite when ExtProc also runs as the upstream filter.
                stages.Add(new RoutingStage(tenancy.Routing, services.Health, Random.Shared, services.Time));
                stages.Add(new AttemptStage(tenancy.Routing, services.Health, services.Time));
            }

            if (cache.AnyEnabled)
            {
                // 10. Cache fill after routing: what is stored is the answer as the client gets it (translated).
                stages.Add(new CacheFillStage());
            }
        }

        return new PipelineSnapshot(new StageRunner([.. stages]), options, tenancy);
    }
}

/// <summary>Process-wide services stages are built with.</summary>
internal sealed record PipelineServices(TimeProvider Time, ILoggerFactory LoggerFactory, ExtProcMetrics Metrics)
{
    /// <summary>Passive health of routing targets: process-wide, so it outlives config reloads.</summary>
    public PassiveHealth Health { get; } = new(Time);

    /// <summary>Limit stores (and their Redis connections), kept across reloads.</summary>
    public LimitStoreRegistry LimitStores { get; init; } = new(Time, new LimitMetrics());

    /// <summary>MCP sessions, in-flight requests and tool catalogs: kept across config reloads.</summary>
    public Stages.Mcp.McpGovernanceState Mcp { get; init; } = new(Time);

    /// <summary>Response cache stores (level 1 entries and level 2 connections), kept across reloads.</summary>
    public ResponseCacheRegistry CacheStores { get; init; } = new(LoggerFactory, new CacheMetrics());

    public static readonly PipelineServices Null = new(TimeProvider.System, NullLoggerFactory.Instance, new ExtProcMetrics());
}

/// <summary>Hands out the current snapshot; readers never lock.</summary>
internal sealed class PipelineSnapshotProvider
{
    private PipelineSnapshot? _current;

    public PipelineSnapshot? Current => Volatile.Read(ref _current);

    public bool IsLoaded => Current is not null;

    public void Publish(PipelineSnapshot snapshot) => Volatile.Write(ref _current, snapshot);
}
