using ExtProc.Tenancy.Config;

namespace ExtProc.Tests.Tenancy;

public sealed class CacheConfigParserTests
{
    private static (TenancyConfig? Config, IReadOnlyList<string> Errors) Parse(string cache)
    {
        var errors = new ConfigErrors();
        var config = TenancyConfigParser.Parse($$"""
            version: 1
            tenants:
              acme: {}
              beta: {}
            {{cache}}
            """, errors);
        return (config, errors.All);
    }

    [Fact]
    public void Parse_NoSection_CacheIsOff()
    {
        var (config, errors) = Parse("");
        Assert.Empty(errors);
        Assert.False(config!.Cache.AnyEnabled);
        Assert.False(config.Cache.For("acme").Enabled);
    }

    [Fact]
    public void Parse_DefaultsAndOverrides_OverrideFieldByField()
    {
        var (config, errors) = Parse("""
            cache:
              ttl: 10m
              models: ["gpt-4o*"]
              max_entry_bytes: 65536
              memory_bytes: 1048576
              redis: { endpoint: "127.0.0.1:6379", call_budget: 40ms }
              tenants:
                acme: { enabled: true }
                beta: { enabled: true, sampled: true, ttl: 30s, models: ["claude-*"] }
            """);

        Assert.Empty(errors);
        var cache = config!.Cache;
        Assert.True(cache.AnyEnabled);
        Assert.False(cache.Defaults.Enabled);
        Assert.True(cache.For("acme").Enabled);
        Assert.Equal(TimeSpan.FromMinutes(10), cache.For("acme").Ttl);
        Assert.False(cache.For("acme").Sampled);
        Assert.Equal(["gpt-4o*"], cache.For("acme").Models);
        Assert.Equal(TimeSpan.FromSeconds(30), cache.For("beta").Ttl);
        Assert.True(cache.For("beta").Sampled);
        Assert.Equal(["claude-*"], cache.For("beta").Models);
        Assert.False(cache.For("public").Enabled);
        Assert.Equal(65536, cache.MaxEntryBytes);
        Assert.Equal(1048576, cache.MemoryBytes);
        Assert.Equal(new RedisCacheConfig("127.0.0.1:6379", TimeSpan.FromMilliseconds(40), "extproc:cache:"), cache.Redis);
    }

    [Theory]
    [InlineData("cache:\n  enabled: yes", "cache.enabled: must be true or false")]
    [InlineData("cache:\n  tenants:\n    ghost: { enabled: true }", "tenant 'ghost' is not defined")]
    [InlineData("cache:\n  ttl: 0s", "cache.ttl: must be a duration")]
    [InlineData("cache:\n  max_entry_bytes: 10", "cache.max_entry_bytes: must be an integer")]
    [InlineData("cache:\n  redis: { call_budget: 40ms }", "cache.redis.endpoint: is required")]
    [InlineData("cache:\n  tenants:\n    acme: { enabled: true, stream: true }", "cache.tenants.acme.stream: unknown key")]
    [InlineData("cache:\n  size: 3", "cache.size: unknown key")]
    public void Parse_BadSection_ReportsWhere(string cache, string expected)
    {
        var (config, errors) = Parse(cache);
        Assert.Null(config);
        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }
}
