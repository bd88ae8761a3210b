using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ExtProc.Tenancy.Config;

/// <summary>
/// Strict reading of the configuration tree (YAML, and JSON, which YAML reads too). Every problem is
/// collected with its path and line instead of stopping at the first one, and every key a reader did
/// not ask for is reported as unknown.
/// </summary>
internal sealed class ConfigErrors
{
    private readonly List<string> _errors = [];

    public IReadOnlyList<string> All => _errors;

    public int Count => _errors.Count;

    public void Add(string path, YamlNode? node, string message)
    {
        var where = node is null || node.Start.Line == 0 ? "" : string.Create(CultureInfo.InvariantCulture, $" (line {node.Start.Line})");
        _errors.Add($"{(path.Length == 0 ? "(root)" : path)}: {message}{where}");
    }

    public void Add(string path, string message) => Add(path, null, message);

    /// <summary>Parses the text into its root node, or records why it cannot.</summary>
    public YamlNode? Parse(string text)
    {
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            if (stream.Documents.Count == 0)
            {
                Add("", "the file is empty");
                return null;
            }

            if (stream.Documents.Count > 1)
            {
                Add("", "the file holds more than one YAML document");
                return null;
            }

            return stream.Documents[0].RootNode;
        }
        catch (YamlException ex)
        {
            Add("", string.Create(CultureInfo.InvariantCulture, $"not valid YAML/JSON at line {ex.Start.Line}, column {ex.Start.Column}: {ex.Message}"));
            return null;
        }
        catch (ArgumentException ex)
        {
            // YamlDotNet reports a repeated key of a mapping this way.
            Add("", "not valid YAML/JSON: " + ex.Message);
            return null;
        }
    }
}

/// <summary>Reads one mapping: typed getters mark keys as used; <see cref="Finish"/> reports the rest.</summary>
internal sealed class MapReader
{
    private readonly Dictionary<string, (YamlNode Key, YamlNode Value)> _entries = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    private MapReader(ConfigErrors errors, string path, YamlMappingNode node)
    {
        Errors = errors;
        Path = path;
        Node = node;
        foreach (var (key, value) in node.Children)
        {
            if (key is not YamlScalarNode { Value: { } name })
            {
                errors.Add(path, key, "keys must be plain strings");
                continue;
            }

            if (!_entries.TryAdd(name, (key, value)))
            {
                errors.Add(Child(path, name), key, "key appears more than once");
            }
        }
    }

    public ConfigErrors Errors { get; }

    public string Path { get; }

    public YamlMappingNode Node { get; }

    public IEnumerable<KeyValuePair<string, YamlNode>> Entries
    {
        get
        {
            foreach (var (name, entry) in _entries)
            {
                _used.Add(name);
                yield return new(name, entry.Value);
            }
        }
    }

    public static MapReader? Open(ConfigErrors errors, string path, YamlNode? node)
    {
        if (node is null || IsNull(node))
        {
            return null;
        }

        if (node is not YamlMappingNode mapping)
        {
            errors.Add(path, node, "must be a mapping");
            return null;
        }

        return new MapReader(errors, path, mapping);
    }

    public static string Child(string path, string name) => path.Length == 0 ? name : path + "." + name;

    public string PathOf(string name) => Child(Path, name);

    public YamlNode? Take(string name)
    {
        _used.Add(name);
        return _entries.TryGetValue(name, out var entry) && !IsNull(entry.Value) ? entry.Value : null;
    }

    public bool Has(string name) => _entries.ContainsKey(name);

    public MapReader? Map(string name, bool required = false)
    {
        var node = Take(name);
        if (node is null)
        {
            if (required)
            {
                Errors.Add(PathOf(name), Node, "is required");
            }

            return null;
        }

        return Open(Errors, PathOf(name), node);
    }

    public string? String(string name, bool required = false)
    {
        var node = Take(name);
        if (node is null)
        {
            if (required)
            {
                Errors.Add(PathOf(name), Node, "is required");
            }

            return null;
        }

        if (node is not YamlScalarNode scalar || scalar.Value is null)
        {
            Errors.Add(PathOf(name), node, "must be a string");
            return null;
        }

        return scalar.Value;
    }

    public bool? Bool(string name)
    {
        var text = Scalar(name, "true or false");
        if (text is null)
        {
            return null;
        }

        if (text is "true" or "false")
        {
            return text == "true";
        }

        Errors.Add(PathOf(name), _entries[name].Value, "must be true or false");
        return null;
    }

    public int? Int(string name, int min, int max)
    {
        var text = Scalar(name, "an integer");
        if (text is null)
        {
            return null;
        }

        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
        {
            return value;
        }

        Errors.Add(PathOf(name), _entries[name].Value, string.Create(CultureInfo.InvariantCulture, $"must be an integer from {min} to {max}"));
        return null;
    }

    /// <summary>A duration as "00:00:30" or "30s", "5m", "1h", "250ms".</summary>
    public TimeSpan? Duration(string name, TimeSpan min, TimeSpan max)
    {
        var text = Scalar(name, "a duration");
        if (text is null)
        {
            return null;
        }

        if (TryParseDuration(text, out var value) && value >= min && value <= max)
        {
            return value;
        }

        Errors.Add(PathOf(name), _entries[name].Value, $"must be a duration from {min} to {max} (e.g. \"00:00:30\" or \"30s\")");
        return null;
    }

    public DateTimeOffset? Timestamp(string name)
    {
        var text = Scalar(name, "a timestamp");
        if (text is null)
        {
            return null;
        }

        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var value)
            && (text.EndsWith('Z') || text.Contains('+') || text.LastIndexOf('-') > 9))
        {
            return value;
        }

        Errors.Add(PathOf(name), _entries[name].Value, "must be an ISO 8601 timestamp with a zone, e.g. 2027-01-01T00:00:00Z");
        return null;
    }

    /// <summary>A list of strings; null when absent, so callers can tell "absent" from "empty".</summary>
    public List<string>? StringList(string name, bool required = false)
    {
        var node = Take(name);
        if (node is null)
        {
            if (required)
            {
                Errors.Add(PathOf(name), Node, "is required");
            }

            return null;
        }

        if (node is not YamlSequenceNode sequence)
        {
            Errors.Add(PathOf(name), node, "must be a list of strings");
            return null;
        }

        var list = new List<string>(sequence.Children.Count);
        for (var i = 0; i < sequence.Children.Count; i++)
        {
            if (sequence.Children[i] is YamlScalarNode { Value: { Length: > 0 } value } && !IsNull(sequence.Children[i]))
            {
                list.Add(value);
            }
            else
            {
                Errors.Add(string.Create(CultureInfo.InvariantCulture, $"{PathOf(name)}[{i}]"), sequence.Children[i], "must be a non-empty string");
            }
        }

        return list;
    }

    public YamlSequenceNode? Sequence(string name)
    {
        var node = Take(name);
        if (node is null)
        {
            return null;
        }

        if (node is not YamlSequenceNode sequence)
        {
            Errors.Add(PathOf(name), node, "must be a list");
            return null;
        }

        return sequence;
    }

    /// <summary>Reports every key no getter asked for.</summary>
    public void Finish()
    {
        foreach (var (name, entry) in _entries)
        {
            if (!_used.Contains(name))
            {
                Errors.Add(PathOf(name), entry.Key, "unknown key");
            }
        }
    }

    internal static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        text = text.Trim();
        if (text.Contains(':'))
        {
            return TimeSpan.TryParseExact(text, "c", CultureInfo.InvariantCulture, out value);
        }

        (string Suffix, double Scale)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];
        foreach (var (suffix, scale) in units)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal)
                && double.TryParse(text.AsSpan(0, text.Length - suffix.Length), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number)
                && double.IsFinite(number))
            {
                value = TimeSpan.FromMilliseconds(number * scale);
                return true;
            }
        }

        return false;
    }

    private string? Scalar(string name, string what)
    {
        var node = Take(name);
        if (node is null)
        {
            return null;
        }

        if (node is not YamlScalarNode { Value: { } text })
        {
            Errors.Add(PathOf(name), node, "must be " + what);
            return null;
        }

        return text;
    }

    private static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: null or "" or "~" or "null" or "Null" or "NULL" };
}
