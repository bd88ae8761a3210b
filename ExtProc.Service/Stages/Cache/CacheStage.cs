using System.Text;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Protocols;
using ExtProc.Stages.Limits;
using ExtProc.Storage;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;

namespace ExtProc.Stages.Cache;

/// <summary>
/// The response cache lookup: an exact-match cache of buffered (non-stream) LLM answers, scoped to the tenant, the
/// config snapshot and the caller's permission set (<see cref="CacheKeyBuilder"/>). A hit answers with the stored
/// body and gives the admission's tokens and money back first (a cached answer costs nothing; it still counts as a
/// request); a miss remembers the key for <see cref="CacheFillStage"/>. A stored stream is replayed as one SSE body.
/// No header tells a hit from a miss: the status goes to dynamic metadata (<c>cache</c>) for the access log only.
/// </summary>
internal sealed class CacheStage : Stage
{
    private readonly CacheConfig _config;
    private readonly ResponseCacheStore _store;
    private readonly LimitsStage? _limits;
    private readonly string _policyVersion;
    private readonly ILogger _logger;

    public CacheStage(CacheConfig config, ResponseCacheStore store, LimitsStage? limits, string policyVersion, ILogger logger)
    {
        _config = config;
        _store = store;
        _limits = limits;
        _policyVersion = policyVersion;
        _logger = logger;
    }

    public override string Name => "cache";

    public override ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context)
    {
        if (context.IsUpstreamAttempt || context.Identity is not { } identity || context.Request is not { } request
            || context.Protocol is not (ProtocolKind.OpenAiChat or ProtocolKind.AnthropicMessages or ProtocolKind.Gemini))
        {
            return StageResult.ContinueTask;
        }

        var settings = _config.For(identity.Tenant.Id);
        if (!settings.Enabled)
        {
            return StageResult.ContinueTask;
        }

        var path = PathOf(context);
        if (path.Contains(":streamGenerateContent", StringComparison.Ordinal))
        {
            // Gemini streams are JSON arrays or SSE by query; not cached yet.
            return BypassAsync(context, "stream");
        }

        var model = request.Model ?? string.Empty;
        if (settings.Models is { } models && !Glob.MatchesAny(models, model))
        {
            return BypassAsync(context, "model");
        }

        var scope = new CacheScope(identity.Tenant.Id, _policyVersion, identity.Policy.PermissionHash, model, context.Protocol, path, Variant(context));
        if (!CacheKeyBuilder.TryCompute(scope, context.RequestBody.Content.Span, out var key))
        {
            return BypassAsync(context, "unreadable");
        }

        if (key.Sampled && !settings.Sampled)
        {
            return BypassAsync(context, "sampled");
        }

        return LookupAsync(context, identity, key, settings);
    }

    private async ValueTask<StageResult> LookupAsync(ProcessingContext context, CallerIdentity identity, CacheKey key, CacheTenantSettings settings)
    {
        var tenant = identity.Tenant.Id;
        var storeKey = key.StoreKey(tenant);
        var entry = await _store.GetAsync(storeKey, settings.Ttl).ConfigureAwait(false);
        if (entry is not null)
        {
            var check = CacheEntry.Read(entry, tenant, key.Hash, out var contentType, out var body);
            if (check == EntryCheck.Valid)
            {
                return await HitAsync(context, contentType, body).ConfigureAwait(false);
            }

            // Never served; deleted so the next request refills it (faults.md C6).
            var reason = check == EntryCheck.Foreign ? "foreign" : "corrupt";
            CacheLog.EntryRejected(_logger, context.RequestId, tenant, reason);
            _store.Metrics.Eviction(reason);
            await _store.RemoveAsync(storeKey).ConfigureAwait(false);
        }

        _store.Metrics.Lookup("miss");
        context.Decision.Cache = "miss";
        context.Cache = new CacheExchange(_store, storeKey, key.Hash, tenant, settings.Ttl, _config.MaxEntryBytes);
        return StageResult.Continue;
    }

    private async ValueTask<StageResult> HitAsync(ProcessingContext context, string contentType, ReadOnlyMemory<byte> body)
    {
        if (_limits is not null)
        {
            // Before the answer leaves: the client's next request must already see the tokens and money back.
            await _limits.ReleaseAsync(context).ConfigureAwait(false);
        }

        _store.Metrics.Lookup("hit");
        context.Decision.Cache = "hit";
        var response = new LocalResponse(200, body, contentType, "extproc_cache_hit");
        foreach (var edit in context.ResponseMutations.Sets)
        {
            // The admission's x-ratelimit-* headers, as an upstream answer would carry them.
            response.Headers.Add(new(edit.Name, Encoding.ASCII.GetString(edit.Value.Span)));
        }

        return StageResult.Respond(response);
    }

    private ValueTask<StageResult> BypassAsync(ProcessingContext context, string reason)
    {
        _store.Metrics.Lookup("bypass", reason);
        context.Decision.Cache = "bypass";
        return StageResult.ContinueTask;
    }

    /// <summary>The request path without its query (a Gemini key may sit in the query; the tenant is in the key already).</summary>
    private static string PathOf(ProcessingContext context)
    {
        if (!context.RequestHeaders.TryGetSingle(":path", out var raw))
        {
            return string.Empty;
        }

        var path = raw.Span;
        var query = path.IndexOf((byte)'?');
        return Encoding.UTF8.GetString(query >= 0 ? path[..query] : path);
    }

    /// <summary>Request headers that change Anthropic's answer (API version, beta features) are part of the key.</summary>
    private static string? Variant(ProcessingContext context)
    {
        if (context.Protocol != ProtocolKind.AnthropicMessages)
        {
            return null;
        }

        var headers = context.RequestHeaders;
        var version = headers.TryGetSingle("anthropic-version", out var v) ? Encoding.UTF8.GetString(v.Span) : string.Empty;
        var beta = headers.TryGetSingle("anthropic-beta", out var b) ? Encoding.UTF8.GetString(b.Span) : string.Empty;
        return version + "\n" + beta;
    }
}
