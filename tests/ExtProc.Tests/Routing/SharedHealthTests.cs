using ExtProc.Routing;
using ExtProc.Routing.Config;
using ExtProc.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ExtProc.Tests.Routing;

/// <summary>Passive health shared by two replicas (two <see cref="PassiveHealth"/> instances) through a real redis-server.</summary>
public sealed class SharedHealthTests : IAsyncLifetime
{
    private const string Key = "openai/gpt-4o";
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-24T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private RedisServer _redis = null!;
    private PassiveHealth _a = null!;
    private PassiveHealth _b = null!;
    private HealthSettings _settings = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        _settings = new HealthSettings(3, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30)) { Redis = new HealthRedis(_redis.Endpoint, TimeSpan.FromMilliseconds(200)) };
        _a = new PassiveHealth(_time);
        _b = new PassiveHealth(_time);
        _a.UseShared(_settings.Redis);
        _b.UseShared(_settings.Redis);
        Assert.True(await EventuallyAsync(() => _a.Shared!.Subscribed && _b.Shared!.Subscribed), "the replicas never subscribed");
    }

    public async Task DisposeAsync()
    {
        _a.Dispose();
        _b.Dispose();
        await _redis.DisposeAsync();
    }

    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        for (var i = 0; i < 100; i++)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(50);
        }

        return condition();
    }

    [Fact]
    public async Task TripOnOneReplica_OtherReplicaSkipsTheTargetForTheCooldown()
    {
        for (var i = 0; i < 3; i++)
        {
            _a.Report(Key, 503, _settings);
        }

        Assert.False(_a.IsAvailable(Key));
        Assert.True(await EventuallyAsync(() => !_b.IsAvailable(Key)), "replica B never learned of the trip");
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.True(_b.IsAvailable(Key));
        Assert.True(_b.TryUse(Key, _settings));
        Assert.False(_b.TryUse(Key, _settings));
    }

    [Fact]
    public async Task FailuresSpreadOverReplicas_CountedTogether_BothSkip()
    {
        _a.Report(Key, 429, _settings);
        _b.Report(Key, 500, _settings);
        Assert.True(_a.IsAvailable(Key) && _b.IsAvailable(Key));

        _a.Report(Key, 502, _settings);

        // Neither replica saw three failures itself; the shared count did.
        Assert.True(await EventuallyAsync(() => !_a.IsAvailable(Key) && !_b.IsAvailable(Key)), "the shared count did not trip the target");
    }

    [Fact]
    public async Task RedisDown_LocalHealthGoesOn_ErrorsCountedNoThrow()
    {
        _redis.Kill();
        for (var i = 0; i < 3; i++)
        {
            _a.Report(Key, 503, _settings);
        }

        Assert.False(_a.IsAvailable(Key));
        Assert.True(_b.IsAvailable(Key));
        Assert.True(await EventuallyAsync(() => _a.Shared!.Errors > 0), "no Redis error was counted");
    }
}
