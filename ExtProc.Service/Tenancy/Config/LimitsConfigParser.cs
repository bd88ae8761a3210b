using System.Globalization;

namespace ExtProc.Tenancy.Config;

/// <summary>
/// Reads the <c>limits:</c> section: <c>rules</c> (named limits), <c>prices</c> (USD per million tokens by
/// model glob), <c>time_zone</c> of budget periods, <c>default_max_output_tokens</c>, and <c>redis</c> (the
/// shared store). Every limit a tenant or key names must exist. Cold path.
/// </summary>
internal static class LimitsConfigParser
{
    public static LimitsConfig Read(MapReader? node, ConfigErrors errors, IReadOnlyList<TenantConfig> tenants)
    {
        if (node is null)
        {
            // Nothing is limited and limit names stay unchecked, so configs written before limits existed load.
            return LimitsConfig.None;
        }

        var rules = new List<LimitRuleConfig>();
        var prices = new List<PriceConfig>();
        var timeZone = TimeZoneInfo.Utc;
        var defaultMaxOutput = LimitsConfig.None.DefaultMaxOutputTokens;
        if (node.String("time_zone") is { } zone)
        {
            if (!TimeZoneInfo.TryFindSystemTimeZoneById(zone, out var found))
            {
                errors.Add(node.PathOf("time_zone"), node.Node, $"'{zone}' is not a known time zone (IANA id, e.g. Europe/Paris)");
            }
            else
            {
                timeZone = found;
            }
        }

        defaultMaxOutput = node.Int("default_max_output_tokens", 1, 10_000_000) ?? defaultMaxOutput;
        ReadRules(node, errors, rules);
        ReadPrices(node, errors, prices);
        var redis = ReadRedis(node.Map("redis"), errors);
        node.Finish();

        CheckReferences(tenants, rules, errors);
        return new LimitsConfig(rules, prices, timeZone, defaultMaxOutput, redis);
    }

    private static void ReadRules(MapReader node, ConfigErrors errors, List<LimitRuleConfig> rules)
    {
        var sequence = node.Sequence("rules");
        if (sequence is null)
        {
            return;
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var path = string.Create(CultureInfo.InvariantCulture, $"{node.PathOf("rules")}[{i}]");
            var rule = MapReader.Open(errors, path, sequence.Children[i]);
            if (rule is null)
            {
                errors.Add(path, sequence.Children[i], "must be a mapping");
                continue;
            }

            var name = rule.String("name", required: true);
            if (name is not null && !TenancyConfigParser.IsValidTenantId(name))
            {
                errors.Add(rule.PathOf("name"), rule.Node, "must be a name of a-z, 0-9, '-', '_' and '.'");
            }
            else if (name is not null && !names.Add(name))
            {
                errors.Add(rule.PathOf("name"), rule.Node, $"limit '{name}' is defined more than once");
            }

            var kind = Enum(rule, "kind", errors, required: true, ("requests", LimitKind.Requests), ("tokens", LimitKind.Tokens),
                ("concurrency", LimitKind.Concurrency), ("budget", LimitKind.Budget));
            var scope = Enum(rule, "per", errors, required: false, ("tenant", LimitScope.Tenant), ("key", LimitScope.Key),
                ("model", LimitScope.Model), ("tenant_model", LimitScope.TenantModel)) ?? LimitScope.Tenant;
            var outage = Enum(rule, "on_outage", errors, required: false, ("open", OutagePolicy.Open), ("closed", OutagePolicy.Closed));
            long limit = 0;
            var window = TimeSpan.Zero;
            var period = BudgetPeriod.Day;
            switch (kind)
            {
                case LimitKind.Requests:
                    limit = Long(rule, "limit", errors);
                    window = rule.Duration("window", TimeSpan.FromSeconds(1), TimeSpan.FromDays(1)) ?? Required(rule, "window", errors);
                    break;
                case LimitKind.Tokens:
                    limit = Long(rule, "limit", errors);
                    window = Enum(rule, "window", errors, required: true, ("minute", TimeSpan.FromMinutes(1)), ("hour", TimeSpan.FromHours(1)),
                        ("day", TimeSpan.FromDays(1))) ?? TimeSpan.Zero;
                    break;
                case LimitKind.Concurrency:
                    limit = Long(rule, "limit", errors);
                    break;
                case LimitKind.Budget:
                    limit = Usd(rule, "usd", errors, required: true) is { } usd ? (long)(usd * 1_000_000m) : 0;
                    period = Enum(rule, "period", errors, required: true, ("day", BudgetPeriod.Day), ("week", BudgetPeriod.Week),
                        ("month", BudgetPeriod.Month)) ?? BudgetPeriod.Day;
                    break;
            }

            var models = rule.StringList("models");
            var tools = rule.StringList("tools");
            var global = rule.Bool("global") ?? false;
            if (tools is not null && (kind is LimitKind.Tokens or LimitKind.Budget || models is not null || scope is LimitScope.Model or LimitScope.TenantModel))
            {
                errors.Add(rule.PathOf("tools"), rule.Node, "tool limits count requests or concurrency per tenant or key; they take no models, tokens or budgets");
            }

            rule.Finish();
            if (name is not null && kind is { } k)
            {
                // Budgets fail closed unless told otherwise: money spent during an outage cannot be taken back.
                var policy = outage ?? (k == LimitKind.Budget ? OutagePolicy.Closed : OutagePolicy.Open);
                rules.Add(new LimitRuleConfig(name, k, scope, limit, window, period, models, global, policy) { Tools = tools });
            }
        }
    }

    private static void ReadPrices(MapReader node, ConfigErrors errors, List<PriceConfig> prices)
    {
        var map = node.Map("prices");
        if (map is null)
        {
            return;
        }

        foreach (var (model, value) in map.Entries)
        {
            var entry = MapReader.Open(errors, map.PathOf(model), value);
            if (entry is null)
            {
                errors.Add(map.PathOf(model), value, "must be a mapping of input, cached_input, cache_write, output, reasoning");
                continue;
            }

            var input = Usd(entry, "input", errors, required: true) ?? 0;
            var output = Usd(entry, "output", errors, required: true) ?? 0;

            // Unlisted classes cost what their base class costs: cached and cache-write input as input,
            // reasoning as output (providers bill reasoning as output tokens).
            var cached = Usd(entry, "cached_input", errors, required: false) ?? input;
            var cacheWrite = Usd(entry, "cache_write", errors, required: false) ?? input;
            var reasoning = Usd(entry, "reasoning", errors, required: false) ?? output;
            entry.Finish();
            prices.Add(new PriceConfig(model, input, cached, cacheWrite, output, reasoning));
        }
    }

    private static RedisLimitsConfig? ReadRedis(MapReader? node, ConfigErrors errors)
    {
        if (node is null)
        {
            return null;
        }

        var endpoint = node.String("endpoint", required: true);
        var budget = node.Duration("call_budget", TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(5)) ?? TimeSpan.FromMilliseconds(50);
        var replicas = node.Int("replicas", 1, 10_000) ?? 1;
        var buffer = node.Int("settlement_buffer", 0, 1_000_000) ?? 10_000;
        var probe = node.Duration("probe_interval", TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(60));
        node.Finish();
        if (endpoint is null)
        {
            return null;
        }

        var config = new RedisLimitsConfig(endpoint, budget, replicas, buffer);
        return probe is { } interval ? config with { ProbeInterval = interval } : config;
    }

    private static void CheckReferences(IReadOnlyList<TenantConfig> tenants, List<LimitRuleConfig> rules, ConfigErrors errors)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var rule in rules)
        {
            names.Add(rule.Name);
        }

        foreach (var tenant in tenants)
        {
            Check(tenant.Policy.Limits, $"tenants.{tenant.Id}.policy.limits");
            foreach (var key in tenant.Keys)
            {
                Check(key.Scope.Limits, $"tenants.{tenant.Id}.keys.{key.Id}.scope.limits");
            }
        }

        void Check(IReadOnlyList<string>? list, string path)
        {
            foreach (var name in list ?? [])
            {
                if (!names.Contains(name))
                {
                    errors.Add(path, $"limit '{name}' is not defined in limits.rules");
                }
            }
        }
    }

    private static T? Enum<T>(MapReader map, string name, ConfigErrors errors, bool required, params (string Text, T Value)[] choices)
        where T : struct
    {
        var text = map.String(name, required);
        if (text is null)
        {
            return null;
        }

        foreach (var (choice, value) in choices)
        {
            if (string.Equals(choice, text, StringComparison.Ordinal))
            {
                return value;
            }
        }

        var allowed = new List<string>();
        foreach (var choice in choices)
        {
            allowed.Add(choice.Text);
        }

        errors.Add(map.PathOf(name), map.Node, $"must be one of {string.Join(", ", allowed)}");
        return null;
    }

    private static long Long(MapReader map, string name, ConfigErrors errors)
    {
        var text = map.String(name, required: true);
        if (text is null)
        {
            return 0;
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value is >= 1 and <= 1_000_000_000_000)
        {
            return value;
        }

        errors.Add(map.PathOf(name), map.Node, "must be an integer from 1 to 1000000000000");
        return 0;
    }

    private static decimal? Usd(MapReader map, string name, ConfigErrors errors, bool required)
    {
        var text = map.String(name, required);
        if (text is null)
        {
            return null;
        }

        if (decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) && value <= 1_000_000_000m)
        {
            return value;
        }

        errors.Add(map.PathOf(name), map.Node, "must be a non-negative decimal amount of USD");
        return null;
    }

    private static TimeSpan Required(MapReader map, string name, ConfigErrors errors)
    {
        if (!map.Has(name))
        {
            errors.Add(map.PathOf(name), map.Node, "is required");
        }

        return TimeSpan.Zero;
    }
}
