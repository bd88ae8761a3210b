using System.Collections.Concurrent;

namespace ExtProc.Storage.InProcess;

/// <summary>
/// The single-replica store: bindings expire after an idle time and the table has a size cap, so clients
/// that never DELETE their sessions cannot grow it without bound. Expired sessions answer 404, and MCP
/// clients then initialise again. Not sliding, it is the shared store's local cache: an entry lives
/// <c>idle</c> from when it was learnt, then Redis is asked again.
/// </summary>
internal sealed class InProcessMcpSessionStore : IMcpSessionStore
{
    private readonly ConcurrentDictionary<string, Entry> _sessions = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly TimeSpan _idle;
    private readonly int _capacity;
    private readonly bool _sliding;

    public InProcessMcpSessionStore(TimeProvider time, TimeSpan idle, int capacity, bool sliding = true)
    {
        _time = time;
        _idle = idle;
        _capacity = capacity;
        _sliding = sliding;
    }

    public int Count => _sessions.Count;

    public ValueTask<string?> GetOwnerAsync(string sessionHash)
    {
        if (!_sessions.TryGetValue(sessionHash, out var entry))
        {
            return new((string?)null);
        }

        var now = _time.GetTimestamp();
        if (_time.GetElapsedTime(entry.LastUsed, now) > _idle)
        {
            _sessions.TryRemove(new KeyValuePair<string, Entry>(sessionHash, entry));
            return new((string?)null);
        }

        if (_sliding)
        {
            entry.LastUsed = now;
        }

        return new(entry.Owner);
    }

    public ValueTask<bool> BindAsync(string sessionHash, string owner)
    {
        if (_sessions.Count >= _capacity)
        {
            Sweep();
        }

        var entry = _sessions.GetOrAdd(sessionHash, static (_, state) => new Entry(state.owner, state.now), (owner, now: _time.GetTimestamp()));
        return new(string.Equals(entry.Owner, owner, StringComparison.Ordinal));
    }

    public ValueTask RemoveAsync(string sessionHash)
    {
        _sessions.TryRemove(sessionHash, out _);
        return default;
    }

    /// <summary>Drops idle bindings; when none are idle, the oldest go so new sessions can still be made.</summary>
    private void Sweep()
    {
        var now = _time.GetTimestamp();
        foreach (var (key, entry) in _sessions)
        {
            if (_time.GetElapsedTime(entry.LastUsed, now) > _idle)
            {
                _sessions.TryRemove(key, out _);
            }
        }

        var excess = _sessions.Count - (_capacity * 9 / 10);
        foreach (var (key, _) in _sessions)
        {
            if (excess-- <= 0)
            {
                break;
            }

            _sessions.TryRemove(key, out _);
        }
    }

    private sealed class Entry
    {
        public Entry(string owner, long lastUsed)
        {
            Owner = owner;
            LastUsed = lastUsed;
        }

        public string Owner { get; }

        public long LastUsed { get; set; }
    }
}
