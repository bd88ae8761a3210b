namespace ExtProc.Pipeline;

/// <summary>
/// The headers of one HTTP message as Envoy sent them: lower-case names, raw value bytes, Envoy's order,
/// repeated headers as repeated entries. Values reference the received buffers (no copies).
/// </summary>
internal sealed class HttpHeaderList
{
    private (string Name, ReadOnlyMemory<byte> Value)[] _entries;
    private int _count;

    public HttpHeaderList(int capacity = 16) => _entries = new (string, ReadOnlyMemory<byte>)[Math.Max(capacity, 1)];

    public int Count => _count;

    public (string Name, ReadOnlyMemory<byte> Value) this[int index] =>
        (uint)index < (uint)_count ? _entries[index] : throw new ArgumentOutOfRangeException(nameof(index));

    public void Add(string name, ReadOnlyMemory<byte> value)
    {
        if (_count == _entries.Length)
        {
            Array.Resize(ref _entries, _entries.Length * 2);
        }

        _entries[_count++] = (name, value);
    }

    /// <summary>Finds the only value of <paramref name="name"/>; false when absent or repeated.</summary>
    public bool TryGetSingle(string name, out ReadOnlyMemory<byte> value)
    {
        value = default;
        var found = false;
        for (var i = 0; i < _count; i++)
        {
            if (string.Equals(_entries[i].Name, name, StringComparison.Ordinal))
            {
                if (found)
                {
                    value = default;
                    return false;
                }

                value = _entries[i].Value;
                found = true;
            }
        }

        return found;
    }

    /// <summary>How many entries carry <paramref name="name"/>.</summary>
    public int CountOf(string name)
    {
        var n = 0;
        for (var i = 0; i < _count; i++)
        {
            if (string.Equals(_entries[i].Name, name, StringComparison.Ordinal))
            {
                n++;
            }
        }

        return n;
    }

    public bool Contains(string name) => CountOf(name) > 0;
}
