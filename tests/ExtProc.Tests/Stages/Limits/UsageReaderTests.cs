using ExtProc.Stages.Limits;
using ExtProc.Tenancy.Config;

namespace ExtProc.Tests.Stages.Limits;

/// <summary>Usage normalisation of providers.md §6.10, and the estimator and price arithmetic.</summary>
public sealed class UsageReaderTests
{
    [Theory]
    [InlineData("""{"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150,"prompt_tokens_details":{"cached_tokens":30},"completion_tokens_details":{"reasoning_tokens":20}}}""", 100, 30, 0, 50, 20)]
    [InlineData("""{"type":"message","usage":{"input_tokens":10,"cache_read_input_tokens":40,"cache_creation_input_tokens":5,"output_tokens":7}}""", 55, 40, 5, 7, 0)]
    [InlineData("""{"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":1}}}""", 12, 0, 0, 1, 0)]
    [InlineData("""{"candidates":[],"usageMetadata":{"promptTokenCount":80,"candidatesTokenCount":15,"thoughtsTokenCount":5,"cachedContentTokenCount":8,"totalTokenCount":100}}""", 80, 8, 0, 20, 5)]
    [InlineData("""{"choices":[{"delta":{"content":"x"}}],"usage":null}""", 0, 0, 0, 0, 0)]
    public void ReadJson_ProviderShapes_Normalised(string json, long input, long cached, long cacheWrite, long output, long reasoning)
    {
        var reader = default(UsageReader);
        Assert.True(reader.ReadJson(System.Text.Encoding.UTF8.GetBytes(json)));
        Assert.Equal(new TokenUsage(input, cached, cacheWrite, output, reasoning), reader.Usage);
    }

    [Fact]
    public void ReadJson_AnthropicStream_LastWordWins()
    {
        var reader = default(UsageReader);
        reader.ReadJson("""{"type":"message_start","message":{"usage":{"input_tokens":300,"cache_read_input_tokens":20,"output_tokens":1}}}"""u8);
        reader.ReadJson("""{"type":"message_delta","usage":{"output_tokens":5}}"""u8);
        Assert.Equal(new TokenUsage(320, 20, 0, 5, 0), reader.Usage);
    }

    [Fact]
    public void Estimate_TokenizerByFamily()
    {
        var body = """{"model":"m","messages":[{"role":"user","content":"The quick brown fox jumps over the lazy dog."}]}"""u8;
        Assert.Equal(TokenEstimator.Family.O200k, TokenEstimator.FamilyOf("gpt-4o-mini"));
        Assert.Equal(TokenEstimator.Family.O200k, TokenEstimator.FamilyOf("o3-mini"));
        Assert.Equal(TokenEstimator.Family.Cl100k, TokenEstimator.FamilyOf("gpt-4-turbo"));
        Assert.Equal(TokenEstimator.Family.Foreign, TokenEstimator.FamilyOf("claude-sonnet-4-5"));
        var o200k = TokenEstimator.EstimatePrompt(body, "gpt-4o");
        var foreign = TokenEstimator.EstimatePrompt(body, "claude-x");
        Assert.InRange(o200k, 10, 16);
        Assert.Equal((long)Math.Ceiling(o200k * TokenEstimator.ForeignFamilyRatio), foreign);
        Assert.Equal(4, TokenEstimator.EstimatePrompt("not json!!!!"u8, "gpt-4o"));
    }

    [Fact]
    public void MicroUsd_PricesEachClass()
    {
        var price = new PriceConfig("*", Input: 2m, CachedInput: 1m, CacheWrite: 3m, Output: 10m, Reasoning: 20m);

        // 100 input of which 30 cached and 10 cache-write; 50 output of which 20 reasoning.
        var cost = LimitsStage.MicroUsd(new TokenUsage(100, 30, 10, 50, 20), price);

        Assert.Equal((60 * 2) + (30 * 1) + (10 * 3) + (30 * 10) + (20 * 20), cost);
    }

    [Fact]
    public void BudgetPeriod_CalendarInTimeZone()
    {
        var paris = TimeZoneInfo.FindSystemTimeZoneById("Europe/Paris");
        var (day, dayStart, dayEnd) = LimitsStage.BudgetPeriodOf(BudgetPeriod.Day, DateTimeOffset.Parse("2026-11-24T23:30:00Z"), paris);
        Assert.Equal("d2026-11-25", day);
        Assert.Equal(DateTimeOffset.Parse("2026-11-24T23:00:00Z"), dayStart);
        Assert.Equal(DateTimeOffset.Parse("2026-11-25T23:00:00Z"), dayEnd);
        var (week, _, _) = LimitsStage.BudgetPeriodOf(BudgetPeriod.Week, DateTimeOffset.Parse("2026-11-29T12:00:00Z"), TimeZoneInfo.Utc);
        Assert.Equal("w2026-11-23", week);
        var (month, _, monthEnd) = LimitsStage.BudgetPeriodOf(BudgetPeriod.Month, DateTimeOffset.Parse("2026-11-24T12:00:00Z"), TimeZoneInfo.Utc);
        Assert.Equal("m2026-11", month);
        Assert.Equal(DateTimeOffset.Parse("2026-12-01T00:00:00Z"), monthEnd);
    }

    [Theory]
    [InlineData("""{"model":"m","stream":true}""", """{"stream_options":{"include_usage":true},"model":"m","stream":true}""")]
    [InlineData("""{"model":"m","stream_options":{"include_obfuscation":false,"include_usage":false},"stream":true}""", """{"model":"m","stream_options":{"include_usage":true,"include_obfuscation":false},"stream":true}""")]
    [InlineData("""{"model":"m","stream_options":null}""", """{"model":"m","stream_options":{"include_usage":true}}""")]
    [InlineData("""{"model":"m","stream_options":{"include_usage":true}}""", null)]
    public void ForceIncludeUsage_RewritesOnlyWhenNotAsked(string body, string? expected)
    {
        var result = StreamUsageOption.ForceIncludeUsage(System.Text.Encoding.UTF8.GetBytes(body));
        Assert.Equal(expected, result is null ? null : System.Text.Encoding.UTF8.GetString(result));
    }
}
