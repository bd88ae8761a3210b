using ExtProc.Storage.InProcess;
using ExtProc.Tenancy.Config;
using StackExchange.Redis;

namespace ExtProc.Storage.Redis;

/// <summary>
/// MCP session bindings shared by every replica: <c>xp:s1:{session hash}</c> holds the owner, with an idle
/// expiry that each read from Redis renews (GETEX). A local cache answers repeat checks without a round trip
/// for up to a minute, so a session used through one replica costs Redis about one read a minute there.
/// Bindings never change owner, so a cached answer can only be stale about a session that ended, which the
/// MCP server itself then refuses (and its 404 removes the binding). Every call is raced against the budget
/// behind a <see cref="RedisGate"/>; while Redis is out, bindings made here are still known here, and other
/// replicas answer 404 for sessions they cannot check (the client initialises again): never an unchecked pass.
/// </summary>
internal sealed class RedisMcpSessionStore : IMcpSessionStore, IDisposable
{
    private const string KeyPrefix = "xp:s1:";

    // Binds when free or already ours (renewing the expiry); 0 when another owner holds it.
    private const string BindScript = """
        local owner = redis.call('GET', KEYS[1])
        if owner and owner ~= ARGV[1] then
          return 0
        end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        return 1
        """;

    private static readonly TimeSpan LocalTtl = TimeSpan.FromMinutes(1);

    private readonly IConnectionMultiplexer _connection;
    private readonly IDatabase _database;
    private readonly RedisGate _gate;
    private readonly InProcessMcpSessionStore _local;
    private readonly TimeSpan _budget;
    private readonly TimeSpan _idle;

    public RedisMcpSessionStore(IConnectionMultiplexer connection, McpSessionsConfig config, TimeProvider time)
    {
        _connection = connection;
        _database = connection.GetDatabase();
        _budget = config.CallBudget;
        _idle = config.Idle;
        _local = new InProcessMcpSessionStore(time, config.Idle < LocalTtl ? config.Idle : LocalTtl, config.Capacity, sliding: false);
        _gate = new RedisGate(connection, config.CallBudget, RedisGate.DefaultProbeInterval, static () => { });
    }

    /// <summary>True while Redis is considered out (tests, metrics).</summary>
    public bool SharedStoreOut => _gate.IsOpen;

    public ValueTask<string?> GetOwnerAsync(string sessionHash)
    {
        var local = _local.GetOwnerAsync(sessionHash);
#pragma warning disable VSTHRD103 // the in-process store completes synchronously: reading the result does not block
        return local.IsCompletedSuccessfully && local.Result is not null ? local : FromRedisAsync(sessionHash);
#pragma warning restore VSTHRD103
    }

    public async ValueTask<bool> BindAsync(string sessionHash, string owner)
    {
        if (!_gate.IsOpen)
        {
            try
            {
                var bound = (long)await CallAsync(() => _database.ScriptEvaluateAsync(BindScript, [Key(sessionHash)], [owner, (long)_idle.TotalMilliseconds])).ConfigureAwait(false) == 1;
                if (!bound)
                {
                    return false;
                }
            }
            catch (Exception ex) when (RedisCall.Failed(ex))
            {
                _gate.Trip();
            }
        }

        // Known here in any case: the replica that saw the initialize can check its own session during an outage.
        return await _local.BindAsync(sessionHash, owner).ConfigureAwait(false);
    }

    public async ValueTask RemoveAsync(string sessionHash)
    {
        await _local.RemoveAsync(sessionHash).ConfigureAwait(false);
        if (_gate.IsOpen)
        {
            return;
        }

        try
        {
            await CallAsync(() => _database.KeyDeleteAsync(Key(sessionHash))).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisCall.Failed(ex))
        {
            // The binding then ends by its idle expiry; the server has ended the session already.
            _gate.Trip();
        }
    }

    public void Dispose()
    {
        _gate.Dispose();
        _connection.Dispose();
    }

    private async ValueTask<string?> FromRedisAsync(string sessionHash)
    {
        if (_gate.IsOpen)
        {
            return null;
        }

        RedisValue owner;
        try
        {
            owner = await CallAsync(() => _database.StringGetSetExpiryAsync(Key(sessionHash), _idle)).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisCall.Failed(ex))
        {
            _gate.Trip();
            return null;
        }

        if (owner.IsNull)
        {
            return null;
        }

        var text = owner.ToString();
        await _local.BindAsync(sessionHash, text).ConfigureAwait(false);
        return text;
    }

    private Task<T> CallAsync<T>(Func<Task<T>> call) => RedisCall.WithinAsync(call, _budget);

    private static RedisKey Key(string sessionHash) => KeyPrefix + sessionHash;
}
