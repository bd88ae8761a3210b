using System.Collections.Frozen;
using System.Globalization;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;
using ExtProc.Protocols.Mcp;
using ExtProc.Protocols.Sse;
using ExtProc.Storage;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;

namespace ExtProc.Stages.Limits;

/// <summary>
/// Tenant limits: requests, tokens, concurrency and money. At admission it estimates the prompt
/// (<see cref="TokenEstimator"/>) plus the request's max output tokens, prices them, and reserves every
/// applicable counter at once; a refusal is a 429 in the caller's dialect with <c>Retry-After</c>
/// (<c>rate_limited</c>, or <c>budget_exhausted</c> for money). When the response ends it settles
/// with the provider's usage, a stream cut short is charged for what was generated, and a request that
/// got no response (aborted, answered locally, e.g. from cache) gives its reservation back.
/// </summary>
internal sealed class LimitsStage : Stage
{
    /// <summary>How long a reservation and its concurrency slot live if nothing settles them (a crashed replica).</summary>
    public static readonly TimeSpan Lease = TimeSpan.FromMinutes(15);

    private readonly LimitsConfig _config;
    private readonly FrozenDictionary<string, LimitRuleConfig> _rules;
    private readonly LimitRuleConfig[] _globals;
    private readonly bool _anyToolRule;
    private readonly ILimitStore _store;
    private readonly LimitMetrics _metrics;
    private readonly TimeProvider _time;

    public LimitsStage(LimitsConfig config, ILimitStore store, LimitMetrics metrics, TimeProvider time)
    {
        _config = config;
        _store = store;
        _metrics = metrics;
        _time = time;
        var rules = new Dictionary<string, LimitRuleConfig>(StringComparer.Ordinal);
        var globals = new List<LimitRuleConfig>();
        foreach (var rule in config.Rules)
        {
            rules[rule.Name] = rule;
            _anyToolRule |= rule.Tools is not null;
            if (rule.Global)
            {
                globals.Add(rule);
            }
        }

        _rules = rules.ToFrozenDictionary(StringComparer.Ordinal);
        _globals = [.. globals];
    }

    public override string Name => "limits";

    public override ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context)
    {
        if (context.Identity is not { } identity)
        {
            return StageResult.ContinueTask;
        }

        if (context.Protocol == ProtocolKind.Mcp)
        {
            return _anyToolRule && context.Mcp is { Kind: JsonRpcKind.Request, Method: "tools/call", Target: { } tool } && Applicable(identity, null, tool) is { Count: > 0 } toolRules
                ? ReserveToolCallAsync(context, identity, tool, toolRules)
                : StageResult.ContinueTask;
        }

        if (context.Request is not { } request || context.Protocol is not (ProtocolKind.OpenAiChat or ProtocolKind.AnthropicMessages or ProtocolKind.Gemini))
        {
            return StageResult.ContinueTask;
        }

        var applicable = Applicable(identity, request.Model, tool: null);
        if (applicable.Count == 0)
        {
            return StageResult.ContinueTask;
        }

        return ReserveAsync(context, identity, request, applicable);
    }

    public override ValueTask<StageResult> OnResponseHeadersAsync(ProcessingContext context)
    {
        if (context.Limits is not { Settled: false } lease)
        {
            return StageResult.ContinueTask;
        }

        var status = 0;
        if (context.ResponseHeaders is { } headers && headers.TryGetSingle(":status", out var raw))
        {
            int.TryParse(raw.Span, NumberStyles.None, CultureInfo.InvariantCulture, out status);
        }

        if (status is < 200 or >= 300)
        {
            // Providers do not bill refused requests: give everything back.
            return SettleAsync(context, lease, default, released: true);
        }

        if (lease.Tool is not null)
        {
            // A tool call has no usage to read: its concurrency slot is freed when the stream ends.
            return StageResult.ContinueTask;
        }

        lease.ReadingResponse = true;
        lease.StreamedResponse = context.ResponseHeaders!.TryGetSingle("content-type", out var type)
            && type.Span.IndexOf("text/event-stream"u8) >= 0;
        if (lease.StreamedResponse)
        {
            // SSE: read event by event as chunks pass, never holding the stream.
            lease.Events = new SseEventReader();
            context.ResponseBody.ObserveChunks = true;
            context.ResponseBodyHandling = ResponseBodyHandling.Streamed;
        }
        else
        {
            context.ResponseBody.Needed = true;
            context.ResponseBodyHandling = ResponseBodyHandling.Buffered;
        }

        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseBodyAsync(ProcessingContext context)
    {
        if (context.Limits is not { Settled: false, ReadingResponse: true } lease)
        {
            return StageResult.ContinueTask;
        }

        if (lease.StreamedResponse)
        {
            ReadEvents(lease, context.ResponseBody);
        }

        return context.ResponseBody.Complete ? SettleFromBodyAsync(context, lease) : StageResult.ContinueTask;
    }

    public override async ValueTask OnStreamEndAsync(ProcessingContext context)
    {
        if (context.Limits is not { Settled: false } lease)
        {
            return;
        }

        if (lease.ReadingResponse && context.ResponseBody.Started)
        {
            // Cut short: charge what was generated (usage the provider already sent, else our estimate).
            await SettleFromBodyAsync(context, lease).ConfigureAwait(false);
            return;
        }

        lease.Events?.Dispose();
        lease.Events = null;
        await SettleAsync(context, lease, default, released: true).ConfigureAwait(false);
    }

    /// <summary>
    /// A request answered locally after admission (a cache hit): its tokens and money go back now, before the answer
    /// leaves, and its concurrency slot is freed; request counters keep it (it was a request).
    /// </summary>
    public async ValueTask ReleaseAsync(ProcessingContext context)
    {
        if (context.Limits is { Settled: false } lease)
        {
            await SettleAsync(context, lease, default, released: true).ConfigureAwait(false);
        }
    }

    /// <summary>The rules for an LLM request of <paramref name="model"/>, or for a call of MCP <paramref name="tool"/>.</summary>
    private List<LimitRuleConfig> Applicable(CallerIdentity identity, string? model, string? tool)
    {
        var list = new List<LimitRuleConfig>(identity.Policy.Limits.Count + _globals.Length);
        foreach (var name in identity.Policy.Limits)
        {
            if (_rules.TryGetValue(name, out var rule) && Matches(rule, model, tool))
            {
                list.Add(rule);
            }
        }

        foreach (var rule in _globals)
        {
            if (Matches(rule, model, tool) && !list.Contains(rule))
            {
                list.Add(rule);
            }
        }

        return list;
    }

    private static bool Matches(LimitRuleConfig rule, string? model, string? tool) => tool is null
        ? rule.Tools is null && (rule.Models is null || (model is not null && Glob.MatchesAny(rule.Models, model)))
        : rule.Tools is not null && Glob.MatchesAny(rule.Tools, tool);

    private async ValueTask<StageResult> ReserveToolCallAsync(ProcessingContext context, CallerIdentity identity, string tool, List<LimitRuleConfig> rules)
    {
        var reservationId = Guid.NewGuid().ToString("N");
        var counters = new LimitCounter[rules.Count];
        for (var i = 0; i < counters.Length; i++)
        {
            counters[i] = ToolCounterOf(rules[i], identity, tool);
        }

        var result = await _store.ReserveAsync(new AdmissionRequest(reservationId, counters, (long)Lease.TotalMilliseconds)).ConfigureAwait(false);
        var lease = new LimitLease(reservationId, counters, [.. rules], 0, null, null) { Tool = tool };
        return Decide(context, lease, result);
    }

    private static LimitCounter ToolCounterOf(LimitRuleConfig rule, CallerIdentity identity, string tool)
    {
        var tenant = identity.Tenant.Id;
        var key = rule.Scope == LimitScope.Key
            ? LimitKeys.Counter(rule.Name, tenant, identity.KeyId ?? identity.Subject ?? string.Empty, tool)
            : LimitKeys.Counter(rule.Name, tenant, null, tool);
        var failClosed = rule.OnOutage == OutagePolicy.Closed;
        return rule.Kind == LimitKind.Concurrency
            ? new LimitCounter(key, CounterKind.Concurrency, rule.Limit, 0, 1, failClosed)
            : new LimitCounter(key, CounterKind.Window, rule.Limit, (long)rule.Window.TotalMilliseconds, 1, failClosed);
    }

    private async ValueTask<StageResult> ReserveAsync(ProcessingContext context, CallerIdentity identity, RequestSummary request, List<LimitRuleConfig> rules)
    {
        var model = request.Model;
        var needsTokens = false;
        var needsMoney = false;
        foreach (var rule in rules)
        {
            needsTokens |= rule.Kind is LimitKind.Tokens or LimitKind.Budget;
            needsMoney |= rule.Kind == LimitKind.Budget;
        }

        long prompt = 0;
        long maxOutput = 0;
        if (needsTokens)
        {
            prompt = TokenEstimator.EstimatePrompt(context.RequestBody.Content.Span, model);
            var asked = request.MaxCompletionTokens ?? request.MaxTokens ?? 0;
            maxOutput = asked > 0 ? asked : _config.DefaultMaxOutputTokens;
        }

        var price = needsMoney ? PriceOf(model) : null;
        if (needsMoney && price is null)
        {
            _metrics.Decision(GatewayError.ModelNotPriced.Code, degraded: false);
            return StageResult.Respond(ErrorResponses.Create(context, GatewayError.ModelNotPriced,
                "The model has no price configured, so its cost cannot be held against the budget."));
        }

        var estimatedCost = price is null ? 0 : MicroUsd(new TokenUsage(prompt, 0, 0, maxOutput, 0), price);
        var reservationId = Guid.NewGuid().ToString("N");
        var counters = CountersOf(rules, identity, model, prompt + maxOutput, estimatedCost, _time.GetUtcNow());
        var result = await _store.ReserveAsync(new AdmissionRequest(reservationId, counters, (long)Lease.TotalMilliseconds)).ConfigureAwait(false);
        if (result.StalePeriodNowMs != 0)
        {
            // This replica's clock put the request in another budget period than Redis' clock: name it from Redis' time.
            counters = CountersOf(rules, identity, model, prompt + maxOutput, estimatedCost, DateTimeOffset.FromUnixTimeMilliseconds(result.StalePeriodNowMs));
            result = await _store.ReserveAsync(new AdmissionRequest(reservationId, counters, (long)Lease.TotalMilliseconds)).ConfigureAwait(false);
        }

        var lease = new LimitLease(reservationId, counters, [.. rules], prompt, price, model);
        if (result.Admitted && needsTokens && request.Stream && context.Protocol == ProtocolKind.OpenAiChat
            && StreamUsageOption.ForceIncludeUsage(context.RequestBody.Content.Span) is { } rewritten)
        {
            // Settlement needs the stream's usage; the client will not see the chunk it did not ask for.
            context.RequestBody.Replace(rewritten);
            lease.StripUsageChunk = true;
        }

        return Decide(context, lease, result);
    }

    /// <summary>Admitted: the lease goes on the context; else the refusal in the caller's dialect.</summary>
    private StageResult Decide(ProcessingContext context, LimitLease lease, AdmissionResult result)
    {
        var rules = lease.Rules;
        SetRateLimitHeaders(context, lease, result);
        if (result.Admitted)
        {
            context.Limits = lease;
            _metrics.Decision("admitted", result.Degraded);
            return StageResult.Continue;
        }

        if (result.Unavailable)
        {
            _metrics.Decision(GatewayError.LimitsUnavailable.Code, degraded: true);
            return StageResult.Respond(ErrorResponses.RetryLater(context, GatewayError.LimitsUnavailable,
                "Limits cannot be checked right now; retry shortly.", TimeSpan.FromSeconds(1)));
        }

        var failed = rules[result.FailedIndex];
        var error = failed.Kind == LimitKind.Budget ? GatewayError.BudgetExhausted : GatewayError.RateLimited;
        _metrics.Decision(error.Code, result.Degraded);
        var message = failed.Kind == LimitKind.Budget
            ? $"The {Period(failed.Period)} budget of limit '{failed.Name}' is spent."
            : $"Limit '{failed.Name}' is reached.";
        var response = ErrorResponses.RetryLater(context, error, message, TimeSpan.FromMilliseconds(result.RetryAfterMs));
        foreach (var edit in context.ResponseMutations.Sets)
        {
            response.Headers.Add(new(edit.Name, System.Text.Encoding.ASCII.GetString(edit.Value.Span)));
        }

        return StageResult.Respond(response);
    }

    private LimitCounter[] CountersOf(List<LimitRuleConfig> rules, CallerIdentity identity, string? model, long tokens, long cost, DateTimeOffset now)
    {
        var counters = new LimitCounter[rules.Count];
        for (var i = 0; i < counters.Length; i++)
        {
            counters[i] = CounterOf(rules[i], identity, model, tokens, cost, now);
        }

        return counters;
    }

    private LimitCounter CounterOf(LimitRuleConfig rule, CallerIdentity identity, string? model, long tokens, long cost, DateTimeOffset now)
    {
        var tenant = identity.Tenant.Id;
        var key = rule.Scope switch
        {
            LimitScope.Key => LimitKeys.Counter(rule.Name, tenant, identity.KeyId ?? identity.Subject ?? string.Empty, null),
            LimitScope.Model => LimitKeys.Counter(rule.Name, null, null, model ?? string.Empty),
            LimitScope.TenantModel => LimitKeys.Counter(rule.Name, tenant, null, model ?? string.Empty),
            _ => LimitKeys.Counter(rule.Name, tenant, null, null),
        };
        var failClosed = rule.OnOutage == OutagePolicy.Closed;
        switch (rule.Kind)
        {
            case LimitKind.Requests:
                return new LimitCounter(key, CounterKind.Window, rule.Limit, (long)rule.Window.TotalMilliseconds, 1, failClosed);
            case LimitKind.Tokens:
                return new LimitCounter(key, CounterKind.Window, rule.Limit, (long)rule.Window.TotalMilliseconds, tokens, failClosed);
            case LimitKind.Concurrency:
                return new LimitCounter(key, CounterKind.Concurrency, rule.Limit, 0, 1, failClosed);
            default:
                var (id, start, end) = BudgetPeriodOf(rule.Period, now, _config.TimeZone);
                return new LimitCounter(key + ":" + id, CounterKind.Calendar, rule.Limit, Math.Max(1, (long)(end - now).TotalMilliseconds), cost, failClosed,
                    start.ToUnixTimeMilliseconds(), end.ToUnixTimeMilliseconds());
        }
    }

    /// <summary>The calendar period containing <paramref name="now"/> in <paramref name="zone"/>: its id, start and end (UTC).</summary>
    internal static (string Id, DateTimeOffset Start, DateTimeOffset End) BudgetPeriodOf(BudgetPeriod period, DateTimeOffset now, TimeZoneInfo zone)
    {
        var local = TimeZoneInfo.ConvertTime(now, zone).DateTime.Date;
        DateTime start;
        DateTime end;
        string id;
        switch (period)
        {
            case BudgetPeriod.Week:
                start = local.AddDays(-(((int)local.DayOfWeek + 6) % 7));
                end = start.AddDays(7);
                id = "w" + start.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
                break;
            case BudgetPeriod.Month:
                start = new DateTime(local.Year, local.Month, 1, 0, 0, 0, DateTimeKind.Unspecified);
                end = start.AddMonths(1);
                id = "m" + start.ToString("yyyy-MM", CultureInfo.InvariantCulture);
                break;
            default:
                start = local;
                end = start.AddDays(1);
                id = "d" + start.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
                break;
        }

        var startUtc = TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(start, DateTimeKind.Unspecified), zone);
        var endUtc = TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(end, DateTimeKind.Unspecified), zone);
        return (id, new DateTimeOffset(startUtc, TimeSpan.Zero), new DateTimeOffset(endUtc, TimeSpan.Zero));
    }

    private static void ReadEvents(LimitLease lease, BodyState body)
    {
        var events = lease.Events!;
        if (!events.Append(body.Content.Span))
        {
            // An event over the reader's cap: usage is no longer readable from this stream; the estimate
            // stands and the stream passes as it is from here on.
            lease.StripUsageChunk = false;
            return;
        }

        var output = lease.StripUsageChunk ? new System.Buffers.ArrayBufferWriter<byte>(body.Length + 16) : null;
        while (events.TryReadEvent(out var sseEvent))
        {
            var data = sseEvent.Data;
            if (!data.IsEmpty && !data.SequenceEqual("[DONE]"u8))
            {
                lease.Usage.ReadJson(data);
                lease.Generated += TokenEstimator.EstimateGenerated(data, lease.Model);
                if (output is not null && StreamUsageOption.IsUsageOnlyChunk(data))
                {
                    continue;
                }
            }

            if (output is not null)
            {
                StreamUsageOption.WriteEvent(output, sseEvent);
            }
        }

        if (output is not null)
        {
            // Complete events go on re-framed; a partial one waits in the reader for its next chunk.
            body.Replace(output.WrittenMemory);
        }
    }

    private ValueTask<StageResult> SettleFromBodyAsync(ProcessingContext context, LimitLease lease)
    {
        var reader = lease.Usage;
        var generated = lease.Generated;
        lease.Events?.Dispose();
        lease.Events = null;
        var body = lease.StreamedResponse ? default : context.ResponseBody.Content.Span;
        if (!lease.StreamedResponse)
        {
            reader.ReadJson(body);
        }

        var usage = reader.Found
            ? reader.Usage
            : new TokenUsage(lease.PromptEstimate, 0, 0, lease.StreamedResponse ? generated : TokenEstimator.EstimateGenerated(body, lease.Model), 0);
        if (reader.Found && usage.Output == 0 && generated > 0)
        {
            // A stream cut before its final usage: input came with message_start, output did not.
            usage = usage with { Output = generated };
        }

        return SettleAsync(context, lease, usage, released: false);
    }

    private async ValueTask<StageResult> SettleAsync(ProcessingContext context, LimitLease lease, TokenUsage usage, bool released)
    {
        lease.Settled = true;
        var cost = lease.Price is null ? 0 : MicroUsd(usage, lease.Price);
        var actual = new long[lease.Counters.Length];
        for (var i = 0; i < actual.Length; i++)
        {
            actual[i] = lease.Rules[i].Kind switch
            {
                LimitKind.Tokens => usage.Total,
                LimitKind.Budget => cost,
                _ => -1,
            };
        }

        if (!released)
        {
            context.Decision.SetUsage(usage, cost / 1_000_000m);
        }

        await _store.SettleAsync(lease.ReservationId, actual).ConfigureAwait(false);
        return StageResult.Continue;
    }

    private PriceConfig? PriceOf(string? model)
    {
        if (model is null)
        {
            return null;
        }

        foreach (var price in _config.Prices)
        {
            if (Glob.IsMatch(price.Model, model))
            {
                return price;
            }
        }

        return null;
    }

    /// <summary>Cost in micro-USD, rounded up: prices are USD per million tokens, so one token costs "price" micro-USD.</summary>
    internal static long MicroUsd(TokenUsage usage, PriceConfig price)
    {
        var uncached = Math.Max(0, usage.Input - usage.CachedInput - usage.CacheWrite);
        var visibleOutput = Math.Max(0, usage.Output - usage.Reasoning);
        var total = (uncached * price.Input) + (usage.CachedInput * price.CachedInput) + (usage.CacheWrite * price.CacheWrite)
            + (visibleOutput * price.Output) + (usage.Reasoning * price.Reasoning);
        return (long)Math.Ceiling(total);
    }

    /// <summary>OpenAI's x-ratelimit-* headers for the tightest request and token counters, on the response and on a 429.</summary>
    private static void SetRateLimitHeaders(ProcessingContext context, LimitLease lease, AdmissionResult result)
    {
        var requests = -1;
        var tokens = -1;
        for (var i = 0; i < lease.Counters.Length; i++)
        {
            var kind = lease.Rules[i].Kind;
            if (kind == LimitKind.Requests && (requests < 0 || Remaining(lease, result, i) < Remaining(lease, result, requests)))
            {
                requests = i;
            }
            else if (kind == LimitKind.Tokens && (tokens < 0 || Remaining(lease, result, i) < Remaining(lease, result, tokens)))
            {
                tokens = i;
            }
        }

        Write(context, lease, result, requests, "requests");
        Write(context, lease, result, tokens, "tokens");

        static void Write(ProcessingContext context, LimitLease lease, AdmissionResult result, int index, string what)
        {
            if (index < 0)
            {
                return;
            }

            var mutations = context.ResponseMutations;
            mutations.Set("x-ratelimit-limit-" + what, lease.Counters[index].Limit.ToString(CultureInfo.InvariantCulture));
            mutations.Set("x-ratelimit-remaining-" + what, Remaining(lease, result, index).ToString(CultureInfo.InvariantCulture));
            mutations.Set("x-ratelimit-reset-" + what, (Math.Max(1, result.ResetMs[index]) / 1000.0).ToString("0.###", CultureInfo.InvariantCulture) + "s");
        }
    }

    private static long Remaining(LimitLease lease, AdmissionResult result, int index) =>
        Math.Max(0, lease.Counters[index].Limit - result.Used[index]);

    private static string Period(BudgetPeriod period) => period switch
    {
        BudgetPeriod.Week => "weekly",
        BudgetPeriod.Month => "monthly",
        _ => "daily",
    };
}
