using System.Diagnostics;

namespace ExtProc.LoadGen;

/// <summary>What one open-loop step measured.</summary>
internal sealed record StepResult(
    string Target,
    string Mix,
    int Rate,
    int Scheduled,
    int Ok,
    int Errors,
    int Dropped,
    double AchievedRps,
    double P50Ms,
    double P99Ms,
    double P999Ms,
    double MaxMs,
    double DispatchLagP99Ms,
    double RssMb,
    double ServerCpuUsPerRequest);

/// <summary>
/// Open loop at a fixed arrival rate (BENCH.md): request <c>i</c> is due at <c>start + i / rate</c>
/// whatever happened to earlier ones, and its latency is measured from that due time, so a slow server
/// cannot slow the clock down (no coordinated omission). One dispatcher thread sleeps while the next
/// request is more than ~1.5 ms away and yields the CPU otherwise; its own lateness is reported.
/// </summary>
internal static class OpenLoop
{
    private static readonly double TicksPerMs = Stopwatch.Frequency / 1000.0;

    public static StepResult Run(
        string target,
        string mix,
        int rate,
        TimeSpan duration,
        Func<CancellationToken, Task<bool>> call,
        Func<double>? sampleRssMb = null,
        Func<double>? serverCpuMs = null,
        int maxOutstanding = 5000)
    {
        var total = (int)(rate * duration.TotalSeconds);
        var latency = new double[total];
        var lag = new double[total];
        Array.Fill(latency, double.NaN);
        var interval = Stopwatch.Frequency / (double)rate;
        var outstanding = 0;
        var errors = 0;
        var dropped = 0;
        long lastDone = 0;
        using var abandon = new CancellationTokenSource();
        var rss = 0.0;
        using var rssTimer = sampleRssMb is null ? null : new Timer(_ =>
        {
            var sample = sampleRssMb();
            if (sample > Volatile.Read(ref rss))
            {
                Volatile.Write(ref rss, sample);
            }
        }, null, TimeSpan.Zero, TimeSpan.FromMilliseconds(250));

        var start = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 100;
        var dispatcher = new Thread(() =>
        {
            for (var i = 0; i < total; i++)
            {
                var due = start + (long)(i * interval);
                while (true)
                {
                    var wait = due - Stopwatch.GetTimestamp();
                    if (wait <= 0)
                    {
                        break;
                    }

                    if (wait > 1.5 * TicksPerMs)
                    {
                        Thread.Sleep(1);
                    }
                    else
                    {
                        Thread.Yield();
                    }
                }

                lag[i] = (Stopwatch.GetTimestamp() - due) / TicksPerMs;
                if (Volatile.Read(ref outstanding) >= maxOutstanding)
                {
                    Interlocked.Increment(ref dropped);
                    continue;
                }

                Interlocked.Increment(ref outstanding);
                _ = IssueAsync(i, due);
            }
        })
        { IsBackground = true, Name = "open-loop dispatcher", Priority = ThreadPriority.AboveNormal };

        async Task IssueAsync(int index, long due)
        {
            bool ok;
            try
            {
                ok = await call(abandon.Token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                ok = false;
            }

            var end = Stopwatch.GetTimestamp();
            if (ok)
            {
                latency[index] = (end - due) / TicksPerMs;
            }
            else
            {
                Interlocked.Increment(ref errors);
            }

            InterlockedMax(ref lastDone, end);
            Interlocked.Decrement(ref outstanding);
        }

        var cpuBefore = serverCpuMs?.Invoke() ?? 0;
        dispatcher.Start();
        dispatcher.Join();

        // Let what is in flight finish (bounded), then abandon the rest: they count as errors.
        var drainUntil = Stopwatch.GetTimestamp() + 5 * Stopwatch.Frequency;
        while (Volatile.Read(ref outstanding) > 0 && Stopwatch.GetTimestamp() < drainUntil)
        {
            Thread.Sleep(5);
        }

        abandon.Cancel();
        var giveUp = Stopwatch.GetTimestamp() + 2 * Stopwatch.Frequency;
        while (Volatile.Read(ref outstanding) > 0 && Stopwatch.GetTimestamp() < giveUp)
        {
            Thread.Sleep(5);
        }

        var stillOut = Volatile.Read(ref outstanding);
        var cpuUsed = (serverCpuMs?.Invoke() ?? 0) - cpuBefore;
        var finished = total - Volatile.Read(ref dropped) - stillOut;
        var ok = 0;
        var done = new List<double>(total);
        foreach (var value in latency)
        {
            if (!double.IsNaN(value))
            {
                done.Add(value);
                ok++;
            }
        }

        done.Sort();
        Array.Sort(lag);
        var elapsed = (Interlocked.Read(ref lastDone) - start) / (double)Stopwatch.Frequency;
        return new StepResult(
            target,
            mix,
            rate,
            total,
            ok,
            Volatile.Read(ref errors) + stillOut,
            Volatile.Read(ref dropped),
            elapsed > 0 ? ok / elapsed : 0,
            Percentile(done, 0.50),
            Percentile(done, 0.99),
            Percentile(done, 0.999),
            done.Count > 0 ? done[^1] : double.NaN,
            Percentile(lag, 0.99),
            Volatile.Read(ref rss),
            serverCpuMs is null || finished <= 0 ? double.NaN : cpuUsed * 1000 / finished);
    }

    private static double Percentile(IReadOnlyList<double> sorted, double q)
    {
        if (sorted.Count == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(q * sorted.Count) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Count - 1)];
    }

    private static void InterlockedMax(ref long location, long value)
    {
        var current = Interlocked.Read(ref location);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref location, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
