using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Validators;

namespace ExtProc.Benchmarks.Infrastructure;

/// <summary>
/// The one configuration every benchmark runs with (STYLE.md §21): allocations measured, a debug build
/// refused, server GC as the service runs. The job is marked default so that command-line job options
/// (<c>--job short</c>, <c>--iterationCount</c>) refine it instead of replacing server GC.
/// </summary>
internal static class BenchConfig
{
    public static IConfig Create() =>
        ManualConfig.Create(DefaultConfig.Instance)
            .AddJob(Job.Default.WithGcServer(true).AsDefault())
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddValidator(JitOptimizationsValidator.FailOnError)
            .AddColumn(CategoriesColumn.Default)
            .AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByCategory)
            .WithSummaryStyle(SummaryStyle.Default.WithRatioStyle(RatioStyle.Value));
}
