using System.Globalization;

namespace ExtProc.LoadGen;

/// <summary><c>--name value</c> pairs and bare <c>--flag</c>s.</summary>
internal sealed class Args
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public Args(IEnumerable<string> args)
    {
        string? pending = null;
        foreach (var arg in args)
        {
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                if (pending is not null)
                {
                    _values[pending] = "true";
                }

                pending = arg[2..];
            }
            else if (pending is not null)
            {
                _values[pending] = arg;
                pending = null;
            }
        }

        if (pending is not null)
        {
            _values[pending] = "true";
        }
    }

    public bool Has(string name) => _values.ContainsKey(name);

    public string String(string name, string? fallback = null) =>
        _values.TryGetValue(name, out var v) ? v : fallback ?? throw new ArgumentException($"--{name} is required");

    public int Int(string name, int? fallback = null) =>
        _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture)
        : fallback ?? throw new ArgumentException($"--{name} is required");

    public IReadOnlyList<int> Ints(string name, IReadOnlyList<int> fallback) =>
        _values.TryGetValue(name, out var v)
            ? [.. v.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture))]
            : fallback;

    public IReadOnlyList<string> List(string name) =>
        _values.TryGetValue(name, out var v) ? v.Split(',', StringSplitOptions.RemoveEmptyEntries) : [];
}
