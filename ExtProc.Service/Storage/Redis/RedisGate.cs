using System.Diagnostics;
using StackExchange.Redis;

namespace ExtProc.Storage.Redis;

/// <summary>
/// Whether Redis is worth asking. A call that fails or overruns its budget, or a dropped connection,
/// opens the gate; while it is open every request decides locally at once instead of each one waiting
/// out the budget (faults.md L5: a hung Redis would otherwise add the whole budget to every request), and
/// a background probe (PING within the budget, once per interval) closes it when Redis answers again.
/// Only the requests already waiting when Redis stops pay the budget.
/// </summary>
internal sealed class RedisGate : IDisposable
{
    /// <summary>How often a probe asks an unanswering Redis whether it is back, unless configured.</summary>
    public static readonly TimeSpan DefaultProbeInterval = TimeSpan.FromMilliseconds(250);

    private readonly IConnectionMultiplexer _connection;
    private readonly TimeSpan _budget;
    private readonly TimeSpan _probeInterval;
    private readonly Action _closed;
    private readonly CancellationTokenSource _stopping = new();
    private int _open;
    private long _openedAt;
    private long _outages;
    private long _lastOutageTicks;

    /// <param name="closed">Runs after the gate closes (replays what waited for Redis).</param>
    public RedisGate(IConnectionMultiplexer connection, TimeSpan budget, TimeSpan probeInterval, Action closed)
    {
        _connection = connection;
        _budget = budget;
        _probeInterval = probeInterval;
        _closed = closed;
        _connection.ConnectionFailed += OnConnectionFailed;
        if (!_connection.IsConnected)
        {
            Trip();
        }
    }

    /// <summary>True while Redis is considered out.</summary>
    public bool IsOpen => Volatile.Read(ref _open) == 1;

    /// <summary>How many times the gate opened.</summary>
    public long Outages => Interlocked.Read(ref _outages);

    /// <summary>How long the last closed outage lasted, from opening to the probe that closed it.</summary>
    public TimeSpan LastOutage => TimeSpan.FromTicks(Interlocked.Read(ref _lastOutageTicks));

    /// <summary>Raised with true when the gate opens and false when it closes (metrics).</summary>
    public event Action<bool>? Changed;

    public void Trip()
    {
        if (Interlocked.CompareExchange(ref _open, 1, 0) != 0)
        {
            return;
        }

        Volatile.Write(ref _openedAt, Stopwatch.GetTimestamp());
        Interlocked.Increment(ref _outages);
        Changed?.Invoke(true);
        _ = ProbeUntilClosedAsync();
    }

    public void Dispose()
    {
        _connection.ConnectionFailed -= OnConnectionFailed;
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e) => Trip();

    private async Task ProbeUntilClosedAsync()
    {
        var token = _stopping.Token;
        var database = _connection.GetDatabase();
        while (!token.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_probeInterval, token).ConfigureAwait(false);

                // On the thread pool for the same reason as every other call: a reconnecting client can block its caller.
                await Task.Run(() => database.PingAsync(), token).WaitAsync(_budget, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex) when (RedisCall.Failed(ex))
            {
                continue;
            }

            Interlocked.Exchange(ref _lastOutageTicks, Stopwatch.GetElapsedTime(Volatile.Read(ref _openedAt)).Ticks);
            Volatile.Write(ref _open, 0);
            Changed?.Invoke(false);
            _closed();
            return;
        }
    }
}
