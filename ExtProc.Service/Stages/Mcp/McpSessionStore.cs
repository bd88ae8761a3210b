using System.Collections.Concurrent;

namespace ExtProc.Stages.Mcp;

/// <summary>
/// Who initialised each MCP session: session ids are secrets, so only their hash is a key. A Redis-backed
/// store lets every replica check a binding made by another; the in-memory one serves a single replica.
/// </summary>
internal interface IMcpSessionStore
{
    /// <summary>The owner bound to the session, or null when the session is unknown or expired.</summary>
    ValueTask<string?> GetOwnerAsync(string sessionHash);

    /// <summary>Binds a new session; false when it is already bound to another owner.</summary>
    ValueTask<bool> BindAsync(string sessionHash, string owner);

    ValueTask RemoveAsync(string sessionHash);
}

/// <summary>
/// The single-replica store: bindings expire after an idle time and the table has a size cap, so clients
/// that never DELETE their sessions cannot grow it without bound. Expired sessions answer 404, and MCP
/// clients then initialise again.
/// </summary>
internal sealed class InMemoryMcpSessionStore : IMcpSessionStore
{
    private readonly ConcurrentDictionary<string, Entry> _sessions = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly TimeSpan _idle;
    private readonly int _capacity;

    public InMemoryMcpSessionStore(TimeProvider time, TimeSpan idle, int capacity)
    {
        _time = time;
        _idle = idle;
        _capacity = capacity;
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

        entry.LastUsed = now;
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
