using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using ExtProc.Observability;
using ExtProc.Storage;
using ExtProc.Tests.Infrastructure;

namespace ExtProc.Benchmarks.Limits;

/// <summary>
/// <c>--redis-faults</c>: faults.md L5, L6 and L10 at full length against a real redis-server, with an open-loop
/// load on the limit store (latency counted from each request's scheduled time, so stalls are not hidden):
/// L5 hangs Redis (SIGSTOP) and reports the added decision latency and the thread pool's peaks per phase;
/// L6 kills and restarts it every second for a minute and reports time to detect and to recover;
/// L10 partitions it for a minute while settlements of reservations it holds arrive, and counts what is lost.
/// Options: <c>--rate N</c> (requests/s, default 500), <c>--budget-ms N</c> (50), <c>--hang-seconds N</c> (10),
/// <c>--flap-seconds N</c> (60), <c>--outage-seconds N</c> (60), <c>--only l5|l6|l10</c>.
/// </summary>
internal static class RedisFaultRun
{
    public static int Run(string[] args)
    {
        var options = new Options(
            Int(args, "--rate", 500),
            TimeSpan.FromMilliseconds(Int(args, "--budget-ms", 50)),
            TimeSpan.FromSeconds(Int(args, "--hang-seconds", 10)),
            TimeSpan.FromSeconds(Int(args, "--flap-seconds", 60)),
            TimeSpan.FromSeconds(Int(args, "--outage-seconds", 60)));
        var only = Arg(args, "--only");
        RunAsync(options, only).GetAwaiter().GetResult();
        return 0;
    }

    private static async Task RunAsync(Options options, string? only)
    {
        Console.WriteLine($"# Redis faults: {options.Rate} requests/s open loop, call budget {options.Budget.TotalMilliseconds} ms, .NET {Environment.Version}, {Environment.ProcessorCount} cores");
        if (only is null or "l5")
        {
            await HungAsync(options);
        }

        if (only is null or "l6")
        {
            await FlappingAsync(options);
        }

        if (only is null or "l10")
        {
            await PartitionedSettlementsAsync(options);
        }
    }

    private static async Task HungAsync(Options options)
    {
        await using var redis = await RedisServer.StartAsync();
        using var store = await ConnectAsync(redis, options.Budget);
        await using var load = new OpenLoad(store, options.Rate, "before");
        await Task.Delay(TimeSpan.FromSeconds(5));
        load.Phase = "hung";
        redis.Pause();
        var detect = await TimeUntilAsync(() => store.Gate!.IsOpen);
        await Task.Delay(options.Hang - detect);
        load.Phase = "after";
        redis.Resume();
        var recover = await TimeUntilAsync(() => !store.Gate!.IsOpen);
        await Task.Delay(TimeSpan.FromSeconds(5) - recover);
        await load.StopAsync();
        Console.WriteLine();
        Console.WriteLine($"## L5: Redis hung (SIGSTOP) for {options.Hang.TotalSeconds:F0} s");
        Console.WriteLine($"Detected after {detect.TotalMilliseconds:F0} ms (the gate opened); recovered {recover.TotalMilliseconds:F0} ms after SIGCONT.");
        load.Print();
    }

    private static async Task FlappingAsync(Options options)
    {
        await using var redis = await RedisServer.StartAsync();
        using var store = await ConnectAsync(redis, options.Budget);
        await using var load = new OpenLoad(store, options.Rate, "flapping");
        var detections = new List<double>();
        var recoveries = new List<double>();
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < options.Flap)
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
            redis.Kill();
            detections.Add((await TimeUntilAsync(() => store.Gate!.IsOpen)).TotalMilliseconds);
            await Task.Delay(TimeSpan.FromSeconds(1));
            await redis.RestartAsync();
            recoveries.Add((await TimeUntilAsync(() => !store.Gate!.IsOpen)).TotalMilliseconds);
        }

        await load.StopAsync();
        detections.Sort();
        recoveries.Sort();
        Console.WriteLine();
        Console.WriteLine($"## L6: Redis killed and restarted every 2 s for {options.Flap.TotalSeconds:F0} s ({detections.Count} flaps)");
        Console.WriteLine($"Time to detect (SIGKILL → local decisions): median {detections[detections.Count / 2]:F0} ms, max {detections[^1]:F0} ms. " +
            $"Time to recover (restarted → shared decisions): median {recoveries[recoveries.Count / 2]:F0} ms, max {recoveries[^1]:F0} ms. Gate openings {store.Gate!.Outages}.");
        load.Print();
    }

    private static async Task PartitionedSettlementsAsync(Options options)
    {
        await using var redis = await RedisServer.StartAsync();
        using var store = await ConnectAsync(redis, options.Budget);
        var tokens = new LimitCounter(LimitKeys.Counter("tpd", "l10", null, null), CounterKind.Window, long.MaxValue / 4, 86_400_000, 1000);
        var held = new List<string>();
        for (var i = 0; i < options.Rate * 2; i++)
        {
            var id = "held-" + i.ToString(CultureInfo.InvariantCulture);
            var result = await store.ReserveAsync(new AdmissionRequest(id, [tokens], 600_000));
            if (result.Admitted && !result.Degraded)
            {
                held.Add(id);
            }
        }

        await using var load = new OpenLoad(store, options.Rate, "partitioned");
        redis.Pause();
        var random = new Random(7);
        long expected = 0;
        var spacing = options.Outage / Math.Max(1, held.Count);
        foreach (var id in held)
        {
            var actual = random.Next(1, 2000);
            expected += actual;
            await store.SettleAsync(id, [actual]);
            await Task.Delay(spacing);
        }

        var buffered = store.PendingSettlements;
        redis.Resume();
        var deadline = Stopwatch.StartNew();
        while ((store.Gate!.IsOpen || store.PendingSettlements > 0) && deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(20);
        }

        await load.StopAsync();
        var probe = await store.ReserveAsync(new AdmissionRequest("probe", [tokens with { Amount = 0 }], 1000));
        Console.WriteLine();
        Console.WriteLine($"## L10: Redis partitioned (SIGSTOP) for {options.Outage.TotalSeconds:F0} s while {held.Count} reservations it holds are settled");
        Console.WriteLine($"Settlements buffered at the end of the outage: {buffered}; left after replay: {store.PendingSettlements}; dropped (buffer full): {store.DroppedSettlements}. " +
            $"Token counter {probe.Used[0]:N0} vs provider usage {expected:N0}: lost {expected - probe.Used[0]:N0}.");
        load.Print();
    }

    private static async Task<ResilientLimitStore> ConnectAsync(RedisServer redis, TimeSpan budget)
    {
        var connection = ResilientLimitStore.Connect(redis.Endpoint, budget);
        var store = new ResilientLimitStore(connection, budget, replicas: 2, bufferCapacity: 10_000, TimeProvider.System, new LimitMetrics());
        var warm = new LimitCounter("xp:warm", CounterKind.Window, long.MaxValue / 4, 60_000, 1);
        for (var i = 0; i < 500; i++)
        {
            await store.ReserveAsync(new AdmissionRequest("warm-" + i.ToString(CultureInfo.InvariantCulture), [warm], 1000));
            if (store.Gate!.IsOpen)
            {
                await Task.Delay(20);
            }
        }

        return store;
    }

    private static async Task<TimeSpan> TimeUntilAsync(Func<bool> condition)
    {
        var watch = Stopwatch.StartNew();
        while (!condition() && watch.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(1);
        }

        return watch.Elapsed;
    }

    private static string? Arg(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }

    private static int Int(string[] args, string name, int fallback) =>
        Arg(args, name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

    private sealed record Options(int Rate, TimeSpan Budget, TimeSpan Hang, TimeSpan Flap, TimeSpan Outage);

    /// <summary>
    /// Requests at fixed arrival times on a dedicated thread: half carry only open counters (requests, tokens:
    /// a local limiter at limit / replicas when Redis is out), half also a budget (closed: refused when it is out).
    /// </summary>
    private sealed class OpenLoad : IAsyncDisposable
    {
        private readonly ResilientLimitStore _store;
        private readonly LimitCounter[] _open;
        private readonly LimitCounter[] _withBudget;
        private readonly ConcurrentDictionary<string, PhaseRecord> _phases = new();
        private readonly List<string> _order = [];
        private readonly Thread _thread;
        private readonly Thread _sampler;
        private static readonly long[] OpenActual = [-1, 1000];
        private static readonly long[] BudgetActual = [-1, 1000, 800];
        private readonly TimeSpan _interval;
        private volatile bool _running = true;
        private volatile string _phase;
        private int _inFlight;

        public OpenLoad(ResilientLimitStore store, int rate, string phase)
        {
            _store = store;
            _interval = TimeSpan.FromSeconds(1.0 / rate);
            var run = Guid.NewGuid().ToString("N");
            var requests = new LimitCounter(LimitKeys.Counter("rpm", run, null, null), CounterKind.Window, long.MaxValue / 4, 60_000, 1);
            var tokens = new LimitCounter(LimitKeys.Counter("tpm", run, null, null), CounterKind.Window, long.MaxValue / 4, 60_000, 1200);
            var now = DateTimeOffset.UtcNow;
            var budget = new LimitCounter(LimitKeys.Counter("daily", run, null, null) + ":d", CounterKind.Calendar, long.MaxValue / 4, 86_400_000, 900, FailClosed: true,
                now.AddDays(-1).ToUnixTimeMilliseconds(), now.AddDays(1).ToUnixTimeMilliseconds());
            _open = [requests, tokens];
            _withBudget = [requests, tokens, budget];
            _phase = phase;
            _order.Add(phase);
            _thread = new Thread(Schedule) { IsBackground = true, Name = "open-load" };
            _sampler = new Thread(Sample) { IsBackground = true, Name = "thread-pool-sampler" };
            _thread.Start();
            _sampler.Start();
        }

        public string Phase
        {
            get => _phase;
            set
            {
                lock (_order)
                {
                    _order.Add(value);
                }

                _phase = value;
            }
        }

        public async Task StopAsync()
        {
            _running = false;
            _thread.Join();
            _sampler.Join();
            var watch = Stopwatch.StartNew();
            while (Volatile.Read(ref _inFlight) > 0 && watch.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(10);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_running)
            {
                await StopAsync();
            }
        }

        public void Print()
        {
            Console.WriteLine();
            Console.WriteLine("| phase | requests | p50 ms | p99 ms | p99.9 ms | max ms | shared | local | refused (closed) | errors | pool threads peak | pool queue peak |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var name in _order)
            {
                if (_phases.TryGetValue(name, out var phase))
                {
                    Console.WriteLine(phase.Row(name));
                }
            }
        }

        private PhaseRecord Current => _phases.GetOrAdd(_phase, static _ => new PhaseRecord());

        private void Schedule()
        {
            var start = Stopwatch.GetTimestamp();
            long sent = 0;
            while (_running)
            {
                var due = (long)(Stopwatch.GetElapsedTime(start) / _interval);
                for (; sent < due; sent++)
                {
                    var scheduled = start + (long)(sent * _interval.TotalSeconds * Stopwatch.Frequency);
                    _ = OneAsync(scheduled, sent % 2 == 0 ? _open : _withBudget, Current);
                }

                Thread.Sleep(1);
            }
        }

        private async Task OneAsync(long scheduled, LimitCounter[] counters, PhaseRecord phase)
        {
            Interlocked.Increment(ref _inFlight);
            var id = Guid.NewGuid().ToString("N");
            try
            {
                var result = await _store.ReserveAsync(new AdmissionRequest(id, counters, 60_000));
                phase.Add(Stopwatch.GetElapsedTime(scheduled).TotalMilliseconds, result);
                if (result.Admitted)
                {
                    await _store.SettleAsync(id, counters.Length == 2 ? OpenActual : BudgetActual);
                }
            }
            catch (Exception)
            {
                phase.Error();
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }

        private void Sample()
        {
            while (_running)
            {
                Current.Pool(ThreadPool.ThreadCount, ThreadPool.PendingWorkItemCount);
                Thread.Sleep(5);
            }
        }
    }

    private sealed class PhaseRecord
    {
        private readonly List<double> _latencies = [];
        private int _shared;
        private int _local;
        private int _refused;
        private int _errors;
        private int _threadsPeak;
        private long _queuePeak;

        public void Add(double milliseconds, AdmissionResult result)
        {
            lock (_latencies)
            {
                _latencies.Add(milliseconds);
            }

            if (result.Unavailable)
            {
                Interlocked.Increment(ref _refused);
            }
            else if (result.Degraded)
            {
                Interlocked.Increment(ref _local);
            }
            else
            {
                Interlocked.Increment(ref _shared);
            }
        }

        public void Error() => Interlocked.Increment(ref _errors);

        public void Pool(int threads, long queue)
        {
            _threadsPeak = Math.Max(_threadsPeak, threads);
            _queuePeak = Math.Max(_queuePeak, queue);
        }

        public string Row(string name)
        {
            double[] sorted;
            lock (_latencies)
            {
                sorted = [.. _latencies];
            }

            Array.Sort(sorted);
            return string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {sorted.Length:N0} | {At(sorted, 0.5):F2} | {At(sorted, 0.99):F2} | {At(sorted, 0.999):F2} | {At(sorted, 1):F2} | {_shared:N0} | {_local:N0} | {_refused:N0} | {_errors} | {_threadsPeak} | {_queuePeak} |");
        }

        private static double At(double[] sorted, double quantile) =>
            sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(sorted.Length * quantile) - 1, 0, sorted.Length - 1)];
    }
}
