using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace ExtProc.Benchmarks.Infrastructure;

/// <summary>
/// <c>--ratios [--filter text] [--rounds N]</c>: each case against its baseline, interleaved in one process.
/// A round times the baseline, then the case, then the baseline again, each for a fixed batch of about
/// 20 ms; the round's ratio is the case against the mean of the two baseline batches around it. The
/// median over the rounds (with the quartiles) is printed. Load that comes and goes on a shared machine
/// hits both sides of a round alike, so the ratio holds where BenchmarkDotNet's separate runs drift.
/// On Linux the time is the calling thread's CPU time (<c>CLOCK_THREAD_CPUTIME_ID</c>), not wall time:
/// while other work holds the cores this thread is not running and not counted. Work the server GC does
/// on its own threads is not counted either; allocations are reported by the budget mode.
/// A complement to BenchmarkDotNet, not a replacement: no outlier analysis, no separate process.
/// </summary>
internal static partial class RatioMode
{
    private static readonly TimeSpan BatchTime = TimeSpan.FromMilliseconds(20);

    public static int Run(string[] args)
    {
        var rounds = int.Parse(AllocationBudget.Option(args, "--rounds") ?? "15", CultureInfo.InvariantCulture);
        var filters = AllocationBudget.Options(args, "--filter");
        var cases = BenchmarkCatalog.All();

        // One warm-up pass over every case first: the first cases measured in a cold process otherwise
        // still see code being re-jitted (tiered PGO) in their rounds when the machine is busy.
        foreach (var info in cases)
        {
            using var prepared = info.Prepare();
            Calibrate(prepared, TimeSpan.FromMilliseconds(300));
        }

        Console.WriteLine($"Interleaved ratios, {rounds} rounds, {ClockName}, server GC: {System.Runtime.GCSettings.IsServerGC}");
        Console.WriteLine($"{"benchmark",-64} {"ns/op",10} {"ratio",8} {"q1",7} {"q3",7}");
        foreach (var group in cases.GroupBy(c => (c.Group, c.Category)))
        {
            var baseline = group.FirstOrDefault(c => c.IsBaseline);
            var targets = group.Where(c => !c.IsBaseline && (filters.Count == 0 || filters.Any(f => c.Key.Contains(f, StringComparison.OrdinalIgnoreCase)))).ToList();
            if (baseline is null || targets.Count == 0)
            {
                continue;
            }

            using var reference = baseline.Prepare();
            var referenceBatch = Calibrate(reference, TimeSpan.FromSeconds(1));
            var referenceTimes = new List<double>();
            foreach (var target in targets)
            {
                using var prepared = target.Prepare();
                var batch = Calibrate(prepared, TimeSpan.FromSeconds(1));
                var ratios = new double[rounds];
                var times = new double[rounds];
                for (var round = 0; round < rounds; round++)
                {
                    var before = Time(reference, referenceBatch);
                    var time = Time(prepared, batch);
                    var after = Time(reference, referenceBatch);
                    referenceTimes.Add(before);
                    referenceTimes.Add(after);
                    times[round] = time;
                    ratios[round] = time / ((before + after) / 2);
                }

                Array.Sort(ratios);
                Array.Sort(times);
                Console.WriteLine($"{target.Key,-64} {times[rounds / 2],10:N1} {ratios[rounds / 2],8:N2} {ratios[rounds / 4],7:N2} {ratios[rounds * 3 / 4],7:N2}");
            }

            referenceTimes.Sort();
            Console.WriteLine($"{baseline.Key + " (baseline)",-64} {referenceTimes[referenceTimes.Count / 2],10:N1} {1.0,8:N2}");
        }

        return 0;
    }

    /// <summary>
    /// Warms the case up for at least <paramref name="warmup"/> (tiered JIT, pools and statics settle; a cold
    /// first call must not set the batch size), then returns how many calls take about <see cref="BatchTime"/>.
    /// </summary>
    private static int Calibrate(PreparedCase prepared, TimeSpan warmup)
    {
        var batch = 1;
        var total = Stopwatch.StartNew();
        var watch = new Stopwatch();
        while (true)
        {
            watch.Restart();
            prepared.Run(batch);
            watch.Stop();
            if (total.Elapsed >= warmup && watch.Elapsed >= BatchTime / 4)
            {
                break;
            }

            if (watch.Elapsed < BatchTime && batch < 1 << 24)
            {
                batch *= 2;
            }
        }

        return (int)Math.Max(1, batch * BatchTime.TotalMilliseconds / Math.Max(watch.Elapsed.TotalMilliseconds, 0.001));
    }

    /// <summary>Nanoseconds (thread CPU time where available) per operation over one batch.</summary>
    private static double Time(PreparedCase prepared, int batch)
    {
        var start = Now();
        prepared.Run(batch);
        return (Now() - start) / ((double)batch * prepared.OperationsPerInvoke);
    }

    private static readonly bool ThreadClock = OperatingSystem.IsLinux() && TryThreadCpu(out _);

    public static string ClockName => ThreadClock ? "thread CPU time" : "wall time";

    private static double Now() =>
        ThreadClock && TryThreadCpu(out var ns) ? ns : Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency);

    private static bool TryThreadCpu(out double nanoseconds)
    {
        const int ClockThreadCpuTimeId = 3;
        if (ClockGetTime(ClockThreadCpuTimeId, out var time) != 0)
        {
            nanoseconds = 0;
            return false;
        }

        nanoseconds = (time.Seconds * 1e9) + time.Nanoseconds;
        return true;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
