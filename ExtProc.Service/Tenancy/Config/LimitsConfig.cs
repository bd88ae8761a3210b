namespace ExtProc.Tenancy.Config;

/// <summary>What a limit counts.</summary>
internal enum LimitKind
{
    /// <summary>Admitted requests per fixed window.</summary>
    Requests,

    /// <summary>Input + output tokens per minute, hour or day: reserved at admission, settled with usage.</summary>
    Tokens,

    /// <summary>Requests in flight at once.</summary>
    Concurrency,

    /// <summary>Money per calendar day, week or month (price table), reserved then settled.</summary>
    Budget,
}

/// <summary>Which part of the caller a limit's counter is kept for.</summary>
internal enum LimitScope
{
    Tenant,
    Key,
    Model,
    TenantModel,
}

/// <summary>Calendar periods of money budgets, in the configured time zone.</summary>
internal enum BudgetPeriod
{
    Day,
    Week,
    Month,
}

/// <summary>What a limit does while the shared store (Redis) does not answer within its budget.</summary>
internal enum OutagePolicy
{
    /// <summary>A local limiter at limit / replicas decides.</summary>
    Open,

    /// <summary>Refuse with 503 <c>limits_unavailable</c>.</summary>
    Closed,
}

/// <summary>The <c>limits:</c> section: named rules, the price table and the shared store.</summary>
internal sealed record LimitsConfig(
    IReadOnlyList<LimitRuleConfig> Rules,
    IReadOnlyList<PriceConfig> Prices,
    TimeZoneInfo TimeZone,
    int DefaultMaxOutputTokens,
    RedisLimitsConfig? Redis)
{
    public static readonly LimitsConfig None = new([], [], TimeZoneInfo.Utc, 4096, null);
}

/// <summary>
/// One limit. It applies to a request when a tenant policy or key scope names it in <c>limits</c>, or to
/// every request when <see cref="Global"/>; <see cref="Models"/> narrows it to some models.
/// </summary>
internal sealed record LimitRuleConfig(
    string Name,
    LimitKind Kind,
    LimitScope Scope,
    long Limit,
    TimeSpan Window,
    BudgetPeriod Period,
    IReadOnlyList<string>? Models,
    bool Global,
    OutagePolicy OnOutage)
{
    /// <summary>
    /// MCP tool globs: the rule counts <c>tools/call</c> requests of matching tools, one counter per tool (and per
    /// tenant or key); without it the rule counts LLM requests only.
    /// </summary>
    public IReadOnlyList<string>? Tools { get; init; }
}

/// <summary>USD per million tokens of each class, for models matching <see cref="Model"/> (glob, first match wins).</summary>
internal sealed record PriceConfig(
    string Model,
    decimal Input,
    decimal CachedInput,
    decimal CacheWrite,
    decimal Output,
    decimal Reasoning);

/// <summary>
/// The shared limit store: one Redis, a hard budget per call, how many replicas share it, and how often an
/// unanswering Redis is probed.
/// </summary>
internal sealed record RedisLimitsConfig(
    string Endpoint,
    TimeSpan CallBudget,
    int Replicas,
    int SettlementBuffer)
{
    public TimeSpan ProbeInterval { get; init; } = Storage.Redis.RedisGate.DefaultProbeInterval;
}
