using ExtProc.Tenancy.Config;

namespace ExtProc.Tests.Tenancy;

public sealed class LimitsConfigParserTests
{
    private static (TenancyConfig? Config, IReadOnlyList<string> Errors) Parse(string limits, string tenantLimits = "[rpm]") =>
        ParseText($$"""
            version: 1
            tenants:
              acme:
                policy:
                  limits: {{tenantLimits}}
            limits:
            {{limits}}
            """);

    private static (TenancyConfig? Config, IReadOnlyList<string> Errors) ParseText(string text)
    {
        var errors = new ConfigErrors();
        var config = TenancyConfigParser.Parse(text, errors);
        return (config, errors.All);
    }

    [Fact]
    public void Parse_FullSection_ReadsEveryKindPriceAndStore()
    {
        var (config, errors) = Parse("""
              time_zone: Europe/Paris
              default_max_output_tokens: 2048
              prices:
                "gpt-4o*": { input: "2.5", cached_input: "1.25", output: "10" }
              redis: { endpoint: "127.0.0.1:6379", call_budget: 40ms, replicas: 3, settlement_buffer: 50, probe_interval: 100ms }
              rules:
                - { name: rpm, kind: requests, limit: "100", window: 1m }
                - { name: tpm, kind: tokens, limit: "1000", window: hour, per: key }
                - { name: inflight, kind: concurrency, limit: "5", per: tenant_model }
                - { name: monthly, kind: budget, usd: "500.50", period: month }
                - { name: cap, kind: tokens, limit: "9", window: day, per: model, global: true, models: ["gpt-4o"], on_outage: closed }
            """);

        Assert.Empty(errors);
        var limits = config!.Limits;
        Assert.Equal("Europe/Paris", limits.TimeZone.Id);
        Assert.Equal(2048, limits.DefaultMaxOutputTokens);
        Assert.Equal(new PriceConfig("gpt-4o*", 2.5m, 1.25m, 2.5m, 10m, 10m), limits.Prices[0]);
        Assert.Equal(new RedisLimitsConfig("127.0.0.1:6379", TimeSpan.FromMilliseconds(40), 3, 50) { ProbeInterval = TimeSpan.FromMilliseconds(100) }, limits.Redis);
        Assert.Equal([LimitKind.Requests, LimitKind.Tokens, LimitKind.Concurrency, LimitKind.Budget, LimitKind.Tokens], limits.Rules.Select(r => r.Kind));
        Assert.Equal(TimeSpan.FromHours(1), limits.Rules[1].Window);
        Assert.Equal(LimitScope.Key, limits.Rules[1].Scope);
        Assert.Equal(500_500_000, limits.Rules[3].Limit);
        Assert.Equal(OutagePolicy.Closed, limits.Rules[3].OnOutage);
        Assert.Equal(OutagePolicy.Open, limits.Rules[0].OnOutage);
        Assert.True(limits.Rules[4].Global);
        Assert.Equal(OutagePolicy.Closed, limits.Rules[4].OnOutage);
    }

    [Theory]
    [InlineData("rules:\n    - { name: rpm, kind: requests, limit: \"1\", window: 1m, burst: 3 }", "limits.rules[0].burst: unknown key")]
    [InlineData("rules:\n    - { name: t, kind: tokens, limit: \"1\", window: minute, tools: [echo] }", "limits.rules[0].tools: tool limits count requests or concurrency")]
    [InlineData("rules:\n    - { name: t, kind: requests, limit: \"1\", window: 1m, per: model, tools: [echo] }", "limits.rules[0].tools: tool limits count requests or concurrency")]
    [InlineData("rules:\n    - { name: rpm, kind: request, limit: \"1\", window: 1m }", "must be one of requests, tokens, concurrency, budget")]
    [InlineData("rules:\n    - { name: rpm, kind: tokens, limit: \"1\", window: 2m }", "must be one of minute, hour, day")]
    [InlineData("rules:\n    - { name: rpm, kind: requests, limit: \"-1\", window: 1m }", "must be an integer from 1")]
    [InlineData("rules:\n    - { name: rpm, kind: requests, window: 1m }", "limits.rules[0].limit")]
    [InlineData("rules:\n    - { name: rpm, kind: budget, usd: \"abc\", period: day }", "non-negative decimal")]
    [InlineData("rules:\n    - { name: rpm, kind: requests, limit: \"1\", window: 1m }\n    - { name: rpm, kind: requests, limit: \"1\", window: 1m }", "defined more than once")]
    [InlineData("time_zone: Mars/Olympus\n  rules:\n    - { name: rpm, kind: concurrency, limit: \"1\" }", "not a known time zone")]
    [InlineData("prices:\n    gpt: { input: \"1\" }\n  rules:\n    - { name: rpm, kind: concurrency, limit: \"1\" }", "limits.prices.gpt.output")]
    [InlineData("rules:\n    - { name: other, kind: concurrency, limit: \"1\" }", "limit 'rpm' is not defined")]
    public void Parse_BadSection_ReportsTheError(string section, string expected)
    {
        var (config, errors) = Parse("  " + section);

        Assert.Null(config);
        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_NoSection_NothingLimitedAndNamesUnchecked()
    {
        var (config, errors) = ParseText(TestTenancy.BaseYaml());

        Assert.Empty(errors);
        Assert.Same(LimitsConfig.None, config!.Limits);
    }
}
