using System.Globalization;
using System.Reflection;
using BenchmarkDotNet.Attributes;

namespace ExtProc.Benchmarks.Infrastructure;

/// <summary>
/// The benchmarks of this assembly as plain, runnable cases (one per method and [Params] combination),
/// for the modes that run without BenchmarkDotNet: <c>--profile</c> and <c>--check-budget</c>.
/// A case's key is <c>Class.Method</c>, followed by <c>(Name=value,...)</c> when the class has params.
/// </summary>
internal static class BenchmarkCatalog
{
    public static IReadOnlyList<BenchmarkCaseInfo> All()
    {
        var cases = new List<BenchmarkCaseInfo>();
        var types = typeof(BenchmarkCatalog).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false, IsPublic: true } && t.GetMethods().Any(m => m.IsDefined(typeof(BenchmarkAttribute))))
            .OrderBy(t => t.Name, StringComparer.Ordinal);
        foreach (var type in types)
        {
            var methods = type.GetMethods(BindingFlags.Public | BindingFlags.Instance)
                .Where(m => m.IsDefined(typeof(BenchmarkAttribute)))
                .OrderBy(m => m.MetadataToken);
            foreach (var parameters in ParameterSets(type))
            {
                foreach (var method in methods)
                {
                    cases.Add(new BenchmarkCaseInfo(type, method, parameters));
                }
            }
        }

        return cases;
    }

    private static List<IReadOnlyList<(PropertyInfo Property, object? Value)>> ParameterSets(Type type)
    {
        var sets = new List<IReadOnlyList<(PropertyInfo, object?)>> { Array.Empty<(PropertyInfo, object?)>() };
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetCustomAttribute<ParamsAttribute>() is not { } attribute)
            {
                continue;
            }

            var next = new List<IReadOnlyList<(PropertyInfo, object?)>>();
            foreach (var set in sets)
            {
                foreach (var value in attribute.Values)
                {
                    next.Add([.. set, (property, value)]);
                }
            }

            sets = next;
        }

        if (type.GetFields(BindingFlags.Public | BindingFlags.Instance).Any(f => f.IsDefined(typeof(ParamsAttribute))))
        {
            throw new NotSupportedException($"{type.Name}: put [Params] on properties; fields are not supported by the in-process modes.");
        }

        return sets;
    }
}

/// <summary>One benchmark method with one set of parameter values.</summary>
internal sealed class BenchmarkCaseInfo
{
    public BenchmarkCaseInfo(Type type, MethodInfo method, IReadOnlyList<(PropertyInfo Property, object? Value)> parameters)
    {
        Type = type;
        Method = method;
        Parameters = parameters;
        var name = type.Name + "." + method.Name;
        Key = parameters.Count == 0
            ? name
            : name + "(" + string.Join(",", parameters.Select(p => p.Property.Name + "=" + Convert.ToString(p.Value, CultureInfo.InvariantCulture))) + ")";
        var benchmark = method.GetCustomAttribute<BenchmarkAttribute>()!;
        OperationsPerInvoke = benchmark.OperationsPerInvoke;
        IsBaseline = benchmark.Baseline;
        Category = string.Join(",", method.GetCustomAttributes<BenchmarkCategoryAttribute>().SelectMany(c => c.Categories));
    }

    public bool IsBaseline { get; }

    /// <summary>The method's categories; a baseline is compared with the cases of its own category.</summary>
    public string Category { get; }

    /// <summary>The class and parameter values: cases with the same group and category share a baseline.</summary>
    public string Group => Key[..Key.IndexOf('.', StringComparison.Ordinal)] + (Parameters.Count == 0 ? "" : Key[Key.IndexOf('(', StringComparison.Ordinal)..]);

    public Type Type { get; }

    public MethodInfo Method { get; }

    public IReadOnlyList<(PropertyInfo Property, object? Value)> Parameters { get; }

    public string Key { get; }

    public int OperationsPerInvoke { get; }

    /// <summary>Creates the benchmark instance, sets its params and runs its [GlobalSetup].</summary>
    public PreparedCase Prepare()
    {
        var instance = Activator.CreateInstance(Type)!;
        foreach (var (property, value) in Parameters)
        {
            property.SetValue(instance, value);
        }

        Invoke<GlobalSetupAttribute>(instance);
        return new PreparedCase(this, instance);
    }

    internal void Invoke<TAttribute>(object instance)
        where TAttribute : TargetedAttribute
    {
        foreach (var method in Type.GetMethods(BindingFlags.Public | BindingFlags.Instance))
        {
            var attribute = method.GetCustomAttribute<TAttribute>();
            if (attribute is not null && (attribute.Targets is null or { Length: 0 } || attribute.Targets.Contains(Method.Name)))
            {
                method.Invoke(instance, null);
            }
        }
    }
}

/// <summary>
/// A set-up benchmark, bound to a delegate so that calling it costs no reflection and allocates
/// nothing of its own: what <see cref="Run"/> allocates is what the benchmark method allocates.
/// </summary>
internal sealed class PreparedCase : IDisposable
{
    private readonly BenchmarkCaseInfo _info;
    private readonly object _instance;
    private readonly Action<int> _run;

    public PreparedCase(BenchmarkCaseInfo info, object instance)
    {
        _info = info;
        _instance = instance;
        var method = info.Method;
        if (method.ReturnType == typeof(ValueTask))
        {
            var call = method.CreateDelegate<Func<ValueTask>>(instance);
            _run = count => RunValueTask(call, count);
        }
        else if (method.ReturnType == typeof(Task))
        {
            var call = method.CreateDelegate<Func<Task>>(instance);
            _run = count => RunTask(call, count);
        }
        else if (method.ReturnType == typeof(void))
        {
            var call = method.CreateDelegate<Action>(instance);
            _run = count =>
            {
                for (var i = 0; i < count; i++)
                {
                    call();
                }
            };
        }
        else
        {
            var bind = typeof(PreparedCase).GetMethod(nameof(BindResult), BindingFlags.NonPublic | BindingFlags.Static)!
                .MakeGenericMethod(method.ReturnType);
            _run = (Action<int>)bind.Invoke(null, [method, instance])!;
        }
    }

    public int OperationsPerInvoke => _info.OperationsPerInvoke;

    /// <summary>Calls the benchmark method <paramref name="count"/> times, waiting for each call.</summary>
    public void Run(int count) => _run(count);

    public void Dispose() => _info.Invoke<GlobalCleanupAttribute>(_instance);

    private static void RunValueTask(Func<ValueTask> call, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var pending = call();
            if (pending.IsCompletedSuccessfully)
            {
                continue;
            }

            pending.AsTask().GetAwaiter().GetResult();
        }
    }

    private static void RunTask(Func<Task> call, int count)
    {
        for (var i = 0; i < count; i++)
        {
            call().GetAwaiter().GetResult();
        }
    }

    private static Action<int> BindResult<T>(MethodInfo method, object instance)
    {
        var call = method.CreateDelegate<Func<T>>(instance);
        return count =>
        {
            T last = default!;
            for (var i = 0; i < count; i++)
            {
                last = call();
            }

            GC.KeepAlive(last);
        };
    }
}
