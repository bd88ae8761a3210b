using System.Diagnostics;
using Envoy.Service.ExtProc.V3;
using ExtProc.Pipeline;
using ExtProc.Storage;
using ExtProc.Storage.InProcess;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Engine;
using ExtProc.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;
using static ExtProc.Tests.Engine.EngineTestKit;

namespace ExtProc.Tests.Stages.Limits;

/// <summary>The limits stage with the Redis store: clock skew (L3), outage policy per kind (L4/L5), flapping (L6); and the window bound (L2).</summary>
public sealed class LimitsRedisStageTests : IAsyncLifetime
{
    private static readonly string Key = ApiKeyFormat.NewKey("lim-main");
    private readonly ITestOutputHelper _output;
    private readonly List<PipelineSnapshot> _snapshots = [];
    private RedisServer _redis = null!;

    public LimitsRedisStageTests(ITestOutputHelper output) => _output = output;

    public async Task InitializeAsync() => _redis = await RedisServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _redis.DisposeAsync();
    }

    private string Yaml(string limits, string budget = "50ms") => $$"""
        version: 1
        tenants:
          lim:
            policy:
              limits: [{{limits}}]
            keys:
              - id: lim-main
                hash: "{{ApiKeyFormat.HashText(Key)}}"
        limits:
          prices:
            "gpt-4o*": { input: "1", output: "1" }
          redis:
            endpoint: "{{_redis.Endpoint}}"
            call_budget: {{budget}}
            replicas: 2
          rules:
            - { name: rpm, kind: requests, limit: "40", window: 1h }
            - { name: daily, kind: budget, usd: "100", period: day }
            - { name: tiny, kind: budget, usd: "0.00002", period: day }
        """;

    private PipelineSnapshot Pipeline(string limits, TimeProvider time, string budget = "50ms")
    {
        var snapshot = Tenancy.TestTenancy.BuildPipeline(Yaml(limits, budget), time: time);
        _snapshots.Add(snapshot);
        return snapshot;
    }

    private const string Chat = """{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""";

    private static async Task<ProcessingResponse> AdmitAsync(PipelineSnapshot snapshot)
    {
        var (processor, writer) = EngineTestKit.Processor(snapshot);
        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", extra: ("authorization", "Bearer " + Key)));
        await processor.HandleAsync(RequestBody(Utf8(Chat), endOfStream: true));
        await processor.EndAsync();
        return writer.Responses[^1];
    }

    private static async Task<ProcessingResponse> AdmitHoldingAsync(PipelineSnapshot snapshot)
    {
        var (processor, writer) = EngineTestKit.Processor(snapshot);
        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", extra: ("authorization", "Bearer " + Key)));
        await processor.HandleAsync(RequestBody(Utf8(Chat), endOfStream: true));
        return writer.Responses[^1];
    }

    private static async Task WarmAsync(PipelineSnapshot snapshot, string probeLimits)
    {
        // Let the connection come up before measuring (start-up never blocks on Redis; it degrades instead).
        _ = probeLimits;
        await Task.Delay(300);
        await AdmitAsync(snapshot);
    }

    [Fact]
    public async Task ClockSkew_TwoReplicasTwoSecondsApart_AdmitExactlyTheLimit()
    {
        // L3: replica clocks at -2 s and +2 s; windows come from Redis TIME, so the limit holds exactly.
        var now = DateTimeOffset.UtcNow;
        var early = Pipeline("rpm", new FakeTimeProvider(now.AddSeconds(-2)), budget: "2s");
        var late = Pipeline("rpm", new FakeTimeProvider(now.AddSeconds(2)), budget: "2s");
        await WarmAsync(early, "rpm");
        await WarmAsync(late, "rpm");
        var replies = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Task.Run(() => AdmitAsync(i % 2 == 0 ? early : late))));
        var admitted = 2 + replies.Count(r => r.ResponseCase != ProcessingResponse.ResponseOneofCase.ImmediateResponse);
        _output.WriteLine($"L3: replicas at -2 s / +2 s: admitted {admitted} of 102 at limit 40 (delta vs no skew {admitted - 40})");
        Assert.Equal(40, admitted);
    }

    [Fact]
    public async Task BudgetPeriod_ReplicaClockADayBehind_SpendsFromRedisCurrentDay()
    {
        // Budget periods are named by the replica but checked against Redis TIME: a replica whose clock is a day
        // behind cannot open a fresh "yesterday" budget. The tiny budget holds one reservation (~15 µUSD of 20);
        // streams stay open so reservations are held (an ended stream would release its own).
        var behind = Pipeline("tiny", new FakeTimeProvider(DateTimeOffset.UtcNow.AddDays(-1)), budget: "2s");
        var onTime = Pipeline("tiny", TimeProvider.System, budget: "2s");
        await Task.Delay(300);
        var first = await AdmitHoldingAsync(behind);
        var second = await AdmitHoldingAsync(onTime);
        var third = await AdmitHoldingAsync(behind);
        _output.WriteLine($"budget period across a day of skew: behind → {Outcome(first)}, on time → {Outcome(second)}, behind again → {Outcome(third)}");
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, first.ResponseCase);
        Assert.Contains("\"code\":\"budget_exhausted\"", second.ImmediateResponse.Body.ToStringUtf8());
        Assert.Contains("\"code\":\"budget_exhausted\"", third.ImmediateResponse.Body.ToStringUtf8());
    }

    private static string Outcome(ProcessingResponse reply) =>
        reply.ResponseCase == ProcessingResponse.ResponseOneofCase.ImmediateResponse ? ((int)reply.ImmediateResponse.Status.Code).ToString(System.Globalization.CultureInfo.InvariantCulture) : "admitted";

    [Fact]
    public async Task RedisHung_OpenRequestsDegradeClosedBudgetRefusesWithinBudget()
    {
        // L4/L5 through the stage: an open requests limit falls back to limit / replicas; a budget (closed by
        // default) answers 503 limits_unavailable with Retry-After in the caller's dialect.
        var time = TimeProvider.System;
        var requests = Pipeline("rpm", time);
        var budget = Pipeline("daily", time);
        await WarmAsync(requests, "rpm");
        await WarmAsync(budget, "daily");
        _redis.Pause();
        var latencies = new List<double>();
        ProcessingResponse closed;
        var admitted = 0;
        try
        {
            for (var i = 0; i < 30; i++)
            {
                var watch = Stopwatch.StartNew();
                var reply = await AdmitAsync(requests);
                latencies.Add(watch.Elapsed.TotalMilliseconds);
                admitted += reply.ResponseCase == ProcessingResponse.ResponseOneofCase.ImmediateResponse ? 0 : 1;
            }

            var closedWatch = Stopwatch.StartNew();
            closed = await AdmitAsync(budget);
            latencies.Add(closedWatch.Elapsed.TotalMilliseconds);
        }
        finally
        {
            _redis.Resume();
        }

        latencies.Sort();
        _output.WriteLine($"L5 (stage): hung Redis, budget 50 ms: p50 {latencies[latencies.Count / 2]:F1} ms, max {latencies[^1]:F1} ms; open limit admitted {admitted}/30 locally (40 / 2 replicas = 20); closed budget → {(int)closed.ImmediateResponse.Status.Code}");
        Assert.Equal(20, admitted);
        Assert.Equal(503, (int)closed.ImmediateResponse.Status.Code);
        Assert.Contains("\"code\":\"limits_unavailable\"", closed.ImmediateResponse.Body.ToStringUtf8());
        Assert.Equal("1", Header(closed.ImmediateResponse.Headers, "retry-after"));
        Assert.True(latencies[^1] < 1000, $"a decision took {latencies[^1]} ms");
    }

    [Fact]
    public async Task RedisFlapping_NoCrashEveryDecisionFollowsPolicy()
    {
        // L6 (short form): kill and restart Redis every 2 s for 10 s while requests flow.
        var requests = Pipeline("rpm", TimeProvider.System);
        await WarmAsync(requests, "rpm");
        var codes = new Dictionary<string, int>();
        var stop = Stopwatch.StartNew();
        var flapper = Task.Run(async () =>
        {
            while (stop.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(1000);
                _redis.Kill();
                await Task.Delay(1000);
                await _redis.RestartAsync();
            }
        });
        var count = 0;
        var maxMs = 0.0;
        while (!flapper.IsCompleted)
        {
            var watch = Stopwatch.StartNew();
            var reply = await AdmitAsync(requests);
            maxMs = Math.Max(maxMs, watch.Elapsed.TotalMilliseconds);
            var code = reply.ResponseCase == ProcessingResponse.ResponseOneofCase.ImmediateResponse
                ? ((int)reply.ImmediateResponse.Status.Code).ToString(System.Globalization.CultureInfo.InvariantCulture)
                : "admitted";
            codes[code] = codes.GetValueOrDefault(code) + 1;
            count++;
            await Task.Delay(10);
        }

        await flapper;
        _output.WriteLine($"L6: {count} requests over 10 s of kill/restart every 2 s: {string.Join(", ", codes.Select(c => $"{c.Key} {c.Value}"))}; slowest decision {maxMs:F0} ms");
        Assert.True(codes.Keys.All(k => k is "admitted" or "429"), string.Join(",", codes.Keys));
        // Reported, not bounded tightly: on a 2-core box shared with parallel tests the slowest decision includes
        // scheduling stalls (30 ms measured alone). The bound only rules out waiting on Redis' own timeouts (~6 s).
        Assert.True(maxMs < 3000, $"slowest decision {maxMs} ms");
    }

    [Fact]
    public async Task FixedWindow_BurstAcrossBoundary_AtMostTwiceTheLimitInOneWindowSpan()
    {
        // L2: the documented bound of a fixed window is 2 x limit in any window-length span.
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-24T10:00:59.500Z"));
        var store = new InProcessLimitStore(time);
        var counter = new LimitCounter("l2", CounterKind.Window, 10, 60_000, 1);
        var admitted = 0;
        for (var i = 0; i < 30; i++)
        {
            admitted += (await store.ReserveAsync(new AdmissionRequest("a" + i, [counter], 60_000))).Admitted ? 1 : 0;
        }

        time.Advance(TimeSpan.FromSeconds(1));
        for (var i = 0; i < 30; i++)
        {
            admitted += (await store.ReserveAsync(new AdmissionRequest("b" + i, [counter], 60_000))).Admitted ? 1 : 0;
        }

        _output.WriteLine($"L2: fixed window, limit 10: {admitted} admitted within 1 s across the boundary (bound 2 x limit = 20)");
        Assert.Equal(20, admitted);
    }
}
