using BenchmarkDotNet.Running;
using ExtProc.Benchmarks.Infrastructure;

namespace ExtProc.Benchmarks;

/// <summary>
/// BenchmarkDotNet through <see cref="BenchmarkSwitcher"/> (any BDN argument: <c>--filter</c>, <c>--job short</c>, ...),
/// plus in-process modes without BDN: <c>--profile</c> (loop one benchmark for a profiler),
/// <c>--check-budget</c> / <c>--update-budget</c> (allocation budget), <c>--ratios</c> (interleaved
/// ratios to the baseline, for noisy machines), <c>--redis-faults</c> (faults.md L5/L6/L10 at full length
/// against a real redis-server) and <c>--list</c> (case keys).
/// </summary>
internal static class BenchmarkProgram
{
    private static int Main(string[] args)
    {
        if (args.Contains("--profile"))
        {
            return ProfileMode.Run(args);
        }

        if (args.Contains("--check-budget"))
        {
            return AllocationBudget.Run(args, update: false);
        }

        if (args.Contains("--update-budget"))
        {
            return AllocationBudget.Run(args, update: true);
        }

        if (args.Contains("--redis-faults"))
        {
            return Limits.RedisFaultRun.Run(args);
        }

        if (args.Contains("--ratios"))
        {
            return RatioMode.Run(args);
        }

        if (args.Contains("--list"))
        {
            foreach (var info in BenchmarkCatalog.All())
            {
                Console.WriteLine(info.Key);
            }

            return 0;
        }

        var config = BenchConfig.Create(args, out var remaining);
        var summaries = BenchmarkSwitcher.FromAssembly(typeof(BenchmarkProgram).Assembly).Run(remaining, config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
