using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using ExtProc.Observability;
using ExtProc.Storage;
using StackExchange.Redis;

namespace ExtProc.Benchmarks.Limits;

/// <summary>
/// One admission (three counters: requests, tokens, budget) against the in-process store and against a real
/// redis-server on loopback (started here; Debian's package). Redis admission is one Lua script: the round
/// trips per admission are read back from Redis' own command stats and printed at cleanup.
/// </summary>
public class AdmissionBenchmarks
{
    private ResilientLimitStore _local = null!;
    private ResilientLimitStore? _redis;
    private Process? _server;
    private int _port;
    private LimitCounter[] _counters = null!;
    private long _sequence;
    private long _redisAdmissions;

    [Params("in-process", "redis")]
    public string Store { get; set; } = "in-process";

    [GlobalSetup]
    public void Setup()
    {
        _counters =
        [
            new LimitCounter(LimitKeys.Counter("rpm", "acme", null, null), CounterKind.Window, long.MaxValue / 4, 60_000, 1),
            new LimitCounter(LimitKeys.Counter("tpm", "acme", null, null), CounterKind.Window, long.MaxValue / 4, 60_000, 1200),
            new LimitCounter(LimitKeys.Counter("daily", "acme", null, null) + ":d2026-11-24", CounterKind.Calendar, long.MaxValue / 4, 86_400_000, 900),
        ];
        _local = new ResilientLimitStore(null, TimeSpan.Zero, 1, 0, TimeProvider.System, new LimitMetrics());
        if (Store == "redis")
        {
            using (var listener = new TcpListener(IPAddress.Loopback, 0))
            {
                listener.Start();
                _port = ((IPEndPoint)listener.LocalEndpoint).Port;
            }

            _server = Process.Start(new ProcessStartInfo("redis-server", $"--port {_port} --bind 127.0.0.1 --save \"\" --appendonly no")
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            }) ?? throw new InvalidOperationException("redis-server did not start (apt-get install -y redis-server)");
            var connection = ResilientLimitStore.Connect($"127.0.0.1:{_port}", TimeSpan.FromSeconds(1));
            for (var i = 0; i < 200 && !connection.IsConnected; i++)
            {
                Thread.Sleep(25);
            }

            _redis = new ResilientLimitStore(connection, TimeSpan.FromSeconds(1), 1, 1000, TimeProvider.System, new LimitMetrics());
            Admit();
            ResetStats();
        }
    }

    [Benchmark]
    public bool Admit()
    {
        var store = _redis ?? _local;
        var id = (++_sequence).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var result = store.ReserveAsync(new AdmissionRequest(id, _counters, 60_000)).AsTask().GetAwaiter().GetResult();
        if (_redis is not null)
        {
            _redisAdmissions++;
        }

        return result.Admitted;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_redis is not null)
        {
            using var admin = ConnectionMultiplexer.Connect($"127.0.0.1:{_port},allowAdmin=true");
            var info = admin.GetServer($"127.0.0.1:{_port}").Info("commandstats");
            long scripts = 0;
            foreach (var group in info)
            {
                foreach (var pair in group)
                {
                    if (pair.Key is "cmdstat_evalsha" or "cmdstat_eval")
                    {
                        scripts += long.Parse(pair.Value.Split(',')[0].Split('=')[1], System.Globalization.CultureInfo.InvariantCulture);
                    }
                }
            }

            Console.WriteLine($"// Redis round trips per admission: {scripts} scripts / {_redisAdmissions} admissions = {(double)scripts / Math.Max(1, _redisAdmissions):F2}");
            _redis.Dispose();
            _server?.Kill();
            _server?.Dispose();
        }

        _local.Dispose();
    }

    private void ResetStats()
    {
        using var admin = ConnectionMultiplexer.Connect($"127.0.0.1:{_port},allowAdmin=true");
        admin.GetServer($"127.0.0.1:{_port}").ConfigResetStatistics();
        _redisAdmissions = 0;
    }
}
