using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ExtProc.Benchmarks.Infrastructure;

/// <summary>
/// <c>--check-budget</c> and <c>--update-budget</c>: every benchmark runs in this process, bytes allocated
/// per op are read from <see cref="GC.GetAllocatedBytesForCurrentThread"/> around a fixed number of calls,
/// and compared with <c>bench/allocation-budget.json</c> (Garnet's BDN_Benchmark_Config.json, in-process).
/// Every benchmark must have a budget and every budget a benchmark, so the file cannot go stale.
/// Deterministic: the benchmarks complete synchronously on this thread, so the count is exact; a call
/// that goes asynchronous is reported as an error rather than measured wrong.
/// </summary>
internal static class AllocationBudget
{
    private const int Warmup = 200;
    private static readonly TimeSpan WarmupTime = TimeSpan.FromMilliseconds(300);
    private const int Measured = 1_000;
    private const int Rounds = 3;
    private const double Headroom = 0.10;
    private const long MinimumHeadroomBytes = 64;

    public static int Run(string[] args, bool update)
    {
        var path = Option(args, "--budget") ?? FindBudgetFile();
        var filters = Options(args, "--filter");
        var measured = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var info in BenchmarkCatalog.All())
        {
            if (filters.Count > 0 && !filters.Any(f => info.Key.Contains(f, StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            measured[info.Key] = Measure(info);
        }

        return update ? Update(path, measured, partial: filters.Count > 0) : Check(path, measured, partial: filters.Count > 0);
    }

    /// <summary>
    /// Bytes allocated per operation: the least of a few rounds after a warm-up long enough for tiered JIT,
    /// pools and statics to settle, rounded to the nearest byte (the runtime's own one-off allocations,
    /// spread over a round, must not turn a 0 B benchmark into 1 B).
    /// </summary>
    internal static long Measure(BenchmarkCaseInfo info)
    {
        using var prepared = info.Prepare();
        var warm = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            prepared.Run(Warmup);
        }
        while (warm.Elapsed < WarmupTime);

        var best = long.MaxValue;
        for (var round = 0; round < Rounds; round++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            prepared.Run(Measured);
            var after = GC.GetAllocatedBytesForCurrentThread();
            best = Math.Min(best, after - before);
        }

        var operations = (long)Measured * prepared.OperationsPerInvoke;
        return (best + (operations / 2)) / operations;
    }

    private static int Check(string path, SortedDictionary<string, long> measured, bool partial)
    {
        var budgets = Load(path);
        var failures = 0;
        Console.WriteLine($"Allocation budget: {path}");
        Console.WriteLine($"{"benchmark",-72} {"B/op",9} {"budget",9}");
        foreach (var (key, bytes) in measured)
        {
            if (!budgets.TryGetValue(key, out var budget))
            {
                Console.WriteLine($"{key,-72} {bytes,9} {"-",9}  FAIL: no budget (run --update-budget and commit the file)");
                failures++;
                continue;
            }

            var verdict = bytes > budget ? "  FAIL: over budget" : "";
            failures += bytes > budget ? 1 : 0;
            Console.WriteLine($"{key,-72} {bytes,9} {budget,9}{verdict}");
        }

        if (!partial)
        {
            foreach (var key in budgets.Keys.Where(k => !measured.ContainsKey(k)))
            {
                Console.WriteLine($"{key,-72} {"-",9} {budgets[key],9}  FAIL: budget for a benchmark that no longer exists");
                failures++;
            }
        }

        Console.WriteLine(failures == 0 ? "Allocation budget: OK" : $"Allocation budget: {failures} failure(s)");
        return failures == 0 ? 0 : 1;
    }

    private static int Update(string path, SortedDictionary<string, long> measured, bool partial)
    {
        var root = File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path))!.AsObject() : [];
        var old = root["benchmarks"] as JsonObject;
        var benchmarks = new JsonObject();
        var keys = new SortedSet<string>(measured.Keys, StringComparer.Ordinal);
        if (partial && old is not null)
        {
            keys.UnionWith(old.Select(p => p.Key));
        }

        foreach (var key in keys)
        {
            if (measured.TryGetValue(key, out var bytes))
            {
                benchmarks[key] = new JsonObject { ["measured"] = bytes, ["budget"] = WithHeadroom(bytes) };
                Console.WriteLine($"{key,-72} {bytes,9} -> budget {WithHeadroom(bytes)}");
            }
            else
            {
                benchmarks[key] = old![key]!.DeepClone();
            }
        }

        var file = new JsonObject
        {
            ["$comment"] = "Bytes allocated per benchmark op, checked by `dotnet run -c Release --project bench/ExtProc.Benchmarks -- --check-budget`. "
                + "budget = measured + max(10%, 64 B), rounded up to 8; 0 stays 0. Regenerate with --update-budget and justify increases in the commit.",
            ["benchmarks"] = benchmarks,
        };
        File.WriteAllText(path, file.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
        Console.WriteLine($"Wrote {path}");
        return 0;
    }

    internal static long WithHeadroom(long measured)
    {
        if (measured == 0)
        {
            return 0;
        }

        var withRoom = measured + Math.Max((long)Math.Ceiling(measured * Headroom), MinimumHeadroomBytes);
        return (withRoom + 7) / 8 * 8;
    }

    private static Dictionary<string, long> Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"No allocation budget at {path}; create it with --update-budget.", path);
        }

        var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var budgets = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (key, value) in root["benchmarks"]!.AsObject())
        {
            budgets[key] = value!["budget"]!.GetValue<long>();
        }

        return budgets;
    }

    private static string FindBudgetFile()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "bench", "allocation-budget.json");
                if (File.Exists(candidate) || Directory.Exists(Path.Combine(dir.FullName, "bench", "ExtProc.Benchmarks")))
                {
                    return candidate;
                }
            }
        }

        throw new FileNotFoundException("Cannot find bench/allocation-budget.json above the current directory; pass --budget <path>.");
    }

    internal static string? Option(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }

    internal static List<string> Options(string[] args, string name)
    {
        var values = new List<string>();
        for (var i = 0; i < args.Length - 1; i++)
        {
            if (args[i] == name)
            {
                values.Add(args[i + 1]);
            }
        }

        return values;
    }
}
