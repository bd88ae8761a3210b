using System.Collections.Concurrent;
using ExtProc.Protocols.Mcp;
using ExtProc.Storage;
using ExtProc.Storage.InProcess;
using ExtProc.Storage.Redis;
using ExtProc.Tenancy.Config;

namespace ExtProc.Stages.Mcp;

/// <summary>
/// The MCP state that outlives one request and one config snapshot: session bindings, requests in flight
/// per session, and the tools each server listed per tenant.
/// </summary>
internal sealed class McpGovernanceState : IDisposable
{
    private readonly TimeProvider _time;
    private readonly Dictionary<McpSessionsConfig, IMcpSessionStore> _stores = [];
    private readonly Lock _lock = new();

    public McpGovernanceState(TimeProvider time) => _time = time;

    /// <summary>The session store for these settings: one per process and settings, so reloads keep bindings.</summary>
    public IMcpSessionStore SessionsFor(McpSessionsConfig config)
    {
        lock (_lock)
        {
            if (!_stores.TryGetValue(config, out var store))
            {
                store = config.RedisEndpoint is { } endpoint
                    ? new RedisMcpSessionStore(ResilientLimitStore.Connect(endpoint, config.CallBudget), config, _time)
                    : new InProcessMcpSessionStore(_time, config.Idle, config.Capacity);
                _stores[config] = store;
            }

            return store;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var store in _stores.Values)
            {
                (store as IDisposable)?.Dispose();
            }

            _stores.Clear();
        }
    }

    public McpInFlightRequests InFlight { get; } = new();

    public McpToolCatalog Catalog { get; } = new(capacity: 100_000);
}

/// <summary>
/// Requests in flight keyed by (session, id), never by id alone: clients reuse ids (claude.ai sends id 1
/// every time) and servers that key by bare id cross-wire the answers (mcp.md §0.2).
/// </summary>
internal sealed class McpInFlightRequests
{
    private readonly ConcurrentDictionary<string, byte> _requests = new(StringComparer.Ordinal);

    public int Count => _requests.Count;

    /// <summary>Null when the same id is already in flight in the session; else a lease that ends it.</summary>
    public IDisposable? TryStart(string sessionHash, string idJson)
    {
        var key = sessionHash + "\n" + idJson;
        return _requests.TryAdd(key, 0) ? new Lease(_requests, key) : null;
    }

    private sealed class Lease : IDisposable
    {
        private ConcurrentDictionary<string, byte>? _owner;
        private readonly string _key;

        public Lease(ConcurrentDictionary<string, byte> owner, string key)
        {
            _owner = owner;
            _key = key;
        }

        public void Dispose()
        {
            Interlocked.Exchange(ref _owner, null)?.TryRemove(_key, out _);
        }
    }
}

/// <summary>
/// What each server's tools/list said, per tenant: the definition hash first seen (pinned, to detect a tool
/// that changes under its callers) and whether the server marks it destructive. Bounded: past the cap,
/// new tools are not learned, which leaves them "unknown" and so treated as destructive (fail closed).
/// </summary>
internal sealed class McpToolCatalog
{
    private readonly ConcurrentDictionary<(string Tenant, string Server, string Tool), ToolRecord> _tools = new();
    private readonly int _capacity;

    public McpToolCatalog(int capacity) => _capacity = capacity;

    /// <summary>Records a listed tool; true when its definition differs from the pinned one.</summary>
    public bool Learn(string tenant, string server, string tool, UInt128 hash, ToolAnnotations annotations)
    {
        var key = (tenant, server, tool);
        if (_tools.TryGetValue(key, out var known))
        {
            if (known.Hash == hash)
            {
                return known.Changed;
            }

            _tools[key] = known with { Changed = true, Destructive = known.Destructive || annotations.Destructive };
            return true;
        }

        if (_tools.Count < _capacity)
        {
            _tools.TryAdd(key, new ToolRecord(hash, annotations.Destructive, Changed: false));
        }

        return false;
    }

    public bool TryGet(string tenant, string server, string tool, out ToolRecord record) =>
        _tools.TryGetValue((tenant, server, tool), out record);
}

/// <param name="Destructive">Once any list called the tool destructive, it stays so for this catalog.</param>
internal readonly record struct ToolRecord(UInt128 Hash, bool Destructive, bool Changed);
