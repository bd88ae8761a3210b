using System.Diagnostics;

namespace ExtProc.Benchmarks.Infrastructure;

/// <summary>
/// <c>--profile Class.Method [--param Name=Value] [--seconds N]</c>: sets up one benchmark and calls it in
/// a loop, with no BenchmarkDotNet around it, for a profiler to attach to (<c>dotnet-trace</c>,
/// <c>dotnet-counters</c>, <c>perf</c>). Prints throughput and bytes per op once a second.
/// </summary>
internal static class ProfileMode
{
    public static int Run(string[] args)
    {
        var name = AllocationBudget.Option(args, "--profile");
        if (string.IsNullOrEmpty(name))
        {
            Console.Error.WriteLine("--profile needs a benchmark: Class.Method (see --list).");
            return 2;
        }

        var seconds = int.Parse(AllocationBudget.Option(args, "--seconds") ?? "30", System.Globalization.CultureInfo.InvariantCulture);
        var wanted = AllocationBudget.Options(args, "--param");
        var info = BenchmarkCatalog.All().FirstOrDefault(c =>
            string.Equals(c.Key, name, StringComparison.OrdinalIgnoreCase)
            || (string.Equals(c.Type.Name + "." + c.Method.Name, name, StringComparison.OrdinalIgnoreCase)
                && wanted.All(p => c.Key.Contains(p, StringComparison.OrdinalIgnoreCase))));
        if (info is null)
        {
            Console.Error.WriteLine($"No benchmark '{name}' with params [{string.Join(", ", wanted)}] (see --list).");
            return 2;
        }

        Console.WriteLine($"Profiling {info.Key} for {seconds} s (pid {Environment.ProcessId}, server GC: {System.Runtime.GCSettings.IsServerGC}).");
        using var prepared = info.Prepare();
        var total = Stopwatch.StartNew();
        var window = Stopwatch.StartNew();
        long operations = 0;
        var batch = 1;
        var allocatedAtWindow = GC.GetAllocatedBytesForCurrentThread();
        while (total.Elapsed.TotalSeconds < seconds)
        {
            prepared.Run(batch);
            operations += batch;
            if (window.ElapsedMilliseconds < 1_000)
            {
                batch = Math.Min(batch * 2, 65_536);
                continue;
            }

            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var ops = operations * prepared.OperationsPerInvoke;
            Console.WriteLine(
                $"{ops / window.Elapsed.TotalSeconds,14:N0} ops/s {window.Elapsed.TotalMilliseconds * 1_000_000 / ops,10:N1} ns/op {(double)(allocated - allocatedAtWindow) / ops,10:N1} B/op");
            operations = 0;
            allocatedAtWindow = allocated;
            window.Restart();
        }

        return 0;
    }
}
