using System.Globalization;
using StackExchange.Redis;

namespace ExtProc.Routing;

/// <summary>
/// Passive health shared by every replica through one Redis: failures are counted in Redis per target
/// (one atomic script per failure, fire-and-forget so a failing answer is never slowed by it), and a trip —
/// counted there or locally — is published so every replica skips the target for the cooldown. Redis being
/// down or slow only loses the sharing: each replica's local counting goes on.
/// Keys: <c>xp:health:fail:&lt;length&gt;:&lt;provider/model&gt;</c> (a counter expiring with the window); channel <c>xp:health</c>
/// with messages <c>&lt;cooldown ms&gt;|&lt;provider/model&gt;</c>.
/// </summary>
internal sealed class SharedHealth : IDisposable
{
    public const string Channel = "xp:health";

    // KEYS[1] failure counter; ARGV: window ms, failures to trip, cooldown ms, channel message.
    private const string FailureScript = """
        local n = redis.call('INCR', KEYS[1])
        if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
        if n >= tonumber(ARGV[2]) then
          redis.call('DEL', KEYS[1])
          redis.call('PUBLISH', ARGV[4], ARGV[3] .. '|' .. ARGV[5])
          return 1
        end
        return 0
        """;

    private readonly IConnectionMultiplexer _redis;
    private readonly TimeSpan _budget;
    private readonly RedisChannel _channel = RedisChannel.Literal(Channel);
    private readonly CancellationTokenSource _stopping = new();
    private long _errors;

    private SharedHealth(IConnectionMultiplexer redis, TimeSpan budget)
    {
        _redis = redis;
        _budget = budget;
    }

    public string Endpoint { get; private init; } = "";

    /// <summary>Redis calls that failed or ran over budget (the sharing was lost for them, not the decision).</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>Connects (without waiting for Redis to be up) and subscribes <paramref name="onTrip"/> to trips published by any replica.</summary>
    public static SharedHealth Connect(string endpoint, TimeSpan budget, Action<string, TimeSpan> onTrip)
    {
        var options = ConfigurationOptions.Parse(endpoint);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ConnectTimeout = (int)Math.Max(100, budget.TotalMilliseconds * 4);
        options.AsyncTimeout = (int)Math.Max(100, budget.TotalMilliseconds * 4);
        options.ClientName = "extproc-health";
        var shared = new SharedHealth(ConnectionMultiplexer.Connect(options), budget) { Endpoint = endpoint };
        _ = shared.SubscribeAsync(onTrip);
        return shared;
    }

    /// <summary>True once trips of other replicas are being received.</summary>
    public bool Subscribed { get; private set; }

    /// <summary>
    /// Subscribes, retrying while Redis is unreachable (ExtProc may start before it); once subscribed the
    /// client renews the subscription by itself after a reconnect.
    /// </summary>
    private async Task SubscribeAsync(Action<string, TimeSpan> onTrip)
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await _redis.GetSubscriber().SubscribeAsync(_channel, (_, message) =>
                {
                    if (TryParse(message, out var key, out var cooldown))
                    {
                        onTrip(key, cooldown);
                    }
                }).ConfigureAwait(false);
                Subscribed = true;
                return;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                Interlocked.Increment(ref _errors);
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), _stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>Counts a failure across replicas; publishes a trip when the shared count reaches <c>failures</c>.</summary>
    public void ReportFailure(string key, Config.HealthSettings settings) =>
        _ = RunAsync(db => db.ScriptEvaluateAsync(FailureScript,
            [(RedisKey)("xp:health:fail:" + key.Length.ToString(CultureInfo.InvariantCulture) + ":" + key)],
            [(long)settings.Window.TotalMilliseconds, settings.Failures, (long)settings.Cooldown.TotalMilliseconds, Channel, key]));

    /// <summary>Tells every replica a target tripped here.</summary>
    public void PublishTrip(string key, TimeSpan cooldown) =>
        _ = RunAsync(db => _redis.GetSubscriber().PublishAsync(_channel, Message(key, cooldown)));

    public static string Message(string key, TimeSpan cooldown) =>
        ((long)cooldown.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) + "|" + key;

    public static bool TryParse(RedisValue message, out string key, out TimeSpan cooldown)
    {
        key = "";
        cooldown = default;
        var text = (string?)message;
        var bar = text?.IndexOf('|', StringComparison.Ordinal) ?? -1;
        if (text is null || bar <= 0 || !long.TryParse(text.AsSpan(0, bar), NumberStyles.None, CultureInfo.InvariantCulture, out var ms) || ms > TimeSpan.FromHours(1).TotalMilliseconds)
        {
            return false;
        }

        key = text[(bar + 1)..];
        cooldown = TimeSpan.FromMilliseconds(ms);
        return key.Length > 0;
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _redis.Dispose();
        _stopping.Dispose();
    }

    private async Task RunAsync(Func<IDatabase, Task> call)
    {
        try
        {
            await call(_redis.GetDatabase()).WaitAsync(_budget).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            Interlocked.Increment(ref _errors);
        }
    }
}
