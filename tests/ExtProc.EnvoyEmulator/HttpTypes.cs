using System.Text;

namespace ExtProc.EnvoyEmulator;

/// <summary>
/// An ordered HTTP header list as Envoy keeps it: lower-case keys, raw byte values, pseudo-headers first,
/// repeated headers as repeated entries.
/// </summary>
public sealed class HttpHeaderList : IEnumerable<KeyValuePair<string, byte[]>>
{
    private readonly List<KeyValuePair<string, byte[]>> _entries = [];

    public HttpHeaderList()
    {
    }

    public HttpHeaderList(IEnumerable<(string Key, string Value)> headers)
    {
        foreach (var (key, value) in headers)
        {
            Add(key, value);
        }
    }

    public int Count => _entries.Count;

    /// <summary>Envoy's byte size: sum of key and value lengths.</summary>
    public int ByteSize
    {
        get
        {
            var size = 0;
            foreach (var entry in _entries)
            {
                size += entry.Key.Length + entry.Value.Length;
            }

            return size;
        }
    }

    public IReadOnlyList<KeyValuePair<string, byte[]>> Entries => _entries;

    public static HttpHeaderList Of(params (string Key, string Value)[] headers) => new(headers);

    public HttpHeaderList Add(string key, string value) => Add(key, Encoding.UTF8.GetBytes(value));

    public HttpHeaderList Add(string key, byte[] value)
    {
        key = key.ToLowerInvariant();
        if (key.StartsWith(':'))
        {
            // Pseudo-headers stay in front, in insertion order.
            var index = 0;
            while (index < _entries.Count && _entries[index].Key.StartsWith(':'))
            {
                index++;
            }

            _entries.Insert(index, new(key, value));
        }
        else
        {
            _entries.Add(new(key, value));
        }

        return this;
    }

    /// <summary>Replaces all values of <paramref name="key"/> by one value, keeping the first position.</summary>
    public void Set(string key, byte[] value)
    {
        key = key.ToLowerInvariant();
        var index = _entries.FindIndex(e => e.Key == key);
        if (index < 0)
        {
            Add(key, value);
            return;
        }

        _entries[index] = new(key, value);
        for (var i = _entries.Count - 1; i > index; i--)
        {
            if (_entries[i].Key == key)
            {
                _entries.RemoveAt(i);
            }
        }
    }

    public void Set(string key, string value) => Set(key, Encoding.UTF8.GetBytes(value));

    public bool Remove(string key)
    {
        key = key.ToLowerInvariant();
        return _entries.RemoveAll(e => e.Key == key) > 0;
    }

    public bool Contains(string key)
    {
        key = key.ToLowerInvariant();
        return _entries.Exists(e => e.Key == key);
    }

    public byte[]? GetRaw(string key)
    {
        key = key.ToLowerInvariant();
        foreach (var entry in _entries)
        {
            if (entry.Key == key)
            {
                return entry.Value;
            }
        }

        return null;
    }

    /// <summary>First value as UTF-8 text, or null.</summary>
    public string? Get(string key) => GetRaw(key) is { } raw ? Encoding.UTF8.GetString(raw) : null;

    public IReadOnlyList<string> GetAll(string key)
    {
        key = key.ToLowerInvariant();
        var values = new List<string>();
        foreach (var entry in _entries)
        {
            if (entry.Key == key)
            {
                values.Add(Encoding.UTF8.GetString(entry.Value));
            }
        }

        return values;
    }

    public IReadOnlyList<string> Keys()
    {
        var keys = new List<string>(_entries.Count);
        foreach (var entry in _entries)
        {
            keys.Add(entry.Key);
        }

        return keys;
    }

    public HttpHeaderList Clone()
    {
        var copy = new HttpHeaderList();
        foreach (var entry in _entries)
        {
            copy._entries.Add(new(entry.Key, (byte[])entry.Value.Clone()));
        }

        return copy;
    }

    public IEnumerator<KeyValuePair<string, byte[]>> GetEnumerator() => _entries.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var entry in _entries)
        {
            sb.Append(entry.Key).Append(": ").Append(Encoding.UTF8.GetString(entry.Value)).Append('\n');
        }

        return sb.ToString();
    }
}

/// <summary>One event of an HTTP stream in one direction.</summary>
public abstract record HttpFrame;

public sealed record HeadersFrame(HttpHeaderList Headers, bool EndStream) : HttpFrame;

public sealed record DataFrame(ReadOnlyMemory<byte> Data, bool EndStream) : HttpFrame
{
    public static DataFrame Of(string text, bool endStream = false) => new(Encoding.UTF8.GetBytes(text), endStream);
}

public sealed record TrailersFrame(HttpHeaderList Trailers) : HttpFrame;

/// <summary>The stream was reset (no graceful end).</summary>
public sealed record ResetFrame(string Reason) : HttpFrame;

public enum HttpProtocol
{
    Http1,
    Http2,
}
