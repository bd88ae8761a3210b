using System.Globalization;
using StackExchange.Redis;

namespace ExtProc.Storage.Redis;

/// <summary>
/// Counters in Redis, shared by every replica: exactly one atomic Lua script per admission and one per
/// settlement (no read-then-write across round trips, faults.md §0.6), windows on Redis <c>TIME</c> so replica
/// clocks do not matter (L3), idempotent by reservation id (L7). Each call is raced against a hard budget
/// by <see cref="ResilientLimitStore"/>; this class only speaks Redis. Keys: see <see cref="LimitKeys"/>.
/// </summary>
internal sealed class RedisLimitStore : ILimitStore
{
    // KEYS[1] reservation record; KEYS[2..n+1] counter base keys.
    // ARGV[1] reservation id, ARGV[2] lease ms, then per counter: kind, limit, window ms, amount, period start ms,
    // period end ms (calendar counters with known bounds; 0 otherwise, and the window is their lifetime).
    // Returns {admitted, failed index (0 = none, -1 = a calendar period the replica named is not Redis' current one),
    // used_1, reset_1, ..., used_n, reset_n, Redis now ms}.
    private const string ReserveScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local id = ARGV[1]
        local lease = tonumber(ARGV[2])
        local n = #KEYS - 1
        local dup = redis.call('EXISTS', KEYS[1]) == 1
        local out = {0, 0}
        out[3 + 2 * n] = now
        local full = {}
        local stale = false
        for i = 1, n do
          local base = 3 + (i - 1) * 6
          local kind = ARGV[base]
          local limit = tonumber(ARGV[base + 1])
          local window = tonumber(ARGV[base + 2])
          local amount = tonumber(ARGV[base + 3])
          local key = KEYS[i + 1]
          local used, reset
          if kind == 'w' then
            key = key .. ':' .. math.floor(now / window)
            used = tonumber(redis.call('GET', key) or '0')
            reset = window - (now % window)
          elseif kind == 'c' then
            local start = tonumber(ARGV[base + 4])
            local finish = tonumber(ARGV[base + 5])
            if finish > 0 and (now < start or now >= finish) then
              stale = true
            end
            used = tonumber(redis.call('GET', key) or '0')
            reset = window
            if finish > 0 then
              reset = math.max(1, finish - now)
            end
          else
            redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
            used = redis.call('ZCARD', key)
            reset = 1000
            amount = 1
          end
          full[i] = key
          out[1 + 2 * i] = used
          out[2 + 2 * i] = reset
          if (not dup) and out[2] == 0 and used + amount > limit then
            out[2] = i
          end
        end
        if dup then
          out[1] = 1
          return out
        end
        if stale then
          out[2] = -1
          return out
        end
        if out[2] ~= 0 then
          return out
        end
        for i = 1, n do
          local base = 3 + (i - 1) * 6
          local kind = ARGV[base]
          local window = tonumber(ARGV[base + 2])
          local amount = tonumber(ARGV[base + 3])
          local key = full[i]
          if kind == 'q' then
            redis.call('ZADD', key, now + lease, id)
            redis.call('PEXPIRE', key, lease)
            amount = 1
          else
            redis.call('INCRBY', key, amount)
            if kind == 'w' then
              redis.call('PEXPIRE', key, window * 2)
            else
              redis.call('PEXPIRE', key, out[2 + 2 * i])
            end
          end
          out[1 + 2 * i] = out[1 + 2 * i] + amount
          redis.call('HSET', KEYS[1], 'k' .. i, key, 't' .. i, kind, 'a' .. i, amount)
        end
        redis.call('HSET', KEYS[1], 'n', n)
        redis.call('PEXPIRE', KEYS[1], lease)
        out[1] = 1
        return out
        """;

    // KEYS[1] reservation record; ARGV[1] reservation id, ARGV[2..n+1] actual amount per counter (-1 keeps).
    // A counter whose window already ended is not recreated (it would have no expiry).
    private const string SettleScript = """
        local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
        if n == 0 then
          return 0
        end
        for i = 1, n do
          local key = redis.call('HGET', KEYS[1], 'k' .. i)
          local kind = redis.call('HGET', KEYS[1], 't' .. i)
          if kind == 'q' then
            redis.call('ZREM', key, ARGV[1])
          else
            local actual = tonumber(ARGV[i + 1] or '-1')
            if actual >= 0 and redis.call('EXISTS', key) == 1 then
              local delta = actual - tonumber(redis.call('HGET', KEYS[1], 'a' .. i))
              if delta ~= 0 then
                local value = redis.call('INCRBY', key, delta)
                if value < 0 then
                  redis.call('INCRBY', key, -value)
                end
              end
            end
          end
        end
        redis.call('DEL', KEYS[1])
        return 1
        """;

    private readonly IDatabase _database;

    public RedisLimitStore(IConnectionMultiplexer connection) => _database = connection.GetDatabase();

    /// <summary>The scripts' text (benchmarks and tests check they stay one round trip).</summary>
    internal static string ReserveScriptText => ReserveScript;

    public async ValueTask<AdmissionResult> ReserveAsync(AdmissionRequest request)
    {
        var counters = request.Counters;
        var keys = new RedisKey[counters.Length + 1];
        var args = new RedisValue[2 + counters.Length * 6];
        keys[0] = LimitKeys.Reservation(request.ReservationId);
        args[0] = request.ReservationId;
        args[1] = request.LeaseMs;
        for (var i = 0; i < counters.Length; i++)
        {
            var counter = counters[i];
            keys[i + 1] = counter.Key;
            args[2 + i * 6] = ((char)counter.Kind).ToString();
            args[3 + i * 6] = counter.Limit;
            args[4 + i * 6] = Math.Max(1, counter.WindowMs);
            args[5 + i * 6] = counter.Amount;
            args[6 + i * 6] = counter.PeriodStartMs;
            args[7 + i * 6] = counter.PeriodEndMs;
        }

        var reply = (RedisResult[])(await _database.ScriptEvaluateAsync(ReserveScript, keys, args, CommandFlags.DemandMaster).ConfigureAwait(false))!;
        var failed = (long)reply[1];
        var result = new AdmissionResult(counters.Length)
        {
            Admitted = (long)reply[0] == 1,
            FailedIndex = failed > 0 ? (int)failed - 1 : -1,
            StalePeriodNowMs = failed < 0 ? (long)reply[2 + counters.Length * 2] : 0,
        };
        for (var i = 0; i < counters.Length; i++)
        {
            result.Used[i] = (long)reply[2 + i * 2];
            result.ResetMs[i] = (long)reply[3 + i * 2];
        }

        return result;
    }

    public async ValueTask SettleAsync(string reservationId, long[] actual)
    {
        var args = new RedisValue[actual.Length + 1];
        args[0] = reservationId;
        for (var i = 0; i < actual.Length; i++)
        {
            args[i + 1] = actual[i].ToString(CultureInfo.InvariantCulture);
        }

        await _database.ScriptEvaluateAsync(SettleScript, [LimitKeys.Reservation(reservationId)], args, CommandFlags.DemandMaster).ConfigureAwait(false);
    }
}
