using System.Globalization;
using System.Text;

namespace ExtProc.Tests.Cache;

/// <summary>
/// Random JSON documents and equivalent spellings of them (member order, whitespace, escapes), for the cache key
/// property tests. A node is a string, a raw number, true/false/null, a list (array) or a member list (object).
/// </summary>
internal sealed class RandomJson
{
    private static readonly string[] Words = ["hello", "weather", "Oslo", "naïve", "日本", "tab\there", "quote\"d", "back\\slash", "emoji 😀", "line\nbreak"];
    private readonly Random _random;

    public RandomJson(int seed) => _random = new Random(seed);

    public Random Random => _random;

    public object Value(int depth)
    {
        var pick = _random.Next(depth <= 0 ? 4 : 6);
        return pick switch
        {
            0 => Words[_random.Next(Words.Length)] + _random.Next(100),
            1 => new RawNumber(_random.Next(-1000, 1000).ToString(CultureInfo.InvariantCulture)),
            2 => _random.Next(2) == 0,
            3 => Null.Instance,
            4 => Enumerable.Range(0, _random.Next(4)).Select(_ => Value(depth - 1)).ToList(),
            _ => Object(depth - 1, _random.Next(1, 5)),
        };
    }

    public List<KeyValuePair<string, object>> Object(int depth, int members)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var list = new List<KeyValuePair<string, object>>();
        while (list.Count < members)
        {
            var word = Words[_random.Next(Words.Length)];
            var name = word[..Math.Min(3, word.Length)] + _random.Next(50);
            if (names.Add(name))
            {
                list.Add(new(name, Value(depth)));
            }
        }

        return list;
    }

    /// <summary>Writes <paramref name="value"/>; <paramref name="vary"/> shuffles members, adds whitespace and escapes characters.</summary>
    public string Write(object value, bool vary)
    {
        var text = new StringBuilder();
        Write(text, value, vary);
        return text.ToString();
    }

    private void Write(StringBuilder text, object value, bool vary)
    {
        Space(text, vary);
        switch (value)
        {
            case string s:
                WriteString(text, s, vary);
                break;
            case RawNumber n:
                text.Append(n.Text);
                break;
            case bool b:
                text.Append(b ? "true" : "false");
                break;
            case Null:
                text.Append("null");
                break;
            case List<object> items:
                text.Append('[');
                for (var i = 0; i < items.Count; i++)
                {
                    text.Append(i == 0 ? "" : ",");
                    Write(text, items[i], vary);
                }

                Space(text, vary);
                text.Append(']');
                break;
            case List<KeyValuePair<string, object>> members:
                var order = vary ? members.OrderBy(_ => _random.Next()).ToList() : members;
                text.Append('{');
                for (var i = 0; i < order.Count; i++)
                {
                    text.Append(i == 0 ? "" : ",");
                    Space(text, vary);
                    WriteString(text, order[i].Key, vary);
                    Space(text, vary);
                    text.Append(':');
                    Write(text, order[i].Value, vary);
                }

                Space(text, vary);
                text.Append('}');
                break;
        }

        Space(text, vary);
    }

    private void WriteString(StringBuilder text, string value, bool vary)
    {
        text.Append('"');
        foreach (var c in value)
        {
            // Surrogates stay raw: escaping one half of a pair would make invalid JSON.
            var escape = vary && !char.IsSurrogate(c) && _random.Next(4) == 0;
            switch (c)
            {
                case '"':
                    text.Append(escape ? "\\u0022" : "\\\"");
                    break;
                case '\\':
                    text.Append(escape ? "\\u005C" : "\\\\");
                    break;
                case '\n':
                    text.Append(escape ? "\\u000a" : "\\n");
                    break;
                case '\t':
                    text.Append(escape ? "\\u0009" : "\\t");
                    break;
                default:
                    if (escape || c < 0x20)
                    {
                        text.Append("\\u").Append(((int)c).ToString(_random.Next(2) == 0 ? "x4" : "X4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        text.Append(c);
                    }

                    break;
            }
        }

        text.Append('"');
    }

    private void Space(StringBuilder text, bool vary)
    {
        if (vary && _random.Next(3) == 0)
        {
            text.Append(" \n\t\r"[_random.Next(4)]);
        }
    }

    public sealed record RawNumber(string Text);

    public sealed class Null
    {
        public static readonly Null Instance = new();
    }
}
