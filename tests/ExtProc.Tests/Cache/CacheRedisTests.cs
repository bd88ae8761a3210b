using System.ClientModel;
using System.Diagnostics;
using System.Globalization;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Storage;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Hosting;
using ExtProc.Tests.Infrastructure;
using OpenAI.Chat;
using StackExchange.Redis;
using Xunit.Abstractions;
using static ExtProc.Tests.Cache.CacheDataPlaneTests;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Cache;

/// <summary>
/// The Redis level 2 with a real redis-server: shared by two ExtProc processes, bypassed without errors when Redis is
/// killed or frozen (C5), bad entries never served (C6), and hits cost nothing in the shared limit store either.
/// </summary>
public sealed class CacheRedisTests : IAsyncLifetime
{
    private const string Prefix = "extproc:cache:";
    private static readonly string AcmeKey = ApiKeyFormat.NewKey("acme-main");
    private static readonly string BetaKey = ApiKeyFormat.NewKey("beta-main");
    private readonly ITestOutputHelper _output;
    private readonly List<IAsyncDisposable> _owned = [];
    private RedisServer _redis = null!;
    private LoopbackUpstream _upstream = null!;
    private int _answers;

    public CacheRedisTests(ITestOutputHelper output) => _output = output;

    /// <summary>The cache's Redis budget: 50 ms where the test is about Redis failing, generous where it is about sharing (a loaded CI box).</summary>
    private string _cacheBudget = "50ms";

    private string Yaml => $$"""
        version: 1
        tenants:
          acme:
            policy:
              limits: [tph, spend]
            keys:
              - id: acme-main
                hash: "{{ApiKeyFormat.HashText(AcmeKey)}}"
          beta:
            keys:
              - id: beta-main
                hash: "{{ApiKeyFormat.HashText(BetaKey)}}"
        limits:
          redis: { endpoint: "{{_redis.Endpoint}}", call_budget: 2s }
          prices:
            "gpt-4o-mini": { input: "0", output: "1000" }
          rules:
            - { name: tph, kind: tokens, limit: "100000000", window: hour }
            - { name: spend, kind: budget, usd: "100", period: day }
        cache:
          enabled: true
          ttl: 5m
          redis: { endpoint: "{{_redis.Endpoint}}", call_budget: {{_cacheBudget}} }
        """;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        _upstream = await LoopbackUpstream.StartAsync(_ =>
        {
            var n = Interlocked.Increment(ref _answers);
            return LoopbackResponse.Json($$$"""{"id":"c{{{n}}}","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"answer {{{n}}}","refusal":null},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}""");
        });
    }

    public async Task DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        await _upstream.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private async Task<(ExtProcServer Server, DataPlane Plane)> ReplicaAsync()
    {
        var extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: Yaml);
        _owned.Add(extProc);
        var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["default"] = _upstream.BaseUri },
            DefaultCluster = "default",
        });
        _owned.Add(plane);
        return (extProc, plane);
    }

    [Fact]
    public async Task TwoProcesses_OneRedis_SecondProcessServedFromLevel2()
    {
        _cacheBudget = "2s";
        var (first, one) = await ReplicaAsync();
        var (second, two) = await ReplicaAsync();
        await WaitForClientsAsync(4);

        ChatCompletion stored = await OpenAi(one, AcmeKey).CompleteChatAsync([new UserChatMessage("Shared question")], Deterministic());
        ChatCompletion shared = await OpenAi(two, AcmeKey).CompleteChatAsync([new UserChatMessage("Shared question")], Deterministic());
        ChatCompletion otherTenant = await OpenAi(two, BetaKey).CompleteChatAsync([new UserChatMessage("Shared question")], Deterministic());

        var keys = await KeysAsync();
        _output.WriteLine($"L2: 2 ExtProc processes, 1 Redis: provider calls {_upstream.Received.Count} for 3 calls (2 tenants); Redis entries {keys.Count}");
        Assert.Equal(stored.Id, shared.Id);
        Assert.NotEqual(stored.Id, otherTenant.Id);
        Assert.Equal(2, _upstream.Received.Count);
        Assert.Equal(2, keys.Count);
        Assert.Contains(keys, k => k.StartsWith(Prefix + "acme:", StringComparison.Ordinal));
        Assert.Contains(keys, k => k.StartsWith(Prefix + "beta:", StringComparison.Ordinal));
        Assert.Empty(UnexpectedErrors(first));
        Assert.Empty(UnexpectedErrors(second));
    }

    [Fact]
    public async Task RedisKilledOrFrozen_RequestsBypassWithoutErrors()
    {
        // C5: every request still answers 200 (misses go to the provider, level 1 still hits); nothing waits on Redis
        // beyond its 50 ms budget. Latencies are printed, not asserted (timings belong to benchmarks).
        var (server, plane) = await ReplicaAsync();
        var client = OpenAi(plane, BetaKey);
        await client.CompleteChatAsync([new UserChatMessage("Warm")], Deterministic());
        await client.CompleteChatAsync([new UserChatMessage("Warm")], Deterministic());

        var healthy = await MissesAsync(client, "up");
        _redis.Kill();
        var killed = await MissesAsync(client, "killed");
        ChatCompletion warmAfterKill = await client.CompleteChatAsync([new UserChatMessage("Warm")], Deterministic());
        await _redis.RestartAsync();

        // Freeze a connected Redis, not a reconnecting one: wait until level 2 takes writes again.
        var entries = (await KeysAsync()).Count;
        var deadline = Stopwatch.StartNew();
        for (var i = 0; (await KeysAsync()).Count == entries && deadline.Elapsed < TimeSpan.FromSeconds(20); i++)
        {
            await client.CompleteChatAsync([new UserChatMessage("Reconnect " + i)], Deterministic());
            await Task.Delay(100);
        }

        Assert.True((await KeysAsync()).Count > entries, "ExtProc did not reconnect to Redis");
        _redis.Pause();
        List<double> frozen;
        try
        {
            frozen = await MissesAsync(client, "frozen");
        }
        finally
        {
            _redis.Resume();
        }

        _output.WriteLine($"C5: 20 misses each, ms p50/p99: Redis up {P(healthy, 0.5):0.0}/{P(healthy, 0.99):0.0}, killed {P(killed, 0.5):0.0}/{P(killed, 0.99):0.0}, SIGSTOPped {P(frozen, 0.5):0.0}/{P(frozen, 0.99):0.0}; "
            + $"added p99 killed {P(killed, 0.99) - P(healthy, 0.99):0.0}, frozen {P(frozen, 0.99) - P(healthy, 0.99):0.0} (budget 50 ms per Redis call; after a failure level 2 is skipped for 1 s); errors 0");
        Assert.Equal("answer 1", warmAfterKill.Content[0].Text);
        Assert.Empty(UnexpectedErrors(server));
    }

    private async Task<List<double>> MissesAsync(ChatClient client, string phase)
    {
        var times = new List<double>();
        for (var i = 0; i < 20; i++)
        {
            var watch = Stopwatch.StartNew();
            var result = await client.CompleteChatAsync([new UserChatMessage($"{phase} {i}")], Deterministic());
            times.Add(watch.Elapsed.TotalMilliseconds);
            Assert.Equal(200, result.GetRawResponse().Status);
        }

        return times;
    }

    private static double P(List<double> values, double quantile)
    {
        var sorted = values.Order().ToList();
        return sorted[(int)Math.Ceiling(sorted.Count * quantile) - 1];
    }

    [Fact]
    public async Task CorruptOrForeignEntryInRedis_NeverServed()
    {
        // C6 at level 2: entries overwritten in Redis (garbage, truncation, another tenant's entry) are misses for a
        // process that must read them from Redis; the provider answers again.
        _cacheBudget = "2s";
        var (_, one) = await ReplicaAsync();
        await OpenAi(one, AcmeKey).CompleteChatAsync([new UserChatMessage("Target")], Deterministic());
        await OpenAi(one, BetaKey).CompleteChatAsync([new UserChatMessage("Target")], Deterministic());
        var keys = await KeysAsync();
        var acme = keys.Single(k => k.StartsWith(Prefix + "acme:", StringComparison.Ordinal));
        var beta = keys.Single(k => k.StartsWith(Prefix + "beta:", StringComparison.Ordinal));
        using var redis = await ConnectionMultiplexer.ConnectAsync(_redis.Endpoint);
        var db = redis.GetDatabase();
        var betaEntry = await ReadAsync(db, beta);
        var original = await ReadAsync(db, acme);

        var served = 0;
        var cases = new (string Name, byte[] Value)[]
        {
            ("garbage", "not an entry at all"u8.ToArray()),
            ("truncated", original[..(original.Length / 2)]),
            ("bit flip", Flip(original, original.Length - 20)),
            ("other tenant's entry", betaEntry),
        };
        foreach (var (name, value) in cases)
        {
            await WriteAsync(db, acme, value);
            var (freshServer, fresh) = await ReplicaAsync();

            // Two connections (limits, cache) per replica; server and plane are two owned items per replica.
            await WaitForClientsAsync(_owned.Count);
            var before = _upstream.Received.Count;
            ChatCompletion answer = await OpenAi(fresh, AcmeKey).CompleteChatAsync([new UserChatMessage("Target")], Deterministic());
            var reachedProvider = _upstream.Received.Count == before + 1;
            served += reachedProvider ? 0 : 1;
            var events = freshServer.Logs.GetSnapshot().Count(r => r.Id.Name == "CacheEntryRejected");
            _output.WriteLine($"C6 ({name}): reached the provider {reachedProvider}, answer '{answer.Content[0].Text}', security events {events} (0: HybridCache refused the payload before our check)");
        }

        _output.WriteLine($"C6: corrupt or foreign responses served {served} of {cases.Length}");
        Assert.Equal(0, served);
    }

    [Fact]
    public async Task Hits_WithTheRedisLimitStore_LeaveTokenAndMoneyCountersUnchanged()
    {
        var (server, plane) = await ReplicaAsync();
        var client = OpenAi(plane, AcmeKey);
        await client.CompleteChatAsync([new UserChatMessage("Counted once")], Deterministic());
        var tokens = await CounterAsync("tph");
        var money = await CounterAsync("spend");
        for (var i = 0; i < 5; i++)
        {
            await client.CompleteChatAsync([new UserChatMessage("Counted once")], Deterministic());
        }

        var tokensAfter = await CounterAsync("tph");
        var moneyAfter = await CounterAsync("spend");
        _output.WriteLine($"Limits (Redis store): after the miss tokens {tokens}, money {money} µUSD; after 5 hits tokens {tokensAfter}, money {moneyAfter} µUSD; provider calls {_upstream.Received.Count}");
        Assert.Single(_upstream.Received);
        Assert.Equal(15, tokens);
        Assert.Equal(5000, money);
        Assert.Equal(tokens, tokensAfter);
        Assert.Equal(money, moneyAfter);
        Assert.Empty(UnexpectedErrors(server));
    }

    /// <summary>Waits until the ExtProc processes' connections (limits and cache, one each per process) are up.</summary>
    private async Task WaitForClientsAsync(int expected)
    {
        using var admin = await ConnectionMultiplexer.ConnectAsync(_redis.Endpoint + ",allowAdmin=true");
        var server = admin.GetServer(_redis.Endpoint);
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            if ((await server.ClientListAsync()).Count(c => c.Name == "extproc") >= expected)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail("the ExtProc processes did not connect to Redis");
    }

    private async Task<long> CounterAsync(string rule)
    {
        using var admin = await ConnectionMultiplexer.ConnectAsync(_redis.Endpoint);
        var server = admin.GetServer(_redis.Endpoint);
        long sum = 0;
        await foreach (var key in server.KeysAsync(pattern: LimitKeys.CounterPrefix + rule + ":*"))
        {
            if (await admin.GetDatabase().KeyTypeAsync(key) == RedisType.String)
            {
                sum += long.Parse((string)(await admin.GetDatabase().StringGetAsync(key))!, CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    private async Task<List<string>> KeysAsync()
    {
        using var admin = await ConnectionMultiplexer.ConnectAsync(_redis.Endpoint);
        var keys = new List<string>();
        await foreach (var key in admin.GetServer(_redis.Endpoint).KeysAsync(pattern: Prefix + "*"))
        {
            keys.Add(key!);
        }

        return keys;
    }

    // RedisCache keeps an entry as a hash (its bytes in the "data" field); older layouts used a string.
    private static async Task<byte[]> ReadAsync(IDatabase db, string key) =>
        await db.KeyTypeAsync(key) == RedisType.Hash ? (byte[])(await db.HashGetAsync(key, "data"))! : (byte[])(await db.StringGetAsync(key))!;

    private static async Task WriteAsync(IDatabase db, string key, byte[] value)
    {
        if (await db.KeyTypeAsync(key) == RedisType.Hash)
        {
            await db.HashSetAsync(key, "data", value);
        }
        else
        {
            await db.StringSetAsync(key, value, null, keepTtl: true);
        }
    }

    private static byte[] Flip(byte[] value, int at)
    {
        var copy = value.ToArray();
        copy[at] ^= 0x20;
        return copy;
    }
}
