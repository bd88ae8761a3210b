using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Validators;

namespace ExtProc.Benchmarks.Infrastructure;

/// <summary>
/// The one configuration every benchmark runs with (STYLE.md §21): allocations measured, a debug build
/// refused, server GC as the service runs. The job comes from <c>--job</c> (read here, not by BenchmarkDotNet,
/// so that every job keeps server GC): <c>dry</c>, <c>short</c> (the recorded runs), <c>medium</c>,
/// <c>long</c>, or <c>default</c> when absent.
/// </summary>
internal static class BenchConfig
{
    /// <summary>Builds the config and returns the arguments left for BenchmarkDotNet.</summary>
    public static IConfig Create(string[] args, out string[] remaining)
    {
        var job = Job.Default;
        var rest = new List<string>(args.Length);
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is "--job" or "-j" && i + 1 < args.Length)
            {
                job = args[++i].ToLowerInvariant() switch
                {
                    "dry" => Job.Dry,
                    "short" => Job.ShortRun,
                    "medium" => Job.MediumRun,
                    "long" => Job.LongRun,
                    "default" => Job.Default,
                    var other => throw new ArgumentException($"Unknown --job '{other}': use dry, short, medium, long or default."),
                };
                continue;
            }

            rest.Add(args[i]);
        }

        remaining = [.. rest];
        return ManualConfig.Create(DefaultConfig.Instance)
            .AddJob(job.WithGcServer(true))
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddValidator(JitOptimizationsValidator.FailOnError)
            .AddColumn(CategoriesColumn.Default)
            .AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByCategory)
            .WithSummaryStyle(SummaryStyle.Default.WithRatioStyle(RatioStyle.Value));
    }
}
